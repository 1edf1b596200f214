#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A runner for tests/integration/test_views.py: the arith runner's protocol
(arith_runner.py: one-shot, --serve, --probe, --health) with benchmark
results in the shape of docs/runner.md and CONTRACT section 1.

A test task computes a sum of squares over batch_size x seq_len numbers and
checks it against its closed form.  A benchmark task times that computation
(warm-up, then `iterations` timed runs, time.perf_counter) and writes
latency_ms {count, mean, stdev, cv, min, max, p50, p90, p95, p99}, the raw
samples, throughput_items_s, noisy and noise_threshold: figures it really
measured.

--control FILE names a JSON file read at every task, so a test can change
behaviour between jobs without restarting the worker:
  {"skip": [MODEL...]}          report skipped
  {"fail": [MODEL...]}          report a failed test
  {"slow": {MODEL: N}}          do the computation N times per iteration (a
                                real slowdown)
  {"jitter": [MODEL...]}        add a random 5-20 ms sleep to 3 of every 10
                                timed iterations (real noise; the median stays, and
                                the spread is several times the iterations'
                                own 3 ms, so that it dominates whatever a
                                shared machine's load does to the timings)
  {"hostile": [MODEL...]}       env and metrics values of the wrong types and
                                sizes (the coordinator must store NULLs)
  {"no_device_name": [MODEL...]} leave device_name out of env
  {"runner_version": "..."}     the runner_version written in env
"""
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import arith_runner  # noqa: E402
# The latency statistics every runner reports: worker/runners/hfleet_runner_lib.py.
from arith_runner import runner_lib  # noqa: E402

CONTROL = None
NOISE_THRESHOLD = 3.0   # generous: the test machine is shared and busy


def control():
    try:
        with open(CONTROL) as f:
            return json.load(f)
    except (OSError, ValueError, TypeError):
        return {}


def sum_of_squares(n):
    acc = 0
    for i in range(n):
        acc += i * i
    return acc


def benchmark(task, ctl, model):
    n = int(task['batch_size']) * int(task['seq_len'])
    repeat = int(ctl.get('slow', {}).get(model, 1))
    jitter = model in ctl.get('jitter', [])
    warmup, iterations = max(1, int(task.get('warmup', 1))), max(2, int(task.get('iterations', 10)))
    samples = []
    for i in range(warmup + iterations):
        t0 = time.perf_counter()
        for _ in range(repeat):
            sum_of_squares(n)
        # Three timed iterations in ten, never more: drawn at random, 15
        # of 30 were jittered about once in 60 runs, the median moved with
        # them and test_views saw a slowdown where it made noise.
        if jitter and i >= warmup and (i - warmup) % 10 in (1, 4, 7):
            time.sleep(random.uniform(0.005, 0.020))
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    latency = runner_lib.latency_summary(samples)
    cv = latency['cv']
    return {
        'latency_ms': latency,
        'latency_samples_ms': [s * 1000.0 for s in samples[:512]],
        'throughput_items_s': int(task['batch_size']) / (latency['mean'] / 1000.0),
        'peak_memory_bytes': None,
        'warmup': warmup, 'warmup_requested': warmup, 'warmup_stable': True,
        'noise_threshold': NOISE_THRESHOLD,
        'noisy': cv > NOISE_THRESHOLD,
    }


def run_task(a, task_path, result_path):
    if isinstance(task_path, dict):  # given in the request line (arith_runner.serve)
        task = task_path
    else:
        with open(task_path) as f:
            task = json.load(f)
    model = task['model_type']
    ctl = control()
    env = {'python': sys.version.split()[0], 'runner': 'views', 'runner_version': ctl.get('runner_version', '1.0'),
           'torch': None, 'transformers': None, 'device_name': 'views-cpu', 'device_uuid': 'CPU-views-0',
           'device_memory_bytes': 1 << 30, 'pid': os.getpid()}
    if model in ctl.get('no_device_name', []):
        for k in ('device_name', 'device_uuid', 'device_memory_bytes'):
            del env[k]
    metrics = {}
    status, reason = 'passed', ''
    if model in ctl.get('skip', []):
        status, reason = 'skipped', 'skipped on purpose by the views test'
    elif task['kind'] == 'benchmark':
        metrics = benchmark(task, ctl, model)
        if model in ctl.get('offloaded', {}):
            metrics['offloaded_bytes'] = ctl['offloaded'][model]
    else:
        n = int(task['batch_size']) * int(task['seq_len'])
        t0 = time.perf_counter()
        ok = sum_of_squares(n) == (n - 1) * n * (2 * n - 1) // 6
        metrics = {'compute_s': time.perf_counter() - t0}
        if not ok or model in ctl.get('fail', []):
            status, reason = 'failed', 'sum of squares check failed for %s (on purpose)' % model
    if model in ctl.get('hostile', []):
        env.update({'python': 3.11, 'torch': {'version': '2.5'}, 'transformers': ['4.40'],
                    'device_name': 'x' * 5000, 'device_memory_bytes': 'lots', 'driver_version': True,
                    'runner_version': 1e308})
        metrics.update({'latency_ms': {'p50': 'fast', 'p90': 1e308, 'p95': -1e-320, 'p99': [1], 'mean': None,
                                       'cv': {'a': 1}},
                        'throughput_items_s': '12', 'peak_memory_bytes': 1e30, 'noisy': 'yes',
                        'energy_j_per_item': False, 'avg_power_w': 9.5e18, 'offloaded_bytes': -5})
    arith_runner.write_result(result_path, {'status': status, 'reason': reason, 'weights': 'random-init',
                                            'metrics': metrics, 'env': env})
    return task['task_id'], False


def main():
    global CONTROL
    argv = sys.argv[1:]
    if '--control' in argv:
        i = argv.index('--control')
        CONTROL = argv[i + 1]
        del argv[i:i + 2]
    sys.argv = [sys.argv[0]] + argv
    arith_runner.run_task = run_task
    return arith_runner.main()


if __name__ == '__main__':
    sys.exit(main())
