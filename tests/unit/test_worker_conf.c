/* SPDX-License-Identifier: MIT
 *
 * Unit tests for hf-worker's settings (worker/worker-conf.c): the load
 * order, the derived values, the label and command-line parsers, and that
 * --print-config writes a file that loads back to the same configuration.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker-conf.h"

static char *write_tmp(const char *text)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/hfwconfXXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

START_TEST(test_defaults_fill_every_setting)
{
	struct worker_conf c = { 0 };
	char err[256], host[HOST_NAME_MAX + 1] = "";

	ck_assert_int_eq(worker_conf_load(&c, NULL, NULL, 0, err, sizeof(err)), 0);
	ck_assert_str_eq(c.coordinator_url, "tcp://127.0.0.1:7100");
	ck_assert_str_eq(c.state_dir, "/var/lib/hfleet-worker");
	gethostname(host, sizeof(host) - 1);
	ck_assert_str_eq(c.id, host);
	ck_assert_int_eq(c.slots, 1);
	ck_assert_int_eq(c.heartbeat_ms, 1000);
	ck_assert_int_eq(c.drain_timeout_ms, 5 * 60 * 1000);
	ck_assert_int_eq(c.runner_timeout_ms, 30 * 60 * 1000);
	ck_assert_int_eq(c.kill_grace_ms, 10 * 1000);
	ck_assert_int_eq(c.output_limit, 64 * 1024);
	ck_assert_str_eq(c.runner_command, "python3 " HF_RUNNER_DIR "/hfleet_runner.py");
	ck_assert_str_eq(c.runner_argv[0], "python3");
	ck_assert_str_eq(c.runner_argv[1], HF_RUNNER_DIR "/hfleet_runner.py");
	ck_assert_ptr_null(c.runner_argv[2]);
	ck_assert_uint_eq(c.n_labels, 0);
	worker_conf_fini(&c);
	ck_assert_ptr_null(c.coordinator_url);
}
END_TEST

START_TEST(test_file_then_environment_then_options_in_order)
{
	struct worker_conf c = { 0 };
	char err[256];
	char *path = write_tmp("[coordinator]\nurl = tcp://10.0.0.1:7100\n"
			       "[worker]\nslots = 4\nid = from-file\nheartbeat = 250ms\n");
	const struct worker_conf_override ov[] = {
		{ "worker.slots", "2", false },
		{ "worker.slots", "3", false }, /* the later option wins */
		{ "runner.command", "python3 fake_runner.py --sleep 1", false },
	};

	setenv("HFLEET_WORKER_ID", "from-env", 1);
	ck_assert_int_eq(worker_conf_load(&c, path, ov, 3, err, sizeof(err)), 0);
	unsetenv("HFLEET_WORKER_ID");
	unlink(path);
	ck_assert_str_eq(c.coordinator_url, "tcp://10.0.0.1:7100");
	ck_assert_str_eq(c.id, "from-env");
	ck_assert_int_eq(c.slots, 3);
	ck_assert_int_eq(c.heartbeat_ms, 250);
	ck_assert_str_eq(c.runner_argv[0], "python3");
	ck_assert_str_eq(c.runner_argv[3], "1");
	ck_assert_ptr_null(c.runner_argv[4]);
	worker_conf_fini(&c);
}
END_TEST

START_TEST(test_label_options_add_to_the_file_and_the_last_value_wins)
{
	struct worker_conf c = { 0 };
	char err[256];
	char *path = write_tmp("[worker]\nlabels = rack=r1, gpu=none\n");
	const struct worker_conf_override ov[] = {
		{ "worker.labels", "zone=eu-west", true },
		{ "worker.labels", "rack=r7", true },
	};

	ck_assert_int_eq(worker_conf_load(&c, path, ov, 2, err, sizeof(err)), 0);
	unlink(path);
	ck_assert_uint_eq(c.n_labels, 3);
	ck_assert_str_eq(c.label_list[0].key, "rack");
	ck_assert_str_eq(c.label_list[0].value, "r7");
	ck_assert_str_eq(c.label_list[1].key, "gpu");
	ck_assert_str_eq(c.label_list[1].value, "none");
	ck_assert_str_eq(c.label_list[2].key, "zone");
	ck_assert_str_eq(c.label_list[2].value, "eu-west");
	worker_conf_fini(&c);
}
END_TEST

static void assert_refused(const char *name, const char *value, const char *mention)
{
	struct worker_conf c = { 0 };
	char err[512] = "";
	const struct worker_conf_override ov[] = { { name, value, false } };

	ck_assert_int_eq(worker_conf_load(&c, NULL, ov, 1, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, mention), "message \"%s\" does not mention \"%s\"", err, mention);
	worker_conf_fini(&c);
}

START_TEST(test_bad_settings_are_refused_naming_them)
{
	assert_refused("log.level", "loud", "\"log.level\"");
	assert_refused("worker.slots", "0", "worker.slots");
	assert_refused("worker.heartbeat", "forever", "worker.heartbeat");
	assert_refused("worker.id", "two words", "\"worker.id\"");
	assert_refused("runner.command", "   ", "\"runner.command\"");
	assert_refused("worker.labels", "gpu", "\"worker.labels\"");
	assert_refused("worker.nonsense", "1", "\"worker.nonsense\"");
	assert_refused("coordinator.url", "", "\"coordinator.url\"");
	assert_refused("devices.hide", "gpu:0", "\"devices.hide\"");
	assert_refused("devices.slots", "cuda=2", "\"devices.slots\"");
	assert_refused("devices.shared", "cuda:x", "\"devices.shared\"");
	assert_refused("devices.declare", "qnn:0:memroy=8GiB", "\"devices.declare\"");
	assert_refused("hardware.telemetry", "sometimes", "hardware.telemetry");
}
END_TEST

START_TEST(test_device_and_hardware_settings_default_sensibly)
{
	struct worker_conf c = { 0 };
	char err[256];

	ck_assert_int_eq(worker_conf_load(&c, NULL, NULL, 0, err, sizeof(err)), 0);
	ck_assert_str_eq(c.devices_shared, "cpu");
	ck_assert_ptr_null(c.devices_hide);
	ck_assert_str_eq(c.nvml_library, "libnvidia-ml.so.1");
	ck_assert_str_eq(c.openvino_library, "libopenvino_c.so");
	ck_assert_ptr_null(c.qnn_sdk_root);
	ck_assert_ptr_null(c.hw_root);
	ck_assert(c.telemetry);
	ck_assert_uint_eq(c.devconf.n_shared, 1);
	ck_assert(devconf_device_shared(&c.devconf, HF__BACKEND__BACKEND_CPU, 0));
	ck_assert_uint_eq(devconf_device_slots(&c.devconf, HF__BACKEND__BACKEND_CPU, 0), 1);
	worker_conf_fini(&c);
}
END_TEST

START_TEST(test_worker_slots_above_one_need_the_cpu_shared)
{
	struct worker_conf c = { 0 };
	char err[512];
	const struct worker_conf_override ov[] = {
		{ "worker.slots", "4", false },
		{ "devices.shared", "cuda:3", false },
	};

	ck_assert_int_eq(worker_conf_load(&c, NULL, ov, 1, err, sizeof(err)), 0);
	ck_assert_uint_eq(devconf_device_slots(&c.devconf, HF__BACKEND__BACKEND_CPU, 0), 4);
	worker_conf_fini(&c);
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(worker_conf_load(&c, NULL, ov, 2, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "setting \"worker.slots\" gives the CPU 4 slots"));
	worker_conf_fini(&c);
}
END_TEST

START_TEST(test_file_errors_name_the_file_and_line)
{
	struct worker_conf c = { 0 };
	char err[512];
	char *path = write_tmp("[worker]\nslots = 2\nslotz = 3\n");

	ck_assert_int_eq(worker_conf_load(&c, path, NULL, 0, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_ptr_nonnull(strstr(err, "\"slotz\""));
	ck_assert_ptr_nonnull(strstr(err, "line 3"));
	unlink(path);
	worker_conf_fini(&c);
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(worker_conf_load(&c, "/nonexistent/worker.conf", NULL, 0, err, sizeof(err)),
			 -ENOENT);
	worker_conf_fini(&c);
}
END_TEST

START_TEST(test_runner_python_changes_the_default_command_only)
{
	struct worker_conf c = { 0 };
	char err[256];
	const struct worker_conf_override ov[] = { { "runner.python", "/opt/py/bin/python3", false } };
	const struct worker_conf_override ov2[] = {
		{ "runner.python", "/opt/py/bin/python3", false },
		{ "runner.command", "/usr/bin/my-runner", false },
	};

	ck_assert_int_eq(worker_conf_load(&c, NULL, ov, 1, err, sizeof(err)), 0);
	ck_assert_str_eq(c.runner_argv[0], "/opt/py/bin/python3");
	worker_conf_fini(&c);
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(worker_conf_load(&c, NULL, ov2, 2, err, sizeof(err)), 0);
	ck_assert_str_eq(c.runner_argv[0], "/usr/bin/my-runner");
	ck_assert_ptr_null(c.runner_argv[1]);
	worker_conf_fini(&c);
}
END_TEST

START_TEST(test_printed_configuration_loads_back_the_same)
{
	struct worker_conf a = { 0 }, b = { 0 };
	char err[256], path[] = "/tmp/hfwprintXXXXXX";
	const struct worker_conf_override ov[] = {
		{ "worker.id", "w1", false },
		{ "worker.labels", "zone=eu", false },
		{ "worker.drain_timeout", "90s", false },
		{ "runner.kill_grace", "1500ms", false },
		{ "runner.timeout", "2h", false },
		{ "devices.declare", "qnn:0:name=Hexagon HTP v75:memory=8GiB;openvino:0:name=NPU", false },
		{ "devices.shared", "cpu,cuda:3", false },
		{ "devices.slots", "cuda:3=2", false },
		{ "hardware.telemetry", "false", false },
	};
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	ck_assert_int_eq(worker_conf_load(&a, NULL, ov, 9, err, sizeof(err)), 0);
	worker_conf_print(&a, NULL, true, f);
	fclose(f);
	ck_assert_msg(worker_conf_load(&b, path, NULL, 0, err, sizeof(err)) == 0, "%s", err);
	unlink(path);
	ck_assert_str_eq(b.id, "w1");
	ck_assert_str_eq(b.labels, "zone=eu");
	ck_assert_int_eq(b.drain_timeout_ms, 90000);
	ck_assert_int_eq(b.kill_grace_ms, 1500);
	ck_assert_int_eq(b.runner_timeout_ms, 2 * 3600 * 1000);
	ck_assert_str_eq(b.runner_command, a.runner_command);
	ck_assert_str_eq(b.state_dir, a.state_dir);
	ck_assert_str_eq(b.devices_declare, a.devices_declare);
	ck_assert_uint_eq(b.devconf.n_declared, 2);
	ck_assert_uint_eq(devconf_device_slots(&b.devconf, HF__BACKEND__BACKEND_CUDA, 3), 2);
	ck_assert(!b.telemetry);
	worker_conf_fini(&a);
	worker_conf_fini(&b);
}
END_TEST

START_TEST(test_labels_parse_and_refuse_what_is_not_key_value)
{
	struct worker_label *l;
	size_t n;
	char err[256];

	ck_assert_int_eq(worker_labels_parse(" a=1 ,, b.c/d-e_f = x y ,empty=,", &l, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(l[0].key, "a");
	ck_assert_str_eq(l[0].value, "1");
	ck_assert_str_eq(l[1].key, "b.c/d-e_f");
	ck_assert_str_eq(l[1].value, "x y");
	ck_assert_str_eq(l[2].key, "empty");
	ck_assert_str_eq(l[2].value, "");
	worker_labels_free(l, n);

	ck_assert_int_eq(worker_labels_parse(NULL, &l, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 0);
	worker_labels_free(l, n);

	ck_assert_int_eq(worker_labels_parse("gpu", &l, &n, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "\"gpu\" is not key=value"));
	ck_assert_int_eq(worker_labels_parse("=x", &l, &n, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(worker_labels_parse("k y=x", &l, &n, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(worker_labels_parse("k=x\ty\x01", &l, &n, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_command_lines_split_on_blanks)
{
	char **argv;
	size_t argc;

	ck_assert_int_eq(worker_argv_split("  python3\t-u  runner.py --x ", &argv, &argc), 0);
	ck_assert_uint_eq(argc, 4);
	ck_assert_str_eq(argv[0], "python3");
	ck_assert_str_eq(argv[1], "-u");
	ck_assert_str_eq(argv[2], "runner.py");
	ck_assert_str_eq(argv[3], "--x");
	ck_assert_ptr_null(argv[4]);
	worker_argv_free(argv);
	ck_assert_int_eq(worker_argv_split(" \t ", &argv, &argc), -EINVAL);
	ck_assert_int_eq(worker_argv_split(NULL, &argv, &argc), -EINVAL);
}
END_TEST

START_TEST(test_command_lines_quote_like_a_shell)
{
	char **argv;
	size_t argc;

	ck_assert_int_eq(worker_argv_split("'/a b/python 3' \"/c d/r\\\"x.py\" e\\ f g'h'\"i\" ''", &argv,
					   &argc),
			 0);
	ck_assert_uint_eq(argc, 5);
	ck_assert_str_eq(argv[0], "/a b/python 3");
	ck_assert_str_eq(argv[1], "/c d/r\"x.py");
	ck_assert_str_eq(argv[2], "e f");
	ck_assert_str_eq(argv[3], "ghi");
	ck_assert_str_eq(argv[4], "");
	ck_assert_ptr_null(argv[5]);
	worker_argv_free(argv);
	ck_assert_int_eq(worker_argv_split("'a\\b' \"'\"", &argv, &argc), 0);
	ck_assert_str_eq(argv[0], "a\\b");
	ck_assert_str_eq(argv[1], "'");
	worker_argv_free(argv);
	ck_assert_int_eq(worker_argv_split("python 'open", &argv, &argc), -EINVAL);
	ck_assert_int_eq(worker_argv_split("python \"open", &argv, &argc), -EINVAL);
	ck_assert_int_eq(worker_argv_split("python x\\", &argv, &argc), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_conf");
	TCase *tc = tcase_create("conf");

	tcase_add_test(tc, test_defaults_fill_every_setting);
	tcase_add_test(tc, test_file_then_environment_then_options_in_order);
	tcase_add_test(tc, test_label_options_add_to_the_file_and_the_last_value_wins);
	tcase_add_test(tc, test_bad_settings_are_refused_naming_them);
	tcase_add_test(tc, test_device_and_hardware_settings_default_sensibly);
	tcase_add_test(tc, test_worker_slots_above_one_need_the_cpu_shared);
	tcase_add_test(tc, test_file_errors_name_the_file_and_line);
	tcase_add_test(tc, test_runner_python_changes_the_default_command_only);
	tcase_add_test(tc, test_printed_configuration_loads_back_the_same);
	tcase_add_test(tc, test_labels_parse_and_refuse_what_is_not_key_value);
	tcase_add_test(tc, test_command_lines_split_on_blanks);
	tcase_add_test(tc, test_command_lines_quote_like_a_shell);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
