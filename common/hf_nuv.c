/* SPDX-License-Identifier: MIT
 *
 * The nng-to-libuv bridge (see hf_nuv.h): nng's errors, the client side (an
 * nng REQ socket) and the open-file limit.  The server side is in
 * hf_spserver.c.  The only code here that runs on nng's threads is the
 * client's aio callback; it touches nothing but the call, the locked
 * hand-off queue (under the client's mutex) and uv_async_send.
 */
#include "hf_nuv.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "hf_tls.h"

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
	case NNG_EPEERAUTH:
		return -EKEYREJECTED;
	case NNG_ECRYPTO:
		return -EPROTO;
	default:
		return -EIO;
	}
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

int nuv_client_open(uv_loop_t *loop, const char *url, const struct hf_tls *tls, size_t recv_max,
		    nuv_client_t **ret_client, char *err, size_t errlen)
{
	nuv_client_t *c = calloc(1, sizeof(*c));
	int rv;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->loop = loop;
	pthread_mutex_init(&c->mu, NULL);
	rv = nng_req0_open(&c->sock);
	if (rv != 0) {
		snprintf(err, errlen, "could not open a socket: %s", nng_strerror(rv));
		rv = nuv_errno(rv);
		goto fail;
	}
	if (recv_max)
		nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, recv_max);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 2000);
	/* Several addresses (a coordinator and its standby): dial them all; only
	 * the active one listens, and requests go to whichever is connected. */
	rv = hf_tls_dial(c->sock, url, tls, err, errlen);
	if (rv < 0) {
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
	return rv;
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
