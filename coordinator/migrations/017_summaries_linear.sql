-- SPDX-License-Identifier: MIT
-- hfleet schema, version 17: the summary triggers' cost grows with the rows
-- of a statement, not with their square (issue 15).
--
-- The statement-level triggers of migrations 015 and 016 matched each
-- task's (and each lease's) old row to its new one by joining the two
-- transition tables, and the new rows of the decided tasks to the array of
-- their ids.  A transition table has no statistics and no index; the plan
-- of a trigger function's statement is made once per connection, with the
-- row count of the first statement it sees, and kept.  The coordinator's
-- connection starts with statements of a few rows, so the plan it kept was
-- a nested loop reading one table once per row of the other: a statement
-- of 512 results (a backlog of results, or grants on a connection of their
-- own) spent 103 ms in hfleet_tasks_summarise_statement and 59 ms in
-- hfleet_attempts_summarise_statement (auto_explain; 261,632 rows read and
-- thrown away per join), against about 16 ms and 3 ms for the same 512
-- rows with plans made for their number (bench/pg-result-cost.py), and the
-- result statements fell behind for good.
--
-- Now no transition table is joined:
--
--   tasks: the old and new rows where either is finished are put side by
--     side by grouping on the task id (a hash or a sort: n log n at worst),
--     and the decided tasks' new rows are kept whole in an array of tasks,
--     which task_history's statement unnests and joins to results by their
--     primary key.  A lease grant's rows (never finished) are filtered out
--     before the grouping, as the join's WHERE did.
--   attempts: the leases that ended are found the same way (old and new
--     rows grouped by their key), and their tasks read by primary key.
--
-- The summaries written are the same rows as before;
-- tests/integration/test_summaries.py checks them against
-- hfleet_rebuild_summaries() and a row-by-row replay, and
-- bench/pg-result-cost.py measures the statements at 1 to 512 rows.

CREATE OR REPLACE FUNCTION hfleet_attempts_summarise_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH e AS (
        SELECT (array_agg(x.r) FILTER (WHERE NOT x.old))[1] AS n
        FROM (SELECT false AS old, n::attempts AS r FROM new_attempts n
              UNION ALL
              SELECT true, o::attempts FROM old_attempts o) x
        GROUP BY (x.r).task_id, (x.r).attempt
        HAVING bool_or(x.old AND (x.r).ended_at IS NULL)
           AND bool_or(NOT x.old AND (x.r).ended_at IS NOT NULL))
    INSERT INTO device_hours AS d (worker_id, backend, idx, hour, busy_s, tasks)
    SELECT (e.n).worker_id, t.backend, di.idx, h.hour, sum(h.busy_s), sum(h.started)
    FROM e
    JOIN tasks t ON t.id = (e.n).task_id
    CROSS JOIN LATERAL (SELECT DISTINCT u.idx
                        FROM unnest(coalesce((e.n).device_indices, ARRAY[(e.n).device_index])) AS u (idx)) di
    CROSS JOIN LATERAL hfleet_lease_hours((e.n).granted_at, (e.n).ended_at) h
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (worker_id, backend, idx, hour) DO UPDATE SET
        busy_s = d.busy_s + EXCLUDED.busy_s, tasks = d.tasks + EXCLUDED.tasks;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION hfleet_tasks_summarise_statement() RETURNS trigger
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    decided tasks[];
    undecided bigint[];
BEGIN
    -- Each task's old and new row where either is finished, side by side
    -- (a task that was and stays unfinished, as every lease grant's, is
    -- not read further).  A row that is only new was not finished before;
    -- one that is only old is not finished now.
    SELECT array_agg(g.n) FILTER (WHERE (g.n).id IS NOT NULL
                                    AND (g.n).state IN ('passed', 'failed', 'error', 'timeout',
                                                        'skipped', 'cancelled')
                                    AND ((g.o).state, (g.o).finished_at, (g.o).result_id)
                                        IS DISTINCT FROM ((g.n).state, (g.n).finished_at, (g.n).result_id)),
           array_agg((g.o).id) FILTER (WHERE (g.o).id IS NOT NULL
                                         AND ((g.n).id IS NULL
                                              OR (g.n).state NOT IN ('passed', 'failed', 'error', 'timeout',
                                                                     'skipped', 'cancelled'))
                                         AND ((g.o).state, (g.o).finished_at, (g.o).result_id)
                                             IS DISTINCT FROM ((g.n).state, (g.n).finished_at, (g.n).result_id))
    INTO decided, undecided
    FROM (SELECT (array_agg(x.r) FILTER (WHERE NOT x.old))[1] AS n,
                 (array_agg(x.r) FILTER (WHERE x.old))[1] AS o
          FROM (SELECT false AS old, n::tasks AS r FROM new_tasks n WHERE n.finished_at IS NOT NULL
                UNION ALL
                SELECT true, o::tasks FROM old_tasks o WHERE o.finished_at IS NOT NULL) x
          GROUP BY (x.r).id) g;
    IF undecided IS NOT NULL THEN
        DELETE FROM task_history WHERE task_id = ANY (undecided);
    END IF;
    IF decided IS NULL THEN
        RETURN NULL;
    END IF;
    -- task_history_source's row of each decided task, from the statement's
    -- new rows (reading them from tasks through the view, the planner took
    -- tasks_series_idx for a few ids when most tasks were undecided); the
    -- results by their primary key.
    WITH s AS (
        SELECT n.id AS task_id, n.job_id, n.result_id, n.model_type, n.backend, n.kind,
               n.precision, n.batch_size, n.seq_len, n.state AS status, n.finished_at,
               r.device_name, r.env_id, r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv,
               r.latency_p50_ms, r.latency_p90_ms, r.latency_p95_ms, r.latency_p99_ms,
               r.throughput_items_s, r.peak_memory_bytes, r.energy_j_per_item, r.avg_power_w,
               r.noisy, n.mode
        FROM unnest(decided) AS n
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
