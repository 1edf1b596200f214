/* SPDX-License-Identifier: MIT
 *
 * The registered workers as the coordinator keeps them: one bounded record
 * per worker (its validated Register and an index of its devices by
 * backend and index), at most coordinator.max_workers of them holding at
 * most coordinator.workers_memory of registrations, found by id through a
 * hash (every request of a worker looks its record up: with 10,000 workers
 * a list walk per request was most of a poll's cost), with their count and
 * bytes kept as records come and go; and the operator's state of their
 * devices (drains, quarantine lookups).  Loop thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "coordinator.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

static size_t id_bucket(const struct coord *c, const char *id)
{
	return (size_t)(sched_name_hash(id) & (c->n_worker_buckets - 1));
}

struct coord_worker *coord_worker_find(struct coord *c, const char *id)
{
	if (!c->n_worker_buckets)
		return NULL;
	for (struct coord_worker *w = c->worker_buckets[id_bucket(c, id)]; w; w = w->hnext)
		if (strcmp(w->id, id) == 0)
			return w;
	return NULL;
}

/* Doubles the buckets (from 64) when the records outnumber them; without
 * memory the chains just grow longer. */
static void buckets_grow(struct coord *c)
{
	size_t n = c->n_worker_buckets ? c->n_worker_buckets * 2 : 64;
	struct coord_worker **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	struct coord_worker **old = c->worker_buckets;
	size_t n_old = c->n_worker_buckets;
	c->worker_buckets = b;
	c->n_worker_buckets = n;
	for (size_t i = 0; i < n_old; i++) {
		for (struct coord_worker *w = old[i], *next; w; w = next) {
			next = w->hnext;
			size_t h = id_bucket(c, w->id);
			w->hnext = b[h];
			b[h] = w;
		}
	}
	free(old);
}

struct coord_worker *coord_worker_add(struct coord *c, const char *id)
{
	if (c->n_workers >= c->n_worker_buckets)
		buckets_grow(c);
	if (!c->n_worker_buckets)
		return NULL;
	struct coord_worker *w = calloc(1, sizeof(*w));
	if (w)
		w->id = strdup(id);
	if (!w || !w->id) {
		free(w);
		return NULL;
	}
	size_t h = id_bucket(c, id);
	w->hnext = c->worker_buckets[h];
	c->worker_buckets[h] = w;
	w->next = c->workers;
	c->workers = w;
	c->n_workers++;
	return w;
}

/* Takes w out of the hash and the counts; the caller unlinks it from the
 * list. */
static void unhash(struct coord *c, struct coord_worker *w)
{
	for (struct coord_worker **pp = &c->worker_buckets[id_bucket(c, w->id)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == w) {
			*pp = w->hnext;
			break;
		}
	}
	locality_drop(&c->locality, w);
	c->n_workers--;
	c->workers_bytes -= w->reg_bytes;
}

void coord_worker_forget(struct coord *c, struct coord_worker *w)
{
	for (struct coord_worker **pp = &c->workers; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	unhash(c, w);
	coord_worker_free(w);
}

bool coord_worker_connected(const struct coord *c, const struct coord_worker *w, int64_t now_ms)
{
	return now_ms - w->last_seen_ms < 3 * c->conf.heartbeat_ms + 2000;
}

bool coord_worker_session_live(const struct coord *c, const struct coord_worker *w, int64_t now_ms)
{
	return w->session != 0 && w->session_seen_ms != 0 &&
	       now_ms - w->session_seen_ms < 3 * c->conf.heartbeat_ms + 2000;
}

struct coord_worker *coord_worker_of_session(struct coord *c, const char *id, uint64_t session)
{
	struct coord_worker *w = coord_worker_find(c, id);

	return w && session != 0 && w->session == session ? w : NULL;
}

int coord_session_new(uint64_t *ret_session)
{
	uint64_t v = 0;

	/* Unguessable: a peer that does not hold the session cannot act for
	 * the worker that does. */
	while (v == 0) {
		ssize_t n = getrandom(&v, sizeof(v), 0);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n != (ssize_t)sizeof(v))
			v = 0;
	}
	*ret_session = v;
	return 0;
}

Hf__DeviceTelemetry *coord_worker_telemetry(struct coord_worker *w, const Hf__Device *d)
{
	for (size_t k = 0; k < w->n_telemetry; k++)
		if (w->telemetry[k].backend == d->backend && w->telemetry[k].index == d->index)
			return &w->telemetry[k];
	return NULL;
}

size_t coord_device_running(struct sched_task *const *leased, size_t n, const char *worker_id,
			    const Hf__Device *d)
{
	size_t running = 0;
	for (size_t k = 0; k < n; k++)
		for (uint8_t x = 0; x < leased[k]->n_devices; x++)
			running += leased[k]->backend == d->backend && leased[k]->devices[x] == d->index &&
				   strcmp(leased[k]->worker_id, worker_id) == 0;
	return running;
}

bool coord_weights_elsewhere(struct coord *c, const struct coord_worker *self, const struct sched_task *t,
			     int64_t now_ms)
{
	/* Only the workers that cache the model: the locality index. */
	for (const struct locality_node *n = locality_holders(&c->locality, t->model); n; n = n->next) {
		const struct coord_worker *w = n->w;
		const Hf__Register *r = w->reg;
		if (w == self || !coord_worker_connected(c, w, now_ms) || coord_drained(c, w->id, NULL))
			continue;
		for (size_t i = 0; i < r->n_devices; i++)
			if (r->devices[i]->backend == t->backend && !coord_drained(c, w->id, r->devices[i]) &&
			    !coord_quarantined(c, w->id, r->devices[i], NULL))
				return true;
	}
	return false;
}

bool coord_drained(const struct coord *c, const char *worker_id, const Hf__Device *device)
{
	for (const struct coord_drain *d = c->drains; d; d = d->next) {
		if (strcmp(d->d.worker_id, worker_id) != 0)
			continue;
		if (d->d.backend < 0)
			return true;
		if (device && (int)device->backend == d->d.backend && (int)device->index == d->d.index)
			return true;
	}
	return false;
}

int coord_drain_set(struct coord *c, const struct db_drain *d, bool undrain)
{
	for (struct coord_drain **pp = &c->drains; *pp; pp = &(*pp)->next) {
		struct coord_drain *x = *pp;
		if (strcmp(x->d.worker_id, d->worker_id) == 0 && x->d.backend == d->backend &&
		    x->d.index == d->index) {
			if (undrain) {
				*pp = x->next;
				free(x);
			}
			return 0;
		}
	}
	if (undrain)
		return 0;
	struct coord_drain *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->d = *d;
	x->next = c->drains;
	c->drains = x;
	return 0;
}

bool coord_quarantined(const struct coord *c, const char *worker_id, const Hf__Device *device,
		       const char **ret_reason)
{
	return health_quarantined(&c->health, worker_id, (int)device->backend, device->index, ret_reason);
}

struct quarantine_write {
	struct db_op op;
	struct db_quarantine q;
};

static void quarantine_write_done(struct db_op *op)
{
	struct quarantine_write *qw = op->ctx;

	if (op->rc < 0)
		log_warn("could not record the quarantine of %s/%s:%" PRIu32 " in the database: %s; "
			 "it holds until this coordinator stops",
			 qw->q.worker_id, hf_backend_name((Hf__Backend)qw->q.backend), qw->q.index, op->err);
	free(qw);
}

void coord_quarantine_persist(struct coord *c, const char *worker_id, int backend, uint32_t index,
			      bool quarantined, const char *reason)
{
	struct quarantine_write *qw = calloc(1, sizeof(*qw));

	if (!qw) {
		log_warn("could not record the quarantine of %s/%s:%" PRIu32 ": out of memory", worker_id,
			 hf_backend_name((Hf__Backend)backend), index);
		return;
	}
	hf_strlcpy(qw->q.worker_id, worker_id, sizeof(qw->q.worker_id));
	qw->q.backend = backend;
	qw->q.index = index;
	qw->q.quarantined = quarantined;
	hf_strlcpy(qw->q.reason, reason ? reason : "", sizeof(qw->q.reason));
	qw->op.kind = DB_OP_HEALTH_STORE;
	qw->op.u.health.states = &qw->q;
	qw->op.u.health.n_states = 1;
	qw->op.done = quarantine_write_done;
	qw->op.ctx = qw;
	db_submit(c->db, &qw->op);
}

void coord_drains_free(struct coord *c)
{
	while (c->drains) {
		struct coord_drain *d = c->drains;
		c->drains = d->next;
		free(d);
	}
}

void coord_worker_free(struct coord_worker *w)
{
	if (!w)
		return;
	if (w->reg)
		hf__register__free_unpacked(w->reg, NULL);
	free(w->dev_order);
	free(w->telemetry);
	free(w->loc);
	free(w->reserved);
	free(w->id);
	free(w);
}

static int device_key_cmp(const Hf__Device *a, int backend, uint32_t index)
{
	if ((int)a->backend != backend)
		return (int)a->backend < backend ? -1 : 1;
	return a->index < index ? -1 : a->index > index ? 1 : 0;
}

/* qsort_r is a GNU extension: the devices being sorted travel in a
 * file-scope pointer, which is safe on the one loop thread. */
static const Hf__Register *sorting_reg;

static int dev_order_cmp(const void *a, const void *b)
{
	const Hf__Device *db = sorting_reg->devices[*(const uint32_t *)b];
	return device_key_cmp(sorting_reg->devices[*(const uint32_t *)a], (int)db->backend, db->index);
}

static int cached_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

long coord_worker_device(const struct coord_worker *w, int backend, uint32_t index)
{
	size_t lo = 0, hi = w->reg->n_devices;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = device_key_cmp(w->reg->devices[w->dev_order[mid]], backend, index);
		if (cmp == 0)
			return (long)w->dev_order[mid];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Makes w describe itself with reg (taken): the device index and the
 * sorted cache list.  Returns 0 or -ENOMEM (reg is then freed). */
int coord_worker_set_reg(struct coord *c, struct coord_worker *w, Hf__Register *reg)
{
	uint32_t *order = malloc((reg->n_devices + 1) * sizeof(*order));

	if (!order) {
		hf__register__free_unpacked(reg, NULL);
		return -ENOMEM;
	}
	for (size_t i = 0; i < reg->n_devices; i++)
		order[i] = (uint32_t)i;
	sorting_reg = reg;
	if (reg->n_devices > 1)
		qsort(order, reg->n_devices, sizeof(*order), dev_order_cmp);
	sorting_reg = NULL;
	/* has_cached looks weights up by binary search. */
	if (reg->n_cached_models > 1)
		qsort(reg->cached_models, reg->n_cached_models, sizeof(*reg->cached_models), cached_cmp);
	if (w->reg)
		hf__register__free_unpacked(w->reg, NULL);
	free(w->dev_order);
	c->workers_bytes -= w->reg_bytes;
	w->reg = reg;
	w->reg_bytes = hf__register__get_packed_size(reg);
	c->workers_bytes += w->reg_bytes;
	w->dev_order = order;
	if (locality_set(&c->locality, w) < 0)
		log_warn("out of memory indexing the cached models of worker \"%s\": tasks do not wait "
			 "for it to take them", w->id);
	return 0;
}

/* Is there room for a registration of new_bytes (replacing keep's, when
 * the worker is known): at most coordinator.max_workers records and
 * coordinator.workers_memory bytes of registrations?  When evict is set,
 * the workers seen longest ago that are no longer connected are forgotten
 * until there is room; else it only tells whether forgetting them would
 * make room.  Returns 0, or -EBUSY when the connected ones alone leave
 * none. */
static int workers_room(struct coord *c, const struct coord_worker *keep, size_t new_bytes, bool evict)
{
	size_t max_n = (size_t)c->conf.max_workers;
	size_t max_bytes = (size_t)c->conf.workers_memory_mib << 20;
	int64_t now = hf_mono_ms();

	/* Room without forgetting anyone: known from the counts, no walk. */
	if (c->n_workers + (keep ? 0 : 1) <= max_n &&
	    c->workers_bytes - (keep ? keep->reg_bytes : 0) + new_bytes <= max_bytes)
		return 0;
	for (;;) {
		struct coord_worker **oldest = NULL;
		size_t n = keep ? 1 : 0, bytes = new_bytes, live_n = n, live_bytes = bytes;

		for (struct coord_worker **pp = &c->workers; *pp; pp = &(*pp)->next) {
			struct coord_worker *w = *pp;
			if (w == keep)
				continue;
			n++;
			bytes += w->reg_bytes;
			if (coord_worker_connected(c, w, now)) {
				live_n++;
				live_bytes += w->reg_bytes;
			} else if (!oldest || w->last_seen_ms < (*oldest)->last_seen_ms) {
				oldest = pp;
			}
		}
		if (!keep)
			n++, live_n++; /* the new record */
		if (n <= max_n && bytes <= max_bytes)
			return 0;
		if (live_n > max_n || live_bytes > max_bytes)
			return -EBUSY;
		if (!evict)
			return 0;
		struct coord_worker *gone = *oldest;
		log_info("forgetting worker \"%s\", not seen for %" PRId64 " s, to make room for another "
			 "(at most %" PRId64 " workers and %" PRId64 " MiB of registrations)",
			 gone->id, (now - gone->last_seen_ms) / 1000, c->conf.max_workers,
			 c->conf.workers_memory_mib);
		*oldest = gone->next;
		unhash(c, gone);
		coord_worker_free(gone);
	}
}

bool coord_workers_full(struct coord *c, const char *id, size_t new_bytes)
{
	return workers_room(c, coord_worker_find(c, id), new_bytes, false) < 0;
}

int coord_workers_make_room(struct coord *c, const struct coord_worker *keep, size_t new_bytes)
{
	return workers_room(c, keep, new_bytes, true);
}

void coord_workers_free(struct coord *c)
{
	while (c->workers) {
		struct coord_worker *w = c->workers;
		c->workers = w->next;
		unhash(c, w);
		coord_worker_free(w);
	}
	free(c->worker_buckets);
	c->worker_buckets = NULL;
	c->n_worker_buckets = 0;
}
