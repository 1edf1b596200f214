/* SPDX-License-Identifier: MIT
 *
 * Telemetry and the HTTP endpoint.  Device readings ride on worker polls
 * and stay in memory; once per telemetry.sample_interval they are written
 * to the database in one statement.  Once a second the loop renders the
 * Prometheus text for /metrics into a snapshot; nng's HTTP server threads
 * only copy that snapshot out (under a mutex), so they never read the
 * loop's state.  /healthz answers 200 while the database is reachable and
 * the loop is turning, 503 with the reason otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "coordinator.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

struct coord_http {
	nng_http_server *srv;
	pthread_mutex_t mu;
	char *metrics;           /* under mu */
	size_t metrics_len;
	bool db_up;              /* under mu */
	int64_t rendered_ms;     /* under mu */
	int64_t last_sample_ms;  /* loop thread */
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

/* ---- /metrics ---- */

static void label_value(struct hf_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			hf_buf_printf(b, "\\%c", *s);
		else if (*s == '\n')
			hf_buf_puts(b, "\\n");
		else
			hf_buf_append(b, s, 1);
	}
}

static void device_labels(struct hf_buf *b, const char *worker, const Hf__Device *d)
{
	hf_buf_puts(b, "{worker=\"");
	label_value(b, worker);
	hf_buf_printf(b, "\",backend=\"%s\",index=\"%u\"}", hf_backend_name(d->backend), d->index);
}

static void gauge(struct hf_buf *b, const char *name, const char *help)
{
	hf_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void counter(struct hf_buf *b, const char *name, const char *help)
{
	hf_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
}

/* What each port's fairness rules did (common/hf_nuv.h). */
static void connection_metrics(struct coord *c, struct hf_buf *b)
{
	static const char *const port[] = { "worker", "control" };
	nuv_server_t *srv[] = { c->worker_srv, c->control_srv };
	struct nuv_server_stats st[2] = { { 0 } };

	for (int i = 0; i < 2; i++)
		if (srv[i])
			nuv_server_stats(srv[i], &st[i]);
	gauge(b, "hfleet_connections", "open connections, by port");
	for (int i = 0; i < 2; i++)
		hf_buf_printf(b, "hfleet_connections{port=\"%s\"} %" PRIu64 "\n", port[i], st[i].connections_open);
	counter(b, "hfleet_connections_refused_total",
		"connections closed on arrival because the port had connections.max_per_port open");
	for (int i = 0; i < 2; i++)
		hf_buf_printf(b, "hfleet_connections_refused_total{port=\"%s\"} %" PRIu64 "\n", port[i],
			      st[i].refused_over_cap);
	counter(b, "hfleet_connections_closed_total",
		"connections the coordinator closed: idle (no request for connections.idle_timeout), "
		"unread_replies (a reply not taken within connections.reply_timeout), handshake (no or a "
		"bad SP header within connections.handshake_timeout), protocol (a frame too long, a bad backtrace) or "
		"tls (the TLS handshake failed: not TLS, or a certificate refused)");
	for (int i = 0; i < 2; i++)
		hf_buf_printf(b,
			      "hfleet_connections_closed_total{port=\"%s\",reason=\"idle\"} %" PRIu64 "\n"
			      "hfleet_connections_closed_total{port=\"%s\",reason=\"unread_replies\"} %" PRIu64 "\n"
			      "hfleet_connections_closed_total{port=\"%s\",reason=\"handshake\"} %" PRIu64 "\n"
			      "hfleet_connections_closed_total{port=\"%s\",reason=\"protocol\"} %" PRIu64 "\n"
			      "hfleet_connections_closed_total{port=\"%s\",reason=\"tls\"} %" PRIu64 "\n",
			      port[i], st[i].closed_idle, port[i], st[i].closed_unread, port[i],
			      st[i].closed_handshake, port[i], st[i].closed_protocol, port[i], st[i].closed_tls);
	counter(b, "hfleet_connections_paused_total",
		"times the coordinator stopped reading a connection that had connections.requests_per_connection "
		"requests unanswered, until one was answered");
	for (int i = 0; i < 2; i++)
		hf_buf_printf(b, "hfleet_connections_paused_total{port=\"%s\"} %" PRIu64 "\n", port[i],
			      st[i].paused_at_share);
}

static void render_metrics(struct coord *c, struct hf_buf *b)
{
	static const char *const states[] = { "queued", "granting", "leased", "expiring", "cancelling" };
	size_t count[5] = { 0 }, n = sched_count(c->sched), workers = 0, connected = 0;
	struct sched_task **all = calloc(n + 1, sizeof(*all));
	int64_t now = hf_mono_ms();

	for (int s = 0; s < 5 && all; s++)
		count[s] = sched_collect_state(c->sched, (enum sched_state)s, all, n);
	count[0] = 0;
	for (int bk = 0; bk < SCHED_N_BACKENDS; bk++)
		count[0] += sched_queued(c->sched, (Hf__Backend)bk);

	gauge(b, "hfleet_database_up", "1 when the coordinator reaches PostgreSQL");
	hf_buf_printf(b, "hfleet_database_up %d\n", db_healthy(c->db) ? 1 : 0);
	gauge(b, "hfleet_tasks", "live (not yet final) tasks in the coordinator, by state");
	for (int s = 0; s < 5; s++)
		hf_buf_printf(b, "hfleet_tasks{state=\"%s\"} %zu\n", states[s], count[s]);

	for (struct coord_worker *w = c->workers; w; w = w->next) {
		workers++;
		connected += coord_worker_connected(c, w, now);
	}
	gauge(b, "hfleet_workers", "registered workers, by connection state");
	hf_buf_printf(b, "hfleet_workers{state=\"connected\"} %zu\n", connected);
	hf_buf_printf(b, "hfleet_workers{state=\"disconnected\"} %zu\n", workers - connected);
	connection_metrics(c, b);

	static const struct {
		const char *name, *help;
	} dm[] = {
		{ "hfleet_device_memory_total_bytes", "device memory" },
		{ "hfleet_device_running_tasks", "tasks leased on the device" },
		{ "hfleet_device_utilization_percent", "device utilisation from the last heartbeat" },
		{ "hfleet_device_memory_used_bytes", "device memory in use from the last heartbeat" },
		{ "hfleet_device_temperature_celsius", "device temperature from the last heartbeat" },
		{ "hfleet_device_power_watts", "device power draw from the last heartbeat" },
		{ "hfleet_device_quarantined", "1 while the device is quarantined (no new work until a health check passes)" },
		{ "hfleet_device_infra_failures", "consecutive infrastructure failures of the device's tasks" },
	};
	size_t leased = all ? sched_collect_state(c->sched, SCHED_LEASED, all, n) : 0;
	for (size_t m = 0; m < sizeof(dm) / sizeof(dm[0]); m++) {
		gauge(b, dm[m].name, dm[m].help);
		for (struct coord_worker *w = c->workers; w; w = w->next) {
			const Hf__Register *r = w->reg;
			for (size_t i = 0; i < r->n_devices; i++) {
				const Hf__Device *d = r->devices[i];
				const Hf__DeviceTelemetry *t = coord_worker_telemetry(w, d);
				double v;
				switch (m) {
				case 0:
					v = (double)d->memory_bytes;
					break;
				case 1:
					v = (double)coord_device_running(all, leased, w->id, d);
					break;
				case 2:
					v = t ? t->utilization_pct : -1;
					break;
				case 3:
					v = t ? (double)t->memory_used_bytes : -1;
					break;
				case 4:
					v = t ? t->temperature_c : -1;
					break;
				case 5:
					v = t ? t->power_w : -1;
					break;
				case 6:
					v = coord_quarantined(c, w->id, d, NULL) ? 1 : 0;
					break;
				default: {
					const struct health_dev *hd =
						health_find(&c->health, w->id, (int)d->backend, d->index);
					v = hd ? hd->failures : 0;
					break;
				}
				}
				if (v < 0)
					continue; /* not reported: no sample rather than a made-up 0 */
				hf_buf_puts(b, dm[m].name);
				device_labels(b, w->id, d);
				hf_buf_printf(b, " %.6g\n", v);
			}
		}
	}
	free(all);
}

void coord_http_refresh(struct coord *c)
{
	struct coord_http *h = c->http;
	struct hf_buf b;

	if (!h)
		return;
	hf_buf_init(&b);
	render_metrics(c, &b);
	pthread_mutex_lock(&h->mu);
	if (!b.oom) {
		free(h->metrics);
		h->metrics = b.data;
		h->metrics_len = b.len;
		b.data = NULL;
	}
	h->db_up = c->db && db_healthy(c->db);
	h->rendered_ms = hf_mono_ms();
	pthread_mutex_unlock(&h->mu);
	hf_buf_fini(&b);
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

/* ---- HTTP (nng's threads) ---- */

static void http_reply(nng_aio *aio, uint16_t status, const char *type, const void *body, size_t len)
{
	nng_http_res *res;
	int rv = nng_http_res_alloc(&res);
	if (rv != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	nng_http_res_set_status(res, status);
	nng_http_res_set_header(res, "Content-Type", type);
	rv = nng_http_res_copy_data(res, body, len);
	if (rv != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void metrics_cb(nng_aio *aio)
{
	nng_http_handler *hd = nng_aio_get_input(aio, 1);
	struct coord_http *h = nng_http_handler_get_data(hd);
	char *copy = NULL;
	size_t len = 0;

	pthread_mutex_lock(&h->mu);
	if (h->metrics && (copy = malloc(h->metrics_len + 1)) != NULL) {
		memcpy(copy, h->metrics, h->metrics_len);
		len = h->metrics_len;
	}
	pthread_mutex_unlock(&h->mu);
	if (!copy) {
		http_reply(aio, 503, "text/plain", "metrics not ready\n", 18);
		return;
	}
	http_reply(aio, 200, "text/plain; version=0.0.4; charset=utf-8", copy, len);
	free(copy);
}

static void healthz_cb(nng_aio *aio)
{
	nng_http_handler *hd = nng_aio_get_input(aio, 1);
	struct coord_http *h = nng_http_handler_get_data(hd);
	char text[128];
	bool db_up;
	int64_t age;

	pthread_mutex_lock(&h->mu);
	db_up = h->db_up;
	age = hf_mono_ms() - h->rendered_ms;
	pthread_mutex_unlock(&h->mu);
	if (!db_up)
		snprintf(text, sizeof(text), "unhealthy: the database is unreachable\n");
	else if (age > 5000)
		snprintf(text, sizeof(text), "unhealthy: the event loop has not turned for %" PRId64 " ms\n", age);
	else
		snprintf(text, sizeof(text), "ok\n");
	http_reply(aio, strcmp(text, "ok\n") == 0 ? 200 : 503, "text/plain", text, strlen(text));
}

static int add_handler(struct coord_http *h, const char *path, void (*cb)(nng_aio *))
{
	nng_http_handler *hd;
	int rv = nng_http_handler_alloc(&hd, path, cb);
	if (rv != 0)
		return rv;
	nng_http_handler_set_method(hd, "GET");
	nng_http_handler_set_data(hd, h, NULL);
	rv = nng_http_server_add_handler(h->srv, hd);
	if (rv != 0)
		nng_http_handler_free(hd);
	return rv;
}

int coord_http_start(struct coord *c, const char *url_text)
{
	struct coord_http *h = calloc(1, sizeof(*h));
	nng_url *url = NULL;
	int rv;

	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->mu, NULL);
	h->last_sample_ms = hf_mono_ms();
	c->http = h;
	if (!url_text || !*url_text)
		return 0; /* sampling still runs; no endpoint */
	rv = nng_url_parse(&url, url_text);
	if (rv == 0)
		rv = nng_http_server_hold(&h->srv, url);
	nng_url_free(url);
	if (rv == 0)
		rv = add_handler(h, "/metrics", metrics_cb);
	if (rv == 0)
		rv = add_handler(h, "/healthz", healthz_cb);
	if (rv == 0) {
		coord_http_refresh(c);
		rv = nng_http_server_start(h->srv);
	}
	if (rv != 0) {
		if (h->srv)
			nng_http_server_release(h->srv);
		h->srv = NULL;
		return nuv_errno(rv);
	}
	return 0;
}

void coord_http_stop(struct coord *c)
{
	struct coord_http *h = c->http;
	if (!h)
		return;
	if (h->srv) {
		nng_http_server_stop(h->srv);
		nng_http_server_release(h->srv);
	}
	pthread_mutex_destroy(&h->mu);
	free(h->metrics);
	free(h);
	c->http = NULL;
}
