/* SPDX-License-Identifier: MIT
 *
 * What the two halves of the SP server share (internal to libhfcommon):
 * hf_spserver.c (the port: listener, accepting, timeouts, hand-off to the
 * loop, counters, log lines) and hf_spconn.c (one connection: the SP wire,
 * reading requests, writing replies, closing).  See hf_spserver.c for the
 * threads and the lock.  Functions here are called under srv->mu.
 */
#ifndef HF_SPSERVER_INT_H
#define HF_SPSERVER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_nuv.h"
#include "hf_spwire.h"

/* Backtrace words a request may carry: nng's default TTL (8 hops). */
#define SP_MAX_HOPS 8
/* The largest frame head: IPC's type byte and length. */
#define SP_HEAD_MAX 9
/* A body is read into a buffer that grows as bytes arrive, from this size,
 * so that a peer claiming a large message holds only what it has sent. */
#define RX_FIRST_CHUNK (64 * 1024)
/* Each connection reads into a buffer of this size whatever the socket
 * has, and frames are cut out of it: a frame's head and body (and often a
 * pipelined next frame) come in one read, so one completion on nng's
 * threads per request instead of two.  A frame larger than the buffer is
 * read into a message of its own (RX_BODY).  10,000 connections: 10 MiB. */
#define RX_BUF_LEN 1024

/* Where a connection's reading stands. */
enum rx_state {
	RX_HELLO,  /* reading the peer's 8-byte SP header into rx_buf */
	RX_HEAD,   /* reading a frame (its head, a small one whole) into rx_buf */
	RX_BODY,   /* reading the rest of a large frame into rx_msg */
	RX_PAUSED, /* no read: cutting frames out of rx_buf, or waiting for its share or the port's */
};

enum close_reason {
	CLOSE_PEER,
	CLOSE_SERVER,
	CLOSE_IDLE,
	CLOSE_UNREAD,
	CLOSE_HANDSHAKE,
	CLOSE_PROTOCOL,
	CLOSE_TLS, /* the TLS layer failed: a handshake, a certificate, a record */
};

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
	int64_t received_ms;                  /* when its last byte came */
	/* Parked (nuv_request_park): not counted in the port's in_flight;
	 * on its connection's parked list until answered or gone. */
	bool parked, on_parked_list;
	nuv_gone_cb gone;
	void *gone_arg;
	struct nuv_request *prev_parked, *next_parked;
};

/* One connection.  Fields after the aios are under srv->mu.  On plain
 * TCP (is_uv) the connection is a libuv stream of the loop's
 * (hf_spconn_uv.c) and stream and the aios are NULL; on TLS and IPC an
 * nng stream whose I/O completes on nng's threads. */
struct spconn {
	nuv_server_t *srv;
	bool is_uv;
	uv_tcp_t uvs;        /* is_uv: the socket; c outlives its close callback */
	uv_write_t wreq;     /* is_uv: the write that waits for room */
	uv_buf_t rx_want;    /* is_uv: where the next read goes (spuv_rx_start) */
	bool uv_reading;     /* is_uv: uv_read_start in effect */
	bool uv_tx_writing;  /* is_uv: inside spuv_tx_send's loop */
	nng_stream *stream;
	nng_aio *rx_aio, *tx_aio;
	/* Plain TCP and IPC: an aio without a callback for the loop thread's
	 * first attempt at a reply (spconn_tx_send), which a socket with room
	 * completes inline, without a hop to nng's threads.  NULL on TLS,
	 * whose writes cannot be taken back once started. */
	nng_aio *tx_try_aio;

	struct spconn *prev, *next; /* open list; next also links the reap list */
	bool closed;    /* set once, by conn_close: no I/O is started after it */
	bool reaped;    /* stream and aios freed; freed itself at outstanding 0 */
	bool hello_in, hello_out; /* the peer's header read, ours written */
	bool rx_busy, tx_busy;    /* an aio is in flight */
	bool at_share;      /* paused: requests_per_connection unanswered */
	bool waiting_port;  /* paused: the port has its most requests in flight */
	struct spconn *wait_prev, *wait_next; /* the port's queue of waiting_port ones */
	unsigned outstanding; /* requests received, reply not yet written */

	enum rx_state rx;
	/* Bytes read but not yet cut into frames: rx_buf[rx_start, rx_end).
	 * At most one frame's worth (and at most RX_BUF_LEN) is read ahead of
	 * what the connection's share and the port let it take. */
	uint8_t rx_buf[RX_BUF_LEN];
	size_t rx_start, rx_end;
	/* RX_BODY: the large frame's body, rx_got of its rx_len bytes in. */
	size_t rx_got;
	uint64_t rx_len;
	nng_msg *rx_msg;

	struct nuv_request *tx_first, *tx_last; /* replies to write, in order */
	nng_iov tx_iov[3];  /* what is left of the write under way (conn_tx_prepare) */
	unsigned tx_n;
	struct nuv_request *parked;             /* parked requests not yet answered */
	size_t tx_off;      /* bytes of the first (or of our header) written */
	int64_t tx_since_ms; /* when the first reply started */

	int64_t accepted_ms, last_request_ms;
	char addr[64];
};

struct nuv_server {
	uv_loop_t *loop;
	/* Plain TCP is served by the loop itself through libuv
	 * (hf_spconn_uv.c): no hop to nng's threads and back per request.
	 * TLS and IPC go through nng's streams. */
	bool uv;
	uv_tcp_t *uv_listener;
	bool uv_reading; /* a libuv read callback is queueing requests: it delivers them */
	bool uv_accept_stalled; /* a connection libuv accepted waits for memory (spuv_tick) */
	nng_stream_listener *listener;
	nng_aio *accept_aio;
	size_t head_len; /* frame head: 8 on TCP, 9 on IPC */
	bool tls;        /* tls+tcp: no inline first attempt at writes */
	size_t recv_max;
	unsigned max_in_flight;
	nuv_request_cb cb;
	void *arg;
	uv_async_t async;
	uv_timer_t tick;  /* timeouts and log lines */
	int open_handles; /* async, tick and the libuv sockets, until their close callbacks */
	bool closing;     /* written under mu on the loop; read by callbacks under mu */

	pthread_mutex_t mu;
	bool accept_sleeping; /* accept_aio is a retry's sleep */
	int accept_error;     /* the last accept failure (nng), for the log */
	struct spconn *first, *last; /* open connections, oldest first */
	struct spconn *reap;         /* closed, waiting for the loop */
	struct nuv_request *q_first, *q_last; /* received, waiting for the loop */
	struct nuv_request *live;    /* every request not yet freed */
	unsigned in_flight, n_waiting;
	/* Connections waiting for the port (waiting_port), longest waiting
	 * first: resuming one costs the same whatever the connections open. */
	struct spconn *wait_first, *wait_last;
	struct nuv_server_limits lim;
	char name[48];
	struct nuv_server_stats stats;
	uint64_t accept_failures;
	char last_refused[64], last_at_share[64], last_unread[64], last_bad[64], last_tls[64];

	/* Loop thread: the counters as last logged. */
	struct nuv_server_stats logged;
	uint64_t logged_accept_failures;
	int64_t logged_ms;
};

/* The connection file's entry points, all under srv->mu. */

/* Writes a peer's address for log lines. */
void spconn_addr(nng_stream *s, char *buf, size_t len);
/* A new connection on s, counted and handshaking; false (s closed and
 * freed) when there is no memory. */
bool spconn_new(nuv_server_t *srv, nng_stream *s);
/* The one way a connection ends (see hf_spserver.c). */
void spconn_close(struct spconn *c, enum close_reason why);
/* Puts c at the end of the open list. */
void spconn_list_append(nuv_server_t *srv, struct spconn *c);
/* Queues r's reply on its open connection; true when the caller must
 * start writing it with spconn_tx_send after letting go of mu. */
bool spconn_reply(struct nuv_request *r, nng_msg *reply);
/* Under mu: a read of n bytes, or a write, ended with nng's rv (0: done),
 * on either transport. */
void spconn_rx_done(struct spconn *c, int rv, size_t n);
void spconn_tx_done(struct spconn *c, int rv, size_t n);
/* Loop thread, under mu: the connection's shared part once its transport
 * is set up (counted, listed, both headers under way). */
void spconn_start(nuv_server_t *srv, struct spconn *c);

/* The libuv transport (hf_spconn_uv.c), loop thread only. */
/* Listens on a tcp://, tcp4:// or tcp6:// url; -errno. */
int spuv_listen(nuv_server_t *srv, const char *url);
void spuv_listener_close(nuv_server_t *srv);
/* The server's tick: takes a connection an allocation failure left. */
void spuv_tick(nuv_server_t *srv);
/* Under mu: reads into [buf, buf + len) next. */
void spuv_rx_start(struct spconn *c, void *buf, size_t len);
/* Under mu: writes c->tx_iov (conn_tx_prepare), and what follows. */
void spuv_tx_send(struct spconn *c);
/* Without mu: closes a reaped connection's socket; its close callback
 * frees c once its requests are done (as server_reap does for nng). */
void spuv_close(struct spconn *c);

/* hf_spserver.c, loop thread. */
/* Hands the queued requests to the callback (without mu). */
void server_deliver(nuv_server_t *srv);
/* One of the server's libuv handles is closed: the last frees srv. */
void server_handle_closed(nuv_server_t *srv);

/* Loop thread, without mu, after spconn_reply said so: sends what
 * spconn_reply prepared.  Safe without mu: the write is marked busy (no
 * nng thread starts one on c), and only the loop thread closes and frees
 * a connection's stream (server_reap), so c and its stream outlive this
 * call even if c was marked closed meanwhile; the write then fails and
 * its completion finds the flag.  On plain TCP and IPC the write is
 * tried inline (tx_try_aio) and its completion handled here, under mu,
 * before returning; what the socket did not take goes on through tx_aio. */
void spconn_tx_send(struct spconn *c);
/* r is done (reply written or dropped, or its connection gone): frees it
 * and what only it kept. */
void spreq_finish(struct nuv_request *r);
/* Parks r on its open connection (see nuv_request_park). */
void spreq_park(struct nuv_request *r);
/* Takes r off its connection's parked list (answered), if it is on it. */
void spreq_unpark(struct nuv_request *r);

#endif
