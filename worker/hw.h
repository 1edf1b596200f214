/* SPDX-License-Identifier: MIT
 *
 * What this worker offers: the CPU description, the list of devices tasks
 * run on, and for every backend whether it was found and, if not, why.
 * Each backend has its own detection module (hw-cpu.c, hw-nvml.c for CUDA,
 * hw-rocm.c, hw-mps.c, hw-intel.c for OpenVINO, hw-qnn.c) that adds its
 * devices to the one list here, so the session, the executor and --probe
 * never care which backend a device came from.  Vendor libraries are loaded
 * at run time (dlopen), so one binary runs on every machine; a backend whose
 * library or device nodes are missing is reported absent, never an error.
 *
 * After detection the configuration is applied (device-conf.h): hidden
 * devices are dropped (a hidden backend is not even probed), declared
 * devices are merged in, and every device gets its slots and whether it is
 * shared.  Devices are ordered by backend, then index; indices are the
 * backend's own numbering and stay the same when a device is hidden.
 *
 * Telemetry: the inventory keeps the vendor interfaces that can report live
 * readings (NVML, the amdgpu sysfs files) open until hw_inventory_fini, and
 * hw_telemetry_sample reads them.
 *
 * Ownership and threads: a struct hw_inventory is filled by
 * hw_inventory_detect and released with hw_inventory_fini (which closes the
 * vendor interfaces).  Detection may run on any thread (it blocks: vendor
 * libraries take up to seconds to initialise).  Afterwards the data is
 * read-only and any thread may read it; hw_telemetry_sample must not run on
 * two threads at once for the same inventory.
 */
#ifndef HW_H
#define HW_H

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

struct devconf;
struct hw_vendors;

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

/* Where and how to look.  NULL strings take the defaults given. */
struct hw_options {
	const char *root;             /* prefix of /sys, /proc, /dev ("" or NULL: the system) */
	const char *machine;          /* NULL: uname's */
	const char *nvml_library;     /* NULL: "libnvidia-ml.so.1" */
	const char *openvino_library; /* NULL: "libopenvino_c.so", then versioned names */
	const char *qnn_sdk_root;     /* NULL or "": $QNN_SDK_ROOT */
	unsigned cpu_slots;           /* the CPU's slots without devconf (0: 1) */
	const struct devconf *devconf; /* NULL: nothing hidden or declared, default slots;
					* otherwise its slots (worker.slots included) apply */
};

/* Detects everything.  Returns 0 or -ENOMEM; a backend that finds nothing
 * or fails is reported in ret->backends, not as an error.  ret is
 * overwritten; release it with hw_inventory_fini in all cases. */
int hw_inventory_detect(const struct hw_options *opt, struct hw_inventory *ret);

/* Closes the vendor interfaces.  The device data stays readable.  NULL is
 * fine. */
void hw_inventory_fini(struct hw_inventory *inv);

/* The device with this backend and index, or NULL. */
const struct hw_device *hw_inventory_find(const struct hw_inventory *inv, Hf__Backend backend,
					  unsigned index);

/* The status of a backend (never NULL for a valid backend; NULL otherwise). */
const struct hw_backend_status *hw_inventory_backend(const struct hw_inventory *inv,
						     Hf__Backend backend);

/* ---- for the backend modules ---- */

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

/* ---- telemetry ---- */

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

/* Reads every device whose vendor interface reports something, in device
 * order, into out (at most max).  Returns how many were written.  Costs a
 * few library calls or small file reads per device: call it at most once
 * per heartbeat. */
size_t hw_telemetry_sample(const struct hw_inventory *inv, struct hw_telemetry *out, size_t max);

#endif
