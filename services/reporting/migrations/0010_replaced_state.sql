-- Reports are written with one upsert per batch (services/reporting/store/states.py
-- `upsert`): a new (computer, update) row is inserted with its first state, an existing
-- one is moved only when the report is newer (libs/domain/agent_reports.py `moves`), and
-- the state it replaced is kept in `replaced_state`, which RETURNING reads to move the
-- counters. Rows written before this column have it NULL, as new rows do (no state before).
-- No placeholder rows (state 'none') are written any more.
ALTER TABLE computer_updates ADD COLUMN replaced_state text;
