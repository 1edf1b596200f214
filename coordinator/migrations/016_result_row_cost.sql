-- SPDX-License-Identifier: MIT
-- hfleet schema, version 16: less work per stored result (issue 15).
--
-- The coordinator's one database connection spends most of its time in the
-- result statement (coordinator/db-results.c); bench/pg-result-cost.py
-- measures it per row.  This migration removes work from every result and
-- every lease without changing what any reader sees:
--
--   attempts_summarise_update (migration 015) read each ended lease back
--   through the view attempt_hours (attempts and tasks again, by key) after
--   a first query had gathered the ended leases into arrays.  It is one
--   statement now, over the statement's transition tables themselves: the
--   hours are hfleet_lease_hours of the new row's granted_at and ended_at
--   per distinct device, as attempt_hours computes them for an ended lease,
--   and the function needs no SET clause (no parameters: its plan is
--   generic anyway), which PostgreSQL runs through a slower call path.
--
--   attempts_granted_idx and results_env_idx are dropped: no reader filters
--   or orders attempts by granted_at (device_hours and attempt_hours replaced
--   the range scan of migration 008's hfleet_fleet_utilisation in 009) and
--   none looks results up by env_id (environments are joined by their own
--   key, and no environment is ever deleted).  Each cost an index entry per
--   lease (attempts are inserted once and updated once: two entries) and per
--   result.

DROP INDEX attempts_granted_idx;
DROP INDEX results_env_idx;

CREATE OR REPLACE FUNCTION hfleet_attempts_summarise_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_hours AS d (worker_id, backend, idx, hour, busy_s, tasks)
    SELECT n.worker_id, t.backend, di.idx, h.hour, sum(h.busy_s), sum(h.started)
    FROM new_attempts n
    JOIN old_attempts o ON (o.task_id, o.attempt) = (n.task_id, n.attempt)
    JOIN tasks t ON t.id = n.task_id
    CROSS JOIN LATERAL (SELECT DISTINCT u.idx
                        FROM unnest(coalesce(n.device_indices, ARRAY[n.device_index])) AS u (idx)) di
    CROSS JOIN LATERAL hfleet_lease_hours(n.granted_at, n.ended_at) h
    WHERE o.ended_at IS NULL AND n.ended_at IS NOT NULL
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (worker_id, backend, idx, hour) DO UPDATE SET
        busy_s = d.busy_s + EXCLUDED.busy_s, tasks = d.tasks + EXCLUDED.tasks;
    RETURN NULL;
END
$$;
ALTER FUNCTION hfleet_attempts_summarise_statement() RESET ALL;
