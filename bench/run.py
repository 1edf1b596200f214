#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""hfleet's benchmark harness (issue 15): prints every figure of the issue
beside its target, and the Celery comparison as a ratio.

    bench/run.py [--build DIR] all            every figure (~15 min with the 10-minute fleet run)
    bench/run.py throughput                   durable completions/s, real hf-workers, no-op runner
    bench/run.py latency                      submit -> first lease, slot free -> next lease
    bench/run.py fleet [--fleet-seconds 60]   10,000 simulated workers heartbeating
    bench/run.py submit                       a 100,000-task submit, hfctl status meanwhile, then
                                              its cancel while a second job's tasks flow
    bench/run.py celery                       Celery 5 + Redis + PostgreSQL, same task count
    bench/run.py capacity                     the coordinator and PostgreSQL alone (simulated workers; not in all)
    bench/run.py throughput celery            several at once, in this order

Everything runs privately: a PostgreSQL cluster of its own (tests/integration/
harness.py; fsync=on, synchronous_commit=on, pg_stat_statements loaded), the
coordinator, hf-workers and redis-server on free ports under one temporary
directory, all stopped and removed at the end, also on Ctrl-C or a failure
(--keep keeps the directory and its logs).  How each figure is measured:
docs/performance.md.  Performance is never asserted: the exit status is 0
whenever the measurements ran, whatever the figures.  The figures and main
are here; what they share (the fleet, the window, /proc readings, the
table) is bench/benchlib.py.
"""
import argparse
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from benchlib import (CHILDREN, NOTES, SOURCE, Bench, Window, batch_figures, descendants, figure, kill_children,
                      log, machine_note, per_task_figures, percentile, print_table, proc_cpu_s, proc_rss_mib,
                      proc_switches, spawn, tree_cpu_s)


def throughput(b, args):
    n, m = args.workers, args.slots
    log('throughput: %d hf-workers x %d slots, warm no-op runner; a job of about %d tasks, half of them benchmarks'
        % (n, m, args.tasks))
    names = ['tput-%02d' % i for i in range(n)]
    for w in names:
        b.start_hf_worker(w, m)
    b.wait_connected(n)
    win = Window(b, [p.pid for p in b.hf_workers])
    job, count, _ = b.submit_job(args.tasks, 'bench-throughput')
    log('throughput: job %d of %d tasks submitted' % (job, count))
    win.warm_up(args.warmup)
    perf = start_perf(b, args, [p.pid for p in b.hf_workers])
    if args.worker_callgrind:
        # Counts from here: registration and warm-up left out.
        b.worker_callgrind_base = worker_results(b, names[0])
        subprocess.run(['callgrind_control', '-z', str(b.hf_workers[0].pid)], capture_output=True)
    s1, s2 = win.measure(args.seconds, count)
    win.close()
    done = s2['results'] - s1['results']
    span = s2['t'] - s1['t']
    rate = done / span if span > 0 else 0
    log('throughput: %d results in %.1f s' % (done, span))
    stop_perf(perf)
    top = b.top_statements()
    top_calls = b.top_statements(4, 'calls')
    batches = b.statement_batches()
    settle = b.cancel_settled(job)
    NOTES.append('throughput: its job cancelled and every queued task of it cancelled in %.1f s' % settle)
    lane_note(b, 'throughput')
    b.stop_hf_workers()
    finished, bad = b.deciding_check(job)
    if args.callgrind:
        callgrind_report(b)
    if args.worker_callgrind:
        worker_callgrind_report(b, names[0])
    figure('durable completions/s (%d hf-workers x %d slots)' % (n, m), '%.0f /s' % rate, '>= 10000 /s',
           rate >= 10000)
    figure('tasks passed with != 1 deciding result', '%d of %d' % (bad, finished), '0', bad == 0)
    per_task_figures('', s1, s2, b.have_pgss,
                     ('hf-workers + runners CPU per task', s2['workers'] - s1['workers']))
    batch_figures('', batches)
    busiest = max(((z - s1['pg_clients'][pid]) / span for pid, z in s2['pg_clients'].items()
                   if pid in s1['pg_clients']), default=0.0) if span > 0 else 0.0
    figure('busiest PostgreSQL connection, share of one core', '%.0f %%' % (busiest * 100), '')
    NOTES.append('throughput: PostgreSQL CPU per task by process: ' + pg_kinds_per_task(s1, s2, done))
    for row in top:
        NOTES.append('throughput top statement: calls=%s exec_ms=%s plan_ms=%s %s' % tuple(row))
    for row in top_calls:
        NOTES.append('throughput most called: calls=%s exec_ms=%s plan_ms=%s %s' % tuple(row))
    return rate


def pg_kinds_per_task(s1, s2, done):
    """'kind N us, ...' of PostgreSQL's CPU in the window per task, by kind
    of process (benchlib.pg_cpu_by_kind), the largest first."""
    a, z = s1['pg_kinds'], s2['pg_kinds']
    per = {k: (z[k] - a.get(k, 0.0)) / max(done, 1) * 1e6 for k in z}
    return ', '.join('%s %.1f us' % (k, v) for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.05)


def lane_note(b, phase):
    """Notes how many result groups the coordinator has split over its two
    connections so far (database.result_connections; none with 1)."""
    try:
        splits = b.cluster.metric('hfleet_db_result_splits_total')
        retries = b.cluster.metric('hfleet_db_result_split_retries_total')
    except AssertionError:
        NOTES.append('%s: results stored on one connection (database.result_connections=1)' % phase)
        return
    NOTES.append('%s: result groups split over two connections since the coordinator started: %d '
                 '(%d with the second half stored again on the first)' % (phase, splits, retries))


def capacity(b, args):
    """Completions/s of the coordinator and PostgreSQL alone: the workers
    are simulated (the real protocol, results acknowledged only once
    committed, one ResultBatch in flight each), so their CPU is a fraction
    of hf-workers' and the figure is what the coordinator's host sustains
    when its workers run elsewhere, as in a fleet.  Not the issue's figure
    (that is `throughput`, real hf-workers on the same 2 cores)."""
    n, m = args.capacity_workers, args.capacity_slots
    log('capacity: %d simulated workers x %d slots, tasks of %d ms; a job of about %d tasks'
        % (n, m, args.capacity_task_ms, args.tasks))
    names = ['cap-%03d' % i for i in range(n)]
    secs = args.warmup + args.seconds + 30
    p, out = b.sim(names, ['--slots', str(m), '--mode', 'complete', '--task-ms', str(args.capacity_task_ms),
                           '--results-in-flight', str(args.capacity_results_in_flight),
                           '--ramp-ms', '1000'], secs, 'capacity')
    b.wait_connected(n)
    win = Window(b)
    job, count, _ = b.submit_job(args.tasks, 'bench-capacity')
    win.warm_up(args.warmup)
    sim0 = proc_cpu_s(p.pid)
    s1, s2 = win.measure(args.seconds, count)
    win.close()
    sim1 = proc_cpu_s(p.pid)
    done = s2['results'] - s1['results']
    span = s2['t'] - s1['t']
    rate = done / span if span > 0 else 0
    top = b.top_statements()
    batches = b.statement_batches()
    p.kill()
    p.wait()
    settle = b.cancel_settled(job)
    NOTES.append('capacity: its job cancelled and every queued task of it cancelled in %.1f s' % settle)
    lane_note(b, 'capacity')
    finished, bad = b.deciding_check(job)
    figure('capacity: completions/s, simulated workers (%d x %d)' % (n, m), '%.0f /s' % rate, '')
    figure('capacity: tasks passed with != 1 deciding result', '%d of %d' % (bad, finished), '0', bad == 0)
    per_task_figures('capacity: ', s1, s2, b.have_pgss, ('simulator CPU per task', sim1 - sim0))
    batch_figures('capacity: ', batches)
    for row in top[:4]:
        NOTES.append('capacity top statement: calls=%s exec_ms=%s plan_ms=%s %s' % tuple(row))
    return rate


def worker_results(b, wid):
    return int(b.pg.psql("SELECT count(*) FROM results WHERE worker_id = '%s'" % wid))


def worker_callgrind_report(b, wid):
    """The top functions of the hf-worker that ran under callgrind (stopped
    by now: callgrind wrote its counts, zeroed when the window began) and
    its instructions per result it reported since."""
    n = worker_results(b, wid) - b.worker_callgrind_base
    rep = subprocess.run(['callgrind_annotate', '--inclusive=no', b.worker_callgrind_out],
                         capture_output=True, text=True)
    total = None
    for line in rep.stdout.splitlines():
        m = re.match(r'\s*([\d,]+) \(100.0%\)\s+PROGRAM TOTALS', line)
        if m:
            total = int(m.group(1).replace(',', ''))
    if total and n:
        figure('hf-worker instructions per task (callgrind, %s, %d results)' % (wid, n),
               '{:,.0f}'.format(total / n), '')
    for line in rep.stdout.splitlines()[:40]:
        NOTES.append('worker callgrind: ' + line)


def callgrind_report(b, per='result', count=None):
    """Stops the coordinator (callgrind writes its counts) and prints its
    top functions by instructions, and instructions per result stored (or
    per `count` of what `per` names)."""
    results = int(b.pg.psql('SELECT count(*) FROM results')) if count is None else count
    b.cluster.coordinator.stop(timeout=120)
    rep = subprocess.run(['callgrind_annotate', '--inclusive=no', b.callgrind_out], capture_output=True, text=True)
    lines = rep.stdout.splitlines()
    total = next((l for l in lines if 'PROGRAM TOTALS' in l), '')
    m = re.match(r'\s*([\d,]+)', total)
    if m and results:
        figure('coordinator instructions per %s (callgrind%s)' % (per, ', whole run' if count is None else ''),
               '%.0f' % (int(m.group(1).replace(',', '')) / results), '')
    top = [l for l in lines if re.match(r'\s*[\d,]+ \(', l)][:25]
    for l in top:
        NOTES.append('callgrind: ' + ' '.join(l.split()))


def start_perf(b, args, worker_pids):
    """With --perf: perf record of the whole machine for the first --perf
    seconds of the window (a list of pids would fail on any process that
    ends before perf attaches); the report keeps only our processes."""
    if not args.perf or not shutil.which('perf'):
        return None
    data = os.path.join(b.root, 'perf.data')
    p = spawn(['perf', 'record', '-a', '-F', '499', '-g', '-o', data, '--', 'sleep', str(args.perf)],
              os.path.join(b.root, 'perf.log'))
    return p, data, b, worker_pids


def stop_perf(perf):
    if not perf:
        return
    p, data, b, worker_pids = perf
    # Our processes: the coordinator, PostgreSQL's, the workers and runners.
    pids = [b.coordinator_pid()] + descendants(b.postmaster_pid())
    for w in worker_pids:
        pids += descendants(w)
    p.wait()
    rep = subprocess.run(['perf', 'report', '-i', data, '--no-children', '--pid', ','.join(map(str, pids)),
                          '--sort', 'comm,dso,symbol', '--percent-limit', '0.7', '--stdio', '-g', 'none'],
                         capture_output=True, text=True)
    for line in rep.stdout.splitlines():
        if '%' in line and not line.startswith('#'):
            NOTES.append('perf: ' + ' '.join(line.split()))


def latency(b, args):
    names = ['lat-%02d' % i for i in range(args.latency_workers)]
    # Submit -> first lease: idle simulated workers (one by default: then the
    # figure is how soon an idle worker hears of new work, not how likely
    # one of many happens to poll soon); the simulator submits one-task jobs
    # at random intervals and times each to its first lease.
    log('latency: submit -> first lease, %d idle simulated worker(s), %d one-task jobs'
        % (len(names), args.latency_submits))
    # A p99 needs samples past the slowest few: of 40 the nearest-rank p99
    # was the largest, so one stalled commit of this disk decided it.  Of
    # 200 it is the third largest; the largest is printed beside it.  The
    # simulator waits 0.5 to 1.5 x --submit-every-ms between submits.
    every_ms = 100
    secs = 4 + args.latency_submits * every_ms * 1.5 / 1000 + 3
    p, out = b.sim(names, ['--slots', '1', '--mode', 'complete', '--ramp-ms', '1000',
                           '--control-url', b.cluster.control_url, '--admin-token', b.admin_token,
                           '--submit-count', str(args.latency_submits), '--submit-every-ms', str(every_ms)],
                   secs, 'submit-lease')
    p.wait()
    r = json.load(open(out))
    ok = r['submits_unleased'] == 0 and r['submit_failures'] == 0
    figure('submit -> first lease p50', '%.1f ms' % r['submit_lease_p50_ms'], '')
    figure('submit -> first lease p99 / max (%d jobs)' % r['submits_answered'],
           '%.1f / %.1f ms' % (r['submit_lease_p99_ms'], r['submit_lease_max_ms']),
           'p99 <= 10 ms', r['submit_lease_p99_ms'] <= 10 and ok)
    if not ok:
        NOTES.append('latency: %d submits failed, %d never leased' % (r['submit_failures'], r['submits_unleased']))
    # Slot free -> next lease: a queue of work, tasks of --latency-task-ms.
    log('latency: slot free -> next lease, 8 simulated workers x 1 slot, %d ms tasks, a queued job'
        % args.latency_task_ms)
    names = ['slot-%02d' % i for i in range(8)]
    p, out = b.sim(names, ['--slots', '1', '--mode', 'complete', '--task-ms', str(args.latency_task_ms),
                           '--ramp-ms', '500', '--slow-log', '2'], 12, 'slot-free')
    time.sleep(2)
    before = reservations(b)
    job, count, _ = b.submit_job(4000, 'bench-slot-free')
    p.wait()
    r = json.load(open(out))
    b.hfctl('cancel', str(job), check=False)
    # How many next tasks were handed over from a reservation
    # (coordinator/reserve.c); the other samples waited for a grant's
    # commit.  Each sample over 2 ms is in sim-slot-free.log (--keep) with
    # its time.
    reserved = [after - was for after, was in zip(reservations(b), before)]
    NOTES.append('latency: slot free window: %d samples; reservations made %d, handed over %d, released %d'
                 % (r['slot_free_samples'], reserved[0], reserved[1], reserved[2]))
    figure('slot free -> next lease p50', '%.2f ms' % r['slot_free_p50_ms'], '')
    figure('slot free -> next lease p99 (%d samples)' % r['slot_free_samples'], '%.2f ms' % r['slot_free_p99_ms'],
           '<= 2 ms', 0 <= r['slot_free_p99_ms'] <= 2)
    # The slowest few are each simulated worker's first slot free (its
    # first task's length unknown, nothing was reserved for it:
    # docs/performance.md), shown whatever the p99 says.
    figure('slot free -> next lease p99.9 / max', '%.2f / %.2f ms' % (r['slot_free_p999_ms'], r['slot_free_max_ms']),
           '')
    latency_real(b, args)


def reservations(b):
    """The coordinator's reservations counters: [made, handed over, released]
    (every series is rendered from the start, at 0)."""
    return [int(b.cluster.metric('hfleet_reservations_total', event=e)) for e in ('made', 'handed_over', 'released')]


def latency_real(b, args):
    """The same two latencies with a real hf-worker (one slot, warm no-op
    runner whose tasks take --latency-task-ms, as the simulator's do), read
    from the database: whatever the worker does (jitter, a held poll, tasks
    leased ahead, a protocol field the simulator does not know) is in them.
    Submit -> first lease: the lease's transaction start (attempts.granted_at)
    minus the submit's (jobs.created_at), both PostgreSQL's now(), so the
    lease's commit and delivery (a few ms) are left out.  Slot free -> next
    lease: the next attempt's granted_at minus the previous task's
    results.finished_at (the worker's clock when the runner finished; the
    same host's clock), the worker's slot being its only one; negative when
    the next task was leased ahead, before the slot freed.

    Then the same worker's gaps with tasks of no length (latency_at_capacity):
    a slot then frees as fast as the system can lease and store, so what it
    waits for is the system's capacity, not its dispatch latency; printed
    without a target."""
    wid = 'lat-real'
    log('latency: the same with a real hf-worker (1 slot, %d ms tasks), from the database' % args.latency_task_ms)
    b.start_hf_worker(wid, 1, ['--task-ms', str(args.latency_task_ms)])
    b.wait_connected(1)
    time.sleep(2)
    for i in range(args.latency_submits):
        b.hfctl('submit', '--models', 'bert', '--backends', 'cpu', '--name', 'bench-real-lat-%d' % i)
        time.sleep(0.05 + (i * 7919 % 101) / 1000)
    time.sleep(1.5)
    rows = b.pg.rows("SELECT extract(epoch FROM min(a.granted_at) - j.created_at) * 1000 FROM jobs j "
                     "JOIN tasks t ON t.job_id = j.id JOIN attempts a ON a.task_id = t.id "
                     "WHERE j.name LIKE 'bench-real-lat-%' GROUP BY j.id")
    sub = [float(r[0]) for r in rows]
    free, start = slot_gaps(b, wid, 'bench-slot-free-real')
    b.stop_hf_workers()
    figure('real hf-worker: submit -> first lease p50 / p99 / max (%d jobs)' % len(sub),
           '%.1f / %.1f / %.1f ms' % (percentile(sub, 0.5), percentile(sub, 0.99), percentile(sub, 1)),
           'p99 <= 10 ms',
           bool(sub) and percentile(sub, 0.99) <= 10)
    figure('real hf-worker: slot free -> next lease p50 / p99 (%d)' % len(free),
           '%.2f / %.2f ms' % (percentile(free, 0.5), percentile(free, 0.99)), 'p99 <= 2 ms',
           bool(free) and percentile(free, 0.99) <= 2)
    figure('real hf-worker: slot free -> next task started p50 / p99 (%d)' % len(start),
           '%.2f / %.2f ms' % (percentile(start, 0.5), percentile(start, 0.99)), '', None)
    latency_at_capacity(b)


def slot_gaps(b, wid, name):
    """Runs a queued job of cpu tests on hf-worker wid (one slot) for 10 s;
    -> (slot free -> next lease, slot free -> next task started), in ms."""
    job, count, _ = b.submit_job(4000, name)
    time.sleep(10)
    b.hfctl('cancel', str(job), check=False)
    rows = b.pg.rows("WITH a AS (SELECT a.granted_at, r.finished_at FROM attempts a JOIN tasks t ON t.id = a.task_id "
                     "LEFT JOIN results r ON r.task_id = a.task_id AND r.attempt = a.attempt "
                     "WHERE a.worker_id = '%s' AND t.job_id = %d) "
                     "SELECT extract(epoch FROM granted_at - lag(finished_at) OVER (ORDER BY granted_at)) * 1000 "
                     "FROM a ORDER BY granted_at" % (wid, job))
    free = [float(r[0]) for r in rows if r and r[0] != '']
    # What the slot waits for, whether or not its next task was leased
    # before it freed (worker.lease_ahead): the next task's start minus the
    # previous one's end, both the worker's clock.
    rows = b.pg.rows("SELECT extract(epoch FROM r.started_at - lag(r.finished_at) OVER (ORDER BY r.started_at)) * 1000 "
                     "FROM results r JOIN tasks t ON t.id = r.task_id WHERE r.worker_id = '%s' AND t.job_id = %d "
                     "AND r.status = 'passed' ORDER BY r.started_at" % (wid, job))
    start = [float(r[0]) for r in rows if r and r[0] != '']
    return free, start


def latency_at_capacity(b):
    """A real hf-worker of one slot whose tasks take no time: each slot
    frees as soon as its task is sent, so the gaps measure how fast the
    coordinator and PostgreSQL lease and store for one worker (its queue of
    tasks leased ahead runs dry when a refill's round trip outlasts it),
    not how soon a free slot hears of work."""
    wid = 'lat-cap'
    log('latency: the same hf-worker with tasks of no length (at capacity)')
    b.start_hf_worker(wid, 1)
    b.wait_connected(1)
    time.sleep(2)
    free, start = slot_gaps(b, wid, 'bench-slot-free-capacity')
    b.stop_hf_workers()
    figure('real hf-worker, no-op tasks (at capacity): slot free -> next lease / task started p99 (%d)' % len(free),
           '%.2f / %.2f ms' % (percentile(free, 0.99), percentile(start, 0.99)), '', None)


def fleet(b, args):
    n = args.fleet_workers
    per = args.fleet_per_process
    names = ['fleet-%05d' % i for i in range(n)]
    procs = []
    secs = args.fleet_seconds
    ramp = min(30, max(5, n // 1000 * 2))
    # idle: a free slot and nothing queued, so every poll is held, as an
    # idle hf-worker's; busy: no free slot, so polls are answered at once.
    mode = {'idle': 'idle', 'busy': 'none'}[args.fleet_mode]
    log('fleet: %d simulated %s workers (%d per process), 1 s heartbeat, %d s ramp, then %d s measured'
        % (n, args.fleet_mode, per, ramp, secs))
    for i in range(0, n, per):
        procs.append(b.sim(names[i:i + per], ['--slots', '1', '--mode', mode, '--ramp-ms', str(ramp * 1000),
                                              '--report-every', '10', '--measure-after-ms', str((ramp + 2) * 1000)],
                           ramp + secs + 5, 'fleet-%d' % (i // per)))
    cpid = b.coordinator_pid()
    time.sleep(ramp + 2)
    if args.callgrind:
        # The ramp (registrations) in a dump of its own: the final counts are
        # the measured window's.
        subprocess.run(['callgrind_control', '--dump', str(cpid)], stdout=subprocess.DEVNULL, check=False)
    c0, t0, sw0 = proc_cpu_s(cpid), time.time(), proc_switches(cpid)
    samples = []  # (t, connected, cpu fraction, rss MiB)
    last_c, last_t = c0, t0
    while time.time() < t0 + secs:
        time.sleep(min(5, max(0.5, t0 + secs - time.time())))
        c, t = proc_cpu_s(cpid), time.time()
        conn = b.metrics_connected()
        samples.append((t - t0, conn, (c - last_c) / (t - last_t), proc_rss_mib(cpid)))
        last_c, last_t = c, t
    cpu = (proc_cpu_s(cpid) - c0) / (time.time() - t0)
    switches = (proc_switches(cpid) - sw0) / (time.time() - t0)
    rss = max(s[3] for s in samples) if samples else proc_rss_mib(cpid)
    sim_cpu = sum(proc_cpu_s(p.pid) for p, _ in procs) / (time.time() - t0)
    for p, _ in procs:
        p.wait()
    res = [json.load(open(out)) for _, out in procs]
    p99 = max(r['poll_p99_ms'] for r in res)
    pmax = max(r['poll_max_ms'] for r in res)
    polls = sum(r['polls_per_s'] for r in res)
    if args.callgrind:
        callgrind_report(b, 'poll answered', sum(r['polls_per_s'] * r['seconds'] for r in res))
    rereg = sum(r['reregisters'] for r in res)
    fails = sum(r['failures_measured'] for r in res)
    conns = [s[1] for s in samples]
    # CPU, memory and poll times meet their targets only for a fleet that
    # was there: a coordinator that answered nobody is idle and small.
    present = polls >= 0.95 * n and bool(conns) and min(conns) >= n
    if not present:
        fails_reg = sum(r.get('register_failures', 0) for r in res)
        NOTES.append('fleet: the simulated workers were not served (%d register failures); their logs: %s'
                      % (fails_reg, ', '.join(out.replace('.json', '.log') for _, out in procs)))
    figure('fleet: workers simulated', '%d' % n, '10000', n >= 10000)
    figure('fleet: coordinator CPU (fraction of a core)', '%.2f' % cpu, '< 0.5', present and cpu < 0.5)
    figure('fleet: coordinator RSS (max)', '%.0f MiB' % rss, '< 256 MiB', present and rss < 256)
    figure('fleet: poll p99 (worst simulator)', '%.1f ms (max %.0f ms)' % (p99, pmax), '< 50 ms',
           present and 0 <= p99 < 50)
    figure('fleet: polls answered per second', '%.0f /s' % polls, '%d /s' % n, polls >= 0.95 * n)
    figure('fleet: "connected" min..max over %d s' % secs,
           '%d..%d' % (min(conns), max(conns)) if conns else 'none', '%d, steady' % n,
           bool(conns) and min(conns) >= n)
    figure('fleet: re-registrations (spurious expiry) / failed polls', '%d / %d' % (rereg, fails), '0 / 0',
           rereg == 0 and fails == 0)
    figure('fleet: simulators\' own CPU (fraction of a core)', '%.2f' % sim_cpu, '')
    # Less noisy than its CPU on a shared machine: what its threads cost
    # the kernel per poll (each switch is a wake-up between nng's threads
    # and the loop, or a wait on a lock).
    figure('fleet: coordinator context switches per poll answered', '%.2f' % (switches / polls if polls else 0), '')
    figure('fleet: coordinator CPU per poll answered', '%.1f us' % (cpu / polls * 1e6 if polls else 0), '')
    NOTES.append('fleet samples (s, connected, coordinator CPU, RSS MiB): ' +
                 ', '.join('%.0f:%d:%.2f:%.0f' % s for s in samples))


def submit(b, args):
    log('submit: a job of %d tasks while hfctl status runs in a loop' % args.submit_tasks)
    # A connected worker that takes nothing (a submit needs one that could run it).
    p, _ = b.sim(['submit-idle'], ['--slots', '1', '--mode', 'none', '--ramp-ms', '1'], 3600, 'submit-idle')
    b.wait_connected(1)
    small, _, _ = b.submit_job(1, 'bench-status-target')
    lat, stop = [], threading.Event()

    def status_loop():
        while not stop.is_set():
            t = time.time()
            b.hfctl('status', str(small), check=False)
            lat.append((t, time.time() - t))

    before = []
    for _ in range(10):
        t = time.time()
        b.hfctl('status', str(small), check=False)
        before.append(time.time() - t)
    th = threading.Thread(target=status_loop, daemon=True)
    th.start()
    if args.stale_statistics:
        stale_statistics(b)
    time.sleep(0.5)
    job, count, took = b.submit_job(args.submit_tasks, 'bench-submit')
    t_end = time.time()
    # A job larger than scheduler.submit_slice has the rest of its tasks
    # written after the answer (docs/database.md, "Submit"): until when,
    # and whether the status requests meanwhile waited.
    while int(b.pg.psql('SELECT count(*) FROM task_plans WHERE job_id = %d' % job)) > 0 \
            and time.time() < t_end + 120:
        time.sleep(0.05)
    t_written = time.time()
    written = int(b.pg.psql('SELECT count(*) FROM tasks WHERE job_id = %d' % job))
    time.sleep(0.5)
    stop.set()
    th.join()
    during = [d for t, d in lat if t_end - took - 0.05 <= t <= t_end]
    after = [d for t, d in lat if t_end < t <= t_written]
    before.sort()
    figure('submit of a %d-task job (hfctl, end to end)' % count, '%.2f s' % took, '< 1 s', took < 1)
    figure('hfctl status latency, idle (median)', '%.0f ms' % (before[len(before) // 2] * 1e3), '')
    figure('hfctl status latency during the submit (max of %d)' % len(during),
           '%.0f ms' % (max(during) * 1e3 if during else took * 1e3), 'not stalled')
    figure('its tasks all written, after the answer (%d of %d)' % (written, count),
           '%.2f s' % (t_written - t_end), '')
    figure('hfctl status latency while they are written (max of %d)' % len(after),
           '%.0f ms' % (max(after) * 1e3) if after else '-', 'not stalled')
    cancel_while_flowing(b, args, job, count)
    os.killpg(p.pid, signal.SIGTERM)
    p.wait()


def stale_statistics(b):
    """What autovacuum does when it visits just before the submit: tasks
    analysed with (almost) none queued, and no analyse again for the rest
    of its minute.  Before the fix in docs/performance.md ("A cancel that
    stalled after a long sequence"), every lease grant and cancel slice
    planned for an empty queue meanwhile."""
    b.pg.psql('ANALYZE tasks')
    b.pg.psql('ALTER TABLE tasks SET (autovacuum_enabled = false)')

    def reset():
        try:
            b.pg.psql('ALTER TABLE tasks RESET (autovacuum_enabled)')
        except (subprocess.SubprocessError, OSError):
            pass
    t = threading.Timer(54, reset)
    t.daemon = True
    t.start()
    NOTES.append('submit: tasks analysed before the submit, autovacuum off it for 54 s (--stale-statistics)')


def db_op_buckets(b):
    """{(op, le): count} of the coordinator's hfleet_db_operation_seconds
    histogram (time from an op's submit to its completion: its wait behind
    the ops ahead of it included)."""
    with urllib.request.urlopen(b.cluster.http_url + '/metrics', timeout=10) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^hfleet_db_operation_seconds_bucket\{op="([a-z_]+)",le="([^"]+)"\} (\S+)', text, re.M):
        out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def longest_other_op(before, after):
    """(op, upper bound in seconds) of the slowest op other than the
    cancel's own between two histogram snapshots: the smallest bucket that
    holds every one of them."""
    worst = (None, 0.0)
    for op in sorted({k[0] for k in after}):
        if op.startswith('job_cancel'):
            continue
        bounds = sorted(((float('inf') if le == '+Inf' else float(le)), n - before.get((op, le), 0))
                        for (o, le), n in after.items() if o == op)
        total = bounds[-1][1] if bounds else 0
        if total <= 0:
            continue
        le = next(bd for bd, n in bounds if n >= total)
        if le > worst[1]:
            worst = (op, le)
    return worst


def cancel_while_flowing(b, args, job, count):
    """The big job's cancel while a second job's tasks flow through
    simulated workers (leases and results): how long the cancel took to be
    answered and to finish, and the longest any other database op took
    meanwhile."""
    names = ['cancel-flow-%d' % i for i in range(4)]
    small = json.loads(b.hfctl('submit', '--suite', 'all', '--backends', 'cpu', '--kind', 'test',
                               '--batch-sizes', ','.join(str(i) for i in range(1, 17)), '--precision', 'fp32,fp16,bf16,int8',
                               '--priority', '10', '--name', 'bench-cancel-flow',
                               '--json', timeout=120).stdout)['job_id']
    secs = 60
    p, out = b.sim(names, ['--slots', '4', '--mode', 'complete', '--task-ms', '2', '--ramp-ms', '500'], secs,
                   'cancel-flow')
    time.sleep(3)
    pgss = b.have_pgss
    if pgss:
        b.pg.psql('SELECT pg_stat_statements_reset()')
    before = db_op_buckets(b)
    t0 = time.time()
    rep = b.hfctl('--json', 'cancel', str(job), check=False)
    acked = time.time() - t0
    # Watched from PostgreSQL: hfctl status would add a read of the whole
    # job to the coordinator's database thread each time.
    while time.time() - t0 < 300:
        if b.pg.psql("SELECT count(*) FROM tasks WHERE job_id = %d AND state = 'queued'" % job) == '0':
            break
        time.sleep(0.1)
    done = time.time() - t0
    time.sleep(0.5)
    after = db_op_buckets(b)
    slice_max = ''
    if pgss:
        row = b.pg.rows("SELECT calls, round(max_exec_time::numeric, 1), round(mean_exec_time::numeric, 1)"
                        " FROM pg_stat_statements WHERE query LIKE 'WITH c AS (UPDATE tasks t SET state = %'"
                        " AND query LIKE '%LIMIT%'"
                        " ORDER BY calls DESC LIMIT 1")
        if row:
            slice_max = '; slice statements: %s, longest %s ms, mean %s ms' % tuple(row[0])
        for r in b.top_statements(6):
            NOTES.append('cancel window, top statement: %s calls, %s ms exec, %s ms plan: %s' % tuple(r))
    os.killpg(p.pid, signal.SIGTERM)
    p.wait()
    try:
        sim = json.load(open(out))
    except ValueError:
        sim = {}
    b.hfctl('cancel', str(small), check=False)
    op, worst = longest_other_op(before, after)
    figure('cancel of the %d-task job: answered / finished' % count, '%.2f s / %.2f s' % (acked, done), '')
    figure('longest other db op during the cancel (%s)' % (op or 'none'),
           '<= %.0f ms' % (worst * 1e3) if op else 'none', 'not stalled')
    if sim:
        figure('simulated workers\' poll round trip during the cancel (max)', '%.1f ms' % sim.get('poll_max_ms', -1), '')
    NOTES.append('cancel: reply %s%s; %s results acked by the simulated workers over the run'
                 % (rep.stdout.strip(), slice_max, sim.get('results_acked', '?')))


# ---- Celery ----

CELERY_APP = r'''
import os
from celery import Celery
app = Celery('benchapp', broker=os.environ['BENCH_BROKER'], backend=os.environ['BENCH_BACKEND'])
app.conf.update(
    task_acks_late=True,                 # ack the message only after the task ran and its result is stored
    worker_prefetch_multiplier=int(os.environ.get('BENCH_PREFETCH', '4')),
    task_serializer='json', result_serializer='json', accept_content=['json'],
    broker_connection_retry_on_startup=True,
    result_extended=False,
    worker_hijack_root_logger=False,
)

@app.task(name='noop')
def noop():
    return None
'''

CELERY_SEND = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
from benchapp import app, noop
n = int(sys.argv[2])
t = time.time()
with app.producer_or_acquire() as producer:
    for _ in range(n):
        noop.apply_async(producer=producer)
print(time.time() - t)
'''


def celery(b, args):
    # Debian's Python, where Debian's Celery is (python3 on PATH may be another).
    py = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable
    chk = subprocess.run([py, '-c', 'import celery, redis, sqlalchemy, psycopg2; print(celery.__version__)'],
                         capture_output=True, text=True)
    if chk.returncode != 0:
        figure('celery', 'not run: %s lacks celery, redis, sqlalchemy or psycopg2 (deploy/install-deps.sh --bench)'
               % py, '')
        return None
    NOTES.append('celery %s, %s' % (chk.stdout.strip(), py))
    redis_server = shutil.which('redis-server')
    if not redis_server:
        figure('celery', 'not run: redis-server missing (deploy/install-deps.sh --bench)', '')
        return None
    d = os.path.join(b.root, 'celery')
    os.makedirs(d)
    os.chmod(d, 0o777)
    port = b.h.free_port()
    # Durability comparable to hfleet's: the broker appends every write to
    # its log and fsyncs it before answering (appendfsync always), and the
    # results go to PostgreSQL with synchronous_commit on.
    redis = spawn([redis_server, '--port', str(port), '--bind', '127.0.0.1', '--dir', d, '--save', '',
                   '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no'],
                  os.path.join(d, 'redis.log'))
    deadline = time.time() + 20
    while redis.pid not in b.h.listener_pids(port):
        if time.time() > deadline or redis.poll() is not None:
            figure('celery', 'not run: redis-server did not start (see %s)' % os.path.join(d, 'redis.log'), '')
            return None
        time.sleep(0.1)
    b.pg.psql('CREATE DATABASE celery', db='postgres')
    with open(os.path.join(d, 'benchapp.py'), 'w') as f:
        f.write(CELERY_APP)
    env = dict(os.environ, BENCH_BROKER='redis://127.0.0.1:%d/0' % port,
               BENCH_BACKEND='db+postgresql+psycopg2://postgres@/celery?host=%s&port=%d' % (b.pg.dir, b.pg.port),
               PYTHONPATH=d)
    n = args.tasks
    log('celery: publishing %d no-op tasks to the private redis (appendfsync always)' % n)
    # Four publishers at once: one Python process publishes ~400 a second
    # on this machine, and the publishing is not what is measured.
    t = time.time()
    pubs = [subprocess.Popen([py, '-c', CELERY_SEND, d, str(n // 4 + (1 if i < n % 4 else 0))], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    CHILDREN.extend(pubs)
    errs = [p.communicate(timeout=900)[1] for p in pubs]
    if any(p.returncode != 0 for p in pubs):
        figure('celery', 'not run: publishing failed: %s' % ' '.join(errs).strip()[-300:], '')
        return None
    published_s = time.time() - t
    figure('celery: publish of %d tasks to Redis (4 publishers)' % n, '%.1f s' % published_s, '')
    log('celery: published in %.1f s; starting a worker (prefork, concurrency %d)' % (published_s,
                                                                                        args.celery_concurrency))
    # The result table exists once the first result is stored.
    w = spawn([py, '-m', 'celery', '-A', 'benchapp', 'worker', '--pool', 'prefork',
               '--concurrency', str(args.celery_concurrency), '--loglevel', 'warning', '--without-gossip',
               '--without-mingle', '--without-heartbeat'], os.path.join(d, 'celery-worker.log'), env=env)

    def stored():
        try:
            return int(b.pg.psql('SELECT count(*) FROM celery_taskmeta', db='celery'))
        except subprocess.CalledProcessError:
            return 0

    deadline = time.time() + 120
    while stored() == 0:
        if time.time() > deadline or w.poll() is not None:
            figure('celery', 'not run: no result stored (see %s)' % os.path.join(d, 'celery-worker.log'), '')
            return None
        time.sleep(0.2)
    time.sleep(args.warmup)
    pgc = b.pg_cpu_s()
    wc = tree_cpu_s(w.pid) + proc_cpu_s(redis.pid)
    t1, c1 = time.time(), stored()
    t2, c2 = t1, c1
    while time.time() < t1 + args.seconds:
        time.sleep(0.5)
        t2, c2 = time.time(), stored()
        if c2 >= n:
            break
    done = c2 - c1
    rate = done / (t2 - t1) if t2 > t1 else 0
    figure('celery: durable completions/s (concurrency %d)' % args.celery_concurrency, '%.0f /s' % rate, '')
    if done:
        figure('celery: PostgreSQL CPU per task', '%.1f us' % ((b.pg_cpu_s() - pgc) / done * 1e6), '')
        figure('celery: worker + redis CPU per task',
               '%.1f us' % ((tree_cpu_s(w.pid) + proc_cpu_s(redis.pid) - wc) / done * 1e6), '')
    dup = b.pg.psql("SELECT count(*) - count(DISTINCT task_id) FROM celery_taskmeta", db='celery')
    figure('celery: results stored twice', dup, '0', dup == '0')
    os.killpg(w.pid, signal.SIGTERM)
    try:
        w.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(w.pid, signal.SIGKILL)
    os.killpg(redis.pid, signal.SIGTERM)
    return rate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('what', nargs='*', default=['all'],
                    help='throughput, capacity, latency, fleet, submit, celery or all (default all; '
                         'capacity is not in all)')
    ap.add_argument('--build', default=os.path.join(SOURCE, 'build'), help='the meson build directory')
    ap.add_argument('--worker-callgrind', action='store_true',
                    help='throughput: run the first hf-worker under valgrind --tool=callgrind and print its '
                         'instructions per task reported in the measured window')
    ap.add_argument('--workers', type=int, default=4, help='throughput: hf-worker daemons (default 4)')
    ap.add_argument('--slots', type=int, default=8, help='throughput: slots per hf-worker (default 8)')
    ap.add_argument('--tasks', type=int, default=100000,
                    help='throughput and celery: tasks queued (default 100000, enough for the window at 7,000/s; '
                         'the window ends when they are done)')
    ap.add_argument('--seconds', type=float, default=20, help='throughput and celery: measured window (default 20)')
    ap.add_argument('--warmup', type=float, default=3, help='seconds after the first result before measuring')
    ap.add_argument('--capacity-workers', type=int, default=32, help='capacity: simulated workers (default 32)')
    ap.add_argument('--capacity-slots', type=int, default=8, help='capacity: slots per simulated worker (default 8)')
    ap.add_argument('--capacity-task-ms', type=int, default=0, help='capacity: each task\'s length (default 0)')
    ap.add_argument('--capacity-results-in-flight', type=int, default=2, choices=range(1, 5),
                    help='capacity: result batches each simulated worker keeps in flight (default 2, as hf-worker)')
    ap.add_argument('--latency-submits', type=int, default=200,
                    help='latency: one-task jobs submitted, simulated and real (default 200)')
    ap.add_argument('--latency-workers', type=int, default=1, help='latency: idle simulated workers (default 1)')
    ap.add_argument('--latency-task-ms', type=int, default=20,
                    help='latency: each task\'s length for slot free -> next lease, simulated and real (default 20)')
    ap.add_argument('--fleet-workers', type=int, default=10000)
    ap.add_argument('--fleet-per-process', type=int, default=5000, help='simulated workers per simulator process')
    ap.add_argument('--fleet-mode', choices=('idle', 'busy'), default='idle',
                    help='fleet: idle workers (a free slot, nothing queued: every poll held, as hf-worker does) '
                    'or busy ones (no free slot: every poll answered at once); default idle')
    ap.add_argument('--fleet-seconds', type=int, default=600, help='fleet: measured seconds (default 600)')
    ap.add_argument('--submit-tasks', type=int, default=100000)
    ap.add_argument('--stale-statistics', action='store_true',
                    help='submit: analyse tasks just before the submit and keep autovacuum off it for 54 s, '
                         'as its own visit just before the submit does (docs/performance.md)')
    ap.add_argument('--celery-concurrency', type=int, default=8)
    ap.add_argument('--perf', type=int, default=0, metavar='SECONDS',
                    help='throughput: perf record the coordinator, PostgreSQL and the workers for SECONDS '
                         'of the window and print the top symbols (default 0: off)')
    ap.add_argument('--callgrind', action='store_true',
                    help='throughput or fleet: run the coordinator under valgrind --tool=callgrind and print its top '
                         'functions and its instructions per result (fleet: per poll; slow: a short window, few workers, one figure alone)')
    ap.add_argument('--keep', action='store_true', help='keep the temporary directory (logs, database)')
    ap.add_argument('--pg-variant', action='append', default=[], metavar='SQL',
                    help='an experiment: SQL run in the database once the coordinator has migrated it, before '
                         'the figures (";;" separates commands run each on its own; repeatable), e.g. '
                         '"ALTER TABLE tasks DISABLE TRIGGER tasks_summarise_update" for what the readers\' '
                         'summaries cost end to end.  The figures are then not the product\'s: the table '
                         'says so')
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    what = args.what
    if 'all' in what:
        what = ['throughput', 'celery', 'latency', 'submit', 'fleet']
    for w in what:
        if w not in ('throughput', 'capacity', 'latency', 'fleet', 'submit', 'celery'):
            ap.error('unknown figure %r' % w)
    if not 0 <= args.latency_task_ms <= 60000:
        ap.error('--latency-task-ms takes 0 to 60000 (what hfleet-noop-runner --task-ms takes)')

    b = None

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Also when started in the background, where SIGINT comes ignored.
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(kill_children)
    rates = {}
    try:
        b = Bench(args)
        b.seed_workers(['tput-%02d' % i for i in range(args.workers)] + ['lat-%02d' % i for i in range(args.latency_workers)]
                       + ['slot-%02d' % i for i in range(8)] + ['submit-idle', 'lat-real', 'lat-cap']
                       + ['cancel-flow-%d' % i for i in range(4)]
                       + (['cap-%03d' % i for i in range(args.capacity_workers)] if 'capacity' in what else [])
                       + (['fleet-%05d' % i for i in range(args.fleet_workers)] if 'fleet' in what else []))
        b.start()
        log('private fleet in %s; coordinator pid %d, PostgreSQL pid %d; %d registry models'
            % (b.root, b.coordinator_pid(), b.postmaster_pid(), b.model_count))
        for sql in args.pg_variant:
            for command in sql.split(';;'):
                b.pg.psql(command)
            NOTES.append('EXPERIMENT, not the product: the schema was changed by --pg-variant %r' % sql)
        for w in what:
            t = time.time()
            try:
                r = globals()[w](b, args)
                if w in ('throughput', 'celery'):
                    rates[w] = r
            except (RuntimeError, AssertionError, subprocess.SubprocessError, OSError, ValueError, KeyError) as e:
                figure(w, 'FAILED: %s' % str(e)[-300:], '')
            log('%s took %.0f s' % (w, time.time() - t))
        if rates.get('throughput') and rates.get('celery'):
            figure('hfleet / Celery throughput ratio', '%.2f' % (rates['throughput'] / rates['celery']), '')
    except KeyboardInterrupt:
        log('interrupted: stopping everything')
    finally:
        machine_note()
        if b:
            b.close()
        kill_children()
        print_table()
    return 0


if __name__ == '__main__':
    sys.exit(main())
