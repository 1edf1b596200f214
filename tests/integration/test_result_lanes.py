# SPDX-License-Identifier: MIT
"""Result stores on two connections (database.result_connections = 2,
coordinator/db-thread.c): a job of about 22,000 tasks run by 32 simulated
workers of 8 slots (bench/'s hfleet-fleet-sim, the real protocol) comes in
faster than one connection stores it, so gathered groups of results are
split and stored half on each connection at once.  Checked in the
database: every task passed with exactly one deciding result, and the job
is done (its last results may be on both connections, neither seeing the
other's: the job is then finished after both committed).  Then the same
with the second connection's backend terminated again and again while the
job runs: each half that fails with it is rolled back and stored on the
first connection, and still nothing is lost and nothing is twice; and with
the main connection's backend terminated, whose lock the lane checks.
"""
import json
import os
import subprocess
import time
import unittest

import harness

FLEET_SIM = os.environ.get('HF_FLEET_SIM', os.path.join(harness.BUILD, 'bench', 'hfleet-fleet-sim'))
WORKERS, SLOTS = 32, 8
LANE = 'hf-coordinator results'


class ResultLanesTest(unittest.TestCase):
    def setUp(self):
        self.c = harness.Cluster(heartbeat='1s', lease='30s',
                                 coordinator_set=['database.result_connections=2'])
        self.names = ['lane-%02d' % i for i in range(WORKERS)]
        tokens = self.c.seed_tokens(self.names)
        self.tokens = os.path.join(self.c.root, 'sim-tokens')
        with open(self.tokens, 'w') as f:
            f.writelines('%s %s\n' % (n, tokens[n]) for n in self.names)
        os.chmod(self.tokens, 0o600)
        self.c.start_coordinator()
        self.sim = None

    def tearDown(self):
        if self.sim and self.sim.poll() is None:
            self.sim.kill()
            self.sim.wait()
        self.c.close()

    def run_job(self, while_running=None):
        """Submits the job, starts the simulated fleet, calls while_running()
        every 0.3 s until every task of the job is final; returns its id."""
        with open(os.path.join(self.c.root, 'sim.log'), 'wb') as log:
            self.sim = subprocess.Popen(
                [FLEET_SIM, '--url', self.c.worker_url, '--tokens', self.tokens, '--workers', str(WORKERS),
                 '--slots', str(SLOTS), '--mode', 'complete', '--task-ms', '0', '--ramp-ms', '500',
                 '--seconds', '600'],
                stdout=subprocess.DEVNULL, stderr=log)
        self.c.wait_for(lambda: sum(1 for w in self.c.hfctl_json('workers') if w.get('connected')) == WORKERS,
                        120, 'the simulated workers to register')
        out = json.loads(self.c.hfctl(
            'submit', '--suite', 'all', '--backends', 'cpu', '--kind', 'test,benchmark',
            '--precision', 'fp32,fp16,bf16,int8', '--batch-sizes', '1,2,3,4,5', '--name', 'lanes',
            '--json', timeout=300).stdout)
        job = int(out['job_id'])
        self.assertGreater(int(out['task_count']), 20000)
        deadline = time.time() + 600
        while self.c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state IN ('queued', 'leased')"
                             " OR EXISTS (SELECT 1 FROM task_plans WHERE job_id = %d)" % (job, job)) != '0':
            self.assertLess(time.time(), deadline, 'the job did not finish in 600 s')
            if while_running:
                while_running()
            time.sleep(0.3)
        return job, int(out['task_count'])

    def check_exactly_once(self, job, count):
        psql = self.c.pg.psql
        self.assertEqual(int(psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'passed'" % job)), count)
        bad = int(psql(
            "SELECT count(*) FROM tasks t WHERE t.job_id = %d AND (t.result_id IS NULL"
            " OR (SELECT count(*) FROM results r WHERE r.task_id = t.id AND NOT r.stale AND NOT r.retried) <> 1"
            " OR NOT EXISTS (SELECT 1 FROM results r WHERE r.id = t.result_id AND r.task_id = t.id))" % job))
        self.assertEqual(bad, 0, 'tasks without exactly one deciding result')
        # The job is finished, by a result's own statement or after both
        # connections committed.
        self.c.wait_for(lambda: psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 30,
                        'the job to be done')

    def test_results_split_over_two_connections(self):
        job, count = self.run_job()
        self.check_exactly_once(job, count)
        splits = self.c.metric('hfleet_db_result_splits_total')
        self.assertGreater(splits, 0, 'no group of results was split: the test did not test the lane')
        self.assertEqual(self.c.metric('hfleet_db_result_split_retries_total'), 0)

    def test_second_connection_killed_while_it_stores(self):
        killed = []

        def kill_lane():
            if len(killed) < 6:
                out = self.c.pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                     " WHERE application_name = '%s'" % LANE)
                if out not in ('', '0'):
                    killed.append(out)

        job, count = self.run_job(kill_lane)
        self.assertTrue(killed, 'the second connection was never seen')
        self.check_exactly_once(job, count)
        self.assertGreater(self.c.metric('hfleet_db_result_split_retries_total'), 0,
                           'no half failed with its connection killed %d times' % len(killed))
        self.assertTrue(self.c.coordinator_alive())

    def test_main_connection_killed_while_the_lane_stores(self):
        # The lane checks, in each of its transactions, that the main
        # connection's server process holds the active coordinator's lock;
        # a main connection killed under it fails that check (or the
        # store again on the main connection), and the results come again.
        killed = []

        def kill_main():
            if len(killed) < 3 and self.c.metric('hfleet_db_result_splits_total') > 0:
                out = self.c.pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                     " WHERE application_name = 'hf-coordinator'")
                if out not in ('', '0'):
                    killed.append(out)
                    time.sleep(0.5)

        job, count = self.run_job(kill_main)
        self.assertTrue(killed, 'the main connection was never killed')
        self.check_exactly_once(job, count)
        self.assertTrue(self.c.coordinator_alive())


if __name__ == '__main__':
    unittest.main()
