/* SPDX-License-Identifier: MIT
 *
 * The scheduler's in-memory state (see sched.h): a hash of live tasks by id,
 * one binary heap of queued tasks per backend, a list of the tasks that
 * are out of the queues (granting, leased, expiring, cancelling) for lease
 * scanning, and a hash of how many leased tasks hold each device, kept as
 * tasks enter and leave SCHED_LEASED (for /metrics, which read it for
 * every device of the fleet each scrape).
 */
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

#define N_BACKENDS SCHED_N_BACKENDS
#define heap sched_heap

/* How many LEASED tasks hold one device; an entry exists while n > 0. */
struct held_dev {
	uint64_t worker_hash;
	int backend;
	uint32_t device;
	size_t n;
	struct held_dev *next;
	char worker_id[]; /* the key, compared in full: the hash is not trusted */
};

struct sched {
	struct held_dev **held;
	size_t n_held_buckets, n_held;
	struct sched_task **buckets;
	size_t nbuckets, ntasks;
	struct sched_task *out_head; /* tasks not in a heap */
	size_t n_state[SCHED_DELAYED + 1]; /* tasks in each state, for /metrics */
	struct sched_job *jobs;
	sched_queued_fn queued_fn; /* held polls' wake-up (sched_set_queued_cb) */
	void *queued_arg;
};

static void queued_notify(struct sched *s, const struct sched_task *t)
{
	if (s->queued_fn)
		s->queued_fn(s->queued_arg, t->backend);
}

void sched_set_queued_cb(struct sched *s, sched_queued_fn fn, void *arg)
{
	s->queued_fn = fn;
	s->queued_arg = arg;
}

static size_t hash_id(uint64_t id, size_t n)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)(id & (n - 1));
}

static void job_free(struct sched_job *j);

struct sched *sched_new(void)
{
	struct sched *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->nbuckets = 1024;
	s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
	if (!s->buckets) {
		free(s);
		return NULL;
	}
	return s;
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct sched_task *t = s->buckets[i];
		while (t) {
			struct sched_task *n = t->hnext;
			free(t);
			t = n;
		}
	}
	while (s->jobs) {
		struct sched_job *j = s->jobs;
		s->jobs = j->next;
		job_free(j);
	}
	for (size_t i = 0; i < s->n_held_buckets; i++) {
		for (struct held_dev *h = s->held[i], *next; h; h = next) {
			next = h->next;
			free(h);
		}
	}
	free(s->held);
	free(s->buckets);
	free(s);
}

/* ---- jobs ---- */

static void job_free(struct sched_job *j)
{
	for (int b = 0; b < N_BACKENDS; b++)
		free(j->q[b].v);
	if (j->data_free)
		j->data_free(j->data);
	free(j);
}

/* True when job a is scheduled before job b. */
static bool job_before(const struct sched_job *a, const struct sched_job *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority;
	return a->id < b->id;
}

struct sched_job *sched_job_find(struct sched *s, uint64_t id)
{
	for (struct sched_job *j = s->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

struct sched_job *sched_job_add(struct sched *s, uint64_t id, int32_t priority)
{
	struct sched_job *j = sched_job_find(s, id);
	if (j)
		return j;
	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->id = id;
	j->priority = priority;
	struct sched_job **pp = &s->jobs;
	while (*pp && job_before(*pp, j))
		pp = &(*pp)->next;
	j->next = *pp;
	*pp = j;
	return j;
}

static void job_release(struct sched *s, struct sched_job *job)
{
	if (--job->live > 0)
		return;
	for (struct sched_job **pp = &s->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == job) {
			*pp = job->next;
			job_free(job);
			return;
		}
	}
}

void sched_job_hold(struct sched_job *job)
{
	job->live++;
}

void sched_job_release(struct sched *s, struct sched_job *job)
{
	job_release(s, job);
}

/* Fair share after job got a task: within its priority group, the other
 * submitters' jobs come first, then this submitter's other jobs, then job. */
static void job_rotate(struct sched *s, struct sched_job *job)
{
	struct sched_job **pp = &s->jobs, *x, *after, *small[64], **v;
	size_t n = 0, i;

	while (*pp && (*pp)->priority != job->priority)
		pp = &(*pp)->next;
	for (x = *pp; x && x->priority == job->priority; x = x->next)
		n++;
	if (n < 2)
		return;
	v = n <= 64 ? small : malloc(n * sizeof(*v));
	if (!v)
		return; /* no memory: no rotation this once */
	for (i = 0, x = *pp; i < n; i++, x = x->next)
		v[i] = x;
	after = x;

	struct sched_job **tail = pp;
	for (i = 0; i < n; i++)
		if (v[i]->submitter != job->submitter) {
			*tail = v[i];
			tail = &v[i]->next;
		}
	for (i = 0; i < n; i++)
		if (v[i]->submitter == job->submitter && v[i] != job) {
			*tail = v[i];
			tail = &v[i]->next;
		}
	*tail = job;
	job->next = after;
	if (v != small)
		free(v);
}

/* ---- heap ---- */

/* Within a job's queue, tasks run in submission order. */
static bool task_before(const struct sched_task *a, const struct sched_task *b)
{
	return a->id < b->id;
}

static void heap_set(struct heap *h, size_t i, struct sched_task *t)
{
	h->v[i] = t;
	t->heap_idx = i;
}

static void heap_up(struct heap *h, size_t i)
{
	struct sched_task *t = h->v[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!task_before(t, h->v[p]))
			break;
		heap_set(h, i, h->v[p]);
		i = p;
	}
	heap_set(h, i, t);
}

static void heap_down(struct heap *h, size_t i)
{
	struct sched_task *t = h->v[i];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, best = i;
		struct sched_task *bt = t;
		if (l < h->n && task_before(h->v[l], bt)) {
			best = l;
			bt = h->v[l];
		}
		if (r < h->n && task_before(h->v[r], bt)) {
			best = r;
			bt = h->v[r];
		}
		if (best == i)
			break;
		heap_set(h, i, bt);
		i = best;
	}
	heap_set(h, i, t);
}

static bool heap_push(struct heap *h, struct sched_task *t)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		struct sched_task **v = realloc(h->v, cap * sizeof(*v));
		if (!v)
			return false;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n] = t;
	t->heap_idx = h->n;
	h->n++;
	heap_up(h, h->n - 1);
	return true;
}

static void heap_remove(struct heap *h, struct sched_task *t)
{
	size_t i = t->heap_idx;
	struct sched_task *last = h->v[--h->n];
	if (i == h->n)
		return;
	heap_set(h, i, last);
	heap_down(h, i);
	heap_up(h, last->heap_idx);
}

static struct heap *heap_of(struct sched *s, const struct sched_task *t)
{
	int i = (int)t->backend;
	(void)s;
	if (i < 0 || i >= N_BACKENDS)
		i = 0;
	return &t->job->q[i];
}

/* ---- out-of-queue list ---- */

static void out_link(struct sched *s, struct sched_task *t)
{
	t->lprev = NULL;
	t->lnext = s->out_head;
	if (s->out_head)
		s->out_head->lprev = t;
	s->out_head = t;
}

static void out_unlink(struct sched *s, struct sched_task *t)
{
	if (t->lprev)
		t->lprev->lnext = t->lnext;
	else
		s->out_head = t->lnext;
	if (t->lnext)
		t->lnext->lprev = t->lprev;
	t->lprev = t->lnext = NULL;
}

/* ---- devices held by leased tasks ---- */

static size_t held_bucket(uint64_t worker_hash, int backend, uint32_t device, size_t n)
{
	return hash_id(worker_hash ^ ((uint64_t)(unsigned)backend << 40) ^ device, n);
}

static struct held_dev **held_slot(const struct sched *s, const char *worker_id, uint64_t wh, int backend,
				   uint32_t device)
{
	struct held_dev **pp = &s->held[held_bucket(wh, backend, device, s->n_held_buckets)];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->worker_hash == wh && (*pp)->backend == backend && (*pp)->device == device &&
		    strcmp((*pp)->worker_id, worker_id) == 0)
			break;
	return pp;
}

/* Doubles the buckets (from 256) when entries outnumber them; without
 * memory the chains grow longer. */
static void held_grow(struct sched *s)
{
	size_t n = s->n_held_buckets ? s->n_held_buckets * 2 : 256;
	struct held_dev **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < s->n_held_buckets; i++) {
		for (struct held_dev *h = s->held[i], *next; h; h = next) {
			next = h->next;
			size_t k = held_bucket(h->worker_hash, h->backend, h->device, n);
			h->next = b[k];
			b[k] = h;
		}
	}
	free(s->held);
	s->held = b;
	s->n_held_buckets = n;
}

/* t enters (delta 1) or leaves (-1) SCHED_LEASED: counts each device it
 * holds.  Without memory for a new entry the device's count reads low
 * until its tasks end (a metric, never a scheduling decision). */
static void held_count(struct sched *s, const struct sched_task *t, int delta)
{
	uint64_t wh = sched_name_hash(t->worker_id);

	for (uint8_t x = 0; x < t->n_devices && x < SCHED_MAX_DEVICES; x++) {
		if (delta > 0 && s->n_held >= s->n_held_buckets)
			held_grow(s);
		if (!s->n_held_buckets)
			return;
		struct held_dev **pp = held_slot(s, t->worker_id, wh, (int)t->backend, t->devices[x]);
		struct held_dev *h = *pp;
		if (delta > 0) {
			if (!h) {
				size_t len = strlen(t->worker_id);
				h = calloc(1, sizeof(*h) + len + 1);
				if (!h)
					continue;
				h->worker_hash = wh;
				h->backend = (int)t->backend;
				h->device = t->devices[x];
				memcpy(h->worker_id, t->worker_id, len + 1);
				*pp = h;
				s->n_held++;
			}
			h->n++;
		} else if (h && --h->n == 0) {
			*pp = h->next;
			free(h);
			s->n_held--;
		}
	}
}

size_t sched_device_leased(const struct sched *s, const char *worker_id, Hf__Backend backend, uint32_t device)
{
	if (!s->n_held_buckets)
		return 0;
	const struct held_dev *h =
		*held_slot(s, worker_id, sched_name_hash(worker_id), (int)backend, device);
	return h ? h->n : 0;
}

/* Moves t out of its heap or list into the right one for state st. */
static bool move_to(struct sched *s, struct sched_task *t, enum sched_state st)
{
	bool was_queued = t->state == SCHED_QUEUED;
	if (t->state == SCHED_LEASED && st != SCHED_LEASED)
		held_count(s, t, -1);
	else if (t->state != SCHED_LEASED && st == SCHED_LEASED)
		held_count(s, t, 1);
	s->n_state[t->state]--;
	if (was_queued && st != SCHED_QUEUED) {
		heap_remove(heap_of(s, t), t);
		out_link(s, t);
		t->job->running++;
	} else if (!was_queued && st == SCHED_QUEUED) {
		out_unlink(s, t);
		if (!heap_push(heap_of(s, t), t)) {
			out_link(s, t); /* no memory: stays out; expiry retries */
			t->state = SCHED_EXPIRING;
			s->n_state[t->state]++;
			return false;
		}
		t->job->running--;
	}
	t->state = st;
	s->n_state[t->state]++;
	if (st == SCHED_QUEUED && !was_queued)
		queued_notify(s, t);
	return true;
}

/* ---- tasks ---- */

static bool hash_grow(struct sched *s)
{
	size_t n = s->nbuckets * 2;
	struct sched_task **b = calloc(n, sizeof(*b));
	if (!b)
		return false;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct sched_task *t = s->buckets[i];
		while (t) {
			struct sched_task *next = t->hnext;
			size_t h = hash_id(t->id, n);
			t->hnext = b[h];
			b[h] = t;
			t = next;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
	return true;
}

struct sched_task *sched_task_find(struct sched *s, uint64_t id)
{
	for (struct sched_task *t = s->buckets[hash_id(id, s->nbuckets)]; t; t = t->hnext)
		if (t->id == id)
			return t;
	return NULL;
}

struct sched_task *sched_task_add(struct sched *s, const struct sched_task *tmpl)
{
	struct sched_job *job = sched_job_find(s, tmpl->job_id);
	struct sched_task *t;
	size_t h;

	if (!job || sched_task_find(s, tmpl->id))
		return NULL;
	if (s->ntasks >= s->nbuckets && !hash_grow(s))
		return NULL;
	t = malloc(sizeof(*t));
	if (!t)
		return NULL;
	*t = *tmpl;
	t->job = job;
	t->lprev = t->lnext = t->hnext = NULL;
	if (t->state == SCHED_QUEUED) {
		t->queued_ms = hf_mono_ms();
		if (!heap_push(heap_of(s, t), t)) {
			free(t);
			return NULL;
		}
	} else {
		out_link(s, t);
		job->running++;
		if (t->state == SCHED_LEASED)
			held_count(s, t, 1);
	}
	h = hash_id(t->id, s->nbuckets);
	t->hnext = s->buckets[h];
	s->buckets[h] = t;
	s->ntasks++;
	s->n_state[t->state]++;
	job->live++;
	if (t->state == SCHED_QUEUED)
		queued_notify(s, t);
	return t;
}

size_t sched_take(struct sched *s, Hf__Backend backend, const char *worker_id,
		  uint32_t device_index, size_t max, sched_fits_fn fits, void *arg,
		  struct sched_task **out)
{
	int b = (int)backend;
	size_t n = 0;

	if (b < 0 || b >= N_BACKENDS)
		return 0;
	for (struct sched_job *job = s->jobs; job && n < max;) {
		struct heap *h = &job->q[b];
		if (h->n == 0 || (job->max_running && job->running >= job->max_running) ||
		    (fits && !fits(h->v[0], arg))) {
			job = job->next;
			continue;
		}
		struct sched_task *t = h->v[0];
		move_to(s, t, SCHED_GRANTING);
		job_rotate(s, job);
		t->attempt++;
		t->reserved = false;
		hf_strlcpy(t->worker_id, worker_id, sizeof(t->worker_id));
		t->device_index = device_index;
		if (t->n_devices == 0 || t->devices[0] != device_index) {
			t->devices[0] = device_index;
			t->n_devices = 1;
		}
		out[n++] = t;
		job = s->jobs; /* the next task goes to whoever is first now */
	}
	return n;
}

void sched_lease(struct sched *s, struct sched_task *t, int64_t expires_ms)
{
	move_to(s, t, SCHED_LEASED);
	t->lease_expires_ms = expires_ms;
}

bool sched_renew(struct sched *s, struct sched_task *t, const char *worker_id, uint32_t attempt,
		 int64_t expires_ms)
{
	(void)s;
	if (t->state != SCHED_LEASED || t->attempt != attempt || strcmp(t->worker_id, worker_id) != 0)
		return false;
	if (expires_ms > t->lease_expires_ms)
		t->lease_expires_ms = expires_ms;
	return true;
}

void sched_expiring(struct sched *s, struct sched_task *t)
{
	move_to(s, t, SCHED_EXPIRING);
}

/* move_to first: a leased task's devices are counted off while it still
 * names them. */
void sched_requeue(struct sched *s, struct sched_task *t)
{
	t->queued_ms = hf_mono_ms();
	move_to(s, t, SCHED_QUEUED);
	t->worker_id[0] = '\0';
	t->n_devices = 0;
}

void sched_delay(struct sched *s, struct sched_task *t, int64_t not_before_ms)
{
	t->not_before_ms = not_before_ms;
	move_to(s, t, SCHED_DELAYED);
	t->worker_id[0] = '\0';
	t->n_devices = 0;
}

size_t sched_collect_due(struct sched *s, int64_t now_ms, struct sched_task **out, size_t max)
{
	size_t n = 0;
	for (struct sched_task *t = s->out_head; t && n < max; t = t->lnext)
		if (t->state == SCHED_DELAYED && t->not_before_ms <= now_ms)
			out[n++] = t;
	return n;
}

uint64_t sched_name_hash(const char *worker_id)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)worker_id; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

void sched_cancelling(struct sched *s, struct sched_task *t)
{
	move_to(s, t, SCHED_CANCELLING);
}

void sched_remove(struct sched *s, struct sched_task *t)
{
	struct sched_task **pp = &s->buckets[hash_id(t->id, s->nbuckets)];
	while (*pp && *pp != t)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = t->hnext;
	if (t->state == SCHED_QUEUED) {
		heap_remove(heap_of(s, t), t);
	} else {
		out_unlink(s, t);
		t->job->running--;
		if (t->state == SCHED_LEASED)
			held_count(s, t, -1);
		if (t->job->max_running && t->job->running + 1 == t->job->max_running &&
		    heap_of(s, t)->n > 0)
			queued_notify(s, t); /* its job is below its cap again */
	}
	s->ntasks--;
	s->n_state[t->state]--;
	job_release(s, t->job);
	free(t);
}

size_t sched_collect_expired(struct sched *s, int64_t now_ms, struct sched_task **out, size_t max)
{
	size_t n = 0;
	for (struct sched_task *t = s->out_head; t && n < max; t = t->lnext)
		if (t->state == SCHED_LEASED && t->lease_expires_ms <= now_ms)
			out[n++] = t;
	return n;
}

size_t sched_collect_state(struct sched *s, enum sched_state st, struct sched_task **out, size_t max)
{
	size_t n = 0;
	for (struct sched_task *t = s->out_head; t && n < max; t = t->lnext)
		if (t->state == st)
			out[n++] = t;
	return n;
}

size_t sched_collect_job(struct sched *s, uint64_t job_id, struct sched_task **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nbuckets && n < max; i++)
		for (struct sched_task *t = s->buckets[i]; t && n < max; t = t->hnext)
			if (t->job_id == job_id)
				out[n++] = t;
	return n;
}

size_t sched_queued(const struct sched *s, Hf__Backend backend)
{
	int i = (int)backend;
	size_t n = 0;
	if (i < 0 || i >= N_BACKENDS)
		return 0;
	for (const struct sched_job *j = s->jobs; j; j = j->next)
		n += j->q[i].n;
	return n;
}

void sched_jobs_foreach(struct sched *s, void (*fn)(struct sched_job *job, void *arg), void *arg)
{
	for (struct sched_job *j = s->jobs; j;) {
		struct sched_job *next = j->next; /* fn must not add or remove jobs */
		fn(j, arg);
		j = next;
	}
}

size_t sched_count(const struct sched *s)
{
	return s->ntasks;
}

size_t sched_count_state(const struct sched *s, enum sched_state st)
{
	if ((int)st < 0 || st > SCHED_DELAYED)
		return 0;
	return s->n_state[st];
}
