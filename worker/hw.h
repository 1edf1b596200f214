/* SPDX-License-Identifier: MIT
 *
 * What this worker offers: the CPU description, the list of devices tasks
 * run on, and for every backend whether it was found and, if not, why.
 * Each backend has its own detection module (hw-cpu.c, hw-nvml.c for CUDA,
 * hw-rocm.c, hw-mps.c, hw-intel.c for OpenVINO, hw-qnn.c) that adds its
 * devices to the one list (the types and helpers of hw-inventory.h, below
 * this file and every backend), so the session, the executor and --probe
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
#include "hw-inventory.h"

struct devconf;

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

/* ---- telemetry ---- */

/* Reads every device whose vendor interface reports something, in device
 * order, into out (at most max).  Returns how many were written.  Costs a
 * few library calls or small file reads per device: call it at most once
 * per heartbeat. */
size_t hw_telemetry_sample(const struct hw_inventory *inv, struct hw_telemetry *out, size_t max);

#endif
