#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of the whole pipeline with real processes: a private
PostgreSQL, hf-coordinator, two hf-worker daemons running the arith test
runner as real child processes, and hfctl, all on loopback.

Each check reads the database directly as well as through hfctl, so a
broken acknowledgement, a lost result or a duplicate shows up.
"""
import json
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def job_state(cluster, job):
    return cluster.pg.psql('SELECT state FROM jobs WHERE id = %d' % job)


def wait_job(cluster, job, timeout=240):
    cluster.wait_for(lambda: job_state(cluster, job) == 'done', timeout, 'job %d to finish' % job)


def grants_while_both_queued(cluster, a, b):
    """First attempts of jobs a's and b's tasks granted up to the last grant
    of whichever of them ran out of queued tasks first, as (a's, b's)."""
    row = cluster.pg.rows("""
        WITH g AS (SELECT t.job_id, a.granted_at FROM attempts a JOIN tasks t ON t.id = a.task_id
                   WHERE t.job_id IN (%d, %d) AND a.attempt = 1),
             until AS (SELECT min(last) AS at FROM (SELECT max(granted_at) AS last FROM g GROUP BY job_id) l)
        SELECT count(*) FILTER (WHERE job_id = %d), count(*) FILTER (WHERE job_id = %d)
        FROM g, until WHERE g.granted_at <= until.at""" % (a, b, a, b))[0]
    return int(row[0]), int(row[1])


def submit(cluster, *args):
    out = cluster.hfctl_json('submit', *args)
    return int(out['job_id']), int(out['task_count'])


def assert_exactly_once(test, cluster, job, expect_tasks):
    pg = cluster.pg
    test.assertEqual(int(pg.psql('SELECT count(*) FROM tasks WHERE job_id = %d' % job)), expect_tasks)
    # Every task has a final outcome ...
    test.assertEqual(pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state IN ('queued', 'leased')" % job), '0')
    # ... decided by exactly one stored result that is neither stale nor
    # retried (cancelled ones by the cancel).
    bad = pg.rows("""
        SELECT t.id, t.state, count(r.id) FILTER (WHERE NOT r.stale AND NOT r.retried)
        FROM tasks t LEFT JOIN results r ON r.task_id = t.id
        WHERE t.job_id = %d
        GROUP BY t.id, t.state
        HAVING count(r.id) FILTER (WHERE NOT r.stale AND NOT r.retried) <> CASE WHEN t.state = 'cancelled' THEN 0 ELSE 1 END
    """ % job)
    test.assertEqual(bad, [], 'tasks without exactly one deciding result')
    # The deciding result is the one the task points at, and agrees with it.
    mismatch = pg.psql("""
        SELECT count(*) FROM tasks t JOIN results r ON r.id = t.result_id
        WHERE t.job_id = %d AND (r.status <> t.state OR r.stale OR r.attempt <> t.attempt)
    """ % job)
    test.assertEqual(mismatch, '0')


class PipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = harness.Cluster()
        cls.c.start_coordinator()
        # w2 starts with multicast asked for: its runners must not get it.
        cls.c.start_worker('w1', slots=2)
        cls.c.start_worker('w2', slots=2, extra_env={'NCCL_NVLS_ENABLE': '1', 'NVSHMEM_DISABLE_NVLS': '0'})
        cls.c.wait_for(lambda: len(cls.c.hfctl_json('workers')) == 2, 30, 'two workers to register')

    @classmethod
    def tearDownClass(cls):
        failed = any(not r for r in getattr(cls, '_results', []))
        if failed or os.environ.get('HF_KEEP'):
            cls.c.dump_logs()
        cls.c.close(keep=bool(os.environ.get('HF_KEEP')))

    def setUp(self):
        self._ok = False

    def tearDown(self):
        type(self)._results = getattr(type(self), '_results', []) + [self._ok]

    def test_whole_suite_end_to_end_stores_every_result_once(self):
        # --all is the core suite (the registry holds every type transformers builds).
        n_models = len(self.c.hfctl_json('models', '--suite', 'core'))
        self.assertGreaterEqual(n_models, 280)
        job, n = submit(self.c, '--all', '--backends', 'cpu', '--batch-sizes', '2')
        self.assertEqual(n, n_models)
        wait_job(self.c, job)
        assert_exactly_once(self, self.c, job, n_models)
        # both workers took part
        workers = self.c.pg.psql("SELECT count(DISTINCT r.worker_id) FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.job_id = %d" % job)
        self.assertEqual(workers, '2')
        # hfctl results and the database agree, row by row
        rows = self.c.hfctl_json('results', str(job))
        self.assertEqual(len(rows), n_models)
        db = dict((int(i), s) for i, s in self.c.pg.rows('SELECT id, state FROM tasks WHERE job_id = %d' % job))
        for r in rows:
            self.assertEqual(db[int(r['task_id'])], r['status'])
        self.assertTrue(all(r['status'] == 'passed' for r in rows))
        # the metrics are the runner's own measurements
        self.assertEqual(self.c.pg.psql(
            "SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.job_id = %d"
            " AND (r.metrics->>'items')::int = 2 * t.seq_len" % job), str(n_models))
        # the runner saw no GPU on a cpu task
        self.assertEqual(self.c.pg.psql(
            "SELECT DISTINCT r.env->>'cuda_visible_devices' FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.job_id = %d" % job), '')
        # multicast stayed off in every runner of both workers, also w2's,
        # whose own environment asked for it
        self.assertEqual(self.c.pg.psql(
            "SELECT DISTINCT r.env->>'multicast' FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.job_id = %d" % job),
            '{"NCCL_NVLS_ENABLE": "0", "NVSHMEM_DISABLE_NVLS": "1", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}')
        self.assertIn('overriding NCCL_NVLS_ENABLE=1, NVSHMEM_DISABLE_NVLS=0', self.c.workers['w2'].log())
        self._ok = True

    def test_watch_follows_a_job_to_the_end(self):
        job, n = submit(self.c, '--models', 'bert,gpt2,t5,vit')
        p = self.c.hfctl('watch', str(job), timeout=120)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(job_state(self.c, job), 'done')
        self.assertIn('4', p.stdout)
        self._ok = True

    def test_limited_models_are_run_and_the_submitter_is_told_why(self):
        dinat = '*: needs the natten package (NATTEN kernels), not installed in the reference GPU image'
        # hfctl models marks them, and --json gives every limit.
        p = self.c.hfctl('models', '--family', 'vision')
        self.assertIn('LIMITS', p.stdout)
        self.assertIn('  dinat ' + dinat + '\n', p.stdout)
        models = {m['model_type']: m for m in self.c.hfctl_json('models')}
        self.assertEqual(models['dinat']['limits'], [{'backend': '*', 'kind': '*', 'reason': dinat[3:]}])
        self.assertEqual(models['llama4']['limits'][0]['backend'], 'cuda')
        self.assertEqual(models['llama4']['limits'][0]['kind'], 'benchmark')
        self.assertEqual(models['bert']['limits'], [])
        # Submitted on cpu: the task is created and runs, and stderr says why it may not pass.
        p = self.c.hfctl('submit', '--models', 'dinat,bert', '--backends', 'cpu')
        self.assertIn('job ', p.stdout)
        self.assertIn('submitted: 2 tasks', p.stdout)
        self.assertIn('hfctl: warning: dinat on cpu (test, 1 task): the registry marks it limited: '
                      + dinat[3:], p.stderr)
        self.assertNotIn('bert', p.stderr)
        job = int(p.stdout.split()[1])
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND model_type = 'dinat'" % job), '1')
        # --json carries the same list; a combination the registry does not mark is not in it.
        out = self.c.hfctl_json('submit', '--models', 'dinat,llama4', '--backends', 'cuda',
                                '--kind', 'test,benchmark', '--allow-waiting', '--priority', '-100')
        self.assertEqual(out['task_count'], 4)
        got = sorted((x['model_type'], x['backend'], x['kind'], x['task_count']) for x in out['limited'])
        self.assertEqual(got, [('dinat', 'cuda', 'benchmark', 1), ('dinat', 'cuda', 'test', 1),
                               ('llama4', 'cuda', 'benchmark', 1)])
        self.c.hfctl('cancel', str(out['job_id']))
        wait_job(self.c, job)
        self.assertNotEqual(self.c.pg.psql("SELECT state FROM tasks WHERE job_id = %d AND model_type = 'dinat'" % job),
                            'queued')
        self._ok = True

    def test_suites_choose_the_models_and_an_unknown_one_is_refused_with_the_list(self):
        models = self.c.hfctl_json('models')
        self.assertEqual(int(self.c.pg.psql('SELECT count(*) FROM models WHERE active')), len(models))
        core = [m['model_type'] for m in models if 'core' in m['suites']]
        self.assertGreater(len(models), len(core))
        self.assertEqual(len(self.c.hfctl_json('models', '--suite', 'core')), len(core))
        p = self.c.hfctl('models', '--suite', 'diffusion')
        self.assertIn('suites (hfctl submit --suite NAME): all, core, encoder-only, ', p.stdout)
        self.assertIn('the registry was built from transformers ', p.stdout)
        # A family's suite is all of it, not only its core models.
        diffusion = sorted(m['model_type'] for m in models if m['family'] == 'diffusion')
        self.assertGreater(len(diffusion), len([m for m in core if m.startswith('diffusion')]))
        p = self.c.hfctl('models', '--suite', 'nightly', check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('unknown suite "nightly" (valid: all, core, encoder-only', p.stderr)
        before = self.c.pg.psql('SELECT count(*) FROM jobs')
        p = self.c.hfctl('submit', '--suite', 'nightly', check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('unknown suite "nightly" (valid: all, core, encoder-only, decoder-only', p.stderr)
        p = self.c.hfctl('submit', '--suite', 'Core', check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(self.c.pg.psql('SELECT count(*) FROM jobs'), before)
        job, n = submit(self.c, '--suite', 'diffusion', '--models', 'bert', '--name', 'suite')
        self.assertEqual(n, len(diffusion) + 1)
        self.assertEqual(sorted(self.c.pg.psql('SELECT model_type FROM tasks WHERE job_id = %d' % job).split()),
                         sorted(diffusion + ['bert']))
        self.assertEqual(self.c.pg.psql("SELECT spec->>'suite' FROM jobs WHERE id = %d" % job), 'diffusion')
        wait_job(self.c, job)
        self._ok = True

    def test_unknown_model_is_refused_before_anything_is_written(self):
        before = self.c.pg.psql('SELECT count(*) FROM jobs')
        p = self.c.hfctl('submit', '--models', 'bert,no-such-model', check=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('no-such-model', p.stderr)
        p = self.c.hfctl('submit', '--models', 'bert', '--backends', 'tpu', check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn('tpu', p.stderr)
        p = self.c.hfctl('submit', '--models', 'bert', '--batch-sizes', 'x', check=False)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(self.c.pg.psql('SELECT count(*) FROM jobs'), before)
        self._ok = True

    def test_a_repeated_submit_makes_one_job(self):
        """A submit repeated with its request id gets the job the first made; another
        request under that id is refused; an answer lost to a frozen coordinator is
        asked for again, and the job is made once."""
        args = ('submit', '--models', 'bert,gpt2', '--name', 'repeat', '--priority', '-100')
        first = self.c.hfctl_json(*args, '--request-id', 'it-repeat-1')
        self.assertFalse(first['existing'])
        again = self.c.hfctl_json(*args, '--request-id', 'it-repeat-1')
        self.assertEqual((again['job_id'], again['task_count'], again['existing']),
                         (first['job_id'], first['task_count'], True))
        p = self.c.hfctl(*args, '--request-id', 'it-repeat-1')
        self.assertIn('job %d was submitted before with request id it-repeat-1: 2 tasks, not made again'
                      % first['job_id'], p.stdout)
        p = self.c.hfctl('submit', '--models', 'bert', '--name', 'repeat', '--request-id', 'it-repeat-1',
                         check=False)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn('already made job %d from a different request' % first['job_id'], p.stderr)
        # The key is the submitter's (its token's name): another may use the same one.
        other = self.c.hfctl_json(*args, '--request-id', 'it-repeat-1',
                                  token_file=self.c.token_file('someone-else', 'submitter'))
        self.assertNotEqual(other['job_id'], first['job_id'])
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM jobs WHERE name = 'repeat'"), '2')
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d" % first['job_id']), '2')

        # An answer lost after the job was made: the coordinator's database
        # sessions are frozen, so the submit hfctl sent is taken but not
        # answered in hfctl's 1 s; hfctl asks again with the key it drew, and
        # once the database moves on the repeat is answered with the job the
        # first request made.  (--family: the submit is hfctl's first request.)
        backends = [int(x) for x in self.c.pg.psql(
            "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE datname = 'hfleet'"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()").split()]
        self.assertTrue(backends)
        for pid in backends:
            os.kill(pid, signal.SIGSTOP)
        try:
            p = subprocess.Popen([harness.HFCTL, '--control', self.c.control_url,
                                  '--token-file', self.c.admin_token_file, '--request-timeout', '1s', '--json',
                                  'submit', '--family', 'diffusion', '--name', 'lost-answer', '--priority', '-100'],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(2.5)
        finally:
            for pid in backends:
                os.kill(pid, signal.SIGCONT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, out + err)
        self.assertIn('asking again with request id', err)
        made = json.loads(out)
        print('lost answer: %s -> job %d, existing=%s' % (err.strip().replace('\n', ' | '), made['job_id'],
                                                         made['existing']))
        self.assertTrue(made['existing'])
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM jobs WHERE name = 'lost-answer'"), '1')
        self.assertEqual(self.c.pg.psql("SELECT id FROM jobs WHERE name = 'lost-answer'"), str(made['job_id']))
        for job in (first['job_id'], other['job_id'], made['job_id']):
            self.c.hfctl('cancel', str(job))
        self._ok = True

    def test_incompatible_worker_is_refused_naming_accepted_versions(self):
        p = subprocess.run([os.environ.get('HF_OLDPEER', os.path.join(harness.BUILD, 'tests', 'integration', 'hf-oldpeer')),
                            self.c.worker_url, '99'], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('protocol version 99 is not accepted', p.stdout)
        self.assertIn('accepts versions 2 to 2', p.stdout)

    def test_protocol_1_peer_is_told_to_upgrade(self):
        p = subprocess.run([os.environ.get('HF_OLDPEER', os.path.join(harness.BUILD, 'tests', 'integration', 'hf-oldpeer')),
                            self.c.worker_url, '1'], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('protocol version 1 is not accepted', p.stdout)
        self.assertIn('upgrade hf-worker or hfctl', p.stdout)
        self.assertNotIn('oldpeer', self.c.hfctl('workers').stdout)
        self._ok = True

    def test_work_no_device_can_run_is_refused_unless_asked_to_wait(self):
        before = self.c.pg.psql('SELECT count(*) FROM jobs')
        p = self.c.hfctl('submit', '--models', 'bert', '--backends', 'cuda', check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn('no connected worker can run cuda tasks', p.stderr)
        self.assertEqual(self.c.pg.psql('SELECT count(*) FROM jobs'), before)
        p = self.c.hfctl('submit', '--models', 'bert', '--min-memory', '100000GiB', check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn('GiB required', p.stderr)
        job, n = submit(self.c, '--models', 'bert', '--backends', 'cuda', '--allow-waiting', '--priority', '-100')
        self.assertEqual(n, 1)
        time.sleep(1.0)
        self.assertEqual(job_state(self.c, job), 'running')
        self.assertEqual(self.c.pg.psql('SELECT state FROM tasks WHERE job_id = %d' % job), 'queued')
        self.c.hfctl('cancel', str(job))
        self._ok = True

    def test_devices_and_metrics_show_the_fleet(self):
        d = self.c.hfctl_json('devices')
        self.assertEqual(sorted(x['worker_id'] for x in d['devices'] if x['backend'] == 'cpu'), ['w1', 'w2'])
        absent = [a for a in d['absent'] if a['backend'] == 'cuda']
        self.assertEqual(len(absent), 2)
        self.assertTrue(all(a['reason'] for a in absent))
        body = urllib.request.urlopen(self.c.http_url + '/metrics', timeout=10).read().decode()
        self.assertIn('hfleet_database_up 1', body)
        self.assertIn('hfleet_workers{state="connected"} 2', body)
        self.assertIn('hfleet_device_memory_total_bytes{worker="w1",backend="cpu",index="0"}', body)
        health = urllib.request.urlopen(self.c.http_url + '/healthz', timeout=10)
        self.assertEqual(health.status, 200)
        self._ok = True

    def test_small_high_priority_job_finishes_before_big_low_priority_one(self):
        big, nbig = submit(self.c, '--all', '--batch-sizes', '3,5', '--priority', '-10', '--name', 'big')
        small, nsmall = submit(self.c, '--models', 'bert,gpt2,t5,vit,whisper,clip', '--priority', '10', '--name', 'small')
        wait_job(self.c, small)
        wait_job(self.c, big)
        order = self.c.pg.rows('SELECT name FROM jobs WHERE id IN (%d, %d) ORDER BY finished_at' % (big, small))
        self.assertEqual([r[0] for r in order], ['small', 'big'])
        # The small job did not wait behind the big one's queue, judged on
        # grants, not on how many big tasks finished meanwhile (that counted
        # the host's speed: 321 of 617 on a CI host busy with a build,
        # against a limit of 154; tasks the workers had leased ahead before
        # the small job came are theirs to run, and test_lease_ahead checks
        # that they start by priority):
        # - between the small job's creation and its first grant, only the
        #   grants already under way when it came (first-in-first-out
        #   dispatch would grant most of the big job there);
        # - from its first grant until its last first attempt was granted,
        #   no grant took a task of the big job (one transaction may take
        #   both: the same granted_at).
        q = ("WITH s AS (SELECT (SELECT created_at FROM jobs WHERE id = %d) AS created,"
             " min(a.granted_at) AS first, max(a.granted_at) AS last FROM attempts a"
             " JOIN tasks t ON t.id = a.task_id WHERE t.job_id = %d AND a.attempt = 1)"
             " SELECT count(*) FILTER (WHERE a.granted_at > s.created AND a.granted_at < s.first),"
             " count(*) FILTER (WHERE a.granted_at > s.first AND a.granted_at < s.last)"
             " FROM attempts a JOIN tasks t ON t.id = a.task_id, s WHERE t.job_id = %d" % (small, small, big))
        before_first, overtaking = (int(v) for v in self.c.pg.rows(q)[0])
        self.assertLess(before_first, nbig // 10)
        self.assertEqual(overtaking, 0)
        self._ok = True

    def test_two_equal_jobs_progress_at_comparable_rates(self):
        # Jobs take turns at lease time, so fairness is judged on the tasks
        # each job was granted, not on those finished: the two families'
        # tasks differ in length, and counting finished ones measured the
        # runners (24 against 45 under ASan on a loaded CI host).  Both jobs
        # are queued before any worker may take them (both drained), so
        # neither has a head start (a's was 47 grants while b's hfctl
        # started, under ASan on CI); and only the grants made while both
        # still had queued tasks count: once one job has been granted its
        # last task the other has the workers to itself, as it should
        # (counting on past that point read 50 against 91).
        for w in ('w1', 'w2'):
            self.assertEqual(self.c.hfctl('drain', w).returncode, 0)
        try:
            a, na = submit(self.c, '--family', 'vision,speech', '--batch-sizes', '7', '--name', 'a')
            b, nb = submit(self.c, '--family', 'encoder-only,decoder-only', '--batch-sizes', '7', '--name', 'b')
        finally:
            for w in ('w1', 'w2'):
                self.c.hfctl('undrain', w)
        wait_job(self.c, a)
        wait_job(self.c, b)
        ga, gb = grants_while_both_queued(self.c, a, b)
        print('fair share: while both had queued tasks, job a was granted %d and job b %d (of %d and %d)'
              % (ga, gb, na, nb))
        self.assertGreaterEqual(ga + gb, min(na, nb))
        self.assertGreater(min(ga, gb), 0.8 * max(ga, gb))
        self._ok = True

    def test_drained_worker_gets_nothing_new_until_undrained(self):
        p = self.c.hfctl('drain', 'w2')
        self.assertEqual(p.returncode, 0)
        job, n = submit(self.c, '--models', 'bert,gpt2,t5,vit,roberta,albert,bart,whisper', '--batch-sizes', '9')
        wait_job(self.c, job)
        workers = self.c.pg.psql('SELECT string_agg(DISTINCT r.worker_id, \',\') FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.job_id = %d' % job)
        self.assertEqual(workers, 'w1')
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM drains WHERE worker_id = 'w2'"), '1')
        self.c.hfctl('undrain', 'w2')
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM drains"), '0')
        self._ok = True

    def test_explain_and_cancel_one_task(self):
        job, n = submit(self.c, '--models', 'bert,gpt2', '--backends', 'cuda', '--allow-waiting')
        tasks = [int(r[0]) for r in self.c.pg.rows('SELECT id FROM tasks WHERE job_id = %d ORDER BY id' % job)]
        e = self.c.hfctl_json('explain', str(tasks[0]))
        self.assertEqual(e['status'], 'queued')
        self.assertIn('no registered worker has a cuda device', e['summary'])
        p = self.c.hfctl('cancel', '--task', str(tasks[0]))
        self.assertIn('cancelled', p.stdout)
        self.assertEqual(self.c.pg.psql('SELECT state FROM tasks WHERE id = %d' % tasks[0]), 'cancelled')
        self.assertEqual(self.c.pg.psql('SELECT state FROM tasks WHERE id = %d' % tasks[1]), 'queued')
        e = self.c.hfctl_json('explain', str(tasks[0]))
        self.assertEqual(e['status'], 'cancelled')
        self.c.hfctl('cancel', '--task', str(tasks[1]))
        self.c.wait_for(lambda: job_state(self.c, job) == 'done', 10, 'the job to end with its last task')
        self._ok = True

    def test_cancel_stops_queued_work(self):
        job, n = submit(self.c, '--family', 'vision', '--batch-sizes', '1,2,4,8', '--priority', '-5')
        p = self.c.hfctl('cancel', str(job))
        self.assertEqual(p.returncode, 0)
        self.c.wait_for(lambda: self.c.pg.psql(
            "SELECT count(*) FROM tasks WHERE job_id = %d AND state IN ('queued', 'leased')" % job) == '0',
            30, 'cancel to settle')
        self.assertEqual(job_state(self.c, job), 'cancelled')
        cancelled = int(self.c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'cancelled'" % job))
        self.assertGreater(cancelled, 0)
        # nothing of it starts afterwards
        time.sleep(1.0)
        started = self.c.pg.psql("SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id"
                                 " WHERE t.job_id = %d AND a.granted_at > now() - interval '0.8 seconds'" % job)
        self.assertEqual(started, '0')
        self._ok = True


class MisbehavingRunnerTest(unittest.TestCase):
    """A runner that crashes, hangs, prints garbage or fails: each gets an
    honest outcome with its reason, and nothing else is disturbed."""

    @classmethod
    def setUpClass(cls):
        # Retries are what this tests: no quarantine of the crashing device.
        cls.c = harness.Cluster(coordinator_set=['scheduler.quarantine_after=0'])
        cls.c.start_coordinator()
        cls.c.start_worker('bad', slots=4, runner_args='--crash bert --garbage gpt2 --hang t5 --fail vit')
        cls.c.wait_for(lambda: len(cls.c.hfctl_json('workers')) == 1, 30, 'worker to register')

    @classmethod
    def tearDownClass(cls):
        if os.environ.get('HF_KEEP'):
            cls.c.dump_logs()
        cls.c.close(keep=bool(os.environ.get('HF_KEEP')))

    def test_each_misbehaviour_gets_its_outcome(self):
        job, n = submit(self.c, '--models', 'bert,gpt2,t5,vit,roberta', '--task-timeout', '3s')
        wait_job(self.c, job, timeout=90)
        assert_exactly_once(self, self.c, job, 5)
        got = dict(self.c.pg.rows(
            "SELECT t.model_type, t.state || ':' || r.reason FROM tasks t JOIN results r ON r.id = t.result_id"
            " WHERE t.job_id = %d" % job))
        self.assertTrue(got['bert'].startswith('error:'), got['bert'])
        self.assertIn('without', got['bert'])           # exited without a result
        self.assertTrue(got['gpt2'].startswith('error:'), got['gpt2'])
        self.assertIn('invalid', got['gpt2'])           # unparsable result
        self.assertTrue(got['t5'].startswith('timeout:'), got['t5'])
        self.assertTrue(got['vit'].startswith('failed:'), got['vit'])
        self.assertEqual(got['roberta'], 'passed:')
        # a crash is an infrastructure failure: retried (default 3 times) with
        # backoff before it becomes the outcome; a failed test is not retried
        self.assertEqual(self.c.pg.psql("SELECT attempt FROM tasks WHERE job_id = %d AND model_type = 'bert'" % job), '4')
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id"
                                        " WHERE t.job_id = %d AND t.model_type = 'bert' AND r.retried" % job), '3')
        self.assertEqual(self.c.pg.psql("SELECT attempt FROM tasks WHERE job_id = %d AND model_type = 'vit'" % job), '1')
        # hfctl retry queues the failed and errored tasks again as new attempts
        p = self.c.hfctl_json('retry', str(job))
        self.assertEqual(int(p['requeued']), 4)   # bert, gpt2 (error), t5 (timeout), vit (failed)
        wait_job(self.c, job, timeout=90)
        assert_exactly_once(self, self.c, job, 5)
        self.assertEqual(self.c.pg.psql("SELECT attempt FROM tasks WHERE job_id = %d AND model_type = 'vit'" % job), '2')
        self.assertEqual(self.c.pg.psql("SELECT attempt FROM tasks WHERE job_id = %d AND model_type = 'bert'" % job), '5')
        self.assertEqual(self.c.pg.psql("SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id"
                                        " WHERE t.job_id = %d AND t.model_type = 'vit' AND r.retried" % job), '1')
        # the garbage flood was bounded
        size = int(self.c.pg.psql("SELECT max(length(log_excerpt)) FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.job_id = %d" % job))
        self.assertLessEqual(size, 16384)


    def test_flaky_reruns_are_recorded_and_the_last_run_decides(self):
        job, n = submit(self.c, '--models', 'vit,roberta', '--flaky-reruns', '2')
        wait_job(self.c, job, timeout=90)
        assert_exactly_once(self, self.c, job, 2)
        rows = dict((m, (st, a, rr)) for m, st, a, rr in self.c.pg.rows(
            "SELECT model_type, status, attempt, reruns FROM task_outcomes WHERE job_id = %d" % job))
        self.assertEqual(rows['vit'], ('failed', '3', '2'))    # failed three times: an outcome
        self.assertEqual(rows['roberta'], ('passed', '1', '0'))
        flaky = self.c.pg.psql("SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id"
                               " WHERE t.job_id = %d AND r.flaky_rerun AND r.retried AND r.status = 'failed'" % job)
        self.assertEqual(flaky, '2')


class CoordinatorKillTest(unittest.TestCase):
    """SIGKILL the coordinator in the middle of a job and start it again:
    no task is lost and none is stored twice."""

    def test_sigkill_mid_job_loses_nothing_and_stores_nothing_twice(self):
        with harness.cluster(heartbeat='200ms', lease='4s') as c:
            c.start_coordinator()
            c.start_worker('k1', slots=3, runner_args='--sleep 0.15')
            c.start_worker('k2', slots=3, runner_args='--sleep 0.15')
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 2, 30, 'workers to register')
            job, n = submit(c, '--family', 'decoder-only,encoder-only', '--batch-sizes', '1,2')
            kills = 0
            for _ in range(3):
                # let some work complete, then kill at an arbitrary point
                done_before = int(c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state NOT IN ('queued','leased')" % job))
                c.wait_for(lambda: int(c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state NOT IN ('queued','leased')" % job)) > done_before + 5, 60, 'progress')
                c.coordinator.kill(signal.SIGKILL)
                c.coordinator.proc.wait()
                kills += 1
                time.sleep(0.5)
                c.start_coordinator()
            wait_job(c, job, timeout=300)
            assert_exactly_once(self, c, job, n)
            self.assertEqual(kills, 3)


class WarmRunnerTest(unittest.TestCase):
    """The same job on a worker that starts a runner per task
    (runner.warm=false) and on one with warm runners: both store every result
    exactly once with the same outcomes, and the warm worker starts far fewer
    runner processes (each result's env names the pid that ran it).  A model
    that reports a fatal device error retires its warm runner, and the tasks
    after it still run; a drained warm worker leaves no runner behind."""

    SLOTS = 2
    RUNNER_ARGS = ['--fatal', 'bert']

    def start_worker(self, c, wid, extra):
        runner = 'python3 %s %s' % (harness.ARITH_RUNNER, ' '.join(self.RUNNER_ARGS))
        d = harness.Daemon(wid, [harness.WORKER, '--id', wid, '--coordinator-url', c.worker_url,
                                 '--state-dir', os.path.join(c.root, 'state-' + wid),
                                 '--slots', str(self.SLOTS), '--runner', runner,
                                 '--log-level', 'info'] + extra, c.root, env=c.worker_env(wid)).start()
        c.workers[wid] = d
        c.wait_for(lambda: any(w['worker_id'] == wid and w['connected'] for w in c.hfctl_json('workers')),
                   30, 'worker %s to register' % wid)
        return d

    def run_job(self, c, wid, extra):
        """Runs the job alone on a new worker, drains it; -> (job, tasks, {task: (status, reason, pid)})."""
        d = self.start_worker(c, wid, extra)
        job, n = submit(c, '--family', 'encoder-only', '--backends', 'cpu', '--batch-sizes', '1,2')
        wait_job(c, job, timeout=300)
        self.assertEqual(d.stop(), 0)
        assert_exactly_once(self, c, job, n)
        rows = c.pg.rows("SELECT t.model_type || '/' || t.batch_size, r.status, r.reason, r.env->>'pid',"
                         " r.worker_id, extract(epoch FROM r.finished_at)"
                         " FROM tasks t JOIN results r ON r.id = t.result_id WHERE t.job_id = %d" % job)
        self.assertEqual(len(rows), n)
        self.assertEqual({r[4] for r in rows}, {wid})
        return job, n, {r[0]: (r[1], r[2], int(r[3]), float(r[5])) for r in rows}, d

    def test_warm_worker_stores_the_same_results_with_far_fewer_processes(self):
        # A kernel assertion is the model's doing: its outcome, not retried,
        # and no reason to quarantine the device (the default limit holds).
        with harness.cluster() as c:
            c.start_coordinator()
            _, n, cold, _ = self.run_job(c, 'cold', ['--set', 'runner.warm=false'])
            warm_job, n_warm, warm, wd = self.run_job(c, 'warm', [])
            self.assertEqual(n, n_warm)
            self.assertGreaterEqual(n, 80)
            # The same outcomes, task by task.
            self.assertEqual({k: v[:2] for k, v in cold.items()}, {k: v[:2] for k, v in warm.items()})
            fatal = sorted(k for k, v in warm.items() if v[0] == 'error')
            self.assertEqual(fatal, ['bert/1', 'bert/2'])
            self.assertTrue(all('device-side assert' in warm[k][1] for k in fatal))
            self.assertTrue(all(v[0] == 'passed' for k, v in warm.items() if k not in fatal))
            # A process per task cold; warm, one per slot plus one for each
            # runner retired after a fatal error.  Each fatal task ran once:
            # the runner said the model tripped the assertion, so it is not
            # retried as an infrastructure failure, and the device stays in
            # service.
            fatal_runs = int(c.pg.psql("SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id"
                                       " WHERE t.job_id = %d AND r.reason LIKE '%%device-side assert%%'" % warm_job))
            self.assertEqual(fatal_runs, 2)
            self.assertEqual(c.pg.psql('SELECT count(*) FROM device_quarantine'), '0')
            cold_pids = {v[2] for v in cold.values()}
            warm_pids = {v[2] for v in warm.values()}
            self.assertEqual(len(cold_pids), n)
            self.assertLessEqual(len(warm_pids), self.SLOTS + fatal_runs)
            self.assertLessEqual(len(warm_pids), n // 10)
            # A fatal task ran in a process that served nothing after it.
            for k in fatal:
                later = [j for j, v in warm.items() if v[2] == warm[k][2] and v[3] > warm[k][3]]
                self.assertEqual(later, [], 'tasks run after %s in its retired runner' % k)
            log = wd.log()
            self.assertIn('it reported a fatal device error', log)
            self.assertIn('warm runner started for cpu:0', log)
            # Drained: every warm runner is gone (the last ones were retired
            # after the fatal retries, or asked to leave when the worker stopped).
            for pid in warm_pids:
                with self.assertRaises(ProcessLookupError):
                    os.kill(pid, 0)




class WeightLocalityTest(unittest.TestCase):
    """A task goes to a worker that already has its model's weights in the
    HuggingFace cache when one is connected (scheduler.locality_wait)."""

    def test_tasks_go_to_the_worker_that_has_the_weights(self):
        with harness.cluster() as c:
            c.start_coordinator()
            near_cache = os.path.join(c.root, 'hub-near')
            far_cache = os.path.join(c.root, 'hub-far')
            os.makedirs(os.path.join(near_cache, 'models--google-bert--bert-base-uncased', 'snapshots', '86b5e09'))
            os.makedirs(far_cache)
            for wid, cache in (('near', near_cache), ('far', far_cache)):
                c.workers[wid] = harness.Daemon(wid, [
                    harness.WORKER, '--id', wid, '--coordinator-url', c.worker_url,
                    '--state-dir', os.path.join(c.root, 'state-' + wid), '--slots', '2',
                    '--runner', 'python3 %s --sleep 0.2' % harness.ARITH_RUNNER,
                    '--set', 'runner.hf_cache=' + cache], c.root, env=c.worker_env(wid)).start()
            c.wait_for(lambda: len(c.hfctl_json('workers')) == 2, 30, 'two workers to register')
            self.assertIn('1 models have weights', c.workers['near'].log())
            job, n = submit(c, '--models', 'bert', '--batch-sizes', '1,2,3,4,5,6,7,8')
            wait_job(c, job, timeout=120)
            assert_exactly_once(self, c, job, n)
            workers = c.pg.psql("SELECT string_agg(DISTINCT r.worker_id, ',') FROM tasks t"
                                " JOIN results r ON r.id = t.result_id WHERE t.job_id = %d" % job)
            self.assertEqual(workers, 'near')


def device_state(c, wid):
    """The cpu:0 device of worker wid as hfctl devices --json shows it, or None."""
    for d in c.hfctl_json('devices')['devices']:
        if d['worker_id'] == wid and d['backend'] == 'cpu' and d['index'] == 0:
            return d
    return None


def health_checks(c, wid, ok):
    return int(c.pg.psql("SELECT count(*) FROM device_health_checks WHERE worker_id = '%s' AND ok = %s"
                         % (wid, 'true' if ok else 'false')))


class DeviceHealthTest(unittest.TestCase):
    """A device whose tasks keep crashing is quarantined: nothing more is
    assigned to it, hfctl explain and devices say so, the quarantine
    survives a coordinator restart, and a passing health check (asked for
    by the coordinator) brings it back.  A device that fails its health
    check at registration starts quarantined."""

    def test_crashing_device_is_quarantined_until_its_health_check_passes(self):
        with harness.cluster(coordinator_set=['scheduler.quarantine_after=3',
                                              'scheduler.quarantine_recheck=1s']) as c:
            broken = os.path.join(c.root, 'broken-h1')
            c.start_coordinator()
            c.start_worker('h1', slots=2, runner_args='--broken-file ' + broken)
            # The check at registration passes: in service, and recorded.
            c.wait_for(lambda: health_checks(c, 'h1', True) >= 1, 30, 'the registration health check')
            check = c.pg.rows("SELECT backend, idx, trigger, detail FROM device_health_checks WHERE worker_id = 'h1'")[0]
            self.assertEqual(check[:3], ['cpu', '0', 'register'])
            self.assertIn('sum of squares', check[3])
            self.assertEqual(device_state(c, 'h1')['state'], 'in-service')

            # The device breaks: every task crashes (an infrastructure error).
            open(broken, 'w').close()
            job, n = submit(c, '--models', 'bert,gpt2,t5,vit,roberta,albert', '--max-retries', '10')
            c.wait_for(lambda: device_state(c, 'h1')['state'] == 'quarantined', 60, 'the device to be quarantined')
            self.assertRegex(c.coordinator.log(), 'quarantined h1/cpu:0: 3 infrastructure failures in a row,'
                             ' the last: [^\\n]*exited with status 3')
            # The reason is the latest: the crashes, or a recheck that failed since.
            d = device_state(c, 'h1')
            self.assertRegex(d['state_reason'], '^(3 infrastructure failures in a row|health check failed: device marked broken)')
            self.assertGreaterEqual(d['infra_failures'], 3)
            self.assertIn('quarantined devices:', c.hfctl('devices').stdout)
            body = urllib.request.urlopen(c.http_url + '/metrics', timeout=10).read().decode()
            self.assertIn('hfleet_device_quarantined{worker="h1",backend="cpu",index="0"} 1', body)
            self.assertRegex(body, r'\nhfleet_quarantines_total [1-9][0-9]*\n')
            self.assertRegex(body, r'\nhfleet_retries_total [1-9][0-9]*\n')
            crashes = int(c.pg.psql("SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id"
                                    " WHERE t.job_id = %d AND r.status = 'error'" % job))
            self.assertGreaterEqual(crashes, 3)
            self.assertEqual(c.pg.psql("SELECT count(*) FROM device_quarantine WHERE worker_id = 'h1'"), '1')

            # The rechecks the coordinator asks for fail while it is broken.
            c.wait_for(lambda: health_checks(c, 'h1', False) >= 1, 30, 'a failed recheck')
            self.assertEqual(c.pg.psql("SELECT DISTINCT trigger FROM device_health_checks WHERE worker_id = 'h1' AND NOT ok"),
                             'coordinator')

            # A queued task explains that its only device is quarantined.
            # (once its retry backoff is over).
            task = int(c.pg.psql("SELECT min(id) FROM tasks WHERE job_id = %d AND state = 'queued'" % job))
            c.wait_for(lambda: 'out of service (1 quarantined' in c.hfctl('explain', str(task)).stdout, 30,
                       'explain to name the quarantine')
            self.assertIn('h1/cpu:0: quarantined (', c.hfctl('explain', str(task)).stdout)

            # The quarantine is in the database: a restarted coordinator
            # knows it before the worker comes back.
            c.coordinator.kill(signal.SIGKILL)
            c.coordinator.proc.wait()
            c.start_coordinator()
            self.assertIn('0 drains, 1 quarantined devices', c.coordinator.log())
            c.wait_for(lambda: device_state(c, 'h1')['state'] == 'quarantined', 30,
                       'the worker to come back, quarantined')
            c.wait_for(lambda: 'h1/cpu:0: quarantined (' in c.hfctl('explain', str(task)).stdout, 30,
                       'explain to name the quarantine after the restart')

            # Mended: the next check the coordinator asks for passes, the
            # device is back and the job finishes there.
            os.unlink(broken)
            wait_job(c, job, timeout=120)
            assert_exactly_once(self, c, job, n)
            self.assertEqual(c.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state <> 'passed'" % job), '0')
            self.assertEqual(device_state(c, 'h1')['state'], 'in-service')
            self.assertEqual(c.pg.psql("SELECT count(*) FROM device_quarantine"), '0')
            self.assertIn('passed its health check', c.coordinator.log())

    def test_device_failing_its_first_check_starts_quarantined(self):
        with harness.cluster(coordinator_set=['scheduler.quarantine_recheck=1s']) as c:
            broken = os.path.join(c.root, 'broken-h2')
            open(broken, 'w').close()
            c.start_coordinator()
            c.start_worker('h2', slots=2, runner_args='--broken-file ' + broken)
            c.wait_for(lambda: health_checks(c, 'h2', False) >= 1, 30, 'the registration health check')
            self.assertEqual(c.pg.psql("SELECT trigger FROM device_health_checks WHERE worker_id = 'h2' ORDER BY id LIMIT 1"),
                             'register')
            d = device_state(c, 'h2')
            self.assertEqual(d['state'], 'quarantined')
            self.assertIn('health check failed: device marked broken', d['state_reason'])
            # Nothing ran on it: the task waits, saying why.
            job, n = submit(c, '--models', 'bert')
            task = int(c.pg.psql('SELECT id FROM tasks WHERE job_id = %d' % job))
            time.sleep(1.0)
            self.assertEqual(c.pg.psql('SELECT count(*) FROM attempts WHERE task_id = %d' % task), '0')
            ex = c.hfctl('explain', str(task)).stdout
            self.assertIn('out of service (1 quarantined, 0 drained)', ex)
            self.assertIn('health check failed', ex)
            # Mended: back in service, and the task runs.
            os.unlink(broken)
            wait_job(c, job, timeout=60)
            self.assertEqual(c.pg.psql('SELECT state FROM tasks WHERE id = %d' % task), 'passed')
            self.assertEqual(device_state(c, 'h2')['state'], 'in-service')

    def test_a_multi_device_task_that_keeps_crashing_quarantines_each_of_its_devices(self):
        """Which device of a two-device task failed cannot be told apart: both
        are counted, and their own health checks sort them out later."""
        with harness.cluster(coordinator_set=['scheduler.quarantine_after=2',
                                              'scheduler.quarantine_recheck=1h']) as c:
            broken = os.path.join(c.root, 'broken-m1')
            c.start_coordinator()
            runner = 'python3 %s --broken-file %s' % (harness.ARITH_RUNNER, broken)
            c.workers['m1'] = harness.Daemon('m1', [
                harness.WORKER, '--id', 'm1', '--coordinator-url', c.worker_url,
                '--state-dir', os.path.join(c.root, 'state-m1'), '--slots', '2', '--runner', runner,
                '--set', 'devices.declare=qnn:0:name=NPU A;qnn:1:name=NPU B', '--log-level', 'info'],
                c.root, env=c.worker_env('m1')).start()

            def qnn_states():
                return sorted((d['index'], d['state']) for d in c.hfctl_json('devices')['devices']
                              if d['worker_id'] == 'm1' and d['backend'] == 'qnn')
            # The registration checks pass first (cpu:0, qnn:0, qnn:1), then the devices break.
            c.wait_for(lambda: health_checks(c, 'm1', True) >= 3, 30, 'the registration health checks')
            self.assertEqual(qnn_states(), [(0, 'in-service'), (1, 'in-service')])
            open(broken, 'w').close()
            job, n = submit(c, '--models', 'bert,gpt2', '--backends', 'qnn', '--devices-per-task', '2',
                            '--max-retries', '10')
            c.wait_for(lambda: qnn_states() == [(0, 'quarantined'), (1, 'quarantined')], 60,
                       'both devices of the crashing tasks to be quarantined')
            self.assertEqual(c.pg.psql("SELECT string_agg(backend || ':' || idx, ',' ORDER BY idx)"
                                       " FROM device_quarantine WHERE worker_id = 'm1'"), 'qnn:0,qnn:1')
            self.assertRegex(c.coordinator.log(), 'quarantined m1/qnn:1: 2 infrastructure failures in a row')
            self.assertEqual(device_state(c, 'm1')['state'], 'in-service')   # cpu:0 ran none of them
            c.hfctl('cancel', str(job))


class TransformersSkewTest(unittest.TestCase):
    """A worker whose transformers is older or newer than the registry's is named
    in the coordinator's log when it registers; one of the same version is not."""

    def test_other_versions_are_told_at_registration(self):
        with harness.cluster() as c:
            c.start_coordinator()
            for wid, version in (('same', '5.17.2'), ('old', '5.12.0'), ('new', '6.1.0.dev0')):
                c.start_worker(wid, slots=1, runner_args='--transformers ' + version)
                c.wait_for(lambda: 'worker "%s" registered' % wid in c.coordinator.log(), 30,
                           'worker %s to register' % wid)
            log = c.coordinator.log()
            self.assertIn('worker "old": transformers 5.12.0 is older than the registry\'s 5.17.0: its runner'
                          ' skips the model types it lacks', log)
            self.assertIn('worker "new": transformers 6.1.0.dev0 is newer than the registry\'s 5.17.0: model types'
                          ' it added are not in the registry', log)
            self.assertNotIn('worker "same": transformers', log)
            # hfctl workers shows what each has.
            workers = {w['worker_id']: w for w in c.hfctl_json('workers')}
            self.assertIn('5.12.0', json.dumps(workers['old']))


class RunnerContainmentTest(unittest.TestCase):
    """A runner that finishes without a result is the runner's error: the
    device is never quarantined for it.  Nothing a runner leaves behind,
    even a double-forked daemon in a session of its own, outlives its task,
    on a worker with a runner per task and on one with warm runners."""

    def check(self, wid, extra):
        with harness.cluster(coordinator_set=['scheduler.quarantine_after=2',
                                              'scheduler.quarantine_recheck=1h']) as c:
            escaped = os.path.join(c.root, 'escaped-' + wid)
            os.mkdir(escaped)
            c.start_coordinator()
            runner = 'python3 %s --no-result bert --no-result gpt2 --no-result t5 --escape-dir %s' % (
                harness.ARITH_RUNNER, escaped)
            d = c.workers[wid] = harness.Daemon(wid, [
                harness.WORKER, '--id', wid, '--coordinator-url', c.worker_url,
                '--state-dir', os.path.join(c.root, 'state-' + wid), '--slots', '1', '--runner', runner,
                '--log-level', 'info'] + extra, c.root, env=c.worker_env(wid)).start()
            c.wait_for(lambda: device_state(c, wid)['state'] == 'in-service', 30,
                       'worker %s to register' % wid)
            job, n = submit(c, '--models', 'bert,gpt2,t5,vit', '--backends', 'cpu', '--max-retries', '5')
            wait_job(c, job, timeout=120)
            assert_exactly_once(self, c, job, n)
            rows = c.pg.rows("SELECT t.model_type, r.status, r.reason FROM tasks t JOIN results r"
                             " ON r.id = t.result_id WHERE t.job_id = %d ORDER BY t.model_type" % job)
            for model, status, reason in rows:
                if model == 'vit':
                    self.assertEqual(status, 'passed')
                else:
                    self.assertEqual(status, 'error')
                    self.assertIn('without writing a result', reason)
            # Not retried as infrastructure failures, and the device stays.
            self.assertEqual(c.pg.psql('SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id'
                                       ' WHERE t.job_id = %d' % job), str(n))
            self.assertEqual(c.pg.psql('SELECT count(*) FROM device_quarantine'), '0')
            self.assertEqual(device_state(c, wid)['state'], 'in-service')
            self.assertEqual(device_state(c, wid)['infra_failures'], 0)
            self.assertIn('runner processes are contained by', d.log())
            # Every task left a daemon; each died with its task.
            pids = [int(p) for p in os.listdir(escaped)]
            self.assertGreaterEqual(len(pids), n)
            for pid in pids:
                c.wait_for(lambda: not os.path.exists('/proc/%d' % pid) or
                           open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[0] == 'Z',
                           10, 'daemon %d to die' % pid)
            self.assertEqual(d.stop(), 0)
            # Under the sanitizers: nothing reported (UBSan goes on after one).
            self.assertNotIn('Sanitizer', d.log())
            self.assertNotIn('runtime error:', d.log())

    def test_one_shot_runners(self):
        self.check('c1', ['--set', 'runner.warm=false'])

    def test_warm_runners(self):
        self.check('w1', [])


if __name__ == '__main__':
    unittest.main(verbosity=2)
