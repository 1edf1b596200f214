/* SPDX-License-Identifier: MIT
 *
 * common/hf_metrics.c: the Prometheus text rendering (HELP/TYPE, exact
 * integers, escaped label values, cumulative histogram buckets ending in
 * +Inf = _count, shortest round-trip floats) and the bounds on families.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hf_metrics.h"

static char *render(const struct hf_metric *m)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hf_metric_render(m, &b);
	ck_assert(!b.oom);
	return b.data;
}

START_TEST(test_counter_renders_exact_integers)
{
	struct hf_metric *m = hf_metric_new(HF_METRIC_COUNTER, "x_total", "things", 1, NULL, 0);
	char *t;

	ck_assert_ptr_nonnull(m);
	hf_metric_add(m, 0, 25276157952ULL);
	hf_metric_add(m, 0, 18446744073709551615ULL - 25276157952ULL);
	t = render(m);
	ck_assert_str_eq(t, "# HELP x_total things\n# TYPE x_total counter\nx_total 18446744073709551615\n");
	free(t);
	hf_metric_free(m);
}
END_TEST

START_TEST(test_gauge_is_signed)
{
	struct hf_metric *m = hf_metric_new(HF_METRIC_GAUGE, "g", "level", 1, NULL, 0);
	char *t;

	hf_metric_set(m, 0, -42);
	t = render(m);
	ck_assert_ptr_nonnull(strstr(t, "\ng -42\n"));
	free(t);
	hf_metric_free(m);
}
END_TEST

START_TEST(test_label_values_are_escaped)
{
	struct hf_metric *m = hf_metric_new(HF_METRIC_COUNTER, "c_total", "help with \\ and\nnewline, \"quoted\"", 2,
					    NULL, 0);
	const char *name[] = { "worker" };
	const char *v0[] = { "a\"b\\c\nd" };
	const char *v1[] = { "plain" };
	char *t;

	ck_assert_int_eq(hf_metric_labels(m, 0, name, v0, 1), 0);
	ck_assert_int_eq(hf_metric_labels(m, 1, name, v1, 1), 0);
	hf_metric_add(m, 1, 3);
	t = render(m);
	ck_assert_str_eq(t, "# HELP c_total help with \\\\ and\\nnewline, \"quoted\"\n# TYPE c_total counter\n"
			    "c_total{worker=\"a\\\"b\\\\c\\nd\"} 0\nc_total{worker=\"plain\"} 3\n");
	free(t);
	hf_metric_free(m);
}
END_TEST

START_TEST(test_bad_label_names_and_sizes_are_refused)
{
	struct hf_metric *m = hf_metric_new(HF_METRIC_COUNTER, "c_total", "h", 1, NULL, 0);
	const char *bad[] = { "1x" }, *le[] = { "le" }, *dash[] = { "a-b" }, *v[] = { "v" };
	static const double unsorted[] = { 1, 0.5 };

	ck_assert_int_lt(hf_metric_labels(m, 0, bad, v, 1), 0);
	ck_assert_int_lt(hf_metric_labels(m, 0, le, v, 1), 0);
	ck_assert_int_lt(hf_metric_labels(m, 0, dash, v, 1), 0);
	ck_assert_int_lt(hf_metric_labels(m, 1, (const char *[]){ "ok" }, v, 1), 0); /* no series 1 */
	hf_metric_free(m);
	ck_assert_ptr_null(hf_metric_new(HF_METRIC_COUNTER, "c", "h", 0, NULL, 0));
	ck_assert_ptr_null(hf_metric_new(HF_METRIC_COUNTER, "c", "h", HF_METRIC_MAX_SERIES + 1, NULL, 0));
	ck_assert_ptr_null(hf_metric_new(HF_METRIC_HISTOGRAM, "h", "h", 1, unsorted, 2));
	ck_assert_ptr_null(hf_metric_new(HF_METRIC_HISTOGRAM, "h", "h", 1, NULL, 0));
}
END_TEST

START_TEST(test_histogram_buckets_are_cumulative)
{
	static const double bounds[] = { 0.001, 0.5, 10 };
	struct hf_metric *m = hf_metric_new(HF_METRIC_HISTOGRAM, "d_seconds", "durations", 1, bounds, 3);
	char *t;

	hf_metric_observe_us(m, 0, 1000);     /* exactly on 0.001: le is inclusive */
	hf_metric_observe_us(m, 0, 250000);
	hf_metric_observe_us(m, 0, 250000);
	hf_metric_observe_us(m, 0, 20000000); /* past the last bound: +Inf only */
	t = render(m);
	ck_assert_str_eq(t, "# HELP d_seconds durations\n# TYPE d_seconds histogram\n"
			    "d_seconds_bucket{le=\"0.001\"} 1\n"
			    "d_seconds_bucket{le=\"0.5\"} 3\n"
			    "d_seconds_bucket{le=\"10\"} 3\n"
			    "d_seconds_bucket{le=\"+Inf\"} 4\n"
			    "d_seconds_sum 20.501\n"
			    "d_seconds_count 4\n");
	ck_assert_uint_eq(hf_metric_get(m, 0), 4);
	free(t);
	hf_metric_free(m);
}
END_TEST

START_TEST(test_histogram_labels_come_before_le)
{
	static const double bounds[] = { 1 };
	struct hf_metric *m = hf_metric_new(HF_METRIC_HISTOGRAM, "h", "x", 2, bounds, 1);
	const char *n[] = { "op" }, *v[] = { "store" };
	char *t;

	hf_metric_labels(m, 0, n, v, 1);
	hf_metric_observe_us(m, 0, 5);
	t = render(m);
	ck_assert_ptr_nonnull(strstr(t, "h_bucket{op=\"store\",le=\"1\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(t, "h_sum{op=\"store\"} 5e-06\n"));
	ck_assert_ptr_nonnull(strstr(t, "h_count{op=\"store\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(t, "h_bucket{le=\"+Inf\"} 0\n")); /* the unlabelled series */
	free(t);
	hf_metric_free(m);
}
END_TEST

START_TEST(test_doubles_are_shortest_round_trip)
{
	char s[40];

	hf_metrics_format_double(s, sizeof(s), 0.1);
	ck_assert_str_eq(s, "0.1");
	hf_metrics_format_double(s, sizeof(s), 25276157952.0);
	ck_assert_str_eq(s, "25276157952");
	hf_metrics_format_double(s, sizeof(s), 1.0 / 3);
	ck_assert_double_eq(strtod(s, NULL), 1.0 / 3);
	hf_metrics_format_double(s, sizeof(s), INFINITY);
	ck_assert_str_eq(s, "+Inf");
	hf_metrics_format_double(s, sizeof(s), NAN);
	ck_assert_str_eq(s, "NaN");
}
END_TEST

START_TEST(test_process_and_build_info)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hf_metrics_render_build_info(&b);
	hf_metrics_render_process(&b, 1700000000.5);
	ck_assert(!b.oom);
	ck_assert_ptr_nonnull(strstr(b.data, "hfleet_build_info{version=\"" HF_VERSION "\",protocol=\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\nprocess_start_time_seconds 1700000000.5\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "# TYPE process_cpu_seconds_total counter\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "\nprocess_open_fds "));
	ck_assert_ptr_nonnull(strstr(b.data, "\nprocess_resident_memory_bytes "));
	hf_buf_fini(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("render");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_counter_renders_exact_integers);
	tcase_add_test(tc, test_gauge_is_signed);
	tcase_add_test(tc, test_label_values_are_escaped);
	tcase_add_test(tc, test_bad_label_names_and_sizes_are_refused);
	tcase_add_test(tc, test_histogram_buckets_are_cumulative);
	tcase_add_test(tc, test_histogram_labels_come_before_le);
	tcase_add_test(tc, test_doubles_are_shortest_round_trip);
	tcase_add_test(tc, test_process_and_build_info);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
