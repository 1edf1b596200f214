/* SPDX-License-Identifier: MIT
 *
 * Held polls' bookkeeping (see poll-hold.h): a FIFO list (intrusive) and
 * a binary min-heap by the end of the hold (an array of ends and pointers;
 * each poll knows its index).  Loop thread only.
 */
#include "poll-hold.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void heap_set(struct poll_holds *h, size_t i, struct poll_hold_slot e)
{
	h->heap[i] = e;
	e.p->heap_idx = i;
}

static void heap_up(struct poll_holds *h, size_t i)
{
	struct poll_hold_slot e = h->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (h->heap[parent].until_ms <= e.until_ms)
			break;
		heap_set(h, i, h->heap[parent]);
		i = parent;
	}
	heap_set(h, i, e);
}

static void heap_down(struct poll_holds *h, size_t i)
{
	struct poll_hold_slot e = h->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		int64_t best = e.until_ms;
		if (l < h->n && h->heap[l].until_ms < best) {
			m = l;
			best = h->heap[l].until_ms;
		}
		if (l + 1 < h->n && h->heap[l + 1].until_ms < best)
			m = l + 1;
		if (m == i)
			break;
		heap_set(h, i, h->heap[m]);
		i = m;
	}
	heap_set(h, i, e);
}

static void count_backends(struct poll_holds *h, const struct held_poll *p, int delta)
{
	for (int b = 0; b < 32; b++)
		if (p->backends >> b & 1)
			h->by_backend[b] += (uint32_t)delta;
}

int poll_holds_add(struct poll_holds *h, struct held_poll *p)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct poll_hold_slot *v = realloc(h->heap, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->heap = v;
		h->cap = cap;
	}
	heap_set(h, h->n++, (struct poll_hold_slot){ .until_ms = p->until_ms, .p = p });
	heap_up(h, p->heap_idx);
	p->next = NULL;
	p->prev = h->last;
	if (h->last)
		h->last->next = p;
	else
		h->first = p;
	h->last = p;
	count_backends(h, p, 1);
	return 0;
}

void poll_holds_remove(struct poll_holds *h, struct held_poll *p)
{
	size_t i = p->heap_idx;
	struct poll_hold_slot moved = h->heap[--h->n];

	if (i != h->n) {
		heap_set(h, i, moved);
		if (i > 0 && h->heap[(i - 1) / 2].until_ms > moved.until_ms)
			heap_up(h, i);
		else
			heap_down(h, i);
	}
	if (p->prev)
		p->prev->next = p->next;
	else
		h->first = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		h->last = p->prev;
	p->prev = p->next = NULL;
	count_backends(h, p, -1);
}

struct held_poll *poll_holds_pop_ended(struct poll_holds *h, int64_t now_ms)
{
	struct held_poll *p;

	if (h->n == 0 || h->heap[0].until_ms > now_ms)
		return NULL;
	p = h->heap[0].p;
	poll_holds_remove(h, p);
	return p;
}

int64_t poll_holds_next_end(const struct poll_holds *h)
{
	return h->n ? h->heap[0].until_ms : -1;
}

void poll_holds_fini(struct poll_holds *h)
{
	free(h->heap);
	h->heap = NULL;
	h->n = h->cap = 0;
	h->first = h->last = NULL;
	memset(h->by_backend, 0, sizeof(h->by_backend));
}
