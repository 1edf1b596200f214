#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A runner for tests/integration/test_modes.py: views_runner.py's sums of
squares, with benchmark modes.  A benchmark task's mode (the task JSON's
"mode", as the worker wrote it) picks the work: eager sums batch_size x
seq_len squares, cuda-graph and compile an eighth of them (a real, faster
figure, as a captured graph is), and the runner echoes in metrics.mode what
it measured.

--control FILE (read at every task), beyond views_runner's keys:
  {"old": [MODEL...]}             a runner older than modes: measures eager
                                  whatever was asked and echoes no mode
  {"lie": {MODEL: MODE}}          echoes MODE whatever it measured
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import views_runner  # noqa: E402

WORK_SHARE = {'eager': 1, 'cuda-graph': 8, 'compile': 8}
plain_benchmark = views_runner.benchmark


def benchmark(task, ctl, model):
    asked = task.get('mode')
    old = model in ctl.get('old', [])
    measured = 'eager' if old or asked not in WORK_SHARE else asked
    shrunk = dict(task, seq_len=max(1, int(task['seq_len']) // WORK_SHARE[measured]))
    metrics = plain_benchmark(shrunk, ctl, model)
    if not old:
        metrics['mode'] = ctl.get('lie', {}).get(model, measured)
    return metrics


if __name__ == '__main__':
    views_runner.benchmark = benchmark
    sys.exit(views_runner.main())
