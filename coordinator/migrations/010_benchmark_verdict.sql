-- SPDX-License-Identifier: MIT
-- hfleet schema, version 10: one verdict on a benchmark change.
--
-- hfleet_compare_jobs (hfctl compare) and hfleet_regressions_rolling (the
-- benchmark_regressions view) each wrote their own rule for "slower beyond
-- the noise", and the two disagreed: on the H200, bert at batch 1 went from
-- 4.99 ms (cv 0.115, so marked noisy) to 9.39 ms (cv 0.023) between two
-- jobs; the rolling view called it a regression and compare called it noisy,
-- because compare let the noisy mark veto any change however large.  Both
-- now ask hfleet_benchmark_verdict: a change is real when it is larger than
-- the threshold and than three times the measured noise of either side (a
-- change of +88 % against a spread of 11 % is not noise); within that
-- guard, but beyond the threshold, it is 'noisy'.  The noisy mark of a
-- result stays what it is: a reader's warning that its spread is wide.
--
-- For the rolling baseline (the median of the previous n runs) the noise of
-- the baseline side is the larger of the runs' median cv and the spread of
-- their p50s between runs (stddev / mean, with three runs or more), since
-- runs on different days differ more than iterations of one run.
--
-- The functions keep their signatures and columns, so the view, the grants
-- and hfctl are unchanged.

CREATE FUNCTION hfleet_benchmark_verdict(base_p50 double precision, cand_p50 double precision,
                                         base_cv double precision, cand_cv double precision,
                                         threshold double precision)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN base_p50 IS NULL OR cand_p50 IS NULL OR base_p50 <= 0 OR cand_p50 <= 0 THEN NULL
        WHEN cand_p50 / base_p50 - 1 > g.guard THEN 'slower'
        WHEN base_p50 / cand_p50 - 1 > g.guard THEN 'faster'
        WHEN cand_p50 / base_p50 - 1 > threshold OR base_p50 / cand_p50 - 1 > threshold THEN 'noisy'
        ELSE 'same' END
    FROM (SELECT greatest(threshold, 3 * coalesce(base_cv, 0), 3 * coalesce(cand_cv, 0)) AS guard) g
$$;

CREATE OR REPLACE FUNCTION hfleet_regressions_rolling(n integer DEFAULT 5, threshold double precision DEFAULT 0.10)
RETURNS TABLE (model_type text, family text, backend text, device_name text, "precision" text,
               batch_size integer, seq_len integer, job_id bigint, task_id bigint,
               finished_at timestamptz, latency_p50_ms double precision,
               baseline_p50_ms double precision, change double precision, baseline_runs integer,
               latency_cv double precision, noisy boolean, regressed boolean, env_id bigint,
               baseline_env_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT l.model_type, l.family, l.backend, l.device_name, l.precision, l.batch_size, l.seq_len,
           l.job_id, l.task_id, l.finished_at, l.latency_p50_ms, b.median,
           l.latency_p50_ms / nullif(b.median, 0) - 1, coalesce(b.runs, 0)::integer,
           l.latency_cv, coalesce(l.noisy, false),
           coalesce(hfleet_benchmark_verdict(b.median, l.latency_p50_ms,
                                             greatest(b.median_cv, b.between_cv),
                                             l.latency_cv, threshold) = 'slower', false),
           l.env_id, b.env_id
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
                AND br.batch_size = l.batch_size AND br.seq_len = l.seq_len
                AND br.finished_at < l.finished_at AND br.latency_p50_ms IS NOT NULL
              ORDER BY br.finished_at DESC
              LIMIT greatest(n, 1)) p) b ON true
$$;

CREATE OR REPLACE FUNCTION hfleet_compare_jobs(base bigint, cand bigint, threshold double precision DEFAULT 0.10)
RETURNS TABLE (model_type text, backend text, kind text, "precision" text, batch_size integer,
               seq_len integer, base_status text, cand_status text, change_kind text,
               base_reason text, cand_reason text, base_p50_ms double precision,
               cand_p50_ms double precision, change double precision, base_env_id bigint,
               cand_env_id bigint)
LANGUAGE sql STABLE AS $$
    WITH b AS (
        SELECT DISTINCT ON (t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len)
               t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len,
               t.state, r.reason, r.latency_p50_ms AS p50, r.latency_cv AS cv, r.env_id
        FROM tasks t LEFT JOIN results r ON r.id = t.result_id
        WHERE t.job_id = base
        ORDER BY t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len, t.id DESC),
    c AS (
        SELECT DISTINCT ON (t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len)
               t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len,
               t.state, r.reason, r.latency_p50_ms AS p50, r.latency_cv AS cv, r.env_id
        FROM tasks t LEFT JOIN results r ON r.id = t.result_id
        WHERE t.job_id = cand
        ORDER BY t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len, t.id DESC),
    j AS (
        SELECT coalesce(b.model_type, c.model_type) AS model_type,
               coalesce(b.backend, c.backend) AS backend, coalesce(b.kind, c.kind) AS kind,
               coalesce(b.precision, c.precision) AS precision,
               coalesce(b.batch_size, c.batch_size) AS batch_size,
               coalesce(b.seq_len, c.seq_len) AS seq_len,
               b.state AS base_status, c.state AS cand_status, b.reason AS base_reason,
               c.reason AS cand_reason, b.p50 AS base_p50, c.p50 AS cand_p50,
               c.p50 / nullif(b.p50, 0) - 1 AS change,
               hfleet_benchmark_verdict(b.p50, c.p50, b.cv, c.cv, threshold) AS verdict,
               b.env_id AS base_env_id, c.env_id AS cand_env_id
        FROM b FULL JOIN c USING (model_type, backend, kind, precision, batch_size, seq_len))
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
           j.base_env_id, j.cand_env_id
    FROM j
    ORDER BY j.model_type, j.backend, j.kind, j.precision, j.batch_size, j.seq_len
$$;
