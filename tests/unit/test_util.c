/* SPDX-License-Identifier: MIT
 *
 * Unit tests for common/hf_util.c's buffer and number formatting: the
 * hand-rolled integers agree with printf at every edge (the database layer
 * writes every number of every row with them), and hf_buf_printf keeps the
 * whole text whether it fits the room left, fills it exactly, or overflows
 * it (it formats once into the room and again only when that was short).
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"

START_TEST(test_integers_agree_with_printf)
{
	static const int64_t signed_v[] = { 0, 1, -1, 9, 10, -10, 99, 100, 123456789, -123456789,
					    INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, INT64_MIN + 1 };
	static const uint64_t unsigned_v[] = { 0, 1, 9, 10, 4294967295u, 4294967296u, UINT64_MAX,
					       UINT64_MAX - 1, 10000000000000000000u };
	char got[HF_FMT_INT_MAX], want[32];

	for (size_t i = 0; i < sizeof(signed_v) / sizeof(*signed_v); i++) {
		size_t n = hf_fmt_i64(got, signed_v[i]);
		snprintf(want, sizeof(want), "%" PRId64, signed_v[i]);
		ck_assert_str_eq(got, want);
		ck_assert_uint_eq(n, strlen(want));
	}
	for (size_t i = 0; i < sizeof(unsigned_v) / sizeof(*unsigned_v); i++) {
		size_t n = hf_fmt_u64(got, unsigned_v[i]);
		snprintf(want, sizeof(want), "%" PRIu64, unsigned_v[i]);
		ck_assert_str_eq(got, want);
		ck_assert_uint_eq(n, strlen(want));
	}
}
END_TEST

START_TEST(test_buf_put_appends_numbers)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hf_buf_puts(&b, "{");
	hf_buf_put_u64(&b, 18446744073709551615u);
	hf_buf_puts(&b, ",");
	hf_buf_put_i64(&b, INT64_MIN);
	hf_buf_puts(&b, "}");
	ck_assert(!b.oom);
	ck_assert_str_eq(b.data, "{18446744073709551615,-9223372036854775808}");
	ck_assert_uint_eq(b.len, strlen(b.data));
	hf_buf_fini(&b);
}
END_TEST

/* Texts of every length around the room left: the buffer holds exactly
 * what printf would write, NUL-terminated, whatever the room was. */
START_TEST(test_buf_json_string_escapes_what_json_needs)
{
	struct hf_buf b = { 0 };

	hf_buf_json_string(&b, "plain");
	hf_buf_json_string(&b, "q\"b\\n\nt\tdel\x7f\x01" "end");
	hf_buf_json_string(&b, "caf\xc3\xa9"); /* UTF-8 passes as it is */
	hf_buf_json_string(&b, "");
	hf_buf_json_string(&b, NULL);
	ck_assert_str_eq(b.data, "\"plain\"\"q\\\"b\\\\n\\u000at\\u0009del\\u007f\\u0001end\""
				 "\"caf\xc3\xa9\"\"\"");
	free(b.data);
}
END_TEST

START_TEST(test_buf_printf_at_every_room)
{
	char text[600], want[1400];

	for (size_t prefix = 0; prefix < 300; prefix += 7) {
		for (size_t len = 0; len < 600; len += 13) {
			struct hf_buf b;

			memset(text, 'x', len);
			text[len] = '\0';
			hf_buf_init(&b);
			for (size_t i = 0; i < prefix; i++)
				hf_buf_append(&b, "p", 1);
			hf_buf_printf(&b, "<%s|%zu>", text, len);
			hf_buf_printf(&b, "%d", 7);
			memset(want, 'p', prefix);
			snprintf(want + prefix, sizeof(want) - prefix, "<%s|%zu>7", text, len);
			ck_assert(!b.oom);
			ck_assert_uint_eq(b.len, strlen(want));
			ck_assert_str_eq(b.data, want);
			hf_buf_fini(&b);
		}
	}
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_integers_agree_with_printf);
	tcase_add_test(tc, test_buf_put_appends_numbers);
	tcase_add_test(tc, test_buf_printf_at_every_room);
	tcase_add_test(tc, test_buf_json_string_escapes_what_json_needs);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(util_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
