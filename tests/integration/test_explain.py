#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""No surprises about who can run what (issue 13): a disconnected worker
never counts as able to run a job, the submit refusal and explain name
every worker and device with every requirement it does not meet, workers
shows drains (who, since when) and connectivity, and retry --cancelled
queues cancelled tasks again.  Real coordinator, workers and database."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def job_state(c, job):
    return c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job)


class ExplainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # heartbeat 200 ms: a worker is disconnected 2.6 s after its last poll.
        cls.c = harness.Cluster(heartbeat='200ms')
        cls.c.start_coordinator()
        cls.c.start_worker('w1', slots=2)
        cls.c.start_worker('w2', slots=2, extra_args=['--label', 'zone=eu'])
        cls.c.wait_for(lambda: len(cls.c.hfctl_json('workers')) == 2, 30, 'two workers to register')

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, '_failed', False) or harness.keep_files():
            cls.c.dump_logs()
        cls.c.close(keep=harness.keep_files())

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    def test_1_every_unmet_requirement_is_named_per_worker_and_device(self):
        need = ['--models', 'bert', '--backends', 'cpu', '--min-memory', '100000GiB',
                '--label', 'zone=us', '--runtime', 'torch>=99']
        before = self.c.pg.psql('SELECT count(*) FROM jobs')
        p = self.c.hfctl('submit', *need, check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(self.c.pg.psql('SELECT count(*) FROM jobs'), before)
        self.assertIn('no connected worker can run cpu tasks:\n', p.stderr)
        for w in ('w1', 'w2'):
            line = [x for x in p.stderr.splitlines() if x.strip().startswith(w + '/cpu:0: ')]
            self.assertEqual(len(line), 1, p.stderr)
            self.assertRegex(line[0], r'memory [0-9.]+ GiB < 100000\.0 GiB required; no label zone=us; '
                                      r'(no torch>=99|torch [^;]*, >=99 required)$')
        self.assertIn('--allow-waiting', p.stderr)
        # --json: the same, structured.
        p = self.c.hfctl('--json', 'submit', *need, check=False)
        self.assertEqual(p.returncode, 1)
        import json
        out = json.loads(p.stdout)
        unfit = {u['worker_id']: u for u in out['unfit']}
        self.assertEqual(sorted(unfit), ['w1', 'w2'])
        self.assertEqual(unfit['w1']['device'], 'cpu:0')
        self.assertEqual(unfit['w1']['state'], 'unfit')
        self.assertEqual(len(unfit['w1']['unmet']), 3)
        self.assertTrue(unfit['w1']['connected'])
        self.assertEqual(out['unfit_omitted'], 0)

        # Queued anyway, explain lists the same for each device.
        job = int(self.c.hfctl_json('submit', *need, '--allow-waiting')['job_id'])
        task = int(self.c.pg.psql('SELECT id FROM tasks WHERE job_id = %d' % job))
        e = self.c.hfctl_json('explain', str(task))
        self.assertEqual(e['status'], 'queued')
        fits = {f['worker_id']: f for f in e['fits']}
        self.assertEqual(sorted(fits), ['w1', 'w2'])
        self.assertEqual(fits['w2']['unmet'][1], 'no label zone=us')
        self.assertEqual(len(fits['w2']['unmet']), 3)
        text = self.c.hfctl('explain', str(task)).stdout
        self.assertRegex(text, r'\n  w1/cpu:0: memory [0-9.]+ GiB < 100000\.0 GiB required; no label zone=us; ')
        self.c.hfctl('cancel', str(job))

    def test_2_workers_shows_drains_with_who_and_since(self):
        self.c.hfctl('drain', 'w1')
        self.c.hfctl('drain', 'w2/cpu:0')
        try:
            ws = {w['worker_id']: w for w in self.c.hfctl_json('workers')}
            self.assertTrue(ws['w1']['drained'])
            self.assertEqual(ws['w1']['drains'][0]['device'], None)
            self.assertEqual(ws['w1']['drains'][0]['by'], 'admin')
            self.assertLess(abs(ws['w1']['drains'][0]['since'] - time.time()), 60)
            self.assertFalse(ws['w2']['drained'])
            self.assertEqual(ws['w2']['drains'][0]['device'], 'cpu:0')
            text = self.c.hfctl('workers').stdout
            self.assertIn('DRAINED', text)
            self.assertRegex(text, r'\n  w1: drained by admin since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(')
            self.assertRegex(text, r'\n  w2/cpu:0: drained by admin since ')
        finally:
            self.c.hfctl('undrain', 'w1')
            self.c.hfctl('undrain', 'w2/cpu:0')
        self.assertEqual(self.c.hfctl_json('workers')[0]['drains'], [])

    def test_2b_drains_keep_who_and_since_across_a_restart(self):
        c = self.c
        c.hfctl('drain', 'w1')
        since = {w['worker_id']: w for w in c.hfctl_json('workers')}['w1']['drains'][0]['since']
        try:
            c.coordinator.stop()
            c.start_coordinator()
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 2, 30, 'the workers to register again')
            d = {w['worker_id']: w for w in c.hfctl_json('workers')}['w1']['drains'][0]
            self.assertEqual(d['by'], 'admin')
            self.assertLess(abs(d['since'] - since), 1.0)
        finally:
            c.hfctl('undrain', 'w1')

    def test_3_a_disconnected_worker_does_not_count_and_retry_cancelled_runs_again(self):
        c = self.c
        # Only w2 (zone=eu) can run these; it goes away.
        c.workers['w2'].kill(signal.SIGKILL)
        c.workers['w2'].proc.wait()
        c.wait_for(lambda: not {w['worker_id']: w for w in c.hfctl_json('workers')}['w2']['connected'], 10,
                   'w2 to be disconnected')
        self.assertRegex(c.hfctl('workers').stdout, r'\nw2 .* no, since \d{4}-')
        p = c.hfctl('submit', '--models', 'bert,gpt2', '--backends', 'cpu', '--label', 'zone=eu', check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stderr, r'\n  w2: disconnected since \d\d:\d\d:\d\d \(\d+ s\); it could run them\n')
        self.assertIn('  w1/cpu:0: no label zone=eu\n', p.stderr)
        # --allow-waiting queues them; explain says they wait for w2.
        job = int(c.hfctl_json('submit', '--models', 'bert,gpt2', '--backends', 'cpu', '--label', 'zone=eu',
                               '--allow-waiting')['job_id'])
        tasks = [int(r[0]) for r in c.pg.rows('SELECT id FROM tasks WHERE job_id = %d ORDER BY id' % job)]
        e = c.hfctl_json('explain', str(tasks[0]))
        self.assertIn('only disconnected workers could run it', e['summary'])
        w2 = [f for f in e['fits'] if f['worker_id'] == 'w2'][0]
        self.assertEqual((w2['state'], w2['connected'], w2['would_fit'], w2['device']),
                         ('disconnected', False, True, None))
        # One task cancelled; w2 comes back and runs the other; the job ends.
        c.hfctl('cancel', '--task', str(tasks[0]))
        c.start_worker('w2', slots=2, extra_args=['--label', 'zone=eu'])
        c.wait_for(lambda: job_state(c, job) == 'done', 60, 'the job to end')
        self.assertEqual(c.pg.psql('SELECT state FROM tasks WHERE id = %d' % tasks[1]), 'passed')
        passed_result = c.pg.psql('SELECT result_id FROM tasks WHERE id = %d' % tasks[1])
        # retry alone leaves the cancelled task; --cancelled queues it again.
        self.assertEqual(c.hfctl_json('retry', str(job))['requeued'], 0)
        self.assertEqual(c.hfctl_json('retry', str(job), '--cancelled')['requeued'], 1)
        c.wait_for(lambda: job_state(c, job) == 'done', 60, 'the job to end again')
        self.assertEqual(c.pg.psql('SELECT state FROM tasks WHERE id = %d' % tasks[0]), 'passed')
        self.assertEqual(c.pg.psql('SELECT attempt FROM tasks WHERE id = %d' % tasks[0]), '1')
        # The passed task was not touched; the retry is audited.
        self.assertEqual(c.pg.psql('SELECT result_id FROM tasks WHERE id = %d' % tasks[1]), passed_result)
        self.assertEqual(c.pg.psql("SELECT detail FROM audit WHERE action = 'retry' ORDER BY id DESC LIMIT 1"),
                         '1 tasks queued again (cancelled ones too), job of "admin"')

    def test_4_a_cancelled_job_runs_again(self):
        c = self.c
        job = int(c.hfctl_json('submit', '--models', 'bert', '--backends', 'cpu', '--label', 'zone=nowhere',
                               '--allow-waiting')['job_id'])
        c.hfctl('cancel', str(job))
        self.assertEqual(job_state(c, job), 'cancelled')
        self.assertEqual(c.hfctl_json('retry', '--cancelled', str(job))['requeued'], 1)
        self.assertEqual(job_state(c, job), 'running')
        self.assertEqual(c.pg.psql('SELECT state FROM tasks WHERE job_id = %d' % job), 'queued')
        c.hfctl('cancel', str(job))


class StartupGraceTest(unittest.TestCase):
    def test_a_submit_just_after_start_is_told_to_come_back_not_refused(self):
        # heartbeat 2 s: the grace (the connected window) is 8 s from start.
        with harness.cluster(heartbeat='2s') as c:
            c.start_coordinator()
            t0 = time.time()
            # hfctl asks again 1, 2 and 4 s apart: all within the 8 s.
            p = c.hfctl('submit', '--models', 'bert', '--backends', 'cpu', check=False)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn('coordinator unavailable: no connected worker can run cpu tasks yet', p.stderr)
            self.assertRegex(p.stderr, r'submit again in \d+ s')
            self.assertIn('asking again with request id', p.stderr)
            self.assertEqual(c.pg.psql('SELECT count(*) FROM jobs'), '0')
            time.sleep(8.5 - (time.time() - t0))
            p = c.hfctl('submit', '--models', 'bert', '--backends', 'cpu', check=False)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn('no connected worker can run cpu tasks (no worker is registered)', p.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
