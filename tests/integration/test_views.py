#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The readers' schema (migrations 008 and 009, docs/database.md) filled through real
jobs: a private PostgreSQL, hf-coordinator, one hf-worker running
views_runner.py (real sums of squares, real timings in the benchmark shape
of docs/runner.md), three nightly-like jobs:

  A  everything passes;
  B  bert is skipped, gpt2 is made ten times slower, t5's test fails, t5's
     benchmark gets random sleeps (real noise), the runner version changes,
     and albert reports values of the wrong types and sizes;
  C  everything passes again.

Every view's figures are checked against what was stored, and the
read-only role hfleet_reader is checked with psql as a login member of it.
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'views_runner.py')
MODELS = 'bert,gpt2,t5,albert'


class ViewsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = c = harness.Cluster()
        try:
            cls.control = os.path.join(c.root, 'control.json')
            cls.set_control({})
            c.start_coordinator()
            c.start_worker('w1', slots=2, runner_path=RUNNER, runner_args='--control ' + cls.control)
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 1, 30, 'the worker to register')
            cls.jobs = []
            for ctl in ({'no_device_name': ['gpt2']},
                        {'skip': ['bert'], 'slow': {'gpt2': 10}, 'fail': ['t5'], 'jitter': ['t5'],
                         'hostile': ['albert'], 'runner_version': '2.0', 'no_device_name': ['gpt2']},
                        {'no_device_name': ['gpt2'], 'runner_version': '2.0', 'offloaded': {'bert': 123456789}}):
                cls.set_control(ctl)
                out = c.hfctl_json('submit', '--models', MODELS, '--backends', 'cpu', '--kind', 'test,benchmark',
                                   '--precision', 'fp32,fp16', '--seq-len', '30000', '--iterations', '30',
                                   '--warmup', '2', '--name', 'nightly-%d' % len(cls.jobs))
                job = int(out['job_id'])
                c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 240,
                           'job %d to finish' % job)
                cls.jobs.append(job)
        except BaseException:
            c.dump_logs()
            c.close(keep=harness.keep_files())
            raise

    @classmethod
    def set_control(cls, ctl):
        tmp = cls.control + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(ctl, f)
        os.rename(tmp, cls.control)

    @classmethod
    def tearDownClass(cls):
        if harness.keep_files():
            cls.c.dump_logs()
        cls.c.close(keep=harness.keep_files())

    def q(self, sql):
        return self.c.pg.rows(sql)

    def test_new_columns_are_the_json_the_runner_wrote(self):
        # Every benchmark figure of every deciding result equals its JSON.
        bad = self.q("""
            SELECT r.id FROM results r JOIN tasks t ON t.result_id = r.id
            WHERE t.kind = 'benchmark' AND t.state = 'passed' AND t.model_type <> 'albert' AND (
                r.latency_p50_ms IS DISTINCT FROM (r.metrics->'latency_ms'->>'p50')::float8
             OR r.latency_mean_ms IS DISTINCT FROM (r.metrics->'latency_ms'->>'mean')::float8
             OR r.latency_stdev_ms IS DISTINCT FROM (r.metrics->'latency_ms'->>'stdev')::float8
             OR r.latency_cv IS DISTINCT FROM (r.metrics->'latency_ms'->>'cv')::float8
             OR r.latency_p90_ms IS DISTINCT FROM (r.metrics->'latency_ms'->>'p90')::float8
             OR r.latency_p95_ms IS DISTINCT FROM (r.metrics->'latency_ms'->>'p95')::float8
             OR r.latency_p99_ms IS DISTINCT FROM (r.metrics->'latency_ms'->>'p99')::float8
             OR r.throughput_items_s IS DISTINCT FROM (r.metrics->>'throughput_items_s')::float8
             OR r.noisy IS DISTINCT FROM (r.metrics->>'noisy')::boolean
             OR r.peak_memory_bytes IS NOT NULL OR r.latency_p50_ms IS NULL)""")
        self.assertEqual(bad, [])
        n = self.q("SELECT count(*) FROM results WHERE latency_p50_ms > 0")[0][0]
        self.assertGreaterEqual(int(n), 3 * 2 * 3 - 2)   # bert's benchmarks skipped in job B
        # Versions from env; device identity from env, or from the devices row.
        rows = self.q("""
            SELECT DISTINCT t.model_type = 'gpt2', r.device_name, r.device_uuid,
                   r.device_memory_bytes, r.python_version, r.runner_version, r.torch_version IS NULL
            FROM results r JOIN tasks t ON t.id = r.task_id
            WHERE t.model_type <> 'albert' AND r.status <> 'skipped' ORDER BY 1, 6""")
        dev = self.q("SELECT name, coalesce(nullif(uuid, ''), '-'), memory_bytes FROM devices"
                     " WHERE worker_id = 'w1' AND backend = 'cpu' AND idx = 0")[0]
        py = '%d.%d.%d' % sys.version_info[:3]
        self.assertIn(['f', 'views-cpu', 'CPU-views-0', str(1 << 30), py, '1.0', 't'], rows)
        self.assertIn(['f', 'views-cpu', 'CPU-views-0', str(1 << 30), py, '2.0', 't'], rows)
        gpt2 = [r for r in rows if r[0] == 't']
        self.assertTrue(gpt2)
        for r in gpt2:
            self.assertEqual(r[1], dev[0] or '')
            self.assertEqual(r[3], dev[2] if dev[2] != '0' else '')

    def test_hostile_values_are_null_and_bounded(self):
        rows = self.q("""
            SELECT r.status, length(r.device_name),
                   r.device_memory_bytes IS NOT DISTINCT FROM (SELECT nullif(memory_bytes, 0) FROM devices
                       WHERE worker_id = 'w1' AND backend = 'cpu' AND idx = 0), r.python_version IS NULL,
                   r.torch_version IS NULL, r.transformers_version IS NULL, r.driver_version IS NULL,
                   r.runner_version IS NULL, r.latency_p50_ms IS NULL, r.latency_p90_ms, r.latency_p95_ms,
                   r.latency_p99_ms IS NULL, r.latency_cv IS NULL, r.throughput_items_s IS NULL,
                   r.peak_memory_bytes IS NULL, r.noisy IS NULL, r.energy_j_per_item IS NULL,
                   r.avg_power_w, r.offloaded_bytes IS NULL
            FROM results r JOIN tasks t ON t.id = r.task_id
            WHERE t.model_type = 'albert' AND t.job_id = %d""" % self.jobs[1])
        self.assertEqual(len(rows), 4)
        for r in rows:
            self.assertEqual(r[0], 'passed')
            self.assertEqual(r[1], '200')
            self.assertEqual(r[2:9], ['t'] * 7)
            self.assertEqual(float(r[9]), 1e308)
            self.assertEqual(float(r[10]), 0.0)
            self.assertEqual(r[11:17], ['t'] * 6)
            self.assertEqual(float(r[17]), 9.5e18)
            self.assertEqual(r[18], 't')   # offloaded_bytes -5: below zero is NULL
        # Nothing of it reached an environment row: no version survived.
        self.assertEqual(self.q("SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id"
                                " WHERE t.model_type = 'albert' AND t.job_id = %d AND r.env_id IS NOT NULL"
                                % self.jobs[1]), [['0']])

    def test_environments_name_what_changed(self):
        envs = self.q("SELECT runner_version, weights, length(fingerprint) FROM environments ORDER BY id")
        self.assertEqual([e[0] for e in envs], ['1.0', '2.0'])
        self.assertEqual({(e[1], e[2]) for e in envs}, {('random-init', '64')})
        per_job = self.q("""SELECT t.job_id, count(DISTINCT r.env_id) FROM tasks t JOIN results r ON r.id = t.result_id
                            WHERE t.model_type <> 'albert' AND t.state <> 'skipped' GROUP BY 1 ORDER BY 1""")
        self.assertEqual([p[1] for p in per_job], ['1', '1', '1'])

    def test_matrix_has_precision_and_a_skip_never_hides_a_pass(self):
        a, b, c = self.jobs
        rows = {(r[0], r[1]): r[2:] for r in self.q(
            "SELECT model_type, precision, status, job_id, skipped_since IS NOT NULL, reason, task_id"
            " FROM compatibility_matrix WHERE backend = 'cpu' ORDER BY 1, 2")}
        self.assertEqual(sorted(rows), [(m, p) for m in sorted(MODELS.split(',')) for p in ('fp16', 'fp32')])
        for p in ('fp16', 'fp32'):
            # bert passed in A and C, skipped in B: C's pass, nothing skipped since.
            self.assertEqual(rows[('bert', p)][:3], ['passed', str(c), 'f'])
            self.assertEqual(rows[('t5', p)][:3], ['passed', str(c), 'f'])
        # Between B and C the matrix showed bert's pass of A, skipped since B:
        # the same rule, asked of the summary rebuilt without job C (rolled back).
        out = self.c.pg.psql("""
            BEGIN;
            UPDATE tasks SET finished_at = NULL WHERE job_id = %d AND kind = 'test';
            SELECT hfleet_rebuild_summaries();
            SELECT json_agg(json_build_array(model_type, precision, status, job_id::text,
                                             CASE WHEN skipped_since IS NOT NULL THEN 't' ELSE 'f' END, reason))
            FROM compatibility_matrix;
            ROLLBACK;""" % c).splitlines()[-1]
        before = {(r[0], r[1]): r[2:] for r in json.loads(out)}
        self.assertEqual(before[('bert', 'fp32')][:3], ['passed', str(a), 't'])
        self.assertEqual(before[('t5', 'fp32')][0], 'failed')
        self.assertIn('sum of squares check failed', before[('t5', 'fp32')][3])
        self.assertEqual(before[('t5', 'fp32')][1], str(b))

    def test_trigger_summary_equals_a_rebuild(self):
        live = self.q("SELECT * FROM compatibility_matrix ORDER BY 1, 3, 4")
        bench = self.q("SELECT * FROM benchmark_latest ORDER BY 1, 3, 4, 5, 6, 7")
        rebuilt = self.c.pg.psql("""
            CREATE TEMP TABLE m1 AS SELECT * FROM compatibility_matrix;
            CREATE TEMP TABLE b1 AS SELECT * FROM benchmark_latest;
            CREATE TEMP TABLE r1 AS SELECT * FROM benchmark_runs;
            CREATE TEMP TABLE h1 AS SELECT * FROM task_history;
            CREATE TEMP VIEW dh AS SELECT worker_id, backend, idx, hour, round(busy_s::numeric, 6) AS busy_s,
                                          tasks, round(util_sum::numeric, 3) AS util_sum, util_samples
                                   FROM device_hours;
            CREATE TEMP TABLE d1 AS SELECT * FROM dh;
            BEGIN;
            SELECT hfleet_rebuild_summaries();
            SELECT (SELECT count(*) FROM ((SELECT * FROM m1 EXCEPT ALL SELECT * FROM compatibility_matrix)
                                          UNION ALL (SELECT * FROM compatibility_matrix EXCEPT ALL SELECT * FROM m1)) x)
                || ' ' ||
                   (SELECT count(*) FROM ((SELECT * FROM b1 EXCEPT ALL SELECT * FROM benchmark_latest)
                                          UNION ALL (SELECT * FROM benchmark_latest EXCEPT ALL SELECT * FROM b1)) y)
                || ' ' ||
                   (SELECT count(*) FROM ((SELECT * FROM r1 EXCEPT ALL SELECT * FROM benchmark_runs)
                                          UNION ALL (SELECT * FROM benchmark_runs EXCEPT ALL SELECT * FROM r1)) z)
                || ' ' || (SELECT count(*) FROM benchmark_runs)
                || ' ' ||
                   (SELECT count(*) FROM ((SELECT * FROM h1 EXCEPT ALL SELECT * FROM task_history)
                                          UNION ALL (SELECT * FROM task_history EXCEPT ALL SELECT * FROM h1)) h)
                || ' ' || (SELECT count(*) FROM task_history)
                || ' ' ||
                   (SELECT count(*) FROM ((SELECT * FROM d1 EXCEPT ALL SELECT * FROM dh)
                                          UNION ALL (SELECT * FROM dh EXCEPT ALL SELECT * FROM d1)) d)
                || ' ' || (SELECT count(*) FROM device_hours);
            ROLLBACK;""").splitlines()[-1]
        # benchmark_runs: 4 models x 2 precisions x 3 jobs, less bert's 2
        # skipped runs; task_history: every task of the 3 jobs (16 each).
        self.assertEqual(rebuilt.split()[:6], ['0', '0', '0', '22', '0', '48'])
        # device_hours: the same hours (sums to the microsecond: the trigger
        # adds in another order than the rebuild).
        self.assertEqual(rebuilt.split()[6], '0')
        self.assertGreater(int(rebuilt.split()[7]), 0)
        self.assertEqual(len(live), 8)
        # albert's hostile device name in job B made a series of its own.
        self.assertEqual(len(bench), 10)

    def test_task_history_is_every_decided_task_with_its_figures(self):
        # One row per decided task, the figures of its deciding result.
        bad = self.q("""
            SELECT t.id FROM tasks t LEFT JOIN results r ON r.id = t.result_id
            FULL JOIN task_history h ON h.task_id = t.id
            WHERE h.task_id IS NULL OR t.id IS NULL
               OR (h.job_id, h.model_type, h.backend, h.kind, h.precision, h.batch_size, h.seq_len,
                   h.status, h.finished_at)
                  IS DISTINCT FROM (t.job_id, t.model_type, t.backend, t.kind, t.precision, t.batch_size,
                                    t.seq_len, t.state, t.finished_at)
               OR (h.result_id, h.device_name, h.env_id, h.latency_p50_ms, h.latency_p99_ms,
                   h.throughput_items_s, h.noisy)
                  IS DISTINCT FROM (r.id, r.device_name, r.env_id, r.latency_p50_ms, r.latency_p99_ms,
                                    r.throughput_items_s, r.noisy)""")
        self.assertEqual(bad, [])
        self.assertEqual(self.q("SELECT count(*) FROM task_history")[0][0], str(16 * len(self.jobs)))
        # benchmark_history reads it: the same rows as tasks joined to results.
        self.assertEqual(self.q("""
            SELECT count(*) FROM ((SELECT * FROM benchmark_history
                                   EXCEPT ALL
                                   SELECT t.model_type, m.family, t.backend, r.device_name, t.precision,
                                          t.batch_size, t.seq_len, t.job_id, t.id, t.finished_at,
                                          r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv,
                                          r.latency_p50_ms, r.latency_p90_ms, r.latency_p95_ms,
                                          r.latency_p99_ms, r.throughput_items_s, r.peak_memory_bytes,
                                          r.energy_j_per_item, r.avg_power_w, r.noisy, r.env_id, t.mode
                                   FROM tasks t JOIN models m USING (model_type)
                                   JOIN results r ON r.id = t.result_id
                                   WHERE t.kind = 'benchmark' AND t.state = 'passed')) x"""), [['0']])
        self.assertEqual(self.q("SELECT count(*) FROM benchmark_history"), [['22']])
        # A task queued again (as hfctl retry does) leaves the history until
        # it is decided again; rolled back.
        out = self.c.pg.psql("""
            BEGIN;
            UPDATE tasks SET state = 'queued', worker_id = NULL, device_index = NULL, result_id = NULL,
                             finished_at = NULL
            WHERE job_id = %d AND model_type = 'gpt2' AND kind = 'benchmark';
            SELECT count(*) FROM task_history WHERE job_id = %d AND model_type = 'gpt2';
            UPDATE tasks SET state = 'cancelled', finished_at = now()
            WHERE job_id = %d AND model_type = 'gpt2' AND kind = 'benchmark';
            SELECT string_agg(status, ',' ORDER BY task_id) FROM task_history
            WHERE job_id = %d AND model_type = 'gpt2';
            ROLLBACK;""" % ((self.jobs[0],) * 4)).splitlines()
        self.assertEqual(out[0], '2')    # gpt2's two tests of job A stay
        self.assertEqual(out[1], 'passed,passed,cancelled,cancelled')

    def test_device_hours_are_the_real_leases(self):
        # Every lease of the three jobs has ended: device_hours holds all of
        # their time and count, and fleet_utilisation adds nothing running.
        got = self.q("SELECT sum(tasks), round(sum(busy_s)::numeric, 3) FROM device_hours"
                     " WHERE (worker_id, backend, idx) = ('w1', 'cpu', 0)")
        want = self.q("SELECT count(*), round(sum(EXTRACT(EPOCH FROM ended_at - granted_at)), 3)"
                      " FROM attempts WHERE worker_id = 'w1' AND ended_at IS NOT NULL")
        self.assertEqual(got, want)
        self.assertEqual(self.q("SELECT count(*) FROM attempts WHERE ended_at IS NULL"), [['0']])
        # The hours are whole UTC hours, and each holds what the leases
        # granted in it and their seconds within it.
        rows = self.q("""
            SELECT d.hour, d.tasks, round(d.busy_s::numeric, 3),
                   (SELECT count(*) FROM attempts a WHERE date_trunc('hour', a.granted_at, 'UTC') = d.hour),
                   (SELECT round(coalesce(sum(EXTRACT(EPOCH FROM least(a.ended_at, d.hour + interval '1 hour')
                                                       - greatest(a.granted_at, d.hour))), 0), 3)
                    FROM attempts a WHERE a.granted_at < d.hour + interval '1 hour' AND a.ended_at > d.hour)
            FROM device_hours d WHERE (worker_id, backend, idx) = ('w1', 'cpu', 0)""")
        self.assertTrue(rows)
        for hour, tasks, busy, want_tasks, want_busy in rows:
            self.assertEqual((tasks, busy), (want_tasks, want_busy), hour)
        fleet = self.q("SELECT sum(tasks), round(sum(busy_s)::numeric, 3) FROM fleet_utilisation"
                       " WHERE (worker_id, backend, idx) = ('w1', 'cpu', 0)")
        self.assertEqual(fleet, want)

    def test_lease_hours_split_at_utc_hour_boundaries(self):
        # Leases with chosen times, stored as the coordinator stores them
        # (one already ended, one ended by an UPDATE, one running), in a
        # session whose time zone is half an hour off UTC; rolled back.
        task = self.q("SELECT min(id) FROM tasks WHERE backend = 'cpu'")[0][0]
        out = self.c.pg.psql("""
            BEGIN;
            SET LOCAL TimeZone = 'Asia/Kolkata';
            INSERT INTO attempts (task_id, attempt, worker_id, device_index, device_indices, granted_at,
                                  ended_at, end_reason) VALUES
              (%(t)s, 101, 'wx', 0, '{0,1}', '2020-01-01 09:40:00Z', '2020-01-01 11:10:00Z', 'result'),
              (%(t)s, 102, 'wx', 0, NULL, '2020-01-01 10:59:30Z', NULL, NULL),
              (%(t)s, 103, 'wx', 0, NULL, '2020-01-01 12:00:00Z', '2020-01-01 12:00:00Z', 'result'),
              (%(t)s, 104, 'wy', 0, NULL, now() - interval '90 minutes', NULL, NULL);
            UPDATE attempts SET ended_at = '2020-01-01 11:00:30Z', end_reason = 'result'
            WHERE task_id = %(t)s AND attempt = 102;
            INSERT INTO device_telemetry (worker_id, backend, idx, sampled_at, utilization_pct) VALUES
              ('wx', 'cpu', 0, '2020-01-01 09:10:00Z', 20), ('wx', 'cpu', 0, '2020-01-01 09:50:00Z', 40),
              ('wx', 'cpu', 0, '2020-01-01 10:05:00Z', NULL);
            CREATE TEMP TABLE f AS
            SELECT worker_id || '/' || idx || '/' || to_char(hour AT TIME ZONE 'UTC', 'HH24:MI') AS k,
                   busy_s, tasks, avg_gpu_util_pct
            FROM hfleet_fleet_utilisation('2020-01-01 09:30:00Z', '2020-01-01 13:00:00Z');
            SELECT json_object_agg(k, json_build_array(busy_s, tasks, avg_gpu_util_pct)) FROM f;
            SELECT json_agg(json_build_array(busy_s, tasks))
            FROM hfleet_fleet_utilisation(now() - interval '3 hours', now() + interval '1 hour')
            WHERE worker_id = 'wy';
            SELECT count(*) FROM device_hours WHERE worker_id = 'wy';
            CREATE TEMP TABLE before AS SELECT * FROM device_hours WHERE worker_id = 'wx';
            SELECT hfleet_rebuild_summaries();
            SELECT count(*) FROM ((SELECT * FROM before EXCEPT ALL SELECT * FROM device_hours WHERE worker_id = 'wx')
                                  UNION ALL (SELECT * FROM device_hours WHERE worker_id = 'wx'
                                             EXCEPT ALL SELECT * FROM before)) x;
            ROLLBACK;""" % {'t': task}).splitlines()
        out = [line for line in out if line]   # the rebuild's void is an empty line
        hours = json.loads(out[-4])
        self.assertEqual(hours, {
            # 09:40-11:10 on devices 0 and 1; 10:59:30-11:00:30 on 0; 12:00-12:00 on 0.
            'wx/0/09:00': [1200, 1, 30], 'wx/1/09:00': [1200, 1, None],
            'wx/0/10:00': [3630, 1, None], 'wx/1/10:00': [3600, 0, None],
            'wx/0/11:00': [630, 0, None], 'wx/1/11:00': [600, 0, None],
            'wx/0/12:00': [0, 1, None]})
        # The running lease counts up to now, split the same way, and is not
        # in device_hours until it ends.
        running = json.loads(out[-3])
        self.assertIn(len(running), (2, 3))
        self.assertAlmostEqual(sum(r[0] for r in running), 5400, places=3)
        self.assertEqual(sum(r[1] for r in running), 1)
        self.assertEqual(out[-2], '0')
        # The triggers' sums equal a rebuild's.
        self.assertEqual(out[-1], '0')

    def test_benchmark_latest_and_history(self):
        a, b, c = self.jobs
        latest = {(r[0], r[1]): r[2:] for r in self.q(
            "SELECT model_type, precision, job_id, latency_p50_ms, device_name, batch_size, seq_len"
            " FROM benchmark_latest WHERE backend = 'cpu'")}
        for p in ('fp16', 'fp32'):
            self.assertEqual(latest[('gpt2', p)][0], str(c))
            self.assertEqual(latest[('bert', p)][0], str(c))
            self.assertEqual(latest[('bert', p)][2:], ['views-cpu', '1', '30000'])
        # The history holds every passed run, in the coordinator's order, and
        # the latest is its last.
        hist = self.q("SELECT job_id, latency_p50_ms FROM benchmark_history WHERE model_type = 'gpt2'"
                      " AND precision = 'fp32' ORDER BY finished_at")
        self.assertEqual([h[0] for h in hist], [str(a), str(b), str(c)])
        self.assertEqual(hist[-1][1], latest[('gpt2', 'fp32')][1])
        self.assertGreater(float(hist[1][1]), 2.5 * float(hist[0][1]))   # made ten times slower
        bert = self.q("SELECT job_id FROM benchmark_history WHERE model_type = 'bert' AND precision = 'fp32'"
                      " ORDER BY finished_at")
        self.assertEqual([h[0] for h in bert], [str(a), str(c)])
        # A run with blocks in host memory says so (C's bert), every other NULL.
        for view in ('benchmark_latest', 'cross_backend', 'task_outcomes'):
            rows = self.q("SELECT model_type, job_id, offloaded_bytes FROM %s WHERE offloaded_bytes IS NOT NULL"
                          " ORDER BY 2, 1" % view)
            self.assertEqual({(r[0], r[1], r[2]) for r in rows}, {('bert', str(c), '123456789')}, view)
            self.assertEqual(len(rows), 2, view)   # fp16 and fp32

    def t5_benchmarks(self):
        """t5's benchmark runs (the jittered one in B): what a failure shows."""
        return self.q("SELECT t.job_id, t.precision, r.latency_p50_ms, r.latency_cv, r.noisy"
                      " FROM tasks t JOIN results r ON r.id = t.result_id WHERE t.model_type = 't5'"
                      " AND t.kind = 'benchmark' ORDER BY t.job_id")

    def test_compare_flags_the_made_slowdown_and_the_new_failure_not_noise(self):
        a, b, c = self.jobs
        rows = {(r[0], r[1], r[2]): r[3:] for r in self.q(
            "SELECT model_type, kind, precision, change_kind, base_status, cand_status, change, cand_reason,"
            " base_env_id = cand_env_id FROM hfleet_compare_jobs(%d, %d)" % (a, b))}
        self.assertEqual(len(rows), 16)
        for p in ('fp16', 'fp32'):
            self.assertEqual(rows[('gpt2', 'benchmark', p)][0], 'slower', self.q(
                "SELECT t.job_id, t.precision, r.latency_p50_ms, r.latency_cv, r.noisy, r.metrics->'latency_ms'"
                " FROM tasks t JOIN results r ON r.id = t.result_id WHERE t.model_type = 'gpt2'"
                " AND t.kind = 'benchmark'"))
            self.assertGreater(float(rows[('gpt2', 'benchmark', p)][3]), 1.5)
            self.assertEqual(rows[('gpt2', 'benchmark', p)][5], 'f')    # the environment changed too
            self.assertEqual(rows[('t5', 'test', p)][:3], ['new-failure', 'passed', 'failed'])
            self.assertIn('on purpose', rows[('t5', 'test', p)][4])
            self.assertIn(rows[('t5', 'benchmark', p)][0], ('same', 'noisy', 'faster'), self.t5_benchmarks())
            self.assertEqual(rows[('bert', 'test', p)][1:3], ['passed', 'skipped'])
        back = {(r[0], r[1], r[2]): r[3] for r in self.q(
            "SELECT model_type, kind, precision, change_kind FROM hfleet_compare_jobs(%d, %d)" % (b, c))}
        for p in ('fp16', 'fp32'):
            self.assertEqual(back[('t5', 'test', p)], 'fixed')
            self.assertEqual(back[('gpt2', 'benchmark', p)], 'faster', self.q(
                "SELECT t.job_id, r.latency_p50_ms, r.latency_cv, r.noisy FROM tasks t JOIN results r"
                " ON r.id = t.result_id WHERE t.model_type = 'gpt2' AND t.kind = 'benchmark'"))
        # A job compared with itself: nothing changed.
        same = self.q("SELECT DISTINCT change_kind FROM hfleet_compare_jobs(%d, %d)" % (a, a))
        self.assertEqual(same, [['same']])
        # Absent on one side.
        self.assertEqual(self.q("SELECT DISTINCT change_kind FROM hfleet_compare_jobs(%d, 0)" % a), [['missing']])
        self.assertEqual(self.q("SELECT DISTINCT change_kind FROM hfleet_compare_jobs(0, %d)" % a), [['new']])

    def test_one_verdict_rule(self):
        # hfleet_benchmark_verdict (migration 010): beyond max(threshold,
        # 3 cv of either side) is a change, within it but beyond the
        # threshold is noise.  The first case is the H200's bert at batch 1.
        cases = [((4.99, 9.39, 0.115, 0.023, 0.10), 'slower'),
                 ((9.39, 4.99, 0.023, 0.115, 0.10), 'faster'),
                 ((5.0, 6.0, 0.10, 0.01, 0.10), 'noisy'),    # +20 % < guard 30 %
                 ((5.0, 5.4, 0.01, 0.01, 0.10), 'same'),     # +8 % < threshold
                 ((5.0, 5.6, 0.01, 0.01, 0.10), 'slower'),   # +12 % > 10 %
                 ((5.0, None, 0.01, 0.01, 0.10), '')]
        for (b, c, bcv, ccv, t), want in cases:
            got = self.c.pg.psql('SELECT hfleet_benchmark_verdict(%s, %s, %s, %s, %s)' % (
                b, 'NULL' if c is None else c, bcv, ccv, t))
            self.assertEqual(got, want, (b, c, bcv, ccv, t))

    def test_regressions_against_the_rolling_median(self):
        a, b, c = self.jobs
        # Against the jobs before B only (the rolling baseline of B's runs).
        rows = {(r[0], r[1]): r[2:] for r in self.q(
            "SELECT model_type, precision, regressed, baseline_runs, change, noisy, job_id"
            " FROM benchmark_regressions WHERE backend = 'cpu'")}
        for p in ('fp16', 'fp32'):
            # Latest is C: gpt2's baseline is the median of A and B (one of
            # them five times slower), so C is faster; nothing regressed.
            self.assertEqual(rows[('gpt2', p)][:2], ['f', '2'])
            self.assertLess(float(rows[('gpt2', p)][2]), 0)
            # bert did not change between A and C, but its two runs are
            # timings of a shared, busy machine minutes apart: whether C is
            # beyond the rule (10 %, 3 cv) is the machine's doing.  What the
            # view owes: one baseline run (B skipped it), and "regressed"
            # only for a change beyond the threshold.
            regressed, runs, change = rows[('bert', p)][:3]
            self.assertEqual(runs, '1')
            if regressed == 't':
                self.assertGreater(float(change), 0.10, rows[('bert', p)])
        out = self.c.pg.psql("""
            BEGIN;
            UPDATE tasks SET finished_at = NULL WHERE job_id = %d;
            SELECT hfleet_rebuild_summaries();
            SELECT string_agg(model_type || '/' || precision || '=' || regressed || ',' || baseline_runs,
                              ' ' ORDER BY model_type, precision)
            FROM hfleet_regressions_rolling(5, 0.10);
            ROLLBACK;""" % c).splitlines()[-1]
        got = dict(kv.split('=') for kv in out.split())
        for p in ('fp16', 'fp32'):
            self.assertEqual(got['gpt2/' + p], 'true,1')
            self.assertEqual(got['t5/' + p], 'false,1', self.t5_benchmarks())  # noise, not a regression
            self.assertEqual(got['bert/' + p], 'false,0')   # B skipped it: A's run is the latest

    def test_cross_backend_utilisation_and_health(self):
        rows = self.q("SELECT count(*), count(*) FILTER (WHERE speedup_vs_cpu BETWEEN 0.99 AND 1.01)"
                      " FROM cross_backend WHERE model_type <> 'albert'")
        self.assertEqual(rows, [['6', '6']])   # one cpu device: each is its own baseline
        util = self.q("SELECT worker_id, backend, idx, sum(tasks), sum(busy_s) > 0, max(utilisation) <= 2"
                      " FROM fleet_utilisation GROUP BY 1, 2, 3")
        attempts = self.q("SELECT count(*) FROM attempts")[0][0]
        self.assertEqual(util, [['w1', 'cpu', '0', attempts, 't', 't']])
        health = self.q("SELECT worker_id, backend, idx, quarantined, last_check_ok, failed_checks_24h"
                        " FROM device_health")
        self.assertEqual(health, [['w1', 'cpu', '0', 'f', 't', '0']])

    def reader_psql(self, sql):
        pg = self.c.pg
        return subprocess.run(['psql', '-X', '-q', '-A', '-t', '-h', pg.dir, '-p', str(pg.port), '-U', 'dash',
                               '-d', 'hfleet', '-c', sql], capture_output=True, text=True)

    def test_the_read_only_role_reads_views_and_nothing_else(self):
        self.c.pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dash') THEN"
                       " CREATE ROLE dash LOGIN IN ROLE hfleet_reader; END IF; END $$")
        self.assertEqual(self.c.pg.psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'hfleet_reader'"), 'f')
        a, b, _ = self.jobs
        for sql in ('SELECT count(*) FROM task_outcomes', 'SELECT count(*) FROM compatibility_matrix',
                    'SELECT count(*) FROM benchmark_latest', 'SELECT count(*) FROM benchmark_history',
                    'SELECT count(*) FROM benchmark_regressions', 'SELECT count(*) FROM cross_backend',
                    'SELECT count(*) FROM fleet_utilisation', 'SELECT count(*) FROM device_health',
                    'SELECT count(*) FROM environments', 'SELECT count(*) FROM results',
                    'SELECT count(*) FROM hfleet_compare_jobs(%d, %d)' % (a, b),
                    'SELECT count(*) FROM hfleet_regressions_rolling(3, 0.2)'):
            p = self.reader_psql(sql)
            self.assertEqual(p.returncode, 0, sql + ': ' + p.stderr)
            self.assertGreater(int(p.stdout.strip()), 0, sql)
        for sql in ('SELECT count(*) FROM tokens', "INSERT INTO drains (worker_id) VALUES ('x')",
                    'DELETE FROM results', "UPDATE jobs SET name = 'x'", 'SELECT hfleet_rebuild_summaries()',
                    'TRUNCATE matrix_state', 'CREATE TABLE mine (a int)', 'SELECT hfleet_task_ids(1000)'):
            p = self.reader_psql(sql)
            self.assertNotEqual(p.returncode, 0, sql)
            self.assertIn('permission denied', p.stderr, sql)
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM drains WHERE worker_id = 'x'"), '0')


if __name__ == '__main__':
    unittest.main(verbosity=2)
