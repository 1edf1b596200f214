# SPDX-License-Identifier: MIT
"""Tasks leased ahead (issue 15; docs/protocol.md, "Tasks leased ahead").

A worker may say, per device, how many tasks it will hold queued beyond its
free slots (DeviceFree.ahead, hf-worker's worker.lease_ahead); each starts
the moment a slot frees, without a poll's round trip, a benchmark once the
device is idle (alone, as always).

With raw SP peers (the hostile suite's SpConn and wire encoder), what the
coordinator grants is a fact of one reply:
- a poll of 2 free slots asking 20 ahead on a device of 2 slots gets 10
  tests: at most four times the device's slots of them ahead, whatever it
  asks;
- benchmarks are granted ahead only to a worker that says it queues them
  (DeviceFree.ahead_benchmarks): without it a poll with no free slot gets
  none, and one with a free slot gets one (it takes the device whole), not
  more; with it, a poll with no free slot gets its room's worth;
- a poll without the field (an older worker) gets its free slots' worth.

With a real hf-worker (worker.lease_ahead):
- a job runs to the end, every task decided once in one attempt, and the
  worker did queue tasks;
- a cancel reaches the queued tasks: each is reported cancelled, never run;
- a drain hands the queued tasks back as infrastructure failures, and
  another worker runs them: nothing lost, nothing decided twice;
- a worker killed with tasks queued: their leases expire (6 s here) and
  another worker runs them, each decided once;
- a job of tests and benchmarks: benchmarks are queued ahead (granted while
  other tasks of the device ran) and each still runs alone: no task of the
  worker ran while one of its benchmarks did;
- a job of a higher priority submitted while tests of another are queued
  goes before them: the worker starts its queued tests by their job's
  priority (Assignment.priority), then in the order granted;
- only while tasks are short (worker.lease_ahead_below, 1 s by default,
  with worker.lease_ahead 16 by default):
  a worker whose tasks run longer never queues one, and one whose tasks
  are short starts queuing once 8 have run.  The tests above turn that
  condition off (0) to queue from the first task.
"""
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'hostile'))
import harness  # noqa: E402
import peer  # noqa: E402
import wire  # noqa: E402

BENCHMARK = 2  # TaskKind.KIND_BENCHMARK


class LeaseAhead(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = harness.cluster(heartbeat='1s', lease='6s',
                                 coordinator_set=['auth.required=false', 'scheduler.locality_wait=0'])
        cls.c = cls.cm.__enter__()
        cls.c.start_coordinator()

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    # ---- raw peers: what the coordinator grants ----

    def register(self, s, worker_id, label, slots):
        return peer.register_worker(s, worker_id, labels=[('ahead', label)], slots=slots)

    def poll(self, s, worker_id, session, free, ahead=None, ahead_benchmarks=None):
        return peer.poll_worker(s, worker_id, session, free, ahead=ahead, ahead_benchmarks=ahead_benchmarks)

    def submit(self, label, models, kind='test', **extra):
        args = ['submit', '--models', models, '--backends', 'cpu', '--kind', kind, '--label', 'ahead=' + label,
                '--name', 'ahead-' + label, '--allow-waiting']
        for k, v in extra.items():
            args += ['--' + k.replace('_', '-'), v]
        return int(self.c.hfctl_json(*args)['job_id'])

    def conn(self):
        return peer.worker_conn(self.c.worker_url)

    def test_tests_ahead_up_to_four_times_the_device_slots(self):
        job = self.submit('a', 'bert,gpt2,t5,vit,albert,bart,roberta,distilbert,electra,deberta,xlnet,opt,'
                               'mpnet,layoutlm')
        s = self.conn()
        try:
            session = self.register(s, 'raw-a', 'a', slots=2)
            got = self.poll(s, 'raw-a', session, free=2, ahead=20)
            self.assertEqual(len(got), 10, 'two for the free slots and eight (four per slot) ahead')
            got = self.poll(s, 'raw-a', session, free=0, ahead=1)
            self.assertEqual(len(got), 1, 'one ahead with no slot free')
            got = self.poll(s, 'raw-a', session, free=1)
            self.assertEqual(len(got), 1, 'a poll without the field gets its free slots\' worth')
        finally:
            s.close()
            self.c.hfctl('cancel', str(job), check=False)

    def test_benchmarks_ahead_only_to_a_worker_that_queues_them(self):
        job = self.submit('b', 'bert,gpt2,t5,vit,albert,bart', kind='benchmark')
        s = self.conn()
        try:
            session = self.register(s, 'raw-b', 'b', slots=1)
            self.assertEqual(self.poll(s, 'raw-b', session, free=0, ahead=4), [],
                             'a benchmark was granted to queue behind a busy device')
            self.assertEqual(self.poll(s, 'raw-b', session, free=0, ahead=4, ahead_benchmarks=False), [],
                             'a benchmark was granted to queue behind a busy device')
            got = self.poll(s, 'raw-b', session, free=1, ahead=4)
            self.assertEqual(len(got), 1, 'a benchmark takes the free device whole, nothing more')
            self.assertEqual(wire.first(got[0], 9), BENCHMARK)
            got = self.poll(s, 'raw-b', session, free=0, ahead=3, ahead_benchmarks=True)
            self.assertEqual(len(got), 3, 'benchmarks queued ahead: the room asked for (four per slot at most)')
            self.assertEqual({wire.first(a, 9) for a in got}, {BENCHMARK})
        finally:
            s.close()
            self.c.hfctl('cancel', str(job), check=False)

    # ---- a real hf-worker ----

    def start(self, wid, label, slots, sleep, ahead, below='0', runner_args=''):
        w = self.c.start_worker(wid, slots=slots, runner_args='--sleep %s %s' % (sleep, runner_args), extra_args=(
            '--set', 'worker.labels=ahead=' + label, '--set', 'worker.lease_ahead=%d' % ahead,
            '--set', 'worker.lease_ahead_below=' + below, '--log-level', 'debug'))
        self.c.wait_for(lambda: any(x['worker_id'] == wid and x['connected']
                                    for x in self.c.hfctl_json('workers')), 60, wid + ' to register')
        return w

    def job_rows(self, job):
        return self.c.pg.rows("SELECT t.id, t.state, (SELECT count(*) FROM attempts a WHERE a.task_id = t.id), "
                              "(SELECT count(*) FROM results r WHERE r.task_id = t.id) "
                              "FROM tasks t WHERE t.job_id = %d ORDER BY t.id" % job)

    def wait_job(self, job, timeout=90):
        self.c.wait_for(lambda: self.c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done',
                        timeout, 'job %d to end' % job)

    def test_real_worker_runs_a_job_with_tasks_ahead(self):
        w = self.start('real-c', 'c', slots=2, sleep=0.05, ahead=4)
        try:
            models = 'bert,gpt2,t5,vit,albert,bart,roberta,distilbert,electra,deberta,xlnet,opt'
            job = self.submit('c', models)
            self.wait_job(job)
            rows = self.job_rows(job)
            self.assertEqual(len(rows), 12)
            for tid, state, attempts, results in rows:
                self.assertEqual((state, attempts, results), ('passed', '1', '1'),
                                 'task %s: state %s, %s attempts, %s results' % (tid, state, attempts, results))
            self.assertIn('until a slot frees', w.log(), 'the worker queued no task ahead')
        finally:
            w.stop()

    def test_benchmarks_queued_ahead_run_alone(self):
        # Tests and benchmarks of 0.15 s on a device of 2 slots: the
        # benchmarks are granted ahead while other tasks of the device run
        # (the worker queues them), and each still has the device alone.
        w = self.start('real-k', 'k', slots=2, sleep=0.15, ahead=4)
        try:
            job = self.submit('k', 'bert,gpt2,t5,vit,albert,bart,roberta,distilbert,electra,deberta',
                              kind='test,benchmark')
            self.wait_job(job)
            rows = self.job_rows(job)
            self.assertEqual(len(rows), 20)
            for tid, state, attempts, results in rows:
                self.assertEqual((state, attempts, results), ('passed', '1', '1'),
                                 'task %s: state %s, %s attempts, %s results' % (tid, state, attempts, results))
            spans = self.c.pg.rows(
                "SELECT t.id, t.kind, a.granted_at, r.started_at, r.finished_at FROM tasks t "
                "JOIN attempts a ON a.task_id = t.id JOIN results r ON r.task_id = t.id "
                "WHERE t.job_id = %d ORDER BY r.started_at" % job)
            shared = self.c.pg.psql(
                "SELECT string_agg(b.task_id || ' with ' || o.task_id, ', ') FROM results b "
                "JOIN tasks bt ON bt.id = b.task_id AND bt.kind = 'benchmark' AND bt.job_id = %d "
                "JOIN results o ON o.task_id <> b.task_id AND o.worker_id = b.worker_id "
                "AND o.started_at < b.finished_at AND b.started_at < o.finished_at" % job)
            self.assertFalse(shared, 'a benchmark shared its device: %s; (task, kind, granted, started, finished): %r'
                             % (shared, spans))
            ahead = self.c.pg.psql(
                "SELECT count(*) FROM tasks bt JOIN attempts a ON a.task_id = bt.id "
                "WHERE bt.job_id = %d AND bt.kind = 'benchmark' AND EXISTS (SELECT 1 FROM results o "
                "WHERE o.task_id <> bt.id AND o.worker_id = a.worker_id "
                "AND o.started_at < a.granted_at AND a.granted_at < o.finished_at)" % job)
            self.assertGreater(int(ahead), 0, 'no benchmark was granted while another task of the device ran: '
                                              'none was queued ahead; %r' % (spans,))
            # A queued benchmark holds its device: no test granted after it
            # (a later grant, a later transaction) starts before it.
            passed = self.c.pg.psql(
                "SELECT string_agg(t.id || ' passed ' || bt.id, ', ') FROM tasks bt "
                "JOIN attempts ba ON ba.task_id = bt.id JOIN results br ON br.task_id = bt.id "
                "JOIN attempts ta ON ta.worker_id = ba.worker_id AND ta.granted_at > ba.granted_at "
                "JOIN tasks t ON t.id = ta.task_id AND t.kind = 'test' AND t.job_id = bt.job_id "
                "JOIN results tr ON tr.task_id = t.id AND tr.started_at < br.started_at "
                "WHERE bt.job_id = %d AND bt.kind = 'benchmark'" % job)
            self.assertFalse(passed, 'a test granted after a queued benchmark started before it: %s; %r'
                             % (passed, spans))
        finally:
            w.stop()

    def test_higher_priority_job_goes_before_queued_tests(self):
        # One slot is held by a long test (albert, the first, 4 s); the
        # other runs tests of 0.4 s with the queue of tests leased ahead
        # behind it.  A job of a higher priority submitted meanwhile is
        # granted at the next refill and must start before a test that was
        # queued before it was submitted: first in the queue, not last.
        w = self.start('real-p', 'p', slots=2, sleep=0.4, ahead=4, runner_args='--sleep-model albert=4')
        try:
            low = self.submit('p', 'bert,gpt2,t5,vit,albert,bart,roberta,distilbert,electra', priority='-5')
            self.c.wait_for(lambda: w.log().count('until a slot frees') >= 2, 30, 'tests queued ahead')
            high = self.submit('p', 'opt,xlnet', priority='5')
            self.wait_job(high)
            self.wait_job(low)
            for job in (low, high):
                self.assertEqual({(r[1], r[2], r[3]) for r in self.job_rows(job)}, {('passed', '1', '1')})
            overtaken = self.c.pg.psql(
                "SELECT string_agg(t.id::text, ',') FROM tasks t JOIN attempts a ON a.task_id = t.id "
                "JOIN results r ON r.task_id = t.id WHERE t.job_id = %d "
                "AND a.granted_at < (SELECT created_at FROM jobs WHERE id = %d) "
                "AND r.started_at > (SELECT min(r2.started_at) FROM results r2 JOIN tasks t2 ON t2.id = r2.task_id "
                "WHERE t2.job_id = %d)" % (low, high, high))
            timeline = self.c.pg.rows(
                "SELECT t.job_id, t.model_type, to_char(a.granted_at, 'SS.MS'), to_char(r.started_at, 'SS.MS') "
                "FROM tasks t JOIN attempts a ON a.task_id = t.id JOIN results r ON r.task_id = t.id "
                "WHERE t.job_id IN (%d, %d) ORDER BY r.started_at" % (low, high))
            created = self.c.pg.psql("SELECT to_char(created_at, 'SS.MS') FROM jobs WHERE id = %d" % high)
            self.assertTrue(overtaken, 'every test leased ahead before the higher-priority job was submitted '
                                       '(at %s) started before it: its tests were queued behind them. '
                                       '(job, model, granted, started): %r' % (created, timeline))
        finally:
            w.stop()

    def test_long_tasks_are_not_leased_ahead(self):
        w = self.start('real-g', 'g', slots=2, sleep=0.3, ahead=4, below='100ms')
        try:
            job = self.submit('g', 'bert,gpt2,t5,vit,albert,bart,roberta,distilbert,electra,deberta')
            self.wait_job(job)
            self.assertEqual([r[1] for r in self.job_rows(job)], ['passed'] * 10)
            self.assertNotIn('until a slot frees', w.log(), 'a task was queued behind tasks of 300 ms')
        finally:
            w.stop()

    def test_short_tasks_open_leasing_ahead(self):
        # The default condition (1 s): the first 8 tasks run as without
        # leasing ahead, then the worker asks for tasks beyond its free slots.
        w = self.c.start_worker('real-h', slots=2, runner_args='--sleep 0.02', extra_args=(
            '--set', 'worker.labels=ahead=h', '--set', 'worker.lease_ahead=4', '--log-level', 'debug'))
        try:
            self.c.wait_for(lambda: any(x['worker_id'] == 'real-h' and x['connected']
                                        for x in self.c.hfctl_json('workers')), 60, 'real-h to register')
            job = int(self.c.hfctl_json('submit', '--suite', 'encoder-only', '--backends', 'cpu', '--kind', 'test',
                                        '--label', 'ahead=h', '--name', 'ahead-h', '--allow-waiting')['job_id'])
            self.wait_job(job, 120)
            rows = self.job_rows(job)
            self.assertGreater(len(rows), 12)
            self.assertEqual({r[1] for r in rows}, {'passed'})
            self.assertEqual({(r[2], r[3]) for r in rows}, {('1', '1')}, 'a task ran twice')
            log = w.log()
            self.assertIn('until a slot frees', log, 'short tasks, and nothing was leased ahead')
            before = log[:log.index('until a slot frees')].count(') finished: ')
            self.assertGreaterEqual(before, 8, 'a task was leased ahead before 8 short ones had run')
        finally:
            w.stop()

    def test_cancel_reaches_queued_tasks(self):
        w = self.start('real-d', 'd', slots=1, sleep=3, ahead=3)
        try:
            job = self.submit('d', 'bert,gpt2,t5,vit')
            self.c.wait_for(lambda: w.log().count('until a slot frees') >= 2, 30, 'tasks queued ahead')
            self.c.hfctl('cancel', str(job))
            self.c.wait_for(lambda: self.c.hfctl_json('status', str(job))['state'] == 'cancelled', 30,
                            'the job cancelled')
            # The cancel reaches the worker with its next poll: the queued
            # tasks go without starting, each with a cancelled result.
            self.c.wait_for(lambda: w.log().count('cancelled before it started') >= 2, 30,
                            'the queued tasks cancelled on the worker')
            self.c.wait_for(lambda: int(self.c.pg.psql(
                "SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.job_id = %d "
                "AND r.status = 'cancelled' AND r.reason LIKE 'not started: cancelled%%'" % job)) >= 2, 30,
                'their cancelled results stored')
            states = self.c.pg.psql("SELECT string_agg(DISTINCT state::text, ',') FROM tasks WHERE job_id = %d" % job)
            self.assertEqual(states, 'cancelled')
        finally:
            w.stop()

    def test_drain_hands_queued_tasks_back(self):
        w = self.start('real-e', 'e', slots=1, sleep=2, ahead=3)
        heir = None
        try:
            job = self.submit('e', 'bert,gpt2,t5,vit')
            self.c.wait_for(lambda: w.log().count('until a slot frees') >= 2, 30, 'tasks queued ahead')
            w.kill(signal.SIGTERM)   # drain: the running task finishes
            self.c.wait_for(lambda: 'handing back' in w.log(), 30, 'the queued tasks handed back')
            heir = self.start('real-e2', 'e', slots=2, sleep=0.05, ahead=0)
            self.wait_job(job)
            rows = self.job_rows(job)
            self.assertEqual(len(rows), 4)
            for tid, state, attempts, results in rows:
                self.assertEqual(state, 'passed', 'task %s' % tid)
            handed = self.c.pg.psql("SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id "
                                    "WHERE t.job_id = %d AND r.reason LIKE 'not started: the worker is draining%%'"
                                    % job)
            self.assertGreaterEqual(int(handed), 2)
            decided = self.c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND result_id IS NOT NULL" % job)
            self.assertEqual(decided, '4')
        finally:
            w.stop()
            if heir:
                heir.stop()

    def test_killed_worker_queued_tasks_expire_and_run_elsewhere(self):
        w = self.start('real-f', 'f', slots=1, sleep=2, ahead=3)
        heir = None
        try:
            job = self.submit('f', 'bert,gpt2,t5,vit')
            self.c.wait_for(lambda: w.log().count('until a slot frees') >= 2, 30, 'tasks queued ahead')
            w.kill()   # SIGKILL: no drain, no results for what it held
            heir = self.start('real-f2', 'f', slots=2, sleep=0.05, ahead=2)
            self.wait_job(job, 90)
            rows = self.job_rows(job)
            self.assertEqual([r[1] for r in rows], ['passed'] * 4, rows)
            decided = self.c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND result_id IS NOT NULL" % job)
            self.assertEqual(decided, '4')
            twice = self.c.pg.psql("SELECT count(*) FROM (SELECT r.task_id FROM results r JOIN tasks t "
                                   "ON t.id = r.task_id WHERE t.job_id = %d AND r.status = 'passed' "
                                   "GROUP BY r.task_id HAVING count(*) > 1) x" % job)
            self.assertEqual(twice, '0', 'a task passed twice')
        finally:
            w.stop()
            if heir:
                heir.stop()


if __name__ == '__main__':
    unittest.main(verbosity=2)
