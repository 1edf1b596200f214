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
 * code that never issues I/O on a stream after closing it, as ours,
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
 * What this file owns: the listener and its accept aio, the list of
 * connections and their timeouts, the hand-off of requests to the loop, the
 * counters and log lines.  hf_spconn.c owns what happens on one connection
 * (each a stream with one receive and one send aio): reading requests,
 * writing replies, closing.  A request lives from its receipt to its
 * reply's last byte written (or its drop).
 *
 * Transports.  Plain TCP is served by the loop thread itself through
 * libuv (hf_spconn_uv.c: no thread hop per request); TLS and IPC go
 * through nng's streams, as follows.
 *
 * Threads.  nng runs the aio callbacks (accept_cb here, conn_rx_cb and
 * conn_tx_cb in hf_spconn.c) on its own threads.  They hold the server's
 * mutex mu for all they do: move bytes into buffers, cut requests out of
 * them, start the next read or write, put complete requests on the
 * hand-off queue and wake the loop with uv_async_send.  The loop thread
 * itself writes a reply on plain TCP and IPC with an aio that has no
 * callback (completed inside the call when the socket takes it all, else
 * taken back and left to conn_tx_cb: spconn_tx_send).  Everything else runs on the loop thread, also under
 * mu where it touches a connection.  I/O on a connection is started only
 * under mu and only while its closed flag is clear; closing (spconn_close)
 * sets the flag under mu, and the loop then closes the stream, stops both
 * aios (waiting for a callback in progress, which finds the flag set and
 * starts nothing) and frees the stream (server_reap).  nng never calls our callbacks from inside
 * the calls we make under mu (they are dispatched to its task threads),
 * so holding mu across them cannot deadlock.
 */
#include "hf_spserver-int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"
#include "hf_util.h"

/* nng's default receive limit, used when the caller gives none. */
#define SERVER_RECV_MAX_DEFAULT (1024 * 1024)
/* An accept that failed (no files left, ...) is retried after this long. */
#define ACCEPT_RETRY_MS 100
/* How often the counters of refused and closed connections may be logged:
 * a flood makes one line per interval, with the count. */
#define SERVER_LOG_INTERVAL_MS 10000

const struct nuv_server_limits nuv_server_limits_default = {
	.name = "server",
	.max_connections = 1024,
	.requests_per_connection = 5,
	.idle_timeout_ms = 60000,
	.reply_timeout_ms = 10000,
	.handshake_timeout_ms = 5000,
};

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
		spconn_addr(s, srv->last_refused, sizeof(srv->last_refused));
		nng_stream_free(s); /* no I/O was ever started on it */
	} else if (!spconn_new(srv, s)) {
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
	struct nuv_request *gone = NULL;

	pthread_mutex_lock(&srv->mu);
	list = srv->reap;
	srv->reap = NULL;
	pthread_mutex_unlock(&srv->mu);

	while (list) {
		struct spconn *c = list;
		list = c->next;
		if (c->is_uv) {
			/* Its close callback frees it (spuv_close). */
			spuv_close(c);
		} else {
			/* closed is set: a callback in progress starts nothing,
			 * and nng_aio_stop waits for it and cancels what is
			 * pending. */
			nng_stream_close(c->stream);
			nng_aio_stop(c->rx_aio);
			nng_aio_stop(c->tx_aio);
			nng_stream_free(c->stream);
			nng_aio_free(c->rx_aio);
			nng_aio_free(c->tx_aio);
			nng_aio_free(c->tx_try_aio); /* used by this thread alone: idle */
			c->stream = NULL;
			c->rx_aio = c->tx_aio = c->tx_try_aio = NULL;
		}

		pthread_mutex_lock(&srv->mu);
		nng_msg_free(c->rx_msg);
		c->rx_msg = NULL;
		while (c->tx_first) {
			struct nuv_request *r = c->tx_first;
			c->tx_first = r->next;
			spreq_finish(r);
		}
		c->tx_last = NULL;
		/* Parked requests are told (below, outside the lock) that
		 * their peer is gone; they keep c until answered. */
		while (c->parked) {
			struct nuv_request *r = c->parked;
			spreq_unpark(r);
			r->next_parked = gone;
			gone = r;
		}
		if (!c->is_uv) {
			c->reaped = true;
			if (c->outstanding == 0)
				free(c);
		}
		pthread_mutex_unlock(&srv->mu);
	}
	while (gone) {
		struct nuv_request *r = gone;
		gone = r->next_parked;
		r->next_parked = NULL;
		r->gone(r, r->gone_arg); /* answers r, which may free its connection */
	}
}

void server_deliver(nuv_server_t *srv)
{
	struct nuv_request *list, *deliver = NULL, **tail = &deliver;

	/* One hold of mu for the whole batch (nng's threads queue on it: a
	 * lock per request woke one of them each time): the requests whose
	 * connection closed meanwhile are dropped, the others delivered
	 * after it is let go.  A request handed over stays valid without mu:
	 * only this thread frees one that is neither being written nor
	 * parked (server_reap, nuv_reply). */
	pthread_mutex_lock(&srv->mu);
	list = srv->q_first;
	srv->q_first = srv->q_last = NULL;
	while (list) {
		struct nuv_request *r = list;
		list = r->next;
		r->next = NULL;
		if (r->conn->closed) {
			spreq_finish(r);
		} else {
			*tail = r;
			tail = &r->next;
		}
	}
	pthread_mutex_unlock(&srv->mu);

	while (deliver) {
		struct nuv_request *r = deliver;
		nng_msg *msg = r->msg;

		deliver = r->next;
		r->next = NULL;
		if (srv->closing) {
			/* Closed from a callback: freed with the server. */
			continue;
		}
		r->msg = NULL; /* the callee's now */
		srv->cb(r, msg, srv->arg);
	}
}

static void server_async_cb(uv_async_t *h)
{
	nuv_server_t *srv = h->data;

	server_reap(srv);
	server_deliver(srv);
}

/* Loop thread: one line per kind of refusal that happened since the last
 * line, at most once per SERVER_LOG_INTERVAL_MS. */
static void server_log(nuv_server_t *srv, int64_t now)
{
	struct nuv_server_stats s;
	struct nuv_server_limits lim;
	char refused[64], at_share[64], unread[64], bad[64], tls[64];
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
	memcpy(tls, srv->last_tls, sizeof(tls));
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
	if (s.closed_tls != srv->logged.closed_tls)
		log_warn("%s: closed %" PRIu64 " connections whose TLS handshake failed: not TLS, or a "
			 "certificate refused (the last from %s)",
			 srv->name, s.closed_tls - srv->logged.closed_tls, tls);
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
				spconn_close(c, CLOSE_HANDSHAKE);
		} else if (c->tx_first) {
			if (now - c->tx_since_ms >= srv->lim.reply_timeout_ms)
				spconn_close(c, CLOSE_UNREAD);
		} else if (c->outstanding == 0 && !c->waiting_port &&
			   now - c->last_request_ms >= srv->lim.idle_timeout_ms) {
			spconn_close(c, CLOSE_IDLE);
		}
	}
	pthread_mutex_unlock(&srv->mu);
	server_reap(srv);
	if (srv->uv)
		spuv_tick(srv);
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
 * frames as tcp does, inside the TLS records. */
static int url_head_len(const char *url, size_t *ret_len)
{
	static const struct {
		const char *scheme;
		size_t head_len;
	} schemes[] = {
		{ "tcp://", 8 },      { "tcp4://", 8 },      { "tcp6://", 8 },     { "tls+tcp://", 8 },
		{ "tls+tcp4://", 8 }, { "tls+tcp6://", 8 }, { "ipc://", 9 },      { "abstract://", 9 },
	};

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)) == 0) {
			*ret_len = schemes[i].head_len;
			return 0;
		}
	}
	return -EINVAL;
}

/* The wake-up and the tick, once the port listens. */
static void server_handles_start(nuv_server_t *srv)
{
	uv_async_init(srv->loop, &srv->async, server_async_cb);
	srv->async.data = srv;
	uv_timer_init(srv->loop, &srv->tick);
	srv->tick.data = srv;
	srv->open_handles += 2;
	server_tick_start(srv);
}

int nuv_server_open(uv_loop_t *loop, const char *url, nng_tls_config *tls, unsigned nctx, size_t recv_max,
		    nuv_request_cb cb, void *arg, nuv_server_t **ret_srv)
{
	nuv_server_t *srv;
	size_t head_len;
	int rv;

	if (nctx == 0 || url_head_len(url, &head_len) < 0 || (strncmp(url, "tls+", 4) == 0) != (tls != NULL))
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->loop = loop;
	srv->cb = cb;
	srv->arg = arg;
	srv->head_len = head_len;
	srv->tls = tls != NULL;
	srv->recv_max = recv_max ? recv_max : SERVER_RECV_MAX_DEFAULT;
	srv->max_in_flight = nctx;
	srv->lim = nuv_server_limits_default;
	snprintf(srv->name, sizeof(srv->name), "%s", url);
	srv->lim.name = srv->name;
	pthread_mutex_init(&srv->mu, NULL);

	/* Plain TCP: the loop serves it (hf_spconn_uv.c). */
	if (!tls && strncmp(url, "tcp", 3) == 0) {
		int r = spuv_listen(srv, url);
		if (r < 0) {
			pthread_mutex_destroy(&srv->mu);
			free(srv);
			return r;
		}
		srv->uv = true;
		server_handles_start(srv);
		*ret_srv = srv;
		return 0;
	}
	rv = nng_stream_listener_alloc(&srv->listener, url);
	if (rv != 0)
		goto fail;
	/* The listener takes its own hold on the configuration.  A stream
	 * it accepts does the TLS handshake with its first read and write:
	 * the handshake timeout bounds it, and a failure closes it. */
	if (tls && (rv = nng_stream_listener_set_ptr(srv->listener, NNG_OPT_TLS_CONFIG, tls)) != 0)
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

	server_handles_start(srv);
	pthread_mutex_lock(&srv->mu);
	accept_start(srv);
	pthread_mutex_unlock(&srv->mu);
	*ret_srv = srv;
	return 0;

fail:
	if (srv->listener)
		nng_stream_listener_free(srv->listener);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
	return nuv_errno(rv);
}

const char *nuv_request_peer(const nuv_request_t *r)
{
	/* Written at accept, before any request: no lock needed. */
	return r->conn->addr;
}

int64_t nuv_request_received_ms(const nuv_request_t *r)
{
	return r->received_ms; /* written before the hand-off */
}

int nuv_request_park(nuv_request_t *r, nuv_gone_cb gone, void *arg)
{
	nuv_server_t *srv = r->srv;
	int rc = 0;

	pthread_mutex_lock(&srv->mu);
	if (r->conn->closed || srv->closing || r->parked) {
		rc = -ENOTCONN;
	} else {
		r->gone = gone;
		r->gone_arg = arg;
		spreq_park(r);
	}
	pthread_mutex_unlock(&srv->mu);
	return rc;
}

void nuv_reply(nuv_request_t *r, nng_msg *reply)
{
	nuv_server_t *srv = r->srv;

	if (srv->closing) {
		/* r is freed with the server. */
		nng_msg_free(reply);
		return;
	}
	struct spconn *c = r->conn;
	bool send = false;

	pthread_mutex_lock(&srv->mu);
	spreq_unpark(r);
	if (!reply || c->closed) {
		nng_msg_free(reply);
		spreq_finish(r);
	} else {
		send = spconn_reply(r, reply);
	}
	pthread_mutex_unlock(&srv->mu);
	/* The write (a sendmsg on loopback delivers to the peer inline) is
	 * started without mu: held across it, nng's threads queued on mu and
	 * every unlock woke one (at 10,000 workers most of the coordinator's
	 * CPU went to those wake-ups).  On plain TCP and IPC it completes
	 * here too, without waking an nng thread (spconn_tx_send). */
	if (send)
		spconn_tx_send(c);
}

void server_handle_closed(nuv_server_t *srv)
{
	if (--srv->open_handles > 0)
		return;
	/* The requests the caller never answered, and their connections. */
	while (srv->live) {
		/* msg is NULL once delivered (the callee's), else a
		 * request delivery never reached. */
		spreq_finish(srv->live);
	}
	pthread_mutex_destroy(&srv->mu);
	free(srv);
}

static void server_free_cb(uv_handle_t *h)
{
	server_handle_closed(h->data);
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
	if (srv->uv) {
		spuv_listener_close(srv); /* no new connection after this */
	} else {
		nng_stream_listener_close(srv->listener);
		nng_aio_stop(srv->accept_aio); /* no new connection after this */
	}

	pthread_mutex_lock(&srv->mu);
	while (srv->first)
		spconn_close(srv->first, CLOSE_SERVER);
	pthread_mutex_unlock(&srv->mu);
	server_reap(srv);

	/* Requests received but not yet delivered. */
	pthread_mutex_lock(&srv->mu);
	list = srv->q_first;
	srv->q_first = srv->q_last = NULL;
	while (list) {
		struct nuv_request *r = list;
		list = r->next;
		spreq_finish(r);
	}
	pthread_mutex_unlock(&srv->mu);

	if (!srv->uv) {
		nng_aio_free(srv->accept_aio);
		nng_stream_listener_free(srv->listener);
	}
	uv_close((uv_handle_t *)&srv->async, server_free_cb);
	uv_close((uv_handle_t *)&srv->tick, server_free_cb);
}
