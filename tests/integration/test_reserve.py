# SPDX-License-Identifier: MIT
"""Tasks reserved at the coordinator (issue 15; docs/protocol.md, "Tasks
reserved at the coordinator").

For a worker that does not lease tasks ahead itself, while its last task
ran shorter than scheduler.reserve_below (1 s), the coordinator commits the
lease of the next test for each of its slots before the slot frees, and
hands it over from memory at the worker's first poll with a free slot.

With raw SP peers (the hostile suite's SpConn and wire encoder), every
reservation is a fact of the database and of one reply:
- after a short result the next test is leased to the worker before it
  polls, and its next poll with a free slot gets exactly that task;
- a worker that says it leases ahead itself (Register.leases_ahead, as
  hf-worker does) gets no reservation, nor does one whose task ran long;
- a reservation not handed over within twice reserve_below is released:
  the task is queued again at once (its attempt ended "released", no
  backoff, no error), and another worker takes it; a released attempt does
  not count against the job's max_retries;
- a drained worker's reservation is released at its next poll;
- a worker that stops polling: its reservation is released when the lease
  runs out, not counted as a lost lease;
- a cancelled reservation is never handed over.

With a real hf-worker that does not lease ahead (worker.lease_ahead=0): a
job of short tasks runs to the end with reservations handed over, every
task decided once, by one result.
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'hostile'))
import harness  # noqa: E402
import peer  # noqa: E402
import wire  # noqa: E402

MODELS = 'bert,gpt2,t5,vit,albert,bart,roberta,distilbert'


class Reservations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = harness.cluster(heartbeat='1s', lease='6s',
                                 coordinator_set=['auth.required=false', 'scheduler.locality_wait=0',
                                                  'scheduler.reserve_below=1s', 'log.level=debug'])
        cls.c = cls.cm.__enter__()
        cls.c.start_coordinator()

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    # ---- a raw peer ----

    def conn(self):
        s = peer.worker_conn(self.c.worker_url)
        self.addCleanup(s.close)
        return s

    def register(self, s, worker_id, label, leases_ahead=None):
        return peer.register_worker(s, worker_id, labels=[('reserve', label)], leases_ahead=leases_ahead)

    def poll(self, s, worker_id, session, free, running=()):
        """The (task, attempt) of each assignment the poll gets."""
        return [(wire.first(a, 1), wire.first(a, 2))
                for a in peer.poll_worker(s, worker_id, session, free, running=running)]

    def result(self, s, worker_id, session, task, ran_s):
        now = time.time()
        r = s.call(wire.envelope('results', wire.result_batch(worker_id, session=session, results=[
            wire.task_result(task_id=task[0], attempt=task[1], status=wire.STATUS['passed'], metrics_json='{}',
                             env_json='{}', started_at=now - ran_s, finished_at=now)])), timeout=10)
        self.assertEqual(r.kind, 'ack', repr(r))

    def submit(self, label, *extra):
        job = int(self.c.hfctl_json('submit', '--models', MODELS, '--backends', 'cpu', '--kind', 'test',
                                    '--label', 'reserve=' + label, '--name', 'reserve-' + label,
                                    '--allow-waiting', *extra)['job_id'])
        self.addCleanup(self.c.hfctl, 'cancel', str(job), check=False)
        return job

    def leased_to(self, job, worker_id):
        return [(int(t), int(a)) for t, a in self.c.pg.rows(
            "SELECT id, attempt FROM tasks WHERE job_id = %d AND state = 'leased' AND worker_id = '%s' "
            "ORDER BY id" % (job, worker_id))]

    def reserved(self, job, worker_id, one_leased):
        """Waits for the task reserved for worker_id besides one_leased (the
        one it runs, if any) -> (task id, attempt)."""
        out = []

        def found():
            out[:] = [t for t in self.leased_to(job, worker_id) if t != one_leased]
            return len(out) == 1
        self.c.wait_for(found, 10, 'a task of job %d reserved for %s' % (job, worker_id))
        return out[0]

    def metric(self, event):
        return int(self.c.metric('hfleet_reservations_total', event=event))

    def started_short(self, label, worker_id, leases_ahead=None, submit_args=()):
        """A peer that ran one short task of a new job: (conn, session, job,
        the task it ran)."""
        job = self.submit(label, *submit_args)
        s = self.conn()
        session = self.register(s, worker_id, label, leases_ahead)
        got = self.poll(s, worker_id, session, free=1)
        self.assertEqual(len(got), 1, repr(got))
        self.result(s, worker_id, session, got[0], 0.01)
        return s, session, job, got[0]

    # ---- reservations ----

    def test_next_test_reserved_and_handed_over_at_once(self):
        made, handed = self.metric('made'), self.metric('handed_over')
        s, session, job, first = self.started_short('a', 'raw-a')
        nxt = self.reserved(job, 'raw-a', first)
        # Counted once the loop has the commit (the row may be seen first).
        self.c.wait_for(lambda: self.metric('made') - made == 1, 10, 'the reservation to be counted')
        granted = float(self.c.pg.psql('SELECT extract(epoch FROM granted_at) FROM attempts '
                                       'WHERE task_id = %d AND attempt = %d' % nxt))
        polled = time.time()
        self.assertLess(granted, polled, 'the lease was not committed before the poll')
        self.assertEqual(self.poll(s, 'raw-a', session, free=1), [nxt], 'the poll got another task')
        # (The hand-over reserves the next one at once: 'made' goes on.)
        self.assertEqual(self.metric('handed_over') - handed, 1)
        # From here on a lease like any other: listed as running, renewed.
        self.assertEqual(self.poll(s, 'raw-a', session, free=0, running=[nxt]), [])
        self.assertIn(nxt, self.leased_to(job, 'raw-a'))

    def test_no_reservation_for_a_worker_that_leases_ahead(self):
        s, session, job, first = self.started_short('b', 'raw-b', leases_ahead=True)
        time.sleep(1.5)
        self.assertEqual(self.leased_to(job, 'raw-b'), [], 'a task was reserved for a worker that leases ahead')

    def test_no_reservation_after_a_long_task(self):
        job = self.submit('c')
        s = self.conn()
        session = self.register(s, 'raw-c', 'c')
        got = self.poll(s, 'raw-c', session, free=1)
        self.result(s, 'raw-c', session, got[0], 1.5)
        time.sleep(1.5)
        self.assertEqual(self.leased_to(job, 'raw-c'), [], 'a task was reserved after one that ran 1.5 s')

    def ended(self, task):
        return self.c.pg.psql('SELECT end_reason FROM attempts WHERE task_id = %d AND attempt = %d' % task)

    def test_released_when_not_handed_over(self):
        released = self.metric('released')
        s, session, job, first = self.started_short('d', 'raw-d')
        nxt = self.reserved(job, 'raw-d', first)
        self.release_by_waiting(s, 'raw-d', session, job, nxt)
        self.c.wait_for(lambda: self.metric('released') - released == 1, 10, 'the release to be counted')
        # Queued again at once (no backoff), not decided: another worker takes it.
        other = self.conn()
        osession = self.register(other, 'raw-d2', 'd')
        got = self.poll(other, 'raw-d2', osession, free=1)
        self.assertEqual(got, [(nxt[0], nxt[1] + 1)], 'the released task did not go to the next worker')

    def release_by_waiting(self, s, worker_id, session, job, task):
        """Polls with no free slot until task, reserved for worker_id, is
        released (twice reserve_below)."""
        deadline = time.time() + 4
        while time.time() < deadline and task in self.leased_to(job, worker_id):
            self.assertEqual(self.poll(s, worker_id, session, free=0), [])
            time.sleep(0.3)
        self.c.wait_for(lambda: self.ended(task) == 'released', 10, 'the reservation to be released')

    def test_a_released_reservation_is_not_a_retry(self):
        # max_retries 1: one infrastructure failure of a run is retried.  The
        # released reservation was attempt 1, the run that fails attempt 2.
        s, session, job, first = self.started_short('i', 'raw-i', submit_args=('--max-retries', '1'))
        nxt = self.reserved(job, 'raw-i', first)
        self.release_by_waiting(s, 'raw-i', session, job, nxt)
        other = self.conn()
        osession = self.register(other, 'raw-i2', 'i')
        got = self.poll(other, 'raw-i2', osession, free=1)
        self.assertEqual(got, [(nxt[0], nxt[1] + 1)])
        now = time.time()
        r = other.call(wire.envelope('results', wire.result_batch('raw-i2', session=osession, results=[
            wire.task_result(task_id=got[0][0], attempt=got[0][1], status=wire.STATUS['error'],
                             reason='device lost', infrastructure=True, metrics_json='{}', env_json='{}',
                             started_at=now - 2, finished_at=now)])), timeout=10)
        self.assertEqual(r.kind, 'ack', repr(r))
        self.assertEqual(self.c.pg.psql('SELECT retried FROM results WHERE task_id = %d AND attempt = %d' % got[0]),
                         't', 'the first failure of a run was not retried: the released reservation counted')
        self.assertNotEqual(self.c.pg.psql('SELECT state FROM tasks WHERE id = %d' % nxt[0]), 'error')

    def test_released_on_drain(self):
        s, session, job, first = self.started_short('e', 'raw-e')
        nxt = self.reserved(job, 'raw-e', first)
        self.c.hfctl('drain', 'raw-e')
        self.addCleanup(self.c.hfctl, 'undrain', 'raw-e', check=False)
        self.assertEqual(self.poll(s, 'raw-e', session, free=1), [], 'a drained worker was handed a task')
        self.c.wait_for(lambda: self.ended(nxt) == 'released', 10, 'the reservation to be released')
        self.c.wait_for(lambda: self.c.pg.psql('SELECT state FROM tasks WHERE id = %d' % nxt[0]) == 'queued', 10,
                        'the task to be queued again')

    def test_released_when_the_worker_stops_polling(self):
        s, session, job, first = self.started_short('f', 'raw-f')
        nxt = self.reserved(job, 'raw-f', first)
        s.close()
        # The lease (6 s) runs out unrenewed: released, not lost.
        self.c.wait_for(lambda: self.ended(nxt) == 'released', 20, 'the reservation to be released')
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id "
                                        "WHERE t.job_id = %d AND a.end_reason = 'lease-expired'" % job),
                         '0', 'a reservation counted as a lost lease')
        self.assertNotIn('task %d attempt %d: lease held' % nxt, self.c.coordinator.log())

    def test_cancelled_reservation_is_not_handed_over(self):
        s, session, job, first = self.started_short('g', 'raw-g')
        nxt = self.reserved(job, 'raw-g', first)
        self.c.hfctl('cancel', str(job))
        self.c.wait_for(lambda: self.c.pg.psql('SELECT state FROM tasks WHERE id = %d' % nxt[0]) == 'cancelled',
                        10, 'the reserved task to be cancelled')
        self.assertEqual(self.poll(s, 'raw-g', session, free=1), [])

    # ---- a real worker that does not lease ahead ----

    def test_real_worker_without_lease_ahead(self):
        handed = self.metric('handed_over')
        w = self.c.start_worker('real-h', slots=1, runner_args='--sleep 0.05', extra_args=(
            '--set', 'worker.labels=reserve=h', '--set', 'worker.lease_ahead=0'))
        self.addCleanup(w.stop)
        job = self.submit('h')
        self.c.wait_for(lambda: self.c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 90,
                        'job %d to end' % job)
        rows = self.c.pg.rows(
            "SELECT t.id, t.state, (SELECT count(*) FROM results r WHERE r.task_id = t.id), "
            "(SELECT count(*) FROM attempts a WHERE a.task_id = t.id AND a.end_reason IS DISTINCT FROM "
            "'released') FROM tasks t WHERE t.job_id = %d" % job)
        self.assertEqual(len(rows), 8)
        for tid, state, results, ran in rows:
            self.assertEqual((state, results, ran), ('passed', '1', '1'),
                             'task %s: %s, %s results, %s attempts that ran' % (tid, state, results, ran))
        self.assertGreater(self.metric('handed_over') - handed, 0, 'no reservation was handed over')


if __name__ == '__main__':
    unittest.main()
