/* SPDX-License-Identifier: MIT
 *
 * Which workers and devices can take a job's tasks (see fleet-fit.h).
 * "Connected" is coord_worker_connected: a poll within three heartbeats
 * and 2 s.  A worker that is not connected never counts as able to run
 * anything: tasks only it could run would wait for it, unseen.
 */
#include "fleet-fit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "hf_limits.h"
#include "hf_proto.h"
#include "hf_validate.h"

_Static_assert(MATCH_MAX_UNMET == HF_MAX_UNMET, "hf_limits.h and match.h disagree");
_Static_assert(MATCH_UNMET_LEN == HF_UNMET_MAX, "hf_limits.h and match.h disagree");

struct fit_entry {
	Hf__DeviceFit m;
	char *unmet_ptrs[MATCH_MAX_UNMET];
	char unmet[MATCH_MAX_UNMET][MATCH_UNMET_LEN];
	char worker_id[HF_WORKER_ID_MAX + 1];
	char state[16];
};

struct fit_list {
	struct fit_entry *v;
	Hf__DeviceFit **ptrs;
	size_t n, max, omitted;
};

struct fit_list *fit_list_new(size_t max)
{
	struct fit_list *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->max = max;
	l->v = calloc(max + 1, sizeof(*l->v));
	l->ptrs = calloc(max + 1, sizeof(*l->ptrs));
	if (!l->v || !l->ptrs) {
		fit_list_free(l);
		return NULL;
	}
	return l;
}

void fit_list_free(struct fit_list *l)
{
	if (!l)
		return;
	free(l->v);
	free(l->ptrs);
	free(l);
}

void fit_list_add(struct fit_list *l, const struct coord_worker *w, bool connected, double last_seen,
		  Hf__Backend backend, const Hf__Device *device, const char *state, bool would_fit,
		  const struct match_unmet *unmet, const char *detail)
{
	if (l->n >= l->max) {
		l->omitted++;
		return;
	}
	struct fit_entry *e = &l->v[l->n];
	hf__device_fit__init(&e->m);
	hf_strlcpy(e->worker_id, w->id, sizeof(e->worker_id));
	hf_strlcpy(e->state, state, sizeof(e->state));
	e->m.worker_id = e->worker_id;
	e->m.state = e->state;
	e->m.backend = device ? device->backend : backend;
	e->m.one_device = device != NULL;
	e->m.index = device ? device->index : 0;
	e->m.connected = connected;
	e->m.last_seen = last_seen;
	e->m.would_fit = would_fit;
	e->m.unmet = e->unmet_ptrs;
	size_t shown = unmet ? (unmet->n < unmet->max ? unmet->n : unmet->max) : 0;
	if (shown > MATCH_MAX_UNMET)
		shown = MATCH_MAX_UNMET;
	for (size_t i = 0; i < shown && e->m.n_unmet < MATCH_MAX_UNMET; i++) {
		/* The last slot says how many more there are. */
		if (i == MATCH_MAX_UNMET - 1 && unmet->n > MATCH_MAX_UNMET)
			snprintf(e->unmet[i], sizeof(e->unmet[i]), "and %zu more", unmet->n - i);
		else
			hf_strlcpy(e->unmet[i], unmet->why[i], sizeof(e->unmet[i]));
		e->unmet_ptrs[e->m.n_unmet++] = e->unmet[i];
	}
	if (detail && e->m.n_unmet < MATCH_MAX_UNMET) {
		hf_strlcpy(e->unmet[e->m.n_unmet], detail, sizeof(e->unmet[0]));
		e->unmet_ptrs[e->m.n_unmet] = e->unmet[e->m.n_unmet];
		e->m.n_unmet++;
	}
	/* Cut to length, a phrase may end mid-character: replies are UTF-8. */
	for (size_t i = 0; i < e->m.n_unmet; i++)
		hf_utf8_sanitize(e->unmet[i]);
	l->ptrs[l->n++] = &e->m;
}

size_t fit_list_count(const struct fit_list *l)
{
	return l->n;
}

size_t fit_list_omitted(const struct fit_list *l)
{
	return l->omitted;
}

Hf__DeviceFit **fit_list_msgs(struct fit_list *l)
{
	return l->ptrs;
}

void fit_unmet_of_device(struct match_unmet *joined, const Hf__Device *d, const struct match_unmet *u)
{
	if (joined->n < MATCH_MAX_UNMET && joined->n < joined->max) {
		char *slot = joined->why[joined->n];
		int k = snprintf(slot, sizeof(joined->why[0]), "%s:%" PRIu32 ": ", hf_backend_name(d->backend),
				 d->index);
		if (k > 0 && (size_t)k < sizeof(joined->why[0]))
			match_unmet_join(u, slot + k, sizeof(joined->why[0]) - (size_t)k);
	}
	joined->n++;
}

static double worker_last_seen(const struct coord_worker *w, int64_t now_ms, double now_wall)
{
	return now_wall - (double)(now_ms - w->last_seen_ms) / 1000.0;
}

/* How many devices of backend b the worker has that meet r; when list is
 * set, an entry for each that does not (prefixed "cuda:1: " into one
 * worker-level set of phrases when the worker is disconnected). */
static size_t worker_fitting(const struct coord_worker *w, Hf__Backend b, const struct match_req *r,
			     size_t *ret_of_backend, struct fit_list *list, bool connected, double last_seen,
			     struct match_unmet *joined)
{
	const Hf__Register *reg = w->reg;
	size_t fitting = 0, of_backend = 0;
	struct match_unmet u;

	if (joined) {
		joined->n = 0;
		joined->max = MATCH_MAX_UNMET;
	}
	for (size_t i = 0; i < reg->n_devices; i++) {
		const Hf__Device *d = reg->devices[i];
		if (d->backend != b)
			continue;
		of_backend++;
		u.max = list || joined ? MATCH_MAX_UNMET : 0;
		if (match_device_unmet(r, reg, d, &u) == 0) {
			fitting++;
			continue;
		}
		if (list && connected)
			fit_list_add(list, w, true, last_seen, b, d, "unfit", false, &u, NULL);
		if (joined)
			fit_unmet_of_device(joined, d, &u);
	}
	*ret_of_backend = of_backend;
	return fitting;
}

/* The phrase for a worker with no device of b: the backend's absence. */
static void no_device_detail(const struct coord_worker *w, Hf__Backend b, char *out, size_t len)
{
	snprintf(out, len, "no %s device", hf_backend_name(b));
	for (size_t i = 0; i < w->reg->n_backends; i++) {
		const Hf__BackendStatus *s = w->reg->backends[i];
		if (s->backend == b && !s->present && s->reason[0]) {
			snprintf(out, len, "no %s device (%s)", hf_backend_name(b), s->reason);
			break;
		}
	}
}

bool fleet_backend_satisfiable(struct coord *c, Hf__Backend b, const struct match_req *r, int64_t now_ms,
			       struct fit_list *unfit)
{
	uint32_t want = r ? r->devices : 1;
	double now_wall = hf_wall_s();
	size_t of_backend;

	/* Able: connected, with enough fitting devices. */
	for (struct coord_worker *w = c->workers; w; w = w->next)
		if (coord_worker_connected(c, w, now_ms) &&
		    worker_fitting(w, b, r, &of_backend, NULL, true, 0, NULL) >= want && of_backend)
			return true;
	if (!unfit)
		return false;
	/* Not: the disconnected workers that could run them come first. */
	for (struct coord_worker *w = c->workers; w; w = w->next) {
		if (coord_worker_connected(c, w, now_ms))
			continue;
		struct match_unmet joined;
		size_t fitting = worker_fitting(w, b, r, &of_backend, NULL, false, 0, &joined);
		if (of_backend && fitting >= want)
			fit_list_add(unfit, w, false, worker_last_seen(w, now_ms, now_wall), b, NULL,
				     "disconnected", true, NULL, NULL);
	}
	for (struct coord_worker *w = c->workers; w; w = w->next) {
		bool connected = coord_worker_connected(c, w, now_ms);
		double seen = worker_last_seen(w, now_ms, now_wall);
		struct match_unmet joined;
		char detail[HF_UNMET_MAX];
		size_t fitting = worker_fitting(w, b, r, &of_backend, unfit, connected, seen,
						connected ? NULL : &joined);
		if (!of_backend) {
			no_device_detail(w, b, detail, sizeof(detail));
			fit_list_add(unfit, w, connected, seen, b, NULL, "no-device", false, NULL, detail);
		} else if (!connected && fitting < want) {
			if (fitting)
				snprintf(detail, sizeof(detail), "%zu fitting %s devices, %" PRIu32 " needed per task",
					 fitting, hf_backend_name(b), want);
			fit_list_add(unfit, w, false, seen, b, NULL, "disconnected", false, &joined,
				     fitting ? detail : NULL);
		} else if (connected && fitting) {
			snprintf(detail, sizeof(detail), "%zu fitting %s devices, %" PRIu32 " needed per task",
				 fitting, hf_backend_name(b), want);
			fit_list_add(unfit, w, true, seen, b, NULL, "too-few", false, NULL, detail);
		}
	}
	return false;
}

bool fleet_in_startup_grace(const struct coord *c, int64_t now_ms, int64_t *ret_left_ms)
{
	int64_t window = 3 * c->conf.heartbeat_ms + 2000;
	int64_t since = c->ready_ms ? now_ms - c->ready_ms : 0;

	if (ret_left_ms)
		*ret_left_ms = window - since > 0 ? window - since : 0;
	return since < window;
}
