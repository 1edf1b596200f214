/* SPDX-License-Identifier: MIT
 *
 * What "hf-worker --probe" prints: the CPU, the devices, every backend
 * (present, or absent and why) and the runtimes, as aligned tables for
 * people or as one JSON object for programs:
 *
 *   {"cpu": {"model", "arch", "sockets", "cores", "threads", "numa_nodes",
 *            "memory_bytes", "flags": [...]},
 *    "devices": [{"backend", "index", "name", "arch", "memory_bytes",
 *                 "driver", "uuid", "slots", "shared", "declared",
 *                 "attrs": {"key": "value", ...}}, ...],
 *    "backends": [{"backend", "present", "reason", "driver", "library"},
 *                 ...],                  (cpu, cuda, rocm, mps, openvino, qnn)
 *    "runtimes": [{"name", "version", "available", "detail"}, ...]}
 *
 * Pure formatting; the caller owns everything passed in.  Thread-safe.
 */
#ifndef PROBE_REPORT_H
#define PROBE_REPORT_H

#include <stdio.h>

#include <jansson.h>

#include "hw.h"
#include "runtime-probe.h"

/* Returns a new reference (the caller's, json_decref), or NULL when out of
 * memory. */
json_t *probe_report_json(const struct hw_inventory *inv, const struct runtime_list *rt);

/* Writes the tables.  Returns 0 or -EIO when f reports an error. */
int probe_report_print(const struct hw_inventory *inv, const struct runtime_list *rt, FILE *f);

#endif
