/* SPDX-License-Identifier: MIT
 *
 * Devices are the unit of allocation.  This module decides, from a device's
 * configuration (slots, shared) and what runs on it now, how many slots it
 * offers the coordinator and whether a new assignment may start on it:
 *
 *  - A device that is not shared runs one task at a time.  A shared device
 *    (devices.shared; the CPU by default) runs up to its slots at once.
 *  - A benchmark has its devices alone: it starts only on idle devices, and
 *    while it runs they offer no slot and take no other task.
 *  - An assignment names one device (device_index) or several
 *    (device_indices, whose first is device_index).  Every device must exist
 *    on this worker, appear once, and be free as above.  CUDA can use only
 *    one MIG instance per process, so a task of several devices may not
 *    include a MIG instance.
 *
 * An assignment that breaks a rule is not started: the session answers it
 * at once with an error result whose reason is the one written here.
 *
 * Pure: no I/O; what runs where comes from a callback.  Thread-safe.
 */
#ifndef ALLOC_H
#define ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"
#include "hw.h"

#define ALLOC_MAX_DEVICES 16

/* What runs on one device now. */
struct alloc_use {
	unsigned tasks;      /* running tasks that use it */
	unsigned benchmarks; /* of which benchmarks */
};

typedef void (*alloc_use_fn)(void *arg, Hf__Backend backend, unsigned index,
			     struct alloc_use *ret);

/* Tasks the device runs at once: its slots if it is shared, else 1. */
unsigned alloc_capacity(const struct hw_device *d);

/* Slots the device offers now (0 while a benchmark runs on it). */
unsigned alloc_free_slots(const struct hw_device *d, const struct alloc_use *use);

/* The device indices of an assignment into buf (at most max).  Returns the
 * count, or -EINVAL with reason (too many, or device_indices not starting
 * with device_index). */
int alloc_assignment_indices(const Hf__Assignment *a, uint32_t *buf, size_t max, char *reason,
			     size_t len);

/* Whether the assignment may start now.  On success *ret_n devices (in the
 * assignment's order) are pointed to from ret_devs, which has room for
 * ALLOC_MAX_DEVICES.  Returns 0, or -ENODEV (no such device), -EINVAL (a
 * malformed assignment) or -EBUSY (a device is not free) with reason. */
int alloc_admit(const struct hw_inventory *inv, const Hf__Assignment *a, alloc_use_fn use,
		void *arg, const struct hw_device **ret_devs, size_t *ret_n, char *reason,
		size_t len);

#endif
