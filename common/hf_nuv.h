/* SPDX-License-Identifier: MIT
 *
 * The nng-to-libuv bridge.  nng completes its asynchronous I/O on its own
 * threads; hfleet's daemons keep all their state on one libuv loop thread.
 * This module joins the two: nng callbacks only move a message onto a locked
 * queue and wake the loop with uv_async_send, and every callback the caller
 * sees runs on the loop thread.
 *
 * Server (hf_spserver.c): the REP side of nng's SP protocol, spoken by
 * hfleet itself over nng's byte streams (TLS, IPC) or, on plain TCP, the
 * loop's own libuv sockets (hf_spconn_uv.c), to the REQ sockets
 * of hf-worker and hfctl.  A request handed to the request callback must be
 * answered exactly once with nuv_reply, now or later (for example after a
 * database commit).
 *
 * The server keeps the port fair between connections (nuv_server_limit):
 * it refuses connections over a cap; it reads a connection's next request
 * only while that connection has fewer than its share unanswered (a
 * request counts until its reply is written), so a peer that pipelines is
 * simply read more slowly; it closes a connection whose reply is not
 * taken within the reply timeout (a peer that does not read), one that
 * sends no request for the idle timeout, one that has not sent its SP
 * header within the handshake timeout, and one that breaks the framing.
 * TCP keepalive is on.
 *
 * Client (hf_spclient.c): the REQ side of the same protocol, spoken by
 * hfleet itself over nng's byte streams, one connection at a time; calls
 * are matched to replies by id, so many may be outstanding.  The reply
 * callback runs on the loop thread exactly once per call, also on timeout,
 * on a lost connection and at close.
 *
 * Errors are negative errno values (translated from nng here and only here).
 * Except where noted, functions are called on the loop thread.
 */
#ifndef HF_NUV_H
#define HF_NUV_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <uv.h>

typedef struct nuv_server nuv_server_t;
typedef struct nuv_request nuv_request_t;
typedef struct nuv_client nuv_client_t;

/* Called on the loop thread with a received message, which becomes the
 * callee's (free it with nng_msg_free). */
typedef void (*nuv_request_cb)(nuv_request_t *req, nng_msg *msg, void *arg);

/* Called on the loop thread.  rv is 0 and reply the callee's, or rv is a
 * negative errno (-ETIMEDOUT, -ESHUTDOWN when closing, ...) and reply NULL. */
typedef void (*nuv_reply_cb)(int rv, nng_msg *reply, void *arg);

/* Translates an nng error code into a negative errno. */
int nuv_errno(int nng_rv);

/* Listens on url (tcp://, tcp4://, tcp6://, ipc:// or abstract://, or
 * tls+tcp://, tls+tcp4://, tls+tcp6:// with tls, a server configuration
 * from hf_tls_config_server that the server holds; else -EINVAL).  nctx is the most requests the port holds at once over all its
 * connections (received, reply not yet written): at that many, no
 * connection starts reading another until one is done.  recv_max limits
 * the size of one received message, backtrace included (0 = 1 MiB, nng's
 * default); a longer one closes its connection.  The server starts with
 * nuv_server_limits_default; nuv_server_limit changes them. */
int nuv_server_open(uv_loop_t *loop, const char *url, nng_tls_config *tls, unsigned nctx, size_t recv_max,
		    nuv_request_cb cb, void *arg, nuv_server_t **ret_srv);

/* How a server shares itself between connections (see above). */
struct nuv_server_limits {
	const char *name;          /* for log lines, e.g. "worker port"; copied */
	unsigned max_connections;  /* connections at once; one more is closed at once */
	unsigned requests_per_connection; /* requests one connection may have unanswered */
	int64_t idle_timeout_ms;   /* a connection with no request for this long is closed */
	int64_t reply_timeout_ms;  /* a reply not taken by the connection in this time closes it */
	int64_t handshake_timeout_ms; /* a connection without the peer's SP header by then is closed */
};

extern const struct nuv_server_limits nuv_server_limits_default;

/* Applies lim from now on (connections already open stay, even over a lower
 * cap).  Returns 0 or -EINVAL (a zero count or timeout). */
int nuv_server_limit(nuv_server_t *srv, const struct nuv_server_limits *lim);

/* What the server did about its connections since it opened. */
struct nuv_server_stats {
	uint64_t connections_open;    /* now, handshaking ones included */
	uint64_t refused_over_cap;    /* connections closed at once: at max_connections */
	uint64_t closed_idle;         /* closed after idle_timeout without a request */
	uint64_t closed_unread;       /* closed: a reply waited reply_timeout for them */
	uint64_t closed_handshake;    /* closed: no or a bad SP header (handshake_timeout) */
	uint64_t closed_protocol;     /* closed: a frame over recv_max, a bad backtrace */
	uint64_t closed_tls;          /* closed: the TLS handshake failed (not TLS, a certificate refused) */
	uint64_t paused_at_share;     /* times reading a connection waited for its share */
};

void nuv_server_stats(nuv_server_t *srv, struct nuv_server_stats *ret_stats);

/* The address of req's peer, for log lines: "127.0.0.1:5555", "[::1]:5555"
 * or "ipc://path" (or a description when the transport cannot say).  Valid
 * until req is answered. */
const char *nuv_request_peer(const nuv_request_t *req);

/* When req's peer sent it (monotonic ms, hf_mono_ms): taken on receipt,
 * before the loop saw it, so a busy loop does not make it look late. */
int64_t nuv_request_received_ms(const nuv_request_t *req);

/* Called on the loop thread when the connection of a parked request
 * closes (or the server does); the callee must forget req and answer it
 * (nuv_reply(req, NULL) drops it) before returning. */
typedef void (*nuv_gone_cb)(nuv_request_t *req, void *arg);

/* Parks req, to be answered later (a held poll): from now on it counts
 * towards its connection's share (requests_per_connection) but no longer
 * towards the port's requests in flight (nctx), so that thousands of
 * parked requests neither exhaust nor block the port; and gone is called
 * if its connection closes before it is answered.  At most once per
 * request.  Returns 0, or -ENOTCONN when the connection is closed already
 * (req is then as before: answer it, which drops it). */
int nuv_request_park(nuv_request_t *req, nuv_gone_cb gone, void *arg);

/* Sends reply for req.  Takes reply in all cases; reply NULL drops the
 * request without an answer, and so does a connection that has gone
 * meanwhile (quietly).  req must not be used afterwards. */
void nuv_reply(nuv_request_t *req, nng_msg *reply);

/* Closes the listener and every connection and frees the server (its
 * memory once the loop has run the handles' close callbacks).  Requests not
 * yet answered are dropped; nuv_reply on them before those callbacks only
 * frees the reply.  NULL is fine. */
void nuv_server_close(nuv_server_t *srv);

/* Opens a client dialling url (tcp://, ipc://, abstract://, tls+tcp://),
 * or each of a comma-separated list of urls (a coordinator and its
 * standby); connection happens (and is retried, after 100 ms doubling to
 * 2 s) in the background, and calls go to whichever peer connected first.
 * A tls+tcp:// url is dialled with tls (see hf_tls.h; NULL when there is
 * no TLS setting), which verifies the coordinator's certificate.
 * recv_max bounds a reply (0 = 1 MiB); a longer one closes the
 * connection.  Returns 0 or a negative errno with a message in err. */
struct hf_tls;
int nuv_client_open(uv_loop_t *loop, const char *url, const struct hf_tls *tls, size_t recv_max,
		    nuv_client_t **ret_client, char *err, size_t errlen);

/* Sends msg and calls cb with the reply.  Takes msg in all cases.  timeout_ms
 * bounds the whole call, waiting for a connection included (-ETIMEDOUT; a
 * reply after it is dropped).  A connection lost after the request was
 * written, whole or in part, fails it with -ECONNRESET (it is not sent
 * again).  Returns 0 or a negative errno, in which case cb is not called. */
int nuv_client_call(nuv_client_t *c, nng_msg *msg, int timeout_ms, nuv_reply_cb cb, void *arg);

/* Closes the client; outstanding calls get their callback with -ESHUTDOWN
 * before this returns (calls that had completed get theirs with their
 * result), and no nng callback of the client runs after it.  May be
 * called from a reply callback.  NULL is fine.  (An nng REQ socket could
 * hang here in nng 1.5 with a call in flight, nng issue 1813; the streams
 * this client uses have no such hang.) */
void nuv_client_close(nuv_client_t *c);

/* Raises the soft limit on open files (each connection is one) to the hard
 * limit.  Returns 0 and the limit now in force, or a negative errno.  Call
 * from main() at start. */
int nuv_nofile_raise(uint64_t *ret_limit);

#endif
