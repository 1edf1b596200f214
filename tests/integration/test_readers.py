#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""hfctl for readers against a real coordinator and database: results
filters and --wide, jobs filters, logs, compare (its exit status on a made
regression), history, and report --html rendered in headless Chromium.

Two jobs run the same models through the arith runner: the base, then the
candidate after the worker restarts with a runner that fails t5's test and
reports gpt2's benchmark 50 % slower (t5's benchmark fails too).  --latency
makes the arith runner time sleeps of 20 and 30 ms: measured figures, near
those values, far from each other beyond any noise of a busy machine.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_pipeline import wait_job  # noqa: E402

BASE_RUNNER = '--latency bert=10 --latency gpt2=20'
CAND_RUNNER = '--latency bert=10 --latency gpt2=30 --fail t5'
HOSTILE_NAME = '<script>alert("x")</script>&nightly'


def submit(c, name):
    out = c.hfctl_json('submit', '--models', 'bert,gpt2,t5', '--backends', 'cpu', '--kind', 'test,benchmark',
                       '--name', name, '--seq-len', '8')
    return int(out['job_id'])


def chromium():
    for name in ('chromium', 'chromium-browser'):
        path = shutil.which(name)
        if path:
            return path
    return None


def png_colours(path, step=4):
    """Distinct colours of an 8-bit RGB or RGBA PNG (every step-th pixel of
    every step-th row), decoded with zlib: no imaging library needed."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, width = 8, b'', 0
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            width, height, depth, ctype = struct.unpack('>IIBB', body[:10])
            assert depth == 8 and ctype in (2, 6), 'PNG of depth %d, colour type %d' % (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b'IDAT':
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xff
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xff
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xff
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 0xff
        if y % step == 0:
            for x in range(0, width, step):
                colours.add(bytes(line[x * bpp:x * bpp + 3]))
        prev = line
    return colours


def render(html_path, png_path):
    """Headless Chromium's screenshot of html_path; returns its log."""
    p = subprocess.run([chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                        '--user-data-dir=' + os.path.join(os.path.dirname(png_path), 'chromium-profile'),
                        '--window-size=1200,1400', '--enable-logging=stderr', '--v=0',
                        '--screenshot=' + png_path, 'file://' + html_path],
                       capture_output=True, text=True, timeout=120)
    assert os.path.exists(png_path), 'no screenshot: %s' % p.stderr[-3000:]
    return p.stderr


def script_errors(log):
    """The console messages and uncaught errors a page caused, from
    Chromium's log."""
    return [line for line in log.splitlines()
            if 'CONSOLE' in line or 'Uncaught' in line or 'Refused to' in line]


class Readers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = harness.Cluster()
        cls.c.start_coordinator()
        cls.viewer = cls.c.token_file('reader', 'viewer')
        cls.c.start_worker('w1', runner_args=BASE_RUNNER)
        cls.c.wait_for(lambda: len(cls.c.hfctl_json('workers')) == 1, 30, 'the worker to register')
        cls.base = submit(cls.c, 'nightly-base')
        wait_job(cls.c, cls.base, timeout=120)
        cls.c.workers['w1'].stop()
        cls.c.start_worker('w2', runner_args=CAND_RUNNER)
        cls.c.wait_for(lambda: any(w['worker_id'] == 'w2' and w['connected'] for w in cls.c.hfctl_json('workers')),
                       30, 'the second worker to register')
        cls.cand = submit(cls.c, HOSTILE_NAME)
        wait_job(cls.c, cls.cand, timeout=120)
        cls.tmp = tempfile.mkdtemp(prefix='hfleet-readers-')

    @classmethod
    def tearDownClass(cls):
        if harness.keep_files():
            cls.c.dump_logs()
        cls.c.close(keep=harness.keep_files())
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def task_of(self, job, model, kind):
        return int(self.c.pg.psql("SELECT id FROM tasks WHERE job_id = %d AND model_type = '%s' AND kind = '%s'"
                                  % (job, model, kind)))

    # ---- results ----

    def test_results_filters_applied_by_the_database(self):
        rows = self.c.hfctl_json('results', str(self.cand), '--model', 't5')
        self.assertEqual({r['model_type'] for r in rows}, {'t5'})
        self.assertEqual(len(rows), 2)
        rows = self.c.hfctl_json('results', str(self.cand), '--status', 'failed')
        self.assertEqual([(r['model_type'], r['kind']) for r in rows], [('t5', 'benchmark'), ('t5', 'test')])
        rows = self.c.hfctl_json('results', str(self.cand), '--kind', 'benchmark', '--family',
                                 'decoder-only,encoder-only')
        self.assertEqual(sorted(r['model_type'] for r in rows), ['bert', 'gpt2'])
        self.assertEqual(self.c.hfctl_json('results', str(self.cand), '--backend', 'cuda'), [])
        self.assertEqual(len(self.c.hfctl_json('results', str(self.cand), '--backend', 'cpu')), 6)
        # The table leaves out the metrics it does not show; JSON has them.
        rows = self.c.hfctl_json('results', str(self.cand), '--model', 'gpt2', '--kind', 'benchmark')
        self.assertAlmostEqual(rows[0]['metrics_json']['latency_ms']['p50'], 30, delta=5)
        for bad in (('--kind', 'nightly'), ('--backend', 'tpu'), ('--family', 'nope'), ('--status', 'done'),
                    ('--model', 'a,,b')):
            p = self.c.hfctl('results', str(self.cand), *bad, check=False)
            self.assertEqual(p.returncode, 2, (bad, p.stderr))
            self.assertIn(bad[1], p.stderr)

    def test_results_wide_keeps_the_whole_reason(self):
        task = self.task_of(self.cand, 't5', 'test')
        self.c.pg.psql("UPDATE results SET reason = repeat('long reason ', 10) || 'END-OF-REASON'"
                       " WHERE id = (SELECT result_id FROM tasks WHERE id = %d)" % task)
        narrow = self.c.hfctl('results', str(self.cand), '--model', 't5').stdout
        self.assertNotIn('END-OF-REASON', narrow)
        self.assertIn('...', narrow)
        wide = self.c.hfctl('results', str(self.cand), '--model', 't5', '--wide').stdout
        self.assertIn('END-OF-REASON', wide)

    # ---- jobs ----

    def test_jobs_filters(self):
        ids = lambda *a: [j['job_id'] for j in self.c.hfctl_json('jobs', *a)]  # noqa: E731
        self.assertEqual(ids('--name', 'nightly'), [self.cand, self.base])
        self.assertEqual(ids('--name', 'base'), [self.base])
        self.assertEqual(ids('--state', 'done', '--submitter', 'admin'), [self.cand, self.base])
        self.assertEqual(ids('--state', 'running'), [])
        self.assertEqual(ids('--submitter', 'reader'), [])
        self.assertEqual(ids('--since', '2000-01-01'), [self.cand, self.base])
        self.c.pg.psql("UPDATE jobs SET created_at = now() - interval '10 days' WHERE id = %d" % self.base)
        try:
            self.assertEqual(ids('--since', '7d'), [self.cand])
            self.assertEqual(ids('--since', '11d'), [self.cand, self.base])
        finally:
            self.c.pg.psql("UPDATE jobs SET created_at = now() WHERE id = %d" % self.base)
        for bad in (('--state', 'finished'), ('--since', '3 days'), ('--since', '2999-01-01'), ('--since', '7y')):
            p = self.c.hfctl('jobs', *bad, check=False)
            self.assertEqual(p.returncode, 2, (bad, p.stderr))

    # ---- logs ----

    def test_logs(self):
        task = self.task_of(self.cand, 't5', 'test')
        out = self.c.hfctl('logs', str(task)).stdout
        self.assertIn('arith runner: t5 failed', out)
        self.assertIn('decided the outcome', out)
        doc = self.c.hfctl_json('logs', str(task), '--all', token_file=self.viewer)
        self.assertEqual(doc['status'], 'failed')
        self.assertEqual(len(doc['attempts']), doc['total_attempts'])
        self.assertTrue(any(a['deciding'] for a in doc['attempts']))
        p = self.c.hfctl('logs', '999999', check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('no task 999999', p.stderr)
        self.assertEqual(self.c.hfctl('logs', 'x', check=False).returncode, 2)

    # ---- compare ----

    def test_compare_exits_1_on_a_regression(self):
        p = self.c.hfctl('compare', str(self.base), str(self.cand), check=False, token_file=self.viewer)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('regressed', p.stdout)
        doc = json.loads(self.c.hfctl('--json', 'compare', str(self.base), str(self.cand), check=False).stdout)
        self.assertTrue(doc['regressed'])
        kinds = {(r['model_type'], r['kind']): r['change_kind'] for r in doc['rows']}
        self.assertEqual(kinds[('t5', 'test')], 'new-failure')
        self.assertEqual(kinds[('gpt2', 'benchmark')], 'slower')
        self.assertEqual(kinds[('bert', 'benchmark')], 'same')
        self.assertEqual(doc['counts']['new-failure'], 2)  # t5's test and benchmark
        self.assertEqual(doc['counts']['slower'], 1, doc)
        self.assertEqual(doc['rows'][0]['change_kind'], 'new-failure')  # regressions first
        gpt2 = [r for r in doc['rows'] if r['model_type'] == 'gpt2' and r['kind'] == 'benchmark'][0]
        # The change is the stored figures' (cand / base - 1), near the 50 % made.
        self.assertAlmostEqual(gpt2['change'], gpt2['cand_p50_ms'] / gpt2['base_p50_ms'] - 1, places=6)
        self.assertAlmostEqual(gpt2['change'], 0.5, delta=0.25)
        # A threshold above the change: gpt2 no longer counts; t5 still does.
        doc = json.loads(self.c.hfctl('--json', 'compare', '--threshold', '60%', str(self.base), str(self.cand),
                                      check=False).stdout)
        self.assertEqual(doc['counts']['slower'], 0)
        # The other way round: a fix and a faster benchmark, no regression.
        p = self.c.hfctl('compare', str(self.cand), str(self.base), check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn('no regression', p.stdout)
        self.assertRegex(p.stdout, r'2 fixed, 0 slower, 1 faster')
        p = self.c.hfctl('compare', str(self.base), '999999', check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('no job 999999', p.stderr)
        for bad in (('--threshold', '0'), ('--threshold', 'x'), ('--threshold', '11')):
            p = self.c.hfctl('compare', *bad, str(self.base), str(self.cand), check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(self.c.hfctl('compare', str(self.base), check=False).returncode, 2)

    # ---- history ----

    def test_history(self):
        doc = self.c.hfctl_json('history', 'gpt2', '--kind', 'benchmark', token_file=self.viewer)
        self.assertEqual([r['job_id'] for r in doc['rows']], [self.cand, self.base])  # newest first
        p50s = [r['latency_p50_ms'] for r in doc['rows']]
        self.assertAlmostEqual(p50s[0], 30, delta=5)
        self.assertAlmostEqual(p50s[1], 20, delta=5)
        doc = self.c.hfctl_json('history', 't5', '--backend', 'cpu', '--limit', '1')
        self.assertEqual(len(doc['rows']), 1)
        self.assertEqual(doc['rows'][0]['job_id'], self.cand)
        self.assertEqual(self.c.hfctl_json('history', 't5', '--backend', 'cuda')['rows'], [])
        self.assertEqual(self.c.hfctl_json('history', 't5', '--precision', 'fp16')['rows'], [])
        out = self.c.hfctl('history', 'bert').stdout
        self.assertIn('4 outcomes, newest first', out)
        for bad in (('t5', '--precision', 'fp64'), ('t5', '--limit', '0'), ('a b',), ()):
            p = self.c.hfctl('history', *bad, check=False)
            self.assertEqual(p.returncode, 2, (bad, p.stderr))

    # ---- report ----

    def test_report_html(self):
        path = os.path.join(self.tmp, 'report.html')
        p = self.c.hfctl('report', str(self.cand), '--html', path, token_file=self.viewer)
        self.assertIn('written to', p.stdout)
        with open(path) as f:
            html = f.read()
        # Self-contained: no script, nothing fetched.
        self.assertNotIn('<script', html)
        self.assertIsNone(re.search(r'(src|href)\s*=\s*"(https?:)?//', html))
        self.assertIn('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;nightly', html)
        self.assertIn('<svg', html)
        self.assertIn('arith-1', html)                               # the runner version
        self.assertIn('sum of squares check failed for t5', html)    # t5's reason, on hover
        self.assertIn('Cross-backend comparison', html)
        self.assertEqual(self.c.hfctl('report', '999999', '--html', path, check=False).returncode, 1)
        self.assertEqual(self.c.hfctl('report', str(self.cand), check=False).returncode, 2)

    @unittest.skipUnless(chromium(), 'chromium is not installed (deploy/install-deps.sh --test installs it)')
    def test_report_renders_in_chromium(self):
        path = os.path.join(self.tmp, 'render.html')
        self.c.hfctl('report', str(self.cand), '--html', path)
        png = os.path.join(self.tmp, 'render.png')
        log = render(path, png)
        self.assertEqual(script_errors(log), [])
        colours = png_colours(png)
        # Blank is one colour; the page has text, the status colours and bars.
        self.assertGreater(len(colours), 20, 'the screenshot looks blank: %d colours' % len(colours))
        for rgb in ((0x2e, 0x9e, 0x5b), (0xd6, 0x45, 0x41), (0x4a, 0x7b, 0xd0)):  # passed, failed, bars
            self.assertIn(bytes(rgb), colours)
        # The check can fail: a page with a script error is caught.
        bad = os.path.join(self.tmp, 'bad.html')
        with open(bad, 'w') as f:
            f.write('<html><body><p>x</p><script>no_such_function();</script></body></html>')
        self.assertNotEqual(script_errors(render(bad, os.path.join(self.tmp, 'bad.png'))), [])


if __name__ == '__main__':
    unittest.main(verbosity=2)
