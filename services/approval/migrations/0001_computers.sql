-- approval's read copy of computers, learnt from scheduler.computer.registered.v1.
-- Every computer starts in "All computers"; the group tree arrives with the approval issue.
CREATE TABLE computers (
    computer_id   text        PRIMARY KEY,
    hostname      text        NOT NULL,
    registered_at timestamptz NOT NULL,
    learnt_at     timestamptz NOT NULL DEFAULT now()
);
