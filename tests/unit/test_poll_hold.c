/* SPDX-License-Identifier: MIT
 *
 * Unit tests for held polls' bookkeeping (coordinator/poll-hold.c) and the
 * scheduler's word that wakes them (sched_set_queued_cb).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "poll-hold.h"
#include "sched_task_fixture.h"
#include "scheduler.h"

START_TEST(test_holds_end_earliest_first_and_wake_oldest_first)
{
	struct poll_holds h = { 0 };
	struct held_poll p[4] = { { .until_ms = 300 }, { .until_ms = 100 }, { .until_ms = 400 },
				  { .until_ms = 200 } };

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(poll_holds_add(&h, &p[i]), 0);
	ck_assert_uint_eq(poll_holds_count(&h), 4);
	/* Woken in the order they came ... */
	ck_assert_ptr_eq(poll_holds_first(&h), &p[0]);
	ck_assert_ptr_eq(p[0].next, &p[1]);
	ck_assert_ptr_eq(p[2].next, &p[3]);
	/* ... ended in the order of their ends, only once due. */
	ck_assert_int_eq(poll_holds_next_end(&h), 100);
	ck_assert_ptr_null(poll_holds_pop_ended(&h, 99));
	ck_assert_ptr_eq(poll_holds_pop_ended(&h, 250), &p[1]);
	ck_assert_ptr_eq(poll_holds_pop_ended(&h, 250), &p[3]);
	ck_assert_ptr_null(poll_holds_pop_ended(&h, 250));
	ck_assert_ptr_eq(poll_holds_first(&h), &p[0]);
	ck_assert_ptr_eq(p[0].next, &p[2]);
	poll_holds_remove(&h, &p[0]);
	ck_assert_ptr_eq(poll_holds_first(&h), &p[2]);
	ck_assert_int_eq(poll_holds_next_end(&h), 400);
	poll_holds_remove(&h, &p[2]);
	ck_assert_int_eq(poll_holds_next_end(&h), -1);
	ck_assert_ptr_null(poll_holds_first(&h));
	poll_holds_fini(&h);
}
END_TEST

/* Which backends idle workers wait for (reserve.c reserves none of those):
 * counted as polls are held, woken and ended. */
START_TEST(test_holds_count_the_backends_waited_for)
{
	struct poll_holds h = { 0 };
	struct held_poll cpu = { .until_ms = 100, .backends = 1u << 1 };
	struct held_poll both = { .until_ms = 200, .backends = 1u << 1 | 1u << 2 };

	ck_assert(!poll_holds_waiting(&h, ~0u));
	ck_assert_int_eq(poll_holds_add(&h, &cpu), 0);
	ck_assert_int_eq(poll_holds_add(&h, &both), 0);
	ck_assert(poll_holds_waiting(&h, 1u << 2));
	ck_assert(!poll_holds_waiting(&h, 1u << 3));
	ck_assert_ptr_eq(poll_holds_pop_ended(&h, 150), &cpu);
	ck_assert(poll_holds_waiting(&h, 1u << 1));
	poll_holds_remove(&h, &both);
	ck_assert(!poll_holds_waiting(&h, 1u << 1 | 1u << 2));
	poll_holds_fini(&h);
}
END_TEST

START_TEST(test_holds_stay_ordered_under_many_removals)
{
	enum { N = 2000 };
	struct poll_holds h = { 0 };
	struct held_poll *p = calloc(N, sizeof(*p));
	bool in[N] = { false };
	unsigned seed = 15;

	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < N; i++) {
		p[i].until_ms = rand_r(&seed) % 1000;
		ck_assert_int_eq(poll_holds_add(&h, &p[i]), 0);
		in[i] = true;
	}
	for (int i = 0; i < N; i += 3) { /* woken from anywhere in the heap */
		poll_holds_remove(&h, &p[i]);
		in[i] = false;
	}
	int64_t last = -1;
	size_t left = 0;
	for (int i = 0; i < N; i++)
		left += in[i];
	struct held_poll *q;
	while ((q = poll_holds_pop_ended(&h, 1000))) {
		ck_assert_int_ge(q->until_ms, last);
		ck_assert(in[q - p]);
		in[q - p] = false;
		last = q->until_ms;
		left--;
	}
	ck_assert_uint_eq(left, 0);
	ck_assert_ptr_null(poll_holds_first(&h));
	poll_holds_fini(&h);
	free(p);
}
END_TEST

struct woken {
	unsigned n[SCHED_N_BACKENDS];
};

static void queued_cb(void *arg, Hf__Backend b)
{
	((struct woken *)arg)->n[b]++;
}

START_TEST(test_scheduler_says_when_a_task_may_be_taken)
{
	struct sched *s = sched_new();
	struct woken wk = { { 0 } };
	struct sched_task *out[4], t;
	struct sched_job *job;

	sched_set_queued_cb(s, queued_cb, &wk);
	job = sched_job_add(s, 1, 0);
	job->max_running = 1;
	t = mk(10, 1, HF__BACKEND__BACKEND_CUDA);
	sched_task_add(s, &t);
	t = mk(11, 1, HF__BACKEND__BACKEND_CUDA);
	sched_task_add(s, &t);
	ck_assert_uint_eq(wk.n[HF__BACKEND__BACKEND_CUDA], 2); /* submitted */
	ck_assert_uint_eq(sched_take(s, HF__BACKEND__BACKEND_CUDA, "w", 0, 4, NULL, NULL, out), 1);
	ck_assert_uint_eq(wk.n[HF__BACKEND__BACKEND_CUDA], 2); /* taking wakes nobody */
	sched_lease(s, out[0], 1000);
	sched_expiring(s, out[0]);
	sched_requeue(s, out[0]);
	ck_assert_uint_eq(wk.n[HF__BACKEND__BACKEND_CUDA], 3); /* queued again */
	ck_assert_uint_eq(sched_take(s, HF__BACKEND__BACKEND_CUDA, "w", 0, 4, NULL, NULL, out), 1);
	sched_lease(s, out[0], 1000);
	sched_remove(s, out[0]);
	ck_assert_uint_eq(wk.n[HF__BACKEND__BACKEND_CUDA], 4); /* its job is below max_running again */
	ck_assert_uint_eq(wk.n[HF__BACKEND__BACKEND_CPU], 0);
	sched_free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("poll_hold");
	TCase *tc = tcase_create("poll_hold");
	tcase_add_test(tc, test_holds_end_earliest_first_and_wake_oldest_first);
	tcase_add_test(tc, test_holds_count_the_backends_waited_for);
	tcase_add_test(tc, test_holds_stay_ordered_under_many_removals);
	tcase_add_test(tc, test_scheduler_says_when_a_task_may_be_taken);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
