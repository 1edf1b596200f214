# SPDX-License-Identifier: MIT
"""Connections warmed before the first request (coordinator/db-warm.c).

The coordinator runs its hot statements once on each new database
connection, on a job and a task made for the purpose in a transaction
rolled back, so the first submit after a start does not pay for the
session's catalog loads, trigger compiles and plans.  PostgreSQL counts
every call of a PL/pgSQL function (track_functions = pl, set on the
database before the coordinator connects), so the counts show the warm-up
without any timing:

- once the coordinator is up, before any request: the main connection's
  lease grant and result store fired the summary triggers of tasks and
  attempts, and the job lane's task insert fired the task reference check;
- nothing was kept: no job, task, attempt, result, history or summary
  row, and no job or task id drawn from its sequence;
- the main connection, killed and made again, is warmed again;
- a job submitted afterwards runs as before (its ids start at 1).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

MAIN = ('hfleet_tasks_summarise_statement', 'hfleet_attempts_summarise_statement')
JOB_LANE = 'hfleet_tasks_refs_check'


class WarmConnections(unittest.TestCase):
    def calls(self, c):
        return {r[0]: int(r[1]) for r in c.pg.rows('SELECT funcname, calls FROM pg_stat_user_functions')}

    def test_connections_are_warmed_before_any_request_and_after_a_reconnect(self):
        with harness.cluster() as c:
            c.pg.psql("ALTER DATABASE hfleet SET track_functions = 'pl'")
            c.start_coordinator()
            # A backend reports its counts when it goes idle, within a
            # second or so (PostgreSQL's statistics interval).
            c.wait_for(lambda: all(self.calls(c).get(f, 0) >= 1 for f in MAIN + (JOB_LANE,)), 30,
                       'the warm-up to call %s (calls: %s)' % (', '.join(MAIN + (JOB_LANE,)), self.calls(c)))
            written = c.pg.psql('SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM tasks)'
                                ' + (SELECT count(*) FROM attempts) + (SELECT count(*) FROM results)'
                                ' + (SELECT count(*) FROM task_history)'
                                " + (SELECT count(*) FROM audit WHERE action NOT LIKE 'token%')")
            self.assertEqual(written, '0', 'the warm-up wrote rows')
            self.assertEqual(c.pg.psql('SELECT count(*) FROM matrix_state') + c.pg.psql('SELECT count(*) FROM device_hours'),
                             '00', 'the warm-up left summaries')
            self.assertEqual(c.pg.psql("SELECT string_agg(is_called::text, ',') FROM"
                                       " (SELECT is_called FROM jobs_id_seq UNION ALL SELECT is_called FROM tasks_id_seq) s"),
                             'false,false', 'the warm-up drew a job or task id')

            # The coordinator's sessions are killed; the main one is made
            # again at its next operation (this read) and warmed again.
            before = self.calls(c)
            c.pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'hfleet'"
                      " AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
            c.wait_for(lambda: c.hfctl('jobs', check=False).returncode == 0, 30,
                       'the coordinator to answer after its connections were killed')
            c.wait_for(lambda: all(self.calls(c).get(f, 0) > before[f] for f in MAIN), 30,
                       'the new main connection to be warmed (calls before: %s, now: %s)'
                       % (before, self.calls(c)))

            # A job is submitted and stored as without the warm-up (the job
            # lane reconnects for it, trying again if its first statement
            # meets the killed session).
            c.wait_for(lambda: c.hfctl('submit', '--models', 'bert', '--backends', 'cpu', '--allow-waiting', '--json',
                                       check=False).returncode == 0, 30, 'a submit to be accepted')
            self.assertEqual(c.pg.psql('SELECT min(id) FROM jobs'), '1')
            self.assertEqual(c.pg.psql('SELECT min(id) FROM tasks'), '1')


if __name__ == '__main__':
    unittest.main()
