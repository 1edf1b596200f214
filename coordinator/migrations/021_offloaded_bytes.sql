-- SPDX-License-Identifier: MIT
-- hfleet schema, version 21: a benchmark whose model was larger than its one
-- GPU, run with its last blocks in host memory, says so to readers
-- (issue 14).
--
-- Such a run (worker/runners/hfleet_offload.py; docs/runner.md, "A model
-- larger than its one GPU") copies those blocks onto the GPU at every
-- forward, so its figures are mostly the copies over PCIe and are not
-- comparable with a model held on its device.  The runner reports the bytes
-- each forward copied as metrics.offloaded_bytes; results keeps them in a
-- column of their own, filled by hfleet_result_fields as the other readers'
-- columns are (a value of the wrong type or below zero is NULL), and
-- task_outcomes, benchmark_latest and cross_backend end with it: NULL for
-- a model held on its device.  benchmark_history (task_history) does not
-- carry it: a series' runs on one device are offloaded alike or not, as
-- the runner decides from the model's size and the device's memory.

ALTER TABLE results ADD COLUMN offloaded_bytes bigint;

-- The function gains a column: made again.  The result statement
-- (coordinator/db-results.c) reads its columns by name.
DROP FUNCTION hfleet_result_fields(jsonb, jsonb, text, text, text, bigint);

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
               avg_power_w double precision, noisy boolean, fingerprint text,
               offloaded_bytes bigint)
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
                                            left(weights, 32)) END,
           CASE WHEN v.f_offloaded >= 0 THEN v.f_offloaded END
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
            hfleet_json_bool(metrics, 'noisy') AS f_noisy,
            hfleet_json_bigint(metrics, 'offloaded_bytes') AS f_offloaded) v
$$;

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
       r.energy_j_per_item, r.avg_power_w, r.noisy, t.mode, r.offloaded_bytes
FROM tasks t
JOIN models m USING (model_type)
LEFT JOIN results r ON r.id = t.result_id;


CREATE OR REPLACE VIEW benchmark_latest AS
SELECT s.model_type, m.family, s.backend, r.device_name, s.precision, s.batch_size, s.seq_len,
       t.job_id, s.task_id, s.finished_at,
       r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv, r.latency_p50_ms, r.latency_p90_ms,
       r.latency_p95_ms, r.latency_p99_ms, r.throughput_items_s, r.peak_memory_bytes,
       r.energy_j_per_item, r.avg_power_w, r.noisy, r.env_id, s.mode, r.offloaded_bytes
FROM benchmark_state s
JOIN models m ON m.model_type = s.model_type
JOIN tasks t ON t.id = s.task_id
JOIN results r ON r.id = s.result_id;


CREATE OR REPLACE VIEW cross_backend AS
SELECT l.model_type, l.family, l.precision, l.batch_size, l.seq_len, l.backend, l.device_name,
       l.job_id, l.task_id, l.finished_at, l.latency_p50_ms, l.throughput_items_s,
       l.peak_memory_bytes, l.energy_j_per_item, l.avg_power_w, l.noisy, l.env_id,
       cpu.p50 / nullif(l.latency_p50_ms, 0) AS speedup_vs_cpu, l.mode, l.offloaded_bytes
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
