#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A runner that misbehaves on purpose, for the hostile-peer suite.

For every model it is not told to misbehave on it is the arith runner of
tests/integration (same contract, cold and warm).  Per model type:

  --setsid MODEL        start a sleeper that calls setsid() (leaving the
                        task's process group), then finish the task normally
  --double-fork MODEL   daemonize a sleeper the classic way (fork, setsid,
                        fork, the middle one exits), then finish normally
  --no-result MODEL     exit 0 without writing a result
  --huge-result MODEL   write a result file of 4 GiB (sparse: a valid JSON
                        start, then a hole)
  --deep-result MODEL   write a result nested 100000 arrays deep
  --bad-utf8 MODEL      write a result whose strings are invalid UTF-8 and
                        hold NUL bytes
  --flood MODEL         write 64 MiB to stdout and to stderr, then finish
                        normally

Every sleeper writes its pid to <--pid-dir>/<kind>-<task id>.pid, so the
test can see whether it outlived its task; a sleeper gives up after
--sleeper-s seconds, so a worker that fails to kill it leaves nothing
behind for long.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
import arith_runner  # noqa: E402


def sleeper(a, kind, task_id):
    path = os.path.join(a.pid_dir, '%s-%s.pid' % (kind, task_id))
    with open(path + '.tmp', 'w') as f:
        f.write(str(os.getpid()))
    os.rename(path + '.tmp', path)
    time.sleep(a.sleeper_s)
    os._exit(0)


def start_setsid_sleeper(a, task_id):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        sleeper(a, 'setsid', task_id)
    # The runner does not wait for it: it leaves it behind.
    wait_for_pid_file(a, 'setsid', task_id)


def start_daemonized_sleeper(a, task_id):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        sleeper(a, 'double-fork', task_id)
    os.waitpid(pid, 0)
    wait_for_pid_file(a, 'double-fork', task_id)


def wait_for_pid_file(a, kind, task_id):
    path = os.path.join(a.pid_dir, '%s-%s.pid' % (kind, task_id))
    deadline = time.time() + 30
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.01)


def flood():
    chunk = b'flood \xff\x00 ' * 8192
    for _ in range((64 << 20) // len(chunk)):
        os.write(1, chunk)
        os.write(2, chunk)


def misbehave(a, task_path, result_path):
    """Does this task's misbehaviour.  Returns 'exit' when the runner is
    to exit 0 now, 'done' when the task is over (a result, good or bad, is
    written), None when the arith runner is to run it."""
    with open(task_path) as f:
        task = json.load(f)
    model, task_id = task['model_type'], task['task_id']
    if model in a.setsid:
        start_setsid_sleeper(a, task_id)
    elif model in a.double_fork:
        start_daemonized_sleeper(a, task_id)
    elif model in a.no_result:
        return 'exit'
    elif model in a.huge_result:
        with open(result_path, 'w') as f:
            f.write('{"status": "passed", "reason": "')
            f.truncate(4 << 30)
        return 'done'
    elif model in a.deep_result:
        with open(result_path, 'w') as f:
            f.write('{"status": "passed", "metrics": ' + '[' * 100000 + ']' * 100000 + '}')
        return 'done'
    elif model in a.bad_utf8:
        with open(result_path, 'wb') as f:
            f.write(b'{"status": "passed\\u0000x", "reason": "\xff\xfe\x00bad", "weights": "pre\xc0trained",'
                    b' "metrics": {"items\xff": "\xed\xa0\x80"}, "env": {"\x00": 1}}')
        return 'done'
    elif model in a.flood:
        flood()
    return None


def serve(a):
    fd = int(os.environ['HFLEET_CONTROL_FD'])
    for line in sys.stdin:
        try:
            req = json.loads(line)
            task_path, result_path = req['task'], req['result']
        except (ValueError, KeyError, TypeError) as exc:
            os.write(fd, (json.dumps({'error': 'bad request: %s' % exc}) + '\n').encode())
            continue
        what = misbehave(a, task_path, result_path)
        if what == 'exit':
            sys.stdout.flush()
            os._exit(0)
        if what is None:
            task_id, _ = arith_runner.run_task(a, task_path, result_path)
        else:
            with open(task_path) as f:
                task_id = json.load(f)['task_id']
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(fd, (json.dumps({'done': task_id, 'fatal': False, 'rss_bytes': None}) + '\n').encode())
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--task')
    ap.add_argument('--result')
    ap.add_argument('--probe', action='store_true')
    ap.add_argument('--serve', action='store_true')
    ap.add_argument('--health', action='store_true')
    ap.add_argument('--backend')
    ap.add_argument('--pid-dir', default='/tmp')
    ap.add_argument('--sleeper-s', type=float, default=120.0)
    for opt in ('setsid', 'double-fork', 'no-result', 'huge-result', 'deep-result', 'bad-utf8', 'flood'):
        ap.add_argument('--' + opt, action='append', default=[])
    a = ap.parse_args()
    # What arith_runner.run_task and health read: its own defaults, so that
    # an option it gains later cannot break this runner.
    defaults = arith_runner.parse_args([])
    for name, value in vars(defaults).items():
        if not hasattr(a, name):
            setattr(a, name, value)

    if a.health:
        return arith_runner.health(a)
    if a.probe:
        print(json.dumps({
            'python': {'version': sys.version.split()[0], 'executable': sys.executable},
            'torch': {'available': False, 'reason': 'hostile test runner: no torch'},
            'transformers': {'available': False, 'reason': 'hostile test runner: no transformers'},
        }))
        return 0
    if a.serve:
        return serve(a)
    what = misbehave(a, a.task, a.result)
    if what == 'exit':
        return 0
    if what is None:
        arith_runner.run_task(a, a.task, a.result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
