/* SPDX-License-Identifier: MIT
 *
 * The nng-to-libuv bridge.  nng completes its asynchronous I/O on its own
 * threads; hfleet's daemons keep all their state on one libuv loop thread.
 * This module joins the two: nng callbacks only move a message onto a locked
 * queue and wake the loop with uv_async_send, and every callback the caller
 * sees runs on the loop thread.
 *
 * Server: a REP socket with a fixed number of contexts, each able to hold
 * one request.  A request handed to the request callback must be answered
 * exactly once with nuv_reply, now or later (for example after a database
 * commit); until then its context takes no new request.
 *
 * The server keeps the port fair between connections (nuv_server_limits):
 * it refuses connections over a cap, lets one connection hold only a few
 * contexts at once (a request beyond that share is dropped without a reply
 * the moment it arrives, so it never occupies a context), closes a
 * connection whose reply could not be handed to it within the reply
 * timeout (a peer that does not read), and closes connections that sent no
 * request for the idle timeout.  TCP keepalive is on.
 *
 * Client: a REQ socket; each call uses its own context, so many calls may be
 * outstanding.  The reply callback runs on the loop thread exactly once per
 * call, also on timeout and at close.
 *
 * Errors are negative errno values (translated from nng here and only here).
 * Except where noted, functions are called on the loop thread.
 */
#ifndef HF_NUV_H
#define HF_NUV_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
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

/* Opens a REP socket listening on url with nctx contexts.  recv_max limits
 * the size of one received message (0 = nng's default).  The server starts
 * with nuv_server_limits_default; nuv_server_limit changes them. */
int nuv_server_open(uv_loop_t *loop, const char *url, unsigned nctx, size_t recv_max,
		    nuv_request_cb cb, void *arg, nuv_server_t **ret_srv);

/* How a server shares itself between connections (see above). */
struct nuv_server_limits {
	const char *name;          /* for log lines, e.g. "worker port"; copied */
	unsigned max_connections;  /* connections at once; one more is closed at once */
	unsigned requests_per_connection; /* requests one connection may have unanswered */
	int64_t idle_timeout_ms;   /* a connection with no request for this long is closed */
	int64_t reply_timeout_ms;  /* a reply not taken by the connection in this time closes it */
};

extern const struct nuv_server_limits nuv_server_limits_default;

/* Applies lim from now on (connections already open stay, even over a lower
 * cap).  Returns 0 or -EINVAL (a zero count or timeout), -ENOMEM. */
int nuv_server_limit(nuv_server_t *srv, const struct nuv_server_limits *lim);

/* What the server did about its connections since it opened. */
struct nuv_server_stats {
	uint64_t connections_open;    /* now */
	uint64_t refused_over_cap;    /* connections closed at once: at max_connections */
	uint64_t closed_idle;         /* closed after idle_timeout without a request */
	uint64_t closed_unread;       /* closed: a reply waited reply_timeout for them */
	uint64_t refused_over_share;  /* requests dropped: over requests_per_connection */
};

void nuv_server_stats(nuv_server_t *srv, struct nuv_server_stats *ret_stats);

/* Sends reply for req.  Takes reply in all cases; reply NULL drops the
 * request without an answer.  req must not be used afterwards. */
void nuv_reply(nuv_request_t *req, nng_msg *reply);

/* Closes the socket and frees the server.  Requests not yet answered are
 * dropped; the caller must not answer them afterwards.  NULL is fine. */
void nuv_server_close(nuv_server_t *srv);

/* Opens a REQ socket dialling url, or each of a comma-separated list of
 * urls (a coordinator and its standby); connection happens (and is retried)
 * in the background, and calls go to whichever peer is connected. */
int nuv_client_open(uv_loop_t *loop, const char *url, size_t recv_max, nuv_client_t **ret_client);

/* Sends msg and calls cb with the reply.  Takes msg in all cases.  timeout_ms
 * bounds the whole call.  Returns 0 or a negative errno, in which case cb is
 * not called. */
int nuv_client_call(nuv_client_t *c, nng_msg *msg, int timeout_ms, nuv_reply_cb cb, void *arg);

/* Closes the socket; outstanding calls get their callback with -ESHUTDOWN
 * before this returns (or, when called from a reply callback, calls that
 * already completed are delivered when that callback returns).  NULL is
 * fine.  Note: nng 1.5 (Debian 12) can hang in nng_close while a REQ
 * context has an operation in flight (nng issue 1813); hf-worker closes its
 * client only when no call is outstanding. */
void nuv_client_close(nuv_client_t *c);

/* Raises the soft limit on open files (each connection is one) to the hard
 * limit.  Returns 0 and the limit now in force, or a negative errno.  Call
 * from main() at start. */
int nuv_nofile_raise(uint64_t *ret_limit);

#endif
