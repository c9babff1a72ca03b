-- Computers with a restart under way, counted for lockgate_restarts_pending without a full scan.
CREATE INDEX computers_restart_pending ON computers (restart_phase) WHERE restart_phase <> 'idle';
