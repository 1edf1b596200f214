#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What every figure of bench/run.py shares: the table of figures and notes,
the processes it starts (each in its own process group, killed at exit),
their CPU, RSS and context switches from /proc, the private fleet (Bench:
PostgreSQL through tests/integration/harness.py, hf-coordinator, hf-workers,
the fleet simulator) and the measured window (Window: results, CPU and
statements at its start and end).  The figures themselves, and main, are
bench/run.py's.  Python 3 standard library only.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
TICK = os.sysconf('SC_CLK_TCK')

FIGURES = []        # (figure, value text, target text, verdict)
NOTES = []
CHILDREN = []       # Popen objects we started, killed at exit


def log(msg):
    print('bench: ' + msg, file=sys.stderr, flush=True)


def figure(name, value, target='', ok=None):
    verdict = '' if ok is None else ('meets' if ok else 'MISSES')
    FIGURES.append((name, value, target, verdict))
    log('%-48s %s   (target %s) %s' % (name, value, target or '-', verdict))


def harness_module(build):
    os.environ['HF_BUILD_ROOT'] = os.path.abspath(build)
    os.environ['HF_SOURCE_ROOT'] = SOURCE
    sys.path.insert(0, os.path.join(SOURCE, 'tests', 'integration'))
    import harness
    return harness


def spawn(argv, logpath, env=None, stdout=None):
    logf = open(logpath, 'ab')
    p = subprocess.Popen(argv, stdout=stdout or logf, stderr=logf, env=env, start_new_session=True)
    logf.close()
    CHILDREN.append(p)
    return p


def kill_children():
    for p in CHILDREN:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
    for p in CHILDREN:
        try:
            p.wait(5)
        except Exception:
            pass


# ---- /proc accounting ----

def proc_cpu_s(pid, children=False):
    """utime + stime of pid in seconds (with children: also its reaped
    children's)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / TICK


def proc_switches(pid):
    """Context switches (voluntary and not) of all pid's threads so far."""
    n = 0
    try:
        for tid in os.listdir('/proc/%d/task' % pid):
            try:
                with open('/proc/%d/task/%s/status' % (pid, tid)) as f:
                    for line in f:
                        if line.startswith(('voluntary_ctxt_switches:', 'nonvoluntary_ctxt_switches:')):
                            n += int(line.split()[1])
            except OSError:
                pass
    except OSError:
        pass
    return n


def proc_rss_mib(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid):
    """pid and every process below it."""
    kids = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except OSError:
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def pg_cpu_by_kind(postmaster, kinds):
    """PostgreSQL's CPU seconds so far by kind of process: each live child of
    the postmaster by its backend_type in kinds (pid -> backend_type, from
    pg_stat_activity: 'client backend', 'walwriter', ...; the harness's
    PostgreSQL does not set process titles); the postmaster itself; and
    what exited children left in its cutime/cstime (autovacuum workers and
    the harness's own psql sessions, mostly) as 'exited'."""
    out = {'postmaster': proc_cpu_s(postmaster), 'exited': proc_cpu_s(postmaster, True) - proc_cpu_s(postmaster)}
    for pid in descendants(postmaster)[1:]:
        kind = kinds.get(pid, 'other')
        out[kind] = out.get(kind, 0.0) + proc_cpu_s(pid)
    return out


def tree_cpu_s(pid):
    """CPU seconds of pid's whole tree: live processes plus what the
    reaped ones left in their parents' cutime/cstime."""
    return sum(proc_cpu_s(p, children=True) for p in descendants(pid))


# ---- the private fleet ----

class Bench:
    def __init__(self, args):
        self.args = args
        self.h = harness_module(args.build)
        h = self.h
        for exe in (h.COORDINATOR, h.WORKER, h.HFCTL, self.noop_runner, self.fleet_sim):
            if not os.path.exists(exe):
                sys.exit('bench: %s is missing: build first (meson setup %s && ninja -C %s)'
                         % (exe, args.build, args.build))
        base = h.PrivatePostgres

        # pg_stat_statements ships with Debian's postgresql-15; without it
        # the statement counts fall back to pg_stat_database's transactions.
        self.have_pgss = os.path.exists(os.path.join(h.pg_bindir(), '..', 'lib', 'pg_stat_statements.so'))
        pgss = ('-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=10000 '
                '-c pg_stat_statements.track_planning=on' if self.have_pgss else '')

        class BenchPostgres(base):
            def start(self):
                # The harness's settings, durability spelled out, and the
                # statement statistics loaded.
                subprocess.run(self.as_user + [
                    os.path.join(self.bindir, 'pg_ctl'), '-D', self.data, '-w', '-l',
                    os.path.join(self.dir, 'log'), '-o',
                    "-k %s -p %d -c listen_addresses='' -c fsync=on -c synchronous_commit=on "
                    "-c max_connections=200 %s %s" % (self.dir, self.port, pgss, os.environ.get('BENCH_PG_SET', '')),
                    'start'],
                    check=True, stdout=subprocess.DEVNULL)

        h.PrivatePostgres = BenchPostgres
        self.cluster = h.Cluster(heartbeat='1s', lease='30s', coordinator_set=[
            'connections.max_per_port=10100', 'coordinator.max_workers=12000'] + os.environ.get('BENCH_COORD_SET', '').split())
        self.root = self.cluster.root
        self.pg = self.cluster.pg
        self.worker_tokens = {}
        self.hf_workers = []
        if self.have_pgss:
            try:
                self.pg.psql('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
            except subprocess.CalledProcessError:
                self.cluster.close()
                raise
        else:
            NOTES.append('pg_stat_statements is not installed: statements per task are not counted')

    @property
    def noop_runner(self):
        return os.path.join(self.args.build, 'bench', 'hfleet-noop-runner')

    @property
    def fleet_sim(self):
        return os.path.join(self.args.build, 'bench', 'hfleet-fleet-sim')

    def seed_workers(self, names):
        # In chunks: the harness hands its INSERT to psql on the command line.
        for i in range(0, len(names), 500):
            self.worker_tokens.update(self.cluster.seed_tokens(names[i:i + 500]))

    def tokens_file(self, names):
        path = os.path.join(self.root, 'sim-tokens-%d-%s' % (len(names), names[0]))
        with open(path, 'w') as f:
            for n in names:
                f.write('%s %s\n' % (n, self.worker_tokens[n]))
        os.chmod(path, 0o600)
        return path

    def start(self):
        if self.args.callgrind:
            # The coordinator under callgrind: instruction counts are
            # repeatable where times are not.  Its start takes longer.
            self.callgrind_out = os.path.join(self.root, 'callgrind.out.coordinator')
            wrapper = os.path.join(self.root, 'coordinator-callgrind')
            with open(wrapper, 'w') as f:
                f.write('#!/bin/sh\nexec valgrind --tool=callgrind --compress-strings=no --callgrind-out-file=%s %s "$@"\n'
                        % (self.callgrind_out, self.h.COORDINATOR))
            os.chmod(wrapper, 0o755)
            self.h.COORDINATOR = wrapper
        self.cluster.start_coordinator()
        with open(self.cluster.admin_token_file) as f:
            self.admin_token = f.read().strip()
        self.model_count = len(self.hfctl_json('models'))

    def coordinator_pid(self):
        return self.cluster.coordinator.proc.pid

    def postmaster_pid(self):
        with open(os.path.join(self.pg.data, 'postmaster.pid')) as f:
            return int(f.readline())

    def pg_cpu_s(self):
        return tree_cpu_s(self.postmaster_pid())

    def hfctl(self, *a, **kw):
        return self.cluster.hfctl(*a, **kw)

    def hfctl_json(self, *a):
        return json.loads(self.hfctl('--json', *a).stdout)

    def cancel_settled(self, job, timeout=300):
        """Cancels job and waits until the database has nothing of it left
        to do: no queued task (a large cancel goes on in slices after its
        answer) and none still to be written (task_plans).  A phase ends
        so, so that the next one does not measure this one's cleanup (a
        100,000-task cancel writes for seconds).  -> seconds it took."""
        t0 = time.time()
        self.hfctl('cancel', str(job), check=False)
        while time.time() - t0 < timeout:
            if self.pg.psql("SELECT (SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'queued')"
                            " + (SELECT count(*) FROM task_plans WHERE job_id = %d)" % (job, job)) == '0':
                break
            time.sleep(0.2)
        return time.time() - t0

    def statements(self):
        """Statements executed so far (pg_stat_statements over every
        database), and transactions committed (pg_stat_database)."""
        calls = self.pg.psql('SELECT coalesce(sum(calls), 0) FROM pg_stat_statements') if self.have_pgss else 0
        xacts = self.pg.psql('SELECT sum(xact_commit) FROM pg_stat_database')
        return int(float(calls)), int(xacts)

    def statement_batches(self):
        """Since pg_stat_statements was last reset: (results per result
        statement, grants per lease statement), or None without it or
        without calls.  The result statement returns a row per result
        sent and one per result stored (coordinator/db-results.c), two
        per result in a window without duplicates; the lease statement a
        row per lease granted (coordinator/db-leases.c)."""
        if not self.have_pgss:
            return None
        got = {}
        for head, key in (('WITH i AS (SELECT u.task_id', 'store'), ('WITH u AS (SELECT u.id, u.attempt', 'lease')):
            r = self.pg.rows("SELECT coalesce(sum(calls), 0), coalesce(sum(rows), 0) FROM pg_stat_statements"
                             " WHERE query LIKE '%s%%'" % head)
            calls, rows = (int(float(x)) for x in r[0])
            if not calls:
                return None
            got[key] = rows / calls
        return got['store'] / 2, got['lease']

    def top_statements(self, n=8, order='total_exec_time'):
        if not self.have_pgss:
            return []
        return self.pg.rows("SELECT calls, round(total_exec_time::numeric, 0), round(total_plan_time::numeric, 0), "
                            "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements "
                            "ORDER BY %s DESC LIMIT %d" % (order, n))

    def submit_job(self, tasks, name):
        """A job of about `tasks` tasks for cpu workers: every registry model (the `all` suite),
        tests and benchmarks, four precisions, as many batch sizes as it
        takes.  Returns (job id, task count, seconds the submit took)."""
        per_batch = self.model_count * 2 * 4
        nb = max(1, min(64, -(-tasks // per_batch)))
        argv = ['submit', '--suite', 'all', '--backends', 'cpu', '--kind', 'test,benchmark',
                '--precision', 'fp32,fp16,bf16,int8', '--batch-sizes', ','.join(str(i) for i in range(1, nb + 1)),
                '--name', name, '--json']
        if nb == 1 and tasks < per_batch:
            # A small job: tests of a few models, or of every model at as
            # many batch sizes as it takes (4,000 tasks: 557 models at 8
            # batch sizes; before, every model once: 557 tasks, which 8
            # simulated workers of 20 ms tasks ran dry in 1.4 s of the
            # slot-free window's 12).
            models = [m['model_type'] for m in self.hfctl_json('models')]
            sizes = -(-tasks // len(models))
            argv = ['submit', '--models', ','.join(models[:max(1, tasks)]), '--backends', 'cpu', '--name', name,
                    '--json']
            if sizes > 1:
                argv += ['--batch-sizes', ','.join(str(i) for i in range(1, sizes + 1))]
        t = time.time()
        out = json.loads(self.hfctl(*argv, timeout=600).stdout)
        return out['job_id'], out['task_count'], time.time() - t

    def metrics_connected(self):
        try:
            with urllib.request.urlopen(self.cluster.http_url + '/metrics', timeout=10) as r:
                text = r.read().decode()
        except Exception:
            return -1
        m = re.search(r'^hfleet_workers\{state="connected"\} (\S+)', text, re.M)
        return int(float(m.group(1))) if m else -1

    def start_hf_worker(self, wid, slots, runner_args=()):
        state = os.path.join(self.root, 'state-' + wid)
        tokfile = os.path.join(self.root, 'token-' + wid)
        with open(tokfile, 'w') as f:
            f.write(self.worker_tokens[wid] + '\n')
        os.chmod(tokfile, 0o600)
        env = dict(os.environ, HFLEET_WORKER_TOKEN_FILE=tokfile)
        prefix = []
        if self.args.worker_callgrind and not self.hf_workers:
            # The first hf-worker under callgrind (its runners are not
            # traced): instructions per task it reported.
            self.worker_callgrind_out = os.path.join(self.root, 'callgrind.out.worker')
            prefix = ['valgrind', '--tool=callgrind', '--compress-strings=no',
                      '--callgrind-out-file=' + self.worker_callgrind_out]
        p = spawn(prefix + [self.h.WORKER, '--id', wid, '--coordinator-url', self.cluster.worker_url,
                   '--state-dir', state, '--slots', str(slots),
                   '--runner', ' '.join(shlex.quote(a) for a in [self.noop_runner] + list(runner_args)),
                   '--set', 'runner.warm=true', '--set', 'runner.warm_max_tasks=0',
                   '--log-level', os.environ.get('BENCH_WORKER_LOG', 'warn')]
                  # BENCH_WORKER_SET="worker.lease_ahead=8 ...": settings of every hf-worker (A/B)
                  + [a for kv in os.environ.get('BENCH_WORKER_SET', '').split() for a in ('--set', kv)],
                  os.path.join(self.root, wid + '.log'), env=env)
        self.hf_workers.append(p)
        return p

    def stop_hf_workers(self):
        for p in self.hf_workers:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.hf_workers:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.hf_workers = []

    def wait_connected(self, n, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            c = self.metrics_connected()
            if c >= n:
                return c
            time.sleep(0.5)
        raise RuntimeError('only %d of %d workers connected after %d s' % (self.metrics_connected(), n, timeout))

    def sim(self, names, extra, seconds, tag):
        """Starts a fleet simulator for the workers `names`; returns (Popen,
        path of its JSON summary)."""
        out = os.path.join(self.root, 'sim-%s.json' % tag)
        argv = [self.fleet_sim, '--url', self.cluster.worker_url, '--tokens', self.tokens_file(names),
                '--workers', str(len(names)), '--seconds', str(seconds)] + extra
        p = spawn(argv, os.path.join(self.root, 'sim-%s.log' % tag), stdout=open(out, 'wb'))
        return p, out

    def deciding_check(self, job_id=None):
        """(tasks finished, tasks whose deciding results are not exactly
        one): every passed task must have exactly one stored, non-stale,
        non-retried result, and it must be the task's result_id."""
        where = 'AND t.job_id = %d' % job_id if job_id else ''
        finished = int(self.pg.psql("SELECT count(*) FROM tasks t WHERE t.state = 'passed' %s" % where))
        bad = int(self.pg.psql(
            "SELECT count(*) FROM tasks t WHERE t.state = 'passed' %s AND ("
            " t.result_id IS NULL OR (SELECT count(*) FROM results r WHERE r.task_id = t.id"
            " AND NOT r.stale AND NOT r.retried) <> 1 OR NOT EXISTS (SELECT 1 FROM results r"
            " WHERE r.id = t.result_id AND r.task_id = t.id))" % where))
        return finished, bad

    def close(self):
        self.stop_hf_workers()
        kill_children()
        self.cluster.close(keep=self.args.keep)
        if self.args.keep:
            log('kept %s' % self.root)


# ---- a measurement window ----

class PsqlSession:
    """One psql session kept open for many queries: each answer is read up
    to a marker echoed after it.  A query's error goes to stderr and its
    answer is empty."""
    END = '__hfleet_bench_end__'

    def __init__(self, pg, db='hfleet'):
        self.proc = subprocess.Popen(['psql', '-X', '-q', '-A', '-t', '-h', pg.dir, '-p', str(pg.port),
                                      '-U', 'postgres', '-d', db], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def query(self, sql):
        self.proc.stdin.write(sql.rstrip().rstrip(';') + ';\n\\echo ' + self.END + '\n')
        self.proc.stdin.flush()
        lines = []
        for line in self.proc.stdout:
            if line.rstrip('\n') == self.END:
                return '\n'.join(lines).strip()
            lines.append(line.rstrip('\n'))
        raise RuntimeError('psql ended: ' + '\n'.join(lines))

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(5)
        except Exception:
            self.proc.kill()


class Window:
    """Samples results committed, CPU and statements at the start and end
    of a window."""

    def __init__(self, b, worker_pids=()):
        self.b = b
        self.worker_pids = list(worker_pids)
        # One session for every sample: a psql started for each query (four
        # a sample, two samples a second) cost about a tenth of the 2-core
        # machine being measured, and its backend's CPU counted as
        # PostgreSQL's.
        self.session = PsqlSession(b.pg)
        # Results stored before this window's job (an earlier figure's):
        # made before the job is submitted.
        self.before = int(self.session.query('SELECT count(*) FROM results'))

    SAMPLE_SQL = ("SELECT (SELECT count(*) FROM results), %s, (SELECT sum(xact_commit) FROM pg_stat_database), "
                  "(SELECT string_agg(pid || ':' || coalesce(backend_type, ''), ',') FROM pg_stat_activity)")

    def sample(self):
        b = self.b
        calls = '(SELECT coalesce(sum(calls), 0) FROM pg_stat_statements)' if b.have_pgss else '0'
        t = time.time()
        results, calls, xacts, kinds = self.session.query(self.SAMPLE_SQL % calls).split('|')
        types = {}
        for item in kinds.split(','):
            pid, _, kind = item.partition(':')
            if pid.isdigit():
                types[int(pid)] = kind
        return {
            't': t,
            'results': int(results),
            'coord': proc_cpu_s(b.coordinator_pid()),
            'pg': b.pg_cpu_s(),
            'pg_kinds': pg_cpu_by_kind(b.postmaster_pid(), types),
            # Each client backend's own: one connection's statements run one
            # after the other on one core.
            'pg_clients': {pid: proc_cpu_s(pid) for pid, kind in types.items() if kind == 'client backend'},
            'workers': sum(tree_cpu_s(p) for p in self.worker_pids),
            'stmts': (int(float(calls)), int(xacts)),
        }

    def close(self):
        self.session.close()

    def warm_up(self, warmup):
        """Waits for the first result, then warmup seconds, and resets
        pg_stat_statements: the window starts warm."""
        b = self.b
        deadline = time.time() + 60
        while int(self.session.query('SELECT count(*) FROM results')) <= self.before and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(warmup)
        if b.have_pgss:
            b.pg.psql('SELECT pg_stat_statements_reset()')

    def measure(self, seconds, count):
        """Samples now and every 0.5 s until seconds passed or the job's
        count results are stored; returns (first sample, last sample)."""
        s1 = self.sample()
        end = s1['t'] + seconds
        s2 = s1
        while time.time() < end:
            time.sleep(0.5)
            s2 = self.sample()
            if s2['results'] >= self.before + count:
                break
        return s1, s2


def batch_figures(prefix, got):
    """How many results and grants a statement carried in the window (what
    group commit and the results' gathering bought; got from
    Bench.statement_batches), as figures."""
    if got:
        figure(prefix + 'results per result statement', '%.1f' % got[0], '')
        figure(prefix + 'grants per lease statement', '%.1f' % got[1], '')


def per_task_figures(prefix, s1, s2, have_pgss, workers=None):
    """The CPU, statements and transactions per stored result between two
    samples of a window, as figures named prefix + what."""
    done = s2['results'] - s1['results']
    if not done:
        return
    figure(prefix + 'coordinator CPU per task', '%.1f us' % ((s2['coord'] - s1['coord']) / done * 1e6), '')
    figure(prefix + 'PostgreSQL CPU per task', '%.1f us' % ((s2['pg'] - s1['pg']) / done * 1e6), '')
    if workers:
        figure(prefix + workers[0], '%.1f us' % (workers[1] / done * 1e6), '')
    if have_pgss:
        figure(prefix + 'statements per task (pg_stat_statements)',
               '%.2f' % ((s2['stmts'][0] - s1['stmts'][0]) / done), '')
    figure(prefix + 'transactions per task (pg_stat_database)',
           '%.2f' % ((s2['stmts'][1] - s1['stmts'][1]) / done), '')


def percentile(values, q):
    v = sorted(values)
    return v[int(q * (len(v) - 1) + 0.5)] if v else -1


def print_table():
    width = max([len(f[0]) for f in FIGURES] + [10])
    vw = max([len(f[1]) for f in FIGURES] + [5])
    print()
    print('%-*s  %-*s  %-16s  %s' % (width, 'figure', vw, 'value', 'target', ''))
    print('-' * (width + vw + 30))
    for name, value, target, verdict in FIGURES:
        print('%-*s  %-*s  %-16s  %s' % (width, name, vw, value, target, verdict))
    for n in NOTES:
        print('note: ' + n)
    sys.stdout.flush()


def machine_note():
    load = os.getloadavg()
    NOTES.append('machine: %d CPUs, load average at the end %.2f %.2f %.2f (shared machines make every '
                 'figure noisy; compare ratios measured in the same window)' % ((os.cpu_count(),) + load))
