/* SPDX-License-Identifier: MIT
 *
 * Tests of NVIDIA detection through NVML (worker/hw-nvml.c).  The library
 * loaded is the stand-in NVML built by the tests (tests/unit/nvml-standin),
 * through the same dlopen path as libnvidia-ml.so.1, answering from the
 * scenarios in tests/unit/fixtures/nvml: one H100, eight H100s, MIG, the
 * driver not loaded, no GPU; plus a stand-in that lacks an NVML symbol and a
 * library that does not exist.  Each test runs in its own process (Check's
 * fork mode), so the scenario variable and the loaded library never leak
 * from one test to the next.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw-nvml.h"
#include "hw.h"

#ifndef NVML_STANDIN
#error "NVML_STANDIN must name the stand-in NVML library"
#endif

#define SCENARIO(name) WORKER_FIXTURES "/nvml/" name

static struct hw_inventory *inv;
static struct hw_backend_status st;
static struct hw_nvml *nvml;

static void setup(void)
{
	inv = calloc(1, sizeof(*inv));
	ck_assert_ptr_nonnull(inv);
	memset(&st, 0, sizeof(st));
	st.backend = HF__BACKEND__BACKEND_CUDA;
	nvml = NULL;
}

static void teardown(void)
{
	hw_nvml_close(nvml);
	free(inv);
}

static void probe(const char *library, const char *scenario)
{
	if (scenario)
		setenv("HFLEET_NVML_STANDIN", scenario, 1);
	ck_assert_int_eq(hw_nvml_probe(library, inv, &st, &nvml), 0);
}

static const struct hw_device *device(unsigned index)
{
	const struct hw_device *d = hw_inventory_find(inv, HF__BACKEND__BACKEND_CUDA, index);

	ck_assert_msg(d != NULL, "no device cuda:%u", index);
	return d;
}

static void assert_attr(const struct hw_device *d, const char *key, const char *want)
{
	const char *v = hw_device_attr(d, key);

	ck_assert_msg(v != NULL, "cuda:%u has no attribute %s", d->index, key);
	ck_assert_str_eq(v, want);
}

/* Unmatched nvmlInit calls in the stand-in; the caller keeps it loaded. */
static int standin_inits(void *handle)
{
	int (*inits)(void) = (int (*)(void))dlsym(handle, "hfleet_nvml_standin_inits");

	ck_assert_ptr_nonnull(inits);
	return inits();
}

START_TEST(test_one_h100_is_cuda_0_with_uuid_memory_and_compute_capability)
{
	const struct hw_device *d;

	probe(NVML_STANDIN, SCENARIO("one-h100.ini"));
	ck_assert(st.present);
	ck_assert_str_eq(st.reason, "");
	ck_assert_str_eq(st.driver, "570.124.06 (CUDA 12.8)");
	ck_assert_str_eq(st.library, NVML_STANDIN);
	ck_assert_ptr_nonnull(nvml);
	ck_assert_uint_eq(inv->n_devices, 1);
	d = device(0);
	ck_assert_str_eq(d->name, "NVIDIA H100 80GB HBM3");
	ck_assert_str_eq(d->uuid, "GPU-4c2a7f1e-9b3d-5e8a-a1c6-0f2d3b4e5a6c");
	ck_assert_uint_eq(d->memory_bytes, UINT64_C(85520809984));
	ck_assert_str_eq(d->arch, "sm_90");
	ck_assert_str_eq(d->driver, "570.124.06");
	assert_attr(d, "compute_capability", "9.0");
	assert_attr(d, "cuda_driver", "12.8");
	assert_attr(d, "mig", "disabled");
	/* One GPU: no other to reach, so NVML was not asked about NVLink. */
	ck_assert_ptr_null(hw_device_attr(d, "nvlink_peers"));
	ck_assert_uint_eq(d->slots, 1);
}
END_TEST

START_TEST(test_eight_gpus_keep_nvml_order_and_their_own_uuids)
{
	char want[64];

	probe(NVML_STANDIN, SCENARIO("eight-h100.ini"));
	ck_assert(st.present);
	ck_assert_uint_eq(inv->n_devices, 8);
	for (unsigned i = 0; i < 8; i++) {
		const struct hw_device *d = &inv->devices[i];
		snprintf(want, sizeof(want), "GPU-%08x-0000-4000-8000-0000000000%02u", 0x1000 + i, i);
		ck_assert_uint_eq(d->backend, HF__BACKEND__BACKEND_CUDA);
		ck_assert_uint_eq(d->index, i);
		ck_assert_str_eq(d->uuid, want);
	}
	/* An HGX board: every GPU reaches the seven others over NVSwitch. */
	ck_assert_str_eq(hw_device_attr(&inv->devices[0], "nvlink_peers"), "1,2,3,4,5,6,7");
	ck_assert_str_eq(hw_device_attr(&inv->devices[5], "nvlink_peers"), "0,1,2,3,4,6,7");
}
END_TEST

START_TEST(test_mig_instances_are_devices_and_their_gpu_is_not)
{
	static const struct {
		unsigned index;
		const char *name, *uuid;
		uint64_t memory;
	} want[] = {
		{ 2, "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "MIG-0b6d3b54-1a2f-5c3e-9d4f-000000000001",
		  UINT64_C(42949672960) },
		{ 3, "NVIDIA H100 80GB HBM3 MIG 2g.20gb", "MIG-0b6d3b54-1a2f-5c3e-9d4f-000000000002",
		  UINT64_C(21474836480) },
		{ 4, "NVIDIA H100 80GB HBM3 MIG 1g.10gb", "MIG-0b6d3b54-1a2f-5c3e-9d4f-000000000003",
		  UINT64_C(10737418240) },
	};

	probe(NVML_STANDIN, SCENARIO("mig.ini"));
	ck_assert(st.present);
	ck_assert_uint_eq(inv->n_devices, 4);
	/* GPU 0 (MIG enabled) is not offered whole; GPU 1 keeps its index. */
	ck_assert_ptr_null(hw_inventory_find(inv, HF__BACKEND__BACKEND_CUDA, 0));
	ck_assert_str_eq(device(1)->uuid, "GPU-bbbbbbbb-2222-4000-8000-000000000000");
	assert_attr(device(1), "mig", "disabled");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct hw_device *d = device(want[i].index);
		ck_assert_str_eq(d->name, want[i].name);
		ck_assert_str_eq(d->uuid, want[i].uuid);
		ck_assert_uint_eq(d->memory_bytes, want[i].memory);
		ck_assert_str_eq(d->arch, "sm_90");
		assert_attr(d, "mig", "enabled");
		assert_attr(d, "gpu_index", "0");
		assert_attr(d, "gpu_uuid", "GPU-aaaaaaaa-1111-4000-8000-000000000000");
		assert_attr(d, "compute_capability", "9.0");
	}
}
END_TEST

START_TEST(test_driver_not_loaded_is_absent_with_nvmls_reason)
{
	struct hw_device *cpu = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_CPU, 0);

	ck_assert_ptr_nonnull(cpu);
	probe(NVML_STANDIN, SCENARIO("driver-not-loaded.ini"));
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "nvmlInit failed: Driver Not Loaded");
	ck_assert_str_eq(st.driver, "");
	ck_assert_ptr_null(nvml);
	ck_assert_uint_eq(inv->n_devices, 1); /* what was there stays */
}
END_TEST

START_TEST(test_no_gpu_is_absent)
{
	probe(NVML_STANDIN, SCENARIO("no-gpu.ini"));
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "NVML found no NVIDIA GPU");
	ck_assert_uint_eq(inv->n_devices, 0);
	ck_assert_ptr_null(nvml);
}
END_TEST

START_TEST(test_library_lacking_an_nvml_symbol_is_absent_as_broken)
{
	char want[512];

	probe(NVML_STANDIN_BROKEN, SCENARIO("one-h100.ini"));
	ck_assert(!st.present);
	snprintf(want, sizeof(want),
		 "library \"%s\" does not export nvmlDeviceGetUUID (not NVML, or too old)",
		 NVML_STANDIN_BROKEN);
	ck_assert_str_eq(st.reason, want);
	ck_assert_uint_eq(inv->n_devices, 0);
}
END_TEST

START_TEST(test_missing_library_is_absent_as_not_found)
{
	probe("/nonexistent/libnvidia-ml.so.1", NULL);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "library \"/nonexistent/libnvidia-ml.so.1\" not found");

	/* By name, on the search path, as the default is looked up. */
	probe("libnvidia-ml-hfleet-test-missing.so.1", NULL);
	ck_assert_str_eq(st.reason, "library \"libnvidia-ml-hfleet-test-missing.so.1\" not found");
	ck_assert_uint_eq(inv->n_devices, 0);
}
END_TEST

START_TEST(test_a_file_that_is_not_a_library_is_absent_with_the_linkers_reason)
{
	static const char prefix[] =
		"could not load library \"" WORKER_FIXTURES "/nvml/one-h100.ini\": ";

	probe(WORKER_FIXTURES "/nvml/one-h100.ini", NULL);
	ck_assert(!st.present);
	ck_assert_msg(strncmp(st.reason, prefix, strlen(prefix)) == 0, "reason: %s", st.reason);
}
END_TEST

START_TEST(test_telemetry_reads_utilization_memory_temperature_and_power)
{
	struct hw_telemetry t;

	probe(NVML_STANDIN, SCENARIO("one-h100.ini"));
	ck_assert_int_eq(hw_nvml_sample(nvml, 0, &t), 0);
	ck_assert_uint_eq(t.backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_uint_eq(t.index, 0);
	ck_assert_float_eq(t.utilization_pct, 37.0f);
	ck_assert_uint_eq(t.memory_used_bytes, 524288000);
	ck_assert_float_eq(t.temperature_c, 41.0f);
	ck_assert_float_eq_tol(t.power_w, 113.52f, 0.001f);
	ck_assert_int_eq(hw_nvml_sample(nvml, 1, &t), -ENOENT);
}
END_TEST

START_TEST(test_mig_telemetry_is_its_memory_and_its_gpus_temperature)
{
	struct hw_telemetry t;

	probe(NVML_STANDIN, SCENARIO("mig.ini"));
	ck_assert_int_eq(hw_nvml_sample(nvml, 3, &t), 0);
	ck_assert_float_lt(t.utilization_pct, 0.0f); /* NVML has none per instance */
	ck_assert_float_lt(t.power_w, 0.0f);
	ck_assert_uint_eq(t.memory_used_bytes, 8388608);
	ck_assert_float_eq(t.temperature_c, 35.0f); /* GPU 0's */
}
END_TEST

START_TEST(test_close_shuts_nvml_down)
{
	/* Keep the stand-in loaded so its counter can be read after close. */
	void *h = dlopen(NVML_STANDIN, RTLD_NOW);

	ck_assert_ptr_nonnull(h);
	probe(NVML_STANDIN, SCENARIO("one-h100.ini"));
	ck_assert_int_eq(standin_inits(h), 1);
	hw_nvml_close(nvml);
	nvml = NULL;
	ck_assert_int_eq(standin_inits(h), 0);

	/* A backend found absent after nvmlInit shuts it down too. */
	probe(NVML_STANDIN, SCENARIO("no-gpu.ini"));
	ck_assert_int_eq(standin_inits(h), 0);
	dlclose(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_nvml");
	TCase *tc = tcase_create("nvml");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_one_h100_is_cuda_0_with_uuid_memory_and_compute_capability);
	tcase_add_test(tc, test_eight_gpus_keep_nvml_order_and_their_own_uuids);
	tcase_add_test(tc, test_mig_instances_are_devices_and_their_gpu_is_not);
	tcase_add_test(tc, test_driver_not_loaded_is_absent_with_nvmls_reason);
	tcase_add_test(tc, test_no_gpu_is_absent);
	tcase_add_test(tc, test_library_lacking_an_nvml_symbol_is_absent_as_broken);
	tcase_add_test(tc, test_missing_library_is_absent_as_not_found);
	tcase_add_test(tc, test_a_file_that_is_not_a_library_is_absent_with_the_linkers_reason);
	tcase_add_test(tc, test_telemetry_reads_utilization_memory_temperature_and_power);
	tcase_add_test(tc, test_mig_telemetry_is_its_memory_and_its_gpus_temperature);
	tcase_add_test(tc, test_close_shuts_nvml_down);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
