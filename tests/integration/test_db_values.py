#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Values at the edge of every numeric column, through the database layer.

The first test runs hf-db-values (tests/integration/db_values.c), which
drives the coordinator's database operations against a private PostgreSQL
with the largest ids, integers at INT32_MAX and past it, timestamps far in
the past, far in the future and beyond PostgreSQL's range, NaN, infinities
and strings an array literal must quote: what fits is stored exactly, what
does not fails its operation as bad data (-EINVAL) naming the value, and a
refused operation in a group commit leaves the others committed together.

The second runs a real job whose job and task ids are near the end of
bigint through a real coordinator and worker to its stored results.
"""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

DB_VALUES = os.environ.get('HF_DB_VALUES', os.path.join(harness.BUILD, 'tests', 'integration', 'hf-db-values'))


class DbValuesTest(unittest.TestCase):
    def test_edge_values_are_stored_exactly_or_refused_as_bad_data(self):
        with harness.cluster() as c:
            p = subprocess.run([DB_VALUES, c.pg.conninfo], capture_output=True, text=True, timeout=120)
            print(p.stdout + p.stderr)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn('passed: 0 failure(s)', p.stdout)
            # Refusals did not look like an outage: every one was bad data.
            self.assertNotIn('ENOTCONN', p.stdout)

    def test_a_job_with_ids_near_the_end_of_bigint_runs_to_its_results(self):
        with harness.cluster() as c:
            c.start_coordinator()
            c.pg.psql("SELECT setval('jobs_id_seq', 9223372036854775000)")
            c.pg.psql("SELECT setval('tasks_id_seq', 9223372036854775800)")
            c.start_worker('w-edge', slots=2)
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 1, 30, 'the worker to register')
            out = c.hfctl_json('submit', '--models', 'bert,gpt2', '--backends', 'cpu',
                               '--priority', '-1000')
            job = int(out['job_id'])
            self.assertEqual(job, 9223372036854775001)
            c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 120,
                       'job %d to finish' % job)
            self.assertEqual(c.pg.psql('SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id'
                                       ' WHERE t.job_id = %d AND t.id > 9223372036854775800' % job), '2')
            status = c.hfctl_json('status', str(job))
            self.assertEqual(int(status['job_id']), job)
            rows = c.hfctl_json('results', str(job))
            self.assertEqual(sorted(int(r['task_id']) for r in rows),
                             [9223372036854775801, 9223372036854775802])
            p = c.hfctl('status', '9223372036854775807', check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn('no job 9223372036854775807', p.stdout + p.stderr)

    def test_task_ids_are_drawn_as_one_block_and_the_lock_never_outlives_the_draw(self):
        """Migration 018: hfleet_task_ids(n) reserves n ids of tasks_id_seq at
        once and returns the first; n < 1 is refused; a block past the
        sequence's end fails as out of range, and the advisory lock taken
        around the draw is released all the same (a session lock is not
        undone by the failure's rollback)."""
        with harness.cluster() as c:
            c.start_coordinator()
            c.coordinator.stop()
            pg = c.pg
            first = int(pg.psql('SELECT hfleet_task_ids(5)'))
            second = int(pg.psql('SELECT hfleet_task_ids(3)'))
            self.assertEqual(second, first + 5)
            self.assertEqual(int(pg.psql("SELECT nextval('tasks_id_seq')")), second + 3)
            for n in ('0', '-1', 'NULL'):
                with self.assertRaises(subprocess.CalledProcessError) as e:
                    pg.psql('SELECT hfleet_task_ids(%s)' % n)
                self.assertIn('cannot draw', e.exception.stderr)
            held = pg.psql("SELECT setval('tasks_id_seq', 9223372036854775000);"
                           " DO $$ BEGIN"
                           "   PERFORM hfleet_task_ids(1000);"
                           "   RAISE 'drew 1000 ids past the end of bigint';"
                           " EXCEPTION WHEN numeric_value_out_of_range THEN NULL;"
                           " END $$;"
                           " SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                           " AND pid = pg_backend_pid() AND objid = 1751543300")
            self.assertEqual(held.splitlines()[-1], '0')
            # The sequence's end is where it was: 1,000 more do not fit, 5 do.
            self.assertGreater(int(pg.psql('SELECT hfleet_task_ids(5)')), 9223372036854775000)

    def test_a_task_names_an_existing_job_and_model_as_a_foreign_key_required(self):
        """Migration 011 (one pass over the rows since 013) checks tasks' job
        and model once per statement instead of by two foreign keys: each way the keys refused a row is
        still refused (SQLSTATE 23503), and rows that name what exists go in."""
        with harness.cluster() as c:
            c.start_coordinator()
            c.coordinator.stop()
            pg = c.pg
            job = pg.psql("INSERT INTO jobs (name, submitter, priority, spec, requirements, task_count)"
                          " VALUES ('refs', 'test', 0, '{}', '{}', 2) RETURNING id").splitlines()[0]
            cols = "(job_id, model_type, backend, kind, batch_size, seq_len, precision, iterations, warmup, timeout_s)"

            def row(j, model):
                return "(%s, '%s', 'cpu', 'test', 1, 128, 'fp32', 1, 0, 0)" % (j, model)

            def refused(sql, words):
                p = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
                                    '-h', pg.dir, '-p', str(pg.port), '-U', 'postgres', '-d', 'hfleet',
                                    '-c', sql],
                                   capture_output=True, text=True)
                self.assertNotEqual(p.returncode, 0, sql)
                self.assertIn('23503', p.stderr, sql)
                self.assertIn(words, p.stderr, sql)

            pg.psql('INSERT INTO tasks %s VALUES %s, %s' % (cols, row(job, 'bert'), row(job, 'gpt2')))
            # One bad row fails the whole statement, wherever it is.
            refused('INSERT INTO tasks %s VALUES %s, %s' % (cols, row(job, 'bert'), row(job, 'no-such-model')),
                    'model no-such-model')
            refused('INSERT INTO tasks %s VALUES %s, %s' % (cols, row(123456789, 'bert'), row(job, 'bert')),
                    'job 123456789')
            refused("UPDATE tasks SET model_type = 'gpt2' WHERE model_type = 'bert'", 'cannot change')
            refused('UPDATE tasks SET job_id = job_id + 1', 'cannot change')
            refused('DELETE FROM jobs WHERE id = %s' % job, 'still has tasks')
            refused("DELETE FROM models WHERE model_type = 'bert'", 'still has tasks')
            self.assertEqual(pg.psql('SELECT count(*) FROM tasks WHERE job_id = %s' % job), '2')
            # The coordinator's own updates of tasks go on, and a job no task
            # names may go, as before.
            pg.psql("UPDATE tasks SET state = 'cancelled' WHERE job_id = %s" % job)
            other = pg.psql("INSERT INTO jobs (name, submitter, priority, spec, requirements, task_count)"
                            " VALUES ('empty', 'test', 0, '{}', '{}', 0) RETURNING id").splitlines()[0]
            pg.psql('DELETE FROM jobs WHERE id = %s' % other)


if __name__ == '__main__':
    unittest.main(verbosity=2)
