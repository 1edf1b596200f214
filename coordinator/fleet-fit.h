/* SPDX-License-Identifier: MIT
 *
 * Which workers and devices of the fleet can take a job's tasks, and why
 * the others cannot: the submit's satisfiability check (ERR_UNSATISFIABLE)
 * and the per-device lines of explain.  A list of DeviceFit entries,
 * bounded (HF_MAX_DEVICE_FITS listed, the rest counted), each naming the
 * worker (and device) and every unmet requirement.  Loop thread only.
 */
#ifndef HF_FLEET_FIT_H
#define HF_FLEET_FIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_util.h"
#include "hfleet.pb-c.h"
#include "match.h"

struct coord;
struct coord_worker;

struct fit_list;

/* A list that keeps at most max entries (and counts the rest); NULL when
 * out of memory. */
struct fit_list *fit_list_new(size_t max);
void fit_list_free(struct fit_list *l);

/* Appends an entry: device NULL for the worker as a whole.  unmet (NULL:
 * none) gives the unmet requirements; detail (NULL: none) one more phrase
 * (a quarantine's reason, how many slots are busy). */
void fit_list_add(struct fit_list *l, const struct coord_worker *w, bool connected, double last_seen,
		  Hf__Backend backend, const Hf__Device *device, const char *state, bool would_fit,
		  const struct match_unmet *unmet, const char *detail);

/* Adds device d's unmet requirements u to joined as one phrase
 * ("cuda:1: memory ...; no label a"): a disconnected worker's entry. */
void fit_unmet_of_device(struct match_unmet *joined, const Hf__Device *d, const struct match_unmet *u);

size_t fit_list_count(const struct fit_list *l);
size_t fit_list_omitted(const struct fit_list *l);
/* The entries as protobuf messages (valid while l lives); hf_fit_line
 * (hf_fit.h) writes one as text. */
Hf__DeviceFit **fit_list_msgs(struct fit_list *l);

/* Can some connected worker run tasks of backend b with requirements r
 * (NULL: none) on devices it has, drained or quarantined ones included
 * (they come back)?  When not, appends to unfit each worker or device
 * that cannot, disconnected workers that could run them first. */
bool fleet_backend_satisfiable(struct coord *c, Hf__Backend b, const struct match_req *r, int64_t now_ms,
			       struct fit_list *unfit);

/* Whether the coordinator is within its start-up grace: the connected
 * window after it began serving, while the workers that were connected
 * before a restart register again.  A submit that only disconnected or
 * unknown workers could run is then answered "try again" rather than
 * refused. */
bool fleet_in_startup_grace(const struct coord *c, int64_t now_ms, int64_t *ret_left_ms);

#endif
