#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A cancel of a large job in slices (issue 15): the job is cancelled at
once and its queued tasks a slice per database operation after the reply
(scheduler.cancel_slice, 5 here so a job of about a hundred tasks takes
many slices), each task exactly once; no task of the job is leased after
the reply; a result for one of its tasks that arrives between two slices is
stored or refused as before (stale for a cancelled lease, refused for a
task never leased to the sender); a coordinator killed between two slices
finishes the cancel when it starts again; and a retry waits for the slices.

Slices are held up on purpose by a row lock another PostgreSQL session
takes on one queued task (its slice's UPDATE waits for it), so "between two
slices" does not depend on timing.  Real coordinator, workers and
database; a raw worker (tests/hostile's SP peer) where the test needs to
send a result at a chosen moment."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'hostile'))
import harness  # noqa: E402
import peer  # noqa: E402
import wire  # noqa: E402

SLICE = 5


def job_state(c, job):
    return c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job)


def count(c, sql):
    return int(c.pg.psql(sql))


def cancelled_metric(c):
    with urllib.request.urlopen(c.http_url + '/metrics', timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^hfleet_tasks_finished_total\{outcome="cancelled"\} (\S+)', text, re.M)
    return int(float(m.group(1))) if m else 0


def slice_waiting(c):
    """Is a statement of the coordinator waiting for a row lock?"""
    return count(c, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                 " AND query LIKE '%state = ''cancelled''%'") > 0


class CancelTest(harness.ClusterCase):
    cluster_kwargs = dict(heartbeat='200ms', coordinator_set=[
        'scheduler.cancel_slice=%d' % SLICE,
        # Every task written by its submit: a cancel while a submit's
        # tasks are still being written is test_submit_slices.py's.
        'scheduler.submit_slice=1000000',
        # The raw worker sends no token: what is tested lies behind
        # authentication (tests/integration/test_auth.py tests that).
        'auth.required=false'])

    def setUp(self):
        self.locks = []
        self.conns = []
        super().setUp()

    def tearDown(self):
        for lk in self.locks:
            lk.release()
        for conn in self.conns:
            conn.close()

    # -- helpers --
    def submit_waiting(self, name, batch_sizes='1,2,3,4'):
        """A job no connected worker can run (cuda): its tasks stay queued."""
        out = json.loads(self.c.hfctl('submit', '--models', 'bert,gpt2,t5,vit,roberta,albert,bart,whisper',
                                      '--backends', 'cuda', '--batch-sizes', batch_sizes, '--precision',
                                      'fp32,fp16', '--allow-waiting', '--name', name, '--json').stdout)
        self.assertGreater(out['task_count'], 8 * SLICE)
        return out['job_id'], out['task_count']

    def task_ids(self, job):
        return [int(r[0]) for r in self.c.pg.rows('SELECT id FROM tasks WHERE job_id = %d ORDER BY id' % job)]

    def lock(self, task_id, table='tasks'):
        # FOR UPDATE on one row of tasks (or of jobs): a slice (or a cancel)
        # whose UPDATE takes that row waits, and the database thread with it.
        lk = harness.PgSession(self.c)
        lk.take('SELECT 1 FROM %s WHERE id = %d FOR UPDATE' % (table, task_id))
        self.locks.append(lk)
        return lk

    def raw_worker(self, worker_id, labels=None, slots=2):
        """A raw SP connection to the worker port, registered as worker_id
        with one cpu device; returns (connection, session)."""
        conn = peer.SpConn(self.c.worker_url, timeout=30)
        self.conns.append(conn)
        conn.handshake()
        r = conn.call(wire.envelope('register', wire.register(worker_id=worker_id, labels=labels,
                                                              devices=[wire.device(slots=slots)])))
        self.assertEqual(r.kind, 'register_reply', repr(r))
        return conn, wire.first(r.body, 7)

    def wait_cancelled(self, job, timeout=60):
        self.c.wait_for(lambda: self.c.hfctl_json('status', str(job))['state'] == 'cancelled', timeout,
                        'job %d to be cancelled whole' % job)

    def assert_cancelled_whole(self, job, n):
        """Every task of the job cancelled once: none queued or leased, no
        attempt open, one history row (the summary) each."""
        c = self.c
        self.assertEqual(job_state(c, job), 'cancelled')
        self.assertEqual(count(c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state IN ('queued', 'leased')"
                               % job), 0)
        self.assertEqual(count(c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'cancelled'"
                               " AND finished_at IS NOT NULL" % job), n)
        self.assertEqual(count(c, 'SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id'
                               ' WHERE t.job_id = %d AND a.ended_at IS NULL' % job), 0)
        self.assertEqual(count(c, "SELECT count(*) FROM task_history WHERE job_id = %d AND status = 'cancelled'"
                               % job), n)
        st = c.hfctl_json('status', str(job))
        self.assertEqual(st['state'], 'cancelled')
        self.assertEqual(st['counts'].get('cancelled'), n, st)
        self.assertFalse(st['counts'].get('queued'), st)

    # -- the tests --
    def test_a_job_of_many_slices_is_cancelled_whole_each_task_once(self):
        c = self.c
        job, n = self.submit_waiting('many-slices')
        before = cancelled_metric(c)
        out = c.hfctl_json('cancel', str(job))
        self.assertEqual(out['cancelled'], n)
        # The first slice went with the job's own cancel; the rest after the reply.
        self.assertEqual(out['remaining'], n - SLICE)
        self.assertEqual(job_state(c, job), 'cancelled')
        # Whenever it is looked at, the job says what is true: cancelling
        # while queued tasks are left (none of which will run), then
        # cancelled; never running.
        seen = set()
        deadline = time.time() + 60
        while time.time() < deadline:
            st = c.hfctl_json('status', str(job))
            seen.add(st['state'])
            queued = st['counts'].get('queued', 0)
            listed = [j['state'] for j in c.hfctl_json('jobs') if j['job_id'] == job]
            self.assertIn(listed, (['cancelling'], ['cancelled']))
            if st['state'] == 'cancelling':
                self.assertGreater(queued, 0, st)
                text = c.hfctl('status', str(job), check=False).stdout
                self.assertRegex(text, r'state +(cancelling, \d+ queued tasks left to cancel|cancelled)')
            else:
                self.assertEqual(st['state'], 'cancelled', st)
                self.assertEqual(queued, 0, st)
                break
        self.assertIn('cancelled', seen)
        self.assert_cancelled_whole(job, n)
        # Each task counted once as cancelled, whichever slice took it.
        self.assertEqual(cancelled_metric(c) - before, n)
        self.assertRegex(c.coordinator.log(), r'job %d: cancel finished: %d queued tasks cancelled in \d+ slices'
                         % (job, n - SLICE))
        self.assertEqual(count(c, "SELECT count(*) FROM audit WHERE action = 'cancel' AND target = 'job %d'" % job),
                         1)
        # A second cancel changes nothing.
        self.assertEqual(c.hfctl_json('cancel', str(job))['cancelled'], 0)

    def test_no_task_of_a_cancelled_job_is_leased_after_the_reply(self):
        c = self.c
        c.start_worker('busy-1', slots=4, runner_args='--sleep 0.05')
        c.start_worker('busy-2', slots=4, runner_args='--sleep 0.05')
        try:
            c.wait_connected('busy-1', 'busy-2')
            out = json.loads(c.hfctl('submit', '--models', 'bert,gpt2,t5,vit,roberta,albert,bart,whisper',
                                     '--batch-sizes', '1,2,3,4,5,6,7,8', '--precision', 'fp32,fp16',
                                     '--name', 'leasing', '--json').stdout)
            job, n = out['job_id'], out['task_count']
            c.wait_for(lambda: count(c, 'SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id'
                                     ' WHERE t.job_id = %d' % job) >= 4, 60, 'the job to run')
            c.hfctl('cancel', str(job))
            self.wait_cancelled(job)
            # Nothing granted after the job's cancel (its transaction's time).
            self.assertEqual(count(c, 'SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id'
                                   ' JOIN jobs j ON j.id = t.job_id WHERE t.job_id = %d'
                                   ' AND a.granted_at > j.finished_at' % job), 0)
            time.sleep(1.0)
            self.assertEqual(count(c, 'SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id'
                                   ' JOIN jobs j ON j.id = t.job_id WHERE t.job_id = %d'
                                   ' AND a.granted_at > j.finished_at' % job), 0)
            # Each task has its outcome once: a deciding result for those
            # that finished, none for the cancelled ones (a result of a
            # running task stopped by the cancel is kept as stale).
            self.assertEqual(count(c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state IN ('queued', 'leased')"
                                   % job), 0)
            self.assertEqual(count(c, "SELECT count(*) FROM tasks t WHERE t.job_id = %d AND t.state = 'cancelled'"
                                   " AND (t.result_id IS NOT NULL OR EXISTS (SELECT 1 FROM results r"
                                   " WHERE r.task_id = t.id AND NOT r.stale))" % job), 0)
            self.assertEqual(count(c, "SELECT count(*) FROM tasks t WHERE t.job_id = %d AND t.state <> 'cancelled'"
                                   " AND (SELECT count(*) FROM results r WHERE r.task_id = t.id AND NOT r.stale"
                                   " AND NOT r.retried) <> 1" % job), 0)
            self.assertEqual(count(c, 'SELECT count(*) FROM task_history WHERE job_id = %d' % job), n)
            # The workers go on with other work.
            out = json.loads(c.hfctl('submit', '--models', 'bert,gpt2', '--name', 'after', '--json').stdout)
            c.wait_for(lambda: job_state(c, out['job_id']) == 'done', 60, 'the next job to run')
        finally:
            for wid in ('busy-1', 'busy-2'):
                c.workers.pop(wid).stop()

    def test_a_lease_asked_for_with_the_cancel_is_not_granted(self):
        c = self.c
        out = json.loads(c.hfctl('submit', '--models', 'bert,gpt2,t5,vit,roberta,albert,bart,whisper',
                                 '--batch-sizes', '1,2,3,4', '--precision', 'fp32,fp16', '--label', 'raw=lease',
                                 '--allow-waiting', '--name', 'lease-race', '--json').stdout)
        job, n = out['job_id'], out['task_count']
        conn, session = self.raw_worker('raw-2', labels=[wire.key_value('raw', 'lease')], slots=2 * SLICE)
        # The job's cancel waits (the job's row is held): a poll coming
        # meanwhile finds the job's tasks still queued in memory, and its
        # lease statement runs right after the cancel's.
        lk = self.lock(job, table='jobs')
        cancel = subprocess.Popen([harness.HFCTL, '--control', c.control_url, '--token-file', c.admin_token_file,
                                   '--json', 'cancel', str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        c.wait_for(lambda: slice_waiting(c), 30, 'the cancel to wait for the row lock')
        conn.send_request(wire.envelope('poll', wire.poll('raw-2', free=[wire.device_free(free_slots=2 * SLICE)],
                                                          session=session, hold_ms=0)))
        time.sleep(0.3)
        lk.release()
        out, err = cancel.communicate(timeout=60)
        self.assertEqual(cancel.returncode, 0, err)
        self.assertEqual(json.loads(out)['cancelled'], n)
        # More tasks were asked for than the cancel's first slice took:
        # none of them is granted.
        r = wire.Reply(conn.recv_reply(timeout=60)[1])
        self.assertEqual(r.kind, 'poll_reply', repr(r))
        self.assertEqual(wire.all_of(r.body, 1), [], repr(r))
        self.assertEqual(count(c, 'SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id'
                               ' WHERE t.job_id = %d' % job), 0)
        self.wait_cancelled(job)
        self.assert_cancelled_whole(job, n)

    def test_a_result_arriving_between_two_slices_is_stored_as_before(self):
        c = self.c
        # A job only the raw worker can run: a label no other worker has.
        out = json.loads(c.hfctl('submit', '--models', 'bert,gpt2,t5,vit,roberta,albert,bart,whisper',
                                 '--batch-sizes', '1,2,3,4', '--precision', 'fp32,fp16', '--label', 'raw=yes',
                                 '--allow-waiting', '--name', 'raw', '--json').stdout)
        job, n = out['job_id'], out['task_count']
        conn, session = self.raw_worker('raw-1', labels=[wire.key_value('raw', 'yes')])
        r = conn.call(wire.envelope('poll', wire.poll('raw-1', free=[wire.device_free(free_slots=2)],
                                                      session=session, hold_ms=0)))
        self.assertEqual(r.kind, 'poll_reply', repr(r))
        leased = [wire.decode(a) for a in wire.all_of(r.body, 1)]
        self.assertEqual(len(leased), 2, repr(r))
        leased = [(wire.first(a, 1), wire.first(a, 2)) for a in leased]
        ids = self.task_ids(job)
        never_leased = [t for t in ids if t not in dict(leased)]
        # Slices wait at a queued task in the middle of the job.
        lk = self.lock(never_leased[len(never_leased) // 2])
        out = c.hfctl_json('cancel', str(job))
        self.assertEqual(out['cancelled'], n)
        self.assertGreater(out['remaining'], 0)
        c.wait_for(lambda: slice_waiting(c), 30, 'a slice to wait for the row lock')
        # The running tasks' worker is told to stop them at its next poll
        # (answered on the loop: no free slot, nothing for the database).
        r = conn.call(wire.envelope('poll', wire.poll('raw-1', session=session, hold_ms=0, running=[
            wire.task_ref(t, a) for t, a in leased])))
        self.assertEqual(r.kind, 'poll_reply', repr(r))
        told = sorted((wire.first(wire.decode(x), 1), wire.first(wire.decode(x), 2)) for x in wire.all_of(r.body, 2))
        self.assertEqual(told, sorted(leased))
        # Between two slices: a result for a task whose lease the cancel
        # ended, and one for a queued task never leased to this worker.
        queued_one = never_leased[-1]
        conn.send_request(wire.envelope('results', wire.result_batch('raw-1', session=session, results=[
            wire.task_result(task_id=leased[0][0], attempt=leased[0][1], status=wire.STATUS['passed'],
                             metrics_json='{}', env_json='{}', started_at=time.time() - 1,
                             finished_at=time.time()),
            wire.task_result(task_id=queued_one, attempt=1, status=wire.STATUS['passed'], metrics_json='{}',
                             env_json='{}', started_at=time.time() - 1, finished_at=time.time())])))
        time.sleep(0.3)
        lk.release()
        # The result of a task never leased to it is refused by name, the
        # other stored (as for any task).
        r = wire.Reply(conn.recv_reply(timeout=60)[1])
        self.assertEqual(r.error_code, wire.ERR_FORBIDDEN, repr(r))
        self.assertIn('task %d attempt 1 is not leased to worker "raw-1"' % queued_one, r.error_message)
        self.wait_cancelled(job)
        self.assert_cancelled_whole(job, n)
        # The cancelled lease's result is kept, as stale, and decides
        # nothing; the one for a task never leased to it is not stored.
        rows = c.pg.rows('SELECT stale, retried FROM results WHERE task_id = %d' % leased[0][0])
        self.assertEqual(rows, [['t', 'f']])
        self.assertEqual(c.pg.psql('SELECT state, result_id IS NULL FROM tasks WHERE id = %d' % leased[0][0]),
                         'cancelled|t')
        self.assertEqual(count(c, 'SELECT count(*) FROM results WHERE task_id = %d' % queued_one), 0)
        # It came between two slices: tasks of the job were cancelled after it was stored.
        self.assertGreater(count(c, 'SELECT count(*) FROM tasks WHERE job_id = %d AND finished_at >'
                                 ' (SELECT received_at FROM results WHERE task_id = %d)' % (job, leased[0][0])), 0)

    def test_a_coordinator_killed_mid_cancel_finishes_it_after_restart(self):
        c = self.c
        job, n = self.submit_waiting('killed', batch_sizes='1,2,3,4,5')
        ids = self.task_ids(job)
        lk = self.lock(ids[len(ids) // 2])
        out = c.hfctl_json('cancel', str(job))
        self.assertEqual(out['remaining'], n - SLICE)
        c.wait_for(lambda: slice_waiting(c), 30, 'a slice to wait for the row lock')
        c.coordinator.kill(signal.SIGKILL)
        c.coordinator.proc.wait(30)
        lk.release()
        # The job is cancelled for good; its queued tasks wait for the next start.
        self.assertEqual(job_state(c, job), 'cancelled')
        left = count(c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'queued'" % job)
        self.assertGreater(left, 0)
        self.assertLess(left, n)
        c.start_coordinator()
        self.wait_cancelled(job)
        self.assert_cancelled_whole(job, n)
        self.assertRegex(c.coordinator.log(), r'job %d: finishing its cancel' % job)
        self.assertRegex(c.coordinator.log(), r'job %d: cancel finished: %d queued tasks cancelled'
                         % (job, left))

    def test_a_coordinator_stopped_mid_cancel_finishes_it_after_restart(self):
        c = self.c
        job, n = self.submit_waiting('stopped')
        ids = self.task_ids(job)
        lk = self.lock(ids[len(ids) // 2])
        self.assertEqual(c.hfctl_json('cancel', str(job))['remaining'], n - SLICE)
        c.wait_for(lambda: slice_waiting(c), 30, 'a slice to wait for the row lock')
        # SIGTERM: the slice in flight is finished, no other is started.
        c.coordinator.kill(signal.SIGTERM)
        time.sleep(0.3)
        lk.release()
        self.assertEqual(c.coordinator.proc.wait(30), 0)
        self.assertRegex(c.coordinator.log(), r'job %d: the coordinator stops with its cancel unfinished' % job)
        self.assertEqual(peer.sanitizer_lines(c.coordinator.log()), [])
        left = count(c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'queued'" % job)
        self.assertGreater(left, 0)
        c.start_coordinator()
        self.wait_cancelled(job)
        self.assert_cancelled_whole(job, n)

    def test_a_retry_waits_for_the_slices(self):
        c = self.c
        job, n = self.submit_waiting('retry-waits')
        ids = self.task_ids(job)
        lk = self.lock(ids[len(ids) // 2])
        c.hfctl('cancel', str(job))
        c.wait_for(lambda: slice_waiting(c), 30, 'a slice to wait for the row lock')
        # Asked while slices remain (it waits behind the held one), the
        # retry is refused and changes nothing.
        p = subprocess.Popen([harness.HFCTL, '--control', c.control_url, '--token-file', c.admin_token_file,
                              'retry', '--cancelled', str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        time.sleep(0.3)
        lk.release()
        _, err = p.communicate(timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('still being cancelled', err)
        self.wait_cancelled(job)
        self.assert_cancelled_whole(job, n)
        # Once the slices are done, it is allowed.
        p = c.hfctl('retry', '--cancelled', str(job))
        self.assertEqual(job_state(c, job), 'running')
        self.assertEqual(count(c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'queued'" % job), n)
        c.hfctl('cancel', str(job))
        self.wait_cancelled(job)

    def test_a_large_submit_leaves_statistics_that_count_it(self):
        """A job of thousands of tasks is analysed in its own transaction
        (db-jobs.c: the columns the lease and slice statements filter on),
        so the planner counts its queued tasks before autovacuum looks
        (disabled on tasks here, so nothing else can); then its cancel, a
        thousand slices, takes each task once; and a retry that queues
        them all again is analysed too."""
        c = self.c
        reltuples = "SELECT reltuples FROM pg_class WHERE oid = 'tasks'::regclass"

        def queued_frequency():
            """[[f]]: queued's frequency among tasks' common states, or []."""
            return c.pg.rows("SELECT f FROM pg_stats s, unnest(s.most_common_vals::text::text[],"
                             " s.most_common_freqs) AS m (v, f)"
                             " WHERE s.tablename = 'tasks' AND s.attname = 'state' AND m.v = 'queued'")
        c.pg.psql('ALTER TABLE tasks SET (autovacuum_enabled = false)')
        try:
            c.pg.psql('ANALYZE tasks')
            before = float(c.pg.psql(reltuples))
            out = json.loads(c.hfctl('submit', '--suite', 'all', '--backends', 'cuda', '--batch-sizes', '1,2,3',
                                     '--precision', 'fp32,fp16,bf16,int8', '--allow-waiting', '--name', 'large',
                                     '--json').stdout)
            job, n = out['job_id'], out['task_count']
            self.assertGreaterEqual(n, 5000)
            total = count(c, 'SELECT count(*) FROM tasks')
            after = float(c.pg.psql(reltuples))
        finally:
            c.pg.psql('ALTER TABLE tasks RESET (autovacuum_enabled)')
        # A table this small is read whole by ANALYZE: its count is exact.
        self.assertLess(before, total - n + 1)
        self.assertEqual(after, total)
        queued = queued_frequency()
        self.assertEqual(len(queued), 1, 'queued is not among the common states')
        self.assertGreaterEqual(float(queued[0][0]), 0.9 * n / total)
        out = c.hfctl_json('cancel', str(job))
        self.assertEqual(out['remaining'], n - SLICE)
        self.wait_cancelled(job, timeout=120)
        self.assert_cancelled_whole(job, n)
        # A retry that queues them all again is analysed the same way.
        c.pg.psql('ALTER TABLE tasks SET (autovacuum_enabled = false)')
        try:
            c.pg.psql('ANALYZE tasks')
            freq = queued_frequency()
            self.assertLess(float(freq[0][0]) if freq else 0, 0.5 * n / total)
            c.hfctl('retry', '--cancelled', str(job))
            self.assertEqual(count(c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'queued'" % job), n)
            freq = queued_frequency()
        finally:
            c.pg.psql('ALTER TABLE tasks RESET (autovacuum_enabled)')
        self.assertEqual(len(freq), 1, 'queued is not among the common states after the retry')
        self.assertGreaterEqual(float(freq[0][0]), 0.9 * n / total)
        c.hfctl('cancel', str(job))
        self.wait_cancelled(job, timeout=120)


if __name__ == '__main__':
    unittest.main(verbosity=2)
