#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A runner made for hfleet's integration tests.

It follows the runner contract of worker/runners/README.md exactly (reads
the task JSON, writes the result JSON atomically, answers --probe, and with
--serve speaks the warm runner protocol: one request per stdin line, one
done line per task on the descriptor HFLEET_CONTROL_FD names) but does a
small real computation instead of building a model: a sum of squares over
batch_size x seq_len numbers, timed with time.perf_counter.  Its metrics are
what it measured, nothing else; its env says which process ran the task
("pid"), so tests can count runner processes.

Misbehaviour for the tests that need it, chosen per model type:
  --crash MODEL      exit 3 without writing a result (a warm runner dies mid-task)
  --garbage MODEL    print noise and write a result that is not JSON
  --hang MODEL       sleep far past any timeout
  --fail MODEL       report a failed test (an outcome, not an error)
  --fatal MODEL      report an error result for a CUDA device-side assert; a
                     warm runner says fatal (the model's fault, as the
                     reference runner says of a kernel assertion) and exits 3
  --sleep SECONDS    sleep this long in every task (to keep tasks in flight)
  --sleep-model MODEL=SECONDS  a task of MODEL sleeps this long instead
  --broken-file PATH while PATH exists the "device" is broken: every task
                     crashes (exit 3, an infrastructure error) and the health
                     check fails; remove it to mend the device
  --no-result MODEL  finish without writing a result: exit 0 (one-shot), or
                     send the done line (warm) -- the runner's error
  --escape-dir DIR   every task leaves a daemon behind (double fork and
                     setsid, sleeping 600 s) that writes its pid to DIR/PID
  --started-dir DIR  a warm runner writes DIR/PID (the time it started, and
                     each of the --start-fails-until file's checks) before it
                     reads its first request; its env carries OMP_NUM_THREADS
  --start-fails-until PATH  a warm runner exits 4 at start while PATH does not
                     exist (a runner that cannot start)
  --latency MODEL=MS a benchmark of MODEL times 20 iterations of a sleep of
                     MS milliseconds (time.perf_counter) and reports their
                     statistics (latency_ms, as the reference runner computes
                     them): a figure measured, near MS, for the readers'
                     tests (compare, report), with runner_version "arith-1"

--health --backend B --result FILE is the health check: the same sum of
squares over 100000 numbers, checked against its closed form, written as
{"ok", "detail", "duration_s"}.
"""
import argparse
import json
import os
import sys
import time

# The reference runner's statistics (one definition of p50, cv ...).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'worker', 'runners'))
import hfleet_runner_lib as runner_lib  # noqa: E402


class Crash(Exception):
    pass


def write_result(path, result):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(result, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def leave_daemon(directory):
    """Double fork and setsid: what a runner may not do, and cannot.
    Returns once the daemon has written its pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        os.waitpid(pid, 0)
        os.read(r, 64)
        os.close(r)
        return
    try:
        os.close(r)
        os.setsid()
        if os.fork():
            os._exit(0)
        with open(os.path.join(directory, str(os.getpid())), 'w') as f:
            f.write(str(os.getpid()))
        os.write(w, b'1')
        os.close(w)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        time.sleep(600)
    finally:
        os._exit(0)


def run_task(a, task_path, result_path):
    """Runs one task (task_path: its file, or the task itself given in a warm
    runner's request line); returns (task_id, fatal).  Raises Crash for --crash."""
    if isinstance(task_path, dict):
        task = task_path
    else:
        with open(task_path) as f:
            task = json.load(f)
    model = task['model_type']
    if a.broken_file and os.path.exists(a.broken_file):
        print('arith runner: the device is broken (%s exists)' % a.broken_file, file=sys.stderr)
        raise Crash()
    sleep = dict(x.split('=', 1) for x in a.sleep_model).get(model, a.sleep)
    if float(sleep):
        time.sleep(float(sleep))
    if a.escape_dir:
        leave_daemon(a.escape_dir)
    if model in a.no_result:
        print('arith runner: finishing %s without writing a result, on purpose' % model)
        return task['task_id'], False
    if model in a.crash:
        print('arith runner: crashing on purpose for %s' % model, file=sys.stderr)
        raise Crash()
    if model in a.hang:
        time.sleep(3600)
    if model in a.garbage:
        sys.stdout.write('\x00\x01garbage ' * 50000)
        with open(result_path, 'w') as f:
            f.write('{"status": "passed", "metrics": {')
        return task['task_id'], False
    env = {'python': sys.version.split()[0], 'runner': 'arith', 'pid': os.getpid(),
           'omp_num_threads': os.environ.get('OMP_NUM_THREADS'),
           'cuda_visible_devices': os.environ.get('CUDA_VISIBLE_DEVICES'),
           'multicast': {k: os.environ.get(k) for k in (
               'NCCL_NVLS_ENABLE', 'TORCH_SYMM_MEM_DISABLE_MULTICAST', 'NVSHMEM_DISABLE_NVLS')}}
    if model in a.fatal:
        write_result(result_path, {
            'status': 'error', 'reason': 'RuntimeError: CUDA error: device-side assert triggered (on purpose)',
            'weights': None, 'metrics': {}, 'env': env})
        return task['task_id'], True

    latency = dict(x.split('=', 1) for x in a.latency)
    n = int(task['batch_size']) * int(task['seq_len'])
    t0 = time.perf_counter()
    acc = 0
    for i in range(n):
        acc += i * i
    elapsed = time.perf_counter() - t0
    expect = (n - 1) * n * (2 * n - 1) // 6
    status = 'passed' if acc == expect and model not in a.fail else 'failed'
    metrics = {'compute_s': elapsed, 'items': n}
    if model in latency and task.get('kind') == 'benchmark':
        samples = []
        for _ in range(20):
            t = time.perf_counter()
            time.sleep(float(latency[model]) / 1000.0)
            samples.append(time.perf_counter() - t)
        metrics['latency_ms'] = runner_lib.latency_summary(samples)
        p50 = metrics['latency_ms']['p50']
        metrics['throughput_items_s'] = 1000.0 * int(task['batch_size']) / p50
        env['runner_version'] = 'arith-1'
    write_result(result_path, {
        'status': status,
        'reason': '' if status == 'passed' else 'sum of squares check failed for %s' % model,
        'weights': None,
        'metrics': metrics,
        'env': env,
    })
    print('arith runner: %s %s in %.6fs' % (model, status, elapsed))
    return task['task_id'], False


def health(a):
    t0 = time.perf_counter()
    n = 100000
    acc = sum(i * i for i in range(n))
    ok = acc == (n - 1) * n * (2 * n - 1) // 6
    detail = 'sum of squares of %d numbers on %s: %s' % (n, a.backend, 'correct' if ok else 'wrong')
    if a.broken_file and os.path.exists(a.broken_file):
        ok, detail = False, 'device marked broken by %s' % a.broken_file
    write_result(a.result, {'ok': ok, 'detail': detail, 'duration_s': time.perf_counter() - t0})
    print('arith runner: health check %s' % ('passed' if ok else 'failed: ' + detail))
    return 0


def serve(a):
    fd = int(os.environ['HFLEET_CONTROL_FD'])
    if a.started_dir:
        with open(os.path.join(a.started_dir, str(os.getpid())), 'w') as f:
            f.write('%.6f\n' % time.time())
        print('arith runner: started, waiting for tasks', file=sys.stderr, flush=True)
    if a.start_fails_until and not os.path.exists(a.start_fails_until):
        print('arith runner: cannot start on purpose (%s is missing)' % a.start_fails_until, file=sys.stderr)
        return 4
    for line in sys.stdin:
        try:
            req = json.loads(line)
            task_path, result_path = req['task'], req['result']
        except (ValueError, KeyError, TypeError) as exc:
            os.write(fd, (json.dumps({'error': 'bad request: %s' % exc}) + '\n').encode())
            continue
        try:
            task_id, fatal = run_task(a, task_path, result_path)
        except Crash:
            return 3
        sys.stdout.flush()
        sys.stderr.flush()
        line = {'done': task_id, 'fatal': fatal, 'rss_bytes': None, 'task_inline': True}
        if fatal:
            line['device_fault'] = False   # a device-side assert: the model tripped it
        os.write(fd, (json.dumps(line) + '\n').encode())
        if fatal:
            return 3
    return 0


def parse_args(argv=None):
    """The runner's options (argv None: the command line's); tests/hostile's
    runner takes its defaults from here."""
    ap = argparse.ArgumentParser()
    ap.add_argument('--task')
    ap.add_argument('--result')
    ap.add_argument('--probe', action='store_true')
    ap.add_argument('--serve', action='store_true')
    ap.add_argument('--crash', action='append', default=[])
    ap.add_argument('--garbage', action='append', default=[])
    ap.add_argument('--hang', action='append', default=[])
    ap.add_argument('--fail', action='append', default=[])
    ap.add_argument('--fatal', action='append', default=[])
    ap.add_argument('--sleep', type=float, default=0.0)
    ap.add_argument('--sleep-model', action='append', default=[])
    ap.add_argument('--health', action='store_true')
    ap.add_argument('--backend')
    ap.add_argument('--broken-file')
    ap.add_argument('--no-result', action='append', default=[])
    ap.add_argument('--escape-dir')
    ap.add_argument('--latency', action='append', default=[])
    ap.add_argument('--started-dir')
    ap.add_argument('--start-fails-until')
    ap.add_argument('--transformers', help='--probe reports this transformers version, available')
    a = ap.parse_args(argv)
    if a.health and (not a.backend or not a.result):
        ap.error('--health needs --backend and --result')
    return a


def main():
    a = parse_args()
    if a.health:
        return health(a)
    if a.probe:
        print(json.dumps({
            'python': {'version': sys.version.split()[0], 'executable': sys.executable},
            'torch': {'available': False, 'reason': 'arith test runner: no torch'},
            'transformers': ({'available': True, 'version': a.transformers} if a.transformers else
                             {'available': False, 'reason': 'arith test runner: no transformers'}),
        }))
        return 0
    if a.serve:
        return serve(a)
    try:
        run_task(a, a.task, a.result)
    except Crash:
        return 3
    return 0


if __name__ == '__main__':
    sys.exit(main())
