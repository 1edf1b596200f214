/* SPDX-License-Identifier: MIT
 *
 * The index of which workers cache which registry model's weights (see
 * locality.h).  Loop thread only.
 */
#include "locality.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"

static int id_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static long id_find(const struct locality *l, const char *hf_id)
{
	size_t lo = 0, hi = l->n_ids;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = strcmp(hf_id, l->ids[mid]);
		if (cmp == 0)
			return (long)mid;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

int locality_init(struct locality *l, const struct registry *reg)
{
	size_t n = reg->n ? reg->n : 1;

	memset(l, 0, sizeof(*l));
	l->reg = reg;
	l->ids = calloc(n, sizeof(*l->ids));
	l->model_id = calloc(n, sizeof(*l->model_id));
	l->holders = calloc(n, sizeof(*l->holders));
	l->n_holders = calloc(n, sizeof(*l->n_holders));
	if (!l->ids || !l->model_id || !l->holders || !l->n_holders) {
		locality_fini(l);
		return -ENOMEM;
	}
	for (size_t i = 0; i < reg->n; i++)
		l->ids[i] = reg->models[i].hf_id;
	qsort(l->ids, reg->n, sizeof(*l->ids), id_cmp);
	for (size_t i = 0; i < reg->n; i++)
		if (l->n_ids == 0 || strcmp(l->ids[l->n_ids - 1], l->ids[i]) != 0)
			l->ids[l->n_ids++] = l->ids[i];
	for (size_t i = 0; i < reg->n; i++)
		l->model_id[i] = (uint32_t)id_find(l, reg->models[i].hf_id);
	return 0;
}

void locality_fini(struct locality *l)
{
	free(l->ids);
	free(l->model_id);
	free(l->holders);
	free(l->n_holders);
	memset(l, 0, sizeof(*l));
}

void locality_drop(struct locality *l, struct coord_worker *w)
{
	for (size_t k = 0; k < w->n_loc; k++) {
		struct locality_node *n = &w->loc[k];
		if (n->prev)
			n->prev->next = n->next;
		else
			l->holders[n->id] = n->next;
		if (n->next)
			n->next->prev = n->prev;
		l->n_holders[n->id]--;
	}
	free(w->loc);
	w->loc = NULL;
	w->n_loc = 0;
}

int locality_set(struct locality *l, struct coord_worker *w)
{
	const Hf__Register *r = w->reg;
	size_t n = 0;

	locality_drop(l, w);
	if (!r || !l->ids)
		return 0;
	for (size_t i = 0; i < r->n_cached_models; i++)
		n += id_find(l, r->cached_models[i]) >= 0;
	if (n == 0)
		return 0;
	w->loc = calloc(n, sizeof(*w->loc));
	if (!w->loc)
		return -ENOMEM;
	/* cached_models is sorted and may repeat an id: index each once. */
	for (size_t i = 0; i < r->n_cached_models; i++) {
		long id = id_find(l, r->cached_models[i]);
		if (id < 0 || (w->n_loc && w->loc[w->n_loc - 1].id == (uint32_t)id))
			continue;
		struct locality_node *node = &w->loc[w->n_loc++];
		node->w = w;
		node->id = (uint32_t)id;
		node->prev = NULL;
		node->next = l->holders[id];
		if (node->next)
			node->next->prev = node;
		l->holders[id] = node;
		l->n_holders[id]++;
	}
	return 0;
}

const struct locality_node *locality_holders(const struct locality *l, uint32_t model)
{
	if (!l->model_id || model >= l->reg->n)
		return NULL;
	return l->holders[l->model_id[model]];
}
