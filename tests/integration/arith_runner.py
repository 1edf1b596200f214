#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A runner made for hfleet's integration tests.

It follows the runner contract of worker/runners/README.md exactly (reads
the task JSON, writes the result JSON atomically, answers --probe) but does
a small real computation instead of building a model: a sum of squares over
batch_size x seq_len numbers, timed with time.perf_counter.  Its metrics are
what it measured, nothing else.

Misbehaviour for the tests that need it, chosen per model type:
  --crash MODEL      exit 3 without writing a result
  --garbage MODEL    print noise and write a result that is not JSON
  --hang MODEL       sleep far past any timeout
  --fail MODEL       report a failed test (an outcome, not an error)
  --sleep SECONDS    sleep this long in every task (to keep tasks in flight)
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--task')
    ap.add_argument('--result')
    ap.add_argument('--probe', action='store_true')
    ap.add_argument('--crash', action='append', default=[])
    ap.add_argument('--garbage', action='append', default=[])
    ap.add_argument('--hang', action='append', default=[])
    ap.add_argument('--fail', action='append', default=[])
    ap.add_argument('--sleep', type=float, default=0.0)
    a = ap.parse_args()

    if a.probe:
        print(json.dumps({
            'python': {'version': sys.version.split()[0], 'executable': sys.executable},
            'torch': {'available': False, 'reason': 'arith test runner: no torch'},
            'transformers': {'available': False, 'reason': 'arith test runner: no transformers'},
        }))
        return 0

    with open(a.task) as f:
        task = json.load(f)
    model = task['model_type']
    if a.sleep:
        time.sleep(a.sleep)
    if model in a.crash:
        print('arith runner: crashing on purpose for %s' % model, file=sys.stderr)
        return 3
    if model in a.hang:
        time.sleep(3600)
    if model in a.garbage:
        sys.stdout.write('\x00\x01garbage ' * 50000)
        with open(a.result, 'w') as f:
            f.write('{"status": "passed", "metrics": {')
        return 0

    n = int(task['batch_size']) * int(task['seq_len'])
    t0 = time.perf_counter()
    acc = 0
    for i in range(n):
        acc += i * i
    elapsed = time.perf_counter() - t0
    expect = (n - 1) * n * (2 * n - 1) // 6
    status = 'passed' if acc == expect and model not in a.fail else 'failed'
    result = {
        'status': status,
        'reason': '' if status == 'passed' else 'sum of squares check failed for %s' % model,
        'weights': None,
        'metrics': {'compute_s': elapsed, 'items': n},
        'env': {'python': sys.version.split()[0], 'runner': 'arith',
                'cuda_visible_devices': os.environ.get('CUDA_VISIBLE_DEVICES')},
    }
    tmp = a.result + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(result, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, a.result)
    print('arith runner: %s %s in %.6fs' % (model, status, elapsed))
    return 0


if __name__ == '__main__':
    sys.exit(main())
