/* SPDX-License-Identifier: MIT
 *
 * Reserves of warm runners (warm_pool_reserve, see warm-pool.h): for a
 * key, the pool keeps target runners started ahead of any task, so a task
 * finds one idle that has imported its frameworks already.  A reserve's
 * timer does the work, never the caller's stack: whenever a runner of the
 * key stops counting (retired, stopped, exited) the timer is armed, and
 * when it fires the missing runners are started, up to target in all (the
 * runners serving tasks count: a key never has more than target runners
 * because of its reserve).  A runner that dies before it has served a task,
 * and was not sent away, failed at start: the next start waits
 * RESERVE_BACKOFF_MIN_MS, doubling with each failure in a row up to
 * RESERVE_BACKOFF_MAX_MS, and starts one runner at a time; a task served by
 * a runner of the key ends the backoff.  The reserve's copy of the
 * environment is the one every runner of the key was started with.
 *
 * Ownership: the pool owns its reserves; each is freed when its timer is
 * closed, after warm_reserve_close_all.  Loop thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"
#include "warm-pool-internal.h"
#include "warm-pool.h"

#define RESERVE_BACKOFF_MIN_MS 1000
#define RESERVE_BACKOFF_MAX_MS 60000

struct warm_reserve {
	struct warm_pool *pool;
	struct warm_reserve *next;
	char *key, *where;
	char **env;          /* NULL-terminated, owned */
	unsigned target;
	unsigned round;      /* the warm_pool_reserve_begin round that set it */
	unsigned failures;   /* runners in a row that died at start */
	uv_timer_t timer;
	bool closing;
};

static void reserve_free(struct warm_reserve *r)
{
	for (size_t i = 0; r->env && r->env[i]; i++)
		free(r->env[i]);
	free(r->env);
	free(r->key);
	free(r->where);
	free(r);
}

static struct warm_reserve *reserve_find(struct warm_pool *p, const char *key)
{
	for (struct warm_reserve *r = p->reserves; r; r = r->next)
		if (strcmp(r->key, key) == 0)
			return r;
	return NULL;
}

static unsigned reserve_count(const struct warm_reserve *r)
{
	unsigned n = 0;

	for (const struct warm_runner *w = r->pool->runners; w; w = w->next)
		n += warm_runner_counts(w) && strcmp(w->key, r->key) == 0;
	return n;
}

static int64_t reserve_delay_ms(const struct warm_reserve *r)
{
	int64_t ms = RESERVE_BACKOFF_MIN_MS;

	if (r->failures == 0)
		return 0;
	for (unsigned i = 1; i < r->failures && ms < RESERVE_BACKOFF_MAX_MS; i++)
		ms *= 2;
	return ms < RESERVE_BACKOFF_MAX_MS ? ms : RESERVE_BACKOFF_MAX_MS;
}

static void reserve_timer_cb(uv_timer_t *h);

/* Arms the timer (now, or after the backoff) unless it is armed already. */
static void reserve_kick(struct warm_reserve *r)
{
	int64_t ms;

	if (r->closing || r->pool->closing || uv_is_active((uv_handle_t *)&r->timer))
		return;
	ms = reserve_delay_ms(r);
	if (ms > 0)
		log_warn("starting the next warm runner for %s in %g s (%u failed at start in a row)",
			 r->where, (double)ms / 1000.0, r->failures);
	uv_timer_start(&r->timer, reserve_timer_cb, (uint64_t)ms, 0);
}

static void reserve_failed(struct warm_reserve *r, const char *what)
{
	r->failures++;
	log_warn("warm runner for %s %s", r->where, what);
}

static void reserve_timer_cb(uv_timer_t *h)
{
	struct warm_reserve *r = h->data;
	unsigned have = reserve_count(r), started = 0;

	while (have + started < r->target && !r->pool->closing) {
		struct warm_runner *w;
		int e = warm_runner_start(r->pool, r->key, r->env, r->where, &w);

		if (e < 0) {
			char what[160];
			snprintf(what, sizeof(what), "could not be started: %s", strerror(-e));
			reserve_failed(r, what);
			break;
		}
		started++;
		if (r->failures)
			break; /* backing off: one at a time until one serves */
	}
	if (started)
		log_info("%u warm runner%s started ahead of tasks for %s (runner.prewarm: %u of %u)",
			 started, started == 1 ? "" : "s", r->where, have + started, r->target);
	if (have + started < r->target)
		reserve_kick(r);
}

static void reserve_closed_cb(uv_handle_t *h)
{
	struct warm_reserve *r = h->data;
	struct warm_pool *p = r->pool;

	reserve_free(r);
	p->n_reserve_handles--;
	warm_pool_maybe_free(p);
}

static int env_copy(char *const *env, char ***ret)
{
	size_t n = 0;
	char **c;

	while (env[n])
		n++;
	c = calloc(n + 1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c[i] = strdup(env[i]);
		if (!c[i]) {
			for (size_t j = 0; j < i; j++)
				free(c[j]);
			free(c);
			return -ENOMEM;
		}
	}
	*ret = c;
	return 0;
}

/* Above the target (it was lowered): the idle runners beyond it retire,
 * least recently used first; busy ones go by themselves later. */
static void reserve_trim(struct warm_reserve *r, const char *why)
{
	unsigned have = reserve_count(r);
	struct warm_runner *last = NULL;

	for (struct warm_runner *w = r->pool->runners; w; w = w->next)
		last = w;
	for (struct warm_runner *w = last; w && have > r->target; w = w->prev) {
		if (!warm_runner_counts(w) || w->task || strcmp(w->key, r->key) != 0)
			continue;
		warm_runner_retire(w, why);
		have--;
	}
}

void warm_pool_reserve_begin(struct warm_pool *p)
{
	p->reserve_round++;
}

void warm_pool_reserve_end(struct warm_pool *p, const char *why)
{
	for (struct warm_reserve *r = p->reserves; r; r = r->next) {
		if (r->round == p->reserve_round || r->target == 0)
			continue;
		r->target = 0;
		reserve_trim(r, why);
	}
}

int warm_pool_reserve(struct warm_pool *p, const char *key, char *const *env, const char *where,
		      unsigned target)
{
	struct warm_reserve *r;
	char **copy = NULL, *where_copy;

	if (p->closing)
		return -ESHUTDOWN;
	if (!key || !env || !where)
		return -EINVAL;
	if (env_copy(env, &copy) < 0)
		return -ENOMEM;
	where_copy = strdup(where);
	if (!where_copy)
		goto oom;
	r = reserve_find(p, key);
	if (r) {
		for (size_t i = 0; r->env[i]; i++)
			free(r->env[i]);
		free(r->env);
		free(r->where);
	} else {
		r = calloc(1, sizeof(*r));
		if (!r)
			goto oom;
		r->key = strdup(key);
		if (!r->key) {
			free(r);
			goto oom;
		}
		r->pool = p;
		uv_timer_init(p->loop, &r->timer);
		r->timer.data = r;
		p->n_reserve_handles++;
		r->next = p->reserves;
		p->reserves = r;
	}
	r->env = copy;
	r->where = where_copy;
	r->target = target;
	r->round = p->reserve_round;
	if (reserve_count(r) < target)
		reserve_kick(r);
	reserve_trim(r, "its device has fewer slots now (runner.prewarm)");
	return 0;
oom:
	free(where_copy);
	for (size_t i = 0; copy[i]; i++)
		free(copy[i]);
	free(copy);
	return -ENOMEM;
}

void warm_reserve_runner_lost(struct warm_pool *p, const char *key, bool start_failed)
{
	struct warm_reserve *r = p->closing ? NULL : reserve_find(p, key);

	if (!r)
		return;
	if (start_failed)
		reserve_failed(r, "exited before it served a task");
	reserve_kick(r);
}

void warm_reserve_runner_served(struct warm_pool *p, const char *key)
{
	struct warm_reserve *r = reserve_find(p, key);

	if (!r || r->failures == 0)
		return;
	log_info("warm runner for %s served a task: starting runners again at once", r->where);
	r->failures = 0;
	if (reserve_count(r) < r->target) {
		uv_timer_stop(&r->timer);
		reserve_kick(r);
	}
}

void warm_reserve_close_all(struct warm_pool *p)
{
	struct warm_reserve *r = p->reserves;

	p->reserves = NULL; /* each is freed when its timer is closed */
	while (r) {
		struct warm_reserve *next = r->next;
		r->closing = true;
		uv_timer_stop(&r->timer);
		uv_close((uv_handle_t *)&r->timer, reserve_closed_cb);
		r = next;
	}
}
