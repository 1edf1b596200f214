/* SPDX-License-Identifier: MIT
 *
 * Tests of the device settings (worker/device-conf.c): devices.hide,
 * devices.slots, devices.shared and devices.declare parsed, checked
 * together with worker.slots, and applied to an inventory.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "device-conf.h"
#include "hw.h"

static char err[512];

static int init(struct devconf *dc, const char *hide, const char *slots, const char *shared,
		const char *declare, unsigned cpu_slots)
{
	err[0] = '\0';
	return devconf_init(dc, hide, slots, shared, declare, cpu_slots, err, sizeof(err));
}

START_TEST(test_selectors_name_devices_or_whole_backends)
{
	struct devconf_sel *sel;
	size_t n;

	ck_assert_int_eq(devconf_sels_parse(" cuda:1, rocm:0 ,qnn,cuda:1,", &sel, &n, err,
					    sizeof(err)), 0);
	ck_assert_uint_eq(n, 3); /* cuda:1 twice is once */
	ck_assert_uint_eq(sel[0].backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_int_eq(sel[0].index, 1);
	ck_assert_uint_eq(sel[1].backend, HF__BACKEND__BACKEND_ROCM);
	ck_assert_int_eq(sel[1].index, 0);
	ck_assert_uint_eq(sel[2].backend, HF__BACKEND__BACKEND_QNN);
	ck_assert_int_eq(sel[2].index, -1);
	free(sel);
	ck_assert_int_eq(devconf_sels_parse("", &sel, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 0);
	free(sel);
}
END_TEST

START_TEST(test_bad_selectors_are_refused_with_the_item)
{
	struct devconf_sel *sel;
	size_t n;

	ck_assert_int_eq(devconf_sels_parse("gpu:0", &sel, &n, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "unknown backend \"gpu\" in \"gpu:0\" (use cpu, cuda, rocm, mps, "
			      "openvino, qnn)");
	ck_assert_int_eq(devconf_sels_parse("cuda:x", &sel, &n, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "bad device index in \"cuda:x\" (use backend:N, N from 0 to 65535)");
	ck_assert_int_eq(devconf_sels_parse("cuda:70000", &sel, &n, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(devconf_sels_parse("cuda:", &sel, &n, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(devconf_sels_parse(":1", &sel, &n, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_slots_per_backend_and_per_device)
{
	struct devconf dc;

	ck_assert_int_eq(init(&dc, NULL, "cuda:3=2, cuda=1,cpu=4", "cpu,cuda:3", NULL, 1), 0);
	ck_assert_uint_eq(dc.n_slots, 3);
	/* The device's entry wins over its backend's, whatever the order. */
	ck_assert_uint_eq(devconf_device_slots(&dc, HF__BACKEND__BACKEND_CUDA, 3), 2);
	ck_assert_uint_eq(devconf_device_slots(&dc, HF__BACKEND__BACKEND_CUDA, 0), 1);
	/* devices.slots for the CPU wins over worker.slots. */
	ck_assert_uint_eq(devconf_device_slots(&dc, HF__BACKEND__BACKEND_CPU, 0), 4);
	/* No entry: 1 for an accelerator. */
	ck_assert_uint_eq(devconf_device_slots(&dc, HF__BACKEND__BACKEND_ROCM, 0), 1);
	devconf_fini(&dc);

	ck_assert_int_eq(init(&dc, NULL, NULL, NULL, NULL, 6), 0);
	ck_assert_uint_eq(devconf_device_slots(&dc, HF__BACKEND__BACKEND_CPU, 0), 6);
	devconf_fini(&dc);
}
END_TEST

START_TEST(test_bad_slot_entries_are_refused_naming_the_setting)
{
	struct devconf dc;

	ck_assert_int_eq(init(&dc, NULL, "cuda", NULL, NULL, 1), -EINVAL);
	ck_assert_str_eq(err, "invalid value for setting \"devices.slots\": \"cuda\" is not "
			      "selector=N");
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, "cuda=0", NULL, NULL, 1), -EINVAL);
	ck_assert_str_eq(err, "invalid value for setting \"devices.slots\": bad slot count in "
			      "\"cuda=0\" (1 to 256, or auto; hide a device with devices.hide)");
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, "cuda=many", NULL, NULL, 1), -EINVAL);
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, "tpu=2", NULL, NULL, 1), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "unknown backend \"tpu\""));
	devconf_fini(&dc);
}
END_TEST

START_TEST(test_auto_slots_are_shared_by_themselves_and_the_last_entry_wins)
{
	struct devconf dc;

	ck_assert_int_eq(init(&dc, NULL, "cuda=auto, rocm:1=AUTO, cuda:2=3", "cpu,cuda:2", NULL, 1),
			 0);
	ck_assert(devconf_device_auto(&dc, HF__BACKEND__BACKEND_CUDA, 0));
	ck_assert(devconf_device_shared(&dc, HF__BACKEND__BACKEND_CUDA, 0));
	/* Until applied, an auto device says 1. */
	ck_assert_uint_eq(devconf_device_slots(&dc, HF__BACKEND__BACKEND_CUDA, 0), 1);
	ck_assert(devconf_device_auto(&dc, HF__BACKEND__BACKEND_ROCM, 1));
	ck_assert(!devconf_device_auto(&dc, HF__BACKEND__BACKEND_ROCM, 0));
	ck_assert(!devconf_device_shared(&dc, HF__BACKEND__BACKEND_ROCM, 0));
	/* The device's own number wins over its backend's auto. */
	ck_assert(!devconf_device_auto(&dc, HF__BACKEND__BACKEND_CUDA, 2));
	ck_assert_uint_eq(devconf_device_slots(&dc, HF__BACKEND__BACKEND_CUDA, 2), 3);
	devconf_fini(&dc);
	/* A later number for the same selector replaces auto, and auto a number. */
	ck_assert_int_eq(init(&dc, NULL, "cuda=auto,cuda=1", NULL, NULL, 1), 0);
	ck_assert(!devconf_device_auto(&dc, HF__BACKEND__BACKEND_CUDA, 0));
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, "cuda=2,cuda=auto", NULL, NULL, 1), 0);
	ck_assert(devconf_device_auto(&dc, HF__BACKEND__BACKEND_CUDA, 0));
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, "cuda=autox", NULL, NULL, 1), -EINVAL);
	devconf_fini(&dc);
}
END_TEST

START_TEST(test_auto_slots_take_the_smaller_of_cpus_and_memory)
{
	const uint64_t gib = UINT64_C(1) << 30;
	char why[160];

	/* The H200: 16 CPUs, 141 GiB at 8 GiB a slot. */
	ck_assert_uint_eq(devconf_auto_slots(16, 1, 141 * gib, 8 * gib, why, sizeof(why)), 16);
	ck_assert_str_eq(why, "16 CPUs, 141.0 GiB / 8.0 GiB");
	/* Memory decides. */
	ck_assert_uint_eq(devconf_auto_slots(64, 1, 80 * gib, 8 * gib, why, sizeof(why)), 10);
	/* The CPUs are divided among the auto devices. */
	ck_assert_uint_eq(devconf_auto_slots(16, 4, 80 * gib, 8 * gib, why, sizeof(why)), 4);
	ck_assert_str_eq(why, "16 CPUs / 4 auto devices, 80.0 GiB / 8.0 GiB");
	/* Never 0: fewer CPUs than devices, or less memory than a slot. */
	ck_assert_uint_eq(devconf_auto_slots(2, 8, 80 * gib, 8 * gib, NULL, 0), 1);
	ck_assert_uint_eq(devconf_auto_slots(16, 1, 4 * gib, 8 * gib, NULL, 0), 1);
	/* Unknown memory: the CPUs alone. */
	ck_assert_uint_eq(devconf_auto_slots(12, 1, 0, 8 * gib, why, sizeof(why)), 12);
	ck_assert_str_eq(why, "12 CPUs, memory unknown");
	/* At most 256. */
	ck_assert_uint_eq(devconf_auto_slots(1024, 1, 0, 8 * gib, NULL, 0), 256);
}
END_TEST

START_TEST(test_more_than_one_slot_needs_the_device_shared)
{
	struct devconf dc;

	ck_assert_int_eq(init(&dc, NULL, "cuda:3=2", NULL, NULL, 1), -EINVAL);
	ck_assert_str_eq(err, "invalid value for setting \"devices.slots\": cuda:3 has 2 slots, but "
			      "\"devices.shared\" does not list it (a device that is not shared "
			      "runs one task at a time)");
	devconf_fini(&dc);
	/* A backend entry needs the backend shared, not one device. */
	ck_assert_int_eq(init(&dc, NULL, "cuda=2", "cuda:0", NULL, 1), -EINVAL);
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, "cuda:0=2", "cuda", NULL, 1), 0);
	ck_assert(devconf_device_shared(&dc, HF__BACKEND__BACKEND_CUDA, 0));
	ck_assert(devconf_device_shared(&dc, HF__BACKEND__BACKEND_CUDA, 5));
	ck_assert(!devconf_device_shared(&dc, HF__BACKEND__BACKEND_CPU, 0));
	devconf_fini(&dc);
	/* One slot is fine anywhere. */
	ck_assert_int_eq(init(&dc, NULL, "rocm=1", NULL, NULL, 1), 0);
	devconf_fini(&dc);
}
END_TEST

START_TEST(test_cpu_is_shared_by_default_and_worker_slots_needs_it)
{
	struct devconf dc;

	ck_assert_int_eq(init(&dc, NULL, NULL, NULL, NULL, 4), 0);
	ck_assert(devconf_device_shared(&dc, HF__BACKEND__BACKEND_CPU, 0));
	ck_assert(!devconf_device_shared(&dc, HF__BACKEND__BACKEND_CUDA, 0));
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, NULL, "cuda:3", NULL, 4), -EINVAL);
	ck_assert_str_eq(err, "setting \"worker.slots\" gives the CPU 4 slots, but "
			      "\"devices.shared\" does not list cpu (a device that is not shared "
			      "runs one task at a time)");
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, NULL, "", NULL, 1), 0);
	ck_assert_uint_eq(dc.n_shared, 0);
	devconf_fini(&dc);
}
END_TEST

START_TEST(test_hide_names_backends_and_devices)
{
	struct devconf dc;

	ck_assert_int_eq(init(&dc, "cuda:1,rocm", NULL, NULL, NULL, 1), 0);
	ck_assert(devconf_backend_hidden(&dc, HF__BACKEND__BACKEND_ROCM));
	ck_assert(!devconf_backend_hidden(&dc, HF__BACKEND__BACKEND_CUDA)); /* one device only */
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, "cuda;1", NULL, NULL, NULL, 1), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "invalid value for setting \"devices.hide\": "));
	devconf_fini(&dc);
}
END_TEST

START_TEST(test_declare_reads_each_device_and_its_fields)
{
	struct devconf_declared *d;
	size_t n;

	ck_assert_int_eq(devconf_declare_parse("qnn:0:name=Hexagon HTP v75:memory=8GiB:arch=v75;"
					       " openvino:0:name=NPU : attr.ov_device=NPU ;",
					       &d, &n, err, sizeof(err)),
			 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(d[0].dev.backend, HF__BACKEND__BACKEND_QNN);
	ck_assert_uint_eq(d[0].dev.index, 0);
	ck_assert_str_eq(d[0].dev.name, "Hexagon HTP v75");
	ck_assert_str_eq(d[0].dev.arch, "v75");
	ck_assert_uint_eq(d[0].dev.memory_bytes, UINT64_C(8589934592));
	ck_assert_uint_eq(d[0].fields, DEVCONF_NAME | DEVCONF_MEMORY | DEVCONF_ARCH);
	ck_assert_uint_eq(d[1].dev.backend, HF__BACKEND__BACKEND_OPENVINO);
	ck_assert_str_eq(d[1].dev.name, "NPU");
	ck_assert_str_eq(hw_device_attr(&d[1].dev, "ov_device"), "NPU");
	ck_assert_uint_eq(d[1].fields, DEVCONF_NAME);
	free(d);

	ck_assert_int_eq(devconf_declare_parse("cuda:2:uuid=GPU-x:driver=570.1", &d, &n, err,
					       sizeof(err)),
			 0);
	ck_assert_str_eq(d[0].dev.uuid, "GPU-x");
	ck_assert_str_eq(d[0].dev.driver, "570.1");
	free(d);
}
END_TEST

START_TEST(test_memory_sizes_take_binary_and_decimal_units)
{
	uint64_t v;

	ck_assert_int_eq(devconf_memory_parse("8GiB", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(8) << 30);
	ck_assert_int_eq(devconf_memory_parse("16 GB", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(16000000000));
	ck_assert_int_eq(devconf_memory_parse("512mib", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(512) << 20);
	ck_assert_int_eq(devconf_memory_parse("1T", &v), 0);
	ck_assert_uint_eq(v, UINT64_C(1) << 40);
	ck_assert_int_eq(devconf_memory_parse("1234", &v), 0);
	ck_assert_uint_eq(v, 1234);
	ck_assert_int_eq(devconf_memory_parse("8XB", &v), -EINVAL);
	ck_assert_int_eq(devconf_memory_parse("GiB", &v), -EINVAL);
	ck_assert_int_eq(devconf_memory_parse("-1", &v), -EINVAL);
	ck_assert_int_eq(devconf_memory_parse("99999999999TiB", &v), -EINVAL); /* overflow */
}
END_TEST

START_TEST(test_bad_declarations_are_refused_with_what_is_wrong)
{
	struct devconf dc;

	ck_assert_int_eq(init(&dc, NULL, NULL, NULL, "qnn", 1), -EINVAL);
	ck_assert_str_eq(err, "invalid value for setting \"devices.declare\": \"qnn\" does not "
			      "start with backend:index");
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, NULL, NULL, "qnn:0:memroy=8GiB", 1), -EINVAL);
	ck_assert_str_eq(err, "invalid value for setting \"devices.declare\": unknown field "
			      "\"memroy\" in \"qnn:0:memroy=8GiB\" (use name, memory, arch, driver, "
			      "uuid or attr.KEY)");
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, NULL, NULL, "qnn:0:memory=lots", 1), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "bad memory \"lots\""));
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, NULL, NULL, "qnn:0:name=A;qnn:0:name=B", 1), -EINVAL);
	ck_assert_str_eq(err, "invalid value for setting \"devices.declare\": qnn:0 is declared "
			      "twice");
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, NULL, NULL, "qnn:0:name=", 1), -EINVAL);
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, NULL, NULL, "qnn:0:name", 1), -EINVAL);
	devconf_fini(&dc);
	ck_assert_int_eq(init(&dc, NULL, NULL, NULL, "qnn:0:attr.a b=1", 1), -EINVAL);
	devconf_fini(&dc);
}
END_TEST

START_TEST(test_declaring_a_hidden_device_is_refused)
{
	struct devconf dc;

	ck_assert_int_eq(init(&dc, "qnn", NULL, NULL, "qnn:0:name=HTP", 1), -EINVAL);
	ck_assert_str_eq(err, "invalid value for setting \"devices.declare\": it declares qnn:0, "
			      "which \"devices.hide\" hides");
	devconf_fini(&dc);
}
END_TEST

static void inventory_add(struct hw_inventory *inv, Hf__Backend b, unsigned index, const char *name)
{
	struct hw_device *d = hw_inventory_device_add(inv, b, index);

	ck_assert_ptr_nonnull(d);
	strcpy(d->name, name);
}

START_TEST(test_apply_hides_merges_sorts_and_sets_slots)
{
	struct hw_inventory *inv = calloc(1, sizeof(*inv));
	struct devconf dc;

	ck_assert_ptr_nonnull(inv);
	for (int b = 0; b < HW_N_BACKENDS; b++)
		inv->backends[b].backend = (Hf__Backend)(b + 1);
	inventory_add(inv, HF__BACKEND__BACKEND_CUDA, 2, "gpu2");
	inventory_add(inv, HF__BACKEND__BACKEND_CUDA, 0, "gpu0");
	inventory_add(inv, HF__BACKEND__BACKEND_CPU, 0, "cpu");
	inventory_add(inv, HF__BACKEND__BACKEND_CUDA, 1, "gpu1");
	ck_assert_int_eq(init(&dc, "cuda:1,cuda:9", "cpu=3,cuda:2=2", "cpu,cuda:2",
			      "rocm:4:name=declared MI300X:memory=192GiB", 1),
			 0);
	devconf_apply(&dc, inv);
	ck_assert_uint_eq(inv->n_devices, 4);
	ck_assert_str_eq(inv->devices[0].name, "cpu");
	ck_assert_uint_eq(inv->devices[0].slots, 3);
	ck_assert_str_eq(inv->devices[1].name, "gpu0");
	ck_assert(!inv->devices[1].shared);
	ck_assert_str_eq(inv->devices[2].name, "gpu2");
	ck_assert_uint_eq(inv->devices[2].slots, 2);
	ck_assert(inv->devices[2].shared);
	ck_assert_str_eq(inv->devices[3].name, "declared MI300X");
	ck_assert_uint_eq(inv->devices[3].index, 4);
	ck_assert_int_eq(inv->devices[3].visible_index, 4); /* its ROCR index */
	ck_assert(inv->devices[3].declared);
	ck_assert(inv->backends[HF__BACKEND__BACKEND_ROCM - 1].present);
	devconf_fini(&dc);
	free(inv);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_devconf");
	TCase *tc = tcase_create("devconf");

	tcase_add_test(tc, test_selectors_name_devices_or_whole_backends);
	tcase_add_test(tc, test_bad_selectors_are_refused_with_the_item);
	tcase_add_test(tc, test_slots_per_backend_and_per_device);
	tcase_add_test(tc, test_bad_slot_entries_are_refused_naming_the_setting);
	tcase_add_test(tc, test_auto_slots_are_shared_by_themselves_and_the_last_entry_wins);
	tcase_add_test(tc, test_auto_slots_take_the_smaller_of_cpus_and_memory);
	tcase_add_test(tc, test_more_than_one_slot_needs_the_device_shared);
	tcase_add_test(tc, test_cpu_is_shared_by_default_and_worker_slots_needs_it);
	tcase_add_test(tc, test_hide_names_backends_and_devices);
	tcase_add_test(tc, test_declare_reads_each_device_and_its_fields);
	tcase_add_test(tc, test_memory_sizes_take_binary_and_decimal_units);
	tcase_add_test(tc, test_bad_declarations_are_refused_with_what_is_wrong);
	tcase_add_test(tc, test_declaring_a_hidden_device_is_refused);
	tcase_add_test(tc, test_apply_hides_merges_sorts_and_sets_slots);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
