#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fault injection with real processes (suite `faults`).

A job of more than 1,000 tasks runs on two workers while the test, at
random moments, SIGKILLs the coordinator (at least ten times) and the
workers, restarts PostgreSQL, and freezes a worker (SIGSTOP) for longer
than its lease.  Afterwards every task must have exactly one final outcome
decided by exactly one result, the job must be done, and every result a
worker reported must be in the database (the workers' spools drain).  It
prints one line:  faults: kills=K tasks=N lost=L duplicated=D

A second test starts a standby coordinator against the same database,
kills the active one in the middle of a job, and checks that the standby
takes over within a few seconds and the job completes.
"""
import os
import random
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'integration'))
import harness  # noqa: E402

SEED = int(os.environ.get('HF_FAULTS_SEED', str(int(time.time()))))


def finished(pg, job):
    return int(pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state NOT IN ('queued', 'leased')" % job))


def spool_files(cluster):
    """Spool files still holding results: single-result files of the older
    layout, and batch files but the spares ("HFSPOOL0": every result in
    them was acknowledged; docs/architecture.md)."""
    n = 0
    for wid in cluster.workers:
        d = os.path.join(cluster.root, 'state-' + wid, 'spool')
        if not os.path.isdir(d):
            continue
        for f in os.listdir(d):
            if f.endswith('.result'):
                n += 1
            elif f.endswith('.results'):
                try:
                    with open(os.path.join(d, f), 'rb') as fh:
                        if fh.read(8) != b'HFSPOOL0':
                            n += 1
                except FileNotFoundError:
                    pass
    return n


class FaultsTest(unittest.TestCase):
    def test_kills_restarts_and_freezes_lose_nothing_and_store_nothing_twice(self):
        rnd = random.Random(SEED)
        print('faults: seed %d' % SEED)
        kills = coordinator_kills = 0
        with harness.cluster(heartbeat='200ms', lease='2s') as c:
            c.start_coordinator()
            for wid in ('f1', 'f2'):
                c.start_worker(wid, slots=4, runner_args='--sleep 0.12')
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 2, 30, 'workers to register')
            out = c.hfctl_json('submit', '--all', '--batch-sizes', '1,2,3,4', '--name', 'faults')
            job, n = int(out['job_id']), int(out['task_count'])
            self.assertGreaterEqual(n, 1000)

            faults = ['coordinator'] * 10 + ['worker', 'worker', 'postgres', 'freeze']
            rnd.shuffle(faults)
            for fault in faults:
                time.sleep(rnd.uniform(0.3, 2.0))
                if fault == 'coordinator':
                    c.coordinator.kill(signal.SIGKILL)
                    c.coordinator.proc.wait()
                    kills += 1
                    coordinator_kills += 1
                    time.sleep(rnd.uniform(0.0, 0.5))
                    c.start_coordinator()
                elif fault == 'worker':
                    wid = rnd.choice(sorted(c.workers))
                    c.workers[wid].kill(signal.SIGKILL)
                    c.workers[wid].proc.wait()
                    kills += 1
                    time.sleep(rnd.uniform(0.0, 0.5))
                    c.start_worker(wid, slots=4, runner_args='--sleep 0.12')
                elif fault == 'postgres':
                    c.pg.stop('immediate')
                    time.sleep(rnd.uniform(0.5, 1.5))
                    c.pg.start()
                elif fault == 'freeze':
                    wid = rnd.choice(sorted(c.workers))
                    c.workers[wid].kill(signal.SIGSTOP)
                    time.sleep(3.0)  # longer than the 2 s lease
                    c.workers[wid].kill(signal.SIGCONT)
                print('faults: %s done, %d/%d tasks final' % (fault, finished(c.pg, job), n), flush=True)

            c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 600,
                       'the job to finish')
            # every reported result reaches the database: the spools drain
            c.wait_for(lambda: spool_files(c) == 0, 60, 'the workers to have every result acknowledged')

            lost = int(c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND (state IN ('queued', 'leased') OR result_id IS NULL)" % job))
            duplicated = int(c.pg.psql("""
                SELECT count(*) FROM (SELECT t.id FROM tasks t JOIN results r ON r.task_id = t.id AND NOT r.stale AND NOT r.retried
                                      WHERE t.job_id = %d GROUP BY t.id HAVING count(*) > 1) d""" % job))
            mismatched = int(c.pg.psql("""
                SELECT count(*) FROM tasks t JOIN results r ON r.id = t.result_id
                WHERE t.job_id = %d AND (r.stale OR r.retried OR r.attempt <> t.attempt OR r.status <> t.state)""" % job))
            stale = int(c.pg.psql("SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.job_id = %d AND r.stale" % job))
            retried = int(c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND attempt > 1" % job))
            print('faults: kills=%d tasks=%d lost=%d duplicated=%d' % (kills, n, lost, duplicated))
            print('faults: coordinator kills %d, stale results kept %d, tasks that needed a second attempt %d'
                  % (coordinator_kills, stale, retried))
            self.assertGreaterEqual(coordinator_kills, 10)
            self.assertEqual(lost, 0)
            self.assertEqual(duplicated, 0)
            self.assertEqual(mismatched, 0)
            self.assertEqual(int(c.pg.psql('SELECT count(*) FROM jobs')), 1)  # the accepted job, once

    def test_a_lease_lost_too_often_becomes_an_error_outcome(self):
        with harness.cluster(heartbeat='200ms', lease='1s') as c:
            c.start_coordinator()
            z = c.start_worker('z', slots=1, runner_args='--sleep 4')
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 1, 30, 'the worker to register')
            out = c.hfctl_json('submit', '--models', 'bert', '--max-retries', '1')
            job = int(out['job_id'])

            def leased(attempt):
                return c.pg.psql("SELECT state || ':' || attempt FROM tasks WHERE job_id = %d" % job) == 'leased:%d' % attempt

            for attempt in (1, 2):
                c.wait_for(lambda: leased(attempt), 30, 'attempt %d to be leased' % attempt)
                z.kill(signal.SIGSTOP)          # frozen past its 1 s lease
                time.sleep(2.5)
                z.kill(signal.SIGCONT)
            c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 60, 'the job to end')
            state, reason = c.pg.rows("SELECT t.state, r.reason FROM tasks t JOIN results r ON r.id = t.result_id"
                                      " WHERE t.job_id = %d" % job)[0]
            print('faults: after two lost leases: %s: %s' % (state, reason))
            self.assertEqual(state, 'error')
            self.assertIn('lease was lost on 2 attempts', reason)
            deciding = c.pg.psql("SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id"
                                 " WHERE t.job_id = %d AND NOT r.stale AND NOT r.retried" % job)
            self.assertEqual(deciding, '1')

    def test_standby_takes_over_when_the_active_coordinator_dies(self):
        with harness.cluster(heartbeat='200ms', lease='3s') as c:
            active = c.start_coordinator()
            standby_worker_url = 'tcp://127.0.0.1:%d' % harness.free_port()
            standby_control_url = 'tcp://127.0.0.1:%d' % harness.free_port()
            standby = harness.Daemon('standby', [
                harness.COORDINATOR, '--database', c.pg.conninfo, '--worker-listen', standby_worker_url,
                '--control-listen', standby_control_url, '--http-listen', '',
                '--set', 'scheduler.heartbeat=200ms', '--set', 'scheduler.lease_timeout=3s'], c.root).start()
            both = c.worker_url + ',' + standby_worker_url
            for wid in ('s1', 's2'):
                state = os.path.join(c.root, 'state-' + wid)
                c.workers[wid] = harness.Daemon(wid, [
                    harness.WORKER, '--id', wid, '--coordinator-url', both, '--state-dir', state, '--slots', '2',
                    '--runner', 'python3 %s --sleep 0.1' % harness.ARITH_RUNNER], c.root,
                    env=c.worker_env(wid)).start()
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 2, 30, 'workers to register')
            c.wait_for(lambda: 'standby' in standby.log(), 30, 'the standby to wait for the lock')
            out = c.hfctl_json('submit', '--family', 'encoder-only,decoder-only', '--name', 'failover')
            job, n = int(out['job_id']), int(out['task_count'])
            c.wait_for(lambda: finished(c.pg, job) >= 10, 60, 'some progress')

            active.kill(signal.SIGKILL)
            t0 = time.time()
            c.coordinator = standby
            c.control_url = standby_control_url
            c.wait_for(lambda: c.hfctl('models', check=False).returncode == 0, 30, 'the standby to take over')
            takeover = time.time() - t0
            c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 300,
                       'the job to finish on the standby')
            dup = int(c.pg.psql("""SELECT count(*) FROM (SELECT t.id FROM tasks t JOIN results r ON r.task_id = t.id
                                   AND NOT r.stale AND NOT r.retried WHERE t.job_id = %d GROUP BY t.id HAVING count(*) > 1) d""" % job))
            lost = int(c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND result_id IS NULL" % job))
            print('faults: standby took over in %.2f s; job of %d tasks done, lost=%d duplicated=%d'
                  % (takeover, n, lost, dup))
            self.assertLess(takeover, 5.0)
            self.assertEqual(dup, 0)
            self.assertEqual(lost, 0)


if __name__ == '__main__':
    unittest.main(verbosity=2)
