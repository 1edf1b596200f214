/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the submit feed (coordinator/submit-feed.c): a large
 * job's tasks reach the scheduler a slice per loop turn, all of them, once;
 * a flush adds the rest at once; the job is kept while being fed even when
 * every task added so far has left.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "control-int.h"
#include "coordinator.h"
#include "expand.h"
#include "scheduler.h"

#define CPU HF__BACKEND__BACKEND_CPU
#define SLICE 4096 /* SUBMIT_FEED_SLICE */

struct fixture {
	struct coord c;
	uv_loop_t loop;
};

static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	f->c.loop = &f->loop;
	f->c.sched = sched_new();
	ck_assert_ptr_nonnull(f->c.sched);
}

static void fixture_fini(struct fixture *f)
{
	/* Every feed's handle closed: the loop has nothing left. */
	ck_assert_int_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
	sched_free(f->c.sched);
}

/* A plan of n cpu test tasks, and its ids (first, first + 1, ...). */
static struct job_plan *plan_of(size_t n, uint64_t first, uint64_t **ret_ids)
{
	struct job_plan *plan = calloc(1, sizeof(*plan));
	uint64_t *ids = calloc(n, sizeof(*ids));
	ck_assert_ptr_nonnull(plan);
	ck_assert_ptr_nonnull(ids);
	plan->tasks = calloc(n, sizeof(*plan->tasks));
	ck_assert_ptr_nonnull(plan->tasks);
	plan->n_tasks = n;
	plan->timeout_s = 60;
	for (size_t i = 0; i < n; i++) {
		plan->tasks[i].backend = CPU;
		plan->tasks[i].kind = HF__TASK_KIND__KIND_TEST;
		plan->tasks[i].batch_size = 1;
		plan->tasks[i].precision = "fp32";
		ids[i] = first + i;
	}
	*ret_ids = ids;
	return plan;
}

START_TEST(test_small_job_is_added_at_once)
{
	struct fixture f;
	uint64_t *ids;
	fixture_init(&f);
	struct sched_job *job = sched_job_add(f.c.sched, 1, 0);
	{
		struct job_plan *p = plan_of(10, 100, &ids);
		submit_feed_start(&f.c, job, p, ids, p->n_tasks);
	}
	ck_assert_ptr_null(f.c.submit_feeds);
	ck_assert_uint_eq(sched_queued(f.c.sched, CPU), 10);
	ck_assert_ptr_nonnull(sched_task_find(f.c.sched, 109));
	fixture_fini(&f);
}
END_TEST

START_TEST(test_large_job_is_added_a_slice_per_turn)
{
	struct fixture f;
	uint64_t *ids;
	size_t n = 3 * SLICE + 5;
	fixture_init(&f);
	struct sched_job *job = sched_job_add(f.c.sched, 1, 0);
	{
		struct job_plan *p = plan_of(n, 1000, &ids);
		submit_feed_start(&f.c, job, p, ids, p->n_tasks);
	}
	/* The first slice at once, then one per loop turn. */
	ck_assert_uint_eq(sched_queued(f.c.sched, CPU), SLICE);
	ck_assert_ptr_nonnull(f.c.submit_feeds);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	ck_assert_uint_eq(sched_queued(f.c.sched, CPU), 2 * SLICE);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	ck_assert_uint_eq(sched_queued(f.c.sched, CPU), n);
	ck_assert_ptr_null(f.c.submit_feeds);
	for (size_t i = 0; i < n; i++) {
		struct sched_task *t = sched_task_find(f.c.sched, 1000 + i);
		ck_assert_ptr_nonnull(t);
		ck_assert_uint_eq(t->job_id, 1);
		ck_assert_int_eq(t->state, SCHED_QUEUED);
	}
	/* Done feeding: the job goes with its last task. */
	for (size_t i = 0; i < n; i++)
		sched_remove(f.c.sched, sched_task_find(f.c.sched, 1000 + i));
	ck_assert_ptr_null(sched_job_find(f.c.sched, 1));
	fixture_fini(&f);
}
END_TEST

/* A cancel arriving while the job is fed flushes it first; the job stays
 * while its first tasks are gone and the rest are not yet added. */
START_TEST(test_flush_adds_the_rest_and_the_job_is_held_meanwhile)
{
	struct fixture f;
	uint64_t *ids, *ids2;
	size_t n = 2 * SLICE + 7;
	fixture_init(&f);
	struct sched_job *job = sched_job_add(f.c.sched, 1, 0);
	struct sched_job *other = sched_job_add(f.c.sched, 2, 0);
	{
		struct job_plan *p = plan_of(n, 1000, &ids);
		submit_feed_start(&f.c, job, p, ids, p->n_tasks);
	}
	{
		struct job_plan *p = plan_of(SLICE + 1, 50000, &ids2);
		submit_feed_start(&f.c, other, p, ids2, p->n_tasks);
	}
	for (size_t i = 0; i < SLICE; i++)
		sched_remove(f.c.sched, sched_task_find(f.c.sched, 1000 + i));
	ck_assert_ptr_eq(sched_job_find(f.c.sched, 1), job);
	submit_feed_flush(&f.c, 1);
	ck_assert_ptr_nonnull(sched_task_find(f.c.sched, 1000 + n - 1));
	ck_assert_ptr_null(sched_task_find(f.c.sched, 50000 + SLICE)); /* job 2 still being fed */
	ck_assert_uint_eq(sched_queued(f.c.sched, CPU), n - SLICE + SLICE);
	submit_feed_flush(&f.c, 1); /* nothing left to feed: no change */
	ck_assert_uint_eq(sched_queued(f.c.sched, CPU), n);
	uv_run(&f.loop, UV_RUN_NOWAIT);
	ck_assert_ptr_nonnull(sched_task_find(f.c.sched, 50000 + SLICE));
	ck_assert_ptr_null(f.c.submit_feeds);
	fixture_fini(&f);
}
END_TEST

/* A coordinator stopping drops what is left (the tasks are committed; the
 * next start loads them) and frees everything. */
START_TEST(test_stopping_ends_the_feed)
{
	struct fixture f;
	uint64_t *ids;
	fixture_init(&f);
	struct sched_job *job = sched_job_add(f.c.sched, 1, 0);
	{
		struct job_plan *p = plan_of(2 * SLICE, 1, &ids);
		submit_feed_start(&f.c, job, p, ids, p->n_tasks);
	}
	f.c.stopping = true;
	uv_run(&f.loop, UV_RUN_NOWAIT);
	ck_assert_ptr_null(f.c.submit_feeds);
	ck_assert_uint_eq(sched_queued(f.c.sched, CPU), SLICE);
	fixture_fini(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("submit_feed");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_small_job_is_added_at_once);
	tcase_add_test(tc, test_large_job_is_added_a_slice_per_turn);
	tcase_add_test(tc, test_flush_adds_the_rest_and_the_job_is_held_meanwhile);
	tcase_add_test(tc, test_stopping_ends_the_feed);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
