/* SPDX-License-Identifier: MIT
 *
 * The listening side of the nng-to-libuv bridge (nuv_server_*, nuv_reply;
 * see hf_nuv.h): the REP end of the SP protocol, spoken here over nng's
 * stream API rather than through an nng REP socket.
 *
 * Why: nng 1.5.2's TCP transport (Debian 12) can start a read or a write
 * on a pipe that was closed meanwhile, which wedges its pipe reaper for
 * good (fixed in nng 1.6.0); a peer that hangs up while busy triggers it.
 * The stream layer below the transport has no such callback of its own:
 * code that never issues I/O on a stream after closing it, as this file,
 * avoids the bug whatever the peer does.
 *
 * The wire (what nng's REQ sockets speak): each side first sends 8 bytes,
 * 0x00 'S' 'P' 0x00, its protocol id (REQ 0x0030, REP 0x0031) big-endian,
 * two zero bytes.  Then every message is a frame: on TCP an 8-byte
 * big-endian length and the body; on IPC a type byte (1) first.  A
 * request's body starts with its backtrace, 4-byte big-endian words of
 * which the last (and for a direct peer the only one) has its high bit
 * set; the reply carries the same words before its payload.
 *
 * What this file owns: the listener and its accept aio, the connections
 * (each a stream with one receive and one send aio), the requests from
 * their receipt to their reply's last byte written (or their drop), and
 * the counters.
 *
 * Threads.  nng runs the aio callbacks (accept_cb, conn_rx_cb, conn_tx_cb)
 * on its own threads.  They hold the server's mutex mu for all they do:
 * move bytes into buffers, start the next read or write, put a complete
 * request on the hand-off queue and wake the loop with uv_async_send.
 * Everything else runs on the loop thread, also under mu where it touches
 * a connection.  I/O on a connection is started only under mu and only
 * while its closed flag is clear; closing (conn_close) sets the flag under
 * mu, and the loop then closes the stream, stops both aios (waiting for a
 * callback in progress, which finds the flag set and starts nothing) and
 * frees the stream (conn_reap).  nng never calls our callbacks from inside
 * the calls we make under mu (they are dispatched to its task threads),
 * so holding mu across them cannot deadlock.
 */
#include "hf_nuv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hf_log.h"
#include "hf_util.h"

#define SP_HELLO_LEN 8
#define SP_PROTO_REQ 0x0030
#define SP_PROTO_REP 0x0031
/* Backtrace words a request may carry: nng's default TTL (8 hops). */
#define SP_MAX_HOPS 8
/* The largest frame head: IPC's type byte and length. */
#define SP_HEAD_MAX 9
/* nng's default receive limit, used when the caller gives none. */
#define SERVER_RECV_MAX_DEFAULT (1024 * 1024)
/* A body is read into a buffer that grows as bytes arrive, from this size,
 * so that a peer claiming a large message holds only what it has sent. */
#define RX_FIRST_CHUNK (64 * 1024)
/* An accept that failed (no files left, ...) is retried after this long. */
#define ACCEPT_RETRY_MS 100
/* How often the counters of refused and closed connections may be logged:
 * a flood makes one line per interval, with the count. */
#define SERVER_LOG_INTERVAL_MS 10000

const struct nuv_server_limits nuv_server_limits_default = {
	.name = "server",
	.max_connections = 1024,
	.requests_per_connection = 4,
	.idle_timeout_ms = 60000,
	.reply_timeout_ms = 10000,
	.handshake_timeout_ms = 5000,
};

/* Where a connection's reading stands. */
enum rx_state {
	RX_HELLO,  /* the peer's 8-byte SP header */
	RX_HEAD,   /* a frame's head (length) */
	RX_BODY,   /* a frame's body */
	RX_PAUSED, /* between requests, waiting for its share or the port's */
};

enum close_reason { CLOSE_PEER, CLOSE_SERVER, CLOSE_IDLE, CLOSE_UNREAD, CLOSE_HANDSHAKE, CLOSE_PROTOCOL };

struct spconn;

/* A request, from receipt until its reply is written or it is dropped.
 * msg is the request until it is handed to the loop's callback, then the
 * reply once nuv_reply queues it. */
struct nuv_request {
	nuv_server_t *srv;
	struct spconn *conn;
	nng_msg *msg;
	uint8_t head[SP_HEAD_MAX]; /* the reply's frame head */
	uint8_t bt[SP_MAX_HOPS * 4];
	size_t bt_len;
	struct nuv_request *next;             /* hand-off queue or send queue */
	struct nuv_request *prev_live, *next_live; /* the server's live list */
};

/* One connection.  Fields after the aios are under srv->mu. */
struct spconn {
	nuv_server_t *srv;
	nng_stream *stream;
	nng_aio *rx_aio, *tx_aio;

	struct spconn *prev, *next; /* open list; next also links the reap list */
	bool closed;    /* set once, by conn_close: no I/O is started after it */
	bool reaped;    /* stream and aios freed; freed itself at outstanding 0 */
	bool hello_in, hello_out; /* the peer's header read, ours written */
	bool rx_busy, tx_busy;    /* an aio is in flight */
	bool at_share;      /* paused: requests_per_connection unanswered */
	bool waiting_port;  /* paused: the port has its most requests in flight */
	unsigned outstanding; /* requests received, reply not yet written */

	enum rx_state rx;
	uint8_t rx_head[SP_HELLO_LEN > SP_HEAD_MAX ? SP_HELLO_LEN : SP_HEAD_MAX];
	size_t rx_got;
	uint64_t rx_len;
	nng_msg *rx_msg;

	struct nuv_request *tx_first, *tx_last; /* replies to write, in order */
	size_t tx_off;      /* bytes of the first (or of our header) written */
	int64_t tx_since_ms; /* when the first reply started */

	int64_t accepted_ms, last_request_ms;
	char addr[64];
};

struct nuv_server {
	uv_loop_t *loop;
	nng_stream_listener *listener;
	nng_aio *accept_aio;
	size_t head_len; /* frame head: 8 on TCP, 9 on IPC */
	size_t recv_max;
	unsigned max_in_flight;
	nuv_request_cb cb;
	void *arg;
	uv_async_t async;
	uv_timer_t tick;  /* timeouts and log lines */
	int open_handles; /* async and tick, until their close callbacks */
	bool closing;     /* written under mu on the loop; read by callbacks under mu */

	pthread_mutex_t mu;
	bool accept_sleeping; /* accept_aio is a retry's sleep */
	int accept_error;     /* the last accept failure (nng), for the log */
	struct spconn *first, *last; /* open connections, oldest first */
	struct spconn *reap;         /* closed, waiting for the loop */
	struct nuv_request *q_first, *q_last; /* received, waiting for the loop */
	struct nuv_request *live;    /* every request not yet freed */
	unsigned in_flight, n_waiting;
	struct nuv_server_limits lim;
	char name[48];
	struct nuv_server_stats stats;
	uint64_t accept_failures;
	char last_refused[64], last_at_share[64], last_unread[64], last_bad[64];

	/* Loop thread: the counters as last logged. */
	struct nuv_server_stats logged;
	uint64_t logged_accept_failures;
	int64_t logged_ms;
};

static const uint8_t sp_rep_hello[SP_HELLO_LEN] = { 0, 'S', 'P', 0, SP_PROTO_REP >> 8, SP_PROTO_REP & 0xff, 0, 0 };

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void stream_addr(nng_stream *s, char *buf, size_t len)
{
	nng_sockaddr sa;
	char ip[INET6_ADDRSTRLEN];

	snprintf(buf, len, "a local peer");
	if (nng_stream_get_addr(s, NNG_OPT_REMADDR, &sa) != 0)
		return;
	if (sa.s_family == NNG_AF_INET && inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "%s:%u", ip, ntohs(sa.s_in.sa_port));
	else if (sa.s_family == NNG_AF_INET6 && inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "[%s]:%u", ip, ntohs(sa.s_in6.sa_port));
}

/* ---- closing (under mu) ---- */

static void open_unlink(nuv_server_t *srv, struct spconn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		srv->last = c->prev;
	c->prev = c->next = NULL;
}

static void open_append(nuv_server_t *srv, struct spconn *c)
{
	c->prev = srv->last;
	c->next = NULL;
	if (srv->last)
		srv->last->next = c;
	else
		srv->first = c;
	srv->last = c;
}

/* The one way a connection ends: from now on nothing starts I/O on it, and
 * the loop reaps it (conn_reap).  Any thread, under mu. */
static void conn_close(struct spconn *c, enum close_reason why)
{
	nuv_server_t *srv = c->srv;

	if (c->closed)
		return;
	c->closed = true;
	switch (why) {
	case CLOSE_IDLE:
		srv->stats.closed_idle++;
		break;
	case CLOSE_UNREAD:
		srv->stats.closed_unread++;
		memcpy(srv->last_unread, c->addr, sizeof(c->addr));
		break;
	case CLOSE_HANDSHAKE:
		srv->stats.closed_handshake++;
		memcpy(srv->last_bad, c->addr, sizeof(c->addr));
		break;
	case CLOSE_PROTOCOL:
		srv->stats.closed_protocol++;
		memcpy(srv->last_bad, c->addr, sizeof(c->addr));
		break;
	case CLOSE_PEER:
	case CLOSE_SERVER:
		break;
	}
	if (c->waiting_port) {
		c->waiting_port = false;
		srv->n_waiting--;
	}
	open_unlink(srv, c);
	srv->stats.connections_open--;
	c->next = srv->reap;
	srv->reap = c;
	if (!srv->closing)
		uv_async_send(&srv->async);
}

/* ---- reading (under mu) ---- */

static void conn_rx_start(struct spconn *c)
{
	nng_iov iov;

	switch (c->rx) {
	case RX_HELLO:
		iov.iov_buf = c->rx_head + c->rx_got;
		iov.iov_len = SP_HELLO_LEN - c->rx_got;
		break;
	case RX_HEAD:
		iov.iov_buf = c->rx_head + c->rx_got;
		iov.iov_len = c->srv->head_len - c->rx_got;
		break;
	case RX_BODY:
		iov.iov_buf = (uint8_t *)nng_msg_body(c->rx_msg) + c->rx_got;
		iov.iov_len = nng_msg_len(c->rx_msg) - c->rx_got;
		break;
	default:
		return;
	}
	c->rx_busy = true;
	nng_aio_set_iov(c->rx_aio, 1, &iov);
	nng_stream_recv(c->stream, c->rx_aio);
}

/* A paused connection reads its next request if its share and the port
 * allow.  The port's bound is checked when reading starts, so it is
 * exceeded by at most the connections reading at that moment. */
static void conn_rx_next(struct spconn *c)
{
	nuv_server_t *srv = c->srv;

	if (c->closed || c->rx != RX_PAUSED || !c->hello_in)
		return;
	if (c->outstanding >= srv->lim.requests_per_connection) {
		if (!c->at_share) {
			c->at_share = true;
			srv->stats.paused_at_share++;
			memcpy(srv->last_at_share, c->addr, sizeof(c->addr));
		}
		return;
	}
	c->at_share = false;
	if (srv->in_flight >= srv->max_in_flight) {
		if (!c->waiting_port) {
			c->waiting_port = true;
			srv->n_waiting++;
		}
		return;
	}
	if (c->waiting_port) {
		c->waiting_port = false;
		srv->n_waiting--;
	}
	c->rx = RX_HEAD;
	c->rx_got = 0;
	conn_rx_start(c);
}

/* The port has room again: connections waiting for it read in turn (each
 * resumed goes to the end of the list, so none is always first). */
static void port_resume(nuv_server_t *srv)
{
	unsigned room = srv->max_in_flight > srv->in_flight ? srv->max_in_flight - srv->in_flight : 0;

	while (room > 0 && srv->n_waiting > 0) {
		struct spconn *c = srv->first;
		while (c && !c->waiting_port)
			c = c->next;
		if (!c)
			break;
		open_unlink(srv, c);
		open_append(srv, c);
		conn_rx_next(c);
		room--;
	}
}

/* A whole frame is in c->rx_msg: check its backtrace and hand it to the
 * loop.  False when the connection must be closed. */
static bool conn_request(struct spconn *c)
{
	nuv_server_t *srv = c->srv;
	nng_msg *msg = c->rx_msg;
	const uint8_t *body = nng_msg_body(msg);
	size_t len = nng_msg_len(msg), bt_len = 0;
	struct nuv_request *r;

	c->rx_msg = NULL;
	for (;;) {
		if (bt_len + 4 > len || bt_len == SP_MAX_HOPS * 4) {
			nng_msg_free(msg);
			return false;
		}
		bt_len += 4;
		if (body[bt_len - 4] & 0x80)
			break;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		nng_msg_free(msg);
		return false;
	}
	r->srv = srv;
	r->conn = c;
	memcpy(r->bt, body, bt_len);
	r->bt_len = bt_len;
	nng_msg_trim(msg, bt_len);
	r->msg = msg;
	r->next_live = srv->live;
	if (srv->live)
		srv->live->prev_live = r;
	srv->live = r;
	if (srv->q_last)
		srv->q_last->next = r;
	else
		srv->q_first = r;
	srv->q_last = r;
	c->outstanding++;
	srv->in_flight++;
	c->last_request_ms = hf_mono_ms();
	uv_async_send(&srv->async);
	return true;
}

/* nng's threads: a read completed. */
static void conn_rx_cb(void *arg)
{
	struct spconn *c = arg;
	nuv_server_t *srv = c->srv;
	int rv = nng_aio_result(c->rx_aio);
	size_t want;

	pthread_mutex_lock(&srv->mu);
	c->rx_busy = false;
	if (c->closed)
		goto out;
	if (rv != 0) {
		conn_close(c, CLOSE_PEER); /* hung up, reset, ... */
		goto out;
	}
	c->rx_got += nng_aio_count(c->rx_aio);
	switch (c->rx) {
	case RX_HELLO:
		if (c->rx_got < SP_HELLO_LEN)
			break;
		if (memcmp(c->rx_head, "\0SP\0", 4) != 0 || c->rx_head[4] != SP_PROTO_REQ >> 8 ||
		    c->rx_head[5] != (SP_PROTO_REQ & 0xff) || c->rx_head[6] != 0 || c->rx_head[7] != 0) {
			conn_close(c, CLOSE_HANDSHAKE);
			goto out;
		}
		c->hello_in = true;
		c->rx = RX_PAUSED;
		conn_rx_next(c);
		goto out;
	case RX_HEAD:
		if (c->rx_got < srv->head_len)
			break;
		/* IPC frames start with the message type, 1. */
		if (srv->head_len == 9 && c->rx_head[0] != 1) {
			conn_close(c, CLOSE_PROTOCOL);
			goto out;
		}
		c->rx_len = get_be64(c->rx_head + srv->head_len - 8);
		if (c->rx_len < 4 || c->rx_len > srv->recv_max) {
			conn_close(c, CLOSE_PROTOCOL);
			goto out;
		}
		want = c->rx_len < RX_FIRST_CHUNK ? (size_t)c->rx_len : RX_FIRST_CHUNK;
		if (nng_msg_alloc(&c->rx_msg, want) != 0) {
			log_error("%s: out of memory reading a request from %s", srv->name, c->addr);
			conn_close(c, CLOSE_PEER);
			goto out;
		}
		c->rx = RX_BODY;
		c->rx_got = 0;
		break;
	case RX_BODY:
		if (c->rx_got == nng_msg_len(c->rx_msg) && c->rx_got < c->rx_len) {
			/* Grow (at least double) only once the bytes came. */
			want = c->rx_got * 2 < c->rx_len ? c->rx_got * 2 : (size_t)c->rx_len;
			if (nng_msg_realloc(c->rx_msg, want) != 0) {
				log_error("%s: out of memory reading a request from %s", srv->name, c->addr);
				conn_close(c, CLOSE_PEER);
				goto out;
			}
		}
		if (c->rx_got < c->rx_len)
			break;
		c->rx = RX_PAUSED;
		if (!conn_request(c)) {
			conn_close(c, CLOSE_PROTOCOL);
			goto out;
		}
		conn_rx_next(c);
		goto out;
	case RX_PAUSED:
		goto out;
	}
	conn_rx_start(c);
out:
	pthread_mutex_unlock(&srv->mu);
}

/* ---- writing (under mu) ---- */

/* Writes what is left of our SP header or of the first reply. */
static void conn_tx_start(struct spconn *c)
{
	nng_iov iov[3];
	unsigned n = 0;
	size_t off = c->tx_off;

	if (!c->hello_out) {
		iov[n].iov_buf = (void *)(sp_rep_hello + off);
		iov[n++].iov_len = SP_HELLO_LEN - off;
	} else {
		struct nuv_request *r = c->tx_first;
		struct {
			void *buf;
			size_t len;
		} part[3] = {
			{ r->head, c->srv->head_len },
			{ r->bt, r->bt_len },
			{ nng_msg_body(r->msg), nng_msg_len(r->msg) },
		};
		for (int i = 0; i < 3; i++) {
			if (off >= part[i].len) {
				off -= part[i].len;
				continue;
			}
			iov[n].iov_buf = (uint8_t *)part[i].buf + off;
			iov[n++].iov_len = part[i].len - off;
			off = 0;
		}
	}
	c->tx_busy = true;
	nng_aio_set_iov(c->tx_aio, n, iov);
	nng_stream_send(c->stream, c->tx_aio);
}

static void request_unlink(nuv_server_t *srv, struct nuv_request *r)
{
	if (r->prev_live)
		r->prev_live->next_live = r->next_live;
	else
		srv->live = r->next_live;
	if (r->next_live)
		r->next_live->prev_live = r->prev_live;
}

/* r is done: its reply written, dropped, or its connection gone.  Frees
 * it, lets its connection read on, and frees a reaped connection with
 * nothing left outstanding.  Any thread, under mu. */
static void request_finish(struct nuv_request *r)
{
	nuv_server_t *srv = r->srv;
	struct spconn *c = r->conn;

	nng_msg_free(r->msg);
	request_unlink(srv, r);
	free(r);
	c->outstanding--;
	srv->in_flight--;
	if (!c->closed)
		conn_rx_next(c);
	else if (c->reaped && c->outstanding == 0)
		free(c);
	if (srv->n_waiting > 0)
		port_resume(srv);
}

/* nng's threads: a write completed. */
static void conn_tx_cb(void *arg)
{
	struct spconn *c = arg;
	nuv_server_t *srv = c->srv;
	int rv = nng_aio_result(c->tx_aio);

	pthread_mutex_lock(&srv->mu);
	c->tx_busy = false;
	if (c->closed)
		goto out;
	if (rv != 0) {
		conn_close(c, CLOSE_PEER);
		goto out;
	}
	c->tx_off += nng_aio_count(c->tx_aio);
	if (!c->hello_out) {
		if (c->tx_off < SP_HELLO_LEN) {
			conn_tx_start(c);
			goto out;
		}
		c->hello_out = true;
	} else {
		struct nuv_request *r = c->tx_first;
		if (c->tx_off < srv->head_len + r->bt_len + nng_msg_len(r->msg)) {
			conn_tx_start(c);
			goto out;
		}
		c->tx_first = r->next;
		if (!c->tx_first)
			c->tx_last = NULL;
		request_finish(r);
		if (c->closed)
			goto out;
	}
	c->tx_off = 0;
	if (c->tx_first) {
		c->tx_since_ms = hf_mono_ms();
		conn_tx_start(c);
	}
out:
	pthread_mutex_unlock(&srv->mu);
}

/* ---- accepting ---- */

/* nng's threads, under mu: a new connection, or NULL with the stream
 * closed and freed when there is no memory for it. */
static struct spconn *conn_new(nuv_server_t *srv, nng_stream *s)
{
	struct spconn *c = calloc(1, sizeof(*c));

	if (!c || nng_aio_alloc(&c->rx_aio, conn_rx_cb, c) != 0 ||
	    nng_aio_alloc(&c->tx_aio, conn_tx_cb, c) != 0) {
		if (c) {
			nng_aio_free(c->rx_aio);
			free(c);
		}
		nng_stream_free(s);
		return NULL;
	}
	c->srv = srv;
	c->stream = s;
	c->accepted_ms = c->last_request_ms = hf_mono_ms();
	c->rx = RX_HELLO;
	stream_addr(s, c->addr, sizeof(c->addr));
	return c;
}

static void accept_start(nuv_server_t *srv)
{
	nng_stream_listener_accept(srv->listener, srv->accept_aio);
}

/* nng's threads: a connection arrived, an accept failed, or the pause
 * after a failure is over. */
static void accept_cb(void *arg)
{
	nuv_server_t *srv = arg;
	int rv = nng_aio_result(srv->accept_aio);
	nng_stream *s = rv == 0 ? nng_aio_get_output(srv->accept_aio, 0) : NULL;
	struct spconn *c;

	pthread_mutex_lock(&srv->mu);
	if (srv->closing || rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		pthread_mutex_unlock(&srv->mu);
		if (s)
			nng_stream_free(s);
		return;
	}
	if (srv->accept_sleeping) {
		srv->accept_sleeping = false;
		accept_start(srv);
		goto out;
	}
	if (rv != 0) {
		/* Out of files, most likely: the listener stays readable,
		 * so wait a little rather than spin. */
		srv->accept_failures++;
		srv->accept_error = rv;
		srv->accept_sleeping = true;
		nng_sleep_aio(ACCEPT_RETRY_MS, srv->accept_aio);
		goto out;
	}
	if (srv->stats.connections_open >= srv->lim.max_connections) {
		srv->stats.refused_over_cap++;
		stream_addr(s, srv->last_refused, sizeof(srv->last_refused));
		nng_stream_free(s); /* no I/O was ever started on it */
	} else if ((c = conn_new(srv, s)) != NULL) {
		open_append(srv, c);
		srv->stats.connections_open++;
		/* Both headers at once: ours out, the peer's in. */
		conn_tx_start(c);
		conn_rx_start(c);
	} else {
		srv->accept_failures++;
		srv->accept_error = NNG_ENOMEM;
	}
	accept_start(srv);
out:
	pthread_mutex_unlock(&srv->mu);
}

/* ---- the loop's side ---- */

/* Loop thread: frees the streams and aios of the connections closed so
 * far; a connection whose requests are all done is freed too, the others
 * when their last request is (request_finish). */
static void server_reap(nuv_server_t *srv)
{
	struct spconn *list;

	pthread_mutex_lock(&srv->mu);
	list = srv->reap;
	srv->reap = NULL;
	pthread_mutex_unlock(&srv->mu);

	while (list) {
		struct spconn *c = list;
		list = c->next;
		/* closed is set: a callback in progress starts nothing, and
		 * nng_aio_stop waits for it and cancels what is pending. */
		nng_stream_close(c->stream);
		nng_aio_stop(c->rx_aio);
		nng_aio_stop(c->tx_aio);
		nng_stream_free(c->stream);
		nng_aio_free(c->rx_aio);
		nng_aio_free(c->tx_aio);
		c->stream = NULL;
		c->rx_aio = c->tx_aio = NULL;

		pthread_mutex_lock(&srv->mu);
		nng_msg_free(c->rx_msg);
		c->rx_msg = NULL;
		while (c->tx_first) {
			struct nuv_request *r = c->tx_first;
			c->tx_first = r->next;
			request_finish(r);
		}
		c->tx_last = NULL;
		c->reaped = true;
		if (c->outstanding == 0)
			free(c);
		pthread_mutex_unlock(&srv->mu);
	}
}

static void server_async_cb(uv_async_t *h)
{
	nuv_server_t *srv = h->data;
	struct nuv_request *list;

	server_reap(srv);
	pthread_mutex_lock(&srv->mu);
	list = srv->q_first;
	srv->q_first = srv->q_last = NULL;
	pthread_mutex_unlock(&srv->mu);

	while (list && !srv->closing) {
		struct nuv_request *r = list;
		nng_msg *msg = r->msg;
		bool gone;

		list = r->next;
		r->next = NULL;
		pthread_mutex_lock(&srv->mu);
		gone = r->conn->closed;
		if (gone)
			request_finish(r);
		else
			r->msg = NULL; /* the callee's now */
		pthread_mutex_unlock(&srv->mu);
		if (!gone)
			srv->cb(r, msg, srv->arg);
	}
	/* Closed from a callback: what is left is freed with the server. */
}

/* Loop thread: one line per kind of refusal that happened since the last
 * line, at most once per SERVER_LOG_INTERVAL_MS. */
static void server_log(nuv_server_t *srv, int64_t now)
{
	struct nuv_server_stats s;
	struct nuv_server_limits lim;
	char refused[64], at_share[64], unread[64], bad[64];
	uint64_t accept_failures;
	int accept_error;

	if (srv->logged_ms != 0 && now - srv->logged_ms < SERVER_LOG_INTERVAL_MS)
		return;
	pthread_mutex_lock(&srv->mu);
	s = srv->stats;
	lim = srv->lim;
	accept_failures = srv->accept_failures;
	accept_error = srv->accept_error;
	memcpy(refused, srv->last_refused, sizeof(refused));
	memcpy(at_share, srv->last_at_share, sizeof(at_share));
	memcpy(unread, srv->last_unread, sizeof(unread));
	memcpy(bad, srv->last_bad, sizeof(bad));
	pthread_mutex_unlock(&srv->mu);

	if (s.refused_over_cap != srv->logged.refused_over_cap)
		log_warn("%s: refused %" PRIu64 " connections: %u are open, the most allowed (the last from %s)",
			 srv->name, s.refused_over_cap - srv->logged.refused_over_cap, lim.max_connections,
			 refused);
	if (s.paused_at_share != srv->logged.paused_at_share)
		log_warn("%s: held back %" PRIu64 " times connections that sent more than %u requests "
			 "before reading the replies (the last from %s)",
			 srv->name, s.paused_at_share - srv->logged.paused_at_share, lim.requests_per_connection,
			 at_share);
	if (s.closed_unread != srv->logged.closed_unread)
		log_warn("%s: closed %" PRIu64 " connections that did not take a reply within %" PRId64
			 " ms (the last from %s)",
			 srv->name, s.closed_unread - srv->logged.closed_unread, lim.reply_timeout_ms, unread);
	if (s.closed_handshake != srv->logged.closed_handshake ||
	    s.closed_protocol != srv->logged.closed_protocol)
		log_warn("%s: closed %" PRIu64 " connections that sent no SP REQ header within %" PRId64
			 " ms or a bad one, and %" PRIu64 " that broke the framing (the last from %s)",
			 srv->name, s.closed_handshake - srv->logged.closed_handshake, lim.handshake_timeout_ms,
			 s.closed_protocol - srv->logged.closed_protocol, bad);
	if (s.closed_idle != srv->logged.closed_idle)
		log_info("%s: closed %" PRIu64 " connections that sent no request for %" PRId64 " ms",
			 srv->name, s.closed_idle - srv->logged.closed_idle, lim.idle_timeout_ms);
	if (accept_failures != srv->logged_accept_failures)
		log_warn("%s: could not accept %" PRIu64 " connections: %s", srv->name,
			 accept_failures - srv->logged_accept_failures, nng_strerror(accept_error));
	if (memcmp(&s, &srv->logged, sizeof(s)) != 0 || accept_failures != srv->logged_accept_failures) {
		srv->logged = s;
		srv->logged_accept_failures = accept_failures;
		srv->logged_ms = now;
	}
}

/* Loop thread: closes connections past a timeout.  A connection with a
 * request unanswered, or waiting for the port, is not idle: the wait is
 * the server's. */
static void server_tick_cb(uv_timer_t *h)
{
	nuv_server_t *srv = h->data;
	int64_t now = hf_mono_ms();

	if (srv->closing)
		return;
	pthread_mutex_lock(&srv->mu);
	for (struct spconn *c = srv->first, *next; c; c = next) {
		next = c->next;
		if (!(c->hello_in && c->hello_out)) {
			if (now - c->accepted_ms >= srv->lim.handshake_timeout_ms)
				conn_close(c, CLOSE_HANDSHAKE);
		} else if (c->tx_first) {
			if (now - c->tx_since_ms >= srv->lim.reply_timeout_ms)
				conn_close(c, CLOSE_UNREAD);
		} else if (c->outstanding == 0 && !c->waiting_port &&
			   now - c->last_request_ms >= srv->lim.idle_timeout_ms) {
			conn_close(c, CLOSE_IDLE);
		}
	}
	pthread_mutex_unlock(&srv->mu);
	server_reap(srv);
	server_log(srv, now);
}

static void server_tick_start(nuv_server_t *srv)
{
	/* A quarter of the shortest timeout, between 100 ms and 1 s: a
	 * connection is closed within 1.25 timeouts (or one second more), at
	 * the cost of one pass over the connections per tick. */
	int64_t t = srv->lim.idle_timeout_ms, period;

	if (srv->lim.reply_timeout_ms < t)
		t = srv->lim.reply_timeout_ms;
	if (srv->lim.handshake_timeout_ms < t)
		t = srv->lim.handshake_timeout_ms;
	period = t / 4;
	if (period < 100)
		period = 100;
	if (period > 1000)
		period = 1000;
	uv_timer_start(&srv->tick, server_tick_cb, (uint64_t)period, (uint64_t)period);
}

int nuv_server_limit(nuv_server_t *srv, const struct nuv_server_limits *lim)
{
	if (lim->max_connections == 0 || lim->requests_per_connection == 0 || lim->idle_timeout_ms <= 0 ||
	    lim->reply_timeout_ms <= 0 || lim->handshake_timeout_ms <= 0)
		return -EINVAL;
	pthread_mutex_lock(&srv->mu);
	srv->lim = *lim;
	snprintf(srv->name, sizeof(srv->name), "%s", lim->name ? lim->name : "server");
	srv->lim.name = srv->name;
	pthread_mutex_unlock(&srv->mu);
	if (!srv->closing)
		server_tick_start(srv);
	return 0;
}

void nuv_server_stats(nuv_server_t *srv, struct nuv_server_stats *ret_stats)
{
	pthread_mutex_lock(&srv->mu);
	*ret_stats = srv->stats;
	pthread_mutex_unlock(&srv->mu);
}

/* The frame head of the transports whose streams nng gives us.  tls+tcp
 * frames as tcp does; it needs a TLS configuration on the listener
 * (NNG_OPT_TLS_CONFIG) before it can be offered here. */
static int url_head_len(const char *url, size_t *ret_len)
{
	static const struct {
		const char *scheme;
		size_t head_len;
	} schemes[] = {
		{ "tcp://", 8 }, { "tcp4://", 8 }, { "tcp6://", 8 }, { "ipc://", 9 }, { "abstract://", 9 },
	};

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)) == 0) {
			*ret_len = schemes[i].head_len;
			return 0;
		}
	}
	return -EINVAL;
}

int nuv_server_open(uv_loop_t *loop, const char *url, unsigned nctx, size_t recv_max,
		    nuv_request_cb cb, void *arg, nuv_server_t **ret_srv)
{
	nuv_server_t *srv;
	size_t head_len;
	int rv;

	if (nctx == 0 || url_head_len(url, &head_len) < 0)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->loop = loop;
	srv->cb = cb;
	srv->arg = arg;
	srv->head_len = head_len;
	srv->recv_max = recv_max ? recv_max : SERVER_RECV_MAX_DEFAULT;
	srv->max_in_flight = nctx;
	srv->lim = nuv_server_limits_default;
	snprintf(srv->name, sizeof(srv->name), "%s", url);
	srv->lim.name = srv->name;
	pthread_mutex_init(&srv->mu, NULL);

	rv = nng_stream_listener_alloc(&srv->listener, url);
	if (rv != 0)
		goto fail;
	/* Keepalive finds peers that vanished without a FIN (half-open); the
	 * idle timeout bounds them sooner.  IPC has neither option. */
	(void)nng_stream_listener_set_bool(srv->listener, NNG_OPT_TCP_KEEPALIVE, true);
	(void)nng_stream_listener_set_bool(srv->listener, NNG_OPT_TCP_NODELAY, true);
	rv = nng_stream_listener_listen(srv->listener);
	if (rv == 0)
		rv = nng_aio_alloc(&srv->accept_aio, accept_cb, srv);
	if (rv != 0)
		goto fail;

	uv_async_init(loop, &srv->async, server_async_cb);
	srv->async.data = srv;
	uv_timer_init(loop, &srv->tick);
	srv->tick.data = srv;
	srv->open_handles = 2;
	server_tick_start(srv);
	pthread_mutex_lock(&srv->mu);
	accept_start(srv);
	pthread_mutex_unlock(&srv->mu);
	*ret_srv = srv;
	return 0;

fail:
	nng_stream_listener_free(srv->listener);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
	return nuv_errno(rv);
}

void nuv_reply(nuv_request_t *r, nng_msg *reply)
{
	nuv_server_t *srv = r->srv;
	struct spconn *c = r->conn;
	size_t len;

	if (srv->closing) {
		/* r is freed with the server. */
		nng_msg_free(reply);
		return;
	}
	pthread_mutex_lock(&srv->mu);
	if (!reply || c->closed) {
		nng_msg_free(reply);
		request_finish(r);
		goto out;
	}
	r->msg = reply;
	len = r->bt_len + nng_msg_len(reply);
	if (srv->head_len == 9)
		r->head[0] = 1;
	put_be64(r->head + srv->head_len - 8, len);
	r->next = NULL;
	if (c->tx_last) {
		c->tx_last->next = r;
		c->tx_last = r;
	} else {
		c->tx_first = c->tx_last = r;
		c->tx_since_ms = hf_mono_ms();
		/* Our header may still be on its way: its completion starts
		 * this reply. */
		if (!c->tx_busy) {
			c->tx_off = 0;
			conn_tx_start(c);
		}
	}
out:
	pthread_mutex_unlock(&srv->mu);
}

static void server_free_cb(uv_handle_t *h)
{
	nuv_server_t *srv = h->data;

	if (--srv->open_handles > 0)
		return;
	/* The requests the caller never answered, and their connections. */
	while (srv->live) {
		/* msg is NULL once delivered (the callee's), else a
		 * request delivery never reached. */
		request_finish(srv->live);
	}
	pthread_mutex_destroy(&srv->mu);
	free(srv);
}

void nuv_server_close(nuv_server_t *srv)
{
	struct nuv_request *list;

	if (!srv)
		return;
	pthread_mutex_lock(&srv->mu);
	srv->closing = true;
	pthread_mutex_unlock(&srv->mu);
	uv_timer_stop(&srv->tick);
	nng_stream_listener_close(srv->listener);
	nng_aio_stop(srv->accept_aio); /* no new connection after this */

	pthread_mutex_lock(&srv->mu);
	while (srv->first)
		conn_close(srv->first, CLOSE_SERVER);
	pthread_mutex_unlock(&srv->mu);
	server_reap(srv);

	/* Requests received but not yet delivered. */
	pthread_mutex_lock(&srv->mu);
	list = srv->q_first;
	srv->q_first = srv->q_last = NULL;
	while (list) {
		struct nuv_request *r = list;
		list = r->next;
		request_finish(r);
	}
	pthread_mutex_unlock(&srv->mu);

	nng_aio_free(srv->accept_aio);
	nng_stream_listener_free(srv->listener);
	uv_close((uv_handle_t *)&srv->async, server_free_cb);
	uv_close((uv_handle_t *)&srv->tick, server_free_cb);
}
