-- The deadline spread last announced with a computer's policy in force (domain/policy.py
-- policy_to_announce): reporting counts a computer past its deadline from its own one
-- (libs/domain/deadline_spread.py). Rows announced before this column read 0, so a policy
-- that spreads deadlines is announced once more after the upgrade.
ALTER TABLE computers ADD COLUMN published_spread_hours integer NOT NULL DEFAULT 0;
