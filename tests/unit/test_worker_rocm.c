/* SPDX-License-Identifier: MIT
 *
 * Tests of AMD ROCm detection (worker/hw-rocm.c) against sysfs fixture
 * trees in tests/unit/fixtures: rocm-mi300x (one MI300X, gfx942, driver
 * from /sys/module/amdgpu/version, MI300-style hwmon without an edge
 * sensor), rocm-two-gpus (a CPU node and two MI210s, one of them with its
 * memory in two banks and no telemetry files; in-tree driver), rocm-no-kfd-
 * node (a GPU in the topology but no /dev/kfd) and rocm-cpu-only.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw-rocm.h"
#include "hw.h"

#define TREE(name) WORKER_FIXTURES "/" name

static struct hw_inventory *inv;
static struct hw_backend_status st;
static struct hw_rocm *rocm;

static void setup(void)
{
	inv = calloc(1, sizeof(*inv));
	ck_assert_ptr_nonnull(inv);
	memset(&st, 0, sizeof(st));
	rocm = NULL;
}

static void teardown(void)
{
	hw_rocm_close(rocm);
	free(inv);
}

static const struct hw_device *device(unsigned index)
{
	const struct hw_device *d = hw_inventory_find(inv, HF__BACKEND__BACKEND_ROCM, index);

	ck_assert_msg(d != NULL, "no device rocm:%u", index);
	return d;
}

static void assert_attr(const struct hw_device *d, const char *key, const char *want)
{
	const char *v = hw_device_attr(d, key);

	ck_assert_msg(v != NULL, "rocm:%u has no attribute %s", d->index, key);
	ck_assert_str_eq(v, want);
}

START_TEST(test_mi300x_is_rocm_0_gfx942_with_its_memory_and_driver)
{
	const struct hw_device *d;

	ck_assert_int_eq(hw_rocm_probe(TREE("rocm-mi300x"), inv, &st, &rocm), 0);
	ck_assert(st.present);
	ck_assert_str_eq(st.driver, "6.10.5");
	ck_assert_ptr_nonnull(rocm);
	ck_assert_uint_eq(inv->n_devices, 1);
	d = device(0);
	ck_assert_str_eq(d->name, "AMD Instinct MI300X"); /* by PCI id: no product_name */
	ck_assert_str_eq(d->arch, "gfx942");
	ck_assert_uint_eq(d->memory_bytes, UINT64_C(206158430208));
	ck_assert_str_eq(d->uuid, "GPU-58678bff3ecdc100");
	ck_assert_str_eq(d->driver, "6.10.5");
	ck_assert_int_eq(d->visible_index, 0);
	assert_attr(d, "gfx_target", "gfx942");
	assert_attr(d, "compute_units", "304");
	assert_attr(d, "kfd_node", "1");
	assert_attr(d, "pci_device", "0x74a1");
}
END_TEST

START_TEST(test_cpu_nodes_are_skipped_and_gpus_numbered_in_node_order)
{
	const struct hw_device *d0, *d1;

	ck_assert_int_eq(hw_rocm_probe(TREE("rocm-two-gpus"), inv, &st, &rocm), 0);
	ck_assert(st.present);
	ck_assert_uint_eq(inv->n_devices, 2);
	d0 = device(0);
	d1 = device(1);
	assert_attr(d0, "kfd_node", "1");
	assert_attr(d1, "kfd_node", "2");
	ck_assert_str_eq(d0->name, "AMD Instinct MI210"); /* its product_name */
	ck_assert_str_eq(d1->name, "AMD Instinct MI210"); /* its PCI id */
	ck_assert_str_eq(d0->arch, "gfx90a");
	ck_assert_str_eq(d0->uuid, "GPU-9a3298afb5ac71c7");
	ck_assert_str_eq(d1->uuid, ""); /* unique_id 0: none */
	ck_assert_uint_eq(d0->memory_bytes, UINT64_C(68702699520));
	/* Public and private frame-buffer banks together. */
	ck_assert_uint_eq(d1->memory_bytes, UINT64_C(34359738368) + UINT64_C(34343092224));
	ck_assert_int_eq(d1->visible_index, 1);
	/* No /sys/module/amdgpu/version: the in-tree driver of this kernel. */
	ck_assert_str_eq(d0->driver, "amdgpu in kernel 6.8.0-49-generic");
}
END_TEST

START_TEST(test_gfx_target_versions_are_named_as_rocm_names_them)
{
	char buf[32];

	ck_assert_int_eq(hw_rocm_gfx_name(90402, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "gfx942");
	ck_assert_int_eq(hw_rocm_gfx_name(90010, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "gfx90a");
	ck_assert_int_eq(hw_rocm_gfx_name(110000, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "gfx1100");
	ck_assert_int_eq(hw_rocm_gfx_name(100300, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "gfx1030");
	ck_assert_int_eq(hw_rocm_gfx_name(0, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(hw_rocm_gfx_name(90016, buf, sizeof(buf)), -EINVAL);
}
END_TEST

START_TEST(test_no_kfd_topology_is_absent_with_reason)
{
	ck_assert_int_eq(hw_rocm_probe(TREE("cpu-x86-xeon"), inv, &st, &rocm), 0);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "no KFD topology at /sys/class/kfd/kfd/topology/nodes "
				    "(amdgpu driver not loaded)");
	ck_assert_ptr_null(rocm);
	ck_assert_uint_eq(inv->n_devices, 0);
}
END_TEST

START_TEST(test_topology_with_only_cpu_nodes_is_absent)
{
	ck_assert_int_eq(hw_rocm_probe(TREE("rocm-cpu-only"), inv, &st, &rocm), 0);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "the KFD topology has no GPU node");
	ck_assert_uint_eq(inv->n_devices, 0);
}
END_TEST

START_TEST(test_gpu_without_dev_kfd_is_absent_and_offers_nothing)
{
	ck_assert_int_eq(hw_rocm_probe(TREE("rocm-no-kfd-node"), inv, &st, &rocm), 0);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "no device node /dev/kfd (in a container, pass /dev/kfd and "
				    "/dev/dri through)");
	ck_assert_ptr_null(rocm);
	ck_assert_uint_eq(inv->n_devices, 0);
}
END_TEST

START_TEST(test_telemetry_comes_from_busy_percent_vram_and_hwmon)
{
	struct hw_telemetry t;

	ck_assert_int_eq(hw_rocm_probe(TREE("rocm-mi300x"), inv, &st, &rocm), 0);
	ck_assert_int_eq(hw_rocm_sample(rocm, 0, &t), 0);
	ck_assert_uint_eq(t.backend, HF__BACKEND__BACKEND_ROCM);
	ck_assert_float_eq(t.utilization_pct, 42.0f);
	ck_assert_uint_eq(t.memory_used_bytes, UINT64_C(1073741824));
	ck_assert_float_eq(t.temperature_c, 45.0f); /* junction: MI300 has no edge sensor */
	ck_assert_float_eq(t.power_w, 350.0f);
	ck_assert_int_eq(hw_rocm_sample(rocm, 1, &t), -ENOENT);
}
END_TEST

START_TEST(test_telemetry_files_that_are_missing_read_as_unavailable)
{
	struct hw_telemetry t;

	ck_assert_int_eq(hw_rocm_probe(TREE("rocm-two-gpus"), inv, &st, &rocm), 0);
	ck_assert_int_eq(hw_rocm_sample(rocm, 0, &t), 0);
	ck_assert_float_eq(t.temperature_c, 38.0f); /* edge first */
	ck_assert_float_eq(t.power_w, 42.0f);
	ck_assert_int_eq(hw_rocm_sample(rocm, 1, &t), 0);
	ck_assert_float_lt(t.utilization_pct, 0.0f);
	ck_assert_uint_eq(t.memory_used_bytes, 0);
	ck_assert_float_lt(t.temperature_c, 0.0f);
	ck_assert_float_lt(t.power_w, 0.0f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_rocm");
	TCase *tc = tcase_create("rocm");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_mi300x_is_rocm_0_gfx942_with_its_memory_and_driver);
	tcase_add_test(tc, test_cpu_nodes_are_skipped_and_gpus_numbered_in_node_order);
	tcase_add_test(tc, test_gfx_target_versions_are_named_as_rocm_names_them);
	tcase_add_test(tc, test_no_kfd_topology_is_absent_with_reason);
	tcase_add_test(tc, test_topology_with_only_cpu_nodes_is_absent);
	tcase_add_test(tc, test_gpu_without_dev_kfd_is_absent_and_offers_nothing);
	tcase_add_test(tc, test_telemetry_comes_from_busy_percent_vram_and_hwmon);
	tcase_add_test(tc, test_telemetry_files_that_are_missing_read_as_unavailable);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
