/* SPDX-License-Identifier: MIT
 *
 * Unit tests for declarative configuration (common/hf_conf.c).
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_conf.h"

struct cfg {
	char *listen;
	int64_t slots;
	bool tls;
	int64_t lease_ms;
};

static const struct hf_conf_setting table[] = {
	{ "net.listen", HF_CONF_STRING, offsetof(struct cfg, listen), "tcp://127.0.0.1:1", 0, -1, "TEST_LISTEN", "address" },
	{ "work.slots", HF_CONF_INT, offsetof(struct cfg, slots), "2", 1, 64, NULL, "slots" },
	{ "net.tls", HF_CONF_BOOL, offsetof(struct cfg, tls), "false", 0, -1, NULL, "tls" },
	{ "work.lease", HF_CONF_MS, offsetof(struct cfg, lease_ms), "30s", 100, 3600000, NULL, "lease" },
	{ NULL, 0, 0, NULL, 0, 0, NULL, NULL },
};

static char *write_tmp(const char *text)
{
	static char path[64];
	strcpy(path, "/tmp/hfconfXXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

START_TEST(test_defaults_then_file_then_set)
{
	struct cfg c = { 0 };
	char err[256];
	ck_assert_int_eq(hf_conf_defaults(table, &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.listen, "tcp://127.0.0.1:1");
	ck_assert_int_eq(c.slots, 2);
	ck_assert_int_eq(c.lease_ms, 30000);

	char *p = write_tmp("[net]\nlisten = tcp://0.0.0.0:9\ntls = yes\n[work]\nlease = 1500ms\n");
	ck_assert_int_eq(hf_conf_load_file(table, &c, p, err, sizeof(err)), 0);
	unlink(p);
	ck_assert_str_eq(c.listen, "tcp://0.0.0.0:9");
	ck_assert(c.tls);
	ck_assert_int_eq(c.lease_ms, 1500);

	ck_assert_int_eq(hf_conf_set(table, &c, "work.slots", "8", err, sizeof(err)), 0);
	ck_assert_int_eq(c.slots, 8);
	hf_conf_fini(table, &c);
	ck_assert_ptr_null(c.listen);
}
END_TEST

START_TEST(test_unknown_key_is_an_error_naming_it)
{
	struct cfg c = { 0 };
	char err[256];
	hf_conf_defaults(table, &c, err, sizeof(err));
	char *p = write_tmp("[net]\nlisten = x\nlistne = y\n");
	ck_assert_int_eq(hf_conf_load_file(table, &c, p, err, sizeof(err)), -EINVAL);
	unlink(p);
	ck_assert_ptr_nonnull(strstr(err, "\"listne\""));
	ck_assert_ptr_nonnull(strstr(err, "line 3"));
	hf_conf_fini(table, &c);
}
END_TEST

/* Text in memory goes through the same checks as a file, and a message
 * names the text by the name given and the line. */
START_TEST(test_text_in_memory_reads_like_a_file)
{
	struct cfg c = { 0 };
	char err[256];
	hf_conf_defaults(table, &c, err, sizeof(err));
	ck_assert_int_eq(hf_conf_load_string(table, &c, "[net]\ntls = on\n[work]\nlease = 2s\n",
					     "inline", err, sizeof(err)), 0);
	ck_assert(c.tls);
	ck_assert_int_eq(c.lease_ms, 2000);
	ck_assert_int_eq(hf_conf_load_string(table, &c, "[work]\nslots = 4\nslots = 65\n", "inline",
					     err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "inline: "));
	ck_assert_ptr_nonnull(strstr(err, "work.slots"));
	ck_assert_ptr_nonnull(strstr(err, "line 3"));
	ck_assert_int_eq(hf_conf_load_string(table, &c, "[work\n", "inline", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "inline:1: syntax error");
	hf_conf_fini(table, &c);
}
END_TEST

START_TEST(test_out_of_range_and_malformed_values_are_refused)
{
	struct cfg c = { 0 };
	char err[256];
	hf_conf_defaults(table, &c, err, sizeof(err));
	ck_assert_int_eq(hf_conf_set(table, &c, "work.slots", "0", err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "work.slots"));
	ck_assert_int_eq(c.slots, 2);
	ck_assert_int_eq(hf_conf_set(table, &c, "work.slots", "3x", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(hf_conf_set(table, &c, "work.lease", "5 parsecs", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(hf_conf_set(table, &c, "net.tls", "maybe", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(hf_conf_set(table, &c, "no.such", "1", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(hf_conf_load_file(table, &c, "/nonexistent/x.conf", err, sizeof(err)), -ENOENT);
	hf_conf_fini(table, &c);
}
END_TEST

START_TEST(test_environment_overrides_file)
{
	struct cfg c = { 0 };
	char err[256];
	hf_conf_defaults(table, &c, err, sizeof(err));
	setenv("TEST_LISTEN", "ipc:///tmp/x", 1);
	ck_assert_int_eq(hf_conf_load_env(table, &c, err, sizeof(err)), 0);
	unsetenv("TEST_LISTEN");
	ck_assert_str_eq(c.listen, "ipc:///tmp/x");
	hf_conf_fini(table, &c);
}
END_TEST

START_TEST(test_durations_parse_units)
{
	int64_t ms;
	ck_assert_int_eq(hf_conf_parse_ms("250", &ms), 0);
	ck_assert_int_eq(ms, 250);
	ck_assert_int_eq(hf_conf_parse_ms("2m", &ms), 0);
	ck_assert_int_eq(ms, 120000);
	ck_assert_int_eq(hf_conf_parse_ms("1h", &ms), 0);
	ck_assert_int_eq(ms, 3600000);
	ck_assert_int_eq(hf_conf_parse_ms("-5s", &ms), -EINVAL);
	ck_assert_int_eq(hf_conf_parse_ms("", &ms), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("conf");
	tcase_add_test(tc, test_defaults_then_file_then_set);
	tcase_add_test(tc, test_unknown_key_is_an_error_naming_it);
	tcase_add_test(tc, test_text_in_memory_reads_like_a_file);
	tcase_add_test(tc, test_out_of_range_and_malformed_values_are_refused);
	tcase_add_test(tc, test_environment_overrides_file);
	tcase_add_test(tc, test_durations_parse_units);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
