/* SPDX-License-Identifier: MIT
 *
 * Tasks reserved at the coordinator (reserve.c): the next test of each slot
 * of a worker whose tasks are short, leased and committed before the slot
 * frees, handed over at the worker's first poll with a free slot.
 * Loop thread only.
 */
#ifndef HF_RESERVE_H
#define HF_RESERVE_H

#include <stdint.h>

#include "coordinator.h"

struct worker_req;

/* Starts committing reservations for cw's slots, when it may have them
 * and has room (one per registered slot); reserve_committed keeps them. */
void reserve_maybe(struct coord *c, struct coord_worker *cw);

/* A poll from cw: renews the leases of its reservations (it does not list
 * them as running) and releases those it was not handed within twice
 * scheduler.reserve_below or whose device may take no work now. */
void reserve_renew(struct coord *c, struct coord_worker *cw, int64_t now);

/* Moves into w->pre the reservations the poll's free slots take now (the
 * poll's reply hands them over); poll_take fills the rest. */
void reserve_hand_over(struct worker_req *w, struct coord_worker *cw, int64_t now);

/* Releases every reservation of cw: queued again, without a retry (its
 * worker drains or is forgotten; the coordinator stops). */
void reserve_release_all(struct coord *c, struct coord_worker *cw);

/* One of cw's tasks ended after running ran_s seconds (its worker's
 * started_at to finished_at). */
void reserve_task_ran(struct coord *c, struct coord_worker *cw, double ran_s);

#endif
