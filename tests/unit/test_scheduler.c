/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the scheduler's in-memory state and matching
 * (coordinator/scheduler.c).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"
#include "sched_task_fixture.h"
#include "scheduler.h"

#define CPU HF__BACKEND__BACKEND_CPU
#define CUDA HF__BACKEND__BACKEND_CUDA

START_TEST(test_take_matches_backend_only)
{
	struct sched *s = sched_new();
	struct sched_task *out[8];
	struct sched_task t;

	sched_job_add(s, 1, 0);
	t = mk(10, 1, CUDA);
	sched_task_add(s, &t);
	t = mk(11, 1, CPU);
	sched_task_add(s, &t);
	ck_assert_uint_eq(sched_queued(s, CPU), 1);
	ck_assert_uint_eq(sched_take(s, CPU, "w1", 0, 8, NULL, NULL, out), 1);
	ck_assert_uint_eq(out[0]->id, 11);
	ck_assert_int_eq(out[0]->state, SCHED_GRANTING);
	ck_assert_uint_eq(out[0]->attempt, 1);
	ck_assert_str_eq(out[0]->worker_id, "w1");
	ck_assert_uint_eq(sched_take(s, CPU, "w1", 0, 8, NULL, NULL, out), 0);
	ck_assert_uint_eq(sched_take(s, HF__BACKEND__BACKEND_ROCM, "w1", 0, 8, NULL, NULL, out), 0);
	ck_assert_uint_eq(sched_take(s, CUDA, "w2", 3, 8, NULL, NULL, out), 1);
	ck_assert_uint_eq(out[0]->device_index, 3);
	sched_free(s);
}
END_TEST

/* The per-state counts /metrics reads follow every transition. */
START_TEST(test_state_counts_follow_transitions)
{
	struct sched *s = sched_new();
	struct sched_task *out[8];
	struct sched_task t;

	sched_job_add(s, 1, 0);
	for (uint64_t id = 10; id < 13; id++) {
		t = mk(id, 1, CPU);
		sched_task_add(s, &t);
	}
	ck_assert_uint_eq(sched_count_state(s, SCHED_QUEUED), 3);
	ck_assert_uint_eq(sched_take(s, CPU, "w1", 0, 2, NULL, NULL, out), 2);
	ck_assert_uint_eq(sched_count_state(s, SCHED_QUEUED), 1);
	ck_assert_uint_eq(sched_count_state(s, SCHED_GRANTING), 2);
	sched_lease(s, out[0], 1000);
	sched_delay(s, out[1], 5000);
	ck_assert_uint_eq(sched_count_state(s, SCHED_LEASED), 1);
	ck_assert_uint_eq(sched_count_state(s, SCHED_DELAYED), 1);
	ck_assert_uint_eq(sched_count_state(s, SCHED_GRANTING), 0);
	sched_cancelling(s, out[0]);
	ck_assert_uint_eq(sched_count_state(s, SCHED_CANCELLING), 1);
	sched_remove(s, out[0]);
	sched_requeue(s, out[1]);
	ck_assert_uint_eq(sched_count_state(s, SCHED_CANCELLING), 0);
	ck_assert_uint_eq(sched_count_state(s, SCHED_DELAYED), 0);
	ck_assert_uint_eq(sched_count_state(s, SCHED_QUEUED), 2);
	ck_assert_uint_eq(sched_count(s), 2);
	sched_free(s);
}
END_TEST

START_TEST(test_higher_priority_first_then_equal_jobs_take_turns)
{
	struct sched *s = sched_new();
	struct sched_task *out[8];
	struct sched_task t;

	sched_job_add(s, 1, 0);
	sched_job_add(s, 2, 10);
	sched_job_add(s, 3, 0);
	uint64_t ids[][2] = { { 31, 3 }, { 12, 1 }, { 11, 1 }, { 22, 2 }, { 21, 2 } };
	for (int i = 0; i < 5; i++) {
		t = mk(ids[i][0], ids[i][1], CPU);
		sched_task_add(s, &t);
	}
	ck_assert_uint_eq(sched_take(s, CPU, "w", 0, 5, NULL, NULL, out), 5);
	ck_assert_uint_eq(out[0]->id, 21); /* priority 10 first, in task order */
	ck_assert_uint_eq(out[1]->id, 22);
	ck_assert_uint_eq(out[2]->id, 11); /* then jobs 1 and 3 (priority 0) by turns */
	ck_assert_uint_eq(out[3]->id, 31);
	ck_assert_uint_eq(out[4]->id, 12);
	sched_free(s);
}
END_TEST

START_TEST(test_lease_renew_and_expiry)
{
	struct sched *s = sched_new();
	struct sched_task *out[4], *exp[4];
	struct sched_task t;

	sched_job_add(s, 1, 0);
	t = mk(5, 1, CPU);
	sched_task_add(s, &t);
	sched_take(s, CPU, "w1", 0, 1, NULL, NULL, out);
	sched_lease(s, out[0], 1000);
	ck_assert_int_eq(out[0]->state, SCHED_LEASED);
	ck_assert(!sched_renew(s, out[0], "w2", 1, 2000));   /* another worker */
	ck_assert(!sched_renew(s, out[0], "w1", 0, 2000));   /* a dead attempt */
	ck_assert(sched_renew(s, out[0], "w1", 1, 2000));
	ck_assert_uint_eq(sched_collect_expired(s, 1500, exp, 4), 0);
	ck_assert_uint_eq(sched_collect_expired(s, 2000, exp, 4), 1);
	sched_expiring(s, exp[0]);
	ck_assert_uint_eq(sched_collect_state(s, SCHED_EXPIRING, exp, 4), 1);
	sched_requeue(s, exp[0]);
	ck_assert_uint_eq(sched_queued(s, CPU), 1);
	/* the next grant is a new attempt: a new fencing token */
	ck_assert_uint_eq(sched_take(s, CPU, "w2", 0, 1, NULL, NULL, out), 1);
	ck_assert_uint_eq(out[0]->attempt, 2);
	sched_free(s);
}
END_TEST

START_TEST(test_remove_releases_job_when_last_task_goes)
{
	struct sched *s = sched_new();
	struct sched_task t;

	sched_job_add(s, 7, 0);
	t = mk(1, 7, CPU);
	struct sched_task *a = sched_task_add(s, &t);
	t = mk(2, 7, CPU);
	struct sched_task *b = sched_task_add(s, &t);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_null(sched_task_add(s, &t)); /* duplicate id */
	t = mk(3, 99, CPU);
	ck_assert_ptr_null(sched_task_add(s, &t)); /* unknown job */
	ck_assert_uint_eq(sched_job_find(s, 7)->live, 2);
	sched_remove(s, a);
	ck_assert_ptr_nonnull(sched_job_find(s, 7));
	ck_assert_uint_eq(sched_queued(s, CPU), 1);
	sched_remove(s, b);
	ck_assert_ptr_null(sched_job_find(s, 7));
	ck_assert_uint_eq(sched_count(s), 0);
	sched_free(s);
}
END_TEST

START_TEST(test_many_tasks_keep_heap_and_hash_consistent)
{
	struct sched *s = sched_new();
	struct sched_task t, **out = calloc(5000, sizeof(*out));

	sched_job_add(s, 1, 0);
	for (uint64_t i = 5000; i > 0; i--) {
		t = mk(i, 1, CPU);
		ck_assert_ptr_nonnull(sched_task_add(s, &t));
	}
	/* remove every third one from the middle of the heap */
	for (uint64_t i = 3; i <= 5000; i += 3)
		sched_remove(s, sched_task_find(s, i));
	size_t n = sched_take(s, CPU, "w", 0, 5000, NULL, NULL, out);
	ck_assert_uint_eq(n, 5000 - 5000 / 3);
	for (size_t i = 1; i < n; i++)
		ck_assert_uint_lt(out[i - 1]->id, out[i]->id);
	for (size_t i = 0; i < n; i++)
		ck_assert_ptr_eq(sched_task_find(s, out[i]->id), out[i]);
	free(out);
	sched_free(s);
}
END_TEST

START_TEST(test_collect_job_and_cancelling)
{
	struct sched *s = sched_new();
	struct sched_task t, *out[8];

	sched_job_add(s, 1, 0);
	sched_job_add(s, 2, 0);
	for (uint64_t i = 1; i <= 4; i++) {
		t = mk(i, i <= 2 ? 1 : 2, CPU);
		sched_task_add(s, &t);
	}
	sched_take(s, CPU, "w", 0, 1, NULL, NULL, out);
	sched_lease(s, out[0], 100);
	sched_cancelling(s, out[0]);
	ck_assert_uint_eq(sched_collect_job(s, 1, out, 8), 2);
	ck_assert_uint_eq(sched_collect_state(s, SCHED_CANCELLING, out, 8), 1);
	ck_assert_uint_eq(sched_collect_expired(s, 1000, out, 8), 0); /* only LEASED expire */
	sched_free(s);
}
END_TEST

START_TEST(test_job_concurrency_cap_holds)
{
	struct sched *s = sched_new();
	struct sched_task t, *out[8];

	struct sched_job *j = sched_job_add(s, 1, 0);
	j->max_running = 2;
	for (uint64_t i = 1; i <= 5; i++) {
		t = mk(i, 1, CPU);
		sched_task_add(s, &t);
	}
	ck_assert_uint_eq(sched_take(s, CPU, "w", 0, 8, NULL, NULL, out), 2);
	ck_assert_uint_eq(j->running, 2);
	ck_assert_uint_eq(sched_take(s, CPU, "w", 0, 8, NULL, NULL, out), 0);
	sched_remove(s, out[0]); /* one finished */
	ck_assert_uint_eq(j->running, 1);
	ck_assert_uint_eq(sched_take(s, CPU, "w", 0, 8, NULL, NULL, out), 1);
	sched_free(s);
}
END_TEST

START_TEST(test_big_job_does_not_starve_small_one)
{
	struct sched *s = sched_new();
	struct sched_task t, *out[64];
	size_t small = 0;

	sched_job_add(s, 1, 0); /* 1000 tasks, submitted first */
	sched_job_add(s, 2, 0); /* 10 tasks */
	for (uint64_t i = 1; i <= 1000; i++) {
		t = mk(i, 1, CPU);
		sched_task_add(s, &t);
	}
	for (uint64_t i = 1001; i <= 1010; i++) {
		t = mk(i, 2, CPU);
		sched_task_add(s, &t);
	}
	size_t n = sched_take(s, CPU, "w", 0, 20, NULL, NULL, out);
	ck_assert_uint_eq(n, 20);
	for (size_t i = 0; i < n; i++)
		small += out[i]->job_id == 2;
	ck_assert_uint_eq(small, 10); /* by turns: all ten of the small job in the first twenty */
	sched_free(s);
}
END_TEST

START_TEST(test_submitters_share_before_their_jobs_do)
{
	struct sched *s = sched_new();
	struct sched_task t, *out[16];
	size_t by_b = 0;

	/* ann submits three jobs, bob one, all of equal priority */
	for (uint64_t j = 1; j <= 4; j++)
		sched_job_add(s, j, 0)->submitter = sched_name_hash(j <= 3 ? "ann" : "bob");
	for (uint64_t i = 1; i <= 40; i++) {
		t = mk(i, 1 + (i - 1) / 10, CPU);
		sched_task_add(s, &t);
	}
	size_t n = sched_take(s, CPU, "w", 0, 8, NULL, NULL, out);
	ck_assert_uint_eq(n, 8);
	for (size_t i = 0; i < n; i++)
		by_b += out[i]->job_id == 4;
	ck_assert_uint_eq(by_b, 4); /* half of the turns, though ann has three jobs */
	/* and ann's turns went round her three jobs */
	ck_assert_uint_ne(out[0]->job_id, out[2]->job_id);
	sched_free(s);
}
END_TEST

/* The per-device count of leased tasks /metrics reads follows every way in
 * and out of SCHED_LEASED (lease, load as leased, expiry, requeue, delay,
 * cancel, removal), multi-device leases count on each device, and worker
 * ids are told apart by their whole text. */
START_TEST(test_device_leased_counts_follow_leases)
{
	struct sched *s = sched_new();
	struct sched_task *out[8], t;

	sched_job_add(s, 1, 0);
	for (uint64_t id = 1; id <= 6; id++) {
		t = mk(id, 1, CPU);
		sched_task_add(s, &t);
	}
	/* Loaded from the database as leased (a restart). */
	t = mk(7, 1, CPU);
	t.state = SCHED_LEASED;
	hf_strlcpy(t.worker_id, "w2", sizeof(t.worker_id));
	t.devices[0] = 5;
	t.n_devices = 1;
	sched_task_add(s, &t);
	ck_assert_uint_eq(sched_device_leased(s, "w2", CPU, 5), 1);

	ck_assert_uint_eq(sched_take(s, CPU, "w1", 0, 3, NULL, NULL, out), 3);
	/* Granting is not yet leased. */
	ck_assert_uint_eq(sched_device_leased(s, "w1", CPU, 0), 0);
	out[2]->devices[1] = 1; /* a two-device lease */
	out[2]->n_devices = 2;
	for (int i = 0; i < 3; i++)
		sched_lease(s, out[i], 1000);
	ck_assert_uint_eq(sched_device_leased(s, "w1", CPU, 0), 3);
	ck_assert_uint_eq(sched_device_leased(s, "w1", CPU, 1), 1);
	ck_assert_uint_eq(sched_device_leased(s, "w1", CUDA, 0), 0);
	ck_assert_uint_eq(sched_device_leased(s, "w10", CPU, 0), 0);
	ck_assert_uint_eq(sched_device_leased(s, "w", CPU, 0), 0);
	sched_renew(s, out[0], "w1", out[0]->attempt, 2000);
	ck_assert_uint_eq(sched_device_leased(s, "w1", CPU, 0), 3);

	sched_expiring(s, out[0]);
	ck_assert_uint_eq(sched_device_leased(s, "w1", CPU, 0), 2);
	sched_requeue(s, out[0]);
	ck_assert_uint_eq(sched_device_leased(s, "w1", CPU, 0), 2);
	sched_delay(s, out[1], 5000);
	ck_assert_uint_eq(sched_device_leased(s, "w1", CPU, 0), 1);
	sched_cancelling(s, out[2]);
	ck_assert_uint_eq(sched_device_leased(s, "w1", CPU, 0), 0);
	ck_assert_uint_eq(sched_device_leased(s, "w1", CPU, 1), 0);
	sched_remove(s, sched_task_find(s, 7));
	ck_assert_uint_eq(sched_device_leased(s, "w2", CPU, 5), 0);

	/* Many workers and devices: the buckets grow, every count stays. */
	sched_job_add(s, 2, 0);
	for (uint64_t id = 100; id < 2100; id++) {
		t = mk(id, 2, CUDA);
		sched_task_add(s, &t);
	}
	char wid[32];
	for (int i = 0; i < 2000; i++) {
		snprintf(wid, sizeof(wid), "worker-%d", i % 500);
		ck_assert_uint_eq(sched_take(s, CUDA, wid, (uint32_t)(i / 500), 1, NULL, NULL, out), 1);
		sched_lease(s, out[0], 1000);
	}
	for (int i = 0; i < 500; i++) {
		snprintf(wid, sizeof(wid), "worker-%d", i);
		for (uint32_t d = 0; d < 4; d++)
			ck_assert_uint_eq(sched_device_leased(s, wid, CUDA, d), 1);
	}
	for (uint64_t id = 100; id < 2100; id++)
		sched_remove(s, sched_task_find(s, id));
	ck_assert_uint_eq(sched_device_leased(s, "worker-7", CUDA, 2), 0);
	sched_free(s);
}
END_TEST

/* sched_set_queued_cb's callback runs for every way a task becomes queued,
 * once each, with the task already in its queue, and for no other move. */
static size_t queued_calls, queued_in_heap;

static void count_queued(void *arg, Hf__Backend backend)
{
	struct sched *s = arg;
	queued_calls++;
	queued_in_heap += sched_queued(s, backend) > 0;
}

START_TEST(test_on_queued_sees_every_way_into_the_queue)
{
	struct sched *s = sched_new();
	struct sched_task *out[8], t;

	queued_calls = queued_in_heap = 0;
	sched_set_queued_cb(s, count_queued, s);
	sched_job_add(s, 1, 0);
	for (uint64_t id = 1; id <= 4; id++) {
		t = mk(id, 1, CPU);
		sched_task_add(s, &t);
	}
	t = mk(5, 1, CPU);
	t.state = SCHED_LEASED; /* recovered as leased: not queued */
	sched_task_add(s, &t);
	ck_assert_uint_eq(queued_calls, 4);
	ck_assert_uint_eq(sched_take(s, CPU, "w1", 0, 3, NULL, NULL, out), 3);
	ck_assert_uint_eq(queued_calls, 4); /* taking is not queueing */
	sched_lease(s, out[0], 100);
	sched_expiring(s, out[0]);
	sched_requeue(s, out[0]);       /* an expired lease */
	sched_requeue(s, out[1]);       /* a grant that failed */
	sched_delay(s, out[2], 50);     /* backoff: not yet queued ... */
	ck_assert_uint_eq(queued_calls, 6);
	sched_requeue(s, out[2]);       /* ... until it is due */
	ck_assert_uint_eq(queued_calls, 7);
	ck_assert_uint_eq(queued_in_heap, 7);
	sched_remove(s, sched_task_find(s, 4));
	sched_set_queued_cb(s, NULL, NULL);
	t = mk(6, 1, CPU);
	sched_task_add(s, &t);
	ck_assert_uint_eq(queued_calls, 7);
	sched_free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("scheduler");
	TCase *tc = tcase_create("scheduler");
	tcase_add_test(tc, test_take_matches_backend_only);
	tcase_add_test(tc, test_state_counts_follow_transitions);
	tcase_add_test(tc, test_higher_priority_first_then_equal_jobs_take_turns);
	tcase_add_test(tc, test_job_concurrency_cap_holds);
	tcase_add_test(tc, test_big_job_does_not_starve_small_one);
	tcase_add_test(tc, test_submitters_share_before_their_jobs_do);
	tcase_add_test(tc, test_lease_renew_and_expiry);
	tcase_add_test(tc, test_remove_releases_job_when_last_task_goes);
	tcase_add_test(tc, test_many_tasks_keep_heap_and_hash_consistent);
	tcase_add_test(tc, test_collect_job_and_cancelling);
	tcase_add_test(tc, test_device_leased_counts_follow_leases);
	tcase_add_test(tc, test_on_queued_sees_every_way_into_the_queue);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
