/* SPDX-License-Identifier: MIT
 *
 * Free slots and admission of assignments per device (see alloc.h).
 */
#include "alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

unsigned alloc_capacity(const struct hw_device *d)
{
	if (!d->shared)
		return 1;
	return d->slots ? d->slots : 1;
}

unsigned alloc_free_slots(const struct hw_device *d, const struct alloc_use *use)
{
	unsigned cap = alloc_capacity(d);

	if (use->benchmarks > 0 || use->tasks >= cap)
		return 0;
	return cap - use->tasks;
}

int alloc_assignment_indices(const Hf__Assignment *a, uint32_t *buf, size_t max, char *reason,
			     size_t len)
{
	if (a->n_device_indices == 0) {
		if (max < 1)
			return -EINVAL;
		buf[0] = a->device_index;
		return 1;
	}
	if (a->n_device_indices > max) {
		snprintf(reason, len, "assignment names %zu devices; a worker runs tasks of at most %zu",
			 a->n_device_indices, max);
		return -EINVAL;
	}
	if (a->device_indices[0] != a->device_index) {
		snprintf(reason, len,
			 "assignment is inconsistent: device_index %" PRIu32
			 " but device_indices starts with %" PRIu32,
			 a->device_index, a->device_indices[0]);
		return -EINVAL;
	}
	memcpy(buf, a->device_indices, a->n_device_indices * sizeof(*buf));
	return (int)a->n_device_indices;
}

int alloc_admit(const struct hw_inventory *inv, const Hf__Assignment *a, alloc_use_fn use,
		void *arg, const struct hw_device **ret_devs, size_t *ret_n, char *reason,
		size_t len)
{
	const char *backend = hf_backend_name(a->backend);
	bool benchmark = a->kind == HF__TASK_KIND__KIND_BENCHMARK;
	uint32_t idx[ALLOC_MAX_DEVICES];
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	int n = alloc_assignment_indices(a, idx, ALLOC_MAX_DEVICES, reason, len);

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		struct alloc_use u = { 0, 0 };
		const struct hw_device *d = hw_inventory_find(inv, a->backend, idx[i]);

		if (!d) {
			snprintf(reason, len, "worker has no device %s:%" PRIu32, backend, idx[i]);
			return -ENODEV;
		}
		for (int j = 0; j < i; j++) {
			if (idx[j] == idx[i]) {
				snprintf(reason, len, "assignment names device %s:%" PRIu32 " twice",
					 backend, idx[i]);
				return -EINVAL;
			}
		}
		if (n > 1 && a->backend == HF__BACKEND__BACKEND_CUDA) {
			const char *mig = hw_device_attr(d, "mig");
			if (mig && strcmp(mig, "enabled") == 0) {
				snprintf(reason, len,
					 "device cuda:%" PRIu32 " is a MIG instance, and CUDA uses only "
					 "one MIG instance per process: it cannot be one of %d devices "
					 "of a task",
					 idx[i], n);
				return -EINVAL;
			}
		}
		use(arg, a->backend, idx[i], &u);
		if (u.benchmarks > 0) {
			snprintf(reason, len, "device %s:%" PRIu32 " runs a benchmark, which has it alone",
				 backend, idx[i]);
			return -EBUSY;
		}
		if (benchmark && u.tasks > 0) {
			snprintf(reason, len,
				 "device %s:%" PRIu32 " runs %u task%s; a benchmark needs it alone",
				 backend, idx[i], u.tasks, u.tasks == 1 ? "" : "s");
			return -EBUSY;
		}
		if (!d->shared && u.tasks > 0) {
			snprintf(reason, len,
				 "device %s:%" PRIu32 " already runs a task and is not shared "
				 "(see devices.shared)",
				 backend, idx[i]);
			return -EBUSY;
		}
		if (u.tasks >= alloc_capacity(d)) {
			snprintf(reason, len, "worker has no free slot on device %s:%" PRIu32, backend,
				 idx[i]);
			return -EBUSY;
		}
		devs[i] = d;
	}
	memcpy(ret_devs, devs, (size_t)n * sizeof(*devs));
	*ret_n = (size_t)n;
	return 0;
}
