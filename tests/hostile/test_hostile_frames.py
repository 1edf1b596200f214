#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile peers at the framing and connection level (suite `hostile`).

Garbage and truncated frames, wrong SP headers and protocol ids, huge
length prefixes, messages over the receive limit, a connection that
pipelines requests and never reads the replies, idle connections past the
connection cap, and idle and half-open connections that must time out.
After each attack: the coordinator is alive and answers hfctl, no
sanitizer report, bounded memory, and the well-behaved worker's job
completes with one deciding result per task (see peer.py).
"""
import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer  # noqa: E402
import wire  # noqa: E402

# nng's own receive limits in hf-coordinator today (main.c): 64 MiB on the
# worker port, 16 MiB on the control port.  A frame over them must be
# refused by closing the connection, without reading it all.
WORKER_RECV_MAX = 64 << 20
CONTROL_RECV_MAX = 16 << 20


class FramesTest(peer.HostileCase):
    def expect_closed(self, conn, what, timeout=20.0):
        self.assertTrue(conn.closed_by_peer(timeout), '%s: the coordinator kept the connection open' % what)

    def test_garbage_and_bad_sp_headers_are_closed(self):
        attacks = [
            ('garbage instead of an SP header', os.urandom(4096)),
            ('a wrong SP magic', b'\x00SQ\x00\x00\x30\x00\x00'),
            ('SP protocol id 0x1234', peer.sp_header(0x1234)),
            ('SP protocol id REP (49) talking to a REP', peer.sp_header(peer.SP_REP)),
            ('SP protocol id PAIR (16)', peer.sp_header(16)),
            ('SP protocol id 0xffff', peer.sp_header(0xffff)),
            ('nonzero reserved bytes', b'\x00SP\x00\x00\x30\xff\xff'),
        ]
        for port in ('worker', 'control'):
            for what, data in attacks:
                what = '%s on the %s port' % (what, port)
                conn = self.connect(port, handshake=False)
                try:
                    conn.send_raw(data)
                except OSError:
                    pass  # closed already: what we want
                self.expect_closed(conn, what)
                conn.close()
                self.check_after(what)
        self.check_job('garbage and bad SP headers')

    def test_truncated_and_malformed_frames(self):
        attacks = [
            ('an SP header cut after 3 bytes', lambda c: c.send_raw(b'\x00SP')),
            ('a length prefix cut after 5 bytes', lambda c: (c.handshake(), c.send_raw(b'\x00' * 5))),
            ('a frame cut after 10 of 100 bytes', lambda c: (c.handshake(), c.send_raw(struct.pack('>Q', 100) + b'\x80' * 10))),
            ('an empty frame (no request id)', lambda c: (c.handshake(), c.send_frame(b''))),
            ('a frame of 3 bytes (short request id)', lambda c: (c.handshake(), c.send_frame(b'\x80\x00\x01'))),
            ('a request id without the high bit', lambda c: (c.handshake(), c.send_frame(b'\x00\x00\x00\x05' + wire.envelope('models', b'')))),
            ('a request id followed by garbage', lambda c: (c.handshake(), c.send_frame(b'\x80\x00\x00\x07' + os.urandom(2000)))),
        ]
        for port in ('worker', 'control'):
            for what, attack in attacks:
                what = '%s on the %s port' % (what, port)
                conn = self.connect(port, handshake=False)
                try:
                    attack(conn)
                except (OSError, peer.PeerClosed):
                    pass
                # Then the peer goes away mid-frame.
                conn.close()
                self.check_after(what)
        self.check_job('truncated and malformed frames')

    def test_huge_length_prefixes_are_refused_without_reading(self):
        for port, limit in (('worker', WORKER_RECV_MAX), ('control', CONTROL_RECV_MAX)):
            for n in (limit + 1, 1 << 32, 1 << 62, (1 << 64) - 1):
                what = 'a length prefix of %d on the %s port' % (n, port)
                conn = self.connect(port)
                conn.send_raw(struct.pack('>Q', n) + b'\x80\x00\x00\x01' + b'x' * 1000)
                self.expect_closed(conn, what)
                conn.close()
                self.check_after(what)
        self.check_job('huge length prefixes')

    def test_messages_over_the_receive_limit(self):
        for port, limit in (('worker', WORKER_RECV_MAX), ('control', CONTROL_RECV_MAX)):
            what = 'a %d-byte message on the %s port' % (limit + 4096, port)
            conn = self.connect(port, timeout=30)
            body = b'\x80\x00\x00\x09' + wire.envelope('register', wire.register(
                worker_id='oversized', hostname='h' * (limit + 4000)))
            try:
                conn.send_frame(body)
            except OSError:
                pass  # the coordinator closed it part way: right
            else:
                self.expect_closed(conn, what)
            conn.close()
            self.check_after(what)
        self.check_job('messages over the receive limit')

    def frames(self, payloads):
        """(request ids, the bytes of one SP frame per payload)."""
        ids, out = [], b''
        for p in payloads:
            rid = peer.SpConn.next_id
            peer.SpConn.next_id += 1
            body = struct.pack('>I', rid) + p
            ids.append(rid)
            out += struct.pack('>Q', len(body)) + body
        return ids, out

    def expect_replies(self, conn, ids, kind, what):
        for rid in ids:
            got, body = conn.recv_reply(timeout=30)
            self.assertEqual(got, rid, '%s: replies out of order' % what)
            self.assertEqual(wire.Reply(body).kind, kind, '%s: %r' % (what, wire.Reply(body)))

    def test_split_and_pipelined_frames_are_each_answered(self):
        """The server reads whatever the socket has and cuts frames out of
        it: frames split anywhere (a byte at a time), several in one
        segment, more of them than a connection's share of requests (4 by
        default), and frames larger than its read buffer between small
        ones, on both ports, are each answered once, in order."""
        # RegisterReply.session (7): the polls carry it.
        session = wire.first(self.register_hostile('splitter').body, 7, 0)
        small = {'control': wire.envelope('workers', b''),
                 'worker': wire.envelope('poll', wire.poll(worker_id='splitter', session=session))}
        large = {'control': wire.envelope('workers', b'') + wire.f_len(999, b'x' * 3000),
                 'worker': wire.envelope('poll', wire.poll(worker_id='splitter', session=session, running=[
                     wire.task_ref(10 ** 12 + i, 1) for i in range(400)]))}
        kinds = {'control': 'workers_reply', 'worker': 'poll_reply'}
        for port in ('control', 'worker'):
            s, big = small[port], large[port]
            self.assertGreater(len(big), 2048)
            # The SP header and 12 requests in one write.
            conn = self.connect(port, handshake=False)
            ids, data = self.frames([s] * 12)
            conn.send_raw(peer.sp_header(peer.SP_REQ) + data)
            self.assertEqual(conn.recv_exact(8), peer.sp_header(peer.SP_REP))
            self.expect_replies(conn, ids, kinds[port], '12 requests in one segment on the %s port' % port)
            # A byte at a time, the header of the next cut anywhere.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ids, data = self.frames([s, s])
            for i in range(len(data)):
                conn.send_raw(data[i:i + 1])
                time.sleep(0.001)
            self.expect_replies(conn, ids, kinds[port], 'requests a byte at a time on the %s port' % port)
            # Large frames between small ones, in one write, then in
            # pieces of 7 bytes that split every head and body.
            ids, data = self.frames([s, big, s, big, big, s])
            conn.send_raw(data)
            self.expect_replies(conn, ids, kinds[port], 'large and small frames pipelined on the %s port' % port)
            ids, data = self.frames([big, s, s, big])
            for i in range(0, len(data), 7):
                conn.send_raw(data[i:i + 7])
            self.expect_replies(conn, ids, kinds[port], 'frames in 7-byte pieces on the %s port' % port)
            # Two requests and half of a third, then the peer hangs up:
            # the two are answered, the half dropped.
            ids, data = self.frames([s, s, s])
            conn.send_raw(data[:-5])
            self.expect_replies(conn, ids[:2], kinds[port], 'a hang-up mid-frame on the %s port' % port)
            conn.close()
            self.check_after('split and pipelined frames on the %s port' % port)
        self.check_job('split and pipelined frames')

    def pipeline(self, conn, payloads, seconds=20.0):
        """Sends payloads as fast as the coordinator takes them, never
        reading; stops when the socket stops taking them for a while.
        Returns how many were sent in full."""
        conn.sock.settimeout(2.0)
        sent = 0
        deadline = time.time() + seconds
        for p in payloads:
            if time.time() > deadline:
                break
            try:
                conn.send_request(p)
            except (socket.timeout, OSError):
                break
            sent += 1
        # Time for the coordinator to take in what it will (not a
        # deadline: nothing is asserted about how long anything takes).
        time.sleep(3)
        return sent

    def test_pipelined_unread_requests_on_the_control_port(self):
        conn = self.connect('control', rcvbuf=4096)
        sent = self.pipeline(conn, [wire.envelope('models', b'')] * 500)
        print('hostile: pipelined %d unread models requests on one control connection' % sent, flush=True)
        what = 'pipelined unread control requests'
        # While that connection holds on, everyone else is still served.
        self.check_after(what)
        self.check_job(what)
        limit = self.setting('connections.reply_timeout')
        if limit is not None:
            self.expect_closed(conn, what + ': a peer that does not read its replies is disconnected',
                               timeout=60)

    def test_pipelined_unread_polls_on_the_worker_port(self):
        self.register_hostile('pipeliner')
        running = [wire.task_ref(10 ** 12 + i, 1) for i in range(2000)]
        poll = wire.envelope('poll', wire.poll(worker_id='pipeliner', running=running))
        conn = self.connect('worker', rcvbuf=4096)
        sent = self.pipeline(conn, [poll] * 800)
        print('hostile: pipelined %d unread polls (%d bytes each) on one worker connection'
              % (sent, len(poll)), flush=True)
        what = 'pipelined unread worker requests'
        self.check_after(what)
        self.check_job(what)
        limit = self.setting('connections.reply_timeout')
        if limit is not None:
            self.expect_closed(conn, what + ': a peer that does not read its replies is disconnected',
                               timeout=60)

    def test_idle_connections_past_the_cap(self):
        """More idle connections than a default file limit allows, on the
        worker port: the control port must stay reachable and the
        well-behaved worker keep working."""
        want = 1100
        if self.fd_limit < want + 200:
            self.skipTest('the test process may open only %d files' % self.fd_limit)
        conns, refused = [], 0
        for _ in range(want):
            try:
                conn = peer.SpConn(self.c.worker_url, timeout=5)
            except OSError:
                refused += 1
                continue
            conns.append(conn)
            self.conns.append(conn)
            try:
                conn.send_raw(peer.sp_header(peer.SP_REQ))
            except OSError:
                refused += 1
        # Their SP headers back (or a close: the cap turning them away).
        answered = 0
        for conn in conns:
            try:
                conn.recv_exact(8, timeout=5)
                answered += 1
            except (OSError, peer.PeerClosed, socket.timeout):
                pass
        fds = peer.fd_count(self.coord_pid)
        print('hostile: %d idle connections opened, %d refused at connect, %d got an SP header;'
              ' the coordinator has %d open files' % (len(conns), refused, answered, fds), flush=True)
        what = '%d idle connections on the worker port' % want
        self.check_after(what)
        self.check_job(what)
        cap = self.setting('connections.max_per_port')
        if cap is not None:
            still_open = sum(1 for conn in conns if not conn.closed_by_peer(0.02))
            print('hostile: %d of them still open with a cap of %s' % (still_open, cap[1]), flush=True)
            self.assertLessEqual(still_open, int(cap[1]) + 8, '%s: more connections kept than the cap %s'
                                 % (what, cap))
            self.assertLess(peer.fd_count(self.coord_pid), int(cap[1]) * 2 + 200)
        for conn in conns:
            conn.close()
        self.check_after(what + ', closed again')

    def test_idle_and_half_open_connections_time_out(self):
        idle = self.setting('connections.idle_timeout')
        self.assertIsNotNone(idle, 'the coordinator has no idle connection timeout (looked for %s in'
                             ' hf-coordinator --print-config)' % peer.WANTED_SETTINGS[0][0])
        kinds = {
            'idle after the SP handshake': lambda c: c.handshake(),
            'half-open: 4 bytes of the SP header': lambda c: c.send_raw(b'\x00SP\x00'),
            'half-open: a frame cut after 10 of 100 bytes':
                lambda c: (c.handshake(), c.send_raw(struct.pack('>Q', 100) + b'\x80' * 10)),
            'half-open: a length prefix and nothing else':
                lambda c: (c.handshake(), c.send_raw(struct.pack('>Q', 64))),
        }
        conns = []
        for port in ('worker', 'control'):
            for what, start in kinds.items():
                conn = self.connect(port, handshake=False)
                start(conn)
                conns.append(('%s on the %s port' % (what, port), conn))
        # Closed within the idle timeout and a generous margin.
        for what, conn in conns:
            self.expect_closed(conn, what, timeout=60)
        self.check_all('idle and half-open connections')


class SlowReaderFloodTest(peer.HostileCase):
    """A flood of requests from many connections at once while the
    well-behaved worker runs a job (a separate cluster: it may leave
    the coordinator slow for a while)."""

    def test_many_connections_each_pipelining(self):
        stop = threading.Event()
        counts = []

        def flood(port, payload):
            n = 0
            try:
                conn = self.connect(port, rcvbuf=4096)
                conn.sock.settimeout(2.0)
                while not stop.is_set():
                    conn.send_request(payload)
                    n += 1
            except (OSError, peer.PeerClosed):
                pass
            counts.append(n)

        threads = [threading.Thread(target=flood, args=('control', wire.envelope('workers', b'')))
                   for _ in range(8)]
        threads += [threading.Thread(target=flood, args=('worker', wire.envelope(
            'poll', wire.poll(worker_id='nobody')))) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            time.sleep(2)
            self.check_after('16 pipelining connections')
            self.check_job('16 pipelining connections')
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        print('hostile: the flooders sent %d requests' % sum(counts), flush=True)


if __name__ == '__main__':
    unittest.main(verbosity=2)
