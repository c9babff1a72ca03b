-- Service instances known from their heartbeats: what `lockgate status` shows.
CREATE TABLE service_instances (
    instance_id      text        PRIMARY KEY,
    service          text        NOT NULL,
    version          text        NOT NULL,
    started_at       timestamptz NOT NULL,
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    heartbeats_total bigint      NOT NULL,
    last_sequence    bigint      NOT NULL
);
CREATE INDEX service_instances_last_seen ON service_instances (last_seen DESC);
