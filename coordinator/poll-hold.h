/* SPDX-License-Identifier: MIT
 *
 * Held polls: the polls of idle workers that the coordinator answers only
 * when tasks they can run are queued, or when their hold ends (see "Held
 * polls" in docs/protocol.md).  This is their bookkeeping, pure and with
 * no I/O: a queue in the order they were parked (the oldest is offered
 * work first, so wakes are fair between workers) and a min-heap of when
 * their holds end (so ending them costs a look at the earliest).  Both
 * are intrusive: a held poll is a struct held_poll inside the caller's
 * request, which owns its memory.  worker-api.c parks, wakes and ends
 * them.
 *
 * Not thread-safe: owned by the coordinator's loop thread.
 */
#ifndef HF_POLL_HOLD_H
#define HF_POLL_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct held_poll {
	int64_t until_ms;       /* monotonic: when the hold ends */
	uint32_t backends;      /* bit b: a device of backend b has free slots */
	/* internal */
	size_t heap_idx;
	struct held_poll *prev, *next; /* oldest first */
};

/* A heap entry keeps its poll's end beside the pointer: comparisons read
 * the array alone, not ten thousand polls scattered in memory (ending a
 * hold at 10,000 workers cost about 14 cache misses a level otherwise). */
struct poll_hold_slot {
	int64_t until_ms;
	struct held_poll *p;
};

struct poll_holds {
	struct poll_hold_slot *heap; /* by until_ms */
	size_t n, cap;
	struct held_poll *first, *last;
	uint32_t by_backend[32];     /* held polls with bit b in their backends */
};

/* Parks p (until_ms and backends set).  Returns 0 or -ENOMEM. */
int poll_holds_add(struct poll_holds *h, struct held_poll *p);

/* Takes p out (woken, answered or gone). */
void poll_holds_remove(struct poll_holds *h, struct held_poll *p);

/* The held poll whose hold ended earliest, if that is at or before
 * now_ms, taken out; else NULL. */
struct held_poll *poll_holds_pop_ended(struct poll_holds *h, int64_t now_ms);

/* When the earliest hold ends, or -1 when none is held. */
int64_t poll_holds_next_end(const struct poll_holds *h);

/* The oldest held poll (then ->next), or NULL. */
static inline struct held_poll *poll_holds_first(const struct poll_holds *h)
{
	return h->first;
}

static inline size_t poll_holds_count(const struct poll_holds *h)
{
	return h->n;
}

/* Is a poll held that has free slots of one of these backends (bits)? */
static inline bool poll_holds_waiting(const struct poll_holds *h, uint32_t backends)
{
	for (int b = 0; b < 32; b++)
		if ((backends >> b & 1) && h->by_backend[b])
			return true;
	return false;
}

/* Frees the heap (the held polls are the caller's). */
void poll_holds_fini(struct poll_holds *h);

#endif
