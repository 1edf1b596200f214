/* SPDX-License-Identifier: MIT
 *
 * Tests of the openvino backend (worker/hw-intel.c): the devices the
 * OpenVINO runtime reports, through the stand-in OpenVINO C library built by
 * the tests (tests/unit/ov-standin, same dlopen path as libopenvino_c.so)
 * with the scenarios in tests/unit/fixtures/openvino, enriched from the
 * sysfs trees intel-arc-npu (a Meteor Lake iGPU on i915, an Arc A770 on xe,
 * an AMD card, the NPU on intel_vpu with its /dev/accel node) and
 * intel-npu-no-node (an NPU without its node).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw-intel.h"
#include "hw.h"

#ifndef OV_STANDIN
#error "OV_STANDIN must name the stand-in OpenVINO library"
#endif

#define TREE(name) WORKER_FIXTURES "/" name
#define SCENARIO(name) WORKER_FIXTURES "/openvino/" name

static struct hw_inventory *inv;
static struct hw_backend_status st;
static struct hw_cpu cpu;

static void setup(void)
{
	inv = calloc(1, sizeof(*inv));
	ck_assert_ptr_nonnull(inv);
	memset(&st, 0, sizeof(st));
	memset(&cpu, 0, sizeof(cpu));
	cpu.memory_bytes = UINT64_C(33554432000);
}

static void teardown(void)
{
	free(inv);
}

static void probe(const char *root, const char *library, const char *scenario)
{
	if (scenario)
		setenv("HFLEET_OV_STANDIN", scenario, 1);
	ck_assert_int_eq(hw_intel_probe(root, library, &cpu, inv, &st), 0);
}

static const struct hw_device *device(unsigned index)
{
	const struct hw_device *d = hw_inventory_find(inv, HF__BACKEND__BACKEND_OPENVINO, index);

	ck_assert_msg(d != NULL, "no device openvino:%u", index);
	return d;
}

static void assert_attr(const struct hw_device *d, const char *key, const char *want)
{
	const char *v = hw_device_attr(d, key);

	if (!want) {
		ck_assert_msg(v == NULL, "openvino:%u has attribute %s=%s", d->index, key, v);
		return;
	}
	ck_assert_msg(v != NULL, "openvino:%u has no attribute %s", d->index, key);
	ck_assert_str_eq(v, want);
}

START_TEST(test_openvino_devices_come_in_its_order_enriched_from_sysfs)
{
	const struct hw_device *d;

	probe(TREE("intel-arc-npu"), OV_STANDIN, SCENARIO("core-ultra-arc.ini"));
	ck_assert(st.present);
	ck_assert_str_eq(st.driver, "2024.4.0-16579-c3152d32c9c-releases/2024/4");
	ck_assert_str_eq(st.library, OV_STANDIN);
	ck_assert_uint_eq(inv->n_devices, 4);

	d = device(0);
	assert_attr(d, "ov_device", "CPU");
	ck_assert_str_eq(d->name, "Intel(R) Core(TM) Ultra 7 155H");
	ck_assert_str_eq(d->arch, "intel64");
	ck_assert_uint_eq(d->memory_bytes, cpu.memory_bytes);
	ck_assert_int_eq(d->visible_index, -1);

	d = device(1); /* the iGPU: first in PCI order (0000:00:02.0) */
	assert_attr(d, "ov_device", "GPU.0");
	assert_attr(d, "kernel_driver", "i915");
	assert_attr(d, "pci_device", "0x7d55");
	assert_attr(d, "device_type", "integrated");
	ck_assert_str_eq(d->arch, "v12.71.4");
	ck_assert_uint_eq(d->memory_bytes, UINT64_C(15647768576));
	ck_assert_int_eq(d->visible_index, 0);
	ck_assert_str_eq(d->driver, "i915 in kernel 6.11.0-19-generic");

	d = device(2); /* the Arc A770 on xe (0000:03:00.0) */
	assert_attr(d, "ov_device", "GPU.1");
	assert_attr(d, "kernel_driver", "xe");
	assert_attr(d, "pci_slot", "0000:03:00.0");
	ck_assert_str_eq(d->name, "Intel(R) Arc(TM) A770 Graphics (dGPU)");
	ck_assert_str_eq(d->arch, "v12.55.8");
	ck_assert_uint_eq(d->memory_bytes, UINT64_C(16225243136));
	ck_assert_int_eq(d->visible_index, 1);

	d = device(3);
	assert_attr(d, "ov_device", "NPU");
	assert_attr(d, "kernel_driver", "intel_vpu");
	assert_attr(d, "pci_device", "0x7d1d");
	ck_assert_str_eq(d->name, "Intel(R) AI Boost");
	ck_assert_str_eq(d->arch, "3720");
	ck_assert_int_eq(d->visible_index, -1);
}
END_TEST

START_TEST(test_gpus_sysfs_cannot_match_are_offered_without_level_zero_index)
{
	/* OpenVINO reports two GPUs; this tree has none. */
	probe(TREE("intel-npu-no-node"), OV_STANDIN, SCENARIO("core-ultra-arc.ini"));
	ck_assert(st.present);
	ck_assert_int_eq(device(1)->visible_index, -1);
	ck_assert_int_eq(device(2)->visible_index, -1);
	assert_attr(device(2), "kernel_driver", NULL);
	ck_assert_str_eq(device(2)->driver, "");
}
END_TEST

START_TEST(test_missing_runtime_is_absent_and_says_what_sysfs_shows)
{
	probe(TREE("intel-arc-npu"), "/nonexistent/libopenvino_c.so", NULL);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "library \"/nonexistent/libopenvino_c.so\" not found; sysfs "
				    "shows 2 Intel GPUs (i915, xe) and 1 Intel NPU");
	ck_assert_uint_eq(inv->n_devices, 0);
}
END_TEST

START_TEST(test_npu_without_device_node_is_named_in_the_reason)
{
	probe(TREE("intel-npu-no-node"), "/nonexistent/libopenvino_c.so", NULL);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "library \"/nonexistent/libopenvino_c.so\" not found; sysfs "
				    "shows 0 Intel GPUs and 1 Intel NPU, with no device node under "
				    "/dev/accel");
}
END_TEST

START_TEST(test_nothing_intel_in_sysfs_gives_the_plain_reason)
{
	probe(TREE("cpu-x86-xeon"), "/nonexistent/libopenvino_c.so", NULL);
	ck_assert_str_eq(st.reason, "library \"/nonexistent/libopenvino_c.so\" not found");
}
END_TEST

START_TEST(test_core_that_cannot_be_created_is_absent)
{
	probe(TREE("cpu-x86-xeon"), OV_STANDIN, SCENARIO("create-fails.ini"));
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "ov_core_create failed: General error");
	ck_assert_uint_eq(inv->n_devices, 0);
}
END_TEST

START_TEST(test_a_library_that_is_not_openvino_is_absent)
{
	char want[512];

	probe(TREE("cpu-x86-xeon"), NVML_STANDIN, NULL);
	ck_assert(!st.present);
	snprintf(want, sizeof(want),
		 "library \"%s\" does not export ov_core_create (not OpenVINO's C API)",
		 NVML_STANDIN);
	ck_assert_str_eq(st.reason, want);
}
END_TEST

START_TEST(test_device_without_properties_is_named_as_openvino_names_it)
{
	probe(TREE("cpu-x86-xeon"), OV_STANDIN, SCENARIO("cpu-only.ini"));
	ck_assert(st.present);
	ck_assert_uint_eq(inv->n_devices, 1);
	ck_assert_str_eq(device(0)->name, "CPU");
	ck_assert_uint_eq(device(0)->memory_bytes, cpu.memory_bytes);
	ck_assert_str_eq(st.driver, "2025.0.0-17942-1f68be9f594-releases/2025/0");
}
END_TEST

START_TEST(test_gpu_architecture_loses_its_vendor_prefix)
{
	char buf[64];

	hw_intel_arch_name("GPU: vendor=0x8086 arch=v12.55.8", buf, sizeof(buf));
	ck_assert_str_eq(buf, "v12.55.8");
	hw_intel_arch_name("3720", buf, sizeof(buf));
	ck_assert_str_eq(buf, "3720");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_intel");
	TCase *tc = tcase_create("intel");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_openvino_devices_come_in_its_order_enriched_from_sysfs);
	tcase_add_test(tc, test_gpus_sysfs_cannot_match_are_offered_without_level_zero_index);
	tcase_add_test(tc, test_missing_runtime_is_absent_and_says_what_sysfs_shows);
	tcase_add_test(tc, test_npu_without_device_node_is_named_in_the_reason);
	tcase_add_test(tc, test_nothing_intel_in_sysfs_gives_the_plain_reason);
	tcase_add_test(tc, test_core_that_cannot_be_created_is_absent);
	tcase_add_test(tc, test_a_library_that_is_not_openvino_is_absent);
	tcase_add_test(tc, test_device_without_properties_is_named_as_openvino_names_it);
	tcase_add_test(tc, test_gpu_architecture_loses_its_vendor_prefix);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
