-- Maintenance windows per computer group (libs/contracts/windows.py): installs and restarts
-- not forced by a passed deadline happen only inside the windows of a computer's groups and
-- their ancestors (services/scheduler/domain/windows.py). One row per group that has any;
-- `windows` is the JSON list of MaintenanceWindow objects, in the order the operator gave.
CREATE TABLE maintenance_windows (
    group_id   uuid        PRIMARY KEY,
    windows    jsonb       NOT NULL,
    updated_at timestamptz NOT NULL
);
