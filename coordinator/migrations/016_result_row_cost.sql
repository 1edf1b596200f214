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
--   hfleet_tasks_summarise_statement (migration 015) picked matrix_state's
--   latest decisive and latest other row of each key with three ordered
--   aggregates each (task, result, status), and PostgreSQL 15 sorts the
--   group's rows once per ordered aggregate: ten sorts per key.  Each pick
--   is one aggregate of a composite (hfleet_matrix_pick) now, four sorts
--   per key; the same rows, in the same order, are picked.  The rest of the
--   function is migration 015's, unchanged.
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

-- A row of matrix_state's picks: a test task, its result, its outcome.
CREATE TYPE hfleet_matrix_pick AS (task_id bigint, result_id bigint, status text);

-- Migration 015's function, the picks of m (and their use in matrix) aside.
CREATE OR REPLACE FUNCTION hfleet_tasks_summarise_statement() RETURNS trigger
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    decided bigint[];
    undecided bigint[];
BEGIN
    SELECT array_agg(n.id) FILTER (WHERE n.finished_at IS NOT NULL
                                     AND n.state IN ('passed', 'failed', 'error', 'timeout',
                                                     'skipped', 'cancelled')),
           array_agg(n.id) FILTER (WHERE o.finished_at IS NOT NULL
                                     AND (n.finished_at IS NULL OR n.state NOT IN ('passed', 'failed', 'error', 'timeout',
                                                        'skipped', 'cancelled')))
    INTO decided, undecided
    FROM new_tasks n JOIN old_tasks o ON o.id = n.id
    WHERE (n.finished_at IS NOT NULL OR o.finished_at IS NOT NULL)
      AND (o.state, o.finished_at, o.result_id) IS DISTINCT FROM (n.state, n.finished_at, n.result_id);
    IF undecided IS NOT NULL THEN
        DELETE FROM task_history WHERE task_id = ANY (undecided);
    END IF;
    IF decided IS NULL THEN
        RETURN NULL;
    END IF;
    -- task_history_source's row of each decided task, from the statement's
    -- new rows (reading them from tasks through the view, the planner took
    -- tasks_series_idx for a few ids when most tasks were undecided).
    WITH s AS (
        SELECT n.id AS task_id, n.job_id, n.result_id, n.model_type, n.backend, n.kind,
               n.precision, n.batch_size, n.seq_len, n.state AS status, n.finished_at,
               r.device_name, r.env_id, r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv,
               r.latency_p50_ms, r.latency_p90_ms, r.latency_p95_ms, r.latency_p99_ms,
               r.throughput_items_s, r.peak_memory_bytes, r.energy_j_per_item, r.avg_power_w,
               r.noisy, n.mode
        FROM unnest(decided) AS d (id)
        JOIN new_tasks n ON n.id = d.id
        LEFT JOIN results r ON r.id = n.result_id),
    hist AS (
        INSERT INTO task_history AS h
        SELECT * FROM s
        ON CONFLICT (task_id) DO UPDATE SET
            job_id = EXCLUDED.job_id, result_id = EXCLUDED.result_id,
            model_type = EXCLUDED.model_type, backend = EXCLUDED.backend, kind = EXCLUDED.kind,
            precision = EXCLUDED.precision, batch_size = EXCLUDED.batch_size,
            seq_len = EXCLUDED.seq_len, status = EXCLUDED.status, finished_at = EXCLUDED.finished_at,
            device_name = EXCLUDED.device_name, env_id = EXCLUDED.env_id,
            latency_mean_ms = EXCLUDED.latency_mean_ms, latency_stdev_ms = EXCLUDED.latency_stdev_ms,
            latency_cv = EXCLUDED.latency_cv, latency_p50_ms = EXCLUDED.latency_p50_ms,
            latency_p90_ms = EXCLUDED.latency_p90_ms, latency_p95_ms = EXCLUDED.latency_p95_ms,
            latency_p99_ms = EXCLUDED.latency_p99_ms,
            throughput_items_s = EXCLUDED.throughput_items_s,
            peak_memory_bytes = EXCLUDED.peak_memory_bytes,
            energy_j_per_item = EXCLUDED.energy_j_per_item, avg_power_w = EXCLUDED.avg_power_w,
            noisy = EXCLUDED.noisy),
    -- Tests, per (model_type, backend, precision): the latest decisive row
    -- and the latest skip or cancel (each picked whole, as one
    -- hfleet_matrix_pick: one sort per pick, not one per column), and
    -- every row's time for skipped_since.
    m AS (
        SELECT s.model_type, s.backend, s.precision,
               (array_agg((s.task_id, s.result_id, s.status)::hfleet_matrix_pick
                          ORDER BY s.finished_at DESC, s.task_id DESC) FILTER (WHERE d.decisive))[1] AS d_pick,
               max(s.finished_at) FILTER (WHERE d.decisive) AS d_at,
               (array_agg((s.task_id, s.result_id, s.status)::hfleet_matrix_pick
                          ORDER BY s.finished_at DESC, s.task_id DESC) FILTER (WHERE NOT d.decisive))[1] AS o_pick,
               max(s.finished_at) FILTER (WHERE NOT d.decisive) AS o_at,
               array_agg(s.finished_at ORDER BY s.finished_at, s.task_id) AS at,
               array_agg(d.decisive ORDER BY s.finished_at, s.task_id) AS decisive
        FROM s CROSS JOIN LATERAL (SELECT s.status IN ('passed', 'failed', 'error', 'timeout') AS decisive) d
        WHERE s.kind = 'test'
        GROUP BY 1, 2, 3),
    matrix AS (
        INSERT INTO matrix_state AS ms (model_type, backend, precision, decisive_task_id,
                                        decisive_result_id, decisive_status, decisive_at,
                                        other_task_id, other_result_id, other_status, other_at,
                                        skipped_since)
        SELECT m.model_type, m.backend, m.precision, (m.d_pick).task_id, (m.d_pick).result_id,
               (m.d_pick).status, m.d_at, (m.o_pick).task_id, (m.o_pick).result_id, (m.o_pick).status,
               m.o_at,
               hfleet_matrix_skipped_since(NULL, NULL, m.at, m.decisive)
        FROM m
        ON CONFLICT (model_type, backend, precision) DO UPDATE SET
            decisive_task_id = CASE WHEN ms.decisive_at > EXCLUDED.decisive_at
                                      OR EXCLUDED.decisive_at IS NULL
                                    THEN ms.decisive_task_id ELSE EXCLUDED.decisive_task_id END,
            decisive_result_id = CASE WHEN ms.decisive_at > EXCLUDED.decisive_at
                                        OR EXCLUDED.decisive_at IS NULL
                                      THEN ms.decisive_result_id ELSE EXCLUDED.decisive_result_id END,
            decisive_status = CASE WHEN ms.decisive_at > EXCLUDED.decisive_at
                                     OR EXCLUDED.decisive_at IS NULL
                                   THEN ms.decisive_status ELSE EXCLUDED.decisive_status END,
            decisive_at = CASE WHEN ms.decisive_at > EXCLUDED.decisive_at
                                 OR EXCLUDED.decisive_at IS NULL
                               THEN ms.decisive_at ELSE EXCLUDED.decisive_at END,
            other_task_id = CASE WHEN ms.other_at > EXCLUDED.other_at OR EXCLUDED.other_at IS NULL
                                 THEN ms.other_task_id ELSE EXCLUDED.other_task_id END,
            other_result_id = CASE WHEN ms.other_at > EXCLUDED.other_at OR EXCLUDED.other_at IS NULL
                                   THEN ms.other_result_id ELSE EXCLUDED.other_result_id END,
            other_status = CASE WHEN ms.other_at > EXCLUDED.other_at OR EXCLUDED.other_at IS NULL
                                THEN ms.other_status ELSE EXCLUDED.other_status END,
            other_at = greatest(ms.other_at, EXCLUDED.other_at),
            skipped_since = (SELECT hfleet_matrix_skipped_since(ms.decisive_at, ms.skipped_since,
                                                                x.at, x.decisive)
                             FROM m x
                             WHERE (x.model_type, x.backend, x.precision)
                                 = (ms.model_type, ms.backend, ms.precision))),
    -- Passed benchmarks with a result.
    b AS (
        SELECT s.task_id, s.result_id, s.model_type, s.backend, coalesce(s.device_name, '') AS device_name,
               s.precision, s.batch_size, s.seq_len, s.mode, s.finished_at, s.latency_p50_ms,
               s.latency_cv, s.noisy, s.env_id
        FROM s
        WHERE s.kind = 'benchmark' AND s.status = 'passed' AND s.result_id IS NOT NULL),
    runs AS (
        INSERT INTO benchmark_runs AS r (task_id, result_id, model_type, backend, device_name,
                                         precision, batch_size, seq_len, mode, finished_at,
                                         latency_p50_ms, latency_cv, noisy, env_id)
        SELECT * FROM b
        ON CONFLICT (task_id) DO UPDATE SET
            result_id = EXCLUDED.result_id, device_name = EXCLUDED.device_name,
            finished_at = EXCLUDED.finished_at, latency_p50_ms = EXCLUDED.latency_p50_ms,
            latency_cv = EXCLUDED.latency_cv, noisy = EXCLUDED.noisy, env_id = EXCLUDED.env_id)
    INSERT INTO benchmark_state AS bs (model_type, backend, device_name, precision, batch_size,
                                       seq_len, mode, task_id, result_id, finished_at)
    SELECT DISTINCT ON (b.model_type, b.backend, b.device_name, b.precision, b.batch_size, b.seq_len,
                        b.mode)
           b.model_type, b.backend, b.device_name, b.precision, b.batch_size, b.seq_len, b.mode,
           b.task_id, b.result_id, b.finished_at
    FROM b
    ORDER BY b.model_type, b.backend, b.device_name, b.precision, b.batch_size, b.seq_len, b.mode,
             b.finished_at DESC, b.task_id DESC
    ON CONFLICT (model_type, backend, device_name, precision, batch_size, seq_len, mode) DO UPDATE SET
        task_id = EXCLUDED.task_id, result_id = EXCLUDED.result_id,
        finished_at = EXCLUDED.finished_at
    WHERE bs.finished_at <= EXCLUDED.finished_at;
    RETURN NULL;
END
$$;
