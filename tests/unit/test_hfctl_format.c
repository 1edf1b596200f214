/* SPDX-License-Identifier: MIT
 *
 * Unit tests for hfctl's text rendering (coordinator/hfctl/hfctl-format.c):
 * the watch progress line at its edges, tables, CSV quoting, durations, the
 * summaries of counts, devices and runtimes, the fleet's devices table, the
 * message for a job no device can run, and what drain, undrain and explain
 * print.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_fit.h"
#include "hfctl-format.h"
#include "hfctl-html.h"
#include "hfctl_fleet_fixture.h"

/* The example of the manual: 171 of 300 finished. */
static struct hfctl_counts counts_57(void)
{
	struct hfctl_counts c = { .total = 300 };

	c.n[HF__TASK_STATUS__STATUS_PASSED] = 150;
	c.n[HF__TASK_STATUS__STATUS_FAILED] = 3;
	c.n[HF__TASK_STATUS__STATUS_ERROR] = 2;
	c.n[HF__TASK_STATUS__STATUS_SKIPPED] = 16;
	c.n[HF__TASK_STATUS__STATUS_RUNNING] = 3;
	c.n[HF__TASK_STATUS__STATUS_LEASED] = 1;
	c.n[HF__TASK_STATUS__STATUS_QUEUED] = 125;
	return c;
}

static size_t count_char(const char *s, char ch)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == ch;
	return n;
}

START_TEST(test_progress_at_57_percent_matches_the_manual)
{
	struct hfctl_counts c = counts_57();
	char line[512];
	size_t n = hfctl_progress_format(&c, 72000, 200, line, sizeof(line));

	/* 171 / 300 of 40 columns is 22.8: 22 filled. */
	ck_assert_str_eq(line, "[######################..................]  57% 171/300  passed 150 failed 3 "
			       "error 2 skipped 16 running 4 queued 125  elapsed 1m12s");
	ck_assert_uint_eq(n, strlen(line));
}
END_TEST

START_TEST(test_progress_at_0_percent_has_an_empty_bar)
{
	struct hfctl_counts c = { .total = 300 };
	char line[512];

	c.n[HF__TASK_STATUS__STATUS_QUEUED] = 300;
	hfctl_progress_format(&c, 0, 200, line, sizeof(line));
	ck_assert_str_eq(line, "[........................................]   0% 0/300  passed 0 failed 0 "
			       "error 0 skipped 0 running 0 queued 300  elapsed 0s");
}
END_TEST

START_TEST(test_progress_reaches_100_percent_only_when_all_are_done)
{
	struct hfctl_counts c = { .total = 300 };
	char line[512];

	c.n[HF__TASK_STATUS__STATUS_PASSED] = 299;
	c.n[HF__TASK_STATUS__STATUS_RUNNING] = 1;
	hfctl_progress_format(&c, 0, 200, line, sizeof(line));
	ck_assert_ptr_nonnull(strstr(line, "  99% 299/300"));
	ck_assert_uint_eq(count_char(line, '#'), 39);

	c.n[HF__TASK_STATUS__STATUS_PASSED] = 300;
	c.n[HF__TASK_STATUS__STATUS_RUNNING] = 0;
	hfctl_progress_format(&c, 3723000, 200, line, sizeof(line));
	ck_assert_str_eq(line, "[########################################] 100% 300/300  passed 300 failed 0 "
			       "error 0 skipped 0 running 0 queued 0  elapsed 1h02m");
}
END_TEST

START_TEST(test_progress_shows_timeout_and_cancelled_only_when_not_zero)
{
	struct hfctl_counts c = counts_57();
	char line[512];

	hfctl_progress_format(&c, 0, 0, line, sizeof(line));
	ck_assert_ptr_null(strstr(line, "timeout"));
	ck_assert_ptr_null(strstr(line, "cancelled"));
	c.n[HF__TASK_STATUS__STATUS_TIMEOUT] = 1;
	c.n[HF__TASK_STATUS__STATUS_CANCELLED] = 2;
	hfctl_progress_format(&c, 0, 0, line, sizeof(line));
	ck_assert_ptr_nonnull(strstr(line, "error 2 timeout 1 skipped 16 cancelled 2 running 4"));
}
END_TEST

START_TEST(test_progress_without_terminal_has_no_bar_and_no_limit)
{
	struct hfctl_counts c = counts_57();
	char line[512];

	hfctl_progress_format(&c, 72000, 0, line, sizeof(line));
	ck_assert_str_eq(line, "57% 171/300  passed 150 failed 3 error 2 skipped 16 running 4 queued 125  "
			       "elapsed 1m12s");
}
END_TEST

START_TEST(test_progress_on_80_columns_keeps_a_bar_and_the_failures)
{
	struct hfctl_counts c = counts_57();
	char line[512];
	size_t n = hfctl_progress_format(&c, 72000, 80, line, sizeof(line));

	ck_assert_uint_le(n, 79);
	ck_assert_int_eq(line[0], '[');
	ck_assert_ptr_nonnull(strstr(line, "]  57% 171/300  failed 3 error 2 running 4  elapsed 1m12s"));
	ck_assert_ptr_null(strstr(line, "passed"));
}
END_TEST

START_TEST(test_progress_on_narrow_terminal_keeps_bar_and_percentage)
{
	struct hfctl_counts c = counts_57();
	char line[512];
	size_t n = hfctl_progress_format(&c, 72000, 45, line, sizeof(line));

	ck_assert_uint_le(n, 44);
	ck_assert_str_eq(line, "[#######.......]  57% 171/300  elapsed 1m12s");
}
END_TEST

START_TEST(test_progress_on_tiny_terminal_drops_the_bar_and_never_wraps)
{
	struct hfctl_counts c = counts_57();
	char line[512];

	for (size_t width = 1; width < 45; width++) {
		size_t n = hfctl_progress_format(&c, 72000, width, line, sizeof(line));

		ck_assert_uint_le(n, width - 1);
		ck_assert_uint_eq(n, strlen(line));
	}
	/* Room for a bar of 7: too narrow to be worth drawing. */
	hfctl_progress_format(&c, 72000, 38, line, sizeof(line));
	ck_assert_str_eq(line, "57% 171/300  elapsed 1m12s");
	hfctl_progress_format(&c, 72000, 20, line, sizeof(line));
	ck_assert_str_eq(line, "57% 171/300  elapse");
	hfctl_progress_format(&c, 72000, 1, line, sizeof(line));
	ck_assert_str_eq(line, "");
}
END_TEST

START_TEST(test_progress_of_a_job_without_tasks_is_complete)
{
	struct hfctl_counts c = { 0 };
	char line[512];

	hfctl_progress_format(&c, 0, 200, line, sizeof(line));
	ck_assert_ptr_nonnull(strstr(line, "########################################] 100% 0/0"));
}
END_TEST

START_TEST(test_progress_fits_small_buffer_terminated)
{
	struct hfctl_counts c = counts_57();
	char line[16];
	size_t n = hfctl_progress_format(&c, 0, 200, line, sizeof(line));

	ck_assert_uint_eq(n, 15);
	ck_assert_str_eq(line, "[##############");
}
END_TEST

START_TEST(test_table_pads_columns_and_aligns_numbers_right)
{
	static const struct hfctl_column cols[] = {
		{ "ID", true, 0 }, { "MODEL", false, 0 }, { "NOTE", false, 0 },
	};
	struct hfctl_table *t = hfctl_table_new(cols, 3);
	struct hf_buf b;

	hfctl_table_add(t, (const char *[]){ "7", "bert", "ok" });
	hfctl_table_add(t, (const char *[]){ "1234", "mistral", "" });
	hfctl_table_add(t, (const char *[]){ "56", "t5", NULL });
	hf_buf_init(&b);
	hfctl_table_render(t, &b);
	ck_assert(!b.oom);
	ck_assert_str_eq(b.data, "  ID  MODEL    NOTE\n"
				 "   7  bert     ok\n"
				 "1234  mistral\n"
				 "  56  t5\n");
	hf_buf_fini(&b);
	hfctl_table_free(t);
}
END_TEST

START_TEST(test_table_counts_utf8_characters_not_bytes)
{
	static const struct hfctl_column cols[] = { { "A", false, 0 }, { "B", false, 0 } };
	struct hfctl_table *t = hfctl_table_new(cols, 2);
	struct hf_buf b;

	hfctl_table_add(t, (const char *[]){ "\xc3\xa9t\xc3\xa9", "x" }); /* "été" */
	hfctl_table_add(t, (const char *[]){ "abc", "y" });
	hf_buf_init(&b);
	hfctl_table_render(t, &b);
	ck_assert_str_eq(b.data, "A    B\n"
				 "\xc3\xa9t\xc3\xa9  x\n"
				 "abc  y\n");
	hf_buf_fini(&b);
	hfctl_table_free(t);
}
END_TEST

START_TEST(test_table_cuts_long_cells_and_flattens_control_characters)
{
	static const struct hfctl_column cols[] = { { "S", false, 0 }, { "REASON", false, 10 } };
	struct hfctl_table *t = hfctl_table_new(cols, 2);
	struct hf_buf b;

	hfctl_table_add(t, (const char *[]){ "failed", "line one\nline two" });
	hfctl_table_add(t, (const char *[]){ "error", "a\tb\033[31mc" });
	hfctl_table_add(t, (const char *[]){ "error", "\xc2\x9b" "2J" }); /* C1 CSI */
	hf_buf_init(&b);
	hfctl_table_render(t, &b);
	ck_assert_str_eq(b.data, "S       REASON\n"
				 "failed  line on...\n"
				 "error   a b [31mc\n"
				 "error     2J\n");
	hf_buf_fini(&b);
	hfctl_table_free(t);
}
END_TEST

START_TEST(test_table_whole_column_is_not_cut_and_the_others_still_are)
{
	static const struct hfctl_column cols[] = { { "DEVICE", false, 6 }, { "REASON", false, 10 } };
	struct hfctl_table *t = hfctl_table_new(cols, 2);
	struct hf_buf b;

	hfctl_table_whole(t, 1);
	hfctl_table_whole(t, 2); /* no such column: ignored */
	hfctl_table_add(t, (const char *[]){ "NVIDIA H200", "line one\nline two" });
	hf_buf_init(&b);
	hfctl_table_render(t, &b);
	ck_assert_str_eq(b.data, "DEVICE  REASON\n"
				 "NVI...  line one line two\n");
	hf_buf_fini(&b);
	hfctl_table_free(t);
	hfctl_table_whole(NULL, 0);
}
END_TEST

START_TEST(test_table_that_failed_to_allocate_reports_oom)
{
	struct hf_buf b;

	hfctl_table_add(NULL, (const char *[]){ "x" });
	hf_buf_init(&b);
	hfctl_table_render(NULL, &b);
	ck_assert(b.oom);
	hf_buf_fini(&b);
	hfctl_table_free(NULL);
}
END_TEST

START_TEST(test_csv_quotes_commas_quotes_and_newlines)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_csv_record(&b, (const char *[]){ "plain", "a,b", "say \"hi\"", "two\nlines", "cr\r",
					       "", NULL },
			 7);
	ck_assert_str_eq(b.data, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\r\",,\r\n");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_csv_leaves_other_text_alone)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_csv_field(&b, " spaced; 'single' \xc3\xa9 ");
	ck_assert_str_eq(b.data, " spaced; 'single' \xc3\xa9 ");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_duration_formats_each_range)
{
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
		{ -5, "0s" },		{ 0, "0s" },		  { 1, "1ms" },
		{ 850, "850ms" },	{ 1000, "1s" },		  { 1050, "1s" },
		{ 2500, "2.5s" },	{ 9999, "9.9s" },	  { 10000, "10s" },
		{ 45900, "45s" },	{ 60000, "1m00s" },	  { 72000, "1m12s" },
		{ 3599000, "59m59s" },	{ 3600000, "1h00m" },	  { 3723000, "1h02m" },
		{ 86400000, "1d00h" },	{ 277200000, "3d05h" },
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hfctl_duration_format(cases[i].ms, buf, sizeof(buf));
		ck_assert_msg(strcmp(buf, cases[i].text) == 0, "%lld ms: got \"%s\", want \"%s\"",
			      (long long)cases[i].ms, buf, cases[i].text);
	}
}
END_TEST

START_TEST(test_ago_counts_whole_seconds_and_knows_never)
{
	char buf[32];

	hfctl_ago_format(1000.9, 996.5, buf, sizeof(buf));
	ck_assert_str_eq(buf, "4s ago");
	hfctl_ago_format(10000, 10000 - 3725, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1h02m ago");
	hfctl_ago_format(1000, 1005, buf, sizeof(buf));
	ck_assert_str_eq(buf, "0s ago");
	hfctl_ago_format(1000, 0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "never");
}
END_TEST

START_TEST(test_time_of_zero_is_a_dash)
{
	char buf[32];

	hfctl_time_format(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "-");
	setenv("TZ", "UTC", 1);
	tzset();
	hfctl_time_format(1732279503.7, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2024-11-22 12:45:03");
}
END_TEST

START_TEST(test_summary_lists_non_zero_statuses_in_order)
{
	struct hfctl_counts c = counts_57();
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_summary_format(&c, &b);
	ck_assert_str_eq(b.data, "300 tasks: 150 passed, 3 failed, 2 error, 16 skipped, 3 running, "
				 "1 leased, 125 queued");
	hf_buf_fini(&b);

	c = (struct hfctl_counts){ 0 };
	hfctl_counts_add(&c, HF__TASK_STATUS__STATUS_TIMEOUT);
	hf_buf_init(&b);
	hfctl_summary_format(&c, &b);
	ck_assert_str_eq(b.data, "1 task: 1 timeout");
	hf_buf_fini(&b);

	c = (struct hfctl_counts){ 0 };
	hf_buf_init(&b);
	hfctl_summary_format(&c, &b);
	ck_assert_str_eq(b.data, "0 tasks");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_counts_from_job_and_what_counts_as_failed)
{
	Hf__StatusCount sc[4] = { HF__STATUS_COUNT__INIT, HF__STATUS_COUNT__INIT,
				  HF__STATUS_COUNT__INIT, HF__STATUS_COUNT__INIT };
	Hf__StatusCount *scp[4] = { &sc[0], &sc[1], &sc[2], &sc[3] };
	Hf__JobStatus js = HF__JOB_STATUS__INIT;
	struct hfctl_counts c;

	sc[0].status = HF__TASK_STATUS__STATUS_PASSED;
	sc[0].count = 5;
	sc[1].status = HF__TASK_STATUS__STATUS_TIMEOUT;
	sc[1].count = 2;
	sc[2].status = HF__TASK_STATUS__STATUS_CANCELLED;
	sc[2].count = 1;
	sc[3].status = (Hf__TaskStatus)77; /* from a newer coordinator */
	sc[3].count = 9;
	js.total = 17;
	js.n_counts = 4;
	js.counts = scp;
	hfctl_counts_from_job(&js, &c);
	ck_assert_uint_eq(c.total, 17);
	ck_assert_uint_eq(c.n[HF__TASK_STATUS__STATUS_PASSED], 5);
	ck_assert_uint_eq(hfctl_counts_done(&c), 8);
	ck_assert_uint_eq(hfctl_counts_failed(&c), 2); /* timeout, not cancelled */
}
END_TEST

START_TEST(test_devices_and_runtimes_summaries)
{
	Hf__Device d[3] = { HF__DEVICE__INIT, HF__DEVICE__INIT, HF__DEVICE__INIT };
	Hf__Device *dp[3] = { &d[0], &d[1], &d[2] };
	Hf__Runtime rt[3] = { HF__RUNTIME__INIT, HF__RUNTIME__INIT, HF__RUNTIME__INIT };
	Hf__Runtime *rtp[3] = { &rt[0], &rt[1], &rt[2] };
	struct hf_buf b;

	d[0].backend = HF__BACKEND__BACKEND_CPU;
	d[0].slots = 2;
	d[1].backend = HF__BACKEND__BACKEND_CUDA;
	d[1].slots = 1;
	d[2].backend = HF__BACKEND__BACKEND_CUDA;
	d[2].index = 1;
	hf_buf_init(&b);
	hfctl_devices_format(dp, 3, &b);
	ck_assert_str_eq(b.data, "cpu:0 x2, cuda:0, cuda:1");
	hf_buf_fini(&b);

	rt[0].name = "torch";
	rt[0].version = "2.11.0+cu128";
	rt[0].available = true;
	rt[1].name = "transformers";
	rt[1].version = "5.17.0";
	rt[1].available = false;
	rt[2].name = "python";
	rt[2].available = true;
	hf_buf_init(&b);
	hfctl_runtimes_format(rtp, 3, &b);
	ck_assert_str_eq(b.data, "torch 2.11.0+cu128, transformers absent, python");
	hf_buf_fini(&b);

	hf_buf_init(&b);
	hfctl_devices_format(NULL, 0, &b);
	hfctl_runtimes_format(NULL, 0, &b);
	ck_assert_str_eq(b.data, "--");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_devices_table_shows_telemetry_and_dashes_when_unavailable)
{
	struct fleet f;
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_devices_table_format(fleet_new(&f), &b);
	ck_assert(!b.oom);
	ck_assert_str_eq(b.data,
		"WORKER  DEVICE  NAME                               MEMORY  ARCH     DRIVER      UTIL  MEM-USED  TEMP  POWER  RUNNING  CONNECTED  STATE\n"
		"gpu-01  cuda:0  NVIDIA H100 80GB HBM3            79.6 GiB  9.0 MIG  570.124.06   37%  12.0 GiB   41C   122W        1  yes        in-service\n"
		"gpu-01  cuda:1  NVIDIA L4                        24.0 GiB  -        570.124.06     -         -     -      -        0  yes        quarantined\n"
		"cpu-07  rocm:0  AMD Instinct MI300X (declared)  192.0 GiB  gfx942   -              -         -     -      -        0  no         -\n"
		"3 devices on 2 workers\n"
		"\n"
		"quarantined devices:\n"
		"  gpu-01/cuda:1: health check failed: matmul differs from the CPU's\n"
		"\n"
		"absent backends:\n"
		"  gpu-01/rocm: no /dev/kfd\n"
		"  cpu-07/cuda: libnvidia-ml.so.1 not found\n");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_devices_table_without_devices_or_absent_backends)
{
	Hf__DevicesReply r = HF__DEVICES_REPLY__INIT;
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_devices_table_format(&r, &b);
	ck_assert_str_eq(b.data, "0 devices on 0 workers\n");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_devices_table_flattens_control_characters_in_reasons)
{
	Hf__KeyValue kv = HF__KEY_VALUE__INIT;
	Hf__KeyValue *kvs[] = { &kv };
	Hf__DevicesReply r = HF__DEVICES_REPLY__INIT;
	struct hf_buf b;

	kv.key = "w1/qnn";
	kv.value = "libQnnHtp.so: cannot open\n\033[2Jshared object";
	r.n_absent = 1;
	r.absent = kvs;
	hf_buf_init(&b);
	hfctl_devices_table_format(&r, &b);
	ck_assert_str_eq(b.data, "0 devices on 0 workers\n\nabsent backends:\n"
				 "  w1/qnn: libQnnHtp.so: cannot open  [2Jshared object\n");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_absent_key_splits_at_the_last_slash)
{
	const char *backend;
	size_t len;

	hfctl_absent_key_split("gpu-01/rocm", &len, &backend);
	ck_assert_uint_eq(len, 6);
	ck_assert_str_eq(backend, "rocm");
	hfctl_absent_key_split("rack/a/gpu-01/cuda", &len, &backend);
	ck_assert_uint_eq(len, 13);
	ck_assert_str_eq(backend, "cuda");
	hfctl_absent_key_split("lonely", &len, &backend);
	ck_assert_uint_eq(len, 6);
	ck_assert_str_eq(backend, "");
}
END_TEST

START_TEST(test_unsatisfiable_message_gets_the_hint_once)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_unsatisfiable_format("no registered device can run these tasks: cuda: no device has "
				   "compute capability 9.0 (gpu-01 cuda:0 has 8.0)", &b);
	ck_assert_str_eq(b.data, "no registered device can run these tasks: cuda: no device has "
				 "compute capability 9.0 (gpu-01 cuda:0 has 8.0) (use --allow-waiting to "
				 "queue the tasks anyway)");
	hf_buf_fini(&b);

	hf_buf_init(&b);
	hfctl_unsatisfiable_format("no device can run it; submit with --allow-waiting to queue it", &b);
	ck_assert_str_eq(b.data, "no device can run it; submit with --allow-waiting to queue it");
	hf_buf_fini(&b);

	hf_buf_init(&b);
	hfctl_unsatisfiable_format("no device can run these tasks:\n  cuda: none\n  rocm: none\n", &b);
	ck_assert_str_eq(b.data, "no device can run these tasks:\n  cuda: none\n  rocm: none\n"
				 "(use --allow-waiting to queue the tasks anyway)");
	hf_buf_fini(&b);

	hf_buf_init(&b);
	hfctl_unsatisfiable_format("", &b);
	ck_assert_str_eq(b.data, "no registered device can run these tasks (use --allow-waiting to "
				 "queue the tasks anyway)");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_gib_has_one_decimal_and_zero_is_a_dash)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_gib_format(85520809984ull, &b);
	hf_buf_puts(&b, " ");
	hfctl_gib_format(0, &b);
	hf_buf_puts(&b, " ");
	hfctl_gib_format(512ull << 20, &b);
	ck_assert_str_eq(b.data, "79.6 GiB - 0.5 GiB");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_limits_scopes_and_submit_warning)
{
	Hf__ModelLimit l0 = HF__MODEL_LIMIT__INIT, l1 = HF__MODEL_LIMIT__INIT;
	Hf__ModelLimit *limits[] = { &l0, &l1 };
	Hf__ModelInfo m = HF__MODEL_INFO__INIT;
	Hf__LimitedTasks lt = HF__LIMITED_TASKS__INIT;
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_model_limits_format(&m, &b);
	ck_assert_str_eq(b.data, "-");
	hf_buf_fini(&b);

	l0.backend = HF__BACKEND__BACKEND_MPS;
	l1.backend = HF__BACKEND__BACKEND_CUDA;
	l1.kind = HF__TASK_KIND__KIND_BENCHMARK;
	m.limits = limits;
	m.n_limits = 2;
	hf_buf_init(&b);
	hfctl_model_limits_format(&m, &b);
	ck_assert_str_eq(b.data, "mps, cuda/benchmark");
	hf_buf_fini(&b);
	hf_buf_init(&b);
	hfctl_limit_scope(HF__BACKEND__BACKEND_UNSPECIFIED, HF__TASK_KIND__KIND_TEST, &b);
	ck_assert_str_eq(b.data, "*/test");
	hf_buf_fini(&b);

	lt.model_type = "rag";
	lt.backend = HF__BACKEND__BACKEND_CPU;
	lt.kind = HF__TASK_KIND__KIND_TEST;
	lt.reason = "needs a retriever";
	lt.task_count = 1;
	hf_buf_init(&b);
	hfctl_limited_format(&lt, &b);
	ck_assert_str_eq(b.data, "rag on cpu (test, 1 task): the registry marks it limited: "
				 "needs a retriever");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_explain_shows_status_summary_and_each_reason_indented)
{
	char *reasons[] = { "gpu-01 cuda:0: compute capability 9.0 needed, has 8.0",
			    "gpu-02 cuda:1: drained", "gpu-03: not connected" };
	Hf__ExplainReply r = HF__EXPLAIN_REPLY__INIT;
	struct hf_buf b;

	r.task_id = 123;
	r.status = HF__TASK_STATUS__STATUS_QUEUED;
	r.summary = "no device that meets the requirements is free";
	r.n_reasons = 3;
	r.reasons = reasons;
	hf_buf_init(&b);
	hfctl_explain_format(&r, &b);
	ck_assert_str_eq(b.data, "task 123: queued \xe2\x80\x94 no device that meets the requirements "
				 "is free\n"
				 "  gpu-01 cuda:0: compute capability 9.0 needed, has 8.0\n"
				 "  gpu-02 cuda:1: drained\n"
				 "  gpu-03: not connected\n");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_explain_without_summary_is_one_line_and_flattens_control_characters)
{
	char *reasons[] = { "", "gpu-01:\tbusy\nrunning 2" };
	Hf__ExplainReply r = HF__EXPLAIN_REPLY__INIT;
	struct hf_buf b;

	r.task_id = 9000000001ull;
	r.status = HF__TASK_STATUS__STATUS_PASSED;
	hf_buf_init(&b);
	hfctl_explain_format(&r, &b);
	ck_assert_str_eq(b.data, "task 9000000001: passed\n");
	hf_buf_fini(&b);

	r.status = HF__TASK_STATUS__STATUS_QUEUED;
	r.summary = "waiting\r\nfor a device";
	r.n_reasons = 2;
	r.reasons = reasons;
	hf_buf_init(&b);
	hfctl_explain_format(&r, &b);
	ck_assert_str_eq(b.data, "task 9000000001: queued \xe2\x80\x94 waiting  for a device\n"
				 "  gpu-01: busy running 2\n");
	hf_buf_fini(&b);
}
END_TEST

START_TEST(test_drain_messages_for_a_worker_and_for_one_device)
{
	Hf__DrainRequest req = HF__DRAIN_REQUEST__INIT;
	struct hf_buf b;

	req.worker_id = "gpu-07";
	hf_buf_init(&b);
	hfctl_drain_format(&req, 8, &b);
	hfctl_drain_format(&req, 1, &b);
	req.undrain = true;
	hfctl_drain_format(&req, 8, &b);
	req.one_device = true;
	req.backend = HF__BACKEND__BACKEND_CUDA;
	req.index = 3;
	hfctl_drain_format(&req, 1, &b);
	req.undrain = false;
	hfctl_drain_format(&req, 1, &b);
	ck_assert_str_eq(b.data, "worker gpu-07: 8 devices draining\n"
				 "worker gpu-07: 1 device draining\n"
				 "worker gpu-07: 8 devices back in service\n"
				 "gpu-07/cuda:3: back in service\n"
				 "gpu-07/cuda:3: draining\n");
	hf_buf_fini(&b);
}
END_TEST

/* ---- the report's HTML ---- */

START_TEST(test_html_escapes_every_text_from_the_database)
{
	struct hf_buf b;

	hf_buf_init(&b);
	hfctl_html_escape(&b, "<a href=\"x\">'&'</a>");
	ck_assert_str_eq(b.data, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
	hf_buf_fini(&b);

	Hf__JobStatus js = HF__JOB_STATUS__INIT;
	Hf__ReportTask t[2], *tp[2] = { &t[0], &t[1] };
	Hf__ReportEnvironment e = HF__REPORT_ENVIRONMENT__INIT, *ep = &e;
	Hf__ReportReply r = HF__REPORT_REPLY__INIT;
	js.job_id = 7;
	js.name = "<script>x</script>";
	js.submitter = "\"alice\"";
	js.state = "done";
	for (int i = 0; i < 2; i++) {
		hf__report_task__init(&t[i]);
		t[i].task_id = (uint64_t)i + 1;
		t[i].model_type = "<b>m</b>";
		t[i].family = "encoder-only";
		t[i].precision = "fp32";
		t[i].batch_size = 1;
		t[i].seq_len = 8;
		t[i].device_name = "dev<1>";
		t[i].reason = "";
		t[i].latency_mean_ms = t[i].latency_p50_ms = t[i].latency_p90_ms = t[i].latency_p99_ms = -1;
		t[i].latency_cv = t[i].throughput_items_s = -1;
	}
	t[0].backend = HF__BACKEND__BACKEND_CPU;
	t[0].kind = HF__TASK_KIND__KIND_TEST;
	t[0].status = HF__TASK_STATUS__STATUS_FAILED;
	t[0].reason = "x < y & \"z\"";
	t[1].backend = HF__BACKEND__BACKEND_CUDA;
	t[1].kind = HF__TASK_KIND__KIND_BENCHMARK;
	t[1].status = HF__TASK_STATUS__STATUS_PASSED;
	t[1].latency_p50_ms = 4;
	t[1].latency_p90_ms = 5;
	t[1].latency_p99_ms = 6;
	e.backend = HF__BACKEND__BACKEND_CUDA;
	e.device_name = "dev<1>";
	e.driver_version = "550.90.07";
	e.torch_version = "2.6'";
	e.tasks = 1;
	r.job = &js;
	r.tasks = tp;
	r.n_tasks = 2;
	r.total_tasks = 3;
	r.environments = &ep;
	r.n_environments = 1;
	hf_buf_init(&b);
	hfctl_html_report(&r, 1.7e9, &b);
	ck_assert(!b.oom);
	ck_assert_ptr_null(strstr(b.data, "<script"));
	ck_assert_ptr_null(strstr(b.data, "<b>m</b>"));
	ck_assert_ptr_null(strstr(b.data, "dev<1>"));
	ck_assert_ptr_nonnull(strstr(b.data, "&lt;script&gt;x&lt;/script&gt;"));
	ck_assert_ptr_nonnull(strstr(b.data, "x &lt; y &amp; &quot;z&quot;"));  /* the reason, on hover */
	ck_assert_ptr_nonnull(strstr(b.data, "<svg"));
	ck_assert_ptr_nonnull(strstr(b.data, "550.90.07"));
	ck_assert_ptr_nonnull(strstr(b.data, "2.6&#39;"));
	ck_assert_ptr_nonnull(strstr(b.data, "The job has 3 tasks"));  /* what was left out is said */
	hf_buf_fini(&b);
}
END_TEST

/* One line per DeviceFit: the device's name, then every unmet
 * requirement; a disconnected worker says since when (local time) and
 * whether it could run the tasks; other states wrap their detail. */
/* The one text of common/hf_fit.c: in UTC and as it is for the
 * coordinator's message, in local time and escaped for hfctl. */
START_TEST(test_fit_line_in_utc_for_the_coordinator_and_local_escaped_for_hfctl)
{
	char *unmet[1] = { "no label\npool=a" };
	Hf__DeviceFit f = HF__DEVICE_FIT__INIT;
	struct hf_buf b;

	setenv("TZ", "XYZ-2", 1); /* two hours east of UTC */
	tzset();
	f.worker_id = "gpu-5";
	f.state = "disconnected";
	f.connected = false;
	f.last_seen = 43380.0; /* 12:03:00 UTC */
	f.unmet = unmet;
	f.n_unmet = 1;
	hf_buf_init(&b);
	hf_fit_line(&f, 43380.0 + 90, HF_FIT_CLOCK_UTC, NULL, &b);
	ck_assert_str_eq(b.data, "gpu-5: disconnected since 12:03:00 UTC (90 s); no label\npool=a");
	hf_buf_fini(&b);
	hf_buf_init(&b);
	hfctl_device_fit_format(&f, 43380.0 + 2 * 86400, &b);
	ck_assert_str_eq(b.data, "gpu-5: disconnected since 1970-01-01 14:03 (2880 min); no label pool=a");
	hf_buf_fini(&b);
	setenv("TZ", "UTC", 1);
	tzset();
}
END_TEST

START_TEST(test_device_fit_lines_name_the_device_and_every_unmet_requirement)
{
	char *unmet[2] = { "memory 24.0 GiB < 40.0 GiB required", "no label pool=a" };
	char *detail[1] = { "3 infrastructure failures in a row" };
	Hf__DeviceFit f = HF__DEVICE_FIT__INIT;
	struct hf_buf b;

	setenv("TZ", "UTC", 1);
	tzset();
	f.worker_id = "gpu-3";
	f.one_device = true;
	f.backend = HF__BACKEND__BACKEND_CUDA;
	f.index = 0;
	f.state = "unfit";
	f.connected = true;
	f.unmet = unmet;
	f.n_unmet = 2;
	hf_buf_init(&b);
	hfctl_device_fit_format(&f, 1000.0, &b);
	ck_assert_str_eq(b.data, "gpu-3/cuda:0: memory 24.0 GiB < 40.0 GiB required; no label pool=a");
	hf_buf_fini(&b);

	f.state = "quarantined";
	f.unmet = detail;
	f.n_unmet = 1;
	hf_buf_init(&b);
	hfctl_device_fit_format(&f, 1000.0, &b);
	ck_assert_str_eq(b.data, "gpu-3/cuda:0: quarantined (3 infrastructure failures in a row)");
	hf_buf_fini(&b);

	/* 12:03:00 UTC, 18 minutes before now. */
	f.worker_id = "gpu-5";
	f.one_device = false;
	f.state = "disconnected";
	f.connected = false;
	f.would_fit = true;
	f.last_seen = 43380.0;
	f.n_unmet = 0;
	hf_buf_init(&b);
	hfctl_device_fit_format(&f, 43380.0 + 18 * 60, &b);
	ck_assert_str_eq(b.data, "gpu-5: disconnected since 12:03:00 (18 min); it could run them");
	hf_buf_fini(&b);

	/* The refusal: the coordinator's first clause, a line each, how many
	 * more, the hint. */
	Hf__DeviceFit *v[1] = { &f };
	Hf__Error e = HF__ERROR__INIT;
	e.message = "no connected worker can run cuda tasks: gpu-5: ...";
	e.unfit = v;
	e.n_unfit = 1;
	e.unfit_omitted = 4;
	hf_buf_init(&b);
	hfctl_unsatisfiable_list_format(&e, &b);
	ck_assert_ptr_nonnull(strstr(b.data, "no connected worker can run cuda tasks:\n  gpu-5: disconnected since "));
	ck_assert_ptr_nonnull(strstr(b.data, "\n  and 4 more\n(use --allow-waiting to queue the tasks anyway)"));
	hf_buf_fini(&b);
}
END_TEST

/* A drain line names the device (or the worker), who and since when. */
START_TEST(test_drain_lines_say_who_and_since_when)
{
	Hf__Drain d = HF__DRAIN__INIT;
	Hf__WorkerInfo w = HF__WORKER_INFO__INIT;
	Hf__Drain *dp[1] = { &d };
	struct hf_buf b;
	char cell[64];

	setenv("TZ", "UTC", 1);
	tzset();
	d.one_device = true;
	d.backend = HF__BACKEND__BACKEND_CUDA;
	d.index = 3;
	d.by = "alice";
	d.since = 43380.0;
	hf_buf_init(&b);
	hfctl_drain_line_format("gpu-07", &d, 43380.0 + 300, &b);
	ck_assert_str_eq(b.data, "gpu-07/cuda:3: drained by alice since 1970-01-01 12:03:00 (5m00s ago)");
	hf_buf_fini(&b);
	w.drains = dp;
	w.n_drains = 1;
	hf_buf_init(&b);
	hfctl_worker_drains_cell(&w, &b);
	ck_assert_str_eq(b.data, "cuda:3");
	hf_buf_fini(&b);
	d.one_device = false;
	d.by = "";
	hf_buf_init(&b);
	hfctl_worker_drains_cell(&w, &b);
	ck_assert_str_eq(b.data, "yes");
	hf_buf_fini(&b);
	hf_buf_init(&b);
	hfctl_drain_line_format("gpu-07", &d, 43380.0 + 300, &b);
	ck_assert_str_eq(b.data, "gpu-07: drained since 1970-01-01 12:03:00 (5m00s ago)");
	hf_buf_fini(&b);
	hfctl_connected_format(false, 43380.0, cell, sizeof(cell));
	ck_assert_str_eq(cell, "no, since 1970-01-01 12:03:00");
	hfctl_connected_format(true, 43380.0, cell, sizeof(cell));
	ck_assert_str_eq(cell, "yes");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hfctl-format");
	TCase *tc = tcase_create("progress");
	tcase_add_test(tc, test_progress_at_57_percent_matches_the_manual);
	tcase_add_test(tc, test_progress_at_0_percent_has_an_empty_bar);
	tcase_add_test(tc, test_progress_reaches_100_percent_only_when_all_are_done);
	tcase_add_test(tc, test_progress_shows_timeout_and_cancelled_only_when_not_zero);
	tcase_add_test(tc, test_progress_without_terminal_has_no_bar_and_no_limit);
	tcase_add_test(tc, test_progress_on_80_columns_keeps_a_bar_and_the_failures);
	tcase_add_test(tc, test_progress_on_narrow_terminal_keeps_bar_and_percentage);
	tcase_add_test(tc, test_progress_on_tiny_terminal_drops_the_bar_and_never_wraps);
	tcase_add_test(tc, test_progress_of_a_job_without_tasks_is_complete);
	tcase_add_test(tc, test_progress_fits_small_buffer_terminated);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	tcase_add_test(tc, test_table_pads_columns_and_aligns_numbers_right);
	tcase_add_test(tc, test_table_counts_utf8_characters_not_bytes);
	tcase_add_test(tc, test_table_cuts_long_cells_and_flattens_control_characters);
	tcase_add_test(tc, test_table_whole_column_is_not_cut_and_the_others_still_are);
	tcase_add_test(tc, test_table_that_failed_to_allocate_reports_oom);
	suite_add_tcase(s, tc);

	tc = tcase_create("csv");
	tcase_add_test(tc, test_csv_quotes_commas_quotes_and_newlines);
	tcase_add_test(tc, test_csv_leaves_other_text_alone);
	suite_add_tcase(s, tc);

	tc = tcase_create("text");
	tcase_add_test(tc, test_duration_formats_each_range);
	tcase_add_test(tc, test_ago_counts_whole_seconds_and_knows_never);
	tcase_add_test(tc, test_time_of_zero_is_a_dash);
	tcase_add_test(tc, test_summary_lists_non_zero_statuses_in_order);
	tcase_add_test(tc, test_counts_from_job_and_what_counts_as_failed);
	tcase_add_test(tc, test_devices_and_runtimes_summaries);
	suite_add_tcase(s, tc);

	tc = tcase_create("devices");
	tcase_add_test(tc, test_devices_table_shows_telemetry_and_dashes_when_unavailable);
	tcase_add_test(tc, test_devices_table_without_devices_or_absent_backends);
	tcase_add_test(tc, test_devices_table_flattens_control_characters_in_reasons);
	tcase_add_test(tc, test_absent_key_splits_at_the_last_slash);
	tcase_add_test(tc, test_unsatisfiable_message_gets_the_hint_once);
	tcase_add_test(tc, test_gib_has_one_decimal_and_zero_is_a_dash);
	suite_add_tcase(s, tc);

	tc = tcase_create("drain-explain");
	tcase_add_test(tc, test_explain_shows_status_summary_and_each_reason_indented);
	tcase_add_test(tc, test_limits_scopes_and_submit_warning);
	tcase_add_test(tc, test_explain_without_summary_is_one_line_and_flattens_control_characters);
	tcase_add_test(tc, test_drain_messages_for_a_worker_and_for_one_device);
	tcase_add_test(tc, test_fit_line_in_utc_for_the_coordinator_and_local_escaped_for_hfctl);
	tcase_add_test(tc, test_device_fit_lines_name_the_device_and_every_unmet_requirement);
	tcase_add_test(tc, test_drain_lines_say_who_and_since_when);
	suite_add_tcase(s, tc);

	tc = tcase_create("html");
	tcase_add_test(tc, test_html_escapes_every_text_from_the_database);
	suite_add_tcase(s, tc);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
