/* SPDX-License-Identifier: MIT
 *
 * The runtime probe: which software the runner can use (Python, torch with
 * its CUDA/HIP build, transformers, optimum, OpenVINO, ...), found by running
 * "<runner command> --probe" and reading the JSON object it prints on stdout:
 *
 *   {"python": {"version": "3.11.2", "executable": "/usr/bin/python3"},
 *    "torch": {"available": true, "version": "2.5.1", "cuda": "12.4",
 *              "hip": null, "reason": null}, ...}
 *
 * Every member whose value is an object becomes one runtime, in the order
 * given: its name is the key, "version" its version, "available" whether it
 * is usable (when absent: whether it has a version), and its detail is
 * "reason" if that is set, else "cuda X, hip Y" from those members, else
 * "executable".  A top-level "error" string (a probe that failed half-way)
 * adds the runtime "runner", unavailable, with it as detail.  A probe that
 * cannot run, crashes, prints something else or
 * runs past its time limit yields the single runtime "runner", unavailable,
 * with the reason as detail, so a worker with a broken runner still
 * registers and says why.
 *
 * Ownership: a runtime_list owns its strings (runtime_list_fini).
 * runtime_probe_run blocks the calling thread (it runs a private libuv loop)
 * and is meant for start-up and --probe, before the worker's loop runs.
 */
#ifndef RUNTIME_PROBE_H
#define RUNTIME_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RUNTIME_PROBE_TIMEOUT_MS 30000

struct runtime {
	char *name;
	char *version;  /* "" when unknown */
	char *detail;   /* "" when there is nothing to say */
	bool available;
};

struct runtime_list {
	struct runtime *items;
	size_t n;
};

/* Appends a runtime (strings are copied, made one line and bounded).
 * Returns 0 or -ENOMEM. */
int runtime_list_add(struct runtime_list *l, const char *name, const char *version,
		     bool available, const char *detail);
void runtime_list_fini(struct runtime_list *l);

/* Parses the probe's output into ret (which must be empty).  Returns 0,
 * -EBADMSG with what is wrong in err, or -ENOMEM. */
int runtime_probe_parse(const char *text, size_t len, struct runtime_list *ret, char *err,
			size_t errlen);

/* Runs argv plus "--probe" for at most timeout_ms and fills ret (empty on
 * entry): the runtimes found, or the single unavailable "runner".  Returns 0
 * or -ENOMEM. */
int runtime_probe_run(char *const *argv, int64_t timeout_ms, struct runtime_list *ret);

#endif
