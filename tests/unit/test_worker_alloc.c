/* SPDX-License-Identifier: MIT
 *
 * Tests of device allocation (worker/alloc.c): the free slots a device
 * offers and whether an assignment may start, with what runs on each device
 * given by a table instead of an executor.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hw.h"

static struct hw_inventory *inv;
static struct {
	Hf__Backend b;
	unsigned index;
	struct alloc_use use;
} busy[8];
static size_t n_busy;
static char reason[384];

static void use_cb(void *arg, Hf__Backend b, unsigned index, struct alloc_use *ret)
{
	(void)arg;
	*ret = (struct alloc_use){ 0, 0 };
	for (size_t i = 0; i < n_busy; i++)
		if (busy[i].b == b && busy[i].index == index)
			*ret = busy[i].use;
}

static void set_busy(Hf__Backend b, unsigned index, unsigned tasks, unsigned benchmarks)
{
	busy[n_busy].b = b;
	busy[n_busy].index = index;
	busy[n_busy].use = (struct alloc_use){ tasks, benchmarks };
	n_busy++;
}

static struct hw_device *add(Hf__Backend b, unsigned index, unsigned slots, bool shared)
{
	struct hw_device *d = hw_inventory_device_add(inv, b, index);

	ck_assert_ptr_nonnull(d);
	d->slots = slots;
	d->shared = shared;
	return d;
}

static void setup(void)
{
	inv = calloc(1, sizeof(*inv));
	ck_assert_ptr_nonnull(inv);
	n_busy = 0;
	add(HF__BACKEND__BACKEND_CPU, 0, 4, true);
	add(HF__BACKEND__BACKEND_CUDA, 0, 1, false);
	add(HF__BACKEND__BACKEND_CUDA, 1, 1, false);
	add(HF__BACKEND__BACKEND_CUDA, 2, 2, true);
	hw_device_attr_set(add(HF__BACKEND__BACKEND_CUDA, 8, 1, false), "mig", "enabled");
}

static void teardown(void)
{
	free(inv);
}

static Hf__Assignment task(Hf__Backend b, uint32_t index, Hf__TaskKind kind)
{
	Hf__Assignment a = HF__ASSIGNMENT__INIT;

	a.task_id = 1;
	a.attempt = 1;
	a.backend = b;
	a.device_index = index;
	a.kind = kind;
	return a;
}

static int admit(const Hf__Assignment *a, size_t *ret_n, const struct hw_device **devs)
{
	reason[0] = '\0';
	return alloc_admit(inv, a, use_cb, NULL, devs, ret_n, reason, sizeof(reason));
}

START_TEST(test_free_slots_follow_sharing_and_benchmarks)
{
	struct alloc_use idle = { 0, 0 }, one = { 1, 0 }, bench = { 1, 1 };
	const struct hw_device *cpu = &inv->devices[0], *gpu = &inv->devices[1];
	struct hw_device odd = *gpu;

	ck_assert_uint_eq(alloc_free_slots(cpu, &idle), 4);
	ck_assert_uint_eq(alloc_free_slots(cpu, &one), 3);
	ck_assert_uint_eq(alloc_free_slots(cpu, &bench), 0); /* a benchmark has it alone */
	ck_assert_uint_eq(alloc_free_slots(gpu, &idle), 1);
	ck_assert_uint_eq(alloc_free_slots(gpu, &one), 0);
	odd.slots = 3; /* not shared: one at a time whatever its slots say */
	ck_assert_uint_eq(alloc_free_slots(&odd, &idle), 1);
}
END_TEST

START_TEST(test_a_free_device_admits_a_task_and_names_it)
{
	Hf__Assignment a = task(HF__BACKEND__BACKEND_CUDA, 1, HF__TASK_KIND__KIND_TEST);
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n = 0;

	ck_assert_int_eq(admit(&a, &n, devs), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_eq(devs[0], &inv->devices[2]);
}
END_TEST

START_TEST(test_an_unknown_device_is_refused)
{
	Hf__Assignment a = task(HF__BACKEND__BACKEND_ROCM, 0, HF__TASK_KIND__KIND_TEST);
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n;

	ck_assert_int_eq(admit(&a, &n, devs), -ENODEV);
	ck_assert_str_eq(reason, "worker has no device rocm:0");
}
END_TEST

START_TEST(test_a_second_task_on_an_unshared_device_is_refused_saying_so)
{
	Hf__Assignment a = task(HF__BACKEND__BACKEND_CUDA, 0, HF__TASK_KIND__KIND_TEST);
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n;

	set_busy(HF__BACKEND__BACKEND_CUDA, 0, 1, 0);
	ck_assert_int_eq(admit(&a, &n, devs), -EBUSY);
	ck_assert_str_eq(reason, "device cuda:0 already runs a task and is not shared (see "
				 "devices.shared)");
}
END_TEST

START_TEST(test_a_shared_device_takes_tasks_up_to_its_slots)
{
	Hf__Assignment a = task(HF__BACKEND__BACKEND_CUDA, 2, HF__TASK_KIND__KIND_TEST);
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n;

	set_busy(HF__BACKEND__BACKEND_CUDA, 2, 1, 0);
	ck_assert_int_eq(admit(&a, &n, devs), 0);
	busy[0].use.tasks = 2;
	ck_assert_int_eq(admit(&a, &n, devs), -EBUSY);
	ck_assert_str_eq(reason, "worker has no free slot on device cuda:2");
}
END_TEST

START_TEST(test_a_benchmark_needs_its_device_alone)
{
	Hf__Assignment a = task(HF__BACKEND__BACKEND_CPU, 0, HF__TASK_KIND__KIND_BENCHMARK);
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n;

	ck_assert_int_eq(admit(&a, &n, devs), 0);
	set_busy(HF__BACKEND__BACKEND_CPU, 0, 1, 0);
	ck_assert_int_eq(admit(&a, &n, devs), -EBUSY);
	ck_assert_str_eq(reason, "device cpu:0 runs 1 task; a benchmark needs it alone");
}
END_TEST

START_TEST(test_nothing_joins_a_running_benchmark)
{
	Hf__Assignment a = task(HF__BACKEND__BACKEND_CPU, 0, HF__TASK_KIND__KIND_TEST);
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n;

	set_busy(HF__BACKEND__BACKEND_CPU, 0, 1, 1);
	ck_assert_int_eq(admit(&a, &n, devs), -EBUSY);
	ck_assert_str_eq(reason, "device cpu:0 runs a benchmark, which has it alone");
}
END_TEST

START_TEST(test_a_task_of_several_devices_needs_each_of_them)
{
	uint32_t idx[] = { 1, 0 };
	Hf__Assignment a = task(HF__BACKEND__BACKEND_CUDA, 1, HF__TASK_KIND__KIND_TEST);
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n = 0;

	a.n_device_indices = 2;
	a.device_indices = idx;
	ck_assert_int_eq(admit(&a, &n, devs), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(devs[0]->index, 1);
	ck_assert_uint_eq(devs[1]->index, 0);
	set_busy(HF__BACKEND__BACKEND_CUDA, 0, 1, 0);
	ck_assert_int_eq(admit(&a, &n, devs), -EBUSY);
	ck_assert_str_eq(reason, "device cuda:0 already runs a task and is not shared (see "
				 "devices.shared)");
}
END_TEST

START_TEST(test_malformed_device_lists_are_refused)
{
	uint32_t twice[] = { 1, 1 }, other[] = { 0, 1 }, many[ALLOC_MAX_DEVICES + 1] = { 0 };
	Hf__Assignment a = task(HF__BACKEND__BACKEND_CUDA, 1, HF__TASK_KIND__KIND_TEST);
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n;

	a.n_device_indices = 2;
	a.device_indices = twice;
	ck_assert_int_eq(admit(&a, &n, devs), -EINVAL);
	ck_assert_str_eq(reason, "assignment names device cuda:1 twice");
	a.device_indices = other;
	ck_assert_int_eq(admit(&a, &n, devs), -EINVAL);
	ck_assert_str_eq(reason, "assignment is inconsistent: device_index 1 but device_indices "
				 "starts with 0");
	a.device_index = 0;
	a.n_device_indices = ALLOC_MAX_DEVICES + 1;
	a.device_indices = many;
	ck_assert_int_eq(admit(&a, &n, devs), -EINVAL);
	ck_assert_str_eq(reason, "assignment names 17 devices; a worker runs tasks of at most 16");
}
END_TEST

START_TEST(test_a_mig_instance_runs_alone_not_as_one_of_several_devices)
{
	uint32_t idx[] = { 8, 0 };
	Hf__Assignment a = task(HF__BACKEND__BACKEND_CUDA, 8, HF__TASK_KIND__KIND_TEST);
	const struct hw_device *devs[ALLOC_MAX_DEVICES];
	size_t n;

	ck_assert_int_eq(admit(&a, &n, devs), 0);
	a.n_device_indices = 2;
	a.device_indices = idx;
	ck_assert_int_eq(admit(&a, &n, devs), -EINVAL);
	ck_assert_str_eq(reason, "device cuda:8 is a MIG instance, and CUDA uses only one MIG "
				 "instance per process: it cannot be one of 2 devices of a task");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_alloc");
	TCase *tc = tcase_create("alloc");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_free_slots_follow_sharing_and_benchmarks);
	tcase_add_test(tc, test_a_free_device_admits_a_task_and_names_it);
	tcase_add_test(tc, test_an_unknown_device_is_refused);
	tcase_add_test(tc, test_a_second_task_on_an_unshared_device_is_refused_saying_so);
	tcase_add_test(tc, test_a_shared_device_takes_tasks_up_to_its_slots);
	tcase_add_test(tc, test_a_benchmark_needs_its_device_alone);
	tcase_add_test(tc, test_nothing_joins_a_running_benchmark);
	tcase_add_test(tc, test_a_task_of_several_devices_needs_each_of_them);
	tcase_add_test(tc, test_malformed_device_lists_are_refused);
	tcase_add_test(tc, test_a_mig_instance_runs_alone_not_as_one_of_several_devices);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
