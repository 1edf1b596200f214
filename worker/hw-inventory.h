/* SPDX-License-Identifier: MIT
 *
 * The device inventory's data: the devices tasks run on (struct
 * hw_device), each backend's status (found, or why not), the CPU, and one
 * device's live readings (struct hw_telemetry); and the helpers that the
 * backend detection modules (hw-nvml.c, hw-rocm.c, hw-mps.c, hw-intel.c,
 * hw-qnn.c) use to add to it.  It sits below hw.h, which runs the backends
 * and applies the configuration, and below every backend, so no backend
 * includes the module that calls it.
 *
 * Plain data: no allocation, no global state.  The inventory is filled by
 * one thread during detection (hw_inventory_detect, hw.h) and read-only
 * afterwards.
 */
#ifndef HW_INVENTORY_H
#define HW_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"
#include "hw-cpu.h"

#define HW_MAX_DEVICES 128
#define HW_MAX_ATTRS 8
/* Backends cpu, cuda, rocm, mps, openvino, qnn: every Hf__Backend but
 * UNSPECIFIED. */
#define HW_N_BACKENDS 6

struct hw_vendors; /* hw.c: the vendor interfaces left open for telemetry */

struct hw_attr {
	char key[32];
	char value[96];
};

struct hw_device {
	Hf__Backend backend;
	unsigned index;        /* per backend, as the backend numbers them */
	char name[256];
	char arch[64];         /* "sm_90", "gfx942", "v75"; machine for cpu */
	char driver[64];       /* driver version */
	char uuid[96];         /* "GPU-...", "MIG-..." (cuda); "" when it has none */
	uint64_t memory_bytes; /* 0: unknown */
	unsigned slots;        /* tasks it runs at once */
	bool shared;           /* its slots may run different tasks at once */
	bool declared;         /* from devices.declare, not (only) probed */
	struct hw_attr attrs[HW_MAX_ATTRS]; /* compute_capability=9.0, mig=enabled, ... */
	size_t n_attrs;

	/* How a child process is given this device (device-env.h); set by the
	 * backend that found it. */
	int visible_index;     /* rocm: ROCR index; openvino GPU: Level Zero index; -1: none */
	char library[256];     /* qnn: the QNN backend library the runner loads */
};

struct hw_backend_status {
	Hf__Backend backend;
	bool present;
	char reason[256];      /* why it is absent ("" when present) */
	char driver[64];       /* driver or runtime version, when present */
	char library[256];     /* the vendor library that answered, when one did */
};

struct hw_inventory {
	struct hw_cpu cpu;
	struct hw_device devices[HW_MAX_DEVICES];
	size_t n_devices;
	struct hw_backend_status backends[HW_N_BACKENDS]; /* in Hf__Backend order */
	struct hw_vendors *vendors; /* open vendor interfaces; NULL: none */
};

/* The device with this backend and index, or NULL. */
const struct hw_device *hw_inventory_find(const struct hw_inventory *inv, Hf__Backend backend,
					  unsigned index);

/* The status of a backend (never NULL for a valid backend; NULL otherwise). */
const struct hw_backend_status *hw_inventory_backend(const struct hw_inventory *inv,
						     Hf__Backend backend);

/* A new zeroed device (visible_index -1, 1 slot) at the end of the list, or
 * NULL when the list is full (logged once). */
struct hw_device *hw_inventory_device_add(struct hw_inventory *inv, Hf__Backend backend,
					  unsigned index);

/* Sets (or replaces) an attribute.  Returns 0 or -ENOSPC when the device
 * has HW_MAX_ATTRS already. */
int hw_device_attr_set(struct hw_device *d, const char *key, const char *value);

/* The attribute's value, or NULL. */
const char *hw_device_attr(const struct hw_device *d, const char *key);

/* Marks the backend absent with a formatted reason. */
void hw_status_absent(struct hw_backend_status *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One device's live readings.  Negative floats: not available;
 * memory_used_bytes 0: not available. */
struct hw_telemetry {
	Hf__Backend backend;
	unsigned index;
	float utilization_pct;
	uint64_t memory_used_bytes;
	float temperature_c;
	float power_w;
};

#endif
