/* SPDX-License-Identifier: MIT
 *
 * The SP server's plain-TCP transport: the listener and each connection's
 * socket as libuv handles of the server's loop (see hf_spserver.c for the
 * wire, the limits and the lock, hf_spconn.c for what happens on a
 * connection).
 *
 * Why: through nng's streams, every request crossed three threads (nng's
 * poller read it, one of nng's task threads ran our completion, which woke
 * the loop), and every read was re-armed with an epoll_ctl under the
 * server's mutex.  At 10,000 workers polling once a second that was about
 * half of the coordinator's CPU: nng's threads had 47 % of its samples,
 * most of them in context switches and futex waits.  Here the loop reads
 * the socket itself when epoll says it is readable, cuts the frames, hands
 * the requests to the callback and writes the replies, without a thread
 * hop or a wake-up.  TLS (nng's mbedTLS streams) and IPC stay on nng.
 *
 * Threads: everything here runs on the loop thread.  The functions the
 * state machine calls (spuv_rx_start, spuv_tx_send) run under srv->mu, as
 * all of hf_spconn.c does; the libuv callbacks take it.  nng's threads
 * never touch a libuv connection, so mu is never contended for one.
 *
 * Reading: a connection reads while the state machine wants bytes
 * (conn_rx_start -> spuv_rx_start says where they go); the read callback
 * passes them to spconn_rx_done, which cuts frames and either asks for
 * more (reading goes on, no system call) or pauses the connection (its
 * share or the port is full: reading stops until spreq_finish resumes it).
 * The requests a read callback queued are delivered when it has let go of
 * mu (server_deliver).
 *
 * Writing: the reply is tried at once (uv_try_write: a socket with room
 * takes it inside the call); what the socket did not take goes through
 * one uv_write, whose callback continues with the next reply.
 *
 * Closing: spconn_close (any path, under mu) marks the connection closed
 * and queues it for server_reap, which calls spuv_close: reading stops and
 * the handle is closed.  A write still waiting ends with UV_ECANCELED
 * before the close callback, which frees the connection once its
 * requests are done (spreq_finish frees it otherwise).
 */
#include "hf_spserver-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_util.h"

/* The listen backlog: a fleet that starts at once connects at once (the
 * kernel caps it at net.core.somaxconn). */
#define SPUV_BACKLOG 4096

/* What nng's errors mean to spconn_rx_done and spconn_tx_done: a socket
 * error is the peer's (CLOSE_PEER). */
#define SPUV_FAILED NNG_ECONNRESET

/* "127.0.0.1:5555" or "[::1]:5555", as spconn_addr writes nng's. */
static void spuv_addr(uv_tcp_t *h, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	int n = (int)sizeof(ss);
	char ip[INET6_ADDRSTRLEN];

	snprintf(buf, len, "an unknown address");
	if (uv_tcp_getpeername(h, (struct sockaddr *)&ss, &n) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
		if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)))
			snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)))
			snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	}
}

/* ---- reading ---- */

static void spuv_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct spconn *c = h->data;

	(void)suggested;
	/* Only while a read is wanted (reading stops otherwise): its room. */
	*buf = c->rx_busy ? c->rx_want : uv_buf_init(NULL, 0);
}

static void spuv_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct spconn *c = s->data;
	nuv_server_t *srv = c->srv;

	(void)buf;
	if (nread == 0)
		return; /* nothing read (EAGAIN) */
	pthread_mutex_lock(&srv->mu);
	if (nread == UV_ENOBUFS) {
		/* No read wanted (spuv_alloc_cb gave no room): none was made,
		 * and the socket, still readable, must not be watched. */
		if (c->uv_reading && !c->rx_busy) {
			uv_read_stop(s);
			c->uv_reading = false;
		}
		pthread_mutex_unlock(&srv->mu);
		return;
	}
	srv->uv_reading = true;
	spconn_rx_done(c, nread < 0 ? SPUV_FAILED : 0, nread < 0 ? 0 : (size_t)nread);
	/* Paused (its share or the port is full), or closed: no more reads
	 * until conn_rx_start asks again. */
	if (c->uv_reading && (c->closed || !c->rx_busy)) {
		uv_read_stop(s);
		c->uv_reading = false;
	}
	srv->uv_reading = false;
	pthread_mutex_unlock(&srv->mu);
	server_deliver(srv);
}

void spuv_rx_start(struct spconn *c, void *buf, size_t len)
{
	if (c->closed) {
		c->rx_busy = false;
		return;
	}
	c->rx_want = uv_buf_init(buf, (unsigned)len);
	if (!c->uv_reading && uv_read_start((uv_stream_t *)&c->uvs, spuv_alloc_cb, spuv_read_cb) == 0)
		c->uv_reading = true;
	else if (!c->uv_reading)
		spconn_rx_done(c, SPUV_FAILED, 0);
}

/* ---- writing ---- */

static size_t spuv_tx_len(const struct spconn *c)
{
	size_t n = 0;

	for (unsigned i = 0; i < c->tx_n; i++)
		n += c->tx_iov[i].iov_len;
	return n;
}

static void spuv_write_cb(uv_write_t *req, int status)
{
	struct spconn *c = req->data;
	nuv_server_t *srv = c->srv;

	pthread_mutex_lock(&srv->mu);
	/* uv_write writes all or fails: what was left of c->tx_iov. */
	spconn_tx_done(c, status == 0 ? 0 : SPUV_FAILED, status == 0 ? spuv_tx_len(c) : 0);
	pthread_mutex_unlock(&srv->mu);
}

void spuv_tx_send(struct spconn *c)
{
	/* spconn_tx_done below starts the next reply through conn_tx_start,
	 * which calls this again: that call leaves the write to this loop
	 * (no recursion however many replies are queued). */
	if (c->uv_tx_writing)
		return;
	c->uv_tx_writing = true;
	while (c->tx_busy && !c->closed) {
		uv_buf_t bufs[3];
		size_t total = spuv_tx_len(c);
		int n;

		for (unsigned i = 0; i < c->tx_n; i++)
			bufs[i] = uv_buf_init(c->tx_iov[i].iov_buf, (unsigned)c->tx_iov[i].iov_len);
		n = uv_try_write((uv_stream_t *)&c->uvs, bufs, c->tx_n);
		if (n == UV_EAGAIN || (n >= 0 && (size_t)n < total)) {
			/* The rest waits for room: counted as written so far, the
			 * iov set to what is left, and one uv_write for it. */
			size_t done = n > 0 ? (size_t)n : 0;
			unsigned k = 0;
			c->tx_off += done;
			for (unsigned i = 0; i < c->tx_n; i++) {
				size_t l = c->tx_iov[i].iov_len;
				if (done >= l) {
					done -= l;
					continue;
				}
				bufs[k] = uv_buf_init((char *)c->tx_iov[i].iov_buf + done, (unsigned)(l - done));
				c->tx_iov[k].iov_buf = bufs[k].base;
				c->tx_iov[k].iov_len = bufs[k].len;
				k++;
				done = 0;
			}
			c->tx_n = k;
			c->wreq.data = c;
			if (uv_write(&c->wreq, (uv_stream_t *)&c->uvs, bufs, k, spuv_write_cb) != 0)
				spconn_tx_done(c, SPUV_FAILED, 0);
			break;
		}
		/* All of it (or a failure): the next reply, if any, is
		 * prepared by spconn_tx_done and written by this loop. */
		spconn_tx_done(c, n < 0 ? SPUV_FAILED : 0, n < 0 ? 0 : (size_t)n);
	}
	c->uv_tx_writing = false;
}

/* ---- accepting and closing ---- */

static void spuv_conn_close_cb(uv_handle_t *h)
{
	struct spconn *c = h->data;
	nuv_server_t *srv = c->srv;

	pthread_mutex_lock(&srv->mu);
	c->reaped = true;
	if (c->outstanding == 0)
		free(c);
	pthread_mutex_unlock(&srv->mu);
	server_handle_closed(srv);
}

void spuv_close(struct spconn *c)
{
	if (c->uv_reading) {
		uv_read_stop((uv_stream_t *)&c->uvs);
		c->uv_reading = false;
	}
	uv_close((uv_handle_t *)&c->uvs, spuv_conn_close_cb);
}

/* A listener that could not listen: its handle alone. */
static void spuv_free_cb(uv_handle_t *h)
{
	free(h);
}

static void spuv_keepalive(uv_tcp_t *h)
{
	uv_os_fd_t fd;
	int on = 1;

	/* Keepalive finds peers that vanished without a FIN, at the system's
	 * intervals (as nng sets it); nodelay: replies are small. */
	if (uv_fileno((uv_handle_t *)h, &fd) == 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	(void)uv_tcp_nodelay(h, 1);
}

static void spuv_connection_cb(uv_stream_t *server, int status)
{
	nuv_server_t *srv = server->data;
	struct spconn *c;

	if (srv->closing)
		return;
	if (status < 0) {
		/* Out of files, most likely (libuv sheds the connection). */
		pthread_mutex_lock(&srv->mu);
		srv->accept_failures++;
		srv->accept_error = NNG_ENOFILES;
		pthread_mutex_unlock(&srv->mu);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || uv_tcp_init(srv->loop, &c->uvs) != 0) {
		/* No memory: libuv holds the connection it accepted and
		 * accepts no other until it is taken; the server's tick tries
		 * again (spuv_tick). */
		free(c);
		srv->uv_accept_stalled = true;
		pthread_mutex_lock(&srv->mu);
		srv->accept_failures++;
		srv->accept_error = NNG_ENOMEM;
		pthread_mutex_unlock(&srv->mu);
		return;
	}
	c->uvs.data = c;
	c->srv = srv;
	c->is_uv = true;
	srv->open_handles++;
	if (uv_accept(server, (uv_stream_t *)&c->uvs) != 0) {
		pthread_mutex_lock(&srv->mu);
		c->closed = c->reaped = true; /* never listed: freed by its close callback */
		pthread_mutex_unlock(&srv->mu);
		uv_close((uv_handle_t *)&c->uvs, spuv_conn_close_cb);
		return;
	}
	spuv_addr(&c->uvs, c->addr, sizeof(c->addr));
	pthread_mutex_lock(&srv->mu);
	if (srv->stats.connections_open >= srv->lim.max_connections) {
		srv->stats.refused_over_cap++;
		memcpy(srv->last_refused, c->addr, sizeof(c->addr));
		c->closed = c->reaped = true;
		pthread_mutex_unlock(&srv->mu);
		uv_close((uv_handle_t *)&c->uvs, spuv_conn_close_cb);
		return;
	}
	spuv_keepalive(&c->uvs);
	spconn_start(srv, c);
	pthread_mutex_unlock(&srv->mu);
}

/* tcp://host:port -> a bound, listening socket (host empty or "*": every
 * address); -errno. */
static int spuv_socket(const char *url, int *ret_fd)
{
	static const struct {
		const char *scheme;
		int family;
	} schemes[] = { { "tcp://", AF_UNSPEC }, { "tcp4://", AF_INET }, { "tcp6://", AF_INET6 } };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	char host[256], port[16];
	const char *rest = NULL, *colon;
	size_t hl;
	int r, fd = -1, on = 1;

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)) == 0) {
			rest = url + strlen(schemes[i].scheme);
			hints.ai_family = schemes[i].family;
			break;
		}
	if (!rest)
		return -EINVAL;
	colon = strrchr(rest, ':');
	if (!colon || strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(port) ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || strchr(colon + 1, '/'))
		return -EINVAL;
	hl = (size_t)(colon - rest);
	if (hl >= 2 && rest[0] == '[' && rest[hl - 1] == ']') { /* [::1] */
		rest++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, rest, hl);
	host[hl] = '\0';
	snprintf(port, sizeof(port), "%s", colon + 1);
	r = getaddrinfo(hl == 0 || strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
	if (r != 0)
		return r == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	r = -EADDRNOTAVAIL;
	/* IPv4 first where the name has both (localhost, an empty host), as
	 * clients given the same URL most often try it first; then the rest. */
	for (int pass = 0; pass < 2 && fd < 0; pass++)
	for (ai = res; ai; ai = ai->ai_next) {
		if ((ai->ai_family == AF_INET) != (pass == 0))
			continue;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SPUV_BACKLOG) == 0) {
			r = 0;
			break;
		}
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (r == 0)
		*ret_fd = fd;
	return r;
}

int spuv_listen(nuv_server_t *srv, const char *url)
{
	uv_tcp_t *h;
	int fd = -1, r = spuv_socket(url, &fd);

	if (r < 0)
		return r;
	h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	uv_tcp_init(srv->loop, h);
	h->data = srv;
	r = uv_tcp_open(h, fd);
	if (r != 0)
		close(fd); /* not the handle's: uv_close would not close it */
	else
		r = uv_listen((uv_stream_t *)h, SPUV_BACKLOG, spuv_connection_cb);
	if (r != 0) {
		/* The handle is the loop's now: closed, then freed. */
		uv_close((uv_handle_t *)h, spuv_free_cb);
		return r;
	}
	srv->uv_listener = h;
	srv->open_handles++;
	return 0;
}

void spuv_tick(nuv_server_t *srv)
{
	if (srv->uv_accept_stalled && srv->uv_listener && !srv->closing) {
		srv->uv_accept_stalled = false;
		spuv_connection_cb((uv_stream_t *)srv->uv_listener, 0);
	}
}

static void spuv_listener_close_cb(uv_handle_t *h)
{
	nuv_server_t *srv = h->data;

	free(h);
	server_handle_closed(srv);
}

void spuv_listener_close(nuv_server_t *srv)
{
	if (srv->uv_listener)
		uv_close((uv_handle_t *)srv->uv_listener, spuv_listener_close_cb);
	srv->uv_listener = NULL;
}
