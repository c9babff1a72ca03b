-- Versions of the Lockgate agent; mandatory ones are scheduled on computers running an older one.
CREATE TABLE agent_releases (
    version      text        PRIMARY KEY,
    major        integer     NOT NULL,
    minor        integer     NOT NULL,
    patch        integer     NOT NULL,
    mandatory    boolean     NOT NULL,
    notes        text        NOT NULL,
    published_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX agent_releases_order ON agent_releases (major, minor, patch);
