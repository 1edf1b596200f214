#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fills a private database with years of nightly results and times every
reader's view against its target (see tests/bench/README.md).

A private PostgreSQL cluster (tests/integration/harness.py) gets the real
schema by starting hf-coordinator once against it (the migrations it
carries, the model registry it syncs); then, with the coordinator stopped,
INSERT ... SELECT generate_series writes one job per night: every registry
model on cpu, cuda and rocm, tests at three precisions and benchmarks at
three precisions and two batch sizes, a realistic mix of failures, errors,
timeouts and skips (a few model/backend pairs never supported), some
infrastructure errors retried, two CUDA device kinds, one ROCm, one CPU, a
software environment that changes every few months, and benchmark latencies
that drift, step with an environment change and carry noise.  The load runs
with triggers off (session_replication_role = replica) and then rebuilds the
summaries with hfleet_rebuild_summaries(), as a bulk load should; VACUUM
ANALYZE; then each view's query runs three times and the best time is
printed against its target.

usage: tests/bench/fill-results.py [--results N] [--build DIR] [--keep]
"""
import argparse
import math
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))

BACKENDS = ('cpu', 'cuda', 'rocm')
PRECISIONS = ('fp32', 'fp16', 'bf16')
BATCHES = (1, 8)


def psql(pg, sql, quiet=True):
    argv = ['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', pg.dir, '-p', str(pg.port),
            '-U', 'postgres', '-d', 'hfleet']
    out = subprocess.run(argv, input=sql, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError('psql failed: %s' % out.stderr.strip())
    return out.stdout.strip()


SETUP = r"""
SET session_replication_role = replica;
INSERT INTO workers (id, hostname, software_version, protocol_version) VALUES
  ('cpu-a', 'cpu-a', '0.12', 2), ('h200-a', 'h200-a', '0.12', 2),
  ('a100-a', 'a100-a', '0.12', 2), ('mi300-a', 'mi300-a', '0.12', 2);
INSERT INTO devices (worker_id, backend, idx, name, memory_bytes, driver, uuid) VALUES
  ('cpu-a', 'cpu', 0, 'Intel Xeon Platinum 8480+', 549755813888, '', ''),
  ('h200-a', 'cuda', 0, 'NVIDIA H200', 150754820096, '550.90.07', 'GPU-0a11'),
  ('h200-a', 'cuda', 1, 'NVIDIA H200', 150754820096, '550.90.07', 'GPU-0a12'),
  ('a100-a', 'cuda', 0, 'NVIDIA A100-SXM4-80GB', 85899345920, '535.54.03', 'GPU-0b11'),
  ('mi300-a', 'rocm', 0, 'AMD Instinct MI300X', 206158430208, '6.7.0', 'GPU-0c11');
-- A new software environment every 91 nights.
INSERT INTO environments (id, fingerprint, driver_version, cuda_version, rocm_version, torch_version,
                          transformers_version, python_version, runner_version, weights, first_seen)
SELECT e + 1, md5(e::text), '550.' || e, '12.' || (e %% 5), '6.' || (e %% 3), '2.' || e || '.0',
       '4.' || (30 + e) || '.0', '3.11.' || e, '0.' || (10 + e), 'random-init',
       timestamptz '2023-01-01' + (e * 91) * interval '1 day'
FROM generate_series(0, %(nights)d / 91) e;
SELECT setval('environments_id_seq', (SELECT max(id) FROM environments));
-- The cells of one night's job.
CREATE TABLE bench_cells AS
SELECT row_number() OVER (ORDER BY m.model_type, b.backend, k.kind, p.precision, k.batch) - 1 AS cell,
       m.model_type, b.backend, k.kind, p.precision, k.batch AS batch_size, 128 AS seq_len,
       abs(hashtext(m.model_type || b.backend)) %% 1000 AS h,
       (abs(hashtext(m.model_type)) %% 400 + 5) / 10.0 AS base_ms
FROM models m
CROSS JOIN (VALUES ('cpu'), ('cuda'), ('rocm')) b (backend)
CROSS JOIN (VALUES ('fp32'), ('fp16'), ('bf16')) p (precision)
CROSS JOIN (VALUES ('test', 1), ('benchmark', 1), ('benchmark', 8)) k (kind, batch)
WHERE m.active;
SELECT count(*) FROM bench_cells;
"""

# One chunk of nights: jobs, tasks, attempts and results.
CHUNK = r"""
SET session_replication_role = replica;
SET synchronous_commit = off;
BEGIN;
INSERT INTO jobs (id, name, submitter, state, spec, task_count, created_at, finished_at)
SELECT n + 1, 'nightly-' || to_char(timestamptz '2023-01-01' + n * interval '1 day', 'YYYY-MM-DD'),
       'ci', 'done', '{}', %(cells)d,
       timestamptz '2023-01-01 02:00' + n * interval '1 day',
       timestamptz '2023-01-01 02:00' + n * interval '1 day' + %(cells)d * interval '3 s'
FROM generate_series(%(lo)d, %(hi)d) n;
CREATE TEMP TABLE night_tasks ON COMMIT DROP AS
SELECT n::bigint * %(cells)d + c.cell + 1 AS id, n + 1 AS job_id, c.*, n,
       random() AS roll, random() AS noise, (n / 91) AS env,
       timestamptz '2023-01-01 02:00' + n * interval '1 day' + c.cell * interval '3 s' AS finished_at,
       CASE c.backend WHEN 'cpu' THEN 'cpu-a'
                      WHEN 'rocm' THEN 'mi300-a'
                      ELSE CASE WHEN (n + c.cell) %% 3 = 0 THEN 'a100-a' ELSE 'h200-a' END END AS worker_id,
       CASE WHEN c.backend = 'cuda' AND (n + c.cell) %% 3 = 1 THEN 1 ELSE 0 END AS device_index
FROM generate_series(%(lo)d, %(hi)d) n CROSS JOIN bench_cells c;
ALTER TABLE night_tasks ADD COLUMN state text, ADD COLUMN retried boolean;
UPDATE night_tasks SET
  state = CASE WHEN h < 40 THEN 'skipped'                          -- never supported here
               WHEN backend = 'cpu' AND precision = 'bf16' AND h < 300 THEN 'skipped'
               WHEN roll < 0.030 THEN 'failed'
               WHEN roll < 0.040 THEN 'error'
               WHEN roll < 0.045 THEN 'timeout'
               WHEN roll < 0.055 THEN 'skipped'
               WHEN roll < 0.056 THEN 'cancelled'
               ELSE 'passed' END,
  retried = roll > 0.98;
INSERT INTO tasks (id, job_id, model_type, backend, kind, batch_size, seq_len, precision, iterations,
                   warmup, timeout_s, state, attempt, worker_id, device_index, result_id, created_at,
                   finished_at)
SELECT id, job_id, model_type, backend, kind, batch_size, seq_len, precision, 20, 3, 600, state,
       CASE WHEN retried THEN 2 ELSE 1 END, worker_id, device_index,
       CASE WHEN state = 'cancelled' THEN NULL ELSE id END,
       finished_at - interval '90 s', finished_at
FROM night_tasks;
INSERT INTO attempts (task_id, attempt, worker_id, device_index, granted_at, ended_at, end_reason)
SELECT id, a, worker_id, device_index, finished_at - interval '60 s' * (3 - a), finished_at - interval '60 s' * (2 - a), 'result'
FROM night_tasks CROSS JOIN generate_series(1, 2) a
WHERE state <> 'cancelled' AND (a = 2 OR retried);
-- Retried infrastructure errors: the first attempt's result.
INSERT INTO results (id, task_id, attempt, status, reason, worker_id, device_index, started_at,
                     finished_at, stale, retried, received_at, device_name, env_id)
SELECT 4000000000000 + id, id, 1, 'error', 'runner exited with status 3 (infrastructure)', worker_id,
       device_index, finished_at - interval '150 s', finished_at - interval '120 s', false, true,
       finished_at - interval '120 s', NULL, NULL
FROM night_tasks WHERE retried AND state <> 'cancelled';
INSERT INTO results (id, task_id, attempt, status, reason, metrics, weights, worker_id, device_index,
                     started_at, finished_at, stale, received_at, device_uuid, device_name,
                     device_memory_bytes, driver_version, cuda_version, rocm_version, torch_version,
                     transformers_version, python_version, runner_version, env_id,
                     latency_mean_ms, latency_stdev_ms, latency_cv, latency_p50_ms, latency_p90_ms,
                     latency_p95_ms, latency_p99_ms, throughput_items_s, peak_memory_bytes,
                     energy_j_per_item, avg_power_w, noisy)
SELECT t.id, t.id, CASE WHEN t.retried THEN 2 ELSE 1 END, t.state,
       CASE t.state WHEN 'failed' THEN 'AssertionError: logits differ from the reference by 3.1e-2 (tolerance 1e-3)'
                    WHEN 'error' THEN 'RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB'
                    WHEN 'timeout' THEN 'timed out after 600 s'
                    WHEN 'skipped' THEN 'precision ' || t.precision || ' not supported on ' || t.backend
                    ELSE '' END,
       CASE WHEN f.p50 IS NULL THEN '{}'::jsonb
            ELSE jsonb_build_object('latency_ms', jsonb_build_object('p50', round(f.p50::numeric, 4),
                                    'mean', round((f.p50 * 1.02)::numeric, 4), 'cv', round(f.cv::numeric, 4)),
                                    'throughput_items_s', round((t.batch_size * 1000 / f.p50)::numeric, 2)) END,
       'random-init', t.worker_id, t.device_index,
       t.finished_at - interval '30 s', t.finished_at - interval '1 s', false, t.finished_at,
       d.uuid, d.name, d.memory_bytes, e.driver_version, e.cuda_version, e.rocm_version,
       e.torch_version, e.transformers_version, e.python_version, e.runner_version, e.id,
       f.p50 * 1.02, f.p50 * f.cv, f.cv, f.p50, f.p50 * 1.1, f.p50 * 1.15, f.p50 * 1.3,
       t.batch_size * 1000 / f.p50, CASE WHEN f.p50 IS NOT NULL THEN 1000000000 + t.h * 1000000 END,
       CASE WHEN t.backend = 'cuda' AND f.p50 IS NOT NULL THEN f.p50 * 0.35 / t.batch_size END,
       CASE WHEN t.backend = 'cuda' AND f.p50 IS NOT NULL THEN 350 + 100 * t.noise END,
       CASE WHEN f.p50 IS NOT NULL THEN f.cv > 0.05 END
FROM night_tasks t
JOIN devices d ON d.worker_id = t.worker_id AND d.backend = t.backend AND d.idx = t.device_index
JOIN environments e ON e.id = t.env + 1
CROSS JOIN LATERAL (
    SELECT CASE WHEN t.kind = 'benchmark' AND t.state = 'passed' THEN
                t.base_ms * t.batch_size ^ 0.7
                * CASE t.backend WHEN 'cpu' THEN 20 WHEN 'rocm' THEN 1.3 ELSE 1 END
                * CASE t.precision WHEN 'fp32' THEN 1.8 ELSE 1 END
                * CASE WHEN t.worker_id = 'a100-a' THEN 1.7 ELSE 1 END
                * (1 - 0.03 * t.env + 0.08 * (t.env %% 2))                 -- steps with the environment
                * (1 + 0.02 * (t.noise - 0.5)) END AS p50,
           0.005 + 0.04 * t.noise ^ 4 AS cv) f
WHERE t.state <> 'cancelled';
COMMIT;
"""

FINISH = r"""
SET session_replication_role = replica;
SELECT setval('jobs_id_seq', (SELECT max(id) FROM jobs));
SELECT setval('tasks_id_seq', (SELECT max(id) FROM tasks));
SELECT setval('results_id_seq', (SELECT max(id) FROM results));
INSERT INTO device_telemetry (worker_id, backend, idx, sampled_at, utilization_pct, memory_used_bytes,
                              temperature_c, power_w)
SELECT d.worker_id, d.backend, d.idx, s, 30 + 60 * random(), 1e10 * random(), 40 + 30 * random(),
       100 + 400 * random()
FROM devices d
CROSS JOIN generate_series(timestamptz '2023-01-01', timestamptz '2023-01-01' + %(nights)d * interval '1 day',
                           interval '10 min') s;
INSERT INTO device_health_checks (worker_id, backend, idx, ok, detail, duration_s, trigger, checked_at)
SELECT d.worker_id, d.backend, d.idx, random() > 0.01, 'sum of squares', 0.2, 'periodic', s
FROM devices d
CROSS JOIN generate_series(timestamptz '2023-01-01', timestamptz '2023-01-01' + %(nights)d * interval '1 day',
                           interval '1 hour') s;
INSERT INTO device_quarantine (worker_id, backend, idx, reason) VALUES ('a100-a', 'cuda', 0, 'bench: 3 infrastructure failures in a row');
DROP TABLE bench_cells;
"""

# (name, target ms or None, query); :M is the model, :J the last job, :T
# when it finished (the fill's "now").
QUERIES = [
    ('compatibility_matrix (all rows)', 100, "SELECT * FROM compatibility_matrix"),
    ('benchmark_history, one model, all backends/settings, 3 years', 20,
     "SELECT * FROM benchmark_history WHERE model_type = :M ORDER BY finished_at"),
    ('benchmark_history, one series (model, cuda, fp16, batch 1)', 20,
     "SELECT * FROM benchmark_history WHERE model_type = :M AND backend = 'cuda' AND precision = 'fp16'"
     " AND batch_size = 1 AND seq_len = 128 ORDER BY finished_at"),
    ('task_outcomes, one model, last 90 days', 20,
     "SELECT * FROM task_outcomes WHERE model_type = :M AND task_finished_at > :T - interval '90 days'"
     " ORDER BY task_finished_at"),
    ('task_outcomes, one job', 100, "SELECT * FROM task_outcomes WHERE job_id = :J"),
    ('benchmark_latest (all rows)', 100, "SELECT * FROM benchmark_latest"),
    ('benchmark_regressions (all series)', 1000, "SELECT * FROM benchmark_regressions"),
    ('benchmark_regressions, one model', 20, "SELECT * FROM benchmark_regressions WHERE model_type = :M"),
    ('hfleet_compare_jobs(last two nightly jobs)', 200,
     "SELECT * FROM hfleet_compare_jobs(:J - 1, :J)"),
    ('cross_backend (all rows)', 200, "SELECT * FROM cross_backend"),
    ('hfctl history, one model (its newest 50 outcomes)', 20,
     "SELECT h.task_id, h.job_id, h.backend, h.kind, h.precision, h.batch_size, h.seq_len, h.status,"
     " coalesce(r.reason, ''), coalesce(extract(epoch from r.received_at), 0), coalesce(h.device_name, ''),"
     " coalesce(r.worker_id, ''), h.latency_p50_ms, h.latency_p90_ms, h.latency_p99_ms, h.latency_cv,"
     " h.throughput_items_s, coalesce(h.noisy, false), coalesce(h.env_id, 0), coalesce(r.torch_version, ''),"
     " coalesce(r.transformers_version, '')"
     " FROM task_history h LEFT JOIN results r ON r.id = h.result_id WHERE h.model_type = :M"
     " AND ('' = '' OR h.backend = '') AND ('' = '' OR h.precision = '') AND ('' = '' OR h.kind = '')"
     " ORDER BY h.finished_at DESC, h.task_id DESC LIMIT 50"),
    ('hfctl history, one model, cuda fp16 benchmarks (newest 50)', 20,
     "SELECT h.*, r.reason, r.received_at, r.worker_id, r.torch_version, r.transformers_version"
     " FROM task_history h LEFT JOIN results r ON r.id = h.result_id WHERE h.model_type = :M"
     " AND h.backend = 'cuda' AND h.precision = 'fp16' AND h.kind = 'benchmark'"
     " ORDER BY h.finished_at DESC, h.task_id DESC LIMIT 50"),
    ('fleet_utilisation (last 30 days)', 100,
     "SELECT * FROM hfleet_fleet_utilisation(:T - interval '30 days', :T)"),
    ('fleet_utilisation (last 365 days)', 1000,
     "SELECT * FROM hfleet_fleet_utilisation(:T - interval '365 days', :T)"),
    ('device_health', 100, "SELECT * FROM device_health"),
]


def time_query(pg, sql, runs=3):
    """Best of runs, from EXPLAIN ANALYZE's execution time (server side,
    without shipping rows to psql), and the number of rows."""
    best, rows = None, None
    for _ in range(runs):
        out = psql(pg, 'EXPLAIN (ANALYZE, TIMING OFF) ' + sql)
        ms = float(re.search(r'Execution Time: ([0-9.]+) ms', out).group(1))
        plan_ms = float(re.search(r'Planning Time: ([0-9.]+) ms', out).group(1))
        m = re.search(r'actual rows=(\d+)', out)
        rows = int(m.group(1)) if m else None
        best = ms + plan_ms if best is None else min(best, ms + plan_ms)
    return best, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--results', type=int, default=10_000_000, help='results to store (default 10 million)')
    ap.add_argument('--build', default=os.environ.get('HF_BUILD_ROOT', os.path.join(HERE, '..', '..', 'build')),
                    help='the meson build directory with hf-coordinator')
    ap.add_argument('--keep', action='store_true', help='keep the cluster (its directory is printed)')
    a = ap.parse_args()
    os.environ['HF_BUILD_ROOT'] = os.path.abspath(a.build)
    import harness  # after HF_BUILD_ROOT: it reads it at import

    t_all = time.time()
    c = harness.Cluster()
    try:
        c.start_coordinator()   # applies the migrations, syncs the registry
        c.coordinator.stop()
        version = psql(c.pg, 'SELECT max(version) FROM schema_migrations')
        n_cells = int(psql(c.pg, 'SELECT count(*) * %d FROM models WHERE active'
                           % (len(BACKENDS) * len(PRECISIONS) * (1 + len(BATCHES)))))
        per_night = n_cells * 1.02           # about 2 % of tasks also have a retried result
        nights = max(2, math.ceil(a.results / per_night))
        got = int(psql(c.pg, SETUP % {'nights': nights}).splitlines()[-1])
        assert got == n_cells, (got, n_cells)
        print('schema version %s; %d cells a night, %d nights (%.1f years)' % (version, n_cells, nights,
                                                                             nights / 365.25), flush=True)
        t0 = time.time()
        chunk = 30
        for lo in range(0, nights, chunk):
            hi = min(nights, lo + chunk) - 1
            psql(c.pg, CHUNK % {'lo': lo, 'hi': hi, 'cells': n_cells})
            done = (hi + 1) / nights
            el = time.time() - t0
            print('  nights %d-%d stored (%.0f s, about %.0f s left)' % (lo, hi, el, el / done - el), flush=True)
        psql(c.pg, FINISH % {'nights': nights})
        print('filled in %.0f s; hfleet_rebuild_summaries() ...' % (time.time() - t0), flush=True)
        t1 = time.time()
        psql(c.pg, 'SELECT hfleet_rebuild_summaries()')
        print('summaries rebuilt in %.0f s; VACUUM ANALYZE ...' % (time.time() - t1), flush=True)
        t1 = time.time()
        psql(c.pg, 'VACUUM ANALYZE')
        counts = psql(c.pg, "SELECT (SELECT count(*) FROM results), (SELECT count(*) FROM tasks),"
                            " (SELECT count(*) FROM attempts), pg_size_pretty(pg_database_size('hfleet'))")
        print('VACUUM ANALYZE in %.0f s; results|tasks|attempts|size: %s' % (time.time() - t1, counts))
        sizes = psql(c.pg, "SELECT string_agg(relname || ' ' || pg_size_pretty(pg_total_relation_size(oid)), ', '"
                           " ORDER BY relname) FROM pg_class WHERE relname IN ('task_history', 'device_hours',"
                           " 'benchmark_runs', 'tasks', 'results', 'attempts')")
        print('sizes with indexes: %s' % sizes)
        model = psql(c.pg, "SELECT model_type FROM models WHERE active ORDER BY model_type LIMIT 1 OFFSET 100")
        job = psql(c.pg, 'SELECT max(id) FROM jobs')
        end = psql(c.pg, 'SELECT max(finished_at) FROM jobs')
        print('\n%-62s %10s %8s %8s  %s' % ('query (best of 3, server time)', 'ms', 'target', 'rows', ''))
        failed = 0
        for name, target, sql in QUERIES:
            sql = sql.replace(':M', "'%s'" % model).replace(':J', job).replace(':T', "timestamptz '%s'" % end)
            ms, rows = time_query(c.pg, sql)
            ok = target is None or ms <= target
            failed += not ok
            print('%-62s %10.2f %8s %8s  %s' % (name, ms, target or '-', rows, 'ok' if ok else 'OVER'),
                  flush=True)
        print('\nmodel %s, job %s; total %.0f s' % (model, job, time.time() - t_all))
        if a.keep:
            print('cluster kept: %s (psql -h %s -p %d -U postgres hfleet)' % (c.root, c.pg.dir, c.pg.port))
        return 1 if failed else 0
    finally:
        c.close(keep=a.keep)


if __name__ == '__main__':
    sys.exit(main())
