#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A large job's tasks written after its submitter is answered (issue 15;
coordinator/db-plans.c, migration 020).  scheduler.submit_slice is 40 here:
a job of 120 tasks (three models of 40 tasks each, model by model in
registry order: bert, gpt2, t5) has bert's tasks written by its submit and
gpt2's and t5's stored as two task_plans rows, each written as tasks by a
later transaction on the job lane.

Checked: the job is answered and counted whole at once (its status counts
the unwritten tasks as queued) and every task is then written once, with
the ids the submit drew and the combinations it planned; a job whose
written tasks have all run is not done until the rest are written and run;
a cancel between two slices has the rest written cancelled; a coordinator
killed or stopped with slices unwritten writes them when it starts again.

Slices are held up on purpose, not by timing: t5's slice waits for a row
lock another session holds on t5's row of models (the insert's reference
check takes FOR KEY SHARE there), and a slice transaction waits at its
start for a session holding the job lane's advisory lock.  Real
coordinator, workers and database."""
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SLICE = 40
MODELS = ('bert', 'gpt2', 't5')
BATCHES = tuple(range(1, 11))
PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
N = len(MODELS) * len(BATCHES) * len(PRECISIONS)
JOB_LANE_LOCK = 1751543299  # coordinator/db-internal.h, DB_JOB_LANE_LOCK


def count(c, sql):
    return int(c.pg.psql(sql))


def waiting_for(c, what):
    """Does a statement of the coordinator wait for a lock (what: a part of
    its text)?"""
    return count(c, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type in ('Lock', 'LWLock')"
                 " AND wait_event IN ('tuple', 'transactionid', 'advisory') AND query LIKE '%%%s%%'"
                 % what.replace("'", "''")) > 0


class SubmitSlicesTest(harness.ClusterCase):
    cluster_kwargs = dict(heartbeat='200ms', coordinator_set=['scheduler.submit_slice=%d' % SLICE])

    def setUp(self):
        self.sessions = []
        super().setUp()

    def tearDown(self):
        for s in self.sessions:
            s.release()

    # -- helpers --
    def session(self):
        s = harness.PgSession(self.c)
        self.sessions.append(s)
        return s

    def hold(self, model):
        """The slice of model's tasks waits (its insert's reference check
        takes FOR KEY SHARE of the model's row) until release."""
        s = self.session()
        s.take("SELECT 1 FROM models WHERE model_type = '%s' FOR UPDATE" % model)
        return s

    def submit(self, name, backends='cuda'):
        out = json.loads(self.c.hfctl('submit', '--models', ','.join(MODELS), '--backends', backends,
                                      '--batch-sizes', ','.join(map(str, BATCHES)),
                                      '--precision', ','.join(PRECISIONS), '--allow-waiting', '--name', name,
                                      '--json').stdout)
        self.assertEqual(out['task_count'], N)
        return out['job_id']

    def written(self, job):
        return count(self.c, 'SELECT count(*) FROM tasks WHERE job_id = %d' % job)

    def unwritten_rows(self, job):
        return count(self.c, 'SELECT count(*) FROM task_plans WHERE job_id = %d' % job)

    def wait_slice_waiting(self):
        self.c.wait_for(lambda: waiting_for(self.c, 'DELETE FROM task_plans'), 30,
                        'a slice to wait for the row lock')

    def wait_written(self, job):
        self.c.wait_for(lambda: self.unwritten_rows(job) == 0 and self.written(job) == N, 60,
                        'every task of job %d to be written' % job)

    def assert_written_once(self, job, backend='cuda'):
        """Each planned task once, with the submit's block of ids."""
        c = self.c
        rows = c.pg.rows('SELECT id, model_type, backend, kind, batch_size, precision, mode, seq_len, iterations,'
                         ' timeout_s FROM tasks WHERE job_id = %d ORDER BY id' % job)
        self.assertEqual(len(rows), N)
        ids = [int(r[0]) for r in rows]
        self.assertEqual(ids, list(range(ids[0], ids[0] + N)))
        got = sorted((r[1], r[2], r[3], int(r[4]), r[5], r[6]) for r in rows)
        want = sorted((m, backend, 'test', b, p, 'eager')
                      for m, b, p in itertools.product(MODELS, BATCHES, PRECISIONS))
        self.assertEqual(got, want)
        # The job's other columns, as the submit wrote its first slice.
        self.assertEqual({(r[7], r[8], r[9]) for r in rows}, {(rows[0][7], rows[0][8], rows[0][9])})
        # In plan order: the model of each id follows the registry's order.
        self.assertEqual([r[1] for r in rows], sorted((r[1] for r in rows), key=MODELS.index))
        self.assertEqual(self.unwritten_rows(job), 0)

    def assert_cancelled_whole(self, job):
        """Each task written once and cancelled, as a cancel leaves it: its
        time set, its history row (the summaries) written."""
        self.assert_written_once(job)
        self.assertEqual(count(self.c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'cancelled'"
                               " AND finished_at IS NOT NULL" % job), N)
        self.assertEqual(count(self.c, "SELECT count(*) FROM task_history WHERE job_id = %d"
                               " AND status = 'cancelled'" % job), N)

    def cancel_and_wait(self, job):
        self.c.hfctl('cancel', str(job))
        self.c.wait_for(lambda: self.c.hfctl_json('status', str(job))['state'] == 'cancelled', 60,
                        'job %d to be cancelled whole' % job)

    # -- the tests --
    def test_a_job_is_answered_whole_and_its_tasks_written_once_after(self):
        c = self.c
        t5 = self.hold('t5')
        job = self.submit('answered')
        self.wait_slice_waiting()
        # Answered and durable whole: bert's and gpt2's tasks written,
        # t5's still a task_plans row; counted queued, in the database's
        # status and the coordinator's memory alike.
        self.assertEqual(self.written(job), 2 * SLICE)
        self.assertEqual(self.unwritten_rows(job), 1)
        st = c.hfctl_json('status', str(job))
        self.assertEqual(st['state'], 'running')
        self.assertEqual(st['counts'].get('queued'), N, st)
        c.wait_for(lambda: c.metric('hfleet_tasks', state='queued') == 2 * SLICE, 30,
                   'the scheduler to hold the written ones')
        t5.release()
        self.wait_written(job)
        self.assert_written_once(job)
        c.wait_for(lambda: c.metric('hfleet_tasks', state='queued') == N, 30, 'the scheduler to hold them all')
        self.assertRegex(c.coordinator.log(), r'job %d: its %d tasks are written \(2 slices after' % (job, N))
        self.cancel_and_wait(job)

    def test_a_job_is_done_only_once_its_last_slice_is_written_and_run(self):
        c = self.c
        c.start_worker('slices-1', slots=4, runner_args='--sleep 0.01')
        c.start_worker('slices-2', slots=4, runner_args='--sleep 0.01')
        try:
            c.wait_connected('slices-1', 'slices-2')
            t5 = self.hold('t5')
            job = self.submit('done-last', backends='cpu')
            self.wait_slice_waiting()
            # Every written task runs; the job is not done meanwhile.
            c.wait_for(lambda: count(c, "SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'passed'"
                                     % job) == 2 * SLICE, 60, 'the written tasks to run')
            time.sleep(0.5)
            self.assertEqual(c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job), 'running')
            st = c.hfctl_json('status', str(job))
            self.assertEqual((st['state'], st['counts'].get('passed'), st['counts'].get('queued')),
                             ('running', 2 * SLICE, SLICE), st)
            t5.release()
            c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 60,
                       'the job to be done')
            self.assert_written_once(job, backend='cpu')
            self.assertEqual(count(c, "SELECT count(*) FROM tasks t WHERE t.job_id = %d AND (t.state <> 'passed'"
                                   " OR (SELECT count(*) FROM results r WHERE r.task_id = t.id) <> 1)" % job), 0)
        finally:
            for wid in ('slices-1', 'slices-2'):
                c.workers.pop(wid).stop()

    def test_a_cancel_while_a_slice_is_written_waits_and_cancels_it(self):
        c = self.c
        t5 = self.hold('t5')
        job = self.submit('cancel-waits')
        self.wait_slice_waiting()
        # t5's slice holds the job's row (FOR SHARE): the cancel's update
        # of it waits, then finds t5's tasks queued and cancels them itself.
        cancel = subprocess.Popen([harness.HFCTL, '--control', c.control_url, '--token-file', c.admin_token_file,
                                   '--json', 'cancel', str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        c.wait_for(lambda: waiting_for(c, "state = 'cancelled'"), 30, 'the cancel to wait for the slice')
        t5.release()
        out, err = cancel.communicate(timeout=60)
        self.assertEqual(cancel.returncode, 0, err)
        self.assertEqual(json.loads(out)['cancelled'], N)
        c.wait_for(lambda: c.hfctl_json('status', str(job))['state'] == 'cancelled', 60, 'the cancel to end')
        self.assert_cancelled_whole(job)

    def test_a_slice_written_after_a_cancel_is_written_cancelled(self):
        c = self.c
        gpt2 = self.hold('gpt2')
        job = self.submit('cancel-first')
        self.wait_slice_waiting()
        # The job lane's lock, asked for behind gpt2's slice (which holds
        # it shared), is granted when that slice commits: t5's slice then
        # waits at its start, before it looks at the job.
        lane = self.session()
        lane.take('SELECT pg_advisory_xact_lock(%d)' % JOB_LANE_LOCK, wait=False)
        c.wait_for(lambda: count(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                 " AND classid = 0 AND objid = %d AND objsubid = 1" % JOB_LANE_LOCK) > 0, 30,
                   "the job lane's lock to be asked for")
        gpt2.release()
        lane.granted()
        self.assertEqual(self.written(job), 2 * SLICE)
        self.assertEqual(self.unwritten_rows(job), 1)
        out = c.hfctl_json('cancel', str(job))
        self.assertEqual((out['cancelled'], out['remaining']), (N, SLICE), out)
        self.assertEqual(c.hfctl_json('status', str(job))['state'], 'cancelling')
        # Retried meanwhile: refused, nothing changed.
        r = c.hfctl('retry', '--cancelled', str(job), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('still being cancelled', r.stderr)
        lane.release()
        c.wait_for(lambda: c.hfctl_json('status', str(job))['state'] == 'cancelled', 60, 'the cancel to end')
        self.assert_cancelled_whole(job)
        self.assertEqual(c.metric('hfleet_tasks', state='queued'), 0)
        self.assertRegex(c.coordinator.log(), r'job %d: its %d tasks are written .*; cancelled' % (job, N))

    def restarted_with_slices_unwritten(self, sig):
        """gpt2's slice held, the coordinator stopped by sig: killed, that
        slice's transaction dies with it; stopped, it is finished once it
        can be and t5's is not started.  The next start writes the rest."""
        c = self.c
        gpt2 = self.hold('gpt2')
        job = self.submit('restart-%d' % sig)
        self.wait_slice_waiting()
        c.coordinator.kill(sig)
        time.sleep(0.3)
        gpt2.release()
        c.coordinator.proc.wait(30)
        left = 2 if sig == signal.SIGKILL else 1
        c.wait_for(lambda: self.unwritten_rows(job) == left and self.written(job) == N - left * SLICE, 30,
                   'the slices the coordinator left')
        if sig == signal.SIGTERM:
            self.assertRegex(c.coordinator.log(), r'job %d: the coordinator stops with %d of its tasks unwritten'
                             % (job, SLICE))
        c.start_coordinator()
        self.wait_written(job)
        self.assert_written_once(job)
        self.assertRegex(c.coordinator.log(), r'job %d: %d tasks its submit left to write written'
                         % (job, left * SLICE))
        self.assertEqual(c.hfctl_json('status', str(job))['counts'].get('queued'), N)
        c.wait_for(lambda: c.metric('hfleet_tasks', state='queued') == N, 30, 'the scheduler to load them')
        self.cancel_and_wait(job)

    def test_a_coordinator_killed_with_slices_unwritten_writes_them_at_start(self):
        self.restarted_with_slices_unwritten(signal.SIGKILL)

    def test_a_coordinator_stopped_with_slices_unwritten_writes_them_at_start(self):
        self.restarted_with_slices_unwritten(signal.SIGTERM)


if __name__ == '__main__':
    unittest.main(verbosity=2)
