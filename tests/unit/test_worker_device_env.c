/* SPDX-License-Identifier: MIT
 *
 * Tests of the device-visibility environment (worker/device-env.c): for
 * each backend, the variables that give a runner exactly its devices.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "device-env.h"
#include "hw.h"

static struct hw_device dev[4];
static struct devenv env;

static void setup(void)
{
	memset(dev, 0, sizeof(dev));
	for (int i = 0; i < 4; i++)
		dev[i].visible_index = -1;
	memset(&env, 0, sizeof(env));
}

static void teardown(void)
{
	devenv_fini(&env);
}

static void build(Hf__Backend b, const uint32_t *idx, size_t n, bool with_devices)
{
	const struct hw_device *devs[4] = { &dev[0], &dev[1], &dev[2], &dev[3] };

	ck_assert_int_eq(devenv_build(b, idx, with_devices ? devs : NULL, n, &env), 0);
}

static void assert_var(const char *name, const char *want)
{
	const char *v = devenv_get(&env, name);

	if (!want) {
		ck_assert_msg(v == NULL, "%s is set to \"%s\"", name, v);
		return;
	}
	ck_assert_msg(v != NULL, "%s is not set", name);
	ck_assert_str_eq(v, want);
}

START_TEST(test_cuda_task_sees_its_gpu_by_uuid_in_bus_order)
{
	uint32_t idx[] = { 3 };

	strcpy(dev[0].uuid, "GPU-4c2a7f1e-9b3d-5e8a-a1c6-0f2d3b4e5a6c");
	strcpy(dev[0].name, "NVIDIA H100 80GB HBM3");
	build(HF__BACKEND__BACKEND_CUDA, idx, 1, true);
	assert_var("CUDA_VISIBLE_DEVICES", "GPU-4c2a7f1e-9b3d-5e8a-a1c6-0f2d3b4e5a6c");
	assert_var("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
	assert_var("HFLEET_DEVICE_INDEX", "3");
	assert_var("HFLEET_DEVICE_INDICES", "3");
	assert_var("HFLEET_DEVICE_UUID", "GPU-4c2a7f1e-9b3d-5e8a-a1c6-0f2d3b4e5a6c");
	assert_var("HFLEET_DEVICE_NAME", "NVIDIA H100 80GB HBM3");
	assert_var("HIP_VISIBLE_DEVICES", NULL);
	ck_assert_ptr_null(env.vars[env.n]);
}
END_TEST

START_TEST(test_cuda_task_of_several_gpus_lists_each_uuid)
{
	uint32_t idx[] = { 5, 2 };

	strcpy(dev[0].uuid, "GPU-a");
	strcpy(dev[1].uuid, "GPU-b");
	build(HF__BACKEND__BACKEND_CUDA, idx, 2, true);
	assert_var("CUDA_VISIBLE_DEVICES", "GPU-a,GPU-b");
	assert_var("HFLEET_DEVICE_INDICES", "5,2");
	assert_var("HFLEET_DEVICE_INDEX", "5");
	assert_var("HFLEET_DEVICE_UUID", "GPU-a,GPU-b");
}
END_TEST

START_TEST(test_devices_declared_on_one_gpu_name_it_once)
{
	uint32_t idx[] = { 0, 1 };

	/* devices.declare: cuda:1 on cuda:0's UUID (the one-GPU stand-in for
	 * two); CUDA sees no device if a UUID is listed twice. */
	strcpy(dev[0].uuid, "GPU-a");
	strcpy(dev[1].uuid, "GPU-a");
	build(HF__BACKEND__BACKEND_CUDA, idx, 2, true);
	assert_var("CUDA_VISIBLE_DEVICES", "GPU-a");
	assert_var("HFLEET_DEVICE_INDICES", "0,1");
}
END_TEST

START_TEST(test_a_mig_instance_is_given_by_its_mig_uuid)
{
	uint32_t idx[] = { 2 };

	strcpy(dev[0].uuid, "MIG-0b6d3b54-1a2f-5c3e-9d4f-000000000001");
	build(HF__BACKEND__BACKEND_CUDA, idx, 1, true);
	assert_var("CUDA_VISIBLE_DEVICES", "MIG-0b6d3b54-1a2f-5c3e-9d4f-000000000001");
}
END_TEST

START_TEST(test_cuda_without_device_details_falls_back_to_the_index)
{
	uint32_t idx[] = { 1 };

	build(HF__BACKEND__BACKEND_CUDA, idx, 1, false);
	assert_var("CUDA_VISIBLE_DEVICES", "1");
	assert_var("HFLEET_DEVICE_UUID", NULL);
	assert_var("HFLEET_DEVICE_NAME", NULL);
}
END_TEST

START_TEST(test_cpu_task_sees_no_gpu)
{
	uint32_t idx[] = { 0 };

	strcpy(dev[0].name, "Intel(R) Xeon(R) Platinum 8480+");
	build(HF__BACKEND__BACKEND_CPU, idx, 1, true);
	assert_var("CUDA_VISIBLE_DEVICES", "");
	assert_var("HIP_VISIBLE_DEVICES", "");
	assert_var("HFLEET_DEVICE_UUID", NULL);
	assert_var("HFLEET_DEVICE_NAME", "Intel(R) Xeon(R) Platinum 8480+");
}
END_TEST

START_TEST(test_rocm_lists_rocr_indices_and_renumbers_hip_from_zero)
{
	uint32_t idx[] = { 3, 1 };

	dev[0].visible_index = 3;
	dev[1].visible_index = 1;
	build(HF__BACKEND__BACKEND_ROCM, idx, 2, true);
	assert_var("ROCR_VISIBLE_DEVICES", "1,3");
	assert_var("HIP_VISIBLE_DEVICES", "0,1");
	assert_var("CUDA_VISIBLE_DEVICES", NULL);

	devenv_fini(&env);
	build(HF__BACKEND__BACKEND_ROCM, idx, 1, true);
	assert_var("ROCR_VISIBLE_DEVICES", "3");
	assert_var("HIP_VISIBLE_DEVICES", "0");
}
END_TEST

START_TEST(test_openvino_gpu_is_isolated_by_level_zero_mask_and_renamed)
{
	uint32_t idx[] = { 2 };

	hw_device_attr_set(&dev[0], "ov_device", "GPU.1");
	dev[0].visible_index = 1;
	build(HF__BACKEND__BACKEND_OPENVINO, idx, 1, true);
	assert_var("ZE_AFFINITY_MASK", "1");
	assert_var("HFLEET_OPENVINO_DEVICE", "GPU.0"); /* the only GPU the runner sees */
}
END_TEST

START_TEST(test_openvino_gpus_are_renamed_in_mask_order)
{
	uint32_t idx[] = { 2, 1 };

	hw_device_attr_set(&dev[0], "ov_device", "GPU.2");
	dev[0].visible_index = 2;
	hw_device_attr_set(&dev[1], "ov_device", "GPU.0");
	dev[1].visible_index = 0;
	build(HF__BACKEND__BACKEND_OPENVINO, idx, 2, true);
	assert_var("ZE_AFFINITY_MASK", "0,2");
	assert_var("HFLEET_OPENVINO_DEVICE", "GPU.1,GPU.0");
}
END_TEST

START_TEST(test_openvino_npu_and_cpu_are_named_as_openvino_names_them)
{
	uint32_t idx[] = { 3 };

	hw_device_attr_set(&dev[0], "ov_device", "NPU");
	build(HF__BACKEND__BACKEND_OPENVINO, idx, 1, true);
	assert_var("HFLEET_OPENVINO_DEVICE", "NPU");
	assert_var("ZE_AFFINITY_MASK", NULL);

	devenv_fini(&env);
	strcpy(dev[0].name, "CPU"); /* declared: no ov_device, its name is used */
	dev[0].n_attrs = 0;
	build(HF__BACKEND__BACKEND_OPENVINO, idx, 1, true);
	assert_var("HFLEET_OPENVINO_DEVICE", "CPU");
}
END_TEST

START_TEST(test_openvino_gpu_without_level_zero_index_keeps_its_name)
{
	uint32_t idx[] = { 2 };

	hw_device_attr_set(&dev[0], "ov_device", "GPU.1");
	build(HF__BACKEND__BACKEND_OPENVINO, idx, 1, true);
	assert_var("ZE_AFFINITY_MASK", NULL);
	assert_var("HFLEET_OPENVINO_DEVICE", "GPU.1");
}
END_TEST

START_TEST(test_qnn_task_gets_its_device_and_backend_library)
{
	uint32_t idx[] = { 0 };

	strcpy(dev[0].library, "/opt/qcom/aistack/qairt/2.28.0/lib/aarch64-oe-linux-gcc11.2/libQnnHtp.so");
	build(HF__BACKEND__BACKEND_QNN, idx, 1, true);
	assert_var("HFLEET_QNN_DEVICE", "0");
	assert_var("HFLEET_QNN_BACKEND",
		   "/opt/qcom/aistack/qairt/2.28.0/lib/aarch64-oe-linux-gcc11.2/libQnnHtp.so");
}
END_TEST

START_TEST(test_variables_the_worker_decides_are_recognised)
{
	ck_assert(devenv_is_ours("CUDA_VISIBLE_DEVICES=0,1"));
	ck_assert(devenv_is_ours("ZE_AFFINITY_MASK=0"));
	ck_assert(devenv_is_ours("ROCR_VISIBLE_DEVICES="));
	ck_assert(devenv_is_ours("HFLEET_QNN_BACKEND=/x"));
	ck_assert(!devenv_is_ours("CUDA_VISIBLE_DEVICES_EXTRA=1"));
	ck_assert(!devenv_is_ours("PATH=/usr/bin"));
}
END_TEST

START_TEST(test_multicast_stays_off_whatever_the_worker_was_given)
{
	char changed[256];

	ck_assert_int_eq(setenv("NCCL_NVLS_ENABLE", "1", 1), 0);
	ck_assert_int_eq(setenv("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1", 1), 0); /* already off */
	ck_assert_int_eq(unsetenv("NVSHMEM_DISABLE_NVLS"), 0);
	ck_assert_int_eq(devenv_multicast_off(changed, sizeof(changed)), 0);
	ck_assert_str_eq(getenv("NCCL_NVLS_ENABLE"), "0");
	ck_assert_str_eq(getenv("TORCH_SYMM_MEM_DISABLE_MULTICAST"), "1");
	ck_assert_str_eq(getenv("NVSHMEM_DISABLE_NVLS"), "1");
	/* only a value that differed is reported; an unset one is just set */
	ck_assert_str_eq(changed, "NCCL_NVLS_ENABLE=1");
	ck_assert_int_eq(devenv_multicast_off(changed, sizeof(changed)), 0);
	ck_assert_str_eq(changed, "");
}
END_TEST

START_TEST(test_multicast_report_is_cut_to_its_buffer)
{
	char changed[8];

	ck_assert_int_eq(setenv("NCCL_NVLS_ENABLE", "yes-please", 1), 0);
	ck_assert_int_eq(setenv("NVSHMEM_DISABLE_NVLS", "0", 1), 0);
	ck_assert_int_eq(devenv_multicast_off(changed, sizeof(changed)), 0);
	ck_assert_uint_lt(strlen(changed), sizeof(changed));
	ck_assert_str_eq(getenv("NCCL_NVLS_ENABLE"), "0");
	ck_assert_str_eq(getenv("NVSHMEM_DISABLE_NVLS"), "1");
}
END_TEST

START_TEST(test_too_many_devices_are_refused)
{
	uint32_t idx[DEVENV_MAX_DEVICES + 1] = { 0 };

	ck_assert_int_eq(devenv_build(HF__BACKEND__BACKEND_CUDA, idx, NULL, DEVENV_MAX_DEVICES + 1,
				      &env),
			 -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_device_env");
	TCase *tc = tcase_create("device_env");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cuda_task_sees_its_gpu_by_uuid_in_bus_order);
	tcase_add_test(tc, test_cuda_task_of_several_gpus_lists_each_uuid);
	tcase_add_test(tc, test_devices_declared_on_one_gpu_name_it_once);
	tcase_add_test(tc, test_a_mig_instance_is_given_by_its_mig_uuid);
	tcase_add_test(tc, test_cuda_without_device_details_falls_back_to_the_index);
	tcase_add_test(tc, test_cpu_task_sees_no_gpu);
	tcase_add_test(tc, test_rocm_lists_rocr_indices_and_renumbers_hip_from_zero);
	tcase_add_test(tc, test_openvino_gpu_is_isolated_by_level_zero_mask_and_renamed);
	tcase_add_test(tc, test_openvino_gpus_are_renamed_in_mask_order);
	tcase_add_test(tc, test_openvino_npu_and_cpu_are_named_as_openvino_names_them);
	tcase_add_test(tc, test_openvino_gpu_without_level_zero_index_keeps_its_name);
	tcase_add_test(tc, test_qnn_task_gets_its_device_and_backend_library);
	tcase_add_test(tc, test_variables_the_worker_decides_are_recognised);
	tcase_add_test(tc, test_too_many_devices_are_refused);
	tcase_add_test(tc, test_multicast_stays_off_whatever_the_worker_was_given);
	tcase_add_test(tc, test_multicast_report_is_cut_to_its_buffer);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
