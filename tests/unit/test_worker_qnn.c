/* SPDX-License-Identifier: MIT
 *
 * Tests of the QNN backend (worker/hw-qnn.c).  Each test builds, in a
 * temporary directory, a QNN SDK layout whose lib/x86_64-linux-clang holds
 * the stand-in backend libraries built by the tests (tests/unit/qnn-standin,
 * real shared objects exporting QnnInterface_getProviders, linked in by
 * symlink), and a root prefix with FastRPC device nodes as plain files and
 * /sys/devices/soc0/machine.  The machine is given as x86_64 so the layout
 * is the same on every build host.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_util.h"
#include "hw-qnn.h"
#include "hw.h"

#ifndef QNN_HTP_STANDIN
#error "QNN_HTP_STANDIN must name the stand-in QNN HTP backend"
#endif

static char tmp[64], sdk[128], root[128], htp_path[512], cpu_path[512];
static struct hw_inventory *inv;
static struct hw_backend_status st;

static void put(const char *dir, const char *rel, const char *text)
{
	char path[512], parent[512];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	snprintf(parent, sizeof(parent), "%s", path);
	*strrchr(parent, '/') = '\0';
	ck_assert_int_eq(hf_mkdir_p(parent, 0755), 0);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static void link_lib(const char *target, const char *path)
{
	ck_assert_int_eq(symlink(target, path), 0);
}

static void setup(void)
{
	char libdir[256];

	strcpy(tmp, "/tmp/hfqnnXXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	snprintf(sdk, sizeof(sdk), "%s/qairt/2.28.0.241029", tmp);
	snprintf(root, sizeof(root), "%s/root", tmp);
	snprintf(libdir, sizeof(libdir), "%s/lib/x86_64-linux-clang", sdk);
	ck_assert_int_eq(hf_mkdir_p(libdir, 0755), 0);
	snprintf(htp_path, sizeof(htp_path), "%s/libQnnHtp.so", libdir);
	snprintf(cpu_path, sizeof(cpu_path), "%s/libQnnCpu.so", libdir);
	link_lib(QNN_HTP_STANDIN, htp_path);
	link_lib(QNN_CPU_STANDIN, cpu_path);
	put(root, "sys/devices/soc0/machine", "SM8650\n");
	ck_assert_int_eq(hf_mkdir_p(root, 0755), 0);
	inv = calloc(1, sizeof(*inv));
	ck_assert_ptr_nonnull(inv);
	memset(&st, 0, sizeof(st));
}

static void teardown(void)
{
	char cmd[128];

	free(inv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	ck_assert_int_eq(system(cmd), 0);
}

static void probe(const char *sdk_root)
{
	ck_assert_int_eq(hw_qnn_probe(root, sdk_root, "x86_64", inv, &st), 0);
}

START_TEST(test_htp_with_a_fastrpc_node_is_qnn_0_with_its_soc_and_htp_version)
{
	const struct hw_device *d;

	put(root, "dev/fastrpc-cdsp", "");
	put(root, "dev/fastrpc-adsp", "");
	probe(sdk);
	ck_assert_msg(st.present, "absent: %s", st.reason);
	ck_assert_str_eq(st.library, htp_path);
	ck_assert_str_eq(st.driver, "QNN SDK 2.28.0.241029"); /* from the SDK directory's name */
	ck_assert_uint_eq(inv->n_devices, 1);
	d = hw_inventory_find(inv, HF__BACKEND__BACKEND_QNN, 0);
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(d->name, "Qualcomm Hexagon HTP v75 on SM8650");
	ck_assert_str_eq(d->arch, "v75");
	ck_assert_str_eq(d->library, htp_path);
	ck_assert_str_eq(d->driver, "QNN API 2.22.0");
	ck_assert_str_eq(hw_device_attr(d, "soc"), "SM8650");
	ck_assert_str_eq(hw_device_attr(d, "htp_arch"), "v75");
	ck_assert_str_eq(hw_device_attr(d, "qnn_provider"), "HTP_QTI_AISW");
	ck_assert_str_eq(hw_device_attr(d, "qnn_cpu_backend"), cpu_path);
}
END_TEST

START_TEST(test_sdk_yaml_version_wins_over_the_directory_name)
{
	put(sdk, "sdk.yaml", "name: qairt\nversion: 2.31.0.250130\n");
	put(root, "dev/adsprpc-smd", "");
	probe(sdk);
	ck_assert(st.present);
	ck_assert_str_eq(st.driver, "QNN SDK 2.31.0.250130");
}
END_TEST

START_TEST(test_older_adsprpc_smd_node_reaches_the_dsp_too)
{
	put(root, "dev/adsprpc-smd", "");
	probe(sdk);
	ck_assert(st.present);
}
END_TEST

START_TEST(test_no_fastrpc_node_is_absent_and_says_the_cpu_backend_loads)
{
	probe(sdk);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "no FastRPC device node under /dev (fastrpc-cdsp*, "
				    "adsprpc-smd): the Hexagon DSP is not reachable; the QNN CPU "
				    "backend (libQnnCpu.so) loads");
	ck_assert_uint_eq(inv->n_devices, 0);
}
END_TEST

START_TEST(test_only_an_audio_dsp_node_is_absent_naming_it)
{
	put(root, "dev/fastrpc-adsp", "");
	unlink(cpu_path);
	probe(sdk);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "no FastRPC node for the compute DSP (found only "
				    "/dev/fastrpc-adsp)");
}
END_TEST

START_TEST(test_sdk_without_the_htp_library_is_absent)
{
	char want[1024];

	unlink(htp_path);
	probe(sdk);
	ck_assert(!st.present);
	snprintf(want, sizeof(want),
		 "no libQnnHtp.so in QNN SDK \"%s\" (looked in lib/x86_64-linux-clang)", sdk);
	ck_assert_str_eq(st.reason, want);
}
END_TEST

START_TEST(test_no_sdk_and_no_library_on_the_search_path_is_absent)
{
	probe(NULL);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "library \"libQnnHtp.so\" not found (QNN_SDK_ROOT is not set)");
}
END_TEST

START_TEST(test_a_library_that_is_not_a_qnn_backend_is_absent)
{
	char want[1024];

	unlink(htp_path);
	unlink(cpu_path);
	link_lib(NVML_STANDIN, htp_path);
	put(root, "dev/fastrpc-cdsp", "");
	probe(sdk);
	ck_assert(!st.present);
	snprintf(want, sizeof(want),
		 "library \"%s\" does not export QnnInterface_getProviders (not a QNN backend)",
		 htp_path);
	ck_assert_str_eq(st.reason, want);
}
END_TEST

START_TEST(test_unknown_soc_leaves_the_htp_version_to_configuration)
{
	const struct hw_device *d;

	put(root, "sys/devices/soc0/machine", "SM9999\n");
	put(root, "dev/fastrpc-cdsp", "");
	probe(sdk);
	d = hw_inventory_find(inv, HF__BACKEND__BACKEND_QNN, 0);
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(d->name, "Qualcomm Hexagon HTP on SM9999");
	ck_assert_str_eq(d->arch, "");
	ck_assert_ptr_null(hw_device_attr(d, "htp_arch"));
}
END_TEST

START_TEST(test_machine_without_sdk_libraries_is_absent)
{
	ck_assert_int_eq(hw_qnn_probe(root, sdk, "riscv64", inv, &st), 0);
	ck_assert(!st.present);
	ck_assert_str_eq(st.reason, "the QNN SDK has no libraries for machine \"riscv64\"");
}
END_TEST

START_TEST(test_htp_versions_of_known_parts)
{
	ck_assert_str_eq(hw_qnn_htp_arch("SM8650"), "v75");
	ck_assert_str_eq(hw_qnn_htp_arch("SM8550"), "v73");
	ck_assert_str_eq(hw_qnn_htp_arch("SM8750"), "v79");
	ck_assert_ptr_null(hw_qnn_htp_arch("SM9999"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_qnn");
	TCase *tc = tcase_create("qnn");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_htp_with_a_fastrpc_node_is_qnn_0_with_its_soc_and_htp_version);
	tcase_add_test(tc, test_sdk_yaml_version_wins_over_the_directory_name);
	tcase_add_test(tc, test_older_adsprpc_smd_node_reaches_the_dsp_too);
	tcase_add_test(tc, test_no_fastrpc_node_is_absent_and_says_the_cpu_backend_loads);
	tcase_add_test(tc, test_only_an_audio_dsp_node_is_absent_naming_it);
	tcase_add_test(tc, test_sdk_without_the_htp_library_is_absent);
	tcase_add_test(tc, test_no_sdk_and_no_library_on_the_search_path_is_absent);
	tcase_add_test(tc, test_a_library_that_is_not_a_qnn_backend_is_absent);
	tcase_add_test(tc, test_unknown_soc_leaves_the_htp_version_to_configuration);
	tcase_add_test(tc, test_machine_without_sdk_libraries_is_absent);
	tcase_add_test(tc, test_htp_versions_of_known_parts);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
