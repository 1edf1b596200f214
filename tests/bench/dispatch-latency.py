#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Dispatch latency (issue 15), not part of CI: submit -> first lease with
idle workers waiting, and slot free -> next lease with work queued.

Starts a private PostgreSQL, hf-coordinator (heartbeat 1 s) and WORKERS
hf-workers of one slot each (tests/integration/harness.py), then
  1. submits ONE_TASK_JOBS jobs of one task, one at a time, each at a random
     point of the heartbeat, waiting for each to end: submit -> first lease
     is attempts.granted_at - tasks.created_at (both the database's clock);
  2. submits one job of BACKLOG tasks: slot free -> next lease is, per
     worker, the next attempt's granted_at - the previous result's
     finished_at (the worker's clock; one machine).
Prints p50/p90/p99/max of each.  --hold-max passes
scheduler.poll_hold_max (0: no held polls, as before issue 15).

    ninja -C build && tests/bench/dispatch-latency.py --build build [--hold-max 0]
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'integration'))


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def show(name, v):
    ms = [x * 1000 for x in v]
    print('%-28s n=%-4d p50 %8.2f ms  p90 %8.2f ms  p99 %8.2f ms  max %8.2f ms' % (
        name, len(ms), pct(ms, 50), pct(ms, 90), pct(ms, 99), max(ms)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default='build')
    ap.add_argument('--hold-max', default=None)
    ap.add_argument('--workers', type=int, default=4)
    ap.add_argument('--one-task-jobs', type=int, default=40)
    ap.add_argument('--backlog', type=int, default=60)
    a = ap.parse_args()
    os.environ['HF_BUILD_ROOT'] = os.path.abspath(a.build)
    import harness
    sets = ['scheduler.poll_hold_max=' + a.hold_max] if a.hold_max is not None else []
    with harness.cluster(heartbeat='1s', lease='30s', coordinator_set=sets) as c:
        c.start_coordinator()
        for i in range(a.workers):
            c.start_worker('lat-%d' % i, slots=1, extra_args=('--set', 'worker.labels=lat=1'))
        c.wait_for(lambda: sum(1 for w in c.hfctl_json('workers') if w['connected']) == a.workers, 60,
                   'the workers to register')
        time.sleep(2)
        jobs = []
        for _ in range(a.one_task_jobs):
            time.sleep(random.uniform(0.05, 1.0))
            job = int(c.hfctl_json('submit', '--models', 'bert', '--backends', 'cpu', '--kind', 'test',
                                   '--label', 'lat=1')['job_id'])
            c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 60, 'job')
            jobs.append(job)
        first = [float(x) for x in c.pg.psql(
            'SELECT EXTRACT(EPOCH FROM (min(a.granted_at) - t.created_at)) FROM tasks t JOIN attempts a '
            'ON a.task_id = t.id WHERE t.job_id IN (%s) GROUP BY t.id, t.created_at' %
            ','.join(map(str, jobs))).split()]
        show('submit -> first lease', first)

        models = ','.join(c.pg.psql("SELECT model_type FROM models ORDER BY model_type LIMIT %d" %
                                    a.backlog).split())
        job = int(c.hfctl_json('submit', '--models', models, '--backends', 'cpu', '--kind', 'test',
                               '--label', 'lat=1')['job_id'])
        c.wait_for(lambda: c.pg.psql('SELECT state FROM jobs WHERE id = %d' % job) == 'done', 600, 'backlog')
        rows = c.pg.rows(
            'SELECT a.worker_id, EXTRACT(EPOCH FROM a.granted_at), EXTRACT(EPOCH FROM r.finished_at) '
            'FROM attempts a JOIN tasks t ON t.id = a.task_id LEFT JOIN results r ON r.task_id = a.task_id '
            'AND r.attempt = a.attempt WHERE t.job_id = %d ORDER BY a.worker_id, a.granted_at' % job)
        gaps, last = [], {}
        for wid, granted, finished in rows:
            if wid in last and last[wid] is not None:
                gaps.append(float(granted) - last[wid])
            last[wid] = float(finished) if finished else None
        show('slot free -> next lease', gaps)
        print('backlog: %s attempts for %s tasks; results by status: %s' % (
            c.pg.psql('SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id WHERE t.job_id = %d' % job),
            c.pg.psql('SELECT count(*) FROM tasks WHERE job_id = %d' % job),
            ' '.join(c.pg.psql('SELECT status || \'=\' || count(*) FROM results r JOIN tasks t ON t.id = r.task_id '
                               'WHERE t.job_id = %d GROUP BY status' % job).split())), flush=True)


if __name__ == '__main__':
    main()
