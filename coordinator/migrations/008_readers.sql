-- SPDX-License-Identifier: MIT
-- hfleet schema, version 8: a schema for readers (issue 12).
--
-- Device identity, the software environment and the benchmark figures become
-- columns of results (filled by the coordinator from the result's env and
-- metrics JSON through hfleet_result_fields, the one piece of logic that
-- reads them, here and in the backfill); environments names each distinct
-- software environment by a fingerprint; the views and functions below are
-- the readers' interface (docs/database.md); hfleet_reader may read them.
--
-- Speed with years of history: the matrix and the latest benchmark figures
-- come from two small tables (matrix_state, benchmark_state) a trigger on
-- tasks keeps in the transaction that decides an outcome; history,
-- regressions and comparisons use tasks_series_idx.

-- ---- extracting values from hostile JSON ----
-- A value of the wrong JSON type is NULL, never an error; strings are cut at
-- 200 characters, numbers outside what float8/bigint hold are NULL (and
-- those too small for float8 are 0).

CREATE FUNCTION hfleet_json_text(j jsonb, key text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(j -> key) = 'string' THEN nullif(left(j ->> key, 200), '') END
$$;

CREATE FUNCTION hfleet_json_float(j jsonb, VARIADIC path text[]) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(j #> path) IS DISTINCT FROM 'number' THEN NULL
                WHEN abs((j #> path)::numeric) > 1.7976931348623157e308 THEN NULL
                WHEN abs((j #> path)::numeric) < 1e-300 THEN 0
                ELSE (j #> path)::numeric::double precision END
$$;

CREATE FUNCTION hfleet_json_bigint(j jsonb, VARIADIC path text[]) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(j #> path) IS DISTINCT FROM 'number' THEN NULL
                WHEN abs((j #> path)::numeric) >= 9e18 THEN NULL
                ELSE round((j #> path)::numeric)::bigint END
$$;

CREATE FUNCTION hfleet_json_bool(j jsonb, VARIADIC path text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(j #> path) = 'boolean' THEN (j #> path)::boolean END
$$;

-- The fingerprint of an environment: hex SHA-256 of its canonical fields
-- (a JSON array, in this order; NULL stays distinct from "").
CREATE FUNCTION hfleet_env_fingerprint(driver text, cuda text, rocm text, torch text,
                                       transformers text, python text, runner text,
                                       weights text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(jsonb_build_array(driver, cuda, rocm, torch, transformers,
                                                      python, runner, coalesce(weights, ''))::text,
                                    'UTF8')), 'hex')
$$;

-- The columns of a result that come from its env and metrics JSON, and from
-- what the worker registered for its device (dev_*: the devices row, NULL
-- when there is none) where the runner did not say.  fingerprint is NULL
-- when the runner reported no version at all (nothing was built).
CREATE FUNCTION hfleet_result_fields(env jsonb, metrics jsonb, weights text,
                                     dev_name text, dev_uuid text, dev_memory bigint)
RETURNS TABLE (device_uuid text, device_name text, device_memory_bytes bigint,
               driver_version text, cuda_version text, rocm_version text, torch_version text,
               transformers_version text, python_version text, runner_version text,
               latency_mean_ms double precision, latency_stdev_ms double precision,
               latency_cv double precision, latency_p50_ms double precision,
               latency_p90_ms double precision, latency_p95_ms double precision,
               latency_p99_ms double precision, throughput_items_s double precision,
               peak_memory_bytes bigint, energy_j_per_item double precision,
               avg_power_w double precision, noisy boolean, fingerprint text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT v.f_uuid, v.f_name, v.f_memory, v.f_driver, v.f_cuda, v.f_rocm, v.f_torch,
           v.f_transformers, v.f_python, v.f_runner,
           v.f_mean, v.f_stdev,
           coalesce(v.f_cv, CASE WHEN v.f_mean > 0 AND v.f_stdev >= 0 THEN v.f_stdev / v.f_mean END),
           v.f_p50, v.f_p90, v.f_p95, v.f_p99, v.f_throughput, v.f_peak, v.f_energy, v.f_power,
           v.f_noisy,
           CASE WHEN num_nonnulls(v.f_driver, v.f_cuda, v.f_rocm, v.f_torch, v.f_transformers,
                                  v.f_python, v.f_runner) > 0
                THEN hfleet_env_fingerprint(v.f_driver, v.f_cuda, v.f_rocm, v.f_torch,
                                            v.f_transformers, v.f_python, v.f_runner,
                                            left(weights, 32)) END
    FROM (SELECT
            coalesce(hfleet_json_text(env, 'device_uuid'), hfleet_json_text(env, 'torch_device_uuid'),
                     nullif(left(dev_uuid, 200), '')) AS f_uuid,
            coalesce(hfleet_json_text(env, 'device_name'), nullif(left(dev_name, 200), '')) AS f_name,
            coalesce(hfleet_json_bigint(env, 'device_memory_bytes'), nullif(dev_memory, 0)) AS f_memory,
            hfleet_json_text(env, 'driver_version') AS f_driver,
            coalesce(hfleet_json_text(env, 'cuda_version'), hfleet_json_text(env, 'torch_cuda')) AS f_cuda,
            coalesce(hfleet_json_text(env, 'rocm_version'), hfleet_json_text(env, 'torch_hip')) AS f_rocm,
            hfleet_json_text(env, 'torch') AS f_torch,
            hfleet_json_text(env, 'transformers') AS f_transformers,
            hfleet_json_text(env, 'python') AS f_python,
            hfleet_json_text(env, 'runner_version') AS f_runner,
            hfleet_json_float(metrics, 'latency_ms', 'mean') AS f_mean,
            hfleet_json_float(metrics, 'latency_ms', 'stdev') AS f_stdev,
            hfleet_json_float(metrics, 'latency_ms', 'cv') AS f_cv,
            hfleet_json_float(metrics, 'latency_ms', 'p50') AS f_p50,
            hfleet_json_float(metrics, 'latency_ms', 'p90') AS f_p90,
            hfleet_json_float(metrics, 'latency_ms', 'p95') AS f_p95,
            hfleet_json_float(metrics, 'latency_ms', 'p99') AS f_p99,
            hfleet_json_float(metrics, 'throughput_items_s') AS f_throughput,
            hfleet_json_bigint(metrics, 'peak_memory_bytes') AS f_peak,
            hfleet_json_float(metrics, 'energy_j_per_item') AS f_energy,
            hfleet_json_float(metrics, 'avg_power_w') AS f_power,
            hfleet_json_bool(metrics, 'noisy') AS f_noisy) v
$$;

-- ---- environments and the new results columns ----

CREATE TABLE environments (
    id                   bigserial PRIMARY KEY,
    fingerprint          text NOT NULL UNIQUE,
    driver_version       text,
    cuda_version         text,
    rocm_version         text,
    torch_version        text,
    transformers_version text,
    python_version       text,
    runner_version       text,
    weights              text NOT NULL DEFAULT '',
    first_seen           timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE results
    ADD COLUMN device_uuid          text,
    ADD COLUMN device_name          text,
    ADD COLUMN device_memory_bytes  bigint,
    ADD COLUMN driver_version       text,
    ADD COLUMN cuda_version         text,
    ADD COLUMN rocm_version         text,
    ADD COLUMN torch_version        text,
    ADD COLUMN transformers_version text,
    ADD COLUMN python_version       text,
    ADD COLUMN runner_version       text,
    ADD COLUMN env_id               bigint REFERENCES environments (id),
    ADD COLUMN latency_mean_ms      double precision,
    ADD COLUMN latency_stdev_ms     double precision,
    ADD COLUMN latency_cv           double precision,
    ADD COLUMN latency_p50_ms       double precision,
    ADD COLUMN latency_p90_ms       double precision,
    ADD COLUMN latency_p95_ms       double precision,
    ADD COLUMN latency_p99_ms       double precision,
    ADD COLUMN throughput_items_s   double precision,
    ADD COLUMN peak_memory_bytes    bigint,
    ADD COLUMN energy_j_per_item    double precision,
    ADD COLUMN avg_power_w          double precision,
    ADD COLUMN noisy                boolean;

-- Backfill: the results stored before this migration.
UPDATE results r SET
    device_uuid = f.device_uuid, device_name = f.device_name,
    device_memory_bytes = f.device_memory_bytes, driver_version = f.driver_version,
    cuda_version = f.cuda_version, rocm_version = f.rocm_version, torch_version = f.torch_version,
    transformers_version = f.transformers_version, python_version = f.python_version,
    runner_version = f.runner_version, latency_mean_ms = f.latency_mean_ms,
    latency_stdev_ms = f.latency_stdev_ms, latency_cv = f.latency_cv,
    latency_p50_ms = f.latency_p50_ms, latency_p90_ms = f.latency_p90_ms,
    latency_p95_ms = f.latency_p95_ms, latency_p99_ms = f.latency_p99_ms,
    throughput_items_s = f.throughput_items_s, peak_memory_bytes = f.peak_memory_bytes,
    energy_j_per_item = f.energy_j_per_item, avg_power_w = f.avg_power_w, noisy = f.noisy
FROM results r2
JOIN tasks t ON t.id = r2.task_id
LEFT JOIN devices dv ON dv.worker_id = r2.worker_id AND dv.backend = t.backend AND dv.idx = r2.device_index
CROSS JOIN LATERAL hfleet_result_fields(r2.env, r2.metrics, r2.weights, dv.name, dv.uuid,
                                        dv.memory_bytes) f
WHERE r2.id = r.id;

INSERT INTO environments (fingerprint, driver_version, cuda_version, rocm_version, torch_version,
                          transformers_version, python_version, runner_version, weights, first_seen)
SELECT DISTINCT ON (e.fp) e.fp, r.driver_version, r.cuda_version, r.rocm_version, r.torch_version,
       r.transformers_version, r.python_version, r.runner_version, left(r.weights, 32),
       min(r.received_at) OVER (PARTITION BY e.fp)
FROM results r
CROSS JOIN LATERAL (SELECT hfleet_env_fingerprint(r.driver_version, r.cuda_version, r.rocm_version,
                                                  r.torch_version, r.transformers_version,
                                                  r.python_version, r.runner_version,
                                                  left(r.weights, 32)) AS fp) e
WHERE num_nonnulls(r.driver_version, r.cuda_version, r.rocm_version, r.torch_version,
                   r.transformers_version, r.python_version, r.runner_version) > 0
ORDER BY e.fp, r.received_at;

UPDATE results r SET env_id = e.id
FROM environments e
WHERE num_nonnulls(r.driver_version, r.cuda_version, r.rocm_version, r.torch_version,
                   r.transformers_version, r.python_version, r.runner_version) > 0
  AND e.fingerprint = hfleet_env_fingerprint(r.driver_version, r.cuda_version, r.rocm_version,
                                             r.torch_version, r.transformers_version,
                                             r.python_version, r.runner_version, left(r.weights, 32));

-- ---- summaries kept by a trigger on tasks ----

-- Per (model_type, backend, precision) of kind test: the latest decisive
-- outcome (passed, failed, error, timeout), the latest skip or cancel, and
-- since when it has only been skipped or cancelled (the first such outcome
-- after the latest decisive one; NULL when a decisive outcome is the latest).
-- Times are tasks.finished_at: the coordinator's clock.
CREATE TABLE matrix_state (
    model_type         text NOT NULL,
    backend            text NOT NULL,
    precision          text NOT NULL,
    decisive_task_id   bigint,
    decisive_result_id bigint,
    decisive_status    text,
    decisive_at        timestamptz,
    other_task_id      bigint,
    other_result_id    bigint,
    other_status       text,
    other_at           timestamptz,
    skipped_since      timestamptz,
    PRIMARY KEY (model_type, backend, precision)
);

-- Per (model_type, backend, device_name, precision, batch_size, seq_len):
-- the latest passed benchmark (device_name '' when unknown).
CREATE TABLE benchmark_state (
    model_type  text NOT NULL,
    backend     text NOT NULL,
    device_name text NOT NULL,
    precision   text NOT NULL,
    batch_size  integer NOT NULL,
    seq_len     integer NOT NULL,
    task_id     bigint NOT NULL,
    result_id   bigint NOT NULL,
    finished_at timestamptz NOT NULL,
    PRIMARY KEY (model_type, backend, device_name, precision, batch_size, seq_len)
);

CREATE FUNCTION hfleet_tasks_summarise() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    dev text;
BEGIN
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
        SELECT coalesce(r.device_name, '') INTO dev FROM results r WHERE r.id = NEW.result_id;
        INSERT INTO benchmark_state AS b (model_type, backend, device_name, precision, batch_size,
                                          seq_len, task_id, result_id, finished_at)
        VALUES (NEW.model_type, NEW.backend, coalesce(dev, ''), NEW.precision, NEW.batch_size,
                NEW.seq_len, NEW.id, NEW.result_id, NEW.finished_at)
        ON CONFLICT (model_type, backend, device_name, precision, batch_size, seq_len) DO UPDATE SET
            task_id = EXCLUDED.task_id, result_id = EXCLUDED.result_id,
            finished_at = EXCLUDED.finished_at
        WHERE b.finished_at <= EXCLUDED.finished_at;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_summarise
    AFTER INSERT OR UPDATE OF state, finished_at, result_id ON tasks
    FOR EACH ROW
    WHEN (NEW.finished_at IS NOT NULL
          AND NEW.state IN ('passed', 'failed', 'error', 'timeout', 'skipped', 'cancelled'))
    EXECUTE FUNCTION hfleet_tasks_summarise();

-- Rebuilds both summaries from tasks and results (the backfill below; a bulk
-- load that ran with the trigger off calls it afterwards).
CREATE FUNCTION hfleet_rebuild_summaries() RETURNS void
LANGUAGE sql AS $$
    DELETE FROM matrix_state;
    DELETE FROM benchmark_state;
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
                                 task_id, result_id, finished_at)
    SELECT DISTINCT ON (t.model_type, t.backend, coalesce(r.device_name, ''), t.precision,
                        t.batch_size, t.seq_len)
           t.model_type, t.backend, coalesce(r.device_name, ''), t.precision, t.batch_size,
           t.seq_len, t.id, t.result_id, t.finished_at
    FROM tasks t JOIN results r ON r.id = t.result_id
    WHERE t.kind = 'benchmark' AND t.state = 'passed' AND t.finished_at IS NOT NULL
    ORDER BY t.model_type, t.backend, coalesce(r.device_name, ''), t.precision, t.batch_size,
             t.seq_len, t.finished_at DESC, t.id DESC;
$$;

-- One model's history, a series of benchmark runs, a job's tasks in order.
CREATE INDEX tasks_series_idx ON tasks (model_type, kind, backend, precision, batch_size, seq_len,
                                        finished_at)
    WHERE finished_at IS NOT NULL;
CREATE INDEX attempts_granted_idx ON attempts (granted_at);
CREATE INDEX results_env_idx ON results (env_id);

SELECT hfleet_rebuild_summaries();

-- ---- views ----

DROP VIEW compatibility_matrix;
DROP VIEW task_outcomes;

-- One row per task, with its deciding result (neither stale nor retried).
-- finished_at/started_at are the worker's clock (as before); received_at is
-- when the coordinator stored the result, task_finished_at when it decided
-- the outcome.
CREATE VIEW task_outcomes AS
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
       r.energy_j_per_item, r.avg_power_w, r.noisy
FROM tasks t
JOIN models m USING (model_type)
LEFT JOIN results r ON r.id = t.result_id;

-- The latest decisive test outcome per (model_type, backend, precision); a
-- skip or cancel shows only where nothing decisive ever ran.
CREATE VIEW compatibility_matrix AS
SELECT s.model_type, m.family, s.backend, s.precision,
       CASE WHEN s.decisive_at IS NOT NULL THEN s.decisive_status ELSE s.other_status END AS status,
       coalesce(r.reason, '') AS reason,
       t.job_id,
       t.id AS task_id,
       coalesce(s.decisive_at, s.other_at) AS finished_at,
       r.device_name,
       r.env_id,
       s.skipped_since
FROM matrix_state s
JOIN models m ON m.model_type = s.model_type
JOIN tasks t ON t.id = CASE WHEN s.decisive_at IS NOT NULL THEN s.decisive_task_id
                            ELSE s.other_task_id END
LEFT JOIN results r ON r.id = CASE WHEN s.decisive_at IS NOT NULL THEN s.decisive_result_id
                                   ELSE s.other_result_id END;

-- Every passed benchmark result; finished_at is tasks.finished_at.
CREATE VIEW benchmark_history AS
SELECT t.model_type, m.family, t.backend, r.device_name, t.precision, t.batch_size, t.seq_len,
       t.job_id, t.id AS task_id, t.finished_at,
       r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv, r.latency_p50_ms, r.latency_p90_ms,
       r.latency_p95_ms, r.latency_p99_ms, r.throughput_items_s, r.peak_memory_bytes,
       r.energy_j_per_item, r.avg_power_w, r.noisy, r.env_id
FROM tasks t
JOIN models m ON m.model_type = t.model_type
JOIN results r ON r.id = t.result_id
WHERE t.kind = 'benchmark' AND t.state = 'passed' AND t.finished_at IS NOT NULL;

-- The latest passed benchmark per (model_type, backend, device_name,
-- precision, batch_size, seq_len).
CREATE VIEW benchmark_latest AS
SELECT s.model_type, m.family, s.backend, r.device_name, s.precision, s.batch_size, s.seq_len,
       t.job_id, s.task_id, s.finished_at,
       r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv, r.latency_p50_ms, r.latency_p90_ms,
       r.latency_p95_ms, r.latency_p99_ms, r.throughput_items_s, r.peak_memory_bytes,
       r.energy_j_per_item, r.avg_power_w, r.noisy, r.env_id
FROM benchmark_state s
JOIN models m ON m.model_type = s.model_type
JOIN tasks t ON t.id = s.task_id
JOIN results r ON r.id = s.result_id;

-- Each series' latest run against the median p50 of its previous n passed
-- runs (those with a p50).  regressed: slower by more than threshold and by
-- more than three times the run's coefficient of variation, and not marked
-- noisy.
CREATE FUNCTION hfleet_regressions_rolling(n integer DEFAULT 5, threshold double precision DEFAULT 0.10)
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
           coalesce(b.runs > 0 AND NOT coalesce(l.noisy, false)
                    AND l.latency_p50_ms / nullif(b.median, 0) - 1
                        > greatest(threshold, 3 * coalesce(l.latency_cv, 0)), false),
           l.env_id, b.env_id
    FROM benchmark_latest l
    LEFT JOIN LATERAL (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY p.latency_p50_ms) AS median,
               count(*) AS runs, max(p.env_id) AS env_id
        FROM (SELECT r.latency_p50_ms, r.env_id
              FROM tasks t JOIN results r ON r.id = t.result_id
              WHERE t.model_type = l.model_type AND t.kind = 'benchmark'
                AND t.backend = l.backend AND t.precision = l.precision
                AND t.batch_size = l.batch_size AND t.seq_len = l.seq_len
                AND t.finished_at IS NOT NULL AND t.finished_at < l.finished_at
                AND t.state = 'passed' AND coalesce(r.device_name, '') = coalesce(l.device_name, '')
                AND r.latency_p50_ms IS NOT NULL
              ORDER BY t.finished_at DESC
              LIMIT greatest(n, 1)) p) b ON true
$$;

CREATE VIEW benchmark_regressions AS
SELECT * FROM hfleet_regressions_rolling(5, 0.10);

-- Two jobs side by side: one row per (model_type, backend, kind, precision,
-- batch_size, seq_len) present in either.
CREATE FUNCTION hfleet_compare_jobs(base bigint, cand bigint, threshold double precision DEFAULT 0.10)
RETURNS TABLE (model_type text, backend text, kind text, "precision" text, batch_size integer,
               seq_len integer, base_status text, cand_status text, change_kind text,
               base_reason text, cand_reason text, base_p50_ms double precision,
               cand_p50_ms double precision, change double precision, base_env_id bigint,
               cand_env_id bigint)
LANGUAGE sql STABLE AS $$
    WITH b AS (
        SELECT DISTINCT ON (t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len)
               t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len,
               t.state, r.reason, r.latency_p50_ms AS p50, r.latency_cv AS cv, r.noisy, r.env_id
        FROM tasks t LEFT JOIN results r ON r.id = t.result_id
        WHERE t.job_id = base
        ORDER BY t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len, t.id DESC),
    c AS (
        SELECT DISTINCT ON (t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len)
               t.model_type, t.backend, t.kind, t.precision, t.batch_size, t.seq_len,
               t.state, r.reason, r.latency_p50_ms AS p50, r.latency_cv AS cv, r.noisy, r.env_id
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
               greatest(threshold, 3 * coalesce(b.cv, 0), 3 * coalesce(c.cv, 0)) AS guard,
               coalesce(b.noisy, false) OR coalesce(c.noisy, false) AS noisy,
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
                WHEN j.change IS NULL THEN 'same'
                WHEN abs(j.change) > threshold AND j.noisy THEN 'noisy'
                WHEN j.change > j.guard THEN 'slower'
                WHEN j.base_p50 / nullif(j.cand_p50, 0) - 1 > j.guard THEN 'faster'
                WHEN abs(j.change) > threshold THEN 'noisy'
                ELSE 'same' END,
           j.base_reason, j.cand_reason, j.base_p50, j.cand_p50, j.change,
           j.base_env_id, j.cand_env_id
    FROM j
    ORDER BY j.model_type, j.backend, j.kind, j.precision, j.batch_size, j.seq_len
$$;

-- Latest figures of the same (model_type, precision, batch_size, seq_len) on
-- each (backend, device_name); speedup_vs_cpu = the cpu p50 / this p50
-- (the fastest cpu device where there are several).
CREATE VIEW cross_backend AS
SELECT l.model_type, l.family, l.precision, l.batch_size, l.seq_len, l.backend, l.device_name,
       l.job_id, l.task_id, l.finished_at, l.latency_p50_ms, l.throughput_items_s,
       l.peak_memory_bytes, l.energy_j_per_item, l.avg_power_w, l.noisy, l.env_id,
       cpu.p50 / nullif(l.latency_p50_ms, 0) AS speedup_vs_cpu
FROM benchmark_latest l
LEFT JOIN (SELECT s.model_type, s.precision, s.batch_size, s.seq_len, min(r.latency_p50_ms) AS p50
           FROM benchmark_state s JOIN results r ON r.id = s.result_id
           WHERE s.backend = 'cpu'
           GROUP BY 1, 2, 3, 4) cpu
  ON (cpu.model_type, cpu.precision, cpu.batch_size, cpu.seq_len)
   = (l.model_type, l.precision, l.batch_size, l.seq_len);

-- Per device and hour (UTC) between since and until: seconds busy with
-- leases (attempts, split at hour boundaries; a lease not yet ended counts
-- up to now), utilisation = busy_s / 3600 (above 1 when a device has
-- several slots), tasks leased in that hour, and the mean GPU utilisation
-- the heartbeats sampled.
CREATE FUNCTION hfleet_fleet_utilisation(since timestamptz, until timestamptz)
RETURNS TABLE (worker_id text, backend text, idx integer, device_name text, hour timestamptz,
               busy_s double precision, utilisation double precision, tasks bigint,
               avg_gpu_util_pct double precision)
LANGUAGE sql STABLE AS $$
    WITH a AS (
        SELECT a.worker_id, t.backend, di.idx, a.granted_at,
               coalesce(a.ended_at, now()) AS ended_at
        FROM attempts a
        JOIN tasks t ON t.id = a.task_id
        CROSS JOIN LATERAL unnest(coalesce(a.device_indices, ARRAY[a.device_index])) AS di (idx)
        WHERE a.granted_at >= since - interval '1 day' AND a.granted_at < until
          AND coalesce(a.ended_at, now()) > since),
    h AS (
        SELECT a.worker_id, a.backend, a.idx, hr.hour,
               EXTRACT(EPOCH FROM (least(a.ended_at, hr.hour + interval '1 hour')
                                   - greatest(a.granted_at, hr.hour))) AS busy,
               (a.granted_at >= hr.hour AND a.granted_at < hr.hour + interval '1 hour')::int AS started
        FROM a
        CROSS JOIN LATERAL generate_series(date_trunc('hour', greatest(a.granted_at, since), 'UTC'),
                                           least(a.ended_at, until), interval '1 hour') AS hr (hour)
        WHERE hr.hour < least(a.ended_at, until)),
    u AS (
        SELECT h.worker_id, h.backend, h.idx, h.hour, sum(h.busy) AS busy_s, sum(h.started) AS tasks
        FROM h GROUP BY 1, 2, 3, 4),
    tel AS (
        SELECT d.worker_id, d.backend, d.idx, date_trunc('hour', d.sampled_at, 'UTC') AS hour,
               avg(d.utilization_pct)::double precision AS util
        FROM device_telemetry d
        WHERE d.sampled_at >= since AND d.sampled_at < until
        GROUP BY 1, 2, 3, 4)
    SELECT coalesce(u.worker_id, tel.worker_id), coalesce(u.backend, tel.backend),
           coalesce(u.idx, tel.idx), dv.name, coalesce(u.hour, tel.hour),
           coalesce(u.busy_s, 0)::double precision, coalesce(u.busy_s, 0)::double precision / 3600,
           coalesce(u.tasks, 0), tel.util
    FROM u
    FULL JOIN tel ON (tel.worker_id, tel.backend, tel.idx, tel.hour) = (u.worker_id, u.backend, u.idx, u.hour)
    LEFT JOIN devices dv ON (dv.worker_id, dv.backend, dv.idx)
                          = (coalesce(u.worker_id, tel.worker_id), coalesce(u.backend, tel.backend),
                             coalesce(u.idx, tel.idx))
$$;

-- The last 30 days; older hours through hfleet_fleet_utilisation(since, until).
CREATE VIEW fleet_utilisation AS
SELECT * FROM hfleet_fleet_utilisation(now() - interval '30 days', now());

-- Per registered device: its state, quarantine, the latest health check,
-- failed checks in the last 24 hours, and the latest telemetry sample.
CREATE VIEW device_health AS
SELECT dv.worker_id, dv.backend, dv.idx, dv.name AS device_name, dv.state,
       q.worker_id IS NOT NULL AS quarantined, q.reason AS quarantine_reason,
       q.since AS quarantined_since,
       hc.ok AS last_check_ok, hc.checked_at AS last_check_at, hc.detail AS last_check_detail,
       (SELECT count(*) FROM device_health_checks f
        WHERE (f.worker_id, f.backend, f.idx) = (dv.worker_id, dv.backend, dv.idx)
          AND NOT f.ok AND f.checked_at > now() - interval '24 hours') AS failed_checks_24h,
       tel.temperature_c, tel.power_w, tel.utilization_pct, tel.memory_used_bytes,
       tel.sampled_at AS telemetry_at
FROM devices dv
LEFT JOIN device_quarantine q ON (q.worker_id, q.backend, q.idx) = (dv.worker_id, dv.backend, dv.idx)
LEFT JOIN LATERAL (SELECT c.ok, c.checked_at, c.detail FROM device_health_checks c
                   WHERE (c.worker_id, c.backend, c.idx) = (dv.worker_id, dv.backend, dv.idx)
                   ORDER BY c.checked_at DESC LIMIT 1) hc ON true
LEFT JOIN LATERAL (SELECT d.temperature_c, d.power_w, d.utilization_pct, d.memory_used_bytes,
                          d.sampled_at
                   FROM device_telemetry d
                   WHERE (d.worker_id, d.backend, d.idx) = (dv.worker_id, dv.backend, dv.idx)
                   ORDER BY d.sampled_at DESC LIMIT 1) tel ON true;

-- ---- the read-only role ----

-- Grants hfleet_reader what a reader needs (the views, the functions, the
-- result tables; never tokens).  Run by this migration when the role exists;
-- an administrator who creates the role later runs SELECT hfleet_reader_grants().
CREATE FUNCTION hfleet_reader_grants() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    GRANT SELECT ON task_outcomes, compatibility_matrix, benchmark_latest, benchmark_history,
                    benchmark_regressions, cross_backend, fleet_utilisation, device_health,
                    models, jobs, tasks, attempts, results, environments, workers, devices,
                    device_telemetry, device_quarantine, device_health_checks, drains,
                    matrix_state, benchmark_state, schema_migrations
        TO hfleet_reader;
    GRANT EXECUTE ON FUNCTION hfleet_compare_jobs(bigint, bigint, double precision),
                              hfleet_regressions_rolling(integer, double precision),
                              hfleet_fleet_utilisation(timestamptz, timestamptz)
        TO hfleet_reader;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hfleet_reader') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            CREATE ROLE hfleet_reader NOLOGIN;
        ELSE
            RAISE WARNING 'hfleet: the read-only role hfleet_reader does not exist and % may not create roles; an administrator should run: CREATE ROLE hfleet_reader NOLOGIN; then, as %: SELECT hfleet_reader_grants();',
                current_user, current_user;
            RETURN;
        END IF;
    END IF;
    PERFORM hfleet_reader_grants();
END
$$;
