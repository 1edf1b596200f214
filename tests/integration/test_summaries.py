#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The readers' summaries kept per statement (migration 015) against the
row-level logic they replace, on a real PostgreSQL with the coordinator's
migrations applied.

Random statements shaped like the coordinator's (lease grants with their
attempts, result stores of several tasks at once with their attempts
ended, retries, cancels, lease expiries, updates that change no outcome)
run on a small key space, so one statement often decides several tasks of
the same (model, backend, precision) or benchmark series, mixing decisive
outcomes, skips and cancels, some at the same instant.  After every
statement the summary tables must equal a replay of migration 009's
row-level function (hfleet_tasks_summarise, the reference) applied to the
statement's decided tasks one by one in (finished_at, id) order into copies
of the tables in a schema `ref`.  Every few statements, and at the end,
every summary table (device_hours included) must equal what
hfleet_rebuild_summaries() builds from the stored rows.  The first phase
runs in time order (as the coordinator's now() does), the second at random
times (out of order), where the row-level rules and the rebuild may differ
on skipped_since: there matrix_state is compared with the replay only.
"""
import os
import random
import sys
import tempfile
import shutil
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

MIGRATIONS = os.path.join(harness.SOURCE, 'coordinator', 'migrations')
MODELS = ('bert', 'gpt2', 't5')
BACKENDS = ('cpu', 'cuda')
PRECISIONS = ('fp32', 'fp16')
DEVICES = ("'dev-a'", "'dev-b'", 'NULL')
SUMMARIES = ('task_history', 'matrix_state', 'benchmark_runs', 'benchmark_state')
N_TASKS = 240


def ts(seconds):
    return "(timestamptz '2026-01-01 00:00:00+00' + interval '%d microseconds')" % int(seconds * 1e6)


class SummariesBase(unittest.TestCase):
    """A private PostgreSQL with the coordinator's migrations, the reference
    schema and job 1's tasks; the statements and the checks."""
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix='hfleet-summaries-')
        try:
            cls.pg = pg = harness.PrivatePostgres(cls.root)
            pg.psql('CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,'
                    ' applied_at timestamptz NOT NULL DEFAULT now())')
            for name in sorted(os.listdir(MIGRATIONS)):
                with open(os.path.join(MIGRATIONS, name)) as f:
                    pg.psql('BEGIN;\n' + f.read() + '\n;COMMIT;')
            cls.setup_reference()
        except BaseException:
            shutil.rmtree(cls.root, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    @classmethod
    def setup_reference(cls):
        pg = cls.pg
        # Copies of the tables, and migration 009's row-level function
        # writing them (its unqualified names resolve to ref first).
        sql = ['CREATE SCHEMA ref;']
        for t in SUMMARIES:
            sql.append('CREATE TABLE ref.%s (LIKE public.%s INCLUDING ALL);' % (t, t))
        sql.append('CREATE TABLE ref.replay (LIKE public.tasks);')
        sql.append('CREATE TABLE ref.before (id bigint PRIMARY KEY, state text, finished_at timestamptz,'
                   ' result_id bigint);')
        pg.psql('\n'.join(sql))
        body = pg.psql("SELECT pg_get_functiondef('hfleet_tasks_summarise'::regproc)")
        assert 'public.hfleet_tasks_summarise()' in body and ' LANGUAGE plpgsql\n' in body, body[:200]
        body = body.replace('public.hfleet_tasks_summarise()', 'ref.summarise()')
        body = body.replace(' LANGUAGE plpgsql\n', ' LANGUAGE plpgsql\n SET search_path = ref, public\n', 1)
        pg.psql(body)
        pg.psql('CREATE TRIGGER replay AFTER INSERT ON ref.replay FOR EACH ROW EXECUTE FUNCTION ref.summarise();')
        models = ', '.join("('%s', 'x/%s', 'encoder-only', 'fill-mask', 'text', 'small')" % (m, m) for m in MODELS)
        pg.psql("INSERT INTO models (model_type, hf_id, family, task, modality, size_class) VALUES %s;"
                "INSERT INTO jobs (id, submitter, spec, task_count) VALUES (1, 'test', '{}', %d);"
                % (models, N_TASKS))
        rng = random.Random(7)
        rows = []
        for i in range(1, N_TASKS + 1):
            rows.append("(%d, 1, '%s', '%s', '%s', %d, 8, '%s', 1, 0, 60)"
                        % (i, rng.choice(MODELS), rng.choice(BACKENDS), rng.choice(('test', 'test', 'benchmark')),
                           rng.choice((1, 2)), rng.choice(PRECISIONS)))
        pg.psql('INSERT INTO tasks (id, job_id, model_type, backend, kind, batch_size, seq_len, precision,'
                ' iterations, warmup, timeout_s) VALUES %s;' % ', '.join(rows))

    # ---- the statements ----

    def lease(self, ids, now):
        rng = self.rng
        v = ', '.join("(%d, %s::int[], %s)" % (i, rng.choice(("NULL", "'{0}'", "'{0,1}'", "'{1,1}'")), ts(now))
                      for i in ids)
        return ("WITH v (id, devs, granted) AS (VALUES %s),"
                " g AS (UPDATE tasks t SET state = 'leased', attempt = t.attempt + 1, worker_id = 'w1',"
                " device_index = 0 FROM v WHERE t.id = v.id RETURNING t.id, t.attempt, v.devs, v.granted)"
                " INSERT INTO attempts (task_id, attempt, worker_id, device_index, device_indices, granted_at)"
                " SELECT id, attempt, 'w1', 1, devs, granted FROM g;" % v)

    def store(self, ids, times, statuses=None):
        rng = self.rng
        statuses = statuses or [rng.choice(('passed', 'passed', 'failed', 'error', 'timeout', 'skipped', 'skipped',
                                            'cancelled')) for _ in ids]
        v = ', '.join("(%d, '%s', %s, %s, %s::float8)"
                      % (i, s, ts(t), rng.choice(DEVICES), rng.choice(('NULL', '3.5', '7')))
                      for i, t, s in zip(ids, times, statuses))
        return ("WITH v (id, status, at, dev, p50) AS (VALUES %s),"
                " ins AS (INSERT INTO results (task_id, attempt, status, worker_id, device_index, stale,"
                " device_name, latency_p50_ms, latency_cv, noisy, env_id)"
                " SELECT t.id, t.attempt, v.status, 'w1', 0, false, v.dev, v.p50, 0.01, v.p50 > 5, NULL"
                " FROM v JOIN tasks t ON t.id = v.id RETURNING id, task_id, attempt),"
                " upd AS (UPDATE tasks t SET state = v.status, finished_at = v.at, result_id = ins.id"
                " FROM v JOIN ins ON ins.task_id = v.id WHERE t.id = v.id)"
                " UPDATE attempts a SET ended_at = v.at, end_reason = 'result' FROM v JOIN ins ON ins.task_id = v.id"
                " WHERE a.task_id = v.id AND a.attempt = ins.attempt AND a.ended_at IS NULL;" % v)

    def retry(self, ids):
        return ("UPDATE tasks SET state = 'queued', worker_id = NULL, result_id = NULL, finished_at = NULL"
                " WHERE id IN (%s);" % ','.join(map(str, ids)))

    def cancel(self, ids, times):
        v = ', '.join('(%d, %s)' % (i, ts(t)) for i, t in zip(ids, times))
        return ("WITH v (id, at) AS (VALUES %s),"
                " c AS (UPDATE tasks t SET state = 'cancelled', finished_at = v.at FROM v WHERE t.id = v.id"
                " RETURNING t.id, t.attempt, v.at)"
                " UPDATE attempts a SET ended_at = c.at, end_reason = 'cancelled' FROM c"
                " WHERE a.task_id = c.id AND a.attempt = c.attempt AND a.ended_at IS NULL;" % v)

    def expire(self, ids, now):
        return ("WITH q AS (UPDATE tasks t SET state = 'queued', worker_id = NULL WHERE t.id IN (%s)"
                " RETURNING t.id, t.attempt)"
                " UPDATE attempts a SET ended_at = %s, end_reason = 'lease-expired' FROM q"
                " WHERE a.task_id = q.id AND a.attempt = q.attempt;" % (','.join(map(str, ids)), ts(now)))

    def touch(self, ids):
        # An UPDATE that changes no outcome (nor ends a lease).
        return 'UPDATE tasks SET worker_id = worker_id WHERE id IN (%s);' % ','.join(map(str, ids))

    # ---- the checks ----

    def replay_and_compare(self, statement):
        """Runs statement, replays the reference row by row; returns the
        tables where the triggers' summaries differ from the replay, and
        the tasks' states."""
        diff = ' UNION ALL '.join(
            "SELECT '%s' FROM ((TABLE public.%s EXCEPT ALL TABLE ref.%s)"
            " UNION ALL (TABLE ref.%s EXCEPT ALL TABLE public.%s)) x" % (t, t, t, t, t) for t in SUMMARIES)
        out = self.pg.psql(
            'TRUNCATE ref.before; INSERT INTO ref.before SELECT id, state, finished_at, result_id FROM tasks;\n'
            + statement + '\n'
            "DELETE FROM ref.task_history h USING ref.before b JOIN tasks t ON t.id = b.id"
            " WHERE h.task_id = b.id AND b.finished_at IS NOT NULL AND (t.finished_at IS NULL"
            " OR t.state NOT IN ('passed', 'failed', 'error', 'timeout', 'skipped', 'cancelled'));"
            "TRUNCATE ref.replay;"
            "INSERT INTO ref.replay SELECT t.* FROM tasks t JOIN ref.before b ON b.id = t.id"
            " WHERE t.finished_at IS NOT NULL"
            " AND t.state IN ('passed', 'failed', 'error', 'timeout', 'skipped', 'cancelled')"
            " AND (b.state, b.finished_at, b.result_id) IS DISTINCT FROM (t.state, t.finished_at, t.result_id)"
            " ORDER BY t.finished_at, t.id;\n" + diff + ';'
            "SELECT id || ':' || state FROM tasks;")
        bad = sorted(set(w for w in out.split() if ':' not in w))
        self.states = dict((int(w.split(':')[0]), w.split(':')[1]) for w in out.split() if ':' in w)
        return bad

    def compare_rebuild(self, tables):
        """The tables where the triggers' summaries differ from
        hfleet_rebuild_summaries() (run and rolled back)."""
        cols = {'device_hours': 'worker_id, backend, idx, hour, round(busy_s::numeric, 6), tasks,'
                                ' util_sum, util_samples'}
        sql = ['BEGIN;']
        for t in tables:
            sql.append('CREATE TEMP TABLE kept_%s AS SELECT %s FROM %s;' % (t, cols.get(t, '*'), t))
        sql.append('SELECT hfleet_rebuild_summaries();')
        for t in tables:
            sql.append("SELECT '%s' FROM ((SELECT %s FROM %s EXCEPT ALL TABLE kept_%s)"
                       " UNION ALL (TABLE kept_%s EXCEPT ALL SELECT %s FROM %s)) x;"
                       % (t, cols.get(t, '*'), t, t, t, cols.get(t, '*'), t))
        sql.append('ROLLBACK;')
        out = self.pg.psql('\n'.join(sql))
        return sorted(set(w for w in out.split() if w != ''))

    def tasks_in(self, states):
        return sorted(i for i, s in self.states.items() if s in states)

    def run_phase(self, seed, steps, in_order, retries):
        rng = self.rng = random.Random(seed)
        now = self.clock
        kinds = []
        for step in range(steps):
            now += 40 + rng.random() * 300
            queued, leased = self.tasks_in(['queued']), self.tasks_in(['leased'])
            decided = self.tasks_in(['passed', 'failed', 'error', 'timeout', 'skipped', 'cancelled'])
            pick = rng.random()

            def when(n):
                if in_order:
                    # Several rows often at one instant, as the coordinator's now().
                    return [now + rng.choice((0, 0, 0, 1, 2)) for _ in range(n)]
                # Out of order, on a coarse grid: ties within and across statements.
                return [rng.randint(0, 30) * 700 for _ in range(n)]
            if pick < 0.30 and queued:
                ids, kind = rng.sample(queued, min(len(queued), rng.randint(1, 12))), 'lease'
                statement = self.lease(ids, now if in_order else when(1)[0])
            elif pick < 0.70 and leased:
                ids = rng.sample(leased, min(len(leased), rng.randint(1, 8)))
                statement, kind = self.store(ids, when(len(ids))), 'store'
            elif pick < 0.78 and decided and retries:
                statement, kind = self.retry(rng.sample(decided, min(len(decided), rng.randint(1, 4)))), 'retry'
            elif pick < 0.86 and (queued or leased):
                ids = rng.sample(queued + leased, min(len(queued + leased), rng.randint(1, 4)))
                statement, kind = self.cancel(ids, when(len(ids))), 'cancel'
            elif pick < 0.94 and leased:
                ids = rng.sample(leased, min(len(leased), rng.randint(1, 3)))
                statement, kind = self.expire(ids, now if in_order else when(1)[0]), 'expire'
            elif decided:
                statement, kind = self.touch(rng.sample(decided, min(len(decided), 5))), 'touch'
            else:
                continue
            kinds.append(kind)
            bad = self.replay_and_compare(statement)
            self.assertEqual(bad, [], 'step %d (%s, seed %d): the summaries differ from the row-level replay'
                             % (step, kind, seed))
            if step % 15 == 14:
                self.assertEqual(self.compare_rebuild(self.rebuilt(in_order, retries)), [],
                                 'step %d (%s, seed %d): the summaries differ from the rebuild' % (step, kind, seed))
        self.clock = now
        return kinds

    @staticmethod
    def rebuilt(in_order, retries):
        """The tables the rebuild must reproduce.  A task queued again keeps
        its earlier outcome in matrix_state, benchmark_runs and
        benchmark_state until it gets a new one (the row-level triggers did
        so; the rebuild reads only tasks' current outcomes); out of order,
        the row-level rules for skipped_since may differ from the rebuild."""
        if retries:
            return ('task_history', 'device_hours')
        return SUMMARIES + ('device_hours',) if in_order else \
            ('task_history', 'benchmark_runs', 'benchmark_state', 'device_hours')


class SummariesTest(SummariesBase):
    def test_late_decisive_keeps_a_later_skip(self):
        # One key of its own (fp64): a decisive outcome at 100 s, a skip at
        # 300 s, then one statement out of order: decisive 1001 at 200 s, a
        # skip 1002 at the same instant (not after it: it changes nothing),
        # decisive 1003 at 250 s.  Row by row the skip at 300 s is still the
        # first after the latest decisive outcome.
        self.rng = random.Random(3)
        ids = list(range(1001, 1006))
        self.pg.psql('INSERT INTO tasks (id, job_id, model_type, backend, kind, batch_size, seq_len, precision,'
                     ' iterations, warmup, timeout_s) VALUES %s;'
                     % ', '.join("(%d, 1, 'bert', 'cpu', 'test', 1, 8, 'fp64', 1, 0, 60)" % i for i in ids))
        for statement in (self.lease(ids, 0), self.store([1004], [100], ['passed']),
                          self.store([1005], [300], ['skipped']),
                          self.store([1001, 1002, 1003], [200, 200, 250], ['failed', 'skipped', 'passed'])):
            self.assertEqual(self.replay_and_compare(statement), [])
        self.assertEqual(self.pg.psql("SELECT decisive_task_id, other_task_id, skipped_since = %s"
                                      " FROM matrix_state WHERE precision = 'fp64'" % ts(300)), '1003|1005|t')

    def test_statements_match_row_by_row(self):
        self.clock = 0
        self.states = dict((i, 'queued') for i in range(1, N_TASKS + 1))
        kinds = self.run_phase(1, 50, in_order=True, retries=False)
        self.assertEqual(self.compare_rebuild(self.rebuilt(True, False)), [])
        kinds += self.run_phase(2, 45, in_order=True, retries=True)
        kinds += self.run_phase(3, 45, in_order=False, retries=True)
        self.assertEqual(self.compare_rebuild(self.rebuilt(False, True)), [])
        for kind in ('lease', 'store', 'retry', 'cancel', 'expire', 'touch'):
            self.assertIn(kind, kinds)
        # What the run exercised: statements deciding several tasks of one
        # key, skips after a decisive outcome, passed benchmarks, hours.
        q = self.pg.psql
        self.assertGreater(int(q('SELECT count(*) FROM matrix_state WHERE skipped_since IS NOT NULL')), 0)
        self.assertGreater(int(q('SELECT count(*) FROM matrix_state WHERE skipped_since IS NOT NULL'
                                 ' AND decisive_at IS NOT NULL')), 0)
        self.assertGreater(int(q('SELECT count(*) FROM benchmark_runs')), 10)
        self.assertGreater(int(q('SELECT count(DISTINCT hour) FROM device_hours')), 3)
        self.assertGreater(int(q("SELECT count(*) FROM (SELECT 1 FROM results r JOIN tasks t ON t.id = r.task_id"
                                 " WHERE t.kind = 'test' GROUP BY r.received_at, t.model_type, t.backend,"
                                 " t.precision HAVING count(*) > 1) x")), 5)


class LargeCancelTest(SummariesBase):
    """Cancels of thousands of tasks, in a database of their own (the
    random statements of SummariesTest read every task after each)."""

    def test_large_cancels_match_row_by_row(self):
        # The coordinator's cancel of a large job (coordinator/db-cancel.c):
        # its leased tasks in one statement, then its queued ones in slices
        # of 500 (here 200); and, as a coordinator before the slices did (and as a
        # retry or a fleet's worth of leased tasks may), one statement over
        # a whole job.  Jobs 2 and 3 of 1,500 tasks each, on keys of their
        # own (precision int8), a few leased.
        self.rng = random.Random(11)
        q = self.pg.psql
        q("INSERT INTO jobs (id, submitter, spec, task_count) VALUES (2, 'test', '{}', 1500), (3, 'test', '{}', 1500);"
          "INSERT INTO tasks (id, job_id, model_type, backend, kind, batch_size, seq_len, precision, iterations,"
          " warmup, timeout_s) SELECT 100000 + g, 2 + (g > 1500)::int, (ARRAY['bert', 'gpt2', 't5'])[1 + g % 3],"
          " (ARRAY['cpu', 'cuda'])[1 + g % 2], (ARRAY['test', 'benchmark'])[1 + (g / 7) % 2], 1 + g % 5, 8,"
          " 'int8', 1, 0, 60 FROM generate_series(1, 3000) g;")
        leased = [100000 + g for g in range(1, 3001, 37)]
        self.assertEqual(self.replay_and_compare(self.lease(leased, 5000)), [])
        self.assertEqual(self.replay_and_compare(
            "WITH c AS (UPDATE tasks SET state = 'cancelled', finished_at = now() WHERE job_id = 2"
            " AND state = 'leased' RETURNING id, attempt)"
            " UPDATE attempts a SET ended_at = now(), end_reason = 'cancelled' FROM c"
            " WHERE a.task_id = c.id AND a.attempt = c.attempt AND a.ended_at IS NULL;"), [])
        for _ in range(8):
            self.assertEqual(self.replay_and_compare(
                "UPDATE tasks t SET state = 'cancelled', finished_at = now() WHERE t.id IN"
                " (SELECT s.id FROM tasks s WHERE s.job_id = 2 AND s.state = 'queued' LIMIT 200)"
                " AND t.state = 'queued';"), [])
        self.assertEqual(q("SELECT count(*) FROM tasks WHERE job_id = 2 AND state <> 'cancelled'"), '0')
        self.assertEqual(self.replay_and_compare(
            "WITH c AS (UPDATE tasks SET state = 'cancelled', finished_at = now() WHERE job_id = 3"
            " AND state IN ('queued', 'leased') RETURNING id, attempt)"
            " UPDATE attempts a SET ended_at = now(), end_reason = 'cancelled' FROM c"
            " WHERE a.task_id = c.id AND a.attempt = c.attempt AND a.ended_at IS NULL;"), [])
        self.assertEqual(q("SELECT count(*) FROM task_history WHERE job_id IN (2, 3) AND status = 'cancelled'"),
                         '3000')
        self.assertEqual(self.compare_rebuild(SUMMARIES + ('device_hours',)), [])


if __name__ == '__main__':
    unittest.main()
