#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The lease lane (coordinator/db-lane.c, issue 15): lease grants run on a
database connection and thread of their own, beside the result stores of
the main connection.  Real coordinator, workers and PostgreSQL:

- grants and result stores concurrently, with cancels (a job's, in slices,
  and single tasks), lease expiries (a raw worker takes leases and never
  reports) and every database connection of the coordinator terminated
  mid-run racing them: every task ends with exactly one deciding result or
  cancelled, no lease is lost (every attempt ended, with a reason), no
  task of a cancelled job is left leased;
- a grant waiting for a row lock holds up neither reads nor results on the
  main connection (the lane is a connection of its own), and a job's
  cancel that comes while a grant is in flight waits for it, then cancels
  the leased tasks: never a task leased in a cancelled job;
- the lane's session holds the shared lane lock; once the main connection
  lost the active-coordinator lock the lane lets it go by itself and a
  grant is refused (fencing), and grants go on once the main connection
  has the lock again;
- a grant PostgreSQL aborts to break a deadlock is run again, and its
  leases are granted once."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'hostile'))
import harness  # noqa: E402
import peer  # noqa: E402
import wire  # noqa: E402

MODELS = 'bert,gpt2,t5,vit,roberta,albert,bart,whisper'
ACTIVE_LOCK = 1751543298
LANE_LOCKS = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ShareLock'"
              " AND classid = 0 AND objid = 1751543299 AND objsubid = 1")

# The coordinator's own backends: every client backend of the database but
# the tests' psql sessions.
COORD_BACKENDS = ("SELECT pid FROM pg_stat_activity WHERE datname = 'hfleet'"
                  " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                  " AND application_name <> 'psql'")


def count(c, sql):
    return int(c.pg.psql(sql))


class Session:
    """A psql session of the test's own, fed statements one by one."""

    def __init__(self, c):
        pg = c.pg
        self.p = subprocess.Popen(['psql', '-X', '-q', '-A', '-t', '-h', pg.dir, '-p', str(pg.port),
                                   '-U', 'postgres', '-d', 'hfleet'],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)

    def send(self, sql):
        self.p.stdin.write(sql + '\n')
        self.p.stdin.flush()

    def readline(self):
        return self.p.stdout.readline()

    def release(self):
        if self.p.poll() is None:
            self.send('ROLLBACK;')
            self.p.stdin.close()
            self.p.wait(30)
            self.p.stdout.close()


class JobLocks:
    """A PostgreSQL session holding FOR UPDATE on every task of a job until
    release(): a grant of any of them waits for it."""

    def __init__(self, c, job):
        pg = c.pg
        self.p = subprocess.Popen(['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', pg.dir,
                                   '-p', str(pg.port), '-U', 'postgres', '-d', 'hfleet'],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.p.stdin.write("BEGIN;\nSELECT 'locked', count(*) FROM (SELECT id FROM tasks WHERE job_id = %d"
                           " FOR UPDATE) x;\n" % job)
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        assert line.startswith('locked'), 'the row locks were not taken: %r' % line

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write('ROLLBACK;\n')
            self.p.stdin.close()
            self.p.wait(30)
            self.p.stdout.close()


class LeaseLaneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = harness.Cluster(heartbeat='200ms', lease='2s', coordinator_set=[
            'scheduler.cancel_slice=5',
            # The raw workers send no token: authentication is tested
            # elsewhere (test_auth.py).
            'auth.required=false'])
        cls.c.start_coordinator()
        cls._ok = True

    @classmethod
    def tearDownClass(cls):
        daemons = list(cls.c.workers.values()) + [cls.c.coordinator]
        for d in daemons:
            d.stop()
        reports = [(d.name, line) for d in daemons for line in peer.sanitizer_lines(d.log())]
        if not cls._ok or reports or harness.keep_files():
            cls.c.dump_logs()
        cls.c.close(keep=harness.keep_files())
        if reports:
            raise AssertionError('sanitizer reports: %r' % reports[:5])

    def setUp(self):
        self.locks = []
        self.conns = []

    def tearDown(self):
        for lk in self.locks:
            lk.release()
        for conn in self.conns:
            conn.close()

    def run(self, result=None):
        result = super().run(result)
        if result is not None and not result.wasSuccessful():
            type(self)._ok = False
        return result

    # -- helpers --
    def submit(self, name, batch_sizes, label=None, backends='cpu'):
        args = ['submit', '--models', MODELS, '--backends', backends, '--batch-sizes', batch_sizes,
                '--precision', 'fp32,fp16', '--allow-waiting', '--name', name, '--json']
        if label:
            args += ['--label', label]
        out = json.loads(self.c.hfctl(*args).stdout)
        return out['job_id'], out['task_count']

    def raw_worker(self, worker_id, labels=None, slots=2):
        conn = peer.SpConn(self.c.worker_url, timeout=60)
        self.conns.append(conn)
        conn.handshake()
        r = conn.call(wire.envelope('register', wire.register(worker_id=worker_id, labels=labels,
                                                              devices=[wire.device(slots=slots)])))
        self.assertEqual(r.kind, 'register_reply', repr(r))
        return conn, wire.first(r.body, 7)

    def poll(self, conn, worker_id, session, free):
        r = conn.call(wire.envelope('poll', wire.poll(worker_id, free=[wire.device_free(free_slots=free)],
                                                      session=session, hold_ms=0)), timeout=60)
        self.assertEqual(r.kind, 'poll_reply', repr(r))
        return [(wire.first(wire.decode(a), 1), wire.first(wire.decode(a), 2)) for a in wire.all_of(r.body, 1)]

    def grant_waiting(self):
        return count(self.c, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                     " AND query LIKE '%state = ''leased''%'") > 0

    def assert_every_task_settled(self, job):
        """Every task of job has an outcome; a decided one exactly one
        deciding result (the one tasks.result_id names), a cancelled one
        none; no attempt of the job is open and each ended for a reason."""
        c = self.c
        self.assertEqual(count(c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state IN ('queued', 'leased')"
                               % job), 0)
        rows = c.pg.rows(
            "SELECT t.id, t.state, t.result_id, (SELECT count(*) FROM results r WHERE r.task_id = t.id"
            " AND NOT r.stale AND NOT r.retried), (SELECT min(r.id) FROM results r WHERE r.task_id = t.id"
            " AND NOT r.stale AND NOT r.retried) FROM tasks t WHERE t.job_id = %d ORDER BY t.id" % job)
        for tid, state, result_id, deciding, first in rows:
            if state == 'cancelled':
                self.assertEqual(int(deciding), 0, 'cancelled task %s has a deciding result' % tid)
            else:
                self.assertEqual(int(deciding), 1, 'task %s (%s) has %s deciding results' % (tid, state, deciding))
                self.assertEqual(result_id, first, 'task %s names another result' % tid)
        self.assertEqual(count(c, 'SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id'
                               ' WHERE t.job_id = %d AND (a.ended_at IS NULL OR a.end_reason IS NULL)' % job), 0)
        # A decided task's deciding attempt is its last one.
        self.assertEqual(count(c, "SELECT count(*) FROM tasks t JOIN results r ON r.id = t.result_id"
                               " WHERE t.job_id = %d AND r.attempt <> t.attempt" % job), 0)
        return rows

    # -- the tests --
    def test_a_grants_and_results_race_cancels_expiries_and_lost_connections(self):
        c = self.c
        for i in range(3):
            c.start_worker('lane-w%d' % i, slots=4, runner_args='--sleep 0.01')
        keep, nk = self.submit('lane-keep', '1,2,3,4,5,6,7,8')
        gone, ng = self.submit('lane-gone', '1,2,3,4,5,6,7,8')
        picked, npk = self.submit('lane-picked', '1,2,3,4')
        # A raw worker takes leases of whatever is queued and never reports
        # them: they expire (lease 2 s) and are granted again to others.
        conn, session = self.raw_worker('lane-raw', slots=6)
        taken = self.poll(conn, 'lane-raw', session, 6)
        self.assertGreater(len(taken), 0)
        c.wait_for(lambda: count(c, "SELECT count(*) FROM tasks WHERE job_id IN (%d, %d, %d)"
                                 " AND state NOT IN ('queued', 'leased')" % (keep, gone, picked)) >= 20,
                   120, 'results to be stored')
        # The coordinator has its main connection and the lease lane (and
        # the job lane, which wrote the jobs).
        self.assertGreaterEqual(count(c, 'SELECT count(*) FROM (%s) b' % COORD_BACKENDS), 3)
        # Cancels while grants and results flow: a whole job (slices of 5)
        # and single tasks of another.
        c.hfctl('cancel', str(gone))
        queued = [int(r[0]) for r in c.pg.rows("SELECT id FROM tasks WHERE job_id = %d AND state = 'queued'"
                                               " ORDER BY id DESC LIMIT 4" % picked)]
        # Those the cancel reached before they ran (a task may finish first).
        queued = [tid for tid in queued if c.hfctl_json('cancel', '--task', str(tid))['cancelled'] == 1]
        # Every connection of the coordinator is cut: each lane reconnects
        # by itself, and nothing is lost or done twice.
        c.pg.psql('SELECT count(pg_terminate_backend(pid)) FROM (%s) b' % COORD_BACKENDS)
        c.wait_for(lambda: all(c.hfctl_json('status', str(j))['state'] in ('done', 'cancelled')
                               for j in (keep, gone, picked)), 240, 'the jobs to finish')
        self.assertEqual(c.hfctl_json('status', str(keep))['state'], 'done')
        self.assertEqual(c.hfctl_json('status', str(gone))['state'], 'cancelled')
        rows = self.assert_every_task_settled(keep)
        self.assertEqual(len(rows), nk)
        self.assertTrue(all(r[1] == 'passed' for r in rows), rows)
        self.assertEqual(len(self.assert_every_task_settled(gone)), ng)
        rows = self.assert_every_task_settled(picked)
        self.assertEqual(len(rows), npk)
        for tid in queued:
            self.assertEqual(c.pg.psql('SELECT state FROM tasks WHERE id = %d' % tid), 'cancelled')
        # The raw worker's leases were lost and their tasks run again by
        # the others (or cancelled with their job).
        for tid, attempt in taken:
            self.assertIn(c.pg.psql('SELECT end_reason FROM attempts WHERE task_id = %d AND attempt = %d'
                                    % (tid, attempt)), ('lease-expired', 'cancelled'))
            self.assertIn(c.pg.psql('SELECT state FROM tasks WHERE id = %d' % tid), ('passed', 'cancelled'))
        self.assertGreater(count(c, "SELECT count(*) FROM attempts WHERE worker_id = 'lane-raw'"
                                 " AND end_reason = 'lease-expired'"), 0)
        # The next tests need a quiet main connection: no worker's polls
        # (their telemetry is written there).
        for wid in list(c.workers):
            c.workers.pop(wid).stop()

    def test_b_a_cancel_waits_for_the_grant_in_flight(self):
        c = self.c
        job, n = self.submit('lane-race', '1,2,3,4', label='raw=race')
        conn, session = self.raw_worker('lane-race', labels=[wire.key_value('raw', 'race')], slots=2)
        # Every task of the job is locked: the grant the poll asks for
        # waits, on the lane.
        lk = JobLocks(c, job)
        self.locks.append(lk)
        conn.send_request(wire.envelope('poll', wire.poll('lane-race', free=[wire.device_free(free_slots=2)],
                                                          session=session, hold_ms=0)))
        c.wait_for(self.grant_waiting, 30, 'the grant to wait for the row locks')
        # Reads still answer: the main connection is not the one waiting.
        self.assertEqual(c.hfctl_json('status', str(job))['state'], 'running')
        cancel = subprocess.Popen([harness.HFCTL, '--control', c.control_url, '--token-file', c.admin_token_file,
                                   '--json', 'cancel', str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        time.sleep(0.5)  # the cancel reaches the database thread (the outcome does not depend on it)
        lk.release()
        out, err = cancel.communicate(timeout=60)
        self.assertEqual(cancel.returncode, 0, err)
        r = wire.Reply(conn.recv_reply(timeout=60)[1])
        self.assertEqual(r.kind, 'poll_reply', repr(r))
        granted = [(wire.first(wire.decode(a), 1), wire.first(wire.decode(a), 2)) for a in wire.all_of(r.body, 1)]
        # The grant committed before the cancel: its leases were cancelled
        # with the job, not left leased.
        self.assertEqual(len(granted), 2, repr(r))
        self.assertEqual(json.loads(out)['cancelled'], n)
        for tid, attempt in granted:
            self.assertEqual(c.pg.psql('SELECT state FROM tasks WHERE id = %d' % tid), 'cancelled')
            self.assertEqual(c.pg.psql('SELECT end_reason FROM attempts WHERE task_id = %d AND attempt = %d'
                                       % (tid, attempt)), 'cancelled')
        c.wait_for(lambda: c.hfctl_json('status', str(job))['state'] == 'cancelled', 60, 'the cancel to end')
        self.assertEqual(len(self.assert_every_task_settled(job)), n)

    def test_c_a_grant_without_the_active_lock_is_refused(self):
        c = self.c
        job, n = self.submit('lane-fence', '1,2', label='raw=fence')
        conn, session = self.raw_worker('lane-fence', labels=[wire.key_value('raw', 'fence')], slots=2)
        # The lane's session holds the shared lane lock, which a coordinator
        # taking over waits for before it loads the live tasks.
        self.assertEqual(count(c, LANE_LOCKS), 1)
        # The main connection's server process is the one holding the
        # active-coordinator lock; it goes, and with it the lock.  The
        # coordinator learns of it at its next statement there, but the
        # lane checks by itself, at least every second: it lets its lock
        # go (nobody taking over waits for it) and grants nothing.
        main = count(c, 'SELECT pid FROM pg_locks WHERE locktype = \'advisory\' AND granted'
                     ' AND classid = 0 AND objid = %d AND objsubid = 1' % ACTIVE_LOCK)
        c.pg.psql('SELECT pg_terminate_backend(%d)' % main)
        c.wait_for(lambda: count(c, LANE_LOCKS) == 0, 30, 'the lane to let its lock go')
        self.assertEqual(self.poll(conn, 'lane-fence', session, 2), [])
        self.assertEqual(count(c, 'SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id'
                               ' WHERE t.job_id = %d' % job), 0)
        self.assertIn("does not hold the active coordinator's lock", c.coordinator.log())
        # The main connection comes back with the lock (a read makes it
        # reconnect); grants go on, checked against its new process.
        c.wait_for(lambda: c.hfctl('status', str(job), check=False).returncode == 0, 60, 'reads to answer')
        got = []
        deadline = time.time() + 60
        while not got and time.time() < deadline:
            got = self.poll(conn, 'lane-fence', session, 2)
            if not got:
                time.sleep(0.3)
        self.assertEqual(len(got), 2)
        self.assertEqual(c.hfctl_json('status', str(job))['state'], 'running')
        c.hfctl('cancel', str(job))
        c.wait_for(lambda: c.hfctl_json('status', str(job))['state'] == 'cancelled', 60, 'the cancel to end')
        self.assertEqual(len(self.assert_every_task_settled(job)), n)

    def test_d_a_grant_aborted_for_a_deadlock_is_run_again(self):
        c = self.c
        job, n = self.submit('lane-deadlock', '1', label='raw=deadlock')
        self.assertEqual(n, 16)
        conn, session = self.raw_worker('lane-deadlock', labels=[wire.key_value('raw', 'deadlock')], slots=n)
        # Another session holds the key of every task's first attempt: the
        # grant, once it updated the tasks, waits to insert their attempts.
        s = Session(c)
        self.locks.append(s)
        s.send("BEGIN; INSERT INTO attempts (task_id, attempt, worker_id, device_index)"
               " SELECT id, 1, 'other', 0 FROM tasks WHERE job_id = %d; SELECT 'inserted';" % job)
        self.assertTrue(s.readline().startswith('inserted'))
        conn.send_request(wire.envelope('poll', wire.poll('lane-deadlock', free=[wire.device_free(free_slots=n)],
                                                          session=session, hold_ms=0)))
        c.wait_for(self.grant_waiting, 30, 'the grant to wait for the attempts\' keys')
        time.sleep(0.3)  # the grant waits first, so its deadlock check runs first
        # ... and this session now waits for a task the grant updated: a
        # deadlock, which PostgreSQL breaks by aborting the grant.
        s.send("SELECT 'locked', count(*) FROM (SELECT id FROM tasks WHERE job_id = %d FOR UPDATE) x;" % job)
        self.assertTrue(s.readline().startswith('locked'))
        s.release()
        r = wire.Reply(conn.recv_reply(timeout=60)[1])
        self.assertEqual(r.kind, 'poll_reply', repr(r))
        granted = [(wire.first(wire.decode(a), 1), wire.first(wire.decode(a), 2)) for a in wire.all_of(r.body, 1)]
        self.assertEqual(len(granted), n, repr(r))
        self.assertRegex(c.coordinator.log(), r'database operation retried: .*deadlock')
        # Each lease once, to this worker (the other session's rows rolled back).
        self.assertEqual(count(c, "SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id"
                               " WHERE t.job_id = %d" % job), n)
        self.assertEqual(count(c, "SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id"
                               " WHERE t.job_id = %d AND a.worker_id = 'lane-deadlock' AND a.attempt = 1" % job), n)
        c.hfctl('cancel', str(job))
        c.wait_for(lambda: c.hfctl_json('status', str(job))['state'] == 'cancelled', 60, 'the cancel to end')
        self.assertEqual(len(self.assert_every_task_settled(job)), n)


if __name__ == '__main__':
    unittest.main(verbosity=2)
