/* SPDX-License-Identifier: MIT
 *
 * Telemetry and the HTTP endpoint.  Device readings ride on worker polls
 * and stay in memory; once per telemetry.sample_interval they are written
 * to the database in one statement.  The endpoint is common/hf_http.c:
 * /metrics is rendered by coord-metrics.c on the loop thread only when it
 * is scraped; once a second the loop publishes its health for /healthz
 * (200 while the database is reachable and the loop is turning, 503 with
 * the reason otherwise).  Loop thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "hf_http.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

struct coord_http {
	struct hf_http *srv;
	int64_t last_sample_ms;
};

/* ---- database sampling ---- */

struct sample_ctx {
	struct db_op op;
	struct db_telemetry *v;
	char (*backend)[16];
};

static void sample_done(struct db_op *op)
{
	struct sample_ctx *x = op->ctx;
	free(x->v);
	free(x->backend);
	free(x);
}

static void telemetry_sample(struct coord *c)
{
	size_t n = 0, i = 0;
	struct sample_ctx *x;

	for (struct coord_worker *w = c->workers; w; w = w->next)
		n += w->n_telemetry;
	if (n == 0 || !c->db)
		return;
	x = calloc(1, sizeof(*x));
	if (!x)
		return;
	x->v = calloc(n, sizeof(*x->v));
	x->backend = calloc(n, sizeof(*x->backend));
	if (!x->v || !x->backend) {
		sample_done(&x->op);
		return;
	}
	x->op.ctx = x;
	for (struct coord_worker *w = c->workers; w; w = w->next) {
		for (size_t k = 0; k < w->n_telemetry; k++, i++) {
			const Hf__DeviceTelemetry *t = &w->telemetry[k];
			hf_strlcpy(x->backend[i], hf_backend_name(t->backend), sizeof(x->backend[i]));
			x->v[i].worker_id = w->id; /* workers outlive the op: never freed while running */
			x->v[i].backend = x->backend[i];
			x->v[i].index = t->index;
			x->v[i].utilization_pct = t->utilization_pct;
			x->v[i].temperature_c = t->temperature_c;
			x->v[i].power_w = t->power_w;
			x->v[i].memory_used_bytes = (int64_t)t->memory_used_bytes;
		}
	}
	x->op.kind = DB_OP_TELEMETRY_SAMPLE;
	x->op.u.telemetry.v = x->v;
	x->op.u.telemetry.n = n;
	x->op.done = sample_done;
	db_submit(c->db, &x->op);
}

/* ---- the HTTP endpoint ---- */

static void render_cb(void *arg, struct hf_buf *b)
{
	coord_metrics_render(arg, b);
}

void coord_http_refresh(struct coord *c)
{
	if (!c->http)
		return;
	if (c->db && db_healthy(c->db))
		hf_http_health_set(c->http->srv, true, NULL);
	else
		hf_http_health_set(c->http->srv, false, "the database is unreachable");
}

void telemetry_sample_cb(uv_timer_t *timer)
{
	struct coord *c = timer->data;
	int64_t now = hf_mono_ms();

	if (c->db && db_lost_active(c->db)) {
		log_error("another coordinator is active now: stopping this one");
		c->exit_code = 1;
		coord_shutdown(c);
		return;
	}
	coord_http_refresh(c);
	if (c->http && now - c->http->last_sample_ms < c->conf.telemetry_sample_ms)
		return;
	if (c->http)
		c->http->last_sample_ms = now;
	telemetry_sample(c);
}

int coord_http_start(struct coord *c, const char *url)
{
	struct coord_http *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->last_sample_ms = hf_mono_ms();
	r = hf_http_start(c->loop, url, render_cb, c, &h->srv);
	if (r < 0) {
		free(h);
		return r;
	}
	c->http = h;
	coord_http_refresh(c);
	return 0;
}

void coord_http_stop(struct coord *c)
{
	struct coord_http *h = c->http;

	if (!h)
		return;
	hf_http_stop(h->srv);
	free(h);
	c->http = NULL;
}
