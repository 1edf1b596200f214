#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fair connections, against a live coordinator: a peer speaking nng's real
SP-over-TCP framing from a raw socket (no nng on this side) tries to take a
port from everyone else, or to break it by hanging up at the worst moment,
and a real worker and hfctl must not notice.

SP over TCP: after connecting, each side sends 0x00 'S' 'P' 0x00, its
protocol id (REQ 48, REP 49) as 16 bits big-endian and two zero bytes.  Then
each message is a 64-bit big-endian length and the body; a REQ message's
body starts with a 32-bit request id whose high bit is set.

The coordinator runs with small limits (connections.* below) so that the
attacks reach them quickly; every check waits for an outcome with a
generous deadline rather than timing anything.
"""
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_pipeline import assert_exactly_once, submit, wait_job  # noqa: E402

MAX_PER_PORT = 8
PER_CONNECTION = 4
IDLE = 5        # seconds, connections.idle_timeout
REPLY = 2       # seconds, connections.reply_timeout
HANDSHAKE = 1   # seconds, connections.handshake_timeout
SP_REQ_HELLO = b'\x00SP\x00' + struct.pack('>H', 48) + b'\x00\x00'



def models_request(token):
    """Envelope{protocol_version = 2, token, models = ModelsRequest{}}: a real
    request on the control port (its reply lists every model: tens of
    kilobytes), and one the worker port answers with an Error."""
    t = token.encode()
    return b'\x08\x02' + b'\x12' + bytes([len(t)]) + t + b'\x82\x02\x00'


# Set once the cluster has its admin token (setUpClass).
MODELS_REQUEST = None


def tcp_connect(url, rcvbuf=None):
    host, port = url[len('tcp://'):].rsplit(':', 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # A small window: replies not read back up into the coordinator.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect((host, int(port)))
    return sock


def reset(sock):
    """Hangs up with a reset (SO_LINGER 0), whatever is in flight; also
    wakes a thread blocked on the socket."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def closed_by_peer(sock, timeout):
    """True once the coordinator has closed the connection (it sends
    nothing unasked, so any read that ends is the close)."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except socket.timeout:
        return False
    except OSError:  # reset
        return True


def frame(payload, rid=0x80000001):
    body = struct.pack('>I', rid) + payload
    return struct.pack('>Q', len(body)) + body


class SpPeer:
    """One REQ connection speaking SP over TCP by hand."""

    def __init__(self, url, rcvbuf=None):
        self.sock = tcp_connect(url, rcvbuf)
        self.sock.sendall(SP_REQ_HELLO)
        hdr = self.recv_exact(8)
        if hdr != b'\x00SP\x00' + struct.pack('>H', 49) + b'\x00\x00':
            raise AssertionError('not an SP REP peer: %r' % hdr)
        self.next_id = 1

    def recv_exact(self, n):
        buf = b''
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionResetError('closed by the coordinator')
            buf += chunk
        return buf

    def send(self, payload):
        rid = 0x80000000 | self.next_id
        self.next_id = (self.next_id + 1) & 0x7fffffff or 1
        body = struct.pack('>I', rid) + payload
        self.sock.sendall(struct.pack('>Q', len(body)) + body)
        return rid

    def recv(self):
        (n,) = struct.unpack('>Q', self.recv_exact(8))
        body = self.recv_exact(n)
        return struct.unpack('>I', body[:4])[0], body[4:]

    def call(self, payload):
        rid = self.send(payload)
        got, body = self.recv()
        if got != rid:
            raise AssertionError('reply to request %x, expected %x' % (got, rid))
        return body

    def closed_by_peer(self, timeout):
        return closed_by_peer(self.sock, timeout)

    def close(self):
        self.sock.close()

    def reset(self):
        reset(self.sock)


class Flooder(threading.Thread):
    """Pipelines requests on one connection as fast as the socket takes
    them, reading the replies (read_replies) or never reading them; with
    reconnect, connects again each time the coordinator closes it."""

    def __init__(self, url, read_replies, reconnect=False, pace=0.0):
        super().__init__(daemon=True)
        self.url = url
        self.read_replies = read_replies
        self.reconnect = reconnect
        self.pace = pace
        self.sent = 0
        self.replies = 0
        self.closed = 0  # times the coordinator closed us
        self.ended = threading.Event()
        self.stop = threading.Event()
        self.peer = self.connect()

    def connect(self):
        # A small receive window: replies not read back up into the coordinator.
        return SpPeer(self.url, rcvbuf=None if self.read_replies else 4096)

    def reader(self, peer):
        try:
            while True:
                peer.recv()
                self.replies += 1
        except OSError:
            pass

    def run(self):
        while not self.stop.is_set():
            if self.read_replies:
                threading.Thread(target=self.reader, args=(self.peer,), daemon=True).start()
            try:
                while not self.stop.is_set():
                    self.peer.send(MODELS_REQUEST)
                    self.sent += 1
                    if self.pace:
                        time.sleep(self.pace)
            except OSError:
                if self.stop.is_set():
                    break
                self.closed += 1
            if not self.reconnect:
                break
            self.peer.close()
            try:
                self.peer = self.connect()
            except OSError:
                time.sleep(0.1)  # refused over the cap: try again
        self.ended.set()

    def finish(self):
        """Stops and hangs up mid-traffic with a reset, as a rude peer
        would: the coordinator must not mind."""
        self.stop.set()
        while self.is_alive():
            self.peer.reset()
            self.join(0.5)
        self.peer.reset()


def cluster_with_worker(settings, slots):
    """A coordinator with settings, MODELS_REQUEST made with its admin
    token, and one registered worker w1 of slots."""
    global MODELS_REQUEST
    c = harness.Cluster(coordinator_set=settings)
    c.start_coordinator()
    with open(c.admin_token_file) as f:
        MODELS_REQUEST = models_request(f.read().strip())
    c.start_worker('w1', slots=slots)
    c.wait_for(lambda: len(c.hfctl_json('workers')) == 1, 60, 'the worker to register')
    return c


def coordinator_fds(cluster):
    return len(os.listdir('/proc/%d/fd' % cluster.coordinator.proc.pid))


class ConnectionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = cluster_with_worker((
            'connections.max_per_port=%d' % MAX_PER_PORT,
            'connections.requests_per_connection=%d' % PER_CONNECTION,
            'connections.idle_timeout=%ds' % IDLE,
            'connections.reply_timeout=%ds' % REPLY,
            'connections.handshake_timeout=%ds' % HANDSHAKE), slots=2)

    @classmethod
    def tearDownClass(cls):
        if not getattr(cls, 'all_ok', True) or os.environ.get('HF_KEEP'):
            cls.c.dump_logs()
        cls.c.close(keep=bool(os.environ.get('HF_KEEP')))

    def setUp(self):
        self.peers = []
        self._ok = False

    def tearDown(self):
        for p in self.peers:
            if isinstance(p, Flooder):
                p.finish()
            else:
                p.close()
        if not self._ok:
            type(self).all_ok = False
        # Leave the ports as we found them: every connection of this test
        # gone, so the next test starts under the cap.
        self.c.wait_for(lambda: self.c.metric('hfleet_connections', port='control') == 0 and
                        self.c.metric('hfleet_connections', port='worker') == 1, 60,
                        'the ports to have no connection of the test left')

    def test_peers_that_never_read_are_closed_and_a_worker_job_completes(self):
        # On the worker port, one that pipelines as fast as it can (read
        # only as fast as its share allows) and connects again each time it
        # is closed; on the control port, one that asks for the model list ten
        # times a second (tens of kilobytes a reply).  Neither reads.
        flood = Flooder(self.c.worker_url, read_replies=False, reconnect=True)
        unread = Flooder(self.c.control_url, read_replies=False, pace=0.1)
        self.peers.extend([flood, unread])
        flood.start()
        unread.start()
        self.c.wait_for(lambda: flood.closed >= 1, 120, 'the coordinator to close the flood')

        job, n = submit(self.c, '--models', 'bert,gpt2,t5,vit')
        sent_before = flood.sent
        wait_job(self.c, job)
        assert_exactly_once(self, self.c, job, n)
        # The job may end before the flood's next write (held polls lease
        # at once): what matters is that the flood is still served after.
        self.c.wait_for(lambda: flood.sent > sent_before, 30, 'the flood to go on sending')
        self.assertFalse(flood.ended.is_set())

        self.c.wait_for(lambda: self.c.metric('hfleet_connections_closed_total', port='worker',
                                       reason='unread_replies') >= 2, 30, 'the closes to be counted')
        self.assertGreater(self.c.metric('hfleet_connections_paused_total', port='worker'), 0)
        self.c.wait_for(unread.ended.is_set, 120, 'the coordinator to close the peer that does not read')
        self.c.wait_for(lambda: self.c.metric('hfleet_connections_closed_total', port='control',
                                       reason='unread_replies') >= 1, 30, 'the close to be counted')
        # Each kind of line at most once per 10 s.
        for line in (r'worker port: closed \d+ connections that did not take a reply within 2000 ms',
                     r'worker port: held back \d+ times connections that sent more than 4 requests',
                     r'control port: closed 1 connections that did not take a reply within 2000 ms'):
            self.c.wait_for(lambda: re.search(line, self.c.coordinator.log()), 30, 'the log line ' + line)
        # The worker is still served on the same port, hfctl on the other.
        self.assertEqual(self.c.hfctl_json('workers')[0]['connected'], True)
        self._ok = True

    def test_connections_over_the_cap_are_refused_and_idle_ones_time_out(self):
        # Hold the control port's every connection, each kept busy (a
        # request every half second, replies read) so none goes idle.
        holders = []
        for _ in range(MAX_PER_PORT):
            p = SpPeer(self.c.control_url)
            self.peers.append(p)
            self.assertTrue(p.call(MODELS_REQUEST))
            holders.append(p)
        stop = threading.Event()
        lost = []

        def keep_busy():
            while not stop.wait(0.5):
                for p in holders:
                    try:
                        p.call(MODELS_REQUEST)
                    except OSError as e:
                        lost.append(e)
                        return
        busy = threading.Thread(target=keep_busy, daemon=True)
        busy.start()

        # One more is closed on arrival, before the SP handshake.
        extra = tcp_connect(self.c.control_url)
        extra.sendall(SP_REQ_HELLO)
        self.assertTrue(closed_by_peer(extra, 60), 'the connection over the cap was not closed')
        extra.close()
        self.c.wait_for(lambda: re.search(r'control port: refused \d+ connections: %d are open'
                                          % MAX_PER_PORT, self.c.coordinator.log()), 30,
                        'the refusal to be logged')
        self.c.wait_for(lambda: self.c.metric('hfleet_connections_refused_total', port='control') >= 1, 10,
                        'the refusal to be counted')
        # hfctl is refused too while the holders keep the port.
        p = self.c.hfctl('--request-timeout', '3s', 'models', check=False)
        self.assertNotEqual(p.returncode, 0)
        stop.set()
        busy.join()
        self.assertEqual(lost, [], 'a holder under the cap lost its connection')

        # Idle now: the coordinator closes them, and hfctl gets through.
        for p in holders:
            self.assertTrue(p.closed_by_peer(60), 'an idle connection was not closed')
        self.c.wait_for(lambda: self.c.metric('hfleet_connections_closed_total', port='control',
                                       reason='idle') >= MAX_PER_PORT, 10, 'the idle closes to be counted')
        self.c.hfctl('models')
        self._ok = True

    def test_a_flood_on_the_worker_port_does_not_hold_up_hfctl(self):
        # Peers that read their replies but pipeline far past their share:
        # served at the rate the port allows, read no faster.
        floods = [Flooder(self.c.worker_url, read_replies=True) for _ in range(MAX_PER_PORT - 2)]
        self.peers.extend(floods)
        for f in floods:
            f.start()
        self.c.wait_for(lambda: all(f.replies > 100 for f in floods), 60, 'the flood to be answered')
        for _ in range(5):
            before = sum(f.replies for f in floods)
            self.c.hfctl('--request-timeout', '30s', 'models')
            self.c.hfctl('--request-timeout', '30s', 'workers')
            self.c.wait_for(lambda: sum(f.replies for f in floods) > before + 100, 60,
                            'the flood to go on')
        self.assertFalse(any(f.ended.is_set() for f in floods), 'a flood that reads was disconnected')
        self._ok = True

    def test_broken_handshakes_and_frames_are_closed_and_counted(self):
        def closes(port, data, reason):
            url = self.c.control_url if port == 'control' else self.c.worker_url
            before = self.c.metric('hfleet_connections_closed_total', port=port, reason=reason)
            s = tcp_connect(url)
            if data:
                s.sendall(data)
            self.assertTrue(closed_by_peer(s, 30), 'not closed: %r' % data[:40])
            s.close()
            # /metrics is rendered once a second.
            self.c.wait_for(lambda: self.c.metric('hfleet_connections_closed_total', port=port,
                                           reason=reason) == before + 1, 10, 'counted: %r' % data[:40])

        # No header at all (within connections.handshake_timeout), half
        # of one, a REP's, garbage.
        closes('control', b'', 'handshake')
        closes('control', SP_REQ_HELLO[:5], 'handshake')
        closes('worker', b'\x00SP\x00' + struct.pack('>H', 49) + b'\x00\x00', 'handshake')
        closes('worker', b'GET / HTTP/1.1\r\n\r\n', 'handshake')
        # A length past the port's limit (the control port takes 1 MiB),
        # a message too short for a request id, a backtrace of 9 hops
        # (nng's limit is 8) and one that never ends.
        closes('control', SP_REQ_HELLO + struct.pack('>Q', 1 << 40), 'protocol')
        closes('control', SP_REQ_HELLO + struct.pack('>Q', 2) + b'\x00\x01', 'protocol')
        hops = b''.join(struct.pack('>I', i) for i in range(1, 9))
        closes('worker', SP_REQ_HELLO + struct.pack('>Q', len(hops) + 4 + len(MODELS_REQUEST)) + hops
               + struct.pack('>I', 0x80000001) + MODELS_REQUEST, 'protocol')
        closes('worker', SP_REQ_HELLO + struct.pack('>Q', 12) + struct.pack('>III', 1, 2, 3), 'protocol')
        # A request through 2 hops (a device between) is answered with the
        # same backtrace.
        p = SpPeer(self.c.control_url)
        self.peers.append(p)
        p.sock.sendall(struct.pack('>Q', 8 + len(MODELS_REQUEST)) + struct.pack('>II', 7, 0x80000009)
                       + MODELS_REQUEST)
        (n,) = struct.unpack('>Q', p.recv_exact(8))
        body = p.recv_exact(n)
        self.assertEqual(body[:8], struct.pack('>II', 7, 0x80000009))
        self.assertIn(b'bert', body)
        self._ok = True

    def test_peers_that_hang_up_mid_pipeline_leave_nothing_behind(self):
        # Rude peers on both ports, three at a time on each: connect,
        # pipeline 200 requests, read a few replies (or none, or stop in
        # the middle of a frame) and reset the connection, 500 times or for
        # 20 s.  Every close then races the coordinator's reads and writes.
        fds_before = coordinator_fds(self.c)
        rounds = [0]
        errors = []
        lock = threading.Lock()
        deadline = time.time() + 20
        pipeline = frame(MODELS_REQUEST) * 200

        def rude(url, seed):
            rng = random.Random(seed)
            while time.time() < deadline:
                with lock:
                    if rounds[0] >= 500:
                        return
                    rounds[0] += 1
                try:
                    s = tcp_connect(url)
                    kind = rng.randrange(4)
                    if kind == 0:
                        # Half a request, then gone.
                        s.sendall(SP_REQ_HELLO + pipeline[:rng.randrange(1, 40)])
                    else:
                        s.sendall(SP_REQ_HELLO + pipeline)
                        s.settimeout(10)
                        want = 8 + rng.randrange(kind * 3)
                        got = 0
                        while got < want:
                            chunk = s.recv(want - got)
                            if not chunk:
                                break
                            got += len(chunk)
                    reset(s)
                except OSError as e:  # refused at the cap: fine, go on
                    with lock:
                        errors.append(e)
                    time.sleep(0.05)

        threads = [threading.Thread(target=rude, args=(url, i), daemon=True)
                   for i, url in enumerate([self.c.control_url, self.c.worker_url] * 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertGreaterEqual(rounds[0], 100, 'the rude peers did not get going')
        self.assertLess(len(errors), rounds[0] / 2, 'most rude connections failed: %r' % errors[:3])

        # Every rude connection gone: only the worker's is left, and the
        # coordinator's files are back where they were.
        self.c.wait_for(lambda: self.c.metric('hfleet_connections', port='control') == 0 and
                        self.c.metric('hfleet_connections', port='worker') == 1, 30,
                        'the rude connections to be gone')
        self.c.wait_for(lambda: coordinator_fds(self.c) <= fds_before + 2, 30,
                        'the coordinator\'s files to come back (%d before, %d now)'
                        % (fds_before, coordinator_fds(self.c)))
        # And it still serves: hfctl, and a worker's job.
        self.c.hfctl('models')
        job, n = submit(self.c, '--models', 'bert,gpt2')
        wait_job(self.c, job)
        assert_exactly_once(self, self.c, job, n)
        self.assertEqual(self.c.hfctl_json('workers')[0]['connected'], True)
        self._ok = True



class PortQueueTest(unittest.TestCase):
    """More connections than the worker port's requests in flight
    (coordinator.worker_contexts): the ones that wait are resumed in turn
    from the port's queue (hf_spconn.c, port_resume), none is stranded, one
    that hangs up while waiting leaves the queue, and a real worker's polls
    go on."""

    CONTEXTS = 2
    FLOODERS = 10

    @classmethod
    def setUpClass(cls):
        cls.c = cluster_with_worker((
            'coordinator.worker_contexts=%d' % cls.CONTEXTS,
            'connections.max_per_port=%d' % (cls.FLOODERS + 4),
            'connections.requests_per_connection=%d' % PER_CONNECTION), slots=1)

    @classmethod
    def tearDownClass(cls):
        if not getattr(cls, 'ok', False) or os.environ.get('HF_KEEP'):
            cls.c.dump_logs()
        cls.c.close(keep=bool(os.environ.get('HF_KEEP')))

    def test_connections_waiting_for_the_port_are_all_served_in_turn(self):
        floods = [Flooder(self.c.worker_url, read_replies=True) for _ in range(self.FLOODERS)]
        try:
            for f in floods:
                f.start()
            self.c.wait_for(lambda: all(f.replies > 50 for f in floods), 60,
                            'every waiting connection to be answered')
            # Half hang up (with a reset) mid-flood, some of them while
            # waiting for the port; the others go on, every one of them.
            for f in floods[:self.FLOODERS // 2]:
                f.finish()
            before = [f.replies for f in floods]
            self.c.wait_for(lambda: all(f.replies > b + 50 for f, b in zip(floods, before)
                                        if not f.stop.is_set()), 60,
                            'each remaining connection to be answered again')
            self.assertFalse(any(f.ended.is_set() for f in floods[self.FLOODERS // 2:]),
                             'a flood that reads was disconnected')
            self.assertTrue(self.c.hfctl_json('workers')[0]['connected'])
        finally:
            for f in floods:
                f.finish()
        # Every flood connection gone (none left behind in the port's
        # queue): only the worker's is open, and it still polls.
        self.c.wait_for(lambda: self.c.metric('hfleet_connections', port='worker') == 1, 30,
                        'the flood connections to be gone')
        job, n = submit(self.c, '--models', 'bert')
        wait_job(self.c, job)
        assert_exactly_once(self, self.c, job, n)
        type(self).ok = True


if __name__ == '__main__':
    unittest.main(verbosity=2)
