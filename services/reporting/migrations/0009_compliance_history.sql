-- The fleet's headline counts over time (GET /reports/history): one point per sample
-- interval, keyed by the interval's start, so whichever replica reaches an interval first
-- writes its point and any other finds it taken (INSERT ... ON CONFLICT DO NOTHING).
-- `counts` holds the overview's totals (libs/contracts/reporting.py StateCounts).
CREATE TABLE compliance_history (
    at            timestamptz PRIMARY KEY,
    computers     bigint      NOT NULL,
    not_reporting bigint      NOT NULL,
    counts        jsonb       NOT NULL
);
