-- Firing a timer reads and writes narrow rows (services/scheduler/store/timers.py).

-- What firing a computer's timers needs from its plan (TimerPlan, services/scheduler/domain/
-- timers.py), as JSON, with the digest of the plan it was made of: firing uses it only while
-- computers.plan_hash is that digest, and reads the plan otherwise.
CREATE TABLE timer_plans (
    computer_id text PRIMARY KEY,
    plan_hash   text NOT NULL,
    firing      text NOT NULL
);

-- When a window and a deadline timer last fired per computer: moved out of `computers`, whose
-- row holds the plan and was rewritten whole by every fired timer.
CREATE TABLE timer_marks (
    computer_id            text PRIMARY KEY,
    last_window_at         timestamptz,
    deadline_fired_through timestamptz
);
INSERT INTO timer_marks (computer_id, last_window_at, deadline_fired_through)
SELECT computer_id, last_window_at, deadline_fired_through FROM computers
WHERE last_window_at IS NOT NULL OR deadline_fired_through IS NOT NULL;
ALTER TABLE computers DROP COLUMN last_window_at, DROP COLUMN deadline_fired_through;

-- Outbox rows their writer publishes itself once committed (libs/db/direct_publish.py): the
-- relay leaves them alone, and leases nobody finished are found through this index.
CREATE INDEX outbox_leased ON outbox (seq) WHERE published_at = 'infinity';
