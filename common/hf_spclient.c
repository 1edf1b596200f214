/* SPDX-License-Identifier: MIT
 *
 * The calling side of the nng-to-libuv bridge (nuv_client_*; see
 * hf_nuv.h): the REQ end of the SP protocol, spoken here over nng's byte
 * streams (tcp://, ipc://, abstract://, tls+tcp://) rather than through an
 * nng REQ socket, whose every call cost about five hand-offs between
 * threads (issue 15, docs/performance.md).  The wire is nng's, byte for
 * byte (hf_spserver.c describes it): our header 0x00 'S' 'P' 0x00 0x00
 * 0x30 0x00 0x00, the peer's with 0x31; then per message an 8-byte
 * big-endian length (on IPC a type byte 1 before it), a 4-byte request id
 * with its high bit set, the body.  A reply carries its request's id.
 *
 * What this file owns: one stream dialer per URL of the comma-separated
 * list (a coordinator and its standby: all are dialled, the first to
 * connect is used, the others wait while it lasts), the one connection in
 * use (its read aio, its write aios, its buffers), the calls (queued to be
 * written, written and waiting for their reply, done and waiting for the
 * loop), the per-call timeouts, and the hand-off to the loop.
 *
 * Behaviour.  A dial that fails is tried again after a backoff of 100 ms
 * doubling to 2 s (reset by a connection).  A call made while no
 * connection is up waits in the write queue until one is, or until its
 * timeout.  Replies are matched to calls by id, so many calls may be
 * outstanding; a reply to a call that is gone (timed out) is dropped.  A
 * connection that is lost, or that breaks the wire (a bad header, a bad
 * length or type byte, a reply over recv_max, an id without its high
 * bit), is closed, and every call written on it, whole or in part, fails
 * with -ECONNRESET: nng's REQ socket resent them on the next connection,
 * but hf-worker already treats a failed call as it treats a timeout
 * (polls are sent again on the next beat, results stay in the spool and
 * are sent again, registration retries with backoff), and failing at once
 * tells it sooner than a timeout would.  Calls not yet written stay queued
 * for the next connection.  A dial that connects while another connection
 * is in use is closed, and that URL is dialled again after the longest
 * backoff; so is the URL of a connection closed for breaking the wire.
 *
 * Threads and the lock.  nng runs dial_cb, conn_rx_cb and conn_tx_cb on
 * its own threads; they hold the client's mutex mu for all they do (start
 * the next read, write or dial; cut replies out of the read buffer and put
 * them on the done queue, waking the loop with one uv_async_send per
 * read).  The loop thread writes a request itself on plain TCP and IPC
 * with an aio that has no callback (tx_try_aio: a socket with room takes
 * it inside nng_stream_send; otherwise it is taken back and tx_aio goes on
 * from nng's threads), as hf_spconn.c does for replies; on TLS it starts
 * tx_aio.  Everything else runs on the loop thread: calls' callbacks (one
 * at a time off the done queue), timeouts (timer), and freeing a closed
 * connection (conn_reap: close the stream, nng_aio_stop each aio, which
 * waits for a callback in progress, free).  Every field of the client and
 * of a call is under mu except those marked loop-only.  I/O on a
 * connection is started only under mu while its closed flag is clear.
 * nng never runs our callbacks inside the calls we make under mu.
 */
#include "hf_nuv.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/supplemental/tls/tls.h>

#include "hf_log.h"
#include "hf_spwire.h"
#include "hf_tls.h"
#include "hf_util.h"

#define SP_HEAD_MAX 9 /* IPC's type byte and the length */
#define SP_ID_LEN 4
#define CLIENT_RECV_MAX_DEFAULT (1024 * 1024)
#define DIAL_BACKOFF_MIN_MS 100
#define DIAL_BACKOFF_MAX_MS 2000
/* Replies up to this size (head included) are cut out of the connection's
 * read buffer; a larger one is read into a message of its own. */
#define RX_BUF_LEN (16 * 1024)

enum call_state {
	CALL_QUEUED,  /* in the write queue, not a byte written */
	CALL_WRITING, /* the first of the write queue, being written */
	CALL_SENT,    /* written whole on the connection, waiting for its reply */
	CALL_DONE,    /* on the done queue (or being delivered) */
};

struct call {
	uint32_t id;
	enum call_state state;
	/* The request as a frame with IPC's head: type byte, length, id, body.
	 * On TCP the type byte is skipped.  Until written whole. */
	nng_msg *msg;
	int64_t deadline_ms;
	int rv;
	nng_msg *reply;
	/* A reply read before the write's completion was handled (the peer
	 * answers as soon as it has the request; the loop or an nng thread
	 * may not have taken the write's end yet): delivered when it is. */
	nng_msg *early_reply;
	nuv_reply_cb cb;        /* loop-only */
	void *arg;              /* loop-only */
	struct call *prev, *next; /* every call not yet delivered */
	struct call *tx_next;     /* write queue */
	struct call *done_next;   /* done queue */
};

struct dial {
	nuv_client_t *c;
	nng_stream_dialer *dialer;
	nng_tls_config *tls;     /* ours to free after the dialer */
	nng_aio *aio;            /* dials, and sleeps between dials */
	bool ipc;                /* ipc:// or abstract://: 9-byte frame heads */
	bool sleeping;           /* aio is a backoff's sleep */
	bool idle;               /* not dialling: another connection is in use */
	int backoff_ms;
	char url[256];
};

enum rx_state { RX_HEAD, RX_BODY };

struct conn {
	nuv_client_t *c;
	struct dial *dial;
	nng_stream *stream;
	nng_aio *rx_aio, *tx_aio;
	nng_aio *tx_try_aio; /* plain TCP and IPC: the loop's inline write */
	size_t head_len;     /* 8, or 9 on IPC */
	bool closed, hello_in, hello_out, rx_busy, tx_busy;
	bool broken;         /* closed for breaking the wire: dial again slowly */
	enum rx_state rx;
	uint8_t rx_buf[RX_BUF_LEN];
	size_t rx_start, rx_end;
	nng_msg *rx_msg;     /* RX_BODY: a large reply, rx_got of its bytes in */
	size_t rx_got;
	uint32_t rx_id;
	size_t tx_off;       /* bytes written of our header or of tx_first */
	nng_msg *tx_hold;    /* a request whose call failed while it was being written */
	struct conn *reap_next;
};

struct nuv_client {
	uv_loop_t *loop;
	uv_async_t async;
	uv_timer_t timer;          /* the earliest deadline */
	pthread_mutex_t mu;
	size_t recv_max;
	struct dial *dials;
	size_t n_dials;
	struct conn *conn;         /* the connection in use, if any */
	struct conn *reap;         /* closed, waiting for the loop */
	struct call *calls;        /* every call not yet delivered */
	struct call *tx_first, *tx_last; /* calls to write, in order */
	struct call *done_first, *done_last;
	uint32_t next_id;
	bool closing;
	int64_t timer_at;          /* loop-only: when the timer fires, or 0 */
	int open_handles;          /* loop-only: async and timer, until closed */
};

/* ---- calls (under mu) ---- */

static void call_unlink(nuv_client_t *c, struct call *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		c->calls = k->next;
	if (k->next)
		k->next->prev = k->prev;
	k->prev = k->next = NULL;
}

/* k is answered (rv 0 and reply) or failed: off the lists, onto the done
 * queue.  The caller wakes the loop.  k must not be in the write queue. */
static void call_done(nuv_client_t *c, struct call *k, int rv, nng_msg *reply)
{
	call_unlink(c, k);
	nng_msg_free(k->msg);
	k->msg = NULL;
	if (k->early_reply != reply)
		nng_msg_free(k->early_reply);
	k->early_reply = NULL;
	k->state = CALL_DONE;
	k->rv = rv;
	k->reply = reply;
	k->done_next = NULL;
	if (c->done_last)
		c->done_last->done_next = k;
	else
		c->done_first = k;
	c->done_last = k;
}

/* Takes k out of the write queue (it is not being written). */
static void tx_unlink(nuv_client_t *c, struct call *k)
{
	struct call **pp = &c->tx_first, *prev = NULL;

	while (*pp && *pp != k) {
		prev = *pp;
		pp = &(*pp)->tx_next;
	}
	if (!*pp)
		return;
	*pp = k->tx_next;
	if (c->tx_last == k)
		c->tx_last = prev;
	k->tx_next = NULL;
}

static struct call *call_find(nuv_client_t *c, uint32_t id)
{
	for (struct call *k = c->calls; k; k = k->next)
		if (k->id == id)
			return k;
	return NULL;
}

/* ---- connections (under mu) ---- */

static void dial_start(struct dial *d, int delay_ms);

/* Under mu: the call being written on cn (if any) fails with rv; its
 * request stays with cn until the write is stopped (conn_reap).  cn must
 * then be closed: the peer has part of a frame. */
static void conn_drop_writing(struct conn *cn, int rv)
{
	nuv_client_t *c = cn->c;
	struct call *k = c->tx_first;

	if (!k || k->state != CALL_WRITING)
		return;
	c->tx_first = k->tx_next;
	if (!c->tx_first)
		c->tx_last = NULL;
	k->tx_next = NULL;
	nng_msg_free(cn->tx_hold);
	cn->tx_hold = k->msg;
	k->msg = NULL;
	call_done(c, k, rv, NULL);
}

/* The one way a connection ends: from now on nothing starts I/O on it;
 * the calls written on it fail, the queued ones wait for the next; the
 * loop reaps it.  Any thread, under mu. */
static void conn_close(struct conn *cn)
{
	nuv_client_t *c = cn->c;
	struct call *k;

	if (cn->closed)
		return;
	cn->closed = true;
	if (c->conn == cn)
		c->conn = NULL;
	/* The first of the queue, partly written, cannot be sent again. */
	conn_drop_writing(cn, c->closing ? -ESHUTDOWN : -ECONNRESET);
	for (k = c->calls; k;) {
		struct call *next = k->next;
		if (k->state == CALL_SENT)
			call_done(c, k, c->closing ? -ESHUTDOWN : -ECONNRESET, NULL);
		k = next;
	}
	cn->reap_next = c->reap;
	c->reap = cn;
	uv_async_send(&c->async);
}

static void conn_rx_start(struct conn *cn)
{
	nng_iov iov;

	if (cn->rx == RX_BODY) {
		iov.iov_buf = (uint8_t *)nng_msg_body(cn->rx_msg) + cn->rx_got;
		iov.iov_len = nng_msg_len(cn->rx_msg) - cn->rx_got;
	} else {
		if (cn->rx_start > 0) {
			memmove(cn->rx_buf, cn->rx_buf + cn->rx_start, cn->rx_end - cn->rx_start);
			cn->rx_end -= cn->rx_start;
			cn->rx_start = 0;
		}
		iov.iov_buf = cn->rx_buf + cn->rx_end;
		iov.iov_len = RX_BUF_LEN - cn->rx_end;
	}
	cn->rx_busy = true;
	nng_aio_set_iov(cn->rx_aio, 1, &iov);
	nng_stream_recv(cn->stream, cn->rx_aio);
}

/* A reply with id and body msg came: to its call, or dropped (a call that
 * timed out).  True when the loop must be woken. */
static bool conn_reply(struct conn *cn, uint32_t id, nng_msg *msg)
{
	struct call *k = call_find(cn->c, id);

	if (k && k->state == CALL_WRITING && !k->early_reply) {
		k->early_reply = msg; /* conn_tx_done delivers it */
		return false;
	}
	if (!k || k->state != CALL_SENT) {
		nng_msg_free(msg);
		return false;
	}
	call_done(cn->c, k, 0, msg);
	return true;
}

/* Cuts the replies out of rx_buf.  Returns false when the wire is broken
 * (the caller closes cn); *wake when a call is done. */
static bool conn_rx_cut(struct conn *cn, bool *wake)
{
	nuv_client_t *c = cn->c;

	for (;;) {
		const uint8_t *p = cn->rx_buf + cn->rx_start;
		size_t avail = cn->rx_end - cn->rx_start;
		uint64_t len;
		uint32_t id;
		nng_msg *msg;

		if (!cn->hello_in) {
			if (avail < HF_SP_HEADER_LEN)
				return true;
			if (memcmp(p, hf_sp_rep_header, HF_SP_HEADER_LEN) != 0) {
				log_warn("coordinator %s: not an SP REP peer (bad header); closing", cn->dial->url);
				return false;
			}
			cn->hello_in = true;
			cn->rx_start += HF_SP_HEADER_LEN;
			continue;
		}
		if (avail < cn->head_len)
			return true;
		if (cn->head_len == 9 && p[0] != 1)
			goto broken;
		len = hf_be64_get(p + cn->head_len - 8);
		if (len < SP_ID_LEN || len > c->recv_max)
			goto broken;
		if (avail < cn->head_len + SP_ID_LEN)
			return true;
		id = hf_be32_get(p + cn->head_len);
		if (!(id & HF_SP_ID_END))
			goto broken;
		if (cn->head_len + len > RX_BUF_LEN) {
			/* Large: a message of its own, of the size the head
			 * says (bounded by recv_max above). */
			size_t have = avail - cn->head_len - SP_ID_LEN;
			if (nng_msg_alloc(&cn->rx_msg, (size_t)len - SP_ID_LEN) != 0)
				goto no_memory;
			memcpy(nng_msg_body(cn->rx_msg), p + cn->head_len + SP_ID_LEN, have);
			cn->rx_got = have;
			cn->rx_id = id;
			cn->rx_start = cn->rx_end = 0;
			cn->rx = RX_BODY;
			return true;
		}
		if (avail < cn->head_len + len)
			return true;
		if (nng_msg_alloc(&msg, (size_t)len - SP_ID_LEN) != 0)
			goto no_memory;
		memcpy(nng_msg_body(msg), p + cn->head_len + SP_ID_LEN, (size_t)len - SP_ID_LEN);
		cn->rx_start += cn->head_len + (size_t)len;
		if (cn->rx_start == cn->rx_end)
			cn->rx_start = cn->rx_end = 0;
		*wake |= conn_reply(cn, id, msg);
	}
broken:
	log_warn("coordinator %s sent a malformed frame (bad type, length or request id); closing the "
		 "connection",
		 cn->dial->url);
	return false;
no_memory:
	log_error("out of memory reading a reply from %s", cn->dial->url);
	return false;
}

/* nng's threads: a read completed. */
static void conn_rx_cb(void *arg)
{
	struct conn *cn = arg;
	nuv_client_t *c = cn->c;
	int rv = nng_aio_result(cn->rx_aio);
	size_t n = nng_aio_count(cn->rx_aio);
	bool wake = false;

	pthread_mutex_lock(&c->mu);
	cn->rx_busy = false;
	if (cn->closed)
		goto out;
	if (rv != 0) {
		conn_close(cn);
		goto out;
	}
	if (cn->rx == RX_BODY) {
		cn->rx_got += n;
		if (cn->rx_got < nng_msg_len(cn->rx_msg))
			goto read;
		cn->rx = RX_HEAD;
		wake = conn_reply(cn, cn->rx_id, cn->rx_msg);
		cn->rx_msg = NULL;
		goto read;
	}
	cn->rx_end += n;
	if (!conn_rx_cut(cn, &wake)) {
		cn->broken = true;
		conn_close(cn);
		goto out;
	}
read:
	conn_rx_start(cn);
	if (wake)
		uv_async_send(&c->async);
out:
	pthread_mutex_unlock(&c->mu);
}

/* Under mu: marks cn writing and sets aio to what is left of our header
 * or of the first queued call (which becomes CALL_WRITING).  False when
 * there is nothing to write. */
static bool conn_tx_prepare(struct conn *cn, nng_aio *aio)
{
	nuv_client_t *c = cn->c;
	nng_iov iov;

	if (!cn->hello_out) {
		iov.iov_buf = (void *)(hf_sp_req_header + cn->tx_off);
		iov.iov_len = HF_SP_HEADER_LEN - cn->tx_off;
	} else {
		struct call *k = c->tx_first;
		size_t skip = SP_HEAD_MAX - cn->head_len; /* TCP: no type byte */
		if (!k)
			return false;
		k->state = CALL_WRITING;
		iov.iov_buf = (uint8_t *)nng_msg_body(k->msg) + skip + cn->tx_off;
		iov.iov_len = nng_msg_len(k->msg) - skip - cn->tx_off;
	}
	cn->tx_busy = true;
	nng_aio_set_iov(aio, 1, &iov);
	return true;
}

static void conn_tx_start(struct conn *cn)
{
	if (conn_tx_prepare(cn, cn->tx_aio))
		nng_stream_send(cn->stream, cn->tx_aio);
}

/* Under mu: a write of n bytes ended with nng's rv; goes on with the
 * rest, or the next call, through tx_aio. */
static void conn_tx_done(struct conn *cn, int rv, size_t n)
{
	nuv_client_t *c = cn->c;

	cn->tx_busy = false;
	if (cn->closed)
		return;
	if (rv != 0) {
		conn_close(cn);
		return;
	}
	cn->tx_off += n;
	if (!cn->hello_out) {
		if (cn->tx_off < HF_SP_HEADER_LEN) {
			conn_tx_start(cn);
			return;
		}
		cn->hello_out = true;
	} else {
		struct call *k = c->tx_first;
		if (cn->tx_off < nng_msg_len(k->msg) - (SP_HEAD_MAX - cn->head_len)) {
			conn_tx_start(cn);
			return;
		}
		c->tx_first = k->tx_next;
		if (!c->tx_first)
			c->tx_last = NULL;
		k->tx_next = NULL;
		k->state = CALL_SENT;
		nng_msg_free(k->msg);
		k->msg = NULL;
		if (k->early_reply) {
			call_done(c, k, 0, k->early_reply);
			uv_async_send(&c->async);
		}
	}
	cn->tx_off = 0;
	conn_tx_start(cn);
}

/* nng's threads: a write completed. */
static void conn_tx_cb(void *arg)
{
	struct conn *cn = arg;
	nuv_client_t *c = cn->c;

	pthread_mutex_lock(&c->mu);
	conn_tx_done(cn, nng_aio_result(cn->tx_aio), nng_aio_count(cn->tx_aio));
	pthread_mutex_unlock(&c->mu);
}

/* Loop thread, mu held on entry and on return: writes the first queued
 * call on an idle connection; on plain TCP and IPC inline (see the file
 * header), letting go of mu around the write. */
static void conn_tx_kick(struct conn *cn)
{
	nuv_client_t *c = cn->c;
	int rv;
	size_t n;

	if (cn->closed || cn->tx_busy || !cn->hello_out || !c->tx_first)
		return;
	if (!cn->tx_try_aio) {
		conn_tx_start(cn);
		return;
	}
	conn_tx_prepare(cn, cn->tx_try_aio);
	/* tx_busy keeps every other thread from writing on cn, and only the
	 * loop frees it (conn_reap), so it outlives the write without mu. */
	pthread_mutex_unlock(&c->mu);
	nng_stream_send(cn->stream, cn->tx_try_aio);
	nng_aio_cancel(cn->tx_try_aio);
	nng_aio_wait(cn->tx_try_aio);
	rv = nng_aio_result(cn->tx_try_aio);
	n = nng_aio_count(cn->tx_try_aio);
	pthread_mutex_lock(&c->mu);
	if (rv == NNG_ECANCELED && !cn->closed) {
		/* The socket had no room: nothing written (n is 0, counted
		 * all the same); tx_aio waits for room. */
		cn->tx_off += n;
		cn->tx_busy = false;
		conn_tx_start(cn);
	} else {
		conn_tx_done(cn, rv, n);
	}
}

/* nng's threads, under mu: dial d connected s. */
static void conn_new(struct dial *d, nng_stream *s)
{
	nuv_client_t *c = d->c;
	struct conn *cn = calloc(1, sizeof(*cn));

	if (!cn || nng_aio_alloc(&cn->rx_aio, conn_rx_cb, cn) != 0 ||
	    nng_aio_alloc(&cn->tx_aio, conn_tx_cb, cn) != 0 ||
	    (!d->tls && nng_aio_alloc(&cn->tx_try_aio, NULL, NULL) != 0)) {
		if (cn) {
			nng_aio_free(cn->rx_aio);
			nng_aio_free(cn->tx_aio);
			free(cn);
		}
		nng_stream_free(s);
		dial_start(d, DIAL_BACKOFF_MAX_MS);
		return;
	}
	cn->c = c;
	cn->dial = d;
	cn->stream = s;
	cn->head_len = d->ipc ? 9 : 8;
	cn->rx = RX_HEAD;
	c->conn = cn;
	/* Other dials rest while this connection lasts. */
	for (size_t i = 0; i < c->n_dials; i++)
		if (&c->dials[i] != d && !c->dials[i].sleeping)
			nng_aio_cancel(c->dials[i].aio);
	conn_tx_start(cn); /* our header, then whatever is queued */
	conn_rx_start(cn);
}

/* ---- dialling ---- */

/* Under mu: dials d now, or after delay_ms. */
static void dial_start(struct dial *d, int delay_ms)
{
	d->idle = false;
	if (delay_ms > 0) {
		d->sleeping = true;
		nng_sleep_aio(delay_ms, d->aio);
	} else {
		d->sleeping = false;
		nng_stream_dialer_dial(d->dialer, d->aio);
	}
}

/* nng's threads: a dial or its backoff ended. */
static void dial_cb(void *arg)
{
	struct dial *d = arg;
	nuv_client_t *c = d->c;
	int rv = nng_aio_result(d->aio);
	nng_stream *s = rv == 0 && !d->sleeping ? nng_aio_get_output(d->aio, 0) : NULL;

	pthread_mutex_lock(&c->mu);
	if (c->closing) {
		if (s)
			nng_stream_free(s);
		goto out;
	}
	if (c->conn) {
		/* Another connection is in use: rest until it is lost. */
		if (s)
			nng_stream_free(s);
		d->idle = true;
		d->sleeping = false;
		goto out;
	}
	if (d->sleeping) {
		dial_start(d, 0);
		goto out;
	}
	if (rv != 0) {
		dial_start(d, d->backoff_ms);
		d->backoff_ms = d->backoff_ms * 2 > DIAL_BACKOFF_MAX_MS ? DIAL_BACKOFF_MAX_MS : d->backoff_ms * 2;
		goto out;
	}
	d->backoff_ms = DIAL_BACKOFF_MIN_MS;
	conn_new(d, s);
out:
	pthread_mutex_unlock(&c->mu);
}

static int dial_init(nuv_client_t *c, struct dial *d, const char *url, const struct hf_tls *tls, char *err,
		     size_t errlen)
{
	int rv;

	d->c = c;
	d->backoff_ms = DIAL_BACKOFF_MIN_MS;
	snprintf(d->url, sizeof(d->url), "%s", url);
	d->ipc = strncmp(url, "ipc://", 6) == 0 || strncmp(url, "abstract://", 11) == 0;
	rv = nng_stream_dialer_alloc(&d->dialer, url);
	if (rv != 0) {
		snprintf(err, errlen, "invalid coordinator address \"%s\"", url);
		return nuv_errno(rv);
	}
	if (hf_tls_url(url)) {
		rv = hf_tls_config_client(tls, url, &d->tls, err, errlen);
		if (rv < 0)
			return rv;
		rv = nng_stream_dialer_set_ptr(d->dialer, NNG_OPT_TLS_CONFIG, d->tls);
		if (rv != 0) {
			snprintf(err, errlen, "could not set up TLS for \"%s\"", url);
			return nuv_errno(rv);
		}
	}
	if (!d->ipc) {
		/* A request is one write; Nagle would hold the second of two
		 * outstanding ones for the first one's ACK (up to 40 ms). */
		(void)nng_stream_dialer_set_bool(d->dialer, NNG_OPT_TCP_NODELAY, true);
		(void)nng_stream_dialer_set_bool(d->dialer, NNG_OPT_TCP_KEEPALIVE, true);
	}
	rv = nng_aio_alloc(&d->aio, dial_cb, d);
	if (rv != 0) {
		snprintf(err, errlen, "out of memory");
		return nuv_errno(rv);
	}
	return 0;
}

/* ---- the loop's side ---- */

/* Loop thread: frees the connections closed so far and dials again. */
static void client_reap(nuv_client_t *c)
{
	struct conn *list;

	pthread_mutex_lock(&c->mu);
	list = c->reap;
	c->reap = NULL;
	pthread_mutex_unlock(&c->mu);
	while (list) {
		struct conn *cn = list;
		list = cn->reap_next;
		nng_stream_close(cn->stream);
		nng_aio_stop(cn->rx_aio);
		nng_aio_stop(cn->tx_aio);
		if (cn->tx_try_aio)
			nng_aio_stop(cn->tx_try_aio);
		nng_aio_free(cn->rx_aio);
		nng_aio_free(cn->tx_aio);
		nng_aio_free(cn->tx_try_aio);
		nng_stream_free(cn->stream);
		nng_msg_free(cn->rx_msg);
		nng_msg_free(cn->tx_hold);
		pthread_mutex_lock(&c->mu);
		if (!c->closing) {
			if (!c->conn)
				for (size_t i = 0; i < c->n_dials; i++)
					if (c->dials[i].idle)
						dial_start(&c->dials[i], 0);
			/* Its own dial rests a little before trying again; a
			 * peer that broke the wire, the longest backoff (one
			 * log line per 2 s, not per 100 ms). */
			dial_start(cn->dial, cn->broken ? DIAL_BACKOFF_MAX_MS : DIAL_BACKOFF_MIN_MS);
		}
		pthread_mutex_unlock(&c->mu);
		free(cn);
	}
}

static void timer_cb(uv_timer_t *h);

/* Loop thread: fails the calls past their deadline, and sets the timer
 * for the next. */
static void client_timeouts(nuv_client_t *c)
{
	int64_t now = hf_mono_ms(), next = 0;

	pthread_mutex_lock(&c->mu);
	for (struct call *k = c->calls; k;) {
		struct call *following = k->next;
		if (k->deadline_ms > now) {
			if (!next || k->deadline_ms < next)
				next = k->deadline_ms;
		} else if (k->state == CALL_QUEUED) {
			tx_unlink(c, k);
			call_done(c, k, -ETIMEDOUT, NULL);
		} else if (k->state == CALL_SENT) {
			call_done(c, k, -ETIMEDOUT, NULL); /* a late reply is dropped */
		} else if (k->state == CALL_WRITING && c->conn) {
			/* Still being written at its deadline: the peer does not
			 * read.  The frame cannot be taken back: the connection
			 * goes, the next call dials again. */
			conn_drop_writing(c->conn, -ETIMEDOUT);
			conn_close(c->conn);
			following = c->calls; /* conn_close finished others */
		}
		k = following;
	}
	pthread_mutex_unlock(&c->mu);
	c->timer_at = next;
	if (next)
		uv_timer_start(&c->timer, timer_cb, (uint64_t)(next - now), 0);
	else
		uv_timer_stop(&c->timer);
}

/* Loop thread: calls the callbacks of the calls done, one at a time (a
 * callback may call or close the client). */
static void client_drain(nuv_client_t *c)
{
	for (;;) {
		struct call *k;

		pthread_mutex_lock(&c->mu);
		k = c->done_first;
		if (k) {
			c->done_first = k->done_next;
			if (!c->done_first)
				c->done_last = NULL;
		}
		pthread_mutex_unlock(&c->mu);
		if (!k)
			return;
		k->cb(k->rv, k->reply, k->arg);
		free(k);
	}
}

static void async_cb(uv_async_t *h)
{
	nuv_client_t *c = h->data;

	client_reap(c);
	client_drain(c);
}

static void timer_cb(uv_timer_t *h)
{
	nuv_client_t *c = h->data;

	c->timer_at = 0;
	client_timeouts(c);
	client_drain(c);
}

static void client_free(nuv_client_t *c)
{
	for (size_t i = 0; i < c->n_dials; i++) {
		struct dial *d = &c->dials[i];
		if (d->aio)
			nng_aio_free(d->aio);
		if (d->dialer)
			nng_stream_dialer_free(d->dialer);
		if (d->tls)
			nng_tls_config_free(d->tls);
	}
	free(c->dials);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int nuv_client_open(uv_loop_t *loop, const char *url, const struct hf_tls *tls, size_t recv_max,
		    nuv_client_t **ret_client, char *err, size_t errlen)
{
	nuv_client_t *c = calloc(1, sizeof(*c));
	char *copy = strdup(url), *save = NULL;
	size_t n = 1;
	int rv = 0;

	if (!c || !copy) {
		free(c);
		free(copy);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (const char *p = url; *p; p++)
		n += *p == ',';
	c->dials = calloc(n, sizeof(*c->dials));
	pthread_mutex_init(&c->mu, NULL);
	c->loop = loop;
	c->recv_max = recv_max ? recv_max : CLIENT_RECV_MAX_DEFAULT;
	c->next_id = (uint32_t)hf_mono_ms() ^ (uint32_t)(uintptr_t)c ^ (uint32_t)time(NULL);
	if (!c->dials) {
		snprintf(err, errlen, "out of memory");
		rv = -ENOMEM;
		goto fail;
	}
	snprintf(err, errlen, "no coordinator address in \"%s\"", url);
	for (char *one = strtok_r(copy, ", ", &save); one; one = strtok_r(NULL, ", ", &save)) {
		rv = dial_init(c, &c->dials[c->n_dials++], one, tls, err, errlen);
		if (rv < 0)
			goto fail;
	}
	if (c->n_dials == 0) {
		rv = -EINVAL;
		goto fail;
	}
	free(copy);
	uv_async_init(loop, &c->async, async_cb);
	c->async.data = c;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n_dials; i++)
		dial_start(&c->dials[i], 0);
	pthread_mutex_unlock(&c->mu);
	*ret_client = c;
	return 0;
fail:
	free(copy);
	client_free(c);
	return rv;
}

int nuv_client_call(nuv_client_t *c, nng_msg *msg, int timeout_ms, nuv_reply_cb cb, void *arg)
{
	struct call *k;
	uint8_t head[SP_HEAD_MAX + SP_ID_LEN];

	if (c->closing) {
		nng_msg_free(msg);
		return -ESHUTDOWN;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		nng_msg_free(msg);
		return -ENOMEM;
	}
	k->msg = msg;
	k->cb = cb;
	k->arg = arg;
	k->deadline_ms = hf_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	k->state = CALL_QUEUED;

	pthread_mutex_lock(&c->mu);
	do
		k->id = c->next_id++ | HF_SP_ID_END;
	while (call_find(c, k->id)); /* after 2^31 calls, one may still be out */
	/* The frame with IPC's head, whatever connection it goes on (TCP
	 * skips the type byte): built once, written as one buffer. */
	head[0] = 1;
	hf_be64_put(head + 1, (uint64_t)nng_msg_len(msg) + SP_ID_LEN);
	head[9] = (uint8_t)(k->id >> 24);
	head[10] = (uint8_t)(k->id >> 16);
	head[11] = (uint8_t)(k->id >> 8);
	head[12] = (uint8_t)k->id;
	if (nng_msg_insert(msg, head, sizeof(head)) != 0) {
		pthread_mutex_unlock(&c->mu);
		nng_msg_free(msg);
		free(k);
		return -ENOMEM;
	}
	k->next = c->calls;
	if (c->calls)
		c->calls->prev = k;
	c->calls = k;
	if (c->tx_last)
		c->tx_last->tx_next = k;
	else
		c->tx_first = k;
	c->tx_last = k;
	if (c->conn)
		conn_tx_kick(c->conn);
	pthread_mutex_unlock(&c->mu);
	if (!c->timer_at || k->deadline_ms < c->timer_at) {
		int64_t now = hf_mono_ms();
		c->timer_at = k->deadline_ms;
		uv_timer_start(&c->timer, timer_cb, (uint64_t)(k->deadline_ms > now ? k->deadline_ms - now : 0), 0);
	}
	return 0;
}

static void client_closed_cb(uv_handle_t *h)
{
	nuv_client_t *c = h->data;

	if (--c->open_handles == 0)
		client_free(c);
}

void nuv_client_close(nuv_client_t *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->closing = true;
	if (c->conn)
		conn_close(c->conn);
	pthread_mutex_unlock(&c->mu);
	/* closing is set: a dial callback in progress starts nothing. */
	for (size_t i = 0; i < c->n_dials; i++)
		nng_aio_stop(c->dials[i].aio);
	client_reap(c);
	pthread_mutex_lock(&c->mu);
	c->tx_first = c->tx_last = NULL;
	while (c->calls)
		call_done(c, c->calls, -ESHUTDOWN, NULL);
	pthread_mutex_unlock(&c->mu);
	client_drain(c);
	uv_timer_stop(&c->timer);
	c->open_handles = 2;
	uv_close((uv_handle_t *)&c->async, client_closed_cb);
	uv_close((uv_handle_t *)&c->timer, client_closed_cb);
}
