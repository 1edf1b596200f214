/* SPDX-License-Identifier: MIT
 *
 * Tests of the --probe report (worker/probe-report.c): the tables and the
 * JSON object for a hand-made inventory with a CPU, an H100 and absent
 * backends.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe-report.h"

static struct hw_inventory *inv;
static struct runtime_list rts;

static void setup(void)
{
	struct hw_device *d;

	inv = calloc(1, sizeof(*inv));
	ck_assert_ptr_nonnull(inv);
	strcpy(inv->cpu.model, "Intel(R) Xeon(R) Platinum 8480+");
	strcpy(inv->cpu.arch, "x86_64");
	inv->cpu.sockets = 2;
	inv->cpu.cores = 112;
	inv->cpu.threads = 224;
	inv->cpu.numa_nodes = 2;
	inv->cpu.memory_bytes = UINT64_C(2) << 40;
	for (int b = 0; b < HW_N_BACKENDS; b++) {
		inv->backends[b].backend = (Hf__Backend)(b + 1);
		hw_status_absent(&inv->backends[b], "absent %d", b + 1);
	}
	inv->backends[0].present = true;
	inv->backends[0].reason[0] = '\0';
	inv->backends[1].present = true;
	inv->backends[1].reason[0] = '\0';
	strcpy(inv->backends[1].driver, "570.124.06 (CUDA 12.8)");
	strcpy(inv->backends[1].library, "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1");
	strcpy(inv->backends[2].reason, "no KFD topology at /sys/class/kfd/kfd/topology/nodes");

	d = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_CPU, 0);
	strcpy(d->name, inv->cpu.model);
	strcpy(d->arch, "x86_64");
	d->slots = 4;
	d->shared = true;
	d = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_CUDA, 0);
	strcpy(d->name, "NVIDIA H100 80GB HBM3");
	strcpy(d->arch, "sm_90");
	strcpy(d->driver, "570.124.06");
	strcpy(d->uuid, "GPU-4c2a7f1e");
	d->memory_bytes = UINT64_C(85520809984);
	hw_device_attr_set(d, "compute_capability", "9.0");
	d->declared = true;

	memset(&rts, 0, sizeof(rts));
	ck_assert_int_eq(runtime_list_add(&rts, "torch", "2.5.1", true, "cuda 12.4"), 0);
}

static void teardown(void)
{
	runtime_list_fini(&rts);
	free(inv);
}

START_TEST(test_json_has_devices_with_attributes_and_every_backend)
{
	json_t *r = probe_report_json(inv, &rts), *devices, *backends, *d;

	ck_assert_ptr_nonnull(r);
	devices = json_object_get(r, "devices");
	backends = json_object_get(r, "backends");
	ck_assert_uint_eq(json_array_size(devices), 2);
	d = json_array_get(devices, 1);
	ck_assert_str_eq(json_string_value(json_object_get(d, "backend")), "cuda");
	ck_assert_str_eq(json_string_value(json_object_get(d, "uuid")), "GPU-4c2a7f1e");
	ck_assert_str_eq(json_string_value(json_object_get(d, "driver")), "570.124.06");
	ck_assert(json_is_true(json_object_get(d, "declared")));
	ck_assert(json_is_false(json_object_get(d, "shared")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "attrs"),
							   "compute_capability")),
			 "9.0");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "memory_bytes")),
			 (json_int_t)UINT64_C(85520809984));
	ck_assert_uint_eq(json_array_size(backends), HW_N_BACKENDS);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(backends, 2), "backend")),
			 "rocm");
	ck_assert(json_is_false(json_object_get(json_array_get(backends, 2), "present")));
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(backends, 2), "reason")),
			 "no KFD topology at /sys/class/kfd/kfd/topology/nodes");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "cpu"), "cores")),
			 112);
	ck_assert_uint_eq(json_array_size(json_object_get(r, "runtimes")), 1);
	json_decref(r);
}
END_TEST

START_TEST(test_tables_show_devices_then_backends_then_runtimes)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	const char *dev, *back, *run;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(probe_report_print(inv, &rts, f), 0);
	fclose(f);
	dev = strstr(text, "\nDEVICES\n");
	back = strstr(text, "\nBACKENDS\n");
	run = strstr(text, "\nRUNTIMES\n");
	ck_assert(dev && back && run && dev < back && back < run);
	ck_assert_ptr_nonnull(strstr(text, "  cores        112\n"));
	ck_assert_ptr_nonnull(strstr(dev, "cuda:0  NVIDIA H100 80GB HBM3"));
	ck_assert_ptr_nonnull(strstr(dev, "79.6 GiB"));
	ck_assert_ptr_nonnull(strstr(dev, "declared, compute_capability=9.0, uuid=GPU-4c2a7f1e"));
	ck_assert_ptr_nonnull(strstr(back, "  cuda      yes      570.124.06 (CUDA 12.8)  "
					   "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1\n"));
	ck_assert_ptr_nonnull(strstr(back, "  rocm      no       -                       no KFD "
					   "topology at /sys/class/kfd/kfd/topology/nodes\n"));
	ck_assert_ptr_nonnull(strstr(back, "  mps       no "));
	free(text);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_probe_report");
	TCase *tc = tcase_create("probe_report");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_json_has_devices_with_attributes_and_every_backend);
	tcase_add_test(tc, test_tables_show_devices_then_backends_then_runtimes);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
