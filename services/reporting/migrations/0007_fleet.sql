-- What reporting knows of each computer for the fleet list (docs/product.md section 6): its
-- inventory from its check-ins, its last contact (a check-in or a report, reporting's clock),
-- its policy, and per-computer counters kept with every state change, so the list filters
-- and sorts on indexed columns at any fleet size.
ALTER TABLE computers
    ADD COLUMN operating_system  text        NOT NULL DEFAULT '',
    ADD COLUMN os_version        text        NOT NULL DEFAULT '',
    ADD COLUMN architecture      text        NOT NULL DEFAULT '',
    ADD COLUMN agent_version     text        NOT NULL DEFAULT '',
    ADD COLUMN timezone          text        NOT NULL DEFAULT 'UTC',
    ADD COLUMN policy            text,
    ADD COLUMN last_contact_at   timestamptz,
    ADD COLUMN installed         integer     NOT NULL DEFAULT 0,
    ADD COLUMN needed            integer     NOT NULL DEFAULT 0,
    ADD COLUMN failed            integer     NOT NULL DEFAULT 0,
    ADD COLUMN pending_restart   integer     NOT NULL DEFAULT 0,
    ADD COLUMN not_applicable    integer     NOT NULL DEFAULT 0;

UPDATE computers SET last_contact_at = registered_at;
UPDATE computers c SET
    installed = s.installed, needed = s.needed, failed = s.failed,
    pending_restart = s.pending_restart, not_applicable = s.not_applicable
FROM (SELECT computer_id,
             count(*) FILTER (WHERE state = 'installed') AS installed,
             count(*) FILTER (WHERE state = 'needed') AS needed,
             count(*) FILTER (WHERE state = 'failed') AS failed,
             count(*) FILTER (WHERE state = 'installed_pending_restart') AS pending_restart,
             count(*) FILTER (WHERE state = 'not_applicable') AS not_applicable
      FROM computer_updates GROUP BY computer_id) s
WHERE s.computer_id = c.computer_id;
ALTER TABLE computers ALTER COLUMN last_contact_at SET NOT NULL;

-- Keyset paging of the fleet list: one index per sort, the id breaking ties.
CREATE INDEX computers_by_name ON computers (lower(hostname), computer_id);
CREATE INDEX computers_by_contact ON computers (last_contact_at, computer_id);
CREATE INDEX computers_by_failed ON computers ((-failed), computer_id);
-- Search by name or id prefix.
CREATE INDEX computers_name_prefix ON computers (lower(hostname) text_pattern_ops);
CREATE INDEX computers_id_prefix ON computers (computer_id text_pattern_ops);
-- The few computers with a restart pending.
CREATE INDEX computers_restart_pending ON computers (computer_id) WHERE pending_restart > 0;
