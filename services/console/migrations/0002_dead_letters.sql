-- Dead letters kept by the console's dead-letter keeper (services/console/dead_letters.py):
-- one row per message id and queue; a message dead-lettered again after a replay bumps
-- attempts and last_failed_at and waits again instead of adding a row.
CREATE TABLE dead_letters (
    dead_letter_id        bigserial   PRIMARY KEY,
    queue                 text        NOT NULL,
    dead_letter_queue     text        NOT NULL,
    message_id            text        NOT NULL,
    message_type          text        NOT NULL,
    handler               text        NOT NULL,
    reason_class          text        NOT NULL,
    reason                text        NOT NULL,
    original_exchange     text        NOT NULL,
    original_routing_key  text        NOT NULL,
    headers               jsonb       NOT NULL,
    properties            jsonb       NOT NULL,
    body                  bytea       NOT NULL,
    attempts              integer     NOT NULL,
    first_failed_at       timestamptz NOT NULL,
    last_failed_at        timestamptz NOT NULL,
    state                 text        NOT NULL CHECK (state IN ('waiting', 'replayed')),
    replayed_at           timestamptz,
    UNIQUE (queue, message_id)
);

CREATE INDEX dead_letters_waiting ON dead_letters (queue, dead_letter_id) WHERE state = 'waiting';
