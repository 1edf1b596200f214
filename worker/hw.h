/* SPDX-License-Identifier: MIT
 *
 * What this worker offers: the CPU description and the list of devices that
 * tasks run on.  Each backend has its own detection module (hw-cpu.c today;
 * CUDA, ROCm and the others add theirs) and contributes entries to the one
 * device list here, so the session and --probe never care which backend a
 * device came from.
 *
 * struct hw_inventory is plain data, filled once at start-up and read-only
 * afterwards; any thread may read it.
 */
#ifndef HW_H
#define HW_H

#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"
#include "hw-cpu.h"

#define HW_MAX_DEVICES 64

struct hw_device {
	Hf__Backend backend;
	unsigned index;       /* per backend, as the backend numbers them */
	char name[256];
	char arch[64];        /* compute capability, gfx target; machine for cpu */
	uint64_t memory_bytes;
	unsigned slots;       /* tasks it runs at once */
};

struct hw_inventory {
	struct hw_cpu cpu;
	struct hw_device devices[HW_MAX_DEVICES];
	size_t n_devices;
};

/* Detects everything under root ("" for the running system; see hw-cpu.h).
 * The CPU is offered as device cpu:0 with cpu_slots slots.  Returns 0 or a
 * negative errno (-ENOMEM); a backend that finds nothing is not an error. */
int hw_inventory_detect(const char *root, unsigned cpu_slots, struct hw_inventory *ret);

/* The device with this backend and index, or NULL. */
const struct hw_device *hw_inventory_find(const struct hw_inventory *inv, Hf__Backend backend,
					  unsigned index);

#endif
