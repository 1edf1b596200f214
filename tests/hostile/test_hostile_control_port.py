#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile requests on the control port (suite `hostile`).

Submits with absurd values (a million models, batch sizes of a billion,
huge names, numbers out of every documented range, bad enums and
strings), cancels, retries and drains of things that do not exist, and
malformed control messages.  Each bad submit must be refused with
ERR_BAD_REQUEST naming the field, and make no job; afterwards the
coordinator is alive, clean and bounded, and the well-behaved worker's
job completes (peer.py).

Every hostile submit asks for a label no worker has and does not allow
waiting, so a value the coordinator wrongly accepts makes no task that a
worker could pick up (it is answered ERR_UNSATISFIABLE instead, which is
reported as the failure it is).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer  # noqa: E402
import wire  # noqa: E402
from wire import ERR_BAD_REQUEST, ERR_NOT_FOUND  # noqa: E402

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
NOBODY = wire.key_value('hostile-suite', 'nobody')


def submit(**kw):
    kw.setdefault('models', 'bert')
    kw.setdefault('labels', NOBODY)
    return wire.submit(**kw)


class ControlPortTest(peer.HostileCase):
    def jobs(self):
        return self.c.pg.psql('SELECT count(*) FROM jobs')

    def test_submits_with_absurd_values_are_refused(self):
        attacks = [
            ('1e6 models', dict(models=['bert'] * 1000000), 'models'),
            ('a model named "bert\\0gpt2"', dict(models=b'bert\x00gpt2'), 'models'),
            ('a model name of 1 MB', dict(models='m' * (1 << 20)), 'models'),
            ('a model name invalid UTF-8', dict(models=b'bert\xff'), 'models'),
            ('a family of 1 MB', dict(models=None, families='f' * (1 << 20)), 'families'),
            ('batch size 1e9', dict(batch_sizes=1000000000), 'batch_sizes'),
            ('batch size 2^32-1', dict(batch_sizes=U32), 'batch_sizes'),
            ('batch size 0', dict(batch_sizes=0), 'batch_sizes'),
            ('1e5 batch sizes', dict(batch_sizes=list(range(1, 100001))), 'batch_sizes'),
            ('sequence length 2^32-1', dict(seq_len=U32), 'seq_len'),
            ('1e5 sequence lengths', dict(seq_lens=list(range(1, 100001))), 'seq_lens'),
            ('timeout_s 2^32-1', dict(timeout_s=U32), 'timeout_s'),
            ('iterations 2^32-1', dict(iterations=U32), 'iterations'),
            ('warmup 2^32-1', dict(warmup=U32), 'warmup'),
            ('priority 2^31-1', dict(priority=(1 << 31) - 1), 'priority'),
            ('priority -2^31', dict(priority=-(1 << 31)), 'priority'),
            ('devices_per_task 1e9', dict(devices_per_task=1000000000), 'devices_per_task'),
            ('max_retries 2^32-1', dict(max_retries=U32), 'max_retries'),
            ('flaky_reruns 2^32-1', dict(flaky_reruns=U32), 'flaky_reruns'),
            ('backend 99', dict(backends=99), 'backends'),
            ('kind 99', dict(kinds=99), 'kinds'),
            ('a precision invalid UTF-8', dict(precisions=b'fp\xff'), 'precisions'),
            ('1e5 precisions', dict(precisions=['fp32'] * 100000), 'precisions'),
            ('a job name of 10 MB', dict(name='n' * (10 << 20)), 'name'),
            ('a job name with a NUL', dict(name=b'job\x00name'), 'name'),
            ('a submitter invalid UTF-8', dict(submitter=b'\xc0\xaf'), 'submitter'),
            ('a submitter of 1 MB', dict(submitter='s' * (1 << 20)), 'submitter'),
            ('a request id outside its alphabet', dict(request_id='id with spaces/'), 'request_id'),
            ('a suite of 1 MB', dict(models=None, suite='s' * (1 << 20)), 'suite'),
            ('a suite outside its alphabet', dict(models=None, suite='core; DROP'), 'suite'),
            ('a suite invalid UTF-8', dict(models=None, suite=b'core\xff'), 'suite'),
            ('a min compute capability "9.\\0"', dict(min_compute_capability=b'9.\x00'), 'min_compute_capability'),
            ('1e5 gfx targets', dict(gfx_targets=['gfx942'] * 100000), 'gfx_targets'),
            ('1e5 runtimes', dict(runtimes=['torch'] * 100000), 'runtimes'),
            ('a label key invalid UTF-8', dict(labels=wire.key_value(b'\xff', 'x')), 'labels'),
            ('1e5 labels', dict(labels=[wire.key_value('k%d' % i, 'v') for i in range(100000)]), 'labels'),
        ]
        # A frame over the control port's receive limit closes the
        # connection unanswered (docs/protocol.md, "Connections" and
        # "Receive sizes"); one within it must be answered.
        recv_max = peer.hf_limit('HF_CONTROL_PORT_RECV_MAX')
        failures = []
        for what, kw, field in attacks:
            before = self.jobs()
            payload = wire.envelope('submit', submit(**kw))
            frame = 4 + len(payload)  # the request id, then the envelope
            conn = self.connect('control', timeout=120)
            try:
                r = conn.call(payload, timeout=120)
            except (OSError, peer.PeerClosed) as e:
                r = None
                if frame <= recv_max:
                    failures.append('%s: no reply (%s) to a frame of %d bytes, within the limit %d'
                                    % (what, e, frame, recv_max))
            finally:
                conn.close()
            if r is not None and frame > recv_max:
                failures.append('%s: a frame of %d bytes, over the limit %d, was answered %r'
                                % (what, frame, recv_max, r))
                r = None
            self.check_after(what)
            after = self.jobs()
            if after != before:
                failures.append('%s: a job was made' % what)
                self.c.pg.psql("UPDATE tasks SET state = 'cancelled' WHERE state = 'queued'"
                               " AND job_id IN (SELECT id FROM jobs WHERE submitter = 'hostile')")
            if r is None:
                continue
            try:
                self.assert_bad_request(r, field, what)
            except AssertionError as e:
                failures.append(str(e).splitlines()[0][:300])
        self.assertEqual(failures, [], '%d of %d bad submits were not refused as issue 18 requires:\n  %s'
                         % (len(failures), len(attacks), '\n  '.join(failures)))
        self.check_job('absurd submits')

    def test_requests_for_things_that_do_not_exist(self):
        # Ids above 2^63-1 cannot exist (ids are PostgreSQL bigints); the
        # validation may refuse them as out of range (docs/protocol.md,
        # "Numbers": job and task ids of control requests are 0 .. 2^63-1).
        # Either answer is right, if a BAD_REQUEST names the field; never
        # ERR_UNAVAILABLE or the database's text.
        out_of_range = (ERR_NOT_FOUND, ERR_BAD_REQUEST)
        cases = [
            ('cancel of job 2^64-1', 'cancel', wire.cancel(job_id=U64), out_of_range, 'job_id'),
            ('cancel of task 2^63', 'cancel', wire.cancel(job_id=0, task_id=1 << 63), out_of_range, 'task_id'),
            ('status of job 2^64-1', 'job_status', wire.f_varint(1, U64), out_of_range, 'job_id'),
            ('results of job 2^64-1', 'results_request', wire.f_varint(1, U64), out_of_range, 'job_id'),
            ('retry of job 2^64-1', 'retry', wire.f_varint(1, U64), out_of_range, 'job_id'),
            ('explain of task 2^64-1', 'explain', wire.f_varint(1, U64), out_of_range, 'task_id'),
            ('cancel of job 2^63-1', 'cancel', wire.cancel(job_id=U64 >> 1), ERR_NOT_FOUND, None),
            ('status of job 2^63-1', 'job_status', wire.f_varint(1, U64 >> 1), ERR_NOT_FOUND, None),
            ('drain of a worker that does not exist', 'drain', wire.drain(worker_id='nobody-at-all'),
             ERR_NOT_FOUND, None),
            ('drain of a worker id invalid UTF-8', 'drain', wire.drain(worker_id=b'\xff\xfe'),
             ERR_BAD_REQUEST, None),
            ('drain of a worker id of 1 MB', 'drain', wire.drain(worker_id='w' * (1 << 20)),
             ERR_BAD_REQUEST, None),
            ('drain of device backend 99 of "good"', 'drain',
             wire.drain(worker_id='good', one_device=True, backend=99, index=0), ERR_BAD_REQUEST, None),
            ('drain of device cpu:2^32-1 of "good"', 'drain',
             wire.drain(worker_id='good', one_device=True, backend=1, index=U32), ERR_BAD_REQUEST, None),
        ]
        failures = []
        for what, body_name, body, codes, field in cases:
            codes = codes if isinstance(codes, tuple) else (codes,)
            r = self.call(body_name, body, port='control')
            self.check_after(what)
            if r.kind != 'error' or r.error_code not in codes:
                failures.append('%s: expected %s, got %r'
                                % (what, ' or '.join(wire.ERROR_NAMES[c] for c in codes), r))
            elif (r.error_code == ERR_BAD_REQUEST and field is not None
                  and not peer.names_field(r.error_message, field)):
                failures.append('%s: the error does not name %s: %r' % (what, field, r))
            elif r.error_message_bytes is not None:
                try:
                    r.error_message_bytes.decode('utf-8')
                except UnicodeDecodeError:
                    failures.append('%s: the Error message is not valid UTF-8' % what)
        # Bounded replies: a list of 2^32-1 jobs, models of a family with a NUL.
        for what, body_name, body in (('a job list of 2^32-1', 'job_list', wire.f_varint(1, U32)),
                                      ('models of family "bert\\0x"', 'models', wire.f_len(1, b'bert\x00x')),
                                      ('models of a family invalid UTF-8', 'models', wire.f_len(1, b'\xff'))):
            r = self.call(body_name, body, port='control')
            self.check_after(what)
            if r.kind == 'error':
                try:
                    r.error_message_bytes.decode('utf-8')
                except UnicodeDecodeError:
                    failures.append('%s: the Error message is not valid UTF-8: %r' % (what, r.error_message_bytes))
        self.assertEqual(failures, [], '\n  '.join(failures))
        # Nothing drained: the well-behaved worker still gets its job.
        self.check_job('requests for things that do not exist')

    def test_malformed_control_messages(self):
        payloads = [
            ('a worker request (Poll) on the control port', wire.envelope('poll', wire.poll('x'))),
            ('a Register on the control port', wire.envelope('register', wire.register('x'))),
            ('a reply (SubmitReply) as a request', wire.envelope('submit_reply', b'')),
            ('a Submit with a body past the end', wire.f_varint(1, 1) + wire.key(20, wire.LEN) + wire.varint(100)),
            ('a Submit of 100000 nested unknown groups', wire.envelope(
                'submit', wire.key(90, wire.SGROUP) * 100000 + wire.key(90, wire.EGROUP) * 100000)),
            ('a Submit whose priority is a string', wire.envelope('submit', wire.f_len(1, 'bert') + wire.f_len(8, 'x'))),
            ('an unknown body', wire.envelope(63, b'')),
        ]
        failures = []
        for what, payload in payloads:
            before = self.jobs()
            conn = self.connect('control')
            try:
                r = conn.call(payload, timeout=60)
            except (OSError, peer.PeerClosed) as e:
                r = None
                failures.append('%s: no reply (%s)' % (what, e))
            conn.close()
            self.check_after(what)
            if self.jobs() != before:
                failures.append('%s: a job was made' % what)
            # A worker's request is answered ERR_WRONG_PORT (it names the port).
            want = wire.ERR_WRONG_PORT if what.endswith('on the control port') else ERR_BAD_REQUEST
            if r is not None and (r.kind != 'error' or r.error_code != want):
                failures.append('%s: answered %r' % (what, r))
        self.assertEqual(failures, [], '\n  '.join(failures))
        self.check_job('malformed control messages')


if __name__ == '__main__':
    unittest.main(verbosity=2)
