/* SPDX-License-Identifier: MIT
 *
 * Which registered workers hold a registry model's weights in their cache:
 * for each distinct Hub id of the registry, the list of workers whose
 * Register named it among cached_models.  Kept as workers register, change
 * their registration and are forgotten, so the weight-locality check of a
 * task looks only at the workers that have its weights, never at the whole
 * fleet.  Cached ids the registry does not know are not indexed (no task
 * can name them), so the index holds at most workers x registry ids
 * entries.  Loop thread only.
 */
#ifndef HF_LOCALITY_H
#define HF_LOCALITY_H

#include <stddef.h>
#include <stdint.h>

#include "registry.h"

struct coord_worker;

/* One worker's membership of one id's list. */
struct locality_node {
	struct coord_worker *w;
	uint32_t id;               /* the distinct id's index */
	struct locality_node *prev, *next;
};

struct locality {
	const struct registry *reg;
	const char **ids;          /* the registry's distinct Hub ids, sorted */
	size_t n_ids;
	uint32_t *model_id;        /* registry model -> its id's index */
	struct locality_node **holders; /* per id: the workers that cache it */
	size_t *n_holders;
};

/* Builds the empty index of reg's ids.  Returns 0 or -ENOMEM. */
int locality_init(struct locality *l, const struct registry *reg);
void locality_fini(struct locality *l);

/* Indexes w by the cached models of its current registration (w->reg),
 * after taking it out of the lists of its previous one.  Returns 0 or
 * -ENOMEM (w is then in no list: the check finds no holder there, which
 * only makes a task wait less). */
int locality_set(struct locality *l, struct coord_worker *w);

/* Takes w out of every list (before it is freed). */
void locality_drop(struct locality *l, struct coord_worker *w);

/* The first of the workers caching the weights of registry model m (walk
 * with ->next), or NULL. */
const struct locality_node *locality_holders(const struct locality *l, uint32_t model);

#endif
