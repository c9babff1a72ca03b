"""Approving one update for All computers over a large fleet, until every plan is current.

Run from the repository root (needs the local RabbitMQ with `rabbitmqctl`, and PostgreSQL):

    .venv/bin/python -m bench.bench_approval_scale [--computers 10000,100000,1000000]
        [--computers-per-group 100] [--small] [--timeout 900] [--no-profile]

Each fleet size gets a vhost and a database of its own (bench.common.infra), dropped at the
end even on failure. The approval and scheduler services run as child processes
(`python -m services.<name>`, bench_approval_scale/services.py), which apply their
migrations; then the fleet is loaded without them (not timed, a compact mode): a seeded
random tree of computers/100 groups (10 top-level groups, depth at most 8) and the
computers, each a member of one or two non-root groups, are COPYed into approval's schema,
and the scheduler's copies (groups, memberships, computers as after their first check-in
with four time zones in turn, the updates, two policies on two top-level groups) are made
from those rows inside the database. No computer has a plan yet.

Timed phases, each one `approval.update.approve.v1` sent with libs.bus.RpcClient:

* warm-up: update W for All computers (required install, one week): every computer's first
  plan with an item;
* root: update X for All computers (one week): the issue's scenario;
* child: X for a depth 1-2 group whose subtree is about a tenth of the tree, with a custom
  deadline three days away: the members of that subtree get the earlier deadline.

Per phase: `reply` (the service replies after its transaction committed), `internal`
(approval's outbox holds no unpublished `approval.update-approval.changed.v1`: the events
the scheduler and reporting re-plan from), `events` (approval's outbox holds no unpublished
row: every event of the approval, the per-group public ones included, confirmed by the
broker), `plans` (the scheduler's copy of the update's approvals equals approval's effective
rows, and no computer is marked for re-planning nor any range waiting), the messages the
scheduler queued to agents, and per service process its CPU and peak RSS (sampled every
50 ms from /proc). Afterwards every computer's stored plan is checked in SQL: it holds the
update, required, with the earliest deadline among its groups' effective approvals (All
computers included).

Goals (issue 19), at 10,000 groups / 1,000,000 computers: events published < 2 s; every
computer's plan current in the database < 60 s; every service < 1 GiB RSS. The figures of
each size (and their parameters) are saved with bench.common.results as `approval_scale`;
with a missed goal (unless --no-profile), one more root approval runs with py-spy recording
the service that missed it, kept under bench/profiles/.
"""
