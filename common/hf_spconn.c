/* SPDX-License-Identifier: MIT
 *
 * One connection of the SP server (see hf_spserver.c for the wire, the
 * threads and the lock): the two headers, reading frames into requests as
 * the connection's share and the port allow, writing replies in order, and
 * closing, whatever the transport.  The aio callbacks here run on nng's
 * threads (TLS, IPC); a plain-TCP connection's I/O is hf_spconn_uv.c's, on
 * the loop thread (conn_rx_start and conn_tx_start hand it over).  Every
 * function holds or is called under srv->mu, and starts I/O only on a
 * connection whose closed flag is clear.
 */
#include "hf_spserver-int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hf_log.h"
#include "hf_util.h"
#include "hf_validate.h"

/* 127.0.0.1:5555, [::1]:5555 or ipc://path. */
void spconn_addr(nng_stream *s, char *buf, size_t len)
{
	nng_sockaddr sa;
	char ip[INET6_ADDRSTRLEN];

	snprintf(buf, len, "an unknown address");
	if (nng_stream_get_addr(s, NNG_OPT_REMADDR, &sa) != 0)
		return;
	if (sa.s_family == NNG_AF_INET && inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "%s:%u", ip, ntohs(sa.s_in.sa_port));
	else if (sa.s_family == NNG_AF_INET6 && inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "[%s]:%u", ip, ntohs(sa.s_in6.sa_port));
	else if (sa.s_family == NNG_AF_IPC && snprintf(buf, len, "ipc://%s", sa.s_ipc.sa_path) > 0)
		hf_utf8_sanitize(buf);
}

/* ---- closing (under mu) ---- */

static void spconn_list_unlink(nuv_server_t *srv, struct spconn *c)
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

void spconn_list_append(nuv_server_t *srv, struct spconn *c)
{
	c->prev = srv->last;
	c->next = NULL;
	if (srv->last)
		srv->last->next = c;
	else
		srv->first = c;
	srv->last = c;
}

/* c waits for the port's room, after those waiting already. */
static void port_wait_add(nuv_server_t *srv, struct spconn *c)
{
	c->waiting_port = true;
	srv->n_waiting++;
	c->wait_next = NULL;
	c->wait_prev = srv->wait_last;
	if (srv->wait_last)
		srv->wait_last->wait_next = c;
	else
		srv->wait_first = c;
	srv->wait_last = c;
}

static void port_wait_remove(nuv_server_t *srv, struct spconn *c)
{
	if (!c->waiting_port)
		return;
	c->waiting_port = false;
	srv->n_waiting--;
	if (c->wait_prev)
		c->wait_prev->wait_next = c->wait_next;
	else
		srv->wait_first = c->wait_next;
	if (c->wait_next)
		c->wait_next->wait_prev = c->wait_prev;
	else
		srv->wait_last = c->wait_prev;
	c->wait_prev = c->wait_next = NULL;
}

/* The one way a connection ends: from now on nothing starts I/O on it, and
 * the loop reaps it (conn_reap).  Any thread, under mu. */
/* Why a read or write that failed with nng's rv ends the connection. */
static enum close_reason close_reason_of(int rv)
{
	return rv == NNG_ECRYPTO || rv == NNG_EPEERAUTH ? CLOSE_TLS : CLOSE_PEER;
}

void spconn_close(struct spconn *c, enum close_reason why)
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
	case CLOSE_TLS:
		srv->stats.closed_tls++;
		memcpy(srv->last_tls, c->addr, sizeof(c->addr));
		break;
	case CLOSE_PEER:
	case CLOSE_SERVER:
		break;
	}
	port_wait_remove(srv, c);
	spconn_list_unlink(srv, c);
	srv->stats.connections_open--;
	c->next = srv->reap;
	srv->reap = c;
	if (!srv->closing)
		uv_async_send(&srv->async);
}

/* ---- reading (under mu) ---- */

/* Starts the read the state asks for: into rx_buf's free end (moving what
 * is left to its start first), or into a large frame's message. */
static void conn_rx_start(struct spconn *c)
{
	nng_iov iov;

	switch (c->rx) {
	case RX_HELLO:
	case RX_HEAD:
		if (c->rx_start > 0) {
			memmove(c->rx_buf, c->rx_buf + c->rx_start, c->rx_end - c->rx_start);
			c->rx_end -= c->rx_start;
			c->rx_start = 0;
		}
		/* Never full here: what is buffered is less than a frame
		 * (or a hello) that fits in it (conn_rx_cut). */
		iov.iov_buf = c->rx_buf + c->rx_end;
		iov.iov_len = RX_BUF_LEN - c->rx_end;
		break;
	case RX_BODY:
		iov.iov_buf = (uint8_t *)nng_msg_body(c->rx_msg) + c->rx_got;
		iov.iov_len = nng_msg_len(c->rx_msg) - c->rx_got;
		break;
	default:
		return;
	}
	c->rx_busy = true;
	if (c->is_uv) {
		spuv_rx_start(c, iov.iov_buf, iov.iov_len);
		return;
	}
	nng_aio_set_iov(c->rx_aio, 1, &iov);
	nng_stream_recv(c->stream, c->rx_aio);
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
	c->last_request_ms = r->received_ms = hf_mono_ms();
	/* A libuv read callback delivers what it queued once it lets go of
	 * mu (spuv); anything else wakes the loop. */
	if (!srv->uv_reading)
		uv_async_send(&srv->async);
	return true;
}

/* What conn_rx_cut did. */
enum rx_cut {
	CUT_REQUEST, /* a frame became a request */
	CUT_NEED,    /* rx_buf holds less than a frame: read */
	CUT_BODY,    /* a frame larger than rx_buf: read its rest (RX_BODY) */
	CUT_CLOSED,  /* the framing was broken (or no memory): c is closed */
};

/* Cuts the next frame out of rx_buf, if it is all there.  The head is
 * checked as soon as it is complete: IPC's type byte, a length of at least
 * one backtrace word and at most recv_max. */
static enum rx_cut conn_rx_cut(struct spconn *c)
{
	nuv_server_t *srv = c->srv;
	const uint8_t *p = c->rx_buf + c->rx_start;
	size_t avail = c->rx_end - c->rx_start, have;
	uint64_t len;

	if (avail < srv->head_len)
		return CUT_NEED;
	/* IPC frames start with the message type, 1. */
	if (srv->head_len == 9 && p[0] != 1)
		goto broken;
	len = hf_be64_get(p + srv->head_len - 8);
	if (len < 4 || len > srv->recv_max)
		goto broken;
	if (len <= RX_BUF_LEN - srv->head_len) {
		if (avail - srv->head_len < len)
			return CUT_NEED; /* fits rx_buf once it is all there */
		if (nng_msg_alloc(&c->rx_msg, (size_t)len) != 0)
			goto no_memory;
		memcpy(nng_msg_body(c->rx_msg), p + srv->head_len, (size_t)len);
		c->rx_start += srv->head_len + (size_t)len;
		if (c->rx_start == c->rx_end)
			c->rx_start = c->rx_end = 0;
		if (!conn_request(c))
			goto broken;
		return CUT_REQUEST;
	}
	/* Large: a message of its own, grown as the bytes come (a peer
	 * claiming a large frame holds only what it sent), taking what is
	 * buffered (less than RX_BUF_LEN, less than the first chunk). */
	have = avail - srv->head_len;
	if (nng_msg_alloc(&c->rx_msg, len < RX_FIRST_CHUNK ? (size_t)len : RX_FIRST_CHUNK) != 0)
		goto no_memory;
	memcpy(nng_msg_body(c->rx_msg), p + srv->head_len, have);
	c->rx_got = have;
	c->rx_len = len;
	c->rx_start = c->rx_end = 0;
	return CUT_BODY;

no_memory:
	log_error("%s: out of memory reading a request from %s", srv->name, c->addr);
	spconn_close(c, CLOSE_PEER);
	return CUT_CLOSED;
broken:
	spconn_close(c, CLOSE_PROTOCOL);
	return CUT_CLOSED;
}

/* A paused connection takes its next requests, from what it has buffered
 * and then by reading, as long as its share and the port allow.  The
 * port's bound is checked before each request is taken, and before a
 * read starts, so it is exceeded by at most the connections reading at
 * that moment. */
static void conn_rx_next(struct spconn *c)
{
	nuv_server_t *srv = c->srv;

	while (!c->closed && c->rx == RX_PAUSED && c->hello_in) {
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
			if (!c->waiting_port)
				port_wait_add(srv, c);
			return;
		}
		port_wait_remove(srv, c);
		switch (conn_rx_cut(c)) {
		case CUT_REQUEST:
			continue;
		case CUT_NEED:
			c->rx = RX_HEAD;
			conn_rx_start(c);
			return;
		case CUT_BODY:
			c->rx = RX_BODY;
			conn_rx_start(c);
			return;
		case CUT_CLOSED:
			return;
		}
	}
}

/* The port has room again: connections waiting for it read in turn, the
 * longest waiting first (a queue: with ten thousand connections open, a
 * walk of them all for each request answered held the mutex the nng
 * threads wait on for most of the loop's time). */
static void port_resume(nuv_server_t *srv)
{
	unsigned room = srv->max_in_flight > srv->in_flight ? srv->max_in_flight - srv->in_flight : 0;

	/* room bounds the connections let read; in_flight those that took
	 * requests they had buffered. */
	while (room > 0 && srv->in_flight < srv->max_in_flight && srv->wait_first) {
		struct spconn *c = srv->wait_first;
		port_wait_remove(srv, c);
		conn_rx_next(c);
		room--;
	}
}

/* The peer's SP header is in rx_buf: check and take it. */
static bool conn_hello(struct spconn *c)
{
	const uint8_t *h = c->rx_buf + c->rx_start;

	if (memcmp(h, hf_sp_req_header, HF_SP_HEADER_LEN) != 0)
		return false;
	c->rx_start += HF_SP_HEADER_LEN;
	c->hello_in = true;
	return true;
}

/* Under mu: a read of n bytes ended with rv (nng's; 0: done), on either
 * transport. */
void spconn_rx_done(struct spconn *c, int rv, size_t n)
{
	nuv_server_t *srv = c->srv;
	size_t want;

	c->rx_busy = false;
	if (c->closed)
		return;
	if (rv != 0) {
		spconn_close(c, close_reason_of(rv)); /* hung up, reset, TLS ... */
		return;
	}
	switch (c->rx) {
	case RX_HELLO:
		c->rx_end += n;
		if (c->rx_end - c->rx_start < HF_SP_HEADER_LEN)
			break;
		if (!conn_hello(c)) {
			spconn_close(c, CLOSE_HANDSHAKE);
			return;
		}
		c->rx = RX_PAUSED;
		conn_rx_next(c);
		return;
	case RX_HEAD:
		c->rx_end += n;
		c->rx = RX_PAUSED;
		conn_rx_next(c);
		return;
	case RX_BODY:
		c->rx_got += n;
		if (c->rx_got == nng_msg_len(c->rx_msg) && c->rx_got < c->rx_len) {
			/* Grow (at least double) only once the bytes came. */
			want = c->rx_got * 2 < c->rx_len ? c->rx_got * 2 : (size_t)c->rx_len;
			if (nng_msg_realloc(c->rx_msg, want) != 0) {
				log_error("%s: out of memory reading a request from %s", srv->name, c->addr);
				spconn_close(c, CLOSE_PEER);
				return;
			}
		}
		if (c->rx_got < c->rx_len)
			break;
		c->rx = RX_PAUSED;
		if (!conn_request(c)) {
			spconn_close(c, CLOSE_PROTOCOL);
			return;
		}
		conn_rx_next(c);
		return;
	case RX_PAUSED:
		return;
	}
	conn_rx_start(c);
}

/* nng's threads: a read completed. */
static void conn_rx_cb(void *arg)
{
	struct spconn *c = arg;
	nuv_server_t *srv = c->srv;
	int rv = nng_aio_result(c->rx_aio);
	size_t n = nng_aio_count(c->rx_aio);

	pthread_mutex_lock(&srv->mu);
	spconn_rx_done(c, rv, n);
	pthread_mutex_unlock(&srv->mu);
}

/* ---- writing (under mu) ---- */

/* Under mu: marks c writing and sets c->tx_iov to what is left of our SP
 * header or of the first reply, and aio (nng; NULL on libuv) to it
 * (conn_tx_start or spconn_tx_send sends it). */
static void conn_tx_prepare(struct spconn *c, nng_aio *aio)
{
	nng_iov *iov = c->tx_iov;
	unsigned n = 0;
	size_t off = c->tx_off;

	if (!c->hello_out) {
		iov[n].iov_buf = (void *)(hf_sp_rep_header + off);
		iov[n++].iov_len = HF_SP_HEADER_LEN - off;
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
	c->tx_n = n;
	c->tx_busy = true;
	if (aio)
		nng_aio_set_iov(aio, n, iov); /* nng copies the iov array */
}

static void conn_tx_start(struct spconn *c)
{
	if (c->is_uv) {
		conn_tx_prepare(c, NULL);
		spuv_tx_send(c);
		return;
	}
	conn_tx_prepare(c, c->tx_aio);
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
void spreq_finish(struct nuv_request *r)
{
	nuv_server_t *srv = r->srv;
	struct spconn *c = r->conn;

	nng_msg_free(r->msg);
	request_unlink(srv, r);
	spreq_unpark(r);
	if (!r->parked)
		srv->in_flight--; /* a parked request left the count when parked */
	free(r);
	c->outstanding--;
	if (!c->closed)
		conn_rx_next(c);
	else if (c->reaped && c->outstanding == 0)
		free(c);
	if (srv->n_waiting > 0)
		port_resume(srv);
}

/* Loop thread, under mu: r waits to be answered later.  It stays one of
 * its connection's outstanding requests (the connection's share holds)
 * but leaves the port's count, so connections waiting for the port may
 * read on. */
void spreq_park(struct nuv_request *r)
{
	nuv_server_t *srv = r->srv;
	struct spconn *c = r->conn;

	r->parked = true;
	r->on_parked_list = true;
	r->prev_parked = NULL;
	r->next_parked = c->parked;
	if (c->parked)
		c->parked->prev_parked = r;
	c->parked = r;
	srv->in_flight--;
	if (srv->n_waiting > 0)
		port_resume(srv);
}

void spreq_unpark(struct nuv_request *r)
{
	struct spconn *c = r->conn;

	if (!r->on_parked_list)
		return;
	if (r->prev_parked)
		r->prev_parked->next_parked = r->next_parked;
	else
		c->parked = r->next_parked;
	if (r->next_parked)
		r->next_parked->prev_parked = r->prev_parked;
	r->prev_parked = r->next_parked = NULL;
	r->on_parked_list = false;
}

/* Under mu: a write of n bytes ended with nng's rv (0: done); the next
 * write, of the rest or of the next reply, goes through tx_aio (libuv:
 * spuv_tx_send). */
void spconn_tx_done(struct spconn *c, int rv, size_t n)
{
	nuv_server_t *srv = c->srv;

	c->tx_busy = false;
	if (c->closed)
		return;
	if (rv != 0) {
		spconn_close(c, close_reason_of(rv));
		return;
	}
	c->tx_off += n;
	if (!c->hello_out) {
		if (c->tx_off < HF_SP_HEADER_LEN) {
			conn_tx_start(c);
			return;
		}
		c->hello_out = true;
	} else {
		struct nuv_request *r = c->tx_first;
		if (c->tx_off < srv->head_len + r->bt_len + nng_msg_len(r->msg)) {
			conn_tx_start(c);
			return;
		}
		c->tx_first = r->next;
		if (!c->tx_first)
			c->tx_last = NULL;
		spreq_finish(r);
		if (c->closed)
			return;
	}
	c->tx_off = 0;
	if (c->tx_first) {
		c->tx_since_ms = hf_mono_ms();
		conn_tx_start(c);
	}
}

/* nng's threads: a write completed. */
static void conn_tx_cb(void *arg)
{
	struct spconn *c = arg;
	nuv_server_t *srv = c->srv;
	int rv = nng_aio_result(c->tx_aio);
	size_t n = nng_aio_count(c->tx_aio);

	pthread_mutex_lock(&srv->mu);
	spconn_tx_done(c, rv, n);
	pthread_mutex_unlock(&srv->mu);
}

void spconn_tx_send(struct spconn *c)
{
	nuv_server_t *srv = c->srv;
	int rv;
	size_t n;

	if (c->is_uv) {
		/* The loop's own socket: written here, under mu. */
		pthread_mutex_lock(&srv->mu);
		spuv_tx_send(c);
		pthread_mutex_unlock(&srv->mu);
		return;
	}
	if (!c->tx_try_aio) {
		nng_stream_send(c->stream, c->tx_aio);
		return;
	}
	/* A socket with room takes the reply inside nng_stream_send, and an
	 * aio without a callback then completes right there.  A socket
	 * without room leaves it queued, not a byte written (TCP and IPC
	 * write all they can at once, or nothing): it is taken back, at
	 * once, and tx_aio waits for the room. */
	nng_stream_send(c->stream, c->tx_try_aio);
	nng_aio_cancel(c->tx_try_aio);
	nng_aio_wait(c->tx_try_aio);
	rv = nng_aio_result(c->tx_try_aio);
	n = nng_aio_count(c->tx_try_aio);
	pthread_mutex_lock(&srv->mu);
	if (rv == NNG_ECANCELED && !c->closed) {
		/* Nothing was written (n is 0); counted all the same, so that a
		 * partial write could never be sent twice. */
		c->tx_off += n;
		c->tx_busy = false;
		conn_tx_start(c);
	} else {
		spconn_tx_done(c, rv, n);
	}
	pthread_mutex_unlock(&srv->mu);
}

/* nng's threads, under mu: a new connection on s, counted and
 * handshaking; false (s closed and freed) when there is no memory. */
bool spconn_new(nuv_server_t *srv, nng_stream *s)
{
	struct spconn *c = calloc(1, sizeof(*c));

	if (!c || nng_aio_alloc(&c->rx_aio, conn_rx_cb, c) != 0 ||
	    nng_aio_alloc(&c->tx_aio, conn_tx_cb, c) != 0 ||
	    (!srv->tls && nng_aio_alloc(&c->tx_try_aio, NULL, NULL) != 0)) {
		if (c) {
			nng_aio_free(c->rx_aio);
			nng_aio_free(c->tx_aio);
			free(c);
		}
		nng_stream_free(s);
		return false;
	}
	c->srv = srv;
	c->stream = s;
	spconn_addr(s, c->addr, sizeof(c->addr));
	spconn_start(srv, c);
	return true;
}

void spconn_start(nuv_server_t *srv, struct spconn *c)
{
	c->accepted_ms = c->last_request_ms = hf_mono_ms();
	c->rx = RX_HELLO;
	spconn_list_append(srv, c);
	srv->stats.connections_open++;
	/* Both headers at once: ours out, the peer's in. */
	conn_tx_start(c);
	conn_rx_start(c);
}

/* Loop thread, under mu: queues r's reply on its open connection; true
 * when no write was under way and the caller must start this one with
 * spconn_tx_send once it has let go of mu. */
bool spconn_reply(struct nuv_request *r, nng_msg *reply)
{
	nuv_server_t *srv = r->srv;
	struct spconn *c = r->conn;

	r->msg = reply;
	if (srv->head_len == 9)
		r->head[0] = 1;
	hf_be64_put(r->head + srv->head_len - 8, r->bt_len + nng_msg_len(reply));
	r->next = NULL;
	if (c->tx_last) {
		c->tx_last->next = r;
		c->tx_last = r;
		return false;
	}
	c->tx_first = c->tx_last = r;
	c->tx_since_ms = hf_mono_ms();
	/* Our header may still be on its way: its completion starts this
	 * reply. */
	if (c->tx_busy)
		return false;
	c->tx_off = 0;
	conn_tx_prepare(c, c->is_uv ? NULL : c->tx_try_aio ? c->tx_try_aio : c->tx_aio);
	return true;
}
