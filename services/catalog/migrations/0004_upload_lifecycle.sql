-- Uploads end before commit in two more ways (issue 17): the operator cancels one, or it
-- expires after LOCKGATE_UPLOAD_EXPIRY_HOURS without activity. Either drops its bytes and
-- frees its quota. The expiry task finds abandoned uploads by their last activity.
ALTER TABLE uploads DROP CONSTRAINT uploads_state_check;
ALTER TABLE uploads ADD CONSTRAINT uploads_state_check
    CHECK (state IN ('receiving', 'received', 'committed', 'refused', 'cancelled', 'expired'));
CREATE INDEX uploads_open_by_activity ON uploads (updated_at)
    WHERE state IN ('receiving', 'received');
