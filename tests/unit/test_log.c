/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the log line shapes (common/hf_log.c): JSON lines that
 * parse whatever the message holds (quotes, newlines, bytes that are not
 * UTF-8), the journal's priority prefixes only when JOURNAL_STREAM names
 * stderr, and one journal entry per call.  Each test points stderr at a
 * file of its own and reads back what was written.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "hf_log.h"

static char path[64];
static int saved_stderr = -1;

/* Points stderr at a new empty file. */
static void capture(void)
{
	strcpy(path, "/tmp/hflogXXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	saved_stderr = dup(STDERR_FILENO);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	close(fd);
}

/* What was written since capture(); the caller frees it. */
static char *captured(void)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	ck_assert_ptr_nonnull(f);
	fread(buf, 1, 65535, f);
	fclose(f);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	unlink(path);
	return buf;
}

static void journal_env(int fd)
{
	struct stat st;
	char v[64];

	ck_assert_int_eq(fstat(fd, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

START_TEST(test_json_lines_parse_whatever_the_message_holds)
{
	json_error_t jerr;

	unsetenv("JOURNAL_STREAM");
	capture();
	hf_log_init("test-log", HF_LOG_DEBUG);
	ck_assert(!hf_log_daemon(HF_LOG_JSON));
	log_warn("quote \" backslash \\ newline\nend, bad bytes \xff\xfe, overlong \xc0\xaf, "
		 "surrogate \xed\xa0\x80, \xe2\x82\xac ok");
	log_debug("second");
	char *out = captured();
	char *nl = strchr(out, '\n');
	ck_assert_ptr_nonnull(nl);
	*nl = '\0';
	json_t *o = json_loads(out, 0, &jerr);
	ck_assert_msg(o != NULL, "%s: %s", out, jerr.text);
	ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "warning");
	ck_assert_str_eq(json_string_value(json_object_get(o, "daemon")), "test-log");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "pid")), getpid());
	const char *msg = json_string_value(json_object_get(o, "msg"));
	ck_assert_ptr_nonnull(strstr(msg, "quote \" backslash \\ newline\nend"));
	ck_assert_ptr_nonnull(strstr(msg, "bad bytes \xef\xbf\xbd\xef\xbf\xbd,"));
	ck_assert_ptr_nonnull(strstr(msg, "overlong \xef\xbf\xbd\xef\xbf\xbd,"));
	ck_assert_ptr_nonnull(strstr(msg, "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd,"));
	ck_assert_ptr_nonnull(strstr(msg, "\xe2\x82\xac ok"));
	json_decref(o);
	o = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, &jerr);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), "second");
	json_decref(o);
	free(out);
}
END_TEST

START_TEST(test_journal_prefixes_only_when_stderr_is_the_journal)
{
	hf_log_init("test-log", HF_LOG_DEBUG);

	capture();
	journal_env(STDERR_FILENO);
	ck_assert(hf_log_daemon(HF_LOG_TEXT));
	log_error("e");
	log_warn("w");
	log_info("two\nlines");
	log_debug("d");
	char *out = captured();
	ck_assert_str_eq(out, "<3>error: e\n<4>warning: w\n<6>info: two lines\n<7>debug: d\n");
	free(out);

	/* JOURNAL_STREAM names another file (the saved stderr): no prefix. */
	capture();
	journal_env(saved_stderr);
	ck_assert(!hf_log_daemon(HF_LOG_TEXT));
	log_info("plain");
	out = captured();
	ck_assert_msg(out[0] != '<' && strstr(out, " test-log[") && strstr(out, "] info: plain\n"), "%s", out);
	free(out);

	/* Malformed values name nothing. */
	ck_assert(!hf_log_is_journal("", STDERR_FILENO));
	ck_assert(!hf_log_is_journal("12", STDERR_FILENO));
	ck_assert(!hf_log_is_journal("12:", STDERR_FILENO));
	ck_assert(!hf_log_is_journal("a:b", STDERR_FILENO));
	ck_assert(!hf_log_is_journal("1:2:3", STDERR_FILENO));
	ck_assert(!hf_log_is_journal(NULL, STDERR_FILENO));

	/* JSON under the journal: the prefix, then the object. */
	capture();
	journal_env(STDERR_FILENO);
	ck_assert(hf_log_daemon(HF_LOG_JSON));
	log_error("boom");
	out = captured();
	ck_assert_msg(strncmp(out, "<3>{\"ts\":", 9) == 0 && strstr(out, "\"msg\":\"boom\"}\n"), "%s", out);
	free(out);
	unsetenv("JOURNAL_STREAM");
	hf_log_daemon(HF_LOG_TEXT);
}
END_TEST

START_TEST(test_formats_parse)
{
	enum hf_log_format f;

	ck_assert_int_eq(hf_log_format_parse("json", &f), 0);
	ck_assert_int_eq(f, HF_LOG_JSON);
	ck_assert_int_eq(hf_log_format_parse("text", &f), 0);
	ck_assert_int_eq(f, HF_LOG_TEXT);
	ck_assert_int_lt(hf_log_format_parse("JSON", &f), 0);
	ck_assert_int_lt(hf_log_format_parse("", &f), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_json_lines_parse_whatever_the_message_holds);
	tcase_add_test(tc, test_journal_prefixes_only_when_stderr_is_the_journal);
	tcase_add_test(tc, test_formats_parse);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
