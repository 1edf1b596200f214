/* SPDX-License-Identifier: MIT
 *
 * The nng-to-libuv bridge (see hf_nuv.h).  The only code in hfleet that runs
 * on nng's threads is the aio callbacks and the server's pipe-event callback
 * below; they touch nothing but the aio, the pipe, the server's connection
 * table and counters and the locked hand-off queue (all under the server's
 * or client's mutex) and uv_async_send.
 *
 * A server tracks its connections in a table keyed by nng pipe id: a
 * connection is added when it has negotiated (or closed at once when the
 * server is at its cap) and removed when nng has closed it.  Each request
 * counts against its connection from receipt until its reply is handed to
 * the connection.  A loop-thread timer closes idle connections and writes
 * the rate-limited log lines.
 */
#include "hf_nuv.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "hf_log.h"
#include "hf_util.h"

int nuv_errno(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return -ESHUTDOWN;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
		return -ECONNRESET;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	case NNG_EPERM:
		return -EPERM;
	case NNG_ENOTSUP:
		return -ENOTSUP;
	default:
		return -EIO;
	}
}

/* ---- server ---- */

/* How often the counters of refused and closed connections may be logged:
 * a flood makes one line per interval, with the count. */
#define SERVER_LOG_INTERVAL_MS 10000
/* Connections closed per pass of the idle scan (a stack array). */
#define IDLE_CLOSE_BATCH 64

const struct nuv_server_limits nuv_server_limits_default = {
	.name = "server",
	.max_connections = 1024,
	.requests_per_connection = 4,
	.idle_timeout_ms = 60000,
	.reply_timeout_ms = 10000,
};

enum req_state { REQ_RECV, REQ_LOOP, REQ_SEND };

struct nuv_request {
	nuv_server_t *srv;
	nng_ctx ctx;
	nng_aio *aio;
	nng_msg *msg;
	uint32_t conn_id; /* the connection (nng pipe) it came on; 0: not counted */
	enum req_state state;
	struct nuv_request *next;
};

/* One connection (an nng pipe) of a server; a slot whose id is 0 is free. */
struct nuv_conn {
	uint32_t id;
	unsigned outstanding; /* requests received and not yet answered */
	bool closing;         /* this module closes it (or has) */
	bool close_pending;   /* ... on the loop thread's next turn */
	int64_t last_request_ms;
	nng_sockaddr local, remote; /* to find its socket (conn_shut) */
	char addr[64];
};

struct nuv_server {
	uv_loop_t *loop;
	nng_socket sock;
	uv_async_t async;
	uv_timer_t tick;      /* idle scan and log lines, loop thread */
	int open_handles;     /* async and tick, until their close callbacks */
	pthread_mutex_t mu;
	struct nuv_request *head, *tail; /* received, waiting for the loop; under mu */
	struct nuv_request *reqs;
	unsigned nreqs;
	nuv_request_cb cb;
	void *arg;
	bool closing;

	/* Under mu, written by nng's threads (pipe events, requests) and the
	 * loop: the connection table (open addressing, linear probing; the
	 * size a power of two, at most half full), the limits in force and the
	 * counters. */
	struct nuv_conn *conns;
	size_t conns_size, n_conns, n_close_pending;
	struct nuv_server_limits lim;
	char name[48];
	struct nuv_server_stats stats;
	char last_refused[64], last_over_share[64], last_unread[64];

	/* Loop thread: the counters as last logged. */
	struct nuv_server_stats logged;
	int64_t logged_ms;
};

/* ---- the connection table (caller holds mu) ---- */

static size_t conn_slot(const nuv_server_t *srv, uint32_t id)
{
	return (size_t)(id * UINT32_C(2654435761)) & (srv->conns_size - 1);
}

static struct nuv_conn *conn_find(nuv_server_t *srv, uint32_t id)
{
	if (id == 0 || srv->conns_size == 0)
		return NULL;
	for (size_t i = conn_slot(srv, id);; i = (i + 1) & (srv->conns_size - 1)) {
		if (srv->conns[i].id == id)
			return &srv->conns[i];
		if (srv->conns[i].id == 0)
			return NULL;
	}
}

static struct nuv_conn *conn_place(nuv_server_t *srv, const struct nuv_conn *c)
{
	size_t i = conn_slot(srv, c->id);

	while (srv->conns[i].id != 0)
		i = (i + 1) & (srv->conns_size - 1);
	srv->conns[i] = *c;
	return &srv->conns[i];
}

static struct nuv_conn *conn_add(nuv_server_t *srv, uint32_t id)
{
	if ((srv->n_conns + 1) * 2 > srv->conns_size) {
		size_t old_size = srv->conns_size, size = old_size ? old_size * 2 : 64;
		struct nuv_conn *old = srv->conns, *grown = calloc(size, sizeof(*grown));
		if (!grown)
			return NULL;
		srv->conns = grown;
		srv->conns_size = size;
		for (size_t i = 0; i < old_size; i++)
			if (old[i].id != 0)
				conn_place(srv, &old[i]);
		free(old);
	}
	srv->n_conns++;
	return conn_place(srv, &(struct nuv_conn){ .id = id });
}

/* Removes c, moving back the entries after it that its slot made probe
 * further (so that no lookup stops early at the hole). */
static void conn_remove(nuv_server_t *srv, struct nuv_conn *c)
{
	size_t mask = srv->conns_size - 1, hole = (size_t)(c - srv->conns);

	if (c->close_pending)
		srv->n_close_pending--;

	for (size_t i = (hole + 1) & mask; srv->conns[i].id != 0; i = (i + 1) & mask) {
		size_t home = conn_slot(srv, srv->conns[i].id);
		/* Entry i may fill the hole unless its home lies cyclically in (hole, i]. */
		bool stays = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
		if (!stays) {
			srv->conns[hole] = srv->conns[i];
			hole = i;
		}
	}
	srv->conns[hole] = (struct nuv_conn){ 0 };
	srv->n_conns--;
}

static void pipe_addr(nng_pipe p, char *buf, size_t len)
{
	nng_sockaddr sa;
	char ip[INET6_ADDRSTRLEN];

	snprintf(buf, len, "an unknown address");
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
		return;
	if (sa.s_family == NNG_AF_INET && inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "%s:%u", ip, ntohs(sa.s_in.sa_port));
	else if (sa.s_family == NNG_AF_INET6 && inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip)))
		snprintf(buf, len, "[%s]:%u", ip, ntohs(sa.s_in6.sa_port));
}

static bool sockaddr_is(const struct sockaddr_storage *ss, const nng_sockaddr *sa)
{
	if (ss->ss_family == AF_INET && sa->s_family == NNG_AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		return in->sin_port == sa->s_in.sa_port && in->sin_addr.s_addr == sa->s_in.sa_addr;
	}
	if (ss->ss_family == AF_INET6 && sa->s_family == NNG_AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		return in6->sin6_port == sa->s_in6.sa_port &&
		       memcmp(&in6->sin6_addr, sa->s_in6.sa_addr, 16) == 0;
	}
	return false;
}

static bool socket_is(int fd, const nng_sockaddr *local, const nng_sockaddr *remote)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 || !sockaddr_is(&ss, remote))
		return false;
	len = sizeof(ss);
	return getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && sockaddr_is(&ss, local);
}

/* The descriptor of our TCP socket with these two ends, or -1. */
static int socket_find(const nng_sockaddr *local, const nng_sockaddr *remote)
{
	DIR *d;
	struct dirent *e;
	int found = -1;

	if (remote->s_family != NNG_AF_INET && remote->s_family != NNG_AF_INET6)
		return -1;
	d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (found < 0 && (e = readdir(d)) != NULL) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end != '\0' || end == e->d_name || fd == dirfd(d) || fd > INT_MAX)
			continue;
		if (socket_is((int)fd, local, remote))
			found = (int)fd;
	}
	closedir(d);
	return found;
}

/* Loop thread: ends connection id.
 *
 * nng 1.5.2 (Debian 12) can wedge its pipe reaper for good when
 * nng_pipe_close races with the TCP transport re-arming a receive or a
 * send that just completed in part (tcptran_pipe_recv_cb and _send_cb
 * start the next read or write without checking that the pipe was closed;
 * the read then never completes and the reaper waits for it forever, and
 * with it every later pipe of the process: no REM_POST, no freed slot).  A
 * peer that is sending hits that window often.  So a TCP connection is
 * ended by shutting down the reading side of its socket instead: nng sees
 * the end of the stream on its own receive path and closes the pipe from
 * there, where nothing races.  Other transports, or a socket not found,
 * fall back to nng_pipe_close. */
static void conn_shut(nuv_server_t *srv, uint32_t id, const nng_sockaddr *local, const nng_sockaddr *remote)
{
	int fd = socket_find(local, remote);
	bool gone;

	pthread_mutex_lock(&srv->mu);
	/* The descriptor stays ours while the pipe is in the table: nng closes
	 * it only after REM_POST, which waits for mu. */
	gone = conn_find(srv, id) == NULL;
	if (!gone && fd >= 0 && socket_is(fd, local, remote) && shutdown(fd, SHUT_RD) == 0)
		gone = true;
	pthread_mutex_unlock(&srv->mu);
	if (!gone) {
		nng_pipe p = NNG_PIPE_INITIALIZER;
		p.id = id;
		nng_pipe_close(p); /* NNG_ENOENT when it has gone meanwhile: fine */
	}
}

/* nng's threads, under mu: closes c on the loop thread.  nng 1.5 can stop
 * reaping pipes for good when one is closed from inside the callback chain
 * of its own receive (seen here: REM_POST never came again), so callbacks
 * only mark the connection and wake the loop. */
static void conn_close_later(nuv_server_t *srv, struct nuv_conn *c)
{
	c->closing = c->close_pending = true;
	srv->n_close_pending++;
}

/* Loop thread: closes the connections marked by conn_close_later, or with
 * idle_ms >= 0 also those idle for that long, in batches (nng_pipe_close
 * is not called under mu). */
static void server_close_marked(nuv_server_t *srv, int64_t now, int64_t idle_ms)
{
	struct {
		uint32_t id;
		nng_sockaddr local, remote;
	} end[IDLE_CLOSE_BATCH];
	size_t n;

	do {
		n = 0;
		pthread_mutex_lock(&srv->mu);
		for (size_t i = 0; i < srv->conns_size && n < IDLE_CLOSE_BATCH; i++) {
			struct nuv_conn *c = &srv->conns[i];
			if (c->id == 0)
				continue;
			if (c->close_pending) {
				c->close_pending = false;
				srv->n_close_pending--;
			} else if (idle_ms >= 0 && !c->closing && c->outstanding == 0 &&
				   now - c->last_request_ms >= idle_ms) {
				c->closing = true;
				srv->stats.closed_idle++;
			} else {
				continue;
			}
			end[n].id = c->id;
			end[n].local = c->local;
			end[n].remote = c->remote;
			n++;
		}
		pthread_mutex_unlock(&srv->mu);
		for (size_t i = 0; i < n; i++)
			conn_shut(srv, end[i].id, &end[i].local, &end[i].remote);
	} while (n == IDLE_CLOSE_BATCH);
}

/* nng's threads: a connection has negotiated (ADD_PRE; closing it here
 * means the socket never sees it and no further event comes), or has gone
 * (REM_POST). */
static void server_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	nuv_server_t *srv = arg;
	uint32_t id = (uint32_t)nng_pipe_id(p);
	struct nuv_conn *c;
	nng_sockaddr local, remote;
	char addr[64];

	if (ev == NNG_PIPE_EV_REM_POST) {
		pthread_mutex_lock(&srv->mu);
		if ((c = conn_find(srv, id)) != NULL)
			conn_remove(srv, c);
		pthread_mutex_unlock(&srv->mu);
		return;
	}
	pipe_addr(p, addr, sizeof(addr));
	if (nng_pipe_get_addr(p, NNG_OPT_LOCADDR, &local) != 0 ||
	    nng_pipe_get_addr(p, NNG_OPT_REMADDR, &remote) != 0)
		local.s_family = remote.s_family = NNG_AF_UNSPEC;
	pthread_mutex_lock(&srv->mu);
	c = srv->n_conns < srv->lim.max_connections ? conn_add(srv, id) : NULL;
	if (c) {
		c->last_request_ms = hf_mono_ms();
		c->local = local;
		c->remote = remote;
		memcpy(c->addr, addr, sizeof(c->addr));
	} else {
		srv->stats.refused_over_cap++;
		memcpy(srv->last_refused, addr, sizeof(addr));
	}
	pthread_mutex_unlock(&srv->mu);
	if (!c)
		nng_pipe_close(p);
}

/* nng's threads: counts a received request against its connection's share.
 * False when the request must be dropped: the connection already has its
 * share unanswered, or is being closed. */
static bool request_admit(nuv_server_t *srv, struct nuv_request *r, nng_msg *msg)
{
	uint32_t id = (uint32_t)nng_pipe_id(nng_msg_get_pipe(msg));
	struct nuv_conn *c;
	bool ok = true;

	r->conn_id = 0;
	pthread_mutex_lock(&srv->mu);
	c = conn_find(srv, id);
	if (c && c->closing) {
		ok = false;
	} else if (c && c->outstanding >= srv->lim.requests_per_connection) {
		srv->stats.refused_over_share++;
		memcpy(srv->last_over_share, c->addr, sizeof(c->addr));
		ok = false;
	} else if (c) {
		c->outstanding++;
		c->last_request_ms = hf_mono_ms();
		r->conn_id = id;
	}
	pthread_mutex_unlock(&srv->mu);
	return ok;
}

/* Any thread: r's request is answered (or dropped).  reply_timed_out: its
 * reply waited reply_timeout for the connection, which is closed. */
static void request_done(nuv_server_t *srv, struct nuv_request *r, bool reply_timed_out)
{
	uint32_t id = r->conn_id;
	struct nuv_conn *c;
	bool wake = false;

	r->conn_id = 0;
	if (id == 0)
		return;
	pthread_mutex_lock(&srv->mu);
	if ((c = conn_find(srv, id)) != NULL) {
		if (c->outstanding > 0)
			c->outstanding--;
		if (reply_timed_out && !c->closing) {
			conn_close_later(srv, c);
			srv->stats.closed_unread++;
			memcpy(srv->last_unread, c->addr, sizeof(c->addr));
			wake = true;
		}
	}
	pthread_mutex_unlock(&srv->mu);
	if (wake)
		uv_async_send(&srv->async);
}

static void request_arm(struct nuv_request *r)
{
	r->state = REQ_RECV;
	nng_aio_set_timeout(r->aio, NNG_DURATION_INFINITE);
	nng_ctx_recv(r->ctx, r->aio);
}

static void server_aio_cb(void *arg)
{
	struct nuv_request *r = arg;
	nuv_server_t *srv = r->srv;
	int rv = nng_aio_result(r->aio);
	nng_msg *msg;

	if (r->state == REQ_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(r->aio));
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		request_done(srv, r, rv == NNG_ETIMEDOUT);
		request_arm(r);
		return;
	}
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv != 0) {
		request_arm(r);
		return;
	}
	msg = nng_aio_get_msg(r->aio);
	if (!request_admit(srv, r, msg)) {
		/* Re-arming abandons the request: REP allows a context that
		 * received to receive again instead of replying. */
		nng_msg_free(msg);
		request_arm(r);
		return;
	}
	r->msg = msg;
	r->state = REQ_LOOP;
	r->next = NULL;
	pthread_mutex_lock(&srv->mu);
	if (srv->tail)
		srv->tail->next = r;
	else
		srv->head = r;
	srv->tail = r;
	pthread_mutex_unlock(&srv->mu);
	uv_async_send(&srv->async);
}

static void server_async_cb(uv_async_t *h)
{
	nuv_server_t *srv = h->data;
	struct nuv_request *list;
	bool close;

	pthread_mutex_lock(&srv->mu);
	list = srv->head;
	srv->head = srv->tail = NULL;
	close = srv->n_close_pending > 0;
	pthread_mutex_unlock(&srv->mu);
	if (close && !srv->closing)
		server_close_marked(srv, 0, -1);

	while (list) {
		struct nuv_request *r = list;
		list = r->next;
		nng_msg *msg = r->msg;
		r->msg = NULL;
		if (srv->closing) {
			nng_msg_free(msg);
			continue;
		}
		srv->cb(r, msg, srv->arg);
	}
}

/* Loop thread: one line per kind of refusal that happened since the last
 * line, at most once per SERVER_LOG_INTERVAL_MS. */
static void server_log(nuv_server_t *srv, int64_t now)
{
	struct nuv_server_stats s;
	struct nuv_server_limits lim;
	char refused[64], over_share[64], unread[64];

	if (srv->logged_ms != 0 && now - srv->logged_ms < SERVER_LOG_INTERVAL_MS)
		return;
	pthread_mutex_lock(&srv->mu);
	s = srv->stats;
	lim = srv->lim;
	memcpy(refused, srv->last_refused, sizeof(refused));
	memcpy(over_share, srv->last_over_share, sizeof(over_share));
	memcpy(unread, srv->last_unread, sizeof(unread));
	pthread_mutex_unlock(&srv->mu);

	if (s.refused_over_cap != srv->logged.refused_over_cap)
		log_warn("%s: refused %" PRIu64 " connections: %u are open, the most allowed (the last from %s)",
			 srv->name, s.refused_over_cap - srv->logged.refused_over_cap, lim.max_connections,
			 refused);
	if (s.refused_over_share != srv->logged.refused_over_share)
		log_warn("%s: dropped %" PRIu64 " requests from connections that already had %u unanswered "
			 "(the last from %s)",
			 srv->name, s.refused_over_share - srv->logged.refused_over_share,
			 lim.requests_per_connection, over_share);
	if (s.closed_unread != srv->logged.closed_unread)
		log_warn("%s: closed %" PRIu64 " connections that did not take a reply within %" PRId64
			 " ms (the last from %s)",
			 srv->name, s.closed_unread - srv->logged.closed_unread, lim.reply_timeout_ms, unread);
	if (s.closed_idle != srv->logged.closed_idle)
		log_info("%s: closed %" PRIu64 " connections that sent no request for %" PRId64 " ms",
			 srv->name, s.closed_idle - srv->logged.closed_idle, lim.idle_timeout_ms);
	if (memcmp(&s, &srv->logged, sizeof(s)) != 0) {
		srv->logged = s;
		srv->logged_ms = now;
	}
}

/* Loop thread: closes the connections idle for idle_timeout.  A connection
 * with a request unanswered is not idle: the wait is the server's. */
static void server_tick_cb(uv_timer_t *h)
{
	nuv_server_t *srv = h->data;
	int64_t now = hf_mono_ms();

	if (srv->closing)
		return;
	server_close_marked(srv, now, srv->lim.idle_timeout_ms);
	server_log(srv, now);
}

static void server_tick_start(nuv_server_t *srv)
{
	/* A quarter of the idle timeout, between 100 ms and 1 s: a connection
	 * is closed within 1.25 idle timeouts, at a cost of one scan of the
	 * table per tick. */
	int64_t period = srv->lim.idle_timeout_ms / 4;
	if (period < 100)
		period = 100;
	if (period > 1000)
		period = 1000;
	uv_timer_start(&srv->tick, server_tick_cb, (uint64_t)period, (uint64_t)period);
}

int nuv_server_limit(nuv_server_t *srv, const struct nuv_server_limits *lim)
{
	if (lim->max_connections == 0 || lim->requests_per_connection == 0 || lim->idle_timeout_ms <= 0 ||
	    lim->reply_timeout_ms <= 0 || lim->reply_timeout_ms > INT32_MAX)
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
	ret_stats->connections_open = srv->n_conns;
	pthread_mutex_unlock(&srv->mu);
}

int nuv_server_open(uv_loop_t *loop, const char *url, unsigned nctx, size_t recv_max,
		    nuv_request_cb cb, void *arg, nuv_server_t **ret_srv)
{
	nuv_server_t *srv;
	nng_listener listener;
	int rv;

	if (nctx == 0)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->reqs = calloc(nctx, sizeof(*srv->reqs));
	if (!srv->reqs) {
		free(srv);
		return -ENOMEM;
	}
	srv->loop = loop;
	srv->cb = cb;
	srv->arg = arg;
	srv->lim = nuv_server_limits_default;
	snprintf(srv->name, sizeof(srv->name), "%s", url);
	srv->lim.name = srv->name;
	pthread_mutex_init(&srv->mu, NULL);

	rv = nng_rep0_open(&srv->sock);
	if (rv != 0)
		goto fail_free;
	if (recv_max)
		nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, recv_max);
	rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, server_pipe_cb, srv);
	if (rv == 0)
		rv = nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, server_pipe_cb, srv);
	if (rv != 0)
		goto fail_close;

	for (unsigned i = 0; i < nctx; i++) {
		struct nuv_request *r = &srv->reqs[i];
		r->srv = srv;
		rv = nng_ctx_open(&r->ctx, srv->sock);
		if (rv == 0)
			rv = nng_aio_alloc(&r->aio, server_aio_cb, r);
		if (rv != 0)
			goto fail_close;
		srv->nreqs = i + 1;
	}

	rv = nng_listener_create(&listener, srv->sock, url);
	if (rv != 0)
		goto fail_close;
	/* Keepalive finds peers that vanished without a FIN (half-open), for
	 * transports that have it; the idle timeout bounds them sooner. */
	(void)nng_listener_set_bool(listener, NNG_OPT_TCP_KEEPALIVE, true);
	rv = nng_listener_start(listener, 0);
	if (rv != 0)
		goto fail_close;

	uv_async_init(loop, &srv->async, server_async_cb);
	srv->async.data = srv;
	uv_timer_init(loop, &srv->tick);
	srv->tick.data = srv;
	srv->open_handles = 2;
	server_tick_start(srv);
	for (unsigned i = 0; i < srv->nreqs; i++)
		request_arm(&srv->reqs[i]);
	*ret_srv = srv;
	return 0;

fail_close:
	nng_close(srv->sock);
	for (unsigned i = 0; i < nctx; i++)
		if (srv->reqs[i].aio)
			nng_aio_free(srv->reqs[i].aio);
fail_free:
	free(srv->conns);
	pthread_mutex_destroy(&srv->mu);
	free(srv->reqs);
	free(srv);
	return nuv_errno(rv);
}

void nuv_reply(nuv_request_t *r, nng_msg *reply)
{
	nuv_server_t *srv = r->srv;
	int64_t timeout_ms;

	if (srv->closing) {
		nng_msg_free(reply);
		return;
	}
	if (!reply) {
		request_done(srv, r, false);
		request_arm(r);
		return;
	}
	pthread_mutex_lock(&srv->mu);
	timeout_ms = srv->lim.reply_timeout_ms;
	pthread_mutex_unlock(&srv->mu);
	/* The send completes once the reply is handed to the connection; it
	 * waits only while earlier replies to that connection are still being
	 * written, that is while the peer does not read. */
	r->state = REQ_SEND;
	nng_aio_set_timeout(r->aio, (nng_duration)timeout_ms);
	nng_aio_set_msg(r->aio, reply);
	nng_ctx_send(r->ctx, r->aio);
}

static void server_free_cb(uv_handle_t *h)
{
	nuv_server_t *srv = h->data;
	if (--srv->open_handles > 0)
		return;
	pthread_mutex_destroy(&srv->mu);
	free(srv->conns);
	free(srv->reqs);
	free(srv);
}

void nuv_server_close(nuv_server_t *srv)
{
	if (!srv)
		return;
	srv->closing = true;
	uv_timer_stop(&srv->tick);
	/* No pipe event after this returns (it waits for one in progress). */
	nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, NULL, NULL);
	nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, NULL, NULL);
	nng_close(srv->sock);
	for (unsigned i = 0; i < srv->nreqs; i++) {
		nng_aio_free(srv->reqs[i].aio); /* waits for its callback */
		if (srv->reqs[i].msg)
			nng_msg_free(srv->reqs[i].msg);
	}
	/* Requests queued for the loop but not yet delivered. */
	pthread_mutex_lock(&srv->mu);
	for (struct nuv_request *r = srv->head; r; r = r->next) {
		nng_msg_free(r->msg);
		r->msg = NULL;
	}
	srv->head = srv->tail = NULL;
	pthread_mutex_unlock(&srv->mu);
	uv_close((uv_handle_t *)&srv->async, server_free_cb);
	uv_close((uv_handle_t *)&srv->tick, server_free_cb);
}

/* ---- client ---- */

enum call_state { CALL_SEND, CALL_RECV, CALL_DONE };

struct nuv_call {
	nuv_client_t *c;
	nng_ctx ctx;
	nng_aio *aio;
	enum call_state state;
	int rv;
	nng_msg *reply;
	nuv_reply_cb cb;
	void *arg;
	struct nuv_call *next;       /* hand-off queue, under mu */
	struct nuv_call *prev_out, *next_out; /* outstanding list, loop thread */
};

struct nuv_client {
	uv_loop_t *loop;
	nng_socket sock;
	uv_async_t async;
	pthread_mutex_t mu;
	struct nuv_call *head, *tail;
	struct nuv_call *outstanding;
	bool closing;
};

static void client_post(struct nuv_call *k, int rv, nng_msg *reply)
{
	nuv_client_t *c = k->c;
	k->rv = rv;
	k->reply = reply;
	k->next = NULL;
	pthread_mutex_lock(&c->mu);
	k->state = CALL_DONE;
	if (c->tail)
		c->tail->next = k;
	else
		c->head = k;
	c->tail = k;
	pthread_mutex_unlock(&c->mu);
	uv_async_send(&c->async);
}

static void client_aio_cb(void *arg)
{
	struct nuv_call *k = arg;
	int rv = nng_aio_result(k->aio);

	if (k->state == CALL_SEND) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(k->aio));
			client_post(k, nuv_errno(rv), NULL);
			return;
		}
		pthread_mutex_lock(&k->c->mu);
		k->state = CALL_RECV;
		pthread_mutex_unlock(&k->c->mu);
		nng_ctx_recv(k->ctx, k->aio);
		return;
	}
	if (rv != 0)
		client_post(k, nuv_errno(rv), NULL);
	else
		client_post(k, 0, nng_aio_get_msg(k->aio));
}

static void call_finish(nuv_client_t *c, struct nuv_call *k)
{
	if (k->prev_out)
		k->prev_out->next_out = k->next_out;
	else
		c->outstanding = k->next_out;
	if (k->next_out)
		k->next_out->prev_out = k->prev_out;
	nng_aio_free(k->aio);
	nng_ctx_close(k->ctx);
	k->cb(k->rv, k->reply, k->arg);
	free(k);
}

static void client_drain(nuv_client_t *c)
{
	struct nuv_call *list;

	pthread_mutex_lock(&c->mu);
	list = c->head;
	c->head = c->tail = NULL;
	pthread_mutex_unlock(&c->mu);
	while (list) {
		struct nuv_call *k = list;
		list = k->next;
		call_finish(c, k);
	}
}

/* True while some call has not completed on nng's side.  Calls that have
 * completed but are held by a drain further up the stack (close called from
 * a reply callback) are finished by that drain. */
static bool client_in_flight(nuv_client_t *c)
{
	bool busy = false;
	pthread_mutex_lock(&c->mu);
	for (struct nuv_call *k = c->outstanding; k && !busy; k = k->next_out)
		busy = k->state != CALL_DONE;
	pthread_mutex_unlock(&c->mu);
	return busy;
}

static void client_async_cb(uv_async_t *h)
{
	client_drain(h->data);
}

int nuv_client_open(uv_loop_t *loop, const char *url, size_t recv_max, nuv_client_t **ret_client)
{
	nuv_client_t *c = calloc(1, sizeof(*c));
	int rv;

	if (!c)
		return -ENOMEM;
	c->loop = loop;
	pthread_mutex_init(&c->mu, NULL);
	rv = nng_req0_open(&c->sock);
	if (rv != 0)
		goto fail;
	if (recv_max)
		nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, recv_max);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 2000);
	/* Several addresses (a coordinator and its standby): dial them all; only
	 * the active one listens, and requests go to whichever is connected. */
	char *copy = strdup(url), *save = NULL;
	if (!copy) {
		nng_close(c->sock);
		rv = NNG_ENOMEM;
		goto fail;
	}
	rv = NNG_EADDRINVAL;
	for (char *one = strtok_r(copy, ", ", &save); one; one = strtok_r(NULL, ", ", &save)) {
		rv = nng_dial(c->sock, one, NULL, NNG_FLAG_NONBLOCK);
		if (rv != 0)
			break;
	}
	free(copy);
	if (rv != 0) {
		nng_close(c->sock);
		goto fail;
	}
	uv_async_init(loop, &c->async, client_async_cb);
	c->async.data = c;
	*ret_client = c;
	return 0;
fail:
	pthread_mutex_destroy(&c->mu);
	free(c);
	return nuv_errno(rv);
}

int nuv_client_call(nuv_client_t *c, nng_msg *msg, int timeout_ms, nuv_reply_cb cb, void *arg)
{
	struct nuv_call *k;
	int rv;

	if (c->closing) {
		nng_msg_free(msg);
		return -ESHUTDOWN;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		nng_msg_free(msg);
		return -ENOMEM;
	}
	k->c = c;
	k->cb = cb;
	k->arg = arg;
	rv = nng_ctx_open(&k->ctx, c->sock);
	if (rv != 0) {
		free(k);
		nng_msg_free(msg);
		return nuv_errno(rv);
	}
	rv = nng_aio_alloc(&k->aio, client_aio_cb, k);
	if (rv != 0) {
		nng_ctx_close(k->ctx);
		free(k);
		nng_msg_free(msg);
		return nuv_errno(rv);
	}
	k->next_out = c->outstanding;
	if (c->outstanding)
		c->outstanding->prev_out = k;
	c->outstanding = k;

	nng_aio_set_timeout(k->aio, timeout_ms);
	nng_aio_set_msg(k->aio, msg);
	k->state = CALL_SEND;
	nng_ctx_send(k->ctx, k->aio);
	return 0;
}

static void client_free_cb(uv_handle_t *h)
{
	nuv_client_t *c = h->data;
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void nuv_client_close(nuv_client_t *c)
{
	if (!c)
		return;
	c->closing = true;
	nng_close(c->sock);
	/* Every outstanding aio completes with ECLOSED and is posted; wait for
	 * each callback, then deliver them here rather than on a later turn of
	 * the loop. */
	while (client_in_flight(c)) {
		for (struct nuv_call *k = c->outstanding; k; k = k->next_out)
			nng_aio_wait(k->aio);
		client_drain(c);
		nng_msleep(1); /* a callback re-armed its aio: let it fail too */
	}
	client_drain(c);
	uv_close((uv_handle_t *)&c->async, client_free_cb);
}

/* ---- file limit ---- */

int nuv_nofile_raise(uint64_t *ret_limit)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
	}
	*ret_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	return 0;
}
