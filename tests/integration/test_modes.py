#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark execution modes through the system (issue 14, migration 014):
a private PostgreSQL, hf-coordinator, one hf-worker running modes_runner.py
(real sums of squares; cuda-graph and compile do an eighth of eager's work,
so their figures really differ), three jobs of bert and gpt2, test and
benchmark, --mode eager,cuda-graph:

  A  every runner honest;
  B  bert's runner predates modes (measures eager, echoes nothing) and
     gpt2's says eager whatever it measured;
  C  every runner honest again.

Checked: a task per benchmark mode and one eager test; the mode in the task
JSON, in hfctl results, compare and history; a result measured in another
mode than asked is stored skipped with the reason and no figures, never
under the asked label; benchmark_latest, the rolling regressions and
compare keep the modes apart.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'modes_runner.py')


class ModesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = c = harness.Cluster()
        try:
            cls.control = os.path.join(c.root, 'control.json')
            c.start_coordinator()
            c.start_worker('w1', slots=2, runner_path=RUNNER, runner_args='--control ' + cls.control)
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 1, 30, 'the worker to register')
            cls.jobs = []
            for ctl in ({}, {'old': ['bert'], 'lie': {'gpt2': 'eager'}}, {}):
                with open(cls.control + '.tmp', 'w') as f:
                    json.dump(ctl, f)
                os.rename(cls.control + '.tmp', cls.control)
                out = c.hfctl_json('submit', '--models', 'bert,gpt2', '--backends', 'cpu', '--kind',
                                   'test,benchmark', '--mode', 'eager,cuda-graph', '--seq-len', '20000',
                                   '--iterations', '10', '--warmup', '1', '--name', 'modes-%d' % len(cls.jobs))
                job = int(out['job_id'])
                c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 120,
                           'job %d to finish' % job)
                cls.jobs.append(job)
        except BaseException:
            c.dump_logs()
            c.close(keep=harness.keep_files())
            raise

    @classmethod
    def tearDownClass(cls):
        if harness.keep_files():
            cls.c.dump_logs()
        cls.c.close(keep=harness.keep_files())

    def q(self, sql):
        return self.c.pg.rows(sql)

    def test_a_task_per_benchmark_mode_and_one_eager_test(self):
        a = self.jobs[0]
        rows = self.q("SELECT model_type, kind, mode, state FROM tasks WHERE job_id = %d"
                      " ORDER BY 1, 2, 3" % a)
        self.assertEqual(rows, [['bert', 'benchmark', 'cuda-graph', 'passed'],
                                ['bert', 'benchmark', 'eager', 'passed'],
                                ['bert', 'test', 'eager', 'passed'],
                                ['gpt2', 'benchmark', 'cuda-graph', 'passed'],
                                ['gpt2', 'benchmark', 'eager', 'passed'],
                                ['gpt2', 'test', 'eager', 'passed']])
        # What the runner measured, as it said: the mode asked.
        got = self.q("SELECT t.mode, o.metrics->>'mode' FROM task_outcomes o JOIN tasks t ON t.id = o.task_id"
                     " WHERE o.job_id = %d AND o.kind = 'benchmark'" % a)
        self.assertEqual(len(got), 4)
        for asked, measured in got:
            self.assertEqual(asked, measured)

    def test_hfctl_results_show_the_mode(self):
        rows = self.c.hfctl_json('results', str(self.jobs[0]))
        modes = sorted((r['model_type'], r['kind'], r['mode']) for r in rows)
        self.assertIn(('bert', 'benchmark', 'cuda-graph'), modes)
        self.assertIn(('bert', 'test', 'eager'), modes)
        table = self.c.hfctl('results', str(self.jobs[0])).stdout
        self.assertIn('MODE', table.splitlines()[0])
        self.assertIn('cuda-graph', table)

    def test_another_mode_than_asked_is_never_stored_under_the_asked_label(self):
        b = self.jobs[1]
        rows = {(r[0], r[1]): r[2:] for r in self.q(
            "SELECT o.model_type, t.mode, o.status, o.reason, o.latency_p50_ms, o.metrics::text"
            " FROM task_outcomes o JOIN tasks t ON t.id = o.task_id"
            " WHERE o.job_id = %d AND o.kind = 'benchmark'" % b)}
        # bert's old runner measured eager: right for the eager task ...
        self.assertEqual(rows[('bert', 'eager')][0], 'passed')
        # ... but not for the cuda-graph one.
        status, reason, p50, metrics = rows[('bert', 'cuda-graph')]
        self.assertEqual(status, 'skipped')
        self.assertIn('measured mode eager, not the cuda-graph this task asked for', reason)
        self.assertIn('older than modes', reason)
        self.assertEqual(p50, '')
        self.assertEqual(json.loads(metrics), {})
        # gpt2's runner said eager for the cuda-graph task.
        status, reason, p50, metrics = rows[('gpt2', 'cuda-graph')]
        self.assertEqual(status, 'skipped')
        self.assertIn('measured mode eager, not the cuda-graph this task asked for', reason)
        self.assertEqual(p50, '')
        self.assertEqual(json.loads(metrics), {'reported_mode': 'eager'})
        self.assertEqual(rows[('gpt2', 'eager')][0], 'passed')
        # No benchmark series of B's cuda-graph tasks.
        self.assertEqual(self.q("SELECT count(*) FROM benchmark_runs r JOIN tasks t ON t.id = r.task_id"
                                " WHERE t.job_id = %d AND r.mode = 'cuda-graph'" % b), [['0']])

    def test_views_keep_the_modes_apart(self):
        a, b, c = self.jobs
        latest = {(r[0], r[1]): r[2:] for r in self.q(
            "SELECT model_type, mode, job_id, latency_p50_ms FROM benchmark_latest")}
        self.assertEqual(sorted(latest), [('bert', 'cuda-graph'), ('bert', 'eager'),
                                          ('gpt2', 'cuda-graph'), ('gpt2', 'eager')])
        for m in ('bert', 'gpt2'):
            self.assertEqual(latest[(m, 'eager')][0], str(c))
            self.assertEqual(latest[(m, 'cuda-graph')][0], str(c))
        # Each series' baseline is runs of its own mode: eager has A and B,
        # cuda-graph only A (B's were not stored as cuda-graph).
        reg = {(r[0], r[1]): r[2] for r in self.q(
            "SELECT model_type, mode, baseline_runs FROM benchmark_regressions")}
        for m in ('bert', 'gpt2'):
            self.assertEqual(reg[(m, 'eager')], '2')
            self.assertEqual(reg[(m, 'cuda-graph')], '1')
        # The history holds each mode's runs under its mode.
        hist = self.q("SELECT mode, count(*) FROM benchmark_history WHERE model_type = 'gpt2' GROUP BY 1 ORDER BY 1")
        self.assertEqual(hist, [['cuda-graph', '2'], ['eager', '3']])
        # One model's history is still read from the covering index alone.
        plan = self.c.pg.psql("SET enable_seqscan = off; SET enable_bitmapscan = off;"
                              " EXPLAIN SELECT * FROM benchmark_history WHERE model_type = 'gpt2'")
        self.assertIn('Index Only Scan using task_history_benchmark_idx', plan)
        # A rebuild from tasks and results gives the same series.
        out = self.c.pg.psql("""
            BEGIN;
            SELECT hfleet_rebuild_summaries();
            SELECT string_agg(model_type || '/' || mode || '=' || baseline_runs, ' ' ORDER BY model_type, mode)
            FROM hfleet_regressions_rolling(5, 0.10);
            ROLLBACK;""").splitlines()[-1]
        self.assertEqual(out, 'bert/cuda-graph=1 bert/eager=2 gpt2/cuda-graph=1 gpt2/eager=2')

    def test_compare_and_history_pair_rows_of_one_mode(self):
        # What is checked is how rows pair, not the verdict: the largest
        # threshold keeps the real timings' noise (an ASan build on a
        # loaded machine measured one run 10 % slower, and compare then
        # exits 1) from failing the command.
        a, b, c = self.jobs
        cmp = self.c.hfctl_json('compare', '--threshold', '10', '--all', str(a), str(c))
        rows = {(r['model_type'], r['kind'], r['mode']): r for r in cmp['rows']}
        self.assertEqual(len(rows), 6)
        for m in ('bert', 'gpt2'):
            for mode in ('eager', 'cuda-graph'):
                r = rows[(m, 'benchmark', mode)]
                self.assertEqual((r['base_status'], r['cand_status']), ('passed', 'passed'))
        # A's cuda-graph against B's skip: one row, not paired with eager.
        cmp = self.c.hfctl_json('compare', '--threshold', '10', '--all', str(a), str(b))
        graph = [r for r in cmp['rows'] if r['model_type'] == 'bert' and r['mode'] == 'cuda-graph']
        self.assertEqual(len(graph), 1)
        self.assertEqual(graph[0]['cand_status'], 'skipped')
        self.assertIsNone(graph[0]['cand_p50_ms'])
        text = self.c.hfctl('compare', '--threshold', '10', '--all', str(a), str(c)).stdout
        self.assertIn('MODE', text)
        hist = self.c.hfctl_json('history', 'gpt2', '--kind', 'benchmark')
        self.assertEqual(sorted({r['mode'] for r in hist['rows']}), ['cuda-graph', 'eager'])


if __name__ == '__main__':
    unittest.main()
