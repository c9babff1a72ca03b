-- Inbox and outbox of one service's schema (libs/db). Applied before the service's own files.

-- Messages already handled, per handler: the dedupe that makes effects exactly-once.
CREATE TABLE inbox (
    message_id   text        NOT NULL,
    handler      text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    reply_status text,        -- for commands: 'ok' or 'error'
    reply        bytea,       -- for commands: the reply body, resent on a duplicate request
    PRIMARY KEY (message_id, handler)
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);

-- Events written in the handler's transaction, published by the relay in seq order.
CREATE TABLE outbox (
    seq          bigserial   PRIMARY KEY,
    id           uuid        NOT NULL UNIQUE,
    exchange     text        NOT NULL,
    routing_key  text        NOT NULL,
    envelope     jsonb       NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
