/* SPDX-License-Identifier: MIT
 *
 * The worker's Prometheus metrics (docs/metrics.md lists them), served on
 * worker.metrics_listen by common/hf_http.c.  Counters are counted where
 * things happen (the executor, the warm pool, the session's results and
 * health checks); gauges (results waiting, tasks running per device) are
 * read from the session when /metrics is scraped.  The status line systemd
 * shows is read from the session the same way.
 *
 * The counters are process-wide, like the process they describe: every
 * hook works before worker_metrics_init (it counts into nothing) so the
 * unit tests that drive the executor or the session need no setup.
 *
 * Threads: the hooks and the rendering run on the worker's loop thread
 * (the families' updates are atomic, see hf_metrics.h).
 */
#ifndef WORKER_METRICS_H
#define WORKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_util.h"
#include "hfleet.pb-c.h"

struct session;

/* Creates the counters.  Returns 0 or -ENOMEM. */
int worker_metrics_init(void);
void worker_metrics_fini(void);

/* A task's runner finished on device (backend, index): any outcome. */
void worker_metrics_task_finished(Hf__Backend backend, uint32_t index);

/* A warm runner process was started (the first for its kind of task, or
 * a replacement for one that was retired or died). */
void worker_metrics_runner_started(void);

/* The coordinator acknowledged n results; refused one batch as invalid. */
void worker_metrics_results_acked(uint64_t n);
void worker_metrics_results_refused(void);

/* A health check of a device ended. */
void worker_metrics_health_check(bool ok);

/* The line for "systemctl status" (common/hf_sdnotify.h): whether the
 * worker is registered, and how many of its slots are busy.  s may be
 * NULL. */
void worker_status_line(const struct session *s, char *buf, size_t len);

/* Appends the whole /metrics text for session s (NULL: no session yet). */
void worker_metrics_render(const struct session *s, struct hf_buf *b);

#endif
