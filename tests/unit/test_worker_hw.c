/* SPDX-License-Identifier: MIT
 *
 * Tests of the device inventory (worker/hw.c) as a whole: every backend
 * probed in order with a status, the configuration applied (hidden backends
 * not probed, hidden devices dropped without renumbering, declared devices
 * merged, slots and sharing), devices sorted, and telemetry read from the
 * vendor interfaces left open.  Detection runs against fixture roots and the
 * stand-in NVML library, never the machine's own accelerators.  MPS is
 * covered here: on Linux its module only reports itself absent.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device-conf.h"
#include "hw-mps.h"
#include "hw.h"

#define TREE(name) WORKER_FIXTURES "/" name
#define SCENARIO(name) WORKER_FIXTURES "/nvml/" name

static struct hw_inventory *inv;
static struct devconf dc;
static bool dc_used;

static void setup(void)
{
	inv = calloc(1, sizeof(*inv));
	ck_assert_ptr_nonnull(inv);
	dc_used = false;
	unsetenv("QNN_SDK_ROOT");
}

static void teardown(void)
{
	hw_inventory_fini(inv);
	free(inv);
	if (dc_used)
		devconf_fini(&dc);
}

/* Sets up devices.* (NULL: defaults), then detects under root with the
 * NVML stand-in on scenario (NULL: no NVML library at all). */
static void detect(const char *root, const char *scenario, const char *hide, const char *slots,
		   const char *shared, const char *declare, unsigned cpu_slots)
{
	char err[512];
	struct hw_options opt = {
		.root = root,
		.machine = "x86_64",
		.nvml_library = scenario ? NVML_STANDIN : "/nonexistent/libnvidia-ml.so.1",
		.openvino_library = "/nonexistent/libopenvino_c.so",
		.qnn_sdk_root = NULL,
		.cpu_slots = cpu_slots,
		.devconf = &dc,
	};

	if (scenario)
		setenv("HFLEET_NVML_STANDIN", scenario, 1);
	ck_assert_msg(devconf_init(&dc, hide, slots, shared, declare, cpu_slots, err, sizeof(err)) == 0,
		      "%s", err);
	dc_used = true;
	ck_assert_int_eq(hw_inventory_detect(&opt, inv), 0);
}

static const struct hw_device *device(Hf__Backend b, unsigned index)
{
	const struct hw_device *d = hw_inventory_find(inv, b, index);

	ck_assert_msg(d != NULL, "no device %s:%u", hf_backend_name(b), index);
	return d;
}

static const struct hw_backend_status *status(Hf__Backend b)
{
	return hw_inventory_backend(inv, b);
}

START_TEST(test_every_backend_has_a_status_in_order_and_the_cpu_is_device_zero)
{
	const struct hw_device *d;

	detect(TREE("cpu-x86-xeon"), NULL, NULL, NULL, NULL, NULL, 3);
	for (int b = 0; b < HW_N_BACKENDS; b++)
		ck_assert_uint_eq(inv->backends[b].backend, (Hf__Backend)(b + 1));
	ck_assert(status(HF__BACKEND__BACKEND_CPU)->present);
	ck_assert_str_eq(status(HF__BACKEND__BACKEND_CUDA)->reason,
			 "library \"/nonexistent/libnvidia-ml.so.1\" not found");
	ck_assert_str_eq(status(HF__BACKEND__BACKEND_ROCM)->reason,
			 "no KFD topology at /sys/class/kfd/kfd/topology/nodes (amdgpu driver not "
			 "loaded)");
	ck_assert_str_eq(status(HF__BACKEND__BACKEND_MPS)->reason, HW_MPS_ABSENT_REASON);
	ck_assert_str_eq(status(HF__BACKEND__BACKEND_OPENVINO)->reason,
			 "library \"/nonexistent/libopenvino_c.so\" not found");
	ck_assert_str_eq(status(HF__BACKEND__BACKEND_QNN)->reason,
			 "library \"libQnnHtp.so\" not found (QNN_SDK_ROOT is not set)");
	for (int b = 1; b < HW_N_BACKENDS; b++)
		ck_assert(!inv->backends[b].present);

	ck_assert_uint_eq(inv->n_devices, 1);
	d = device(HF__BACKEND__BACKEND_CPU, 0);
	ck_assert_str_eq(d->name, "Intel(R) Xeon(R) Platinum 8480+");
	ck_assert_uint_eq(d->slots, 3);
	ck_assert(d->shared);
	ck_assert_uint_eq(d->memory_bytes, inv->cpu.memory_bytes);
	ck_assert_ptr_null(hw_inventory_backend(inv, HF__BACKEND__BACKEND_UNSPECIFIED));
}
END_TEST

START_TEST(test_a_hidden_backend_is_not_probed)
{
	void *h = dlopen(NVML_STANDIN, RTLD_NOW); /* to read its counter */
	int (*inits)(void);

	ck_assert_ptr_nonnull(h);
	inits = (int (*)(void))dlsym(h, "hfleet_nvml_standin_inits");
	detect(TREE("cpu-x86-xeon"), SCENARIO("one-h100.ini"), "cuda", NULL, NULL, NULL, 1);
	ck_assert(!status(HF__BACKEND__BACKEND_CUDA)->present);
	ck_assert_str_eq(status(HF__BACKEND__BACKEND_CUDA)->reason,
			 "hidden by setting \"devices.hide\"");
	ck_assert_int_eq(inits(), 0); /* NVML was never initialised */
	ck_assert_ptr_null(hw_inventory_find(inv, HF__BACKEND__BACKEND_CUDA, 0));
	dlclose(h);
}
END_TEST

START_TEST(test_a_hidden_device_leaves_the_others_their_indices)
{
	detect(TREE("cpu-x86-xeon"), SCENARIO("eight-h100.ini"), "cuda:1, cuda:6", NULL, NULL,
	       NULL, 1);
	ck_assert(status(HF__BACKEND__BACKEND_CUDA)->present);
	ck_assert_uint_eq(inv->n_devices, 1 + 6);
	ck_assert_ptr_null(hw_inventory_find(inv, HF__BACKEND__BACKEND_CUDA, 1));
	ck_assert_ptr_null(hw_inventory_find(inv, HF__BACKEND__BACKEND_CUDA, 6));
	ck_assert_str_eq(device(HF__BACKEND__BACKEND_CUDA, 2)->uuid,
			 "GPU-00001002-0000-4000-8000-000000000002");
	ck_assert_str_eq(device(HF__BACKEND__BACKEND_CUDA, 7)->uuid,
			 "GPU-00001007-0000-4000-8000-000000000007");
}
END_TEST

START_TEST(test_the_cpu_can_be_hidden)
{
	detect(TREE("cpu-x86-xeon"), SCENARIO("one-h100.ini"), "cpu", NULL, "", NULL, 1);
	ck_assert_ptr_null(hw_inventory_find(inv, HF__BACKEND__BACKEND_CPU, 0));
	ck_assert_uint_eq(inv->n_devices, 1);
	ck_assert_uint_eq(inv->cpu.cores, 4); /* still described */
}
END_TEST

START_TEST(test_a_declared_device_joins_a_backend_the_probe_did_not_find)
{
	const struct hw_device *d;
	const struct hw_backend_status *st;

	detect(TREE("cpu-x86-xeon"), NULL, NULL, NULL, NULL,
	       "qnn:0:name=Hexagon HTP v75:memory=8GiB:arch=v75;openvino:0:name=NPU", 1);
	d = device(HF__BACKEND__BACKEND_QNN, 0);
	ck_assert(d->declared);
	ck_assert_str_eq(d->name, "Hexagon HTP v75");
	ck_assert_str_eq(d->arch, "v75");
	ck_assert_uint_eq(d->memory_bytes, UINT64_C(8) << 30);
	ck_assert_uint_eq(d->slots, 1);
	ck_assert(!d->shared);
	st = status(HF__BACKEND__BACKEND_QNN);
	ck_assert(st->present);
	ck_assert_str_eq(st->reason, "declared in configuration (probe: library \"libQnnHtp.so\" "
				     "not found (QNN_SDK_ROOT is not set))");
	ck_assert_str_eq(device(HF__BACKEND__BACKEND_OPENVINO, 0)->name, "NPU");
	/* Sorted: cpu, openvino, qnn. */
	ck_assert_uint_eq(inv->n_devices, 3);
	ck_assert_uint_eq(inv->devices[1].backend, HF__BACKEND__BACKEND_OPENVINO);
	ck_assert_uint_eq(inv->devices[2].backend, HF__BACKEND__BACKEND_QNN);
}
END_TEST

START_TEST(test_declared_fields_override_a_probed_device_and_keep_the_rest)
{
	const struct hw_device *d;

	detect(TREE("cpu-x86-xeon"), SCENARIO("one-h100.ini"), NULL, NULL, NULL,
	       "cuda:0:name=Lab H100:attr.rack=r12", 1);
	d = device(HF__BACKEND__BACKEND_CUDA, 0);
	ck_assert(d->declared);
	ck_assert_str_eq(d->name, "Lab H100");
	ck_assert_str_eq(d->uuid, "GPU-4c2a7f1e-9b3d-5e8a-a1c6-0f2d3b4e5a6c");
	ck_assert_str_eq(d->arch, "sm_90");
	ck_assert_str_eq(hw_device_attr(d, "rack"), "r12");
	ck_assert_str_eq(hw_device_attr(d, "compute_capability"), "9.0");
	ck_assert_str_eq(status(HF__BACKEND__BACKEND_CUDA)->reason, "");
}
END_TEST

START_TEST(test_slots_and_sharing_are_set_per_device)
{
	detect(TREE("cpu-x86-xeon"), SCENARIO("eight-h100.ini"), NULL, "cuda:3=2,cpu=4",
	       "cpu,cuda:3", NULL, 1);
	ck_assert_uint_eq(device(HF__BACKEND__BACKEND_CUDA, 3)->slots, 2);
	ck_assert(device(HF__BACKEND__BACKEND_CUDA, 3)->shared);
	ck_assert_uint_eq(device(HF__BACKEND__BACKEND_CUDA, 0)->slots, 1);
	ck_assert(!device(HF__BACKEND__BACKEND_CUDA, 0)->shared);
	ck_assert_uint_eq(device(HF__BACKEND__BACKEND_CPU, 0)->slots, 4);
	ck_assert(device(HF__BACKEND__BACKEND_CPU, 0)->shared);
}
END_TEST

/* The fixture machine has 8 logical CPUs; its H100s 79.6 GiB each. */
START_TEST(test_auto_slots_come_from_the_cpus_and_the_device_memory)
{
	const struct hw_device *d;

	detect(TREE("cpu-x86-xeon"), SCENARIO("one-h100.ini"), NULL, "cuda=auto", NULL, NULL, 1);
	d = device(HF__BACKEND__BACKEND_CUDA, 0);
	ck_assert_uint_eq(d->slots, 8);
	ck_assert(d->shared);
	ck_assert_str_eq(hw_device_attr(d, "slots_auto"), "8 CPUs, 79.6 GiB / 8.0 GiB");
	/* The CPU keeps worker.slots and has no reason to show. */
	ck_assert_uint_eq(device(HF__BACKEND__BACKEND_CPU, 0)->slots, 1);
	ck_assert_ptr_null(hw_device_attr(device(HF__BACKEND__BACKEND_CPU, 0), "slots_auto"));
	hw_inventory_fini(inv);
	devconf_fini(&dc);
	dc_used = false;

	/* A bigger slot: memory decides. */
	dc.slot_memory = 0;
	detect(TREE("cpu-x86-xeon"), SCENARIO("one-h100.ini"), NULL, "cuda=auto", NULL, NULL, 1);
	dc.slot_memory = UINT64_C(16) << 30;
	hw_inventory_fini(inv);
	ck_assert_int_eq(hw_inventory_detect(&(struct hw_options){ .root = TREE("cpu-x86-xeon"),
		.machine = "x86_64", .nvml_library = NVML_STANDIN,
		.openvino_library = "/nonexistent/libopenvino_c.so", .cpu_slots = 1,
		.devconf = &dc }, inv), 0);
	d = device(HF__BACKEND__BACKEND_CUDA, 0);
	ck_assert_uint_eq(d->slots, 4);
	ck_assert_str_eq(hw_device_attr(d, "slots_auto"), "8 CPUs, 79.6 GiB / 16.0 GiB");
	hw_inventory_fini(inv);
	devconf_fini(&dc);
	dc_used = false;

	/* Eight GPUs and the CPU, all auto: 9 devices share 8 CPUs, 1 each. */
	detect(TREE("cpu-x86-xeon"), SCENARIO("eight-h100.ini"), NULL, "cuda=auto,cpu=auto", NULL,
	       NULL, 1);
	for (unsigned i = 0; i < 8; i++)
		ck_assert_uint_eq(device(HF__BACKEND__BACKEND_CUDA, i)->slots, 1);
	ck_assert_uint_eq(device(HF__BACKEND__BACKEND_CPU, 0)->slots, 1);
	ck_assert_str_eq(hw_device_attr(device(HF__BACKEND__BACKEND_CUDA, 7), "slots_auto"),
			 "8 CPUs / 9 auto devices, 79.6 GiB / 8.0 GiB");
}
END_TEST

START_TEST(test_devices_are_sorted_by_backend_then_index)
{
	static const struct {
		Hf__Backend b;
		unsigned index;
	} want[] = {
		{ HF__BACKEND__BACKEND_CPU, 0 },  { HF__BACKEND__BACKEND_CUDA, 1 },
		{ HF__BACKEND__BACKEND_CUDA, 2 }, { HF__BACKEND__BACKEND_CUDA, 3 },
		{ HF__BACKEND__BACKEND_CUDA, 4 }, { HF__BACKEND__BACKEND_ROCM, 0 },
	};

	/* MIG instances are found before GPU 1, and numbered after it. */
	detect(TREE("rocm-mi300x"), SCENARIO("mig.ini"), NULL, NULL, NULL, NULL, 1);
	ck_assert_uint_eq(inv->n_devices, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < inv->n_devices; i++) {
		ck_assert_uint_eq(inv->devices[i].backend, want[i].b);
		ck_assert_uint_eq(inv->devices[i].index, want[i].index);
	}
}
END_TEST

START_TEST(test_telemetry_covers_every_device_a_vendor_interface_reads)
{
	struct hw_telemetry t[8];
	size_t n;

	detect(TREE("rocm-mi300x"), SCENARIO("one-h100.ini"), NULL, NULL, NULL, NULL, 1);
	n = hw_telemetry_sample(inv, t, 8);
	ck_assert_uint_eq(n, 2); /* not the CPU */
	ck_assert_uint_eq(t[0].backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_float_eq(t[0].utilization_pct, 37.0f);
	ck_assert_uint_eq(t[1].backend, HF__BACKEND__BACKEND_ROCM);
	ck_assert_float_eq(t[1].utilization_pct, 42.0f);
	ck_assert_uint_eq(hw_telemetry_sample(inv, t, 1), 1); /* bounded by max */
}
END_TEST

START_TEST(test_fini_shuts_the_vendor_interfaces_down)
{
	void *h = dlopen(NVML_STANDIN, RTLD_NOW);
	int (*inits)(void);
	struct hw_telemetry t[4];

	ck_assert_ptr_nonnull(h);
	inits = (int (*)(void))dlsym(h, "hfleet_nvml_standin_inits");
	detect(TREE("cpu-x86-xeon"), SCENARIO("one-h100.ini"), NULL, NULL, NULL, NULL, 1);
	ck_assert_int_eq(inits(), 1);
	hw_inventory_fini(inv);
	ck_assert_int_eq(inits(), 0);
	/* The description stays; telemetry has nothing to read. */
	ck_assert_uint_eq(inv->n_devices, 2);
	ck_assert_uint_eq(hw_telemetry_sample(inv, t, 4), 0);
	dlclose(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_hw");
	TCase *tc = tcase_create("hw");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_every_backend_has_a_status_in_order_and_the_cpu_is_device_zero);
	tcase_add_test(tc, test_a_hidden_backend_is_not_probed);
	tcase_add_test(tc, test_a_hidden_device_leaves_the_others_their_indices);
	tcase_add_test(tc, test_the_cpu_can_be_hidden);
	tcase_add_test(tc, test_a_declared_device_joins_a_backend_the_probe_did_not_find);
	tcase_add_test(tc, test_declared_fields_override_a_probed_device_and_keep_the_rest);
	tcase_add_test(tc, test_slots_and_sharing_are_set_per_device);
	tcase_add_test(tc, test_auto_slots_come_from_the_cpus_and_the_device_memory);
	tcase_add_test(tc, test_devices_are_sorted_by_backend_then_index);
	tcase_add_test(tc, test_telemetry_covers_every_device_a_vendor_interface_reads);
	tcase_add_test(tc, test_fini_shuts_the_vendor_interfaces_down);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
