-- The policy in force last announced for each computer (scheduler.computer.policy-changed.v1),
-- so the planner publishes a change only when the policy in force differs from it.
-- published_policy NULL: nothing announced yet (the next plan announces it);
-- published_policy_id NULL with a name: "no policy" was announced.
ALTER TABLE computers
    ADD COLUMN published_policy_id uuid,
    ADD COLUMN published_policy    text;
