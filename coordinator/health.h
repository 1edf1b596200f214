/* SPDX-License-Identifier: MIT
 *
 * Device health: which devices are quarantined, and why.  Pure: no I/O, no
 * clock of its own (callers pass the time), unit-tested on its own.
 *
 * A device (worker id, backend, index) whose tasks end in infrastructure
 * errors (the runner crashed, a fatal device error, OOM kill) `threshold`
 * times in a row is quarantined: the scheduler gives it nothing until a
 * health check on it passes or an operator returns it to service.  A task
 * result that is an outcome of the model (passed, failed, skipped) resets
 * the count.  A failed health check quarantines the device at once (a
 * device that fails its check at registration starts quarantined); a
 * passed one clears the quarantine and the count.
 *
 * Ownership: the table owns its entries; strings passed in are copied.
 * Loop thread only.
 */
#ifndef HF_HEALTH_H
#define HF_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEALTH_REASON_MAX 384

struct health_dev {
	char worker_id[128];
	int backend;                     /* Hf__Backend */
	uint32_t index;
	uint32_t failures;               /* consecutive infrastructure failures */
	bool quarantined;
	char reason[HEALTH_REASON_MAX];  /* why it is quarantined */
	int64_t recheck_asked_ms;        /* when a check was last asked for (monotonic) */
	struct health_dev *next;
};

struct health {
	struct health_dev *devs;
};

/* What a report changed. */
enum health_change {
	HEALTH_UNCHANGED,
	HEALTH_QUARANTINED,   /* it was in service and is quarantined now */
	HEALTH_RESTORED,      /* it was quarantined and is in service now */
};

void health_init(struct health *h);
void health_fini(struct health *h);

/* The entry of a device, or NULL. */
struct health_dev *health_find(const struct health *h, const char *worker_id, int backend,
			       uint32_t index);

/* A task on the device ended.  infra_error: an infrastructure error (counts
 * towards the quarantine); outcome: a verdict on the model (passed, failed,
 * skipped: resets the count).  Neither (a timeout, a cancel) changes
 * nothing.  threshold 0 never quarantines.  -ENOMEM when a new entry could
 * not be made (nothing changed). */
int health_task_ended(struct health *h, const char *worker_id, int backend, uint32_t index,
		      bool infra_error, bool outcome, const char *reason, uint32_t threshold,
		      enum health_change *ret_change);

/* A health check on the device finished. */
int health_check_ended(struct health *h, const char *worker_id, int backend, uint32_t index, bool ok,
		       const char *detail, enum health_change *ret_change);

/* Sets the quarantine as stored (at start) or clears it (an operator
 * returned the device to service; index -1 with backend -1: every device
 * of the worker). */
int health_quarantine_set(struct health *h, const char *worker_id, int backend, uint32_t index,
			  const char *reason);
void health_clear(struct health *h, const char *worker_id, int backend, int index);

/* Whether the device is quarantined; its reason when it is. */
bool health_quarantined(const struct health *h, const char *worker_id, int backend, uint32_t index,
			const char **ret_reason);

/* Whether a quarantined device is due to be asked for a check again (none
 * asked within interval_ms); when it is, records that it is asked now. */
bool health_recheck_due(struct health *h, const char *worker_id, int backend, uint32_t index,
			int64_t now_ms, int64_t interval_ms);

/* How many devices are quarantined. */
size_t health_count_quarantined(const struct health *h);

#endif
