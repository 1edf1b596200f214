#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The coordinator's instructions per task and per poll, under callgrind
(not part of CI; instruction counts are repeatable on a noisy machine).

It makes a private PostgreSQL cluster and starts hf-coordinator under
valgrind --tool=callgrind, then measures three phases,
each zeroed and dumped with callgrind_control:

  submit   one job of --tasks tasks (--allow-waiting, no worker yet)
  run      --workers hf-worker daemons (the arith runner, warm) run them all
  idle     the workers poll, idle, for --idle seconds

With --fleet-sim PATH (bench/'s hfleet-fleet-sim) it measures instead the
polls of --fleet simulated workers heartbeating idle (--mode none) every
--fleet-heartbeat-ms, after they all registered: instructions per poll as
the fleet grows.

and prints instructions per task (submit, run) and per poll (idle), and the
functions that cost most in each phase (callgrind_annotate).

    ninja -C build && tests/bench/coord-profile.py --build build
    tests/bench/coord-profile.py --build build --tasks 2000 --top 30
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default=os.path.join(HERE, '..', '..', 'build'))
    ap.add_argument('--tasks', type=int, default=500, help='tasks of the job (the submit and run phases)')
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--slots', type=int, default=4)
    ap.add_argument('--idle', type=float, default=10.0, help='seconds of the idle phase')
    ap.add_argument('--top', type=int, default=20, help='functions printed per phase')
    ap.add_argument('--submit-only', action='store_true', help='measure the submit phase alone')
    ap.add_argument('--fleet-sim', help="bench/'s hfleet-fleet-sim: measure idle polls of a simulated fleet")
    ap.add_argument('--fleet', type=int, default=1000, help='simulated workers (with --fleet-sim)')
    ap.add_argument('--fleet-heartbeat-ms', type=int, default=4000)
    ap.add_argument('--fleet-seconds', type=float, default=20.0, help='measured seconds (with --fleet-sim)')
    ap.add_argument('--keep', action='store_true')
    args = ap.parse_args()

    os.environ['HF_BUILD_ROOT'] = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
    import harness

    c = harness.Cluster(heartbeat='%dms' % args.fleet_heartbeat_ms if args.fleet_sim else '1s', lease='60s')
    out = os.path.join(c.root, 'callgrind')
    os.makedirs(out)
    os.chmod(c.root, 0o755)
    wrapper = os.path.join(c.root, 'coordinator-under-callgrind')
    with open(wrapper, 'w') as f:
        f.write('#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cg.%%p '
                '%s "$@"\n' % (out, harness.COORDINATOR))
    os.chmod(wrapper, 0o755)
    try:
        c.admin_token_file = c.token_file('admin', 'admin')  # the real binary migrates the database
        fleet_tokens = None
        if args.fleet_sim:
            names = ['sim-%05d' % i for i in range(args.fleet)]
            tokens = {}
            for i in range(0, len(names), 200):  # psql's command line has a limit
                tokens.update(c.seed_tokens(names[i:i + 200]))
            fleet_tokens = os.path.join(c.root, 'sim-tokens')
            with open(fleet_tokens, 'w') as f:
                f.writelines('%s %s\n' % (n, tokens[n]) for n in names)
            os.chmod(fleet_tokens, 0o600)
        harness.COORDINATOR = wrapper
        c.start_coordinator()
        pid = c.coordinator.proc.pid

        def ctl(*a):
            subprocess.run(['callgrind_control'] + list(a) + [str(pid)], check=True,
                           stdout=subprocess.DEVNULL)

        def phase(name, fn):
            ctl('-z')
            t0 = time.time()
            n = fn()
            ctl('-d', name)
            return n, time.time() - t0

        if args.fleet_sim:
            return fleet(args, c, pid, ctl, fleet_tokens, out)
        kinds = 'test,benchmark'
        # About 300 models x 2 kinds x batch sizes x sequence lengths.
        per_model = max(1, args.tasks // (2 * 300))
        n_seq = min(16, (per_model + 63) // 64)
        sizes = ','.join(str(i + 1) for i in range(min(64, (per_model + n_seq - 1) // n_seq)))
        seq_lens = ','.join(str(128 + i) for i in range(n_seq))

        def submit():
            out_ = c.hfctl_json('submit', '--all', '--backends', 'cpu', '--kind', kinds, '--batch-sizes', sizes,
                                '--seq-len', seq_lens, '--allow-waiting')
            return int(out_['task_count'])

        n_tasks, t_submit = phase('submit', submit)
        phases = [('submit', n_tasks, 'task')]
        t_run = t_idle = 0
        if args.submit_only:
            c.coordinator.stop(timeout=120)

        def run():
            for i in range(args.workers):
                c.start_worker('w%d' % i, slots=args.slots)
            c.wait_for(lambda: c.pg.psql("SELECT count(*) FROM tasks WHERE state IN ('queued', 'leased')") == '0',
                       3600, 'the tasks to finish')
            return n_tasks

        if not args.submit_only:
            _, t_run = phase('run', run)

        def idle():
            time.sleep(args.idle)
            return 0

        if not args.submit_only:
            _, t_idle = phase('idle', idle)
            polls = args.workers * t_idle  # one poll a heartbeat (1 s) per worker
            phases += [('run', n_tasks, 'task'), ('idle', polls, 'poll')]
            c.coordinator.stop(timeout=120)

        def total(nth):
            # callgrind_control -d writes cg.PID.1, .2, .3 in the phases' order.
            ann = subprocess.run(['callgrind_annotate', '--threshold=100',
                                  os.path.join(out, 'cg.%d.%d' % (pid, nth))],
                                 capture_output=True, text=True).stdout
            ir = 0
            for line in ann.splitlines():
                if 'PROGRAM TOTALS' in line:
                    ir = int(line.split()[0].replace(',', '').replace('.', '0') or 0)
            return ir, ann

        for nth, (name, per, what) in enumerate(phases, 1):
            ir, ann = total(nth)
            print('== %s: %d Ir in all, %.0f Ir per %s (%d %ss)' % (name, ir, ir / max(per, 1), what, per, what))
            lines = [ln for ln in ann.splitlines() if ln.strip() and ln.lstrip()[0].isdigit()]
            for ln in lines[1:args.top + 1]:
                print('   ' + ln[:150])
        print('(elapsed under valgrind: submit %.1f s, run %.1f s, idle %.1f s)' % (t_submit, t_run, t_idle))
        if args.keep:
            print('files kept in', c.root)
    finally:
        c.close(keep=args.keep)


def fleet(args, c, pid, ctl, tokens, out):
    """Idle polls of a simulated fleet: zeroed once every worker has
    registered and polled, dumped when the simulator ends."""
    import json
    ramp_s = max(30.0, args.fleet / 50.0)
    sim_json = os.path.join(c.root, 'sim.json')
    with open(sim_json, 'wb') as so, open(os.path.join(c.root, 'sim.log'), 'wb') as se:
        p = subprocess.Popen([args.fleet_sim, '--url', c.worker_url, '--tokens', tokens, '--workers',
                              str(args.fleet), '--heartbeat-ms', str(args.fleet_heartbeat_ms), '--mode', 'none',
                              '--seconds', str(ramp_s + args.fleet_seconds),
                              '--measure-after-ms', str(int(ramp_s * 1000))], stdout=so, stderr=se)
        time.sleep(ramp_s)
        ctl('-z')
        p.wait()
        ctl('-d', 'fleet')
    summary = json.load(open(sim_json))
    polls = summary['polls_per_s'] * args.fleet_seconds
    ann = subprocess.run(['callgrind_annotate', '--threshold=100', os.path.join(out, 'cg.%d.1' % pid)],
                         capture_output=True, text=True).stdout
    ir = 0
    for line in ann.splitlines():
        if 'PROGRAM TOTALS' in line:
            ir = int(line.split()[0].replace(',', ''))
    print('== fleet of %d idle workers (heartbeat %d ms): %d Ir in all, %.0f Ir per poll (%.0f polls, '
          '%d registered, %d poll failures)' % (args.fleet, args.fleet_heartbeat_ms, ir, ir / max(polls, 1), polls,
                                               summary.get('registers', 0), summary.get('poll_failures', 0)))
    lines = [ln for ln in ann.splitlines() if ln.strip() and ln.lstrip()[0].isdigit()]
    for ln in lines[1:args.top + 1]:
        print('   ' + ln[:150])
    c.coordinator.stop(timeout=120)
    if args.keep:
        print('files kept in', c.root)


if __name__ == '__main__':
    main()
