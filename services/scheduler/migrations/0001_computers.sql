-- Computers known to the scheduler, created by their first check-in.
CREATE TABLE computers (
    computer_id     text        PRIMARY KEY,
    hostname        text        NOT NULL,
    os_version      text        NOT NULL DEFAULT '',
    timezone        text        NOT NULL,
    agent_version   text        NOT NULL DEFAULT '',
    registered_at   timestamptz NOT NULL,
    last_checkin_at timestamptz NOT NULL,
    checkins_total  bigint      NOT NULL DEFAULT 1
);
