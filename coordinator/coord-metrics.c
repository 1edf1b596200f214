/* SPDX-License-Identifier: MIT
 *
 * The coordinator's Prometheus metrics (see coord-metrics.h): the
 * families counted as things happen, and the rendering of /metrics when
 * it is scraped: those families, gauges read from live state (tasks by
 * state from the scheduler's running counts, workers, connections, per
 * device readings), build information and process metrics.  Loop thread
 * only.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

/* Seconds: from a poll's 1 ms to an hour-long benchmark. */
static const double duration_bounds[] = { 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600 };
static const double wait_bounds[] = { 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400 };
static const double fast_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
				      2.5, 5, 10 };

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const char *const outcome_name[COORD_N_OUTCOMES] = {
	"passed", "failed", "error", "timeout", "skipped", "cancelled",
};

/* The label of each database operation (db.h's enum db_op_kind, in order). */
static const char *const db_op_name[] = {
	"start",         "job_create",   "lease_grant",  "lease_expire", "result_store",
	"job_cancel",    "worker_upsert", "telemetry_sample", "job_retry", "drain",
	"health_store",  "job_status",   "job_list",     "results",      "task_explain",
	"token_create",  "token_revoke", "token_touch",  "token_list",   "audit_list",
	"auth_bootstrap", "job_cancel_slice", "job_plan_slice",
};
_Static_assert(N_ELEMS(db_op_name) == DB_OP_JOB_PLAN_SLICE + 1, "a name for every database operation");

/* The labels of hfleet_reservations_total, in coord_counter's order. */
static const char *const reservation_event[] = { "made", "handed_over", "released" };
_Static_assert(N_ELEMS(reservation_event) == COORD_RESERVATIONS_RELEASED - COORD_RESERVATIONS_MADE + 1,
	       "a label for every reservation event");

static void db_observe_cb(void *arg, enum db_op_kind kind, int64_t us)
{
	struct coord *c = arg;

	if (c->metrics && us >= 0 && (size_t)kind < N_ELEMS(db_op_name))
		hf_metric_observe_us(c->metrics->db_operation, (size_t)kind, (uint64_t)us);
}

static int label_each(struct hf_metric *m, const char *label, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = hf_metric_labels(m, i, &label, &values[i], 1);
		if (r < 0)
			return r;
	}
	return 0;
}

int coord_metrics_init(struct coord *c)
{
	struct coord_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->start_time_s = hf_wall_s();
	m->tasks_finished = hf_metric_new(HF_METRIC_COUNTER, "hfleet_tasks_finished_total",
					  "tasks that reached a final outcome, by outcome", COORD_N_OUTCOMES,
					  NULL, 0);
	m->submits = hf_metric_new(HF_METRIC_COUNTER, "hfleet_submits_total",
				   "jobs accepted (a repeated submit with the same request id is not counted)", 1,
				   NULL, 0);
	m->results_received = hf_metric_new(HF_METRIC_COUNTER, "hfleet_results_received_total",
					    "task results received from workers in valid batches (resent ones too)",
					    1, NULL, 0);
	m->leases_expired = hf_metric_new(HF_METRIC_COUNTER, "hfleet_leases_expired_total",
					  "leases that ran out without being renewed (worker dead, hung or cut off)",
					  1, NULL, 0);
	m->retries = hf_metric_new(HF_METRIC_COUNTER, "hfleet_retries_total",
				   "tasks queued again for another attempt: infrastructure failures, lost leases "
				   "and flaky-test reruns",
				   1, NULL, 0);
	m->reservations = hf_metric_new(HF_METRIC_COUNTER, "hfleet_reservations_total",
					"tasks reserved at the coordinator for a busy worker slot (scheduler.reserve_below): "
					"made (the lease committed), handed_over (at the worker's next poll with a free "
					"slot), released (queued again, never handed over)",
					N_ELEMS(reservation_event), NULL, 0);
	m->quarantines = hf_metric_new(HF_METRIC_COUNTER, "hfleet_quarantines_total",
				       "times a device was quarantined (infrastructure failures or a failed health "
				       "check)",
				       1, NULL, 0);
	m->task_duration = hf_metric_new(HF_METRIC_HISTOGRAM, "hfleet_task_duration_seconds",
					 "run time of finished tasks (finished_at - started_at as their worker reported them)", 1,
					 duration_bounds, N_ELEMS(duration_bounds));
	m->queue_wait = hf_metric_new(HF_METRIC_HISTOGRAM, "hfleet_queue_wait_seconds",
				      "time a task waited in its queue before a lease was granted", 1, wait_bounds,
				      N_ELEMS(wait_bounds));
	m->lease_grant = hf_metric_new(HF_METRIC_HISTOGRAM, "hfleet_lease_grant_seconds",
				       "from a worker's poll to the reply granting it leases (the lease is "
				       "committed to the database in between)",
				       1, fast_bounds, N_ELEMS(fast_bounds));
	m->db_operation = hf_metric_new(HF_METRIC_HISTOGRAM, "hfleet_db_operation_seconds",
					"database operations from submission to completion (queueing included), "
					"by operation",
					N_ELEMS(db_op_name), fast_bounds, N_ELEMS(fast_bounds));
	c->metrics = m;
	if (!m->tasks_finished || !m->submits || !m->results_received || !m->leases_expired || !m->retries ||
	    !m->reservations || !m->quarantines || !m->task_duration || !m->queue_wait || !m->lease_grant || !m->db_operation ||
	    label_each(m->tasks_finished, "outcome", outcome_name, COORD_N_OUTCOMES) < 0 ||
	    label_each(m->reservations, "event", reservation_event, N_ELEMS(reservation_event)) < 0 ||
	    label_each(m->db_operation, "op", db_op_name, N_ELEMS(db_op_name)) < 0) {
		coord_metrics_fini(c);
		return -ENOMEM;
	}
	if (c->db)
		db_set_observer(c->db, db_observe_cb, c);
	if (c->db_jobs)
		db_set_observer(c->db_jobs, db_observe_cb, c);
	return 0;
}

void coord_metrics_fini(struct coord *c)
{
	struct coord_metrics *m = c->metrics;

	if (!m)
		return;
	if (c->db)
		db_set_observer(c->db, NULL, NULL);
	if (c->db_jobs)
		db_set_observer(c->db_jobs, NULL, NULL);
	hf_metric_free(m->tasks_finished);
	hf_metric_free(m->submits);
	hf_metric_free(m->results_received);
	hf_metric_free(m->leases_expired);
	hf_metric_free(m->retries);
	hf_metric_free(m->reservations);
	hf_metric_free(m->quarantines);
	hf_metric_free(m->task_duration);
	hf_metric_free(m->queue_wait);
	hf_metric_free(m->lease_grant);
	hf_metric_free(m->db_operation);
	free(m);
	c->metrics = NULL;
}

void coord_metrics_finished(struct coord *c, Hf__TaskStatus status, uint64_t n)
{
	enum coord_outcome o;

	if (!c->metrics)
		return;
	switch (status) {
	case HF__TASK_STATUS__STATUS_PASSED:
		o = COORD_OUTCOME_PASSED;
		break;
	case HF__TASK_STATUS__STATUS_FAILED:
		o = COORD_OUTCOME_FAILED;
		break;
	case HF__TASK_STATUS__STATUS_TIMEOUT:
		o = COORD_OUTCOME_TIMEOUT;
		break;
	case HF__TASK_STATUS__STATUS_SKIPPED:
		o = COORD_OUTCOME_SKIPPED;
		break;
	case HF__TASK_STATUS__STATUS_CANCELLED:
		o = COORD_OUTCOME_CANCELLED;
		break;
	default:
		o = COORD_OUTCOME_ERROR;
		break;
	}
	hf_metric_add(c->metrics->tasks_finished, o, n);
}

void coord_metrics_count(struct coord *c, enum coord_counter which, uint64_t n)
{
	struct coord_metrics *m = c->metrics;
	struct hf_metric *f = NULL;

	if (!m)
		return;
	switch (which) {
	case COORD_SUBMITS:
		f = m->submits;
		break;
	case COORD_RESULTS_RECEIVED:
		f = m->results_received;
		break;
	case COORD_LEASES_EXPIRED:
		f = m->leases_expired;
		break;
	case COORD_RETRIES:
		f = m->retries;
		break;
	case COORD_QUARANTINES:
		f = m->quarantines;
		break;
	case COORD_RESERVATIONS_MADE:
	case COORD_RESERVATIONS_HANDED_OVER:
	case COORD_RESERVATIONS_RELEASED:
		hf_metric_add(m->reservations, (size_t)(which - COORD_RESERVATIONS_MADE), n);
		return;
	}
	hf_metric_add(f, 0, n);
}

void coord_metrics_observe(struct coord *c, enum coord_histogram which, double seconds)
{
	struct coord_metrics *m = c->metrics;
	struct hf_metric *f = NULL;

	/* A worker's figure is validated but may still be anything finite;
	 * a day of microseconds fits easily, a year is the cap. */
	if (!m || !isfinite(seconds) || seconds < 0)
		return;
	if (seconds > 366.0 * 86400)
		seconds = 366.0 * 86400;
	switch (which) {
	case COORD_TASK_DURATION:
		f = m->task_duration;
		break;
	case COORD_QUEUE_WAIT:
		f = m->queue_wait;
		break;
	case COORD_LEASE_GRANT:
		f = m->lease_grant;
		break;
	}
	hf_metric_observe_us(f, 0, (uint64_t)llround(seconds * 1e6));
}

/* ---- rendering ---- */

/* What each port's fairness rules did (common/hf_nuv.h). */
static void render_connections(struct coord *c, struct hf_buf *b)
{
	static const char *const port[] = { "worker", "control" };
	nuv_server_t *srv[] = { c->worker_srv, c->control_srv };
	struct nuv_server_stats st[2] = { { 0 } };
	char l[96];

	for (int i = 0; i < 2; i++)
		if (srv[i])
			nuv_server_stats(srv[i], &st[i]);
	hf_metrics_header(b, "hfleet_connections", "open connections, by port", HF_METRIC_GAUGE);
	for (int i = 0; i < 2; i++) {
		snprintf(l, sizeof(l), "port=\"%s\"", port[i]);
		hf_metrics_sample_u64(b, "hfleet_connections", l, st[i].connections_open);
	}
	hf_metrics_header(b, "hfleet_connections_refused_total",
			  "connections closed on arrival because the port had connections.max_per_port open",
			  HF_METRIC_COUNTER);
	for (int i = 0; i < 2; i++) {
		snprintf(l, sizeof(l), "port=\"%s\"", port[i]);
		hf_metrics_sample_u64(b, "hfleet_connections_refused_total", l, st[i].refused_over_cap);
	}
	hf_metrics_header(b, "hfleet_connections_closed_total",
			  "connections the coordinator closed: idle (no request for connections.idle_timeout), "
			  "unread_replies (a reply not taken within connections.reply_timeout), handshake (no or a "
			  "bad SP header within connections.handshake_timeout), protocol (a frame too long, a bad "
			  "backtrace) or tls (the TLS handshake failed: not TLS, or a certificate refused)",
			  HF_METRIC_COUNTER);
	for (int i = 0; i < 2; i++) {
		static const char *const reason[] = { "idle", "unread_replies", "handshake", "protocol", "tls" };
		uint64_t v[] = { st[i].closed_idle, st[i].closed_unread, st[i].closed_handshake,
				 st[i].closed_protocol, st[i].closed_tls };
		for (size_t k = 0; k < N_ELEMS(reason); k++) {
			snprintf(l, sizeof(l), "port=\"%s\",reason=\"%s\"", port[i], reason[k]);
			hf_metrics_sample_u64(b, "hfleet_connections_closed_total", l, v[k]);
		}
	}
	hf_metrics_header(b, "hfleet_connections_paused_total",
			  "times the coordinator stopped reading a connection that had "
			  "connections.requests_per_connection requests unanswered, until one was answered",
			  HF_METRIC_COUNTER);
	for (int i = 0; i < 2; i++) {
		snprintf(l, sizeof(l), "port=\"%s\"", port[i]);
		hf_metrics_sample_u64(b, "hfleet_connections_paused_total", l, st[i].paused_at_share);
	}
}

static void device_labels(char *out, size_t len, const char *worker, const Hf__Device *d)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hf_buf_puts(&b, "worker=\"");
	hf_metrics_label_value(&b, worker);
	hf_buf_printf(&b, "\",backend=\"%s\",index=\"%u\"", hf_backend_name(d->backend), d->index);
	snprintf(out, len, "%s", b.oom ? "" : b.data);
	hf_buf_fini(&b);
}

enum dev_gauge {
	DEV_MEMORY_TOTAL,
	DEV_RUNNING,
	DEV_UTILIZATION,
	DEV_MEMORY_USED,
	DEV_TEMPERATURE,
	DEV_POWER,
	DEV_QUARANTINED,
	DEV_INFRA_FAILURES,
	DEV_N_GAUGES,
};

/* One device of the fleet with its label set, formatted once per scrape
 * for its eight gauges. */
struct dev_row {
	struct coord_worker *w;
	const Hf__Device *d;
	char labels[400]; /* worker ids are at most 128 bytes, escaped at most twice that */
};

static void render_device_gauge(struct coord *c, struct hf_buf *b, const char *name, enum dev_gauge m,
				struct coord_worker *w, const Hf__Device *d, const char *l)
{
	const Hf__DeviceTelemetry *t = coord_worker_telemetry(w, d);

	switch (m) {
	case DEV_MEMORY_TOTAL:
		hf_metrics_sample_u64(b, name, l, d->memory_bytes);
		break;
	case DEV_RUNNING: /* kept by the scheduler as leases come and go */
		hf_metrics_sample_u64(b, name, l, sched_device_leased(c->sched, w->id, d->backend, d->index));
		break;
	/* Not reported: no sample rather than a made-up 0. */
	case DEV_UTILIZATION:
		if (t && t->utilization_pct >= 0)
			hf_metrics_sample_double(b, name, l, t->utilization_pct);
		break;
	case DEV_MEMORY_USED:
		if (t)
			hf_metrics_sample_u64(b, name, l, t->memory_used_bytes);
		break;
	case DEV_TEMPERATURE:
		if (t && t->temperature_c >= 0)
			hf_metrics_sample_double(b, name, l, t->temperature_c);
		break;
	case DEV_POWER:
		if (t && t->power_w >= 0)
			hf_metrics_sample_double(b, name, l, t->power_w);
		break;
	case DEV_QUARANTINED:
		hf_metrics_sample_u64(b, name, l, coord_quarantined(c, w->id, d, NULL));
		break;
	case DEV_INFRA_FAILURES: {
		const struct health_dev *hd = health_find(&c->health, w->id, (int)d->backend, d->index);
		hf_metrics_sample_u64(b, name, l, hd ? hd->failures : 0);
		break;
	}
	case DEV_N_GAUGES:
		break;
	}
}

/* Every device's gauges: O(devices), each device's labels formatted once
 * (or once per gauge when there is no memory for the rows). */
static void render_devices(struct coord *c, struct hf_buf *b)
{
	static const struct {
		const char *name, *help;
	} dm[DEV_N_GAUGES] = {
		{ "hfleet_device_memory_total_bytes", "device memory" },
		{ "hfleet_device_running_tasks", "tasks leased on the device" },
		{ "hfleet_device_utilization_percent", "device utilisation from the last heartbeat" },
		{ "hfleet_device_memory_used_bytes", "device memory in use from the last heartbeat" },
		{ "hfleet_device_temperature_celsius", "device temperature from the last heartbeat" },
		{ "hfleet_device_power_watts", "device power draw from the last heartbeat" },
		{ "hfleet_device_quarantined",
		  "1 while the device is quarantined (no new work until a health check passes)" },
		{ "hfleet_device_infra_failures", "consecutive infrastructure failures of the device's tasks" },
	};
	size_t n = 0, k = 0;
	struct dev_row *rows;
	char l[400];

	for (struct coord_worker *w = c->workers; w; w = w->next)
		n += w->reg->n_devices;
	rows = n ? malloc(n * sizeof(*rows)) : NULL;
	if (rows) {
		for (struct coord_worker *w = c->workers; w; w = w->next) {
			for (size_t i = 0; i < w->reg->n_devices; i++, k++) {
				rows[k].w = w;
				rows[k].d = w->reg->devices[i];
				device_labels(rows[k].labels, sizeof(rows[k].labels), w->id, rows[k].d);
			}
		}
	}
	for (int m = 0; m < DEV_N_GAUGES; m++) {
		hf_metrics_header(b, dm[m].name, dm[m].help, HF_METRIC_GAUGE);
		if (rows) {
			for (k = 0; k < n; k++)
				render_device_gauge(c, b, dm[m].name, (enum dev_gauge)m, rows[k].w, rows[k].d,
						    rows[k].labels);
			continue;
		}
		for (struct coord_worker *w = c->workers; w; w = w->next) {
			for (size_t i = 0; i < w->reg->n_devices; i++) {
				device_labels(l, sizeof(l), w->id, w->reg->devices[i]);
				render_device_gauge(c, b, dm[m].name, (enum dev_gauge)m, w, w->reg->devices[i], l);
			}
		}
	}
	free(rows);
}

void coord_metrics_render(struct coord *c, struct hf_buf *b)
{
	size_t workers = 0, connected = 0;
	int64_t now = hf_mono_ms();
	struct coord_metrics *m = c->metrics;

	hf_metrics_render_build_info(b);
	hf_metrics_header(b, "hfleet_database_up", "1 when the coordinator reaches PostgreSQL", HF_METRIC_GAUGE);
	hf_metrics_sample_u64(b, "hfleet_database_up", NULL, c->db && db_healthy(c->db));
	if (c->db && c->db_results) {
		uint64_t splits, retries;
		db_result_lane_counts(c->db, &splits, &retries);
		hf_metrics_header(b, "hfleet_db_result_splits_total",
				  "groups of result stores stored half on each of two connections at once "
				  "(database.result_connections)", HF_METRIC_COUNTER);
		hf_metrics_sample_u64(b, "hfleet_db_result_splits_total", NULL, splits);
		hf_metrics_header(b, "hfleet_db_result_split_retries_total",
				  "of those, the groups whose second connection's half failed (rolled back) and was "
				  "stored on the first", HF_METRIC_COUNTER);
		hf_metrics_sample_u64(b, "hfleet_db_result_split_retries_total", NULL, retries);
	}

	/* In hfctl's words: a task being granted or waiting out a retry's
	 * backoff is still queued; one whose expired lease is being requeued
	 * is still running until that is committed. */
	hf_metrics_header(b, "hfleet_tasks",
			  "live (not yet final) tasks: queued (waiting for a device, or for a retry's backoff), "
			  "running (leased to a worker), cancelling (cancelled, its worker not yet stopped)",
			  HF_METRIC_GAUGE);
	hf_metrics_sample_u64(b, "hfleet_tasks", "state=\"queued\"",
			      sched_count_state(c->sched, SCHED_QUEUED) + sched_count_state(c->sched, SCHED_GRANTING) +
				      sched_count_state(c->sched, SCHED_DELAYED));
	hf_metrics_sample_u64(b, "hfleet_tasks", "state=\"running\"",
			      sched_count_state(c->sched, SCHED_LEASED) + sched_count_state(c->sched, SCHED_EXPIRING));
	hf_metrics_sample_u64(b, "hfleet_tasks", "state=\"cancelling\"",
			      sched_count_state(c->sched, SCHED_CANCELLING));

	for (struct coord_worker *w = c->workers; w; w = w->next) {
		workers++;
		connected += coord_worker_connected(c, w, now);
	}
	hf_metrics_header(b, "hfleet_workers", "registered workers, by connection state", HF_METRIC_GAUGE);
	hf_metrics_sample_u64(b, "hfleet_workers", "state=\"connected\"", connected);
	hf_metrics_sample_u64(b, "hfleet_workers", "state=\"disconnected\"", workers - connected);

	if (m) {
		hf_metric_render(m->tasks_finished, b);
		hf_metric_render(m->submits, b);
		hf_metric_render(m->results_received, b);
		hf_metric_render(m->leases_expired, b);
		hf_metric_render(m->retries, b);
		hf_metric_render(m->reservations, b);
		hf_metric_render(m->quarantines, b);
		hf_metric_render(m->task_duration, b);
		hf_metric_render(m->queue_wait, b);
		hf_metric_render(m->lease_grant, b);
		hf_metric_render(m->db_operation, b);
	}
	render_connections(c, b);
	render_devices(c, b);
	hf_metrics_render_process(b, m ? m->start_time_s : 0);
}
