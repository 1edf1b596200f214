# SPDX-License-Identifier: MIT
"""Dispatch without waiting for a heartbeat (issue 15): held polls.

The coordinator runs with a 30 s heartbeat, so a worker that had to wait
for its next poll would wait up to half a minute.  Raw SP peers (the
hostile suite's SpConn and wire encoder) send exactly one poll each, so
what the reply holds is an ordering fact, not a timing: a poll sent before
the submit whose reply carries the task was held and woken.

- a held poll (Poll.hold_ms) is answered with the task submitted after it;
- a poll without hold_ms (an older worker) is answered at once, with
  nothing, as before;
- a held poll whose peer hangs up is forgotten: the next task goes to a
  worker still waiting, not to the one that left;
- a poll sent to replace a held poll that was meanwhile answered with a
  task (Poll.replaces_held) takes nothing: its free slots were counted
  before that task came, and a worker of many slots was given more tasks
  than it had slots; the same poll without the flag takes the task;
- a real hf-worker with the 30 s heartbeat runs a job of three tasks on
  its one slot, each taken up as the last ends (slot free -> next lease).
"""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'hostile'))
import harness  # noqa: E402
import peer  # noqa: E402
import wire  # noqa: E402

HEARTBEAT_S = 30
HOLD_MS = 25000  # what the raw peers ask: under the heartbeat and poll_hold_max


class HeldPolls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cm = harness.cluster(heartbeat='%ds' % HEARTBEAT_S, lease='120s',
                                 coordinator_set=['auth.required=false', 'log.level=debug'])
        cls.c = cls.cm.__enter__()
        cls.c.start_coordinator()

    @classmethod
    def tearDownClass(cls):
        cls.cm.__exit__(None, None, None)

    def conn(self):
        return peer.worker_conn(self.c.worker_url)

    def register(self, s, worker_id, label):
        return peer.register_worker(s, worker_id, labels=[('dispatch', label)])

    def poll_body(self, worker_id, session, hold_ms=None, replaces_held=None):
        return wire.envelope('poll', wire.poll(worker_id, free=[wire.device_free(index=0, free_slots=1)],
                                               session=session, hold_ms=hold_ms, replaces_held=replaces_held))

    def submit(self, label, name):
        out = self.c.hfctl_json('submit', '--models', 'bert', '--backends', 'cpu', '--kind', 'test',
                                '--label', 'dispatch=' + label, '--name', name)
        self.assertEqual(int(out['task_count']), 1)
        return int(out['job_id'])

    def held_poll_in_thread(self, s, body, out):
        def run():
            try:
                out['reply'] = s.call(body, timeout=HOLD_MS / 1000 + 15)
            except Exception as e:  # reported by the test
                out['error'] = e
        t = threading.Thread(target=run)
        t.start()
        return t

    def wait_log(self, text, what):
        self.c.wait_for(lambda: text in self.c.coordinator.log(), 60, what)

    def assert_assigned(self, out, what):
        self.assertNotIn('error', out, what)
        r = out['reply']
        self.assertEqual(r.kind, 'poll_reply', '%s: %r' % (what, r))
        got = wire.all_of(r.body, 1)  # PollReply.assignments
        self.assertEqual(len(got), 1, '%s: the held poll was answered without the task submitted after '
                         'it (hold_ended=%s)' % (what, wire.first(r.body, 5, 0)))
        return got[0]

    def test_held_poll_is_answered_with_the_next_task(self):
        s = self.conn()
        try:
            session = self.register(s, 'held-a', 'a')
            out = {}
            t = self.held_poll_in_thread(s, self.poll_body('held-a', session, HOLD_MS), out)
            time.sleep(0.5)  # the poll reaches the coordinator first (if not, it takes the task at once)
            t0 = time.time()
            job = self.submit('a', 'held-a')
            t.join()
            elapsed = time.time() - t0
            self.assert_assigned(out, 'one held poll, then one task submitted')
            print('dispatch: submit -> lease through a held poll: %.3f s (heartbeat %d s)' % (elapsed, HEARTBEAT_S))
            self.c.hfctl('cancel', str(job), check=False)
        finally:
            s.close()

    def test_poll_without_hold_is_answered_at_once(self):
        s = self.conn()
        try:
            session = self.register(s, 'old-b', 'b')
            # Nothing is queued for it: an older worker's poll still gets its
            # empty reply at once (a held one would come after 30 s, past
            # this call's 10 s).
            r = s.call(self.poll_body('old-b', session), timeout=10)
            self.assertEqual(r.kind, 'poll_reply', repr(r))
            self.assertEqual(wire.all_of(r.body, 1), [])
            self.assertEqual(wire.first(r.body, 5, 0), 0, 'a poll that asked for no hold was held')
        finally:
            s.close()

    def test_held_poll_of_a_peer_that_hung_up_is_forgotten(self):
        ghost, heir = self.conn(), self.conn()
        try:
            g_session = self.register(ghost, 'ghost', 'c')
            h_session = self.register(heir, 'heir', 'c')
            ghost.send_request(self.poll_body('ghost', g_session, HOLD_MS))
            time.sleep(0.5)
            ghost.close()
            self.wait_log('worker "ghost" hung up while its poll was held',
                          'the coordinator to forget the held poll of a peer that hung up')
            out = {}
            t = self.held_poll_in_thread(heir, self.poll_body('heir', h_session, HOLD_MS), out)
            time.sleep(0.5)
            job = self.submit('c', 'heir')
            t.join()
            # Had the ghost's poll stayed held, it was the oldest and would
            # have been given the task (leased to a peer that is gone).
            self.assert_assigned(out, 'a worker waiting after another hung up')
            leased_to = self.c.pg.psql("SELECT a.worker_id FROM attempts a JOIN tasks t ON t.id = a.task_id "
                                       "WHERE t.job_id = %d" % job)
            self.assertEqual(leased_to, 'heir')
            self.c.hfctl('cancel', str(job), check=False)
        finally:
            heir.close()

    def test_poll_replacing_an_answered_held_poll_takes_nothing(self):
        s = self.conn()
        try:
            session = self.register(s, 'stale-d', 'd')
            out = {}
            t = self.held_poll_in_thread(s, self.poll_body('stale-d', session, HOLD_MS), out)
            time.sleep(0.5)
            job_a = self.submit('d', 'stale-a')
            t.join()
            self.assert_assigned(out, 'the held poll woken by the first task')
            job_b = self.submit('d', 'stale-b')
            # Sent as if the worker had not yet read that reply: one slot
            # free, which the first task has taken.
            r = s.call(self.poll_body('stale-d', session, replaces_held=True), timeout=10)
            self.assertEqual(r.kind, 'poll_reply', repr(r))
            self.assertEqual(wire.all_of(r.body, 1), [],
                             'a poll replacing an answered held poll was given a task for a slot '
                             'the earlier reply had filled')
            # The control: the same poll, not replacing, takes the task.
            r = s.call(self.poll_body('stale-d', session), timeout=10)
            self.assertEqual(len(wire.all_of(r.body, 1)), 1, repr(r))
            for job in (job_a, job_b):
                self.c.hfctl('cancel', str(job), check=False)
        finally:
            s.close()

    def test_real_worker_long_heartbeat(self):
        w = self.c.start_worker('real-d', slots=1, extra_args=('--set', 'worker.labels=dispatch=d'))
        self.c.wait_for(lambda: any(x['worker_id'] == 'real-d' and x['connected']
                                    for x in self.c.hfctl_json('workers')), 60, 'real-d to register')
        time.sleep(0.5)
        t0 = time.time()
        out = self.c.hfctl_json('submit', '--models', 'bert,gpt2,t5', '--backends', 'cpu', '--kind', 'test',
                                '--label', 'dispatch=d', '--name', 'real-d')
        job = int(out['job_id'])
        self.c.wait_for(lambda: self.c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done',
                        HEARTBEAT_S * 3, 'the job of the worker with the long heartbeat')
        elapsed = time.time() - t0
        # Three tasks one after another on one slot: each lease came from a
        # held poll or the poll sent as the last task ended, not from a
        # heartbeat (the first would have come up to 30 s after the submit,
        # and no beat polls while a held poll is out).
        polls_at_beats = w.log().count('heartbeat')  # informative only
        print('dispatch: 3 tasks on one slot, 30 s heartbeat: %.2f s (%d heartbeat lines)' % (elapsed, polls_at_beats))
        self.assertLess(elapsed, HEARTBEAT_S * 0.9,
                        'the tasks waited for heartbeats: %.1f s for three no-op tasks' % elapsed)


if __name__ == '__main__':
    unittest.main(verbosity=2)
