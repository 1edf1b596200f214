-- SPDX-License-Identifier: MIT
-- hfleet schema, version 15: the readers' summaries kept once per statement,
-- not once per row, each benchmark series keyed by its mode as migration
-- 14 keys it (benchmark modes).  (This one was first 014, merged at 6275bdd and reverted at
-- 9ac6e73: with it the one UPDATE that cancelled a 102,304-task job ran for
-- more than a minute, because the decided rows were found with
-- `new_tasks.id = ANY (decided)`, a scan of the transition table per
-- element.  They are joined now, and a job's cancel is cut into slices of
-- scheduler.cancel_slice (500) tasks anyway: coordinator/db-cancel.c.)
--
-- Migrations 008 and 009 keep task_history, matrix_state, benchmark_runs,
-- benchmark_state (trigger tasks_summarise) and device_hours (trigger
-- attempts_summarise_end) with row-level triggers: each decided task ran a
-- PL/pgSQL function of two or three statements and each ended attempt one
-- more, about 40 us each per row in the coordinator's result statement,
-- which stores a few results at a time (issue 15).  For UPDATEs (every
-- outcome the coordinator decides and every lease it ends) they become
-- statement-level triggers over the statement's old and new rows
-- (transition tables): the rows whose outcome changed are gathered once and
-- each summary is written by one statement for all of them.
--
-- The summaries are the same rows the row-level triggers wrote, applying
-- the statement's rows one by one in the order (tasks.finished_at, id):
--
--   task_history: each decided task's row, the columns of
--     task_history_source read from the statement's new rows and their
--     results (one row per task; a task queued again loses its row, as
--     tasks_undecide did).
--   matrix_state: per (model_type, backend, precision) the rows of the
--     statement are reduced first (ON CONFLICT DO UPDATE may touch a row only
--     once in a statement): the latest decisive outcome and the latest skip or
--     cancel (ties: the higher task id, which is also what
--     hfleet_rebuild_summaries keeps), and skipped_since as the row-by-row
--     rules leave it (below).  The update reads the stored row as it is when
--     locked, as the row-level upsert did, so a concurrent writer of the same
--     key is not overwritten.
--   benchmark_runs: one row per passed benchmark task.
--   benchmark_state: per series the statement's latest run (finished_at,
--     then task id), kept where it is not older than the stored one.
--   device_hours: the hours of the ended leases from attempt_hours, summed
--     per (worker, backend, device, hour) and added once.
--
-- An UPDATE that leaves a task's state, finished_at and result_id as they
-- were changes no summary (the row-level trigger wrote the same values
-- again).  INSERTs keep the row-level triggers with their WHEN clauses: the
-- coordinator never inserts a decided task or an ended attempt, so they
-- never run and the insert of a large job pays nothing for them.
--
-- A statement-level trigger cannot name columns (UPDATE OF ...), so these
-- run for every UPDATE of tasks or attempts; for one that decides nothing
-- and ends no lease (a lease grant) one query over its changed rows finds
-- that out.  hfleet_rebuild_summaries() is unchanged: it rebuilds the same
-- tables from tasks, results, attempts and device_hours' telemetry
-- (tests/integration/test_summaries.py compares the two, and the triggers
-- with a row-by-row replay of migration 009's function).
--
-- Measured on a 2-core machine (PostgreSQL 15, one backend's CPU per
-- result statement shaped like the coordinator's, half tests half
-- benchmarks): 3 results per statement 0.79 ms before and after (the
-- fixed cost of the two functions and their statements equals what the
-- row-level ones cost for 3 rows); 30 results per statement 3.3 ms before,
-- 2.1 ms after (about 38 us less per result).
--
-- Measured again with the join (docs/performance.md, bench/run.py on the
-- same machine, with and without this migration in the same window): a
-- cancel slice of 500 tasks 9 to 11 ms against 17 to 18 ms (a 102,304-task
-- job's cancel 3.1 to 3.8 s against 4.7 to 5.2 s), the same job in one
-- statement 2.7 s against 5.0 s; PostgreSQL's CPU per task at 4 workers x 8
-- slots 389 to 397 us against 392 to 398 us (no change: about 3 results
-- per statement), at 8 x 16 slots 235 to 253 us against 275 us.

-- ---- tasks ----

DROP TRIGGER tasks_summarise ON tasks;
DROP TRIGGER tasks_undecide ON tasks;
DROP FUNCTION hfleet_tasks_undecide();

-- A task inserted already decided (the coordinator inserts none): the
-- row-level function of migration 009.
CREATE TRIGGER tasks_summarise_insert
    AFTER INSERT ON tasks
    FOR EACH ROW
    WHEN (NEW.finished_at IS NOT NULL
          AND NEW.state IN ('passed', 'failed', 'error', 'timeout', 'skipped', 'cancelled'))
    EXECUTE FUNCTION hfleet_tasks_summarise();

-- skipped_since of matrix_state after the rows of one statement of one key
-- (their finished_at and whether each is decisive, in the order
-- (finished_at, id)) are applied one by one to the stored row by migration
-- 008's rules: a decisive outcome not older than the current one becomes
-- the current one and clears skipped_since when that is not after it; a
-- skip or cancel after the current decisive outcome lowers skipped_since to
-- its time.  A key not stored yet starts with both NULL.
CREATE FUNCTION hfleet_matrix_skipped_since(stored_decisive_at timestamptz,
                                            stored_skipped_since timestamptz,
                                            at timestamptz[], decisive boolean[])
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    d timestamptz := stored_decisive_at;
    s timestamptz := stored_skipped_since;
BEGIN
    FOR i IN 1 .. coalesce(array_length(at, 1), 0) LOOP
        IF decisive[i] THEN
            IF d IS NULL OR d <= at[i] THEN
                d := at[i];
                IF s <= at[i] THEN
                    s := NULL;
                END IF;
            END IF;
        ELSIF d IS NULL OR d < at[i] THEN
            s := least(s, at[i]);
        END IF;
    END LOOP;
    RETURN s;
END
$$;

-- The summaries of the tasks an UPDATE decided, and task_history of those
-- it queued again.
--
-- Both functions plan their statements once (plan_cache_mode): with the
-- ids as parameters PostgreSQL otherwise planned the long statement below
-- anew on every call (about 0.45 ms per statement of 3 results measured).
CREATE FUNCTION hfleet_tasks_summarise_statement() RETURNS trigger
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
    -- and the latest skip or cancel, and every row's time for skipped_since.
    m AS (
        SELECT s.model_type, s.backend, s.precision,
               (array_agg(s.task_id ORDER BY s.finished_at DESC, s.task_id DESC) FILTER (WHERE d.decisive))[1] AS d_task,
               (array_agg(s.result_id ORDER BY s.finished_at DESC, s.task_id DESC) FILTER (WHERE d.decisive))[1] AS d_result,
               (array_agg(s.status ORDER BY s.finished_at DESC, s.task_id DESC) FILTER (WHERE d.decisive))[1] AS d_status,
               max(s.finished_at) FILTER (WHERE d.decisive) AS d_at,
               (array_agg(s.task_id ORDER BY s.finished_at DESC, s.task_id DESC) FILTER (WHERE NOT d.decisive))[1] AS o_task,
               (array_agg(s.result_id ORDER BY s.finished_at DESC, s.task_id DESC) FILTER (WHERE NOT d.decisive))[1] AS o_result,
               (array_agg(s.status ORDER BY s.finished_at DESC, s.task_id DESC) FILTER (WHERE NOT d.decisive))[1] AS o_status,
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
        SELECT m.model_type, m.backend, m.precision, m.d_task, m.d_result, m.d_status, m.d_at,
               m.o_task, m.o_result, m.o_status, m.o_at,
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

CREATE TRIGGER tasks_summarise_update
    AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT
    EXECUTE FUNCTION hfleet_tasks_summarise_statement();

-- ---- attempts ----

DROP TRIGGER attempts_summarise_end ON attempts;

-- The leases an UPDATE ended (ended_at from NULL), added to device_hours
-- once, from attempt_hours as the row-level function of migration 009 read
-- it.  attempts_summarise_insert (an attempt inserted already ended) stays.
CREATE FUNCTION hfleet_attempts_summarise_statement() RETURNS trigger
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    ended_tasks bigint[];
    ended_attempts integer[];
BEGIN
    SELECT array_agg(n.task_id), array_agg(n.attempt)
    INTO ended_tasks, ended_attempts
    FROM new_attempts n JOIN old_attempts o ON (o.task_id, o.attempt) = (n.task_id, n.attempt)
    WHERE o.ended_at IS NULL AND n.ended_at IS NOT NULL;
    IF ended_tasks IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO device_hours AS d (worker_id, backend, idx, hour, busy_s, tasks)
    SELECT h.worker_id, h.backend, h.idx, h.hour, sum(h.busy_s), sum(h.started)
    FROM unnest(ended_tasks, ended_attempts) AS e (task_id, attempt)
    JOIN attempt_hours h ON h.task_id = e.task_id AND h.attempt = e.attempt
    WHERE NOT h.running
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (worker_id, backend, idx, hour) DO UPDATE SET
        busy_s = d.busy_s + EXCLUDED.busy_s, tasks = d.tasks + EXCLUDED.tasks;
    RETURN NULL;
END
$$;

CREATE TRIGGER attempts_summarise_update
    AFTER UPDATE ON attempts
    REFERENCING OLD TABLE AS old_attempts NEW TABLE AS new_attempts
    FOR EACH STATEMENT
    EXECUTE FUNCTION hfleet_attempts_summarise_statement();
