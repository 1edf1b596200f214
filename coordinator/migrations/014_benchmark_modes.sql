-- SPDX-License-Identifier: MIT
-- hfleet schema, version 14: benchmark execution modes (issue 14).
--
-- A benchmark task runs in one mode: eager (the model's forward as
-- written, what every earlier benchmark measured), cuda-graph (the forward
-- captured once in a CUDA graph and replayed) or compile (torch.compile).
-- The figures of two modes of one model differ by design (bert-base fp16
-- batch 1 on an H200: 3.9 ms eager, 0.76 ms graph), so the mode is part of
-- every benchmark series: benchmark_state, benchmark_runs, task_history
-- and the readers (benchmark_latest, benchmark_history,
-- hfleet_regressions_rolling, hfleet_compare_jobs, cross_backend) key on
-- it, and an eager figure is never compared with a graph figure nor taken
-- as its baseline.  Test tasks are eager (they ignore the mode).
--
-- Every row stored before this migration was measured eager: the columns'
-- default says so.  Functions whose columns change are dropped and made
-- again (the mode is their last column, so readers that name columns are
-- unchanged), and the readers' grants are given again.

ALTER TABLE tasks ADD COLUMN mode text NOT NULL DEFAULT 'eager'
    CONSTRAINT tasks_mode_check CHECK (mode IN ('eager', 'cuda-graph', 'compile'));

ALTER TABLE benchmark_state ADD COLUMN mode text NOT NULL DEFAULT 'eager';
ALTER TABLE benchmark_state DROP CONSTRAINT benchmark_state_pkey;
ALTER TABLE benchmark_state ADD PRIMARY KEY (model_type, backend, device_name, precision, batch_size,
                                             seq_len, mode);

ALTER TABLE benchmark_runs ADD COLUMN mode text NOT NULL DEFAULT 'eager';
DROP INDEX benchmark_runs_series_idx;
CREATE INDEX benchmark_runs_series_idx ON benchmark_runs (model_type, backend, device_name, precision,
                                                          batch_size, seq_len, mode, finished_at)
    INCLUDE (latency_p50_ms, env_id);

-- task_history's columns are task_history_source's, in its order: both get
-- mode last.  A task's mode never changes, so the trigger's update of a
-- history row needs no mode.
ALTER TABLE task_history ADD COLUMN mode text NOT NULL DEFAULT 'eager';
CREATE OR REPLACE VIEW task_history_source AS
SELECT t.id AS task_id, t.job_id, t.result_id, t.model_type, t.backend, t.kind, t.precision,
       t.batch_size, t.seq_len, t.state AS status, t.finished_at, r.device_name, r.env_id,
       r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv, r.latency_p50_ms, r.latency_p90_ms,
       r.latency_p95_ms, r.latency_p99_ms, r.throughput_items_s, r.peak_memory_bytes,
       r.energy_j_per_item, r.avg_power_w, r.noisy, t.mode
FROM tasks t
LEFT JOIN results r ON r.id = t.result_id
WHERE t.finished_at IS NOT NULL
  AND t.state IN ('passed', 'failed', 'error', 'timeout', 'skipped', 'cancelled');
UPDATE task_history h SET mode = t.mode FROM tasks t WHERE t.id = h.task_id AND t.mode <> 'eager';
-- One model's passed benchmarks stay an index-only scan with the mode.
DROP INDEX task_history_benchmark_idx;
CREATE INDEX task_history_benchmark_idx ON task_history (model_type, finished_at)
    INCLUDE (backend, device_name, precision, batch_size, seq_len, job_id, task_id,
             latency_mean_ms, latency_stdev_ms, latency_cv, latency_p50_ms, latency_p90_ms,
             latency_p95_ms, latency_p99_ms, throughput_items_s, peak_memory_bytes,
             energy_j_per_item, avg_power_w, noisy, env_id, mode)
    WHERE kind = 'benchmark' AND status = 'passed' AND result_id IS NOT NULL;

-- Migration 009's function; the benchmark series carry the task's mode.
CREATE OR REPLACE FUNCTION hfleet_tasks_summarise() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    INSERT INTO task_history AS h
    SELECT * FROM task_history_source s WHERE s.task_id = NEW.id
    ON CONFLICT (task_id) DO UPDATE SET
        job_id = EXCLUDED.job_id, result_id = EXCLUDED.result_id,
        model_type = EXCLUDED.model_type, backend = EXCLUDED.backend, kind = EXCLUDED.kind,
        precision = EXCLUDED.precision, batch_size = EXCLUDED.batch_size,
        seq_len = EXCLUDED.seq_len, status = EXCLUDED.status, finished_at = EXCLUDED.finished_at,
        device_name = EXCLUDED.device_name, env_id = EXCLUDED.env_id,
        latency_mean_ms = EXCLUDED.latency_mean_ms, latency_stdev_ms = EXCLUDED.latency_stdev_ms,
        latency_cv = EXCLUDED.latency_cv, latency_p50_ms = EXCLUDED.latency_p50_ms,
        latency_p90_ms = EXCLUDED.latency_p90_ms, latency_p95_ms = EXCLUDED.latency_p95_ms,
        latency_p99_ms = EXCLUDED.latency_p99_ms, throughput_items_s = EXCLUDED.throughput_items_s,
        peak_memory_bytes = EXCLUDED.peak_memory_bytes,
        energy_j_per_item = EXCLUDED.energy_j_per_item, avg_power_w = EXCLUDED.avg_power_w,
        noisy = EXCLUDED.noisy;
    IF NEW.kind = 'test' AND NEW.state IN ('passed', 'failed', 'error', 'timeout') THEN
        INSERT INTO matrix_state AS m (model_type, backend, precision, decisive_task_id,
                                       decisive_result_id, decisive_status, decisive_at)
        VALUES (NEW.model_type, NEW.backend, NEW.precision, NEW.id, NEW.result_id, NEW.state,
                NEW.finished_at)
        ON CONFLICT (model_type, backend, precision) DO UPDATE SET
            decisive_task_id = EXCLUDED.decisive_task_id,
            decisive_result_id = EXCLUDED.decisive_result_id,
            decisive_status = EXCLUDED.decisive_status,
            decisive_at = EXCLUDED.decisive_at,
            skipped_since = CASE WHEN m.skipped_since <= EXCLUDED.decisive_at THEN NULL
                                 ELSE m.skipped_since END
        WHERE m.decisive_at IS NULL OR m.decisive_at <= EXCLUDED.decisive_at;
    ELSIF NEW.kind = 'test' THEN
        INSERT INTO matrix_state AS m (model_type, backend, precision, other_task_id,
                                       other_result_id, other_status, other_at, skipped_since)
        VALUES (NEW.model_type, NEW.backend, NEW.precision, NEW.id, NEW.result_id, NEW.state,
                NEW.finished_at, NEW.finished_at)
        ON CONFLICT (model_type, backend, precision) DO UPDATE SET
            other_task_id = CASE WHEN m.other_at > EXCLUDED.other_at THEN m.other_task_id
                                 ELSE EXCLUDED.other_task_id END,
            other_result_id = CASE WHEN m.other_at > EXCLUDED.other_at THEN m.other_result_id
                                   ELSE EXCLUDED.other_result_id END,
            other_status = CASE WHEN m.other_at > EXCLUDED.other_at THEN m.other_status
                                ELSE EXCLUDED.other_status END,
            other_at = greatest(m.other_at, EXCLUDED.other_at),
            skipped_since = CASE WHEN m.decisive_at >= EXCLUDED.other_at THEN m.skipped_since
                                 ELSE least(m.skipped_since, EXCLUDED.other_at) END;
    ELSIF NEW.kind = 'benchmark' AND NEW.state = 'passed' AND NEW.result_id IS NOT NULL THEN
        SELECT coalesce(x.device_name, '') AS device_name, x.latency_p50_ms, x.latency_cv, x.noisy,
               x.env_id
        INTO r FROM results x WHERE x.id = NEW.result_id;
        INSERT INTO benchmark_runs AS b (task_id, result_id, model_type, backend, device_name,
                                         precision, batch_size, seq_len, mode, finished_at,
                                         latency_p50_ms, latency_cv, noisy, env_id)
        VALUES (NEW.id, NEW.result_id, NEW.model_type, NEW.backend, coalesce(r.device_name, ''),
                NEW.precision, NEW.batch_size, NEW.seq_len, NEW.mode, NEW.finished_at,
                r.latency_p50_ms, r.latency_cv, r.noisy, r.env_id)
        ON CONFLICT (task_id) DO UPDATE SET
            result_id = EXCLUDED.result_id, device_name = EXCLUDED.device_name,
            finished_at = EXCLUDED.finished_at, latency_p50_ms = EXCLUDED.latency_p50_ms,
            latency_cv = EXCLUDED.latency_cv, noisy = EXCLUDED.noisy, env_id = EXCLUDED.env_id;
        INSERT INTO benchmark_state AS b (model_type, backend, device_name, precision, batch_size,
                                          seq_len, mode, task_id, result_id, finished_at)
        VALUES (NEW.model_type, NEW.backend, coalesce(r.device_name, ''), NEW.precision, NEW.batch_size,
                NEW.seq_len, NEW.mode, NEW.id, NEW.result_id, NEW.finished_at)
        ON CONFLICT (model_type, backend, device_name, precision, batch_size, seq_len, mode) DO UPDATE SET
            task_id = EXCLUDED.task_id, result_id = EXCLUDED.result_id,
            finished_at = EXCLUDED.finished_at
        WHERE b.finished_at <= EXCLUDED.finished_at;
    END IF;
    RETURN NULL;
END
$$;

-- Migration 008's rebuild (hfleet_rebuild_summaries calls it), with modes.
CREATE OR REPLACE FUNCTION hfleet_rebuild_summaries_008() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM matrix_state;
    DELETE FROM benchmark_state;
    DELETE FROM benchmark_runs;
    INSERT INTO benchmark_runs (task_id, result_id, model_type, backend, device_name, precision,
                                batch_size, seq_len, mode, finished_at, latency_p50_ms, latency_cv,
                                noisy, env_id)
    SELECT t.id, t.result_id, t.model_type, t.backend, coalesce(r.device_name, ''), t.precision,
           t.batch_size, t.seq_len, t.mode, t.finished_at, r.latency_p50_ms, r.latency_cv, r.noisy,
           r.env_id
    FROM tasks t JOIN results r ON r.id = t.result_id
    WHERE t.kind = 'benchmark' AND t.state = 'passed' AND t.finished_at IS NOT NULL;
    WITH d AS (
        SELECT DISTINCT ON (model_type, backend, precision)
               model_type, backend, precision, id, result_id, state, finished_at
        FROM tasks
        WHERE kind = 'test' AND finished_at IS NOT NULL
          AND state IN ('passed', 'failed', 'error', 'timeout')
        ORDER BY model_type, backend, precision, finished_at DESC, id DESC),
    o AS (
        SELECT DISTINCT ON (model_type, backend, precision)
               model_type, backend, precision, id, result_id, state, finished_at
        FROM tasks
        WHERE kind = 'test' AND finished_at IS NOT NULL AND state IN ('skipped', 'cancelled')
        ORDER BY model_type, backend, precision, finished_at DESC, id DESC),
    k AS (
        SELECT model_type, backend, precision FROM d
        UNION SELECT model_type, backend, precision FROM o)
    INSERT INTO matrix_state (model_type, backend, precision, decisive_task_id, decisive_result_id,
                              decisive_status, decisive_at, other_task_id, other_result_id,
                              other_status, other_at, skipped_since)
    SELECT k.model_type, k.backend, k.precision, d.id, d.result_id, d.state, d.finished_at,
           o.id, o.result_id, o.state, o.finished_at,
           CASE WHEN o.finished_at > d.finished_at OR d.finished_at IS NULL THEN
               (SELECT min(s.finished_at) FROM tasks s
                WHERE s.model_type = k.model_type AND s.kind = 'test' AND s.backend = k.backend
                  AND s.precision = k.precision AND s.state IN ('skipped', 'cancelled')
                  AND s.finished_at > coalesce(d.finished_at, '-infinity'))
           END
    FROM k
    LEFT JOIN d ON (d.model_type, d.backend, d.precision) = (k.model_type, k.backend, k.precision)
    LEFT JOIN o ON (o.model_type, o.backend, o.precision) = (k.model_type, k.backend, k.precision);
    INSERT INTO benchmark_state (model_type, backend, device_name, precision, batch_size, seq_len,
                                 mode, task_id, result_id, finished_at)
    SELECT DISTINCT ON (t.model_type, t.backend, coalesce(r.device_name, ''), t.precision,
                        t.batch_size, t.seq_len, t.mode)
           t.model_type, t.backend, coalesce(r.device_name, ''), t.precision, t.batch_size,
           t.seq_len, t.mode, t.id, t.result_id, t.finished_at
    FROM tasks t JOIN results r ON r.id = t.result_id
    WHERE t.kind = 'benchmark' AND t.state = 'passed' AND t.finished_at IS NOT NULL
    ORDER BY t.model_type, t.backend, coalesce(r.device_name, ''), t.precision, t.batch_size,
             t.seq_len, t.mode, t.finished_at DESC, t.id DESC;
$$;

-- ---- the readers ----

DROP VIEW cross_backend;
DROP VIEW benchmark_regressions;
DROP FUNCTION hfleet_regressions_rolling(integer, double precision);
DROP FUNCTION hfleet_compare_jobs(bigint, bigint, double precision);

CREATE OR REPLACE VIEW task_outcomes AS
SELECT t.id AS task_id, t.job_id, t.model_type, m.family, m.hf_id, t.backend, t.kind,
       t.batch_size, t.seq_len, t.precision, t.state AS status, t.attempt,
       r.reason, r.metrics, r.env, r.weights, r.worker_id, r.device_index,
       r.started_at, r.finished_at,
       EXTRACT(EPOCH FROM (r.finished_at - r.started_at)) AS duration_s,
       (SELECT count(*) FROM results f WHERE f.task_id = t.id AND f.flaky_rerun) AS reruns,
       r.received_at, t.finished_at AS task_finished_at,
       r.device_uuid, r.device_name, r.device_memory_bytes, r.driver_version, r.cuda_version,
       r.rocm_version, r.torch_version, r.transformers_version, r.python_version,
       r.runner_version, r.env_id,
       r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv, r.latency_p50_ms, r.latency_p90_ms,
       r.latency_p95_ms, r.latency_p99_ms, r.throughput_items_s, r.peak_memory_bytes,
       r.energy_j_per_item, r.avg_power_w, r.noisy, t.mode
FROM tasks t
JOIN models m USING (model_type)
LEFT JOIN results r ON r.id = t.result_id;

CREATE OR REPLACE VIEW benchmark_history AS
SELECT h.model_type, m.family, h.backend, h.device_name, h.precision, h.batch_size, h.seq_len,
       h.job_id, h.task_id, h.finished_at,
       h.latency_mean_ms, h.latency_stdev_ms, h.latency_cv, h.latency_p50_ms, h.latency_p90_ms,
       h.latency_p95_ms, h.latency_p99_ms, h.throughput_items_s, h.peak_memory_bytes,
       h.energy_j_per_item, h.avg_power_w, h.noisy, h.env_id, h.mode
FROM task_history h
JOIN models m ON m.model_type = h.model_type
WHERE h.kind = 'benchmark' AND h.status = 'passed' AND h.result_id IS NOT NULL;

-- The latest passed benchmark per (model_type, backend, device_name,
-- precision, batch_size, seq_len, mode).
CREATE OR REPLACE VIEW benchmark_latest AS
SELECT s.model_type, m.family, s.backend, r.device_name, s.precision, s.batch_size, s.seq_len,
       t.job_id, s.task_id, s.finished_at,
       r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv, r.latency_p50_ms, r.latency_p90_ms,
       r.latency_p95_ms, r.latency_p99_ms, r.throughput_items_s, r.peak_memory_bytes,
       r.energy_j_per_item, r.avg_power_w, r.noisy, r.env_id, s.mode
FROM benchmark_state s
JOIN models m ON m.model_type = s.model_type
JOIN tasks t ON t.id = s.task_id
JOIN results r ON r.id = s.result_id;

-- Migration 010's function: a series' baseline is runs of its own mode.
CREATE FUNCTION hfleet_regressions_rolling(n integer DEFAULT 5, threshold double precision DEFAULT 0.10)
RETURNS TABLE (model_type text, family text, backend text, device_name text, "precision" text,
               batch_size integer, seq_len integer, job_id bigint, task_id bigint,
               finished_at timestamptz, latency_p50_ms double precision,
               baseline_p50_ms double precision, change double precision, baseline_runs integer,
               latency_cv double precision, noisy boolean, regressed boolean, env_id bigint,
               baseline_env_id bigint, mode text)
LANGUAGE sql STABLE AS $$
    SELECT l.model_type, l.family, l.backend, l.device_name, l.precision, l.batch_size, l.seq_len,
           l.job_id, l.task_id, l.finished_at, l.latency_p50_ms, b.median,
           l.latency_p50_ms / nullif(b.median, 0) - 1, coalesce(b.runs, 0)::integer,
           l.latency_cv, coalesce(l.noisy, false),
           coalesce(hfleet_benchmark_verdict(b.median, l.latency_p50_ms,
                                             greatest(b.median_cv, b.between_cv),
                                             l.latency_cv, threshold) = 'slower', false),
           l.env_id, b.env_id, l.mode
    FROM benchmark_latest l
    LEFT JOIN LATERAL (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY p.latency_p50_ms) AS median,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY p.latency_cv) AS median_cv,
               CASE WHEN count(*) >= 3
                    THEN stddev_samp(p.latency_p50_ms) / nullif(avg(p.latency_p50_ms), 0) END
                   AS between_cv,
               count(*) AS runs, max(p.env_id) AS env_id
        FROM (SELECT br.latency_p50_ms, br.latency_cv, br.env_id
              FROM benchmark_runs br
              WHERE br.model_type = l.model_type AND br.backend = l.backend
                AND br.device_name = coalesce(l.device_name, '') AND br.precision = l.precision
                AND br.batch_size = l.batch_size AND br.seq_len = l.seq_len AND br.mode = l.mode
                AND br.finished_at < l.finished_at AND br.latency_p50_ms IS NOT NULL
              ORDER BY br.finished_at DESC
              LIMIT greatest(n, 1)) p) b ON true
$$;

CREATE VIEW benchmark_regressions AS
SELECT * FROM hfleet_regressions_rolling(5, 0.10);

-- Migration 010's function: one row per (model_type, backend, kind,
-- precision, batch_size, seq_len, mode) present in either job.
CREATE FUNCTION hfleet_compare_jobs(base bigint, cand bigint, threshold double precision DEFAULT 0.10)
RETURNS TABLE (model_type text, backend text, kind text, "precision" text, batch_size integer,
               seq_len integer, base_status text, cand_status text, change_kind text,
               base_reason text, cand_reason text, base_p50_ms double precision,
               cand_p50_ms double precision, change double precision, base_env_id bigint,
               cand_env_id bigint, mode text)
LANGUAGE sql STABLE AS $$
    WITH b AS (
        SELECT DISTINCT ON (t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len, t.mode)
               t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len, t.mode,
               t.state, r.reason, r.latency_p50_ms AS p50, r.latency_cv AS cv, r.env_id
        FROM tasks t LEFT JOIN results r ON r.id = t.result_id
        WHERE t.job_id = base
        ORDER BY t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len, t.mode, t.id DESC),
    c AS (
        SELECT DISTINCT ON (t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len, t.mode)
               t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len, t.mode,
               t.state, r.reason, r.latency_p50_ms AS p50, r.latency_cv AS cv, r.env_id
        FROM tasks t LEFT JOIN results r ON r.id = t.result_id
        WHERE t.job_id = cand
        ORDER BY t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len, t.mode, t.id DESC),
    j AS (
        SELECT coalesce(b.model_type, c.model_type) AS model_type,
               coalesce(b.backend, c.backend) AS backend, coalesce(b.kind, c.kind) AS kind,
               coalesce(b.precision, c.precision) AS precision,
               coalesce(b.batch_size, c.batch_size) AS batch_size,
               coalesce(b.seq_len, c.seq_len) AS seq_len,
               coalesce(b.mode, c.mode) AS mode,
               b.state AS base_status, c.state AS cand_status, b.reason AS base_reason,
               c.reason AS cand_reason, b.p50 AS base_p50, c.p50 AS cand_p50,
               c.p50 / nullif(b.p50, 0) - 1 AS change,
               hfleet_benchmark_verdict(b.p50, c.p50, b.cv, c.cv, threshold) AS verdict,
               b.env_id AS base_env_id, c.env_id AS cand_env_id
        FROM b FULL JOIN c USING (model_type, backend, kind, precision, batch_size, seq_len, mode))
    SELECT j.model_type, j.backend, j.kind, j.precision, j.batch_size, j.seq_len,
           j.base_status, j.cand_status,
           CASE WHEN j.base_status IS NULL THEN 'new'
                WHEN j.cand_status IS NULL THEN 'missing'
                WHEN j.cand_status IN ('failed', 'error', 'timeout')
                     AND j.base_status NOT IN ('failed', 'error', 'timeout') THEN 'new-failure'
                WHEN j.base_status IN ('failed', 'error', 'timeout')
                     AND j.cand_status = 'passed' THEN 'fixed'
                ELSE coalesce(j.verdict, 'same') END,
           j.base_reason, j.cand_reason, j.base_p50, j.cand_p50, j.change,
           j.base_env_id, j.cand_env_id, j.mode
    FROM j
    ORDER BY j.model_type, j.backend, j.kind, j.precision, j.batch_size, j.seq_len, j.mode
$$;

-- Latest figures of the same (model_type, precision, batch_size, seq_len,
-- mode) on each (backend, device_name); speedup_vs_cpu = the cpu p50 of the
-- same mode / this p50.
CREATE VIEW cross_backend AS
SELECT l.model_type, l.family, l.precision, l.batch_size, l.seq_len, l.backend, l.device_name,
       l.job_id, l.task_id, l.finished_at, l.latency_p50_ms, l.throughput_items_s,
       l.peak_memory_bytes, l.energy_j_per_item, l.avg_power_w, l.noisy, l.env_id,
       cpu.p50 / nullif(l.latency_p50_ms, 0) AS speedup_vs_cpu, l.mode
FROM benchmark_latest l
LEFT JOIN (SELECT s.model_type, s.precision, s.batch_size, s.seq_len, s.mode, min(r.latency_p50_ms) AS p50
           FROM benchmark_state s JOIN results r ON r.id = s.result_id
           WHERE s.backend = 'cpu'
           GROUP BY 1, 2, 3, 4, 5) cpu
  ON (cpu.model_type, cpu.precision, cpu.batch_size, cpu.seq_len, cpu.mode)
   = (l.model_type, l.precision, l.batch_size, l.seq_len, l.mode);

-- The views and functions made again lost their grants.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hfleet_reader') THEN
        PERFORM hfleet_reader_grants();
    END IF;
END
$$;
