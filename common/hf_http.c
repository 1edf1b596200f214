/* SPDX-License-Identifier: MIT
 *
 * The daemons' HTTP endpoint (see hf_http.h): nng's HTTP server answers
 * /healthz from what the loop published, and parks /metrics requests for
 * the loop, which renders once per wake-up for all of them.
 *
 * Threads: metrics_cb, healthz_cb and scrape_cancel_cb run on nng's
 * threads and touch only what mu guards; async_cb, hf_http_health_set and
 * hf_http_stop run on the loop thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "hf_http.h"
#include "hf_log.h"
#include "hf_nuv.h"

struct hf_http {
	uv_loop_t *loop;
	uv_async_t async;
	nng_http_server *srv;
	hf_http_render_fn render;
	void *arg;

	pthread_mutex_t mu;
	nng_aio *parked[HF_HTTP_MAX_SCRAPES]; /* under mu: scrapes the loop has to answer */
	size_t n_parked;                      /* under mu */
	bool closing;                         /* under mu */
	bool health_ok;                       /* under mu */
	char health_reason[256];              /* under mu */
	int64_t health_ms;                    /* under mu: when the loop last published */
};

/* ---- replies (any thread) ---- */

static void http_reply(nng_aio *aio, uint16_t status, const char *type, const void *body, size_t len)
{
	nng_http_res *res;
	int rv = nng_http_res_alloc(&res);

	if (rv != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	nng_http_res_set_status(res, status);
	/* One request per connection: nng 1.5.2 has no idle timeout, so an
	 * honest scraper should not hold connections open between scrapes. */
	if ((rv = nng_http_res_set_header(res, "Connection", "close")) != 0 ||
	    (rv = nng_http_res_set_header(res, "Content-Type", type)) != 0 ||
	    (rv = nng_http_res_copy_data(res, body, len)) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void reply_text(nng_aio *aio, uint16_t status, const char *text)
{
	http_reply(aio, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* ---- nng's threads ---- */

/* The connection went away while its scrape was parked. */
static void scrape_cancel_cb(nng_aio *aio, void *arg, int rv)
{
	struct hf_http *h = arg;
	bool found = false;

	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->n_parked; i++) {
		if (h->parked[i] == aio) {
			h->parked[i] = h->parked[--h->n_parked];
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&h->mu);
	/* Not found: the loop has taken it and finishes it. */
	if (found)
		nng_aio_finish(aio, rv);
}

static void metrics_cb(nng_aio *aio)
{
	nng_http_handler *hd = nng_aio_get_input(aio, 1);
	struct hf_http *h = nng_http_handler_get_data(hd);
	const char *refuse = NULL;

	pthread_mutex_lock(&h->mu);
	if (h->closing)
		refuse = "shutting down\n";
	else if (h->n_parked == HF_HTTP_MAX_SCRAPES)
		refuse = "too many scrapes at once\n";
	if (!refuse) {
		/* Registered before the loop can see it, so a finish never
		 * precedes it; under mu, so a cancel finds it parked. */
		nng_aio_defer(aio, scrape_cancel_cb, h);
		h->parked[h->n_parked++] = aio;
		/* Under mu: hf_http_stop closes the handle only after closing. */
		uv_async_send(&h->async);
	}
	pthread_mutex_unlock(&h->mu);
	if (refuse)
		reply_text(aio, 503, refuse);
}

static void healthz_cb(nng_aio *aio)
{
	nng_http_handler *hd = nng_aio_get_input(aio, 1);
	struct hf_http *h = nng_http_handler_get_data(hd);
	char text[320];
	int64_t age;

	pthread_mutex_lock(&h->mu);
	age = hf_mono_ms() - h->health_ms;
	if (!h->health_ok)
		snprintf(text, sizeof(text), "unhealthy: %s\n", h->health_reason);
	else if (age > HF_HTTP_STALL_MS)
		snprintf(text, sizeof(text), "unhealthy: the event loop has not turned for %" PRId64 " ms\n", age);
	else
		snprintf(text, sizeof(text), "ok\n");
	pthread_mutex_unlock(&h->mu);
	reply_text(aio, strcmp(text, "ok\n") == 0 ? 200 : 503, text);
}

/* ---- the loop thread ---- */

static void answer_parked(struct hf_http *h, bool render)
{
	nng_aio *v[HF_HTTP_MAX_SCRAPES];
	size_t n;
	struct hf_buf b;

	pthread_mutex_lock(&h->mu);
	n = h->n_parked;
	memcpy(v, h->parked, n * sizeof(*v));
	h->n_parked = 0;
	pthread_mutex_unlock(&h->mu);
	if (n == 0)
		return;
	hf_buf_init(&b);
	if (render)
		h->render(h->arg, &b);
	for (size_t i = 0; i < n; i++) {
		if (!render)
			reply_text(v[i], 503, "shutting down\n");
		else if (b.oom)
			reply_text(v[i], 503, "out of memory rendering the metrics\n");
		else
			http_reply(v[i], 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
	}
	hf_buf_fini(&b);
}

static void async_cb(uv_async_t *a)
{
	answer_parked(a->data, true);
}

void hf_http_health_set(struct hf_http *h, bool ok, const char *reason)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->health_ok = ok;
	snprintf(h->health_reason, sizeof(h->health_reason), "%s", ok || !reason ? "" : reason);
	h->health_ms = hf_mono_ms();
	pthread_mutex_unlock(&h->mu);
}

static int add_handler(struct hf_http *h, const char *path, void (*cb)(nng_aio *))
{
	nng_http_handler *hd;
	int rv = nng_http_handler_alloc(&hd, path, cb);

	if (rv != 0)
		return rv;
	/* GET (and HEAD, which nng maps to it) only; a body is never read. */
	if ((rv = nng_http_handler_set_method(hd, "GET")) != 0 ||
	    (rv = nng_http_handler_collect_body(hd, false, 0)) != 0 ||
	    (rv = nng_http_handler_set_data(hd, h, NULL)) != 0 ||
	    (rv = nng_http_server_add_handler(h->srv, hd)) != 0)
		nng_http_handler_free(hd);
	return rv;
}

static void free_cb(uv_handle_t *handle)
{
	struct hf_http *h = handle->data;

	pthread_mutex_destroy(&h->mu);
	free(h);
}

int hf_http_start(uv_loop_t *loop, const char *url_text, hf_http_render_fn render, void *arg,
		  struct hf_http **ret)
{
	struct hf_http *h = calloc(1, sizeof(*h));
	nng_url *url = NULL;
	int rv;

	if (!h)
		return -ENOMEM;
	h->loop = loop;
	h->render = render;
	h->arg = arg;
	h->health_ok = true;
	h->health_ms = hf_mono_ms();
	pthread_mutex_init(&h->mu, NULL);
	if (uv_async_init(loop, &h->async, async_cb) != 0) {
		pthread_mutex_destroy(&h->mu);
		free(h);
		return -ENOMEM;
	}
	h->async.data = h;
	/* Scrapes alone never keep the loop running. */
	uv_unref((uv_handle_t *)&h->async);
	if (url_text && *url_text) {
		rv = nng_url_parse(&url, url_text);
		if (rv == 0)
			rv = nng_http_server_hold(&h->srv, url);
		nng_url_free(url);
		if (rv == 0)
			rv = add_handler(h, "/metrics", metrics_cb);
		if (rv == 0)
			rv = add_handler(h, "/healthz", healthz_cb);
		if (rv == 0)
			rv = nng_http_server_start(h->srv);
		if (rv != 0) {
			if (h->srv)
				nng_http_server_release(h->srv);
			h->srv = NULL;
			uv_close((uv_handle_t *)&h->async, free_cb);
			return nuv_errno(rv);
		}
	}
	*ret = h;
	return 0;
}

void hf_http_stop(struct hf_http *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->closing = true;
	pthread_mutex_unlock(&h->mu);
	answer_parked(h, false);
	if (h->srv) {
		nng_http_server_stop(h->srv);
		nng_http_server_release(h->srv);
		h->srv = NULL;
	}
	uv_close((uv_handle_t *)&h->async, free_cb);
}
