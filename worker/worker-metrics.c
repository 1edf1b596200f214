/* SPDX-License-Identifier: MIT
 *
 * The worker's Prometheus metrics (see worker-metrics.h): the process-wide
 * counters and the rendering of /metrics from them and from the session.
 * Loop thread only.
 */
#include "worker-metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "hf_metrics.h"
#include "hf_proto.h"
#include "session-internal.h"

/* Devices a task has finished on, by (backend, index); bounded, and kept
 * across hardware changes (a counter must not go backwards). */
#define FINISHED_MAX (2 * HW_MAX_DEVICES)

static struct {
	bool ready;
	double start_time_s;
	struct hf_metric *runner_starts;
	struct hf_metric *results_acked;
	struct hf_metric *results_refused;
	struct hf_metric *health_checks;  /* result = ok | failed */
	struct {
		Hf__Backend backend;
		uint32_t index;
		uint64_t n;
	} finished[FINISHED_MAX];
	size_t n_finished;
	uint64_t finished_other;          /* past FINISHED_MAX devices */
} wm;

int worker_metrics_init(void)
{
	static const char *const result_label = "result";
	static const char *const results[] = { "ok", "failed" };

	worker_metrics_fini();
	wm.start_time_s = hf_wall_s();
	wm.runner_starts = hf_metric_new(HF_METRIC_COUNTER, "hfleet_worker_runner_starts_total",
					 "warm runner processes started: the first for a kind of task, and each "
					 "replacement for one retired (runner.warm_max_tasks, warm_max_rss, idle) "
					 "or dead",
					 1, NULL, 0);
	wm.results_acked = hf_metric_new(HF_METRIC_COUNTER, "hfleet_worker_results_sent_total",
					 "results the coordinator acknowledged (then removed from the spool)", 1,
					 NULL, 0);
	wm.results_refused = hf_metric_new(HF_METRIC_COUNTER, "hfleet_worker_results_refused_total",
					   "result batches the coordinator refused as invalid or forbidden", 1,
					   NULL, 0);
	wm.health_checks = hf_metric_new(HF_METRIC_COUNTER, "hfleet_worker_health_checks_total",
					 "device health checks run, by result", 2, NULL, 0);
	if (!wm.runner_starts || !wm.results_acked || !wm.results_refused || !wm.health_checks ||
	    hf_metric_labels(wm.health_checks, 0, &result_label, &results[0], 1) < 0 ||
	    hf_metric_labels(wm.health_checks, 1, &result_label, &results[1], 1) < 0) {
		worker_metrics_fini();
		return -ENOMEM;
	}
	wm.ready = true;
	return 0;
}

void worker_metrics_fini(void)
{
	hf_metric_free(wm.runner_starts);
	hf_metric_free(wm.results_acked);
	hf_metric_free(wm.results_refused);
	hf_metric_free(wm.health_checks);
	wm.runner_starts = wm.results_acked = wm.results_refused = wm.health_checks = NULL;
	wm.n_finished = 0;
	wm.finished_other = 0;
	wm.ready = false;
}

void worker_metrics_task_finished(Hf__Backend backend, uint32_t index)
{
	size_t i;

	for (i = 0; i < wm.n_finished; i++)
		if (wm.finished[i].backend == backend && wm.finished[i].index == index)
			break;
	if (i == wm.n_finished) {
		if (i == FINISHED_MAX) {
			wm.finished_other++;
			return;
		}
		wm.finished[i].backend = backend;
		wm.finished[i].index = index;
		wm.finished[i].n = 0;
		wm.n_finished++;
	}
	wm.finished[i].n++;
}

void worker_metrics_runner_started(void)
{
	hf_metric_add(wm.runner_starts, 0, 1);
}

void worker_metrics_results_acked(uint64_t n)
{
	hf_metric_add(wm.results_acked, 0, n);
}

void worker_metrics_results_refused(void)
{
	hf_metric_add(wm.results_refused, 0, 1);
}

void worker_metrics_health_check(bool ok)
{
	hf_metric_add(wm.health_checks, ok ? 0 : 1, 1);
}

static void device_labels(char *out, size_t len, Hf__Backend backend, uint32_t index)
{
	snprintf(out, len, "backend=\"%s\",index=\"%u\"", hf_backend_name(backend), index);
}

void worker_metrics_render(const struct session *s, struct hf_buf *b)
{
	const struct hw_inventory *inv = s ? s->cfg.inv : NULL;
	char l[96];

	hf_metrics_render_build_info(b);
	hf_metric_render(wm.runner_starts, b);
	hf_metric_render(wm.results_acked, b);
	hf_metric_render(wm.results_refused, b);
	hf_metric_render(wm.health_checks, b);

	hf_metrics_header(b, "hfleet_worker_results_waiting",
			  "results not yet acknowledged by the coordinator (in the spool, or in memory when the "
			  "spool could not take them)",
			  HF_METRIC_GAUGE);
	hf_metrics_sample_u64(b, "hfleet_worker_results_waiting", NULL, s ? s->n_pending : 0);

	hf_metrics_header(b, "hfleet_worker_devices", "devices this worker offers (after devices.hide)",
			  HF_METRIC_GAUGE);
	hf_metrics_sample_u64(b, "hfleet_worker_devices", NULL, inv ? inv->n_devices : 0);

	hf_metrics_header(b, "hfleet_worker_tasks_running", "tasks running on the device", HF_METRIC_GAUGE);
	for (size_t i = 0; inv && i < inv->n_devices; i++) {
		const struct hw_device *d = &inv->devices[i];
		device_labels(l, sizeof(l), d->backend, d->index);
		hf_metrics_sample_u64(b, "hfleet_worker_tasks_running", l,
				      s->ex ? executor_count(s->ex, d->backend, d->index) : 0);
	}

	hf_metrics_header(b, "hfleet_worker_tasks_queued",
			  "tests leased ahead, waiting for a slot of the device (worker.lease_ahead)",
			  HF_METRIC_GAUGE);
	for (size_t i = 0; inv && i < inv->n_devices; i++) {
		const struct hw_device *d = &inv->devices[i];
		device_labels(l, sizeof(l), d->backend, d->index);
		hf_metrics_sample_u64(b, "hfleet_worker_tasks_queued", l, ahead_queued(s, d->backend, d->index));
	}

	hf_metrics_header(b, "hfleet_worker_tasks_finished_total",
			  "tasks whose runner finished on the device (any outcome); backend \"other\" counts "
			  "devices past the bound on series",
			  HF_METRIC_COUNTER);
	for (size_t i = 0; i < wm.n_finished; i++) {
		device_labels(l, sizeof(l), wm.finished[i].backend, wm.finished[i].index);
		hf_metrics_sample_u64(b, "hfleet_worker_tasks_finished_total", l, wm.finished[i].n);
	}
	if (wm.finished_other)
		hf_metrics_sample_u64(b, "hfleet_worker_tasks_finished_total", "backend=\"other\",index=\"\"",
				      wm.finished_other);
	hf_metrics_render_process(b, wm.ready ? wm.start_time_s : hf_wall_s());
}

void worker_status_line(const struct session *s, char *buf, size_t len)
{
	const struct hw_inventory *inv = s ? s->cfg.inv : NULL;
	unsigned slots = 0, busy = 0;

	if (!s) {
		snprintf(buf, len, "starting");
		return;
	}
	for (size_t i = 0; inv && i < inv->n_devices; i++) {
		const struct hw_device *d = &inv->devices[i];
		unsigned n = s->ex ? executor_count(s->ex, d->backend, d->index) : 0;
		slots += d->slots;
		busy += n < d->slots ? n : d->slots;
	}
	switch (s->state) {
	case SESSION_REGISTERING:
		snprintf(buf, len, "%sregistering with %s as %s%s; %u of %u slots busy",
			 s->draining ? "draining, " : "", s->cfg.url, s->cfg.worker_id,
			 s->reg_failures ? " (the coordinator does not answer yet)" : "", busy, slots);
		break;
	case SESSION_ACTIVE:
		snprintf(buf, len, "%sregistered with %s as %s; %u of %u slots busy, %zu results waiting",
			 s->draining ? "draining, " : "", s->cfg.url, s->cfg.worker_id, busy, slots,
			 s->n_pending);
		break;
	case SESSION_FLUSHING:
		snprintf(buf, len, "drained: sending the last %zu results to %s", s->n_pending, s->cfg.url);
		break;
	case SESSION_DONE:
		snprintf(buf, len, "stopping");
		break;
	}
}
