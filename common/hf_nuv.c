/* SPDX-License-Identifier: MIT
 *
 * The nng-to-libuv bridge (see hf_nuv.h).  The only code in hfleet that runs
 * on nng's threads is the pair of aio callbacks below; they touch nothing but
 * the aio, the locked hand-off queue and uv_async_send.
 */
#include "hf_nuv.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "hf_log.h"

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

enum req_state { REQ_RECV, REQ_LOOP, REQ_SEND };

struct nuv_request {
	nuv_server_t *srv;
	nng_ctx ctx;
	nng_aio *aio;
	nng_msg *msg;
	enum req_state state;
	struct nuv_request *next;
};

struct nuv_server {
	uv_loop_t *loop;
	nng_socket sock;
	uv_async_t async;
	pthread_mutex_t mu;
	struct nuv_request *head, *tail; /* received, waiting for the loop; under mu */
	struct nuv_request *reqs;
	unsigned nreqs;
	nuv_request_cb cb;
	void *arg;
	bool closing;
};

static void server_aio_cb(void *arg)
{
	struct nuv_request *r = arg;
	nuv_server_t *srv = r->srv;
	int rv = nng_aio_result(r->aio);

	if (r->state == REQ_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(r->aio));
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		r->state = REQ_RECV;
		nng_ctx_recv(r->ctx, r->aio);
		return;
	}
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv != 0) {
		nng_ctx_recv(r->ctx, r->aio);
		return;
	}
	r->msg = nng_aio_get_msg(r->aio);
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

	pthread_mutex_lock(&srv->mu);
	list = srv->head;
	srv->head = srv->tail = NULL;
	pthread_mutex_unlock(&srv->mu);

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

int nuv_server_open(uv_loop_t *loop, const char *url, unsigned nctx, size_t recv_max,
		    nuv_request_cb cb, void *arg, nuv_server_t **ret_srv)
{
	nuv_server_t *srv;
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
	pthread_mutex_init(&srv->mu, NULL);

	rv = nng_rep0_open(&srv->sock);
	if (rv != 0)
		goto fail_free;
	if (recv_max)
		nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ, recv_max);

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

	rv = nng_listen(srv->sock, url, NULL, 0);
	if (rv != 0)
		goto fail_close;

	uv_async_init(loop, &srv->async, server_async_cb);
	srv->async.data = srv;
	for (unsigned i = 0; i < srv->nreqs; i++) {
		srv->reqs[i].state = REQ_RECV;
		nng_ctx_recv(srv->reqs[i].ctx, srv->reqs[i].aio);
	}
	*ret_srv = srv;
	return 0;

fail_close:
	nng_close(srv->sock);
	for (unsigned i = 0; i < nctx; i++)
		if (srv->reqs[i].aio)
			nng_aio_free(srv->reqs[i].aio);
fail_free:
	pthread_mutex_destroy(&srv->mu);
	free(srv->reqs);
	free(srv);
	return nuv_errno(rv);
}

void nuv_reply(nuv_request_t *r, nng_msg *reply)
{
	nuv_server_t *srv = r->srv;

	if (srv->closing) {
		nng_msg_free(reply);
		return;
	}
	if (!reply) {
		r->state = REQ_RECV;
		nng_ctx_recv(r->ctx, r->aio);
		return;
	}
	r->state = REQ_SEND;
	nng_aio_set_msg(r->aio, reply);
	nng_ctx_send(r->ctx, r->aio);
}

static void server_free_cb(uv_handle_t *h)
{
	nuv_server_t *srv = h->data;
	pthread_mutex_destroy(&srv->mu);
	free(srv->reqs);
	free(srv);
}

void nuv_server_close(nuv_server_t *srv)
{
	if (!srv)
		return;
	srv->closing = true;
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
