/* SPDX-License-Identifier: MIT
 *
 * Unit tests for CPU detection (worker/hw-cpu.c) against the fixture trees
 * in tests/unit/fixtures/cpu-*: a two-socket x86 Xeon with AVX-512 and AMX,
 * an arm64 Neoverse-V1 in a memory-limited container, and a broken one.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hw-cpu.h"

#ifndef WORKER_FIXTURES
#error "WORKER_FIXTURES must name tests/unit/fixtures"
#endif

static struct hw_cpu detect(const char *tree, const char *machine)
{
	struct hw_cpu cpu;
	ck_assert_int_eq(hw_cpu_detect(tree, machine, &cpu), 0);
	return cpu;
}

static void assert_flags(const struct hw_cpu *cpu, const char *const *want, size_t n)
{
	ck_assert_uint_eq(cpu->n_flags, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(cpu->flags[i], want[i]);
}

START_TEST(test_x86_two_socket_xeon_topology_and_model)
{
	struct hw_cpu cpu = detect(WORKER_FIXTURES "/cpu-x86-xeon", "x86_64");

	ck_assert_str_eq(cpu.model, "Intel(R) Xeon(R) Platinum 8480+");
	ck_assert_uint_eq(cpu.sockets, 2);
	ck_assert_uint_eq(cpu.cores, 4);
	ck_assert_uint_eq(cpu.threads, 8);
	ck_assert_str_eq(cpu.arch, "x86_64");
}
END_TEST

START_TEST(test_x86_flags_are_the_inference_ones_in_fixed_order)
{
	static const char *const want[] = { "avx", "avx2", "avx512f", "avx512_bf16", "avx512_vnni",
					    "amx_tile", "amx_bf16", "amx_int8", "f16c", "fma",
					    "sse4_2" };
	struct hw_cpu cpu = detect(WORKER_FIXTURES "/cpu-x86-xeon", "x86_64");

	assert_flags(&cpu, want, sizeof(want) / sizeof(want[0]));
}
END_TEST

START_TEST(test_x86_memory_from_meminfo_and_numa_nodes_from_online_list)
{
	struct hw_cpu cpu = detect(WORKER_FIXTURES "/cpu-x86-xeon", "x86_64");

	/* memory.max of its cgroup is "max": no limit. */
	ck_assert_uint_eq(cpu.memory_bytes, UINT64_C(1056389120) * 1024);
	ck_assert_uint_eq(cpu.numa_nodes, 2);
}
END_TEST

START_TEST(test_arm64_neoverse_is_named_from_implementer_and_part)
{
	struct hw_cpu cpu = detect(WORKER_FIXTURES "/cpu-arm-neoverse", "aarch64");

	ck_assert_str_eq(cpu.model, "ARM Neoverse-V1");
	ck_assert_uint_eq(cpu.threads, 4);
	ck_assert_uint_eq(cpu.cores, 4);   /* no core ids, no "cpu cores": one per CPU */
	ck_assert_uint_eq(cpu.sockets, 1); /* no physical ids */
	ck_assert_uint_eq(cpu.numa_nodes, 1);
	ck_assert_str_eq(cpu.arch, "aarch64");
}
END_TEST

START_TEST(test_arm64_features_become_flags_without_sve2)
{
	static const char *const want[] = { "asimd", "sve", "bf16", "i8mm" };
	struct hw_cpu cpu = detect(WORKER_FIXTURES "/cpu-arm-neoverse", "aarch64");

	assert_flags(&cpu, want, sizeof(want) / sizeof(want[0]));
}
END_TEST

START_TEST(test_cgroup_limit_of_an_ancestor_caps_memory)
{
	struct hw_cpu cpu = detect(WORKER_FIXTURES "/cpu-arm-neoverse", "aarch64");

	/* MemTotal is 125 GiB, the container's own limit 16 GiB, its pod's
	 * parent 8 GiB: the smallest wins. */
	ck_assert_uint_eq(cpu.memory_bytes, UINT64_C(8) << 30);
}
END_TEST

START_TEST(test_broken_cpuinfo_gives_a_partial_description_not_a_failure)
{
	static const char *const want[] = { "avx512f" };
	struct hw_cpu cpu = detect(WORKER_FIXTURES "/cpu-broken", "x86_64");

	ck_assert_str_eq(cpu.model, "unknown");
	ck_assert_uint_eq(cpu.threads, 1); /* "processor : not-a-number" is not a CPU */
	ck_assert_uint_eq(cpu.cores, 1);
	ck_assert_uint_eq(cpu.sockets, 1);
	ck_assert_uint_eq(cpu.memory_bytes, 0); /* no meminfo */
	ck_assert_uint_eq(cpu.numa_nodes, 1);
	/* avx512f is there but "avx" is not: flags match whole words only. */
	assert_flags(&cpu, want, 1);
}
END_TEST

START_TEST(test_missing_tree_leaves_unknowns)
{
	struct hw_cpu cpu = detect(WORKER_FIXTURES "/no-such-tree", "riscv64");

	ck_assert_str_eq(cpu.model, "unknown");
	ck_assert_uint_eq(cpu.threads, 0);
	ck_assert_uint_eq(cpu.memory_bytes, 0);
	ck_assert_uint_eq(cpu.n_flags, 0);
	ck_assert_str_eq(cpu.arch, "riscv64");
	ck_assert_int_eq(hw_cpu_detect(NULL, NULL, &cpu), -EINVAL);
}
END_TEST

START_TEST(test_cpuinfo_without_processors_is_nodata)
{
	struct hw_cpu cpu = { 0 };

	ck_assert_int_eq(hw_cpuinfo_parse("model name : X\nflags : avx\n", &cpu), -ENODATA);
	ck_assert_int_eq(hw_cpuinfo_parse("", &cpu), -ENODATA);
}
END_TEST

START_TEST(test_cores_per_socket_used_when_there_are_no_core_ids)
{
	struct hw_cpu cpu = { 0 };
	const char *text = "processor : 0\nphysical id : 0\ncpu cores : 2\n\n"
			   "processor : 1\nphysical id : 0\ncpu cores : 2\n\n"
			   "processor : 2\nphysical id : 0\ncpu cores : 2\n\n"
			   "processor : 3\nphysical id : 0\ncpu cores : 2\n";

	ck_assert_int_eq(hw_cpuinfo_parse(text, &cpu), 0);
	ck_assert_uint_eq(cpu.threads, 4);
	ck_assert_uint_eq(cpu.sockets, 1);
	ck_assert_uint_eq(cpu.cores, 2);
}
END_TEST

START_TEST(test_cpulist_count_parses_ranges_and_refuses_nonsense)
{
	unsigned n = 0;

	ck_assert_int_eq(hw_cpulist_count("0-3,8,10-11\n", &n), 0);
	ck_assert_uint_eq(n, 7);
	ck_assert_int_eq(hw_cpulist_count("0", &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(hw_cpulist_count("3-1", &n), -EINVAL);
	ck_assert_int_eq(hw_cpulist_count("", &n), -EINVAL);
	ck_assert_int_eq(hw_cpulist_count("0-1x", &n), -EINVAL);
	ck_assert_int_eq(hw_cpulist_count("0,", &n), -EINVAL);
}
END_TEST

START_TEST(test_meminfo_needs_memtotal_in_kb)
{
	uint64_t bytes = 7;

	ck_assert_int_eq(hw_meminfo_parse("MemFree: 10 kB\nMemTotal: 2048 kB\n", &bytes), 0);
	ck_assert_uint_eq(bytes, 2048 * 1024);
	ck_assert_int_eq(hw_meminfo_parse("MemFree: 10 kB\n", &bytes), -ENODATA);
	ck_assert_int_eq(hw_meminfo_parse("MemTotal: lots\n", &bytes), -ENODATA);
}
END_TEST

START_TEST(test_unknown_arm_parts_still_name_the_vendor)
{
	char buf[64];

	hw_arm_cpu_name(0x41, 0xd4f, buf, sizeof(buf));
	ck_assert_str_eq(buf, "ARM Neoverse-V2");
	hw_arm_cpu_name(0x41, 0xfff, buf, sizeof(buf));
	ck_assert_str_eq(buf, "ARM part 0xfff");
	hw_arm_cpu_name(0x99, 0x001, buf, sizeof(buf));
	ck_assert_str_eq(buf, "arm64 implementer 0x99 part 0x001");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_cpu");
	TCase *tc = tcase_create("cpu");

	tcase_add_test(tc, test_x86_two_socket_xeon_topology_and_model);
	tcase_add_test(tc, test_x86_flags_are_the_inference_ones_in_fixed_order);
	tcase_add_test(tc, test_x86_memory_from_meminfo_and_numa_nodes_from_online_list);
	tcase_add_test(tc, test_arm64_neoverse_is_named_from_implementer_and_part);
	tcase_add_test(tc, test_arm64_features_become_flags_without_sve2);
	tcase_add_test(tc, test_cgroup_limit_of_an_ancestor_caps_memory);
	tcase_add_test(tc, test_broken_cpuinfo_gives_a_partial_description_not_a_failure);
	tcase_add_test(tc, test_missing_tree_leaves_unknowns);
	tcase_add_test(tc, test_cpuinfo_without_processors_is_nodata);
	tcase_add_test(tc, test_cores_per_socket_used_when_there_are_no_core_ids);
	tcase_add_test(tc, test_cpulist_count_parses_ranges_and_refuses_nonsense);
	tcase_add_test(tc, test_meminfo_needs_memtotal_in_kb);
	tcase_add_test(tc, test_unknown_arm_parts_still_name_the_vendor);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
