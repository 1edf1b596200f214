/* SPDX-License-Identifier: MIT
 *
 * Device health bookkeeping (see health.h): consecutive infrastructure
 * failures per device, quarantine, and when to ask for a check again.
 */
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

void health_init(struct health *h)
{
	h->devs = NULL;
}

void health_fini(struct health *h)
{
	while (h->devs) {
		struct health_dev *d = h->devs;
		h->devs = d->next;
		free(d);
	}
}

struct health_dev *health_find(const struct health *h, const char *worker_id, int backend,
			       uint32_t index)
{
	for (struct health_dev *d = h->devs; d; d = d->next)
		if (d->backend == backend && d->index == index && strcmp(d->worker_id, worker_id) == 0)
			return d;
	return NULL;
}

static struct health_dev *health_get(struct health *h, const char *worker_id, int backend,
				     uint32_t index)
{
	struct health_dev *d = health_find(h, worker_id, backend, index);

	if (d)
		return d;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	hf_strlcpy(d->worker_id, worker_id, sizeof(d->worker_id));
	d->backend = backend;
	d->index = index;
	d->next = h->devs;
	h->devs = d;
	return d;
}

int health_task_ended(struct health *h, const char *worker_id, int backend, uint32_t index,
		      bool infra_error, bool outcome, const char *reason, uint32_t threshold,
		      enum health_change *ret_change)
{
	struct health_dev *d;

	*ret_change = HEALTH_UNCHANGED;
	if (!infra_error && !outcome)
		return 0;
	if (!infra_error) {
		d = health_find(h, worker_id, backend, index);
		if (d)
			d->failures = 0;
		return 0;
	}
	d = health_get(h, worker_id, backend, index);
	if (!d)
		return -ENOMEM;
	if (d->failures < UINT32_MAX)
		d->failures++;
	if (threshold > 0 && d->failures >= threshold && !d->quarantined) {
		d->quarantined = true;
		d->recheck_asked_ms = 0;
		snprintf(d->reason, sizeof(d->reason), "%u infrastructure failures in a row, the last: %s",
			 d->failures, reason && *reason ? reason : "no reason given");
		*ret_change = HEALTH_QUARANTINED;
	}
	return 0;
}

int health_check_ended(struct health *h, const char *worker_id, int backend, uint32_t index, bool ok,
		       const char *detail, enum health_change *ret_change)
{
	struct health_dev *d;

	*ret_change = HEALTH_UNCHANGED;
	if (ok) {
		d = health_find(h, worker_id, backend, index);
		if (!d)
			return 0;
		if (d->quarantined)
			*ret_change = HEALTH_RESTORED;
		d->quarantined = false;
		d->failures = 0;
		d->reason[0] = '\0';
		return 0;
	}
	d = health_get(h, worker_id, backend, index);
	if (!d)
		return -ENOMEM;
	if (!d->quarantined)
		*ret_change = HEALTH_QUARANTINED;
	d->quarantined = true;
	snprintf(d->reason, sizeof(d->reason), "health check failed: %s",
		 detail && *detail ? detail : "no reason given");
	return 0;
}

int health_quarantine_set(struct health *h, const char *worker_id, int backend, uint32_t index,
			  const char *reason)
{
	struct health_dev *d = health_get(h, worker_id, backend, index);

	if (!d)
		return -ENOMEM;
	d->quarantined = true;
	hf_strlcpy(d->reason, reason ? reason : "", sizeof(d->reason));
	return 0;
}

void health_clear(struct health *h, const char *worker_id, int backend, int index)
{
	for (struct health_dev *d = h->devs; d; d = d->next) {
		if (strcmp(d->worker_id, worker_id) != 0)
			continue;
		if (backend >= 0 && (d->backend != backend || (int64_t)d->index != index))
			continue;
		d->quarantined = false;
		d->failures = 0;
		d->reason[0] = '\0';
	}
}

bool health_quarantined(const struct health *h, const char *worker_id, int backend, uint32_t index,
			const char **ret_reason)
{
	const struct health_dev *d = health_find(h, worker_id, backend, index);

	if (!d || !d->quarantined)
		return false;
	if (ret_reason)
		*ret_reason = d->reason;
	return true;
}

bool health_recheck_due(struct health *h, const char *worker_id, int backend, uint32_t index,
			int64_t now_ms, int64_t interval_ms)
{
	struct health_dev *d = health_find(h, worker_id, backend, index);

	if (!d || !d->quarantined)
		return false;
	if (d->recheck_asked_ms != 0 && now_ms - d->recheck_asked_ms < interval_ms)
		return false;
	d->recheck_asked_ms = now_ms ? now_ms : 1;
	return true;
}

size_t health_count_quarantined(const struct health *h)
{
	size_t n = 0;

	for (const struct health_dev *d = h->devs; d; d = d->next)
		n += d->quarantined;
	return n;
}
