#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Warm runners ahead of tasks (runner.prewarm) and the runners' thread
count, through a real coordinator, hf-worker and PostgreSQL.

The arith runner writes STARTED/PID with the time it started before it
reads a request (--started-dir), and its results name the pid that ran
them and the OMP_NUM_THREADS it was given.  A worker with prewarm (the
default) starts one runner per slot once registered, before any task, and
its tasks are served by exactly those processes; with runner.prewarm=false
no runner starts before a task.  A runner that cannot start is started
again after a backoff, not in a loop, and the worker serves once it can.
OMP_NUM_THREADS is the CPUs shared among the slots, unless the worker's
environment sets it: then that value reaches the runner.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SLOTS = 3


def started(d):
    """{pid: start time} of the runners that wrote to d."""
    out = {}
    for n in os.listdir(d):
        with open(os.path.join(d, n)) as f:
            text = f.read()
        if text.endswith('\n'):  # complete
            out[int(n)] = float(text)
    return out


def registered(c, wid):
    return any(w['worker_id'] == wid and w['connected'] for w in c.hfctl_json('workers'))


def run_job(c):
    """A small CPU job to its end; -> ({task: (pid, omp)}, submitted at)."""
    at = time.time()
    out = c.hfctl_json('submit', '--models', 'bert,gpt2,t5', '--backends', 'cpu', '--batch-sizes', '1,2')
    job = int(out['job_id'])
    c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 120,
               'job %d to finish' % job)
    rows = c.pg.rows("SELECT t.id, r.status, r.env->>'pid', r.env->>'omp_num_threads' FROM tasks t"
                     " JOIN results r ON r.id = t.result_id WHERE t.job_id = %d" % job)
    assert rows and all(r[1] == 'passed' for r in rows), rows
    return {r[0]: (int(r[2]), r[3]) for r in rows}, at


class PrewarmTest(unittest.TestCase):

    def start_worker(self, c, wid, runner_args='', extra=(), env=None):
        d = os.path.join(c.root, 'started-' + wid)
        os.makedirs(d)
        w = c.start_worker(wid, slots=SLOTS, runner_args=('--started-dir %s %s' % (d, runner_args)).strip(),
                           extra_args=list(extra), extra_env=env)
        c.wait_for(lambda: registered(c, wid), 30, 'worker %s to register' % wid)
        return w, d

    def test_runners_start_before_the_first_task_and_serve_it(self):
        cpus = len(os.sched_getaffinity(0))
        with harness.cluster() as c:
            c.start_coordinator()
            w, d = self.start_worker(c, 'pre')
            c.wait_for(lambda: len(started(d)) == SLOTS, 30, 'a runner per slot')
            time.sleep(0.5)
            self.assertEqual(len(started(d)), SLOTS)  # no more than its slots
            tasks, submitted = run_job(c)
            runners = started(d)
            # Every task ran in a runner that had started before the job.
            self.assertLessEqual({pid for pid, _ in tasks.values()}, set(runners))
            self.assertTrue(all(t < submitted for t in runners.values()))
            self.assertEqual(len(runners), SLOTS)
            # The CPUs shared among the slots (the CPU is the only device).
            self.assertEqual({omp for _, omp in tasks.values()}, {str(max(1, cpus // SLOTS))})
            self.assertEqual(w.stop(), 0)
            log = w.log()
            self.assertIn('starting %d warm runners ahead of tasks for 1 device (runner.prewarm)' % SLOTS, log)
            self.assertIn('runner threads: OMP_NUM_THREADS=%d' % max(1, cpus // SLOTS), log)
            # What a runner says before its first task is in the worker's log.
            self.assertIn('before its first task: arith runner: started, waiting for tasks', log)
            for pid in runners:  # the worker's stop ended them
                with self.assertRaises(ProcessLookupError):
                    os.kill(pid, 0)

            # Off: nothing starts before a task; the operator's thread count is kept.
            w, d = self.start_worker(c, 'cold', extra=['--set', 'runner.prewarm=false'],
                                     env={'OMP_NUM_THREADS': '7'})
            time.sleep(1.0)
            self.assertEqual(started(d), {})
            tasks, submitted = run_job(c)
            self.assertEqual({omp for _, omp in tasks.values()}, {'7'})
            self.assertTrue(all(t >= submitted for t in started(d).values()))
            self.assertEqual(w.stop(), 0)
            self.assertIn('runner threads: keeping OMP_NUM_THREADS=7 from the environment', w.log())

    def test_a_runner_that_cannot_start_is_backed_off_then_serves(self):
        with harness.cluster() as c:
            c.start_coordinator()
            gate = os.path.join(c.root, 'runner-can-start')
            w, d = self.start_worker(c, 'flaky', runner_args='--start-fails-until %s' % gate)
            time.sleep(2.5)
            # Three die at once, then one at a time 1 s, 2 s, ... apart: a
            # handful, where a loop would have started hundreds.
            n = len(started(d))
            self.assertGreaterEqual(n, SLOTS)
            self.assertLessEqual(n, SLOTS + 3)
            self.assertIn('exited before it served a task', w.log())
            self.assertIn('starting the next warm runner for cpu:0 in', w.log())
            open(gate, 'w').close()
            # A task starts its own runner at once, whatever the backoff says.
            tasks, _ = run_job(c)
            self.assertTrue(tasks)
            self.assertEqual(w.stop(), 0)


if __name__ == '__main__':
    unittest.main(verbosity=2)
