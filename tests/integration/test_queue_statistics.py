# SPDX-License-Identifier: MIT
"""The planner's statistics follow the queue (coordinator/db-jobs.c).

The main connection makes its statements' plans once and keeps them
(plan_cache_mode force_generic_plan) until DB_GENERIC_REPLAN statements
have run or the statistics of a table they read change.  Its first plans
are made at its warm-up, over empty tables: the lease grant's then reads
every queued task through tasks_live_idx and matches them to the tasks it
was given, so a lease of one task costs as much as the queue is long.  A
submit that queues at least 50 tasks and a tenth of the table analyses
tasks in its own transaction, and every connection plans again for the
queue as it now is.

A job smaller than a tenth of the table is analysed too when it at least
doubles the coordinator's live tasks: statistics taken while the queue was
near empty (after a job drained) would otherwise keep saying so.

Checked without any timing, by PostgreSQL's own counters:
- a submit of a few tasks (under 50) does not analyse tasks; one of the
  core suite's 308 does (pg_stat_user_tables.analyze_count: ANALYZE run
  by a session, not autovacuum's);
- after it, each lease of one task reads that task by tasks' primary key,
  not the whole queue through tasks_live_idx (pg_stat_user_indexes);
- in a table of 616 cancelled tasks, a 60-task job (under a tenth of it)
  with nothing else live is analysed, a 55-task job after it (less than
  the 60 live) is not.
A raw peer takes the leases (tests/hostile/peer.py), one per poll.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'hostile'))
import harness  # noqa: E402
import peer  # noqa: E402

LEASES = 20


class QueueStatistics(unittest.TestCase):
    def analyses(self, c):
        return int(c.pg.psql("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'tasks'"))

    def index_reads(self, c):
        return {r[0]: int(r[1]) for r in c.pg.rows(
            "SELECT indexrelname, idx_tup_read FROM pg_stat_user_indexes WHERE relname = 'tasks'")}

    def submit(self, c, *args):
        out = c.hfctl_json('submit', '--backends', 'cpu', '--kind', 'test', '--label', 'stats=yes',
                           '--allow-waiting', *args)
        return int(out['job_id']), int(out['task_count'])

    def test_a_submit_of_many_tasks_makes_lease_grants_read_tasks_by_id(self):
        # The raw peer has no worker token; locality_wait 0: a lease at
        # once, whatever cache the peer reports.
        with harness.cluster(coordinator_set=['auth.required=false', 'scheduler.locality_wait=0']) as c:
            c.start_coordinator()
            s = peer.worker_conn(c.worker_url)
            job = None
            try:
                session = peer.register_worker(s, 'stats-w', labels=[('stats', 'yes')])
                before = self.analyses(c)
                job, n = self.submit(c, '--models', 'bert,gpt2,t5')
                self.assertEqual(n, 3)
                # A backend's counts reach the statistics when it goes
                # idle, at most a second later: the large submit's below
                # is waited for, and by then this one's would show too.
                job, n = self.submit(c, '--suite', 'core')
                self.assertGreaterEqual(n, 300)
                c.wait_for(lambda: self.analyses(c) > before, 30,
                           'the %d-task submit to analyse tasks (analyze_count %d)' % (n, self.analyses(c)))
                self.assertEqual(self.analyses(c), before + 1,
                                 'the 3-task submit analysed tasks too, or the large one twice')

                reads = self.index_reads(c)
                got = []
                for _ in range(LEASES):
                    got += peer.poll_worker(s, 'stats-w', session, free=1)
                self.assertEqual(len(got), LEASES, 'one lease a poll of one free slot')
                c.wait_for(lambda: self.index_reads(c)['tasks_pkey'] >= reads['tasks_pkey'] + LEASES, 30,
                           'the lease grants to read their tasks by tasks_pkey (%s, before %s)'
                           % (self.index_reads(c), reads))
                walked = self.index_reads(c)['tasks_live_idx'] - reads['tasks_live_idx']
                # The old plan read the whole queue for each lease: about
                # 300 entries a lease, 6,000 for twenty.
                self.assertLess(walked, n, 'the lease grants read %d entries of tasks_live_idx for %d leases '
                                           'of a %d-task queue: the queue walked' % (walked, LEASES, n))
            finally:
                s.close()
                if job is not None:
                    c.hfctl('cancel', str(job), check=False)

    def queued(self, c):
        return int(c.metric('hfleet_tasks', state='queued'))

    def test_a_job_that_doubles_the_live_tasks_is_analysed_whatever_the_table(self):
        with harness.cluster() as c:
            c.start_coordinator()
            models = [m['model_type'] for m in c.hfctl_json('models')]
            jobs = [self.submit(c, '--suite', 'core')[0] for _ in range(2)]
            c.wait_for(lambda: self.analyses(c) == 2, 30,
                       'both 308-task submits to analyse tasks (analyze_count %d)' % self.analyses(c))
            for job in jobs:
                c.hfctl('cancel', str(job))
            c.wait_for(lambda: self.queued(c) == 0, 60, 'the cancels to leave nothing queued (%d)' % self.queued(c))
            rows = int(c.pg.psql('SELECT count(*) FROM tasks'))
            self.assertGreater(rows, 600)
            _, n = self.submit(c, '--models', ','.join(models[:60]))
            self.assertEqual(n, 60)
            self.assertLess(10 * n, rows, 'the job is under a tenth of the table')
            c.wait_for(lambda: self.analyses(c) == 3, 30,
                       'the 60-task submit, with nothing live, to analyse tasks (analyze_count %d)'
                       % self.analyses(c))
            # 55 tasks with 60 live: not analysed.  A 200-task job after
            # it is (it doubles them): the count then says whether the
            # 55-task one was.
            self.submit(c, '--models', ','.join(models[60:115]))
            self.submit(c, '--models', ','.join(models[115:315]))
            c.wait_for(lambda: self.analyses(c) >= 4, 30,
                       'the 200-task submit to analyse tasks (analyze_count %d)' % self.analyses(c))
            self.assertEqual(self.analyses(c), 4, 'the 55-task submit with 60 tasks live analysed tasks')


if __name__ == '__main__':
    unittest.main()
