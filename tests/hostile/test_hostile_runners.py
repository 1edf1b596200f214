#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile runners on the worker side (suite `hostile`).

The well-behaved worker "good" runs hostile_runner.py, which is the arith
runner except for the model types it is told to misbehave on: a runner
that leaves a setsid() sleeper behind, one that daemonizes one by double
fork, one that exits 0 without a result, one that writes a 4 GiB
(sparse) result, one nested 100000 deep, one with invalid UTF-8 and NULs,
and one that floods stdout and stderr.  Issue 18: every process a task
starts dies with the task; a runner that exits 0 without a result is the
runner's error (an `error` outcome, not retried as the infrastructure's,
and its device is not quarantined); whatever a runner writes, its task
gets exactly one deciding result and the worker and coordinator live on.

Both runner modes are attacked: warm (the worker's default) and cold
(runner.warm=false).  In warm mode the runner process itself outlives
each task by design; a sleeper it leaves must be gone at the latest when
the worker stops.  In cold mode it must be gone when the task ends.
"""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer  # noqa: E402  (puts tests/integration on the path)
import harness  # noqa: E402

HOSTILE_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'hostile_runner.py')
MISBEHAVIOUR = {
    'setsid': 'albert',
    'double-fork': 'roberta',
    'no-result': 'distilbert',
    'huge-result': 'electra',
    'deep-result': 'deberta',
    'bad-utf8': 'xlnet',
    'flood': 'camembert',
}


def pid_alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
        return state != 'Z'
    except (OSError, IndexError):
        return False


class RunnersBase(peer.HostileCase):
    warm = True
    good_slots = 2

    @classmethod
    def setUpClass(cls):
        cls.pid_dir = None
        super().setUpClass()

    @classmethod
    def start_good_worker(cls):
        if cls.pid_dir is None:
            cls.pid_dir = os.path.join(cls.c.root, 'sleepers')
            os.makedirs(cls.pid_dir, exist_ok=True)
        state = os.path.join(cls.c.root, 'state-good')
        args = ['--pid-dir', cls.pid_dir, '--sleeper-s', '300']
        for opt, model in MISBEHAVIOUR.items():
            args += ['--' + opt, model]
        runner = 'python3 %s %s' % (HOSTILE_RUNNER, ' '.join(args))
        argv = [harness.WORKER, '--id', 'good', '--coordinator-url', cls.c.worker_url, '--state-dir', state,
                '--slots', str(cls.good_slots), '--runner', runner, '--label', peer.GOOD_LABEL,
                '--log-level', 'info']
        if not cls.warm:
            argv += ['--set', 'runner.warm=false']
        d = harness.Daemon('good-%d' % len([k for k in cls.c.workers if k.startswith('good')]), argv,
                           cls.c.root).start()
        cls.c.workers[d.name] = d
        cls.good = d

    @classmethod
    def tearDownClass(cls):
        # Whatever a failed containment left behind goes now.
        for pid in cls.sleepers():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        super().tearDownClass()

    @classmethod
    def sleepers(cls, kind=''):
        out = []
        if cls.pid_dir and os.path.isdir(cls.pid_dir):
            for name in os.listdir(cls.pid_dir):
                if name.startswith(kind) and name.endswith('.pid'):
                    with open(os.path.join(cls.pid_dir, name)) as f:
                        pid = int(f.read().strip() or 0)
                    if pid > 0 and pid_alive(pid):
                        out.append(pid)
        return out

    def run_job(self, what, models, batch_sizes='1', timeout=180):
        """Submits models for the well-behaved worker and waits for the
        job to end; returns {task id: (state, reason, attempt)} and checks
        each task has exactly one deciding result."""
        c = self.c
        out = c.hfctl_json('submit', '--models', models, '--backends', 'cpu', '--label', peer.GOOD_LABEL,
                           '--batch-sizes', batch_sizes, '--name', what[:60])
        job = int(out['job_id'])
        c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', timeout,
                   '%s: job %d to finish' % (what, job))
        bad = c.pg.rows("""
            SELECT t.id, count(r.id) FILTER (WHERE NOT r.stale AND NOT r.retried)
            FROM tasks t LEFT JOIN results r ON r.task_id = t.id
            WHERE t.job_id = %d GROUP BY t.id
            HAVING count(r.id) FILTER (WHERE NOT r.stale AND NOT r.retried) <> 1""" % job)
        self.assertEqual(bad, [], '%s: tasks without exactly one deciding result' % what)
        rows = c.pg.rows("""SELECT t.id, t.state, r.reason, t.attempt, length(r.log_excerpt)
                            FROM tasks t JOIN results r ON r.id = t.result_id WHERE t.job_id = %d""" % job)
        return job, dict((int(r[0]), (r[1], r[2], int(r[3]), int(r[4]))) for r in rows)

    def assert_worker_alive(self, what):
        self.assertTrue(self.good.alive(), '%s: the worker died (exit status %s); its log ends:\n%s'
                        % (what, self.good.proc.returncode, self.good.log()[-3000:]))

    def assert_sleepers_gone(self, kind, what, timeout=30):
        deadline = time.time() + timeout
        while self.sleepers(kind) and time.time() < deadline:
            time.sleep(0.2)
        left = self.sleepers(kind)
        self.assertEqual(left, [], '%s: processes the task started outlived it: %s' % (what, left))

    def check_escapes(self, kind):
        what = 'a runner that leaves a %s sleeper' % kind
        job, tasks = self.run_job(what, MISBEHAVIOUR[kind], batch_sizes='1,2')
        self.assertEqual([t[0] for t in tasks.values()], ['passed'] * 2, '%s: %s' % (what, tasks))
        started = len(os.listdir(self.pid_dir))
        self.assertGreater(started, 0, '%s: the runner started no sleeper' % what)
        self.assert_worker_alive(what)
        self.check_after(what)
        if not self.warm:
            self.assert_sleepers_gone(kind, what + ' (cold runner: when the task ended)')
        # In any mode: gone when the worker stops.
        self.good.stop()
        self.assert_sleepers_gone(kind, what + ' (when the worker stopped)')
        with peer.daemon_fd_limit():
            type(self).start_good_worker()
        self.check_job(what)

    def test_setsid_sleeper_dies_with_the_task(self):
        self.check_escapes('setsid')

    def test_double_forked_sleeper_dies_with_the_task(self):
        self.check_escapes('double-fork')

    def test_exit_0_without_a_result_is_the_runners_error(self):
        what = 'a runner that exits 0 without writing a result'
        # Four in a row: more than scheduler.quarantine_after (3).
        job, tasks = self.run_job(what, MISBEHAVIOUR['no-result'], batch_sizes='1,2,3,4')
        self.assert_worker_alive(what)
        self.check_after(what)
        for tid, (state, reason, attempt, _) in tasks.items():
            self.assertEqual(state, 'error', '%s: task %d: %s' % (what, tid, reason))
            self.assertIn('result', reason, '%s: task %d: the reason does not say what was wrong' % (what, tid))
        retried = self.c.pg.psql('SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id'
                                 ' WHERE t.job_id = %d AND r.retried' % job)
        self.assertEqual(retried, '0', '%s: retried as an infrastructure failure' % what)
        quarantined = self.c.pg.psql("SELECT count(*) FROM device_quarantine WHERE worker_id = 'good'")
        self.assertEqual(quarantined, '0', '%s: the healthy device was quarantined' % what)
        self.check_job(what)

    def check_bad_result(self, kind):
        what = 'a runner that writes a %s result' % kind
        job, tasks = self.run_job(what, MISBEHAVIOUR[kind])
        self.assert_worker_alive(what)
        self.check_after(what)
        for tid, (state, reason, attempt, _) in tasks.items():
            self.assertEqual(state, 'error', '%s: task %d ended %s: %s' % (what, tid, state, reason))
        self.check_job(what)

    def test_huge_result_file(self):
        self.check_bad_result('huge-result')

    def test_deeply_nested_result(self):
        self.check_bad_result('deep-result')

    def test_result_with_invalid_utf8_and_nul(self):
        self.check_bad_result('bad-utf8')

    def test_stdout_and_stderr_flood(self):
        what = 'a runner that writes 64 MiB to stdout and stderr'
        job, tasks = self.run_job(what, MISBEHAVIOUR['flood'])
        self.assert_worker_alive(what)
        self.check_after(what)
        for tid, (state, reason, attempt, excerpt) in tasks.items():
            self.assertEqual(state, 'passed', '%s: task %d: %s' % (what, tid, reason))
            self.assertLess(excerpt, 1 << 20, '%s: a log excerpt of %d bytes was stored' % (what, excerpt))
        rss = peer.vm_rss_kb(self.good.proc.pid) // 1024
        self.assertLess(rss, 256 if not peer.is_asan(self.good.proc.pid) else 768,
                        '%s: the worker holds %d MB' % (what, rss))
        self.check_job(what)


class WarmRunnersTest(RunnersBase):
    warm = True


class ColdRunnersTest(RunnersBase):
    warm = False


del RunnersBase

if __name__ == '__main__':
    unittest.main(verbosity=2)
