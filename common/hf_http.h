/* SPDX-License-Identifier: MIT
 *
 * The daemons' HTTP endpoint, on nng's HTTP server: GET /metrics
 * (Prometheus text, rendered on demand by the owner's loop thread) and
 * GET /healthz (200 "ok" or 503 with the reason).
 *
 * A scrape does not read the loop's state from nng's threads: the handler
 * parks the request (at most HF_HTTP_MAX_SCRAPES at once; more get 503)
 * and wakes the loop with a uv_async; the loop calls render once for all
 * parked requests and answers them.  Nothing is rendered when nobody
 * scrapes.  /healthz is answered from the state the loop last published
 * with hf_http_health_set: 503 when it says unhealthy or when the loop has
 * not published for HF_HTTP_STALL_MS.
 *
 * Bounds (what nng 1.5.2's server allows, see docs/metrics.md): request
 * bodies are never read; the request line and each header line must fit
 * nng's 8 KiB read buffer; only GET and HEAD are answered; every response
 * carries "Connection: close", so an honest client holds a connection for
 * one request.  nng 1.5.2 has no cap on connections and no idle timeout
 * for a peer that sends nothing: bind the endpoint to loopback or a
 * monitoring network.
 *
 * Threads: hf_http_start, hf_http_health_set and hf_http_stop on the
 * loop's thread; render runs on that thread too.
 */
#ifndef HF_HTTP_H
#define HF_HTTP_H

#include <stdbool.h>

#include <uv.h>

#include "hf_util.h"

#define HF_HTTP_MAX_SCRAPES 8
#define HF_HTTP_STALL_MS 5000

struct hf_http;

/* Appends the whole /metrics text to b (loop thread). */
typedef void (*hf_http_render_fn)(void *arg, struct hf_buf *b);

/* Serves url ("http://host:port"); url NULL or "" serves nothing but
 * still returns a handle (health_set and stop work).  Returns 0 or a
 * negative errno; *ret is written only on success. */
int hf_http_start(uv_loop_t *loop, const char *url, hf_http_render_fn render, void *arg,
		  struct hf_http **ret);

/* Publishes health for /healthz; reason (when !ok) is copied. */
void hf_http_health_set(struct hf_http *h, bool ok, const char *reason);

/* Stops serving, answers parked scrapes with 503, closes the async handle
 * and frees h once it is closed (the loop must run on).  NULL is fine. */
void hf_http_stop(struct hf_http *h);

#endif
