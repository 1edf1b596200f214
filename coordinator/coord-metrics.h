/* SPDX-License-Identifier: MIT
 *
 * The coordinator's Prometheus metrics (docs/metrics.md lists them).
 * Counters and histograms live in struct coord_metrics and are updated
 * where things happen (worker-api.c, control-api.c, leases.c, the database
 * observer); gauges are read from live state when /metrics is scraped,
 * never on a timer, and cost O(devices + leased tasks) per scrape.
 *
 * Threads: everything here runs on the loop thread (the families'
 * updates are atomic, see hf_metrics.h, but only the loop updates them).
 * Every coord_metrics_* update accepts c->metrics == NULL (before start,
 * in tests) and does nothing then.
 */
#ifndef HF_COORD_METRICS_H
#define HF_COORD_METRICS_H

#include <stdint.h>

#include "hf_metrics.h"
#include "hfleet.pb-c.h"

struct coord;

/* Outcomes of hfleet_tasks_finished_total, in the words hfctl uses. */
enum coord_outcome {
	COORD_OUTCOME_PASSED,
	COORD_OUTCOME_FAILED,
	COORD_OUTCOME_ERROR,
	COORD_OUTCOME_TIMEOUT,
	COORD_OUTCOME_SKIPPED,
	COORD_OUTCOME_CANCELLED,
	COORD_N_OUTCOMES,
};

struct coord_metrics {
	double start_time_s;
	struct hf_metric *tasks_finished;   /* by outcome */
	struct hf_metric *submits;
	struct hf_metric *results_received;
	struct hf_metric *leases_expired;
	struct hf_metric *retries;
	struct hf_metric *reservations;     /* by event */
	struct hf_metric *quarantines;
	struct hf_metric *task_duration;
	struct hf_metric *queue_wait;
	struct hf_metric *lease_grant;
	struct hf_metric *db_operation;     /* by op */
};

/* Creates c->metrics and observes the database's operations.  Returns 0
 * or -ENOMEM. */
int coord_metrics_init(struct coord *c);
void coord_metrics_fini(struct coord *c);

/* A task reached its final outcome (status: a final Hf__TaskStatus). */
void coord_metrics_finished(struct coord *c, Hf__TaskStatus status, uint64_t n);

/* Counters (n events). */
enum coord_counter {
	COORD_SUBMITS,
	COORD_RESULTS_RECEIVED,
	COORD_LEASES_EXPIRED,
	COORD_RETRIES,
	COORD_QUARANTINES,
	/* In this order (the labels of hfleet_reservations_total). */
	COORD_RESERVATIONS_MADE,
	COORD_RESERVATIONS_HANDED_OVER,
	COORD_RESERVATIONS_RELEASED,
};
void coord_metrics_count(struct coord *c, enum coord_counter which, uint64_t n);

/* Histograms.  Negative or non-finite durations are not observed. */
enum coord_histogram {
	COORD_TASK_DURATION,
	COORD_QUEUE_WAIT,
	COORD_LEASE_GRANT,
};
void coord_metrics_observe(struct coord *c, enum coord_histogram which, double seconds);

/* Appends the whole /metrics text (loop thread). */
void coord_metrics_render(struct coord *c, struct hf_buf *b);

#endif
