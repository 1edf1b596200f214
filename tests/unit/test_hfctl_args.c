/* SPDX-License-Identifier: MIT
 *
 * Unit tests for hfctl's argument validation (coordinator/hfctl/hfctl-args.c):
 * what "hfctl submit" accepts and the message it gives for what it refuses,
 * its requirement options (sizes, compute capabilities, gfx targets, labels,
 * runtime specs, devices per task) and limits (tasks in flight, retries),
 * list splitting, numbers, durations, job and task ids, "hfctl cancel" of a
 * job or a task, drain targets and the registry check.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hfctl-args.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char err[HFCTL_ERR_MAX];

/* Parses argv (which starts with "submit") and expects a refusal whose
 * message contains want. */
static void submit_refused(int argc, char **argv, const char *want)
{
	struct hfctl_submit s;

	err[0] = '\0';
	ck_assert_int_eq(hfctl_submit_parse(argc, argv, "alice", &s, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, want) != NULL, "message \"%s\" lacks \"%s\"", err, want);
}

START_TEST(test_submit_parses_every_option)
{
	char *argv[] = { "submit", "--models", "bert,gpt2", "--backends", "cuda,rocm",
			 "--kind", "test,benchmark", "--batch-sizes", "1,8,32",
			 "--precision", "fp16,bf16", "--seq-len", "512", "--priority", "-20",
			 "--task-timeout", "90s", "--iterations", "50", "--warmup", "5",
			 "--name", "nightly llm", "--submitter", "bob", "--watch", "--json" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(argv), argv, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.n_models, 2);
	ck_assert_str_eq(req.models[0], "bert");
	ck_assert_str_eq(req.models[1], "gpt2");
	ck_assert(!req.all_models);
	ck_assert_uint_eq(req.n_backends, 2);
	ck_assert_int_eq(req.backends[0], HF__BACKEND__BACKEND_CUDA);
	ck_assert_int_eq(req.backends[1], HF__BACKEND__BACKEND_ROCM);
	ck_assert_uint_eq(req.n_kinds, 2);
	ck_assert_int_eq(req.kinds[0], HF__TASK_KIND__KIND_TEST);
	ck_assert_int_eq(req.kinds[1], HF__TASK_KIND__KIND_BENCHMARK);
	ck_assert_uint_eq(req.n_batch_sizes, 3);
	ck_assert_uint_eq(req.batch_sizes[2], 32);
	ck_assert_uint_eq(req.n_precisions, 2);
	ck_assert_str_eq(req.precisions[1], "bf16");
	ck_assert_uint_eq(req.seq_len, 512);
	ck_assert_int_eq(req.priority, -20);
	ck_assert_uint_eq(req.timeout_s, 90);
	ck_assert_uint_eq(req.iterations, 50);
	ck_assert_uint_eq(req.warmup, 5);
	ck_assert_str_eq(req.name, "nightly llm");
	ck_assert_str_eq(req.submitter, "bob");
	ck_assert(s.watch);
	ck_assert(s.json);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_submit_applies_defaults)
{
	char *argv[] = { "submit", "--family", "vision" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(argv), argv, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.n_families, 1);
	ck_assert_str_eq(req.families[0], "vision");
	ck_assert_uint_eq(req.n_backends, 1);
	ck_assert_int_eq(req.backends[0], HF__BACKEND__BACKEND_CPU);
	ck_assert_uint_eq(req.n_kinds, 1);
	ck_assert_int_eq(req.kinds[0], HF__TASK_KIND__KIND_TEST);
	ck_assert_uint_eq(req.n_batch_sizes, 1);
	ck_assert_uint_eq(req.batch_sizes[0], 1);
	ck_assert_uint_eq(req.n_precisions, 1);
	ck_assert_str_eq(req.precisions[0], "fp32");
	ck_assert_int_eq(req.priority, 0);
	ck_assert_uint_eq(req.seq_len, 0);
	ck_assert_uint_eq(req.timeout_s, 0);
	ck_assert_str_eq(req.submitter, "alice");
	ck_assert_str_eq(req.name, "");
	ck_assert_str_eq(req.request_id, "");   /* hfctl submit draws one before sending */
	ck_assert(!s.watch);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_submit_sequence_lengths_one_or_several)
{
	char *one[] = { "submit", "--all", "--seq-len", "256" };
	char *several[] = { "submit", "--all", "--kind", "benchmark", "--seq-len", "128,512",
			    "--seq-len", "2048" };
	char *twice[] = { "submit", "--all", "--seq-len", "128,0128" };
	char *many[] = { "submit", "--all", "--seq-len", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	/* one length goes as seq_len, which every coordinator reads */
	ck_assert_int_eq(hfctl_submit_parse(ARGC(one), one, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.seq_len, 256);
	ck_assert_uint_eq(req.n_seq_lens, 0);
	hfctl_submit_fini(&s);
	ck_assert_int_eq(hfctl_submit_parse(ARGC(several), several, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.seq_len, 0);
	ck_assert_uint_eq(req.n_seq_lens, 3);
	ck_assert_uint_eq(req.seq_lens[0], 128);
	ck_assert_uint_eq(req.seq_lens[2], 2048);
	hfctl_submit_fini(&s);
	submit_refused(ARGC(twice), twice, "\"0128\" is listed twice in --seq-len");
	submit_refused(ARGC(many), many, "too many sequence lengths in --seq-len (17, at most 16)");
}
END_TEST

START_TEST(test_submit_request_id_is_checked_and_carried)
{
	char *ok[] = { "submit", "--all", "--request-id", "nightly-2026-11-22:run_3.a" };
	char *bad_char[] = { "submit", "--all", "--request-id", "a b" };
	char *empty[] = { "submit", "--all", "--request-id", "" };
	char long_id[HF_REQUEST_ID_MAX + 2];
	char *too_long[] = { "submit", "--all", "--request-id", long_id };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(ok), ok, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_str_eq(req.request_id, "nightly-2026-11-22:run_3.a");
	hfctl_submit_fini(&s);
	submit_refused(ARGC(bad_char), bad_char, "invalid value \"a b\" for --request-id");
	submit_refused(ARGC(empty), empty, "invalid value \"\" for --request-id");
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	submit_refused(ARGC(too_long), too_long, "for --request-id: 1 to 128 of");
	long_id[HF_REQUEST_ID_MAX] = '\0';   /* exactly the longest */
	ck_assert_int_eq(hfctl_submit_parse(ARGC(too_long), too_long, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_submit_repeated_list_options_add_up)
{
	char *argv[] = { "submit", "--models", "bert", "--models", "t5,vit" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(argv), argv, NULL, &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.models.n, 3);
	ck_assert_str_eq(s.models.items[2], "vit");
	ck_assert_str_eq(s.submitter, "");
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_submit_refuses_unknown_backend_naming_it)
{
	char *argv[] = { "submit", "--all", "--backends", "cpu,tpu" };

	submit_refused(ARGC(argv), argv, "");
	ck_assert_str_eq(err, "unknown backend \"tpu\" (valid: cpu, cuda, rocm, mps, openvino, qnn)");
}
END_TEST

START_TEST(test_submit_refuses_unknown_kind_and_precision)
{
	char *kind[] = { "submit", "--all", "--kind", "test,bench" };
	char *prec[] = { "submit", "--all", "--precision", "fp8" };

	submit_refused(ARGC(kind), kind, "unknown kind \"bench\" (valid: test, benchmark)");
	submit_refused(ARGC(prec), prec, "unknown precision \"fp8\" (valid: fp32, fp16, bf16, int8)");
}
END_TEST

/* --mode: a list of modes, or all alone (every mode); none: nothing sent
 * (the coordinator's eager); unknown, repeated or all with others refused. */
START_TEST(test_submit_modes)
{
	char *none[] = { "submit", "--all", "--kind", "benchmark" };
	char *two[] = { "submit", "--all", "--kind", "benchmark", "--mode", "eager,cuda-graph" };
	char *all[] = { "submit", "--all", "--kind", "benchmark", "--mode", "all" };
	char *bad[] = { "submit", "--all", "--mode", "graph" };
	char *all_and[] = { "submit", "--all", "--mode", "all,eager" };
	char *twice[] = { "submit", "--all", "--mode", "compile", "--mode", "compile" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(none), none, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.n_modes, 0);
	hfctl_submit_fini(&s);

	ck_assert_int_eq(hfctl_submit_parse(ARGC(two), two, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.n_modes, 2);
	ck_assert_str_eq(req.modes[0], "eager");
	ck_assert_str_eq(req.modes[1], "cuda-graph");
	hfctl_submit_fini(&s);

	ck_assert_int_eq(hfctl_submit_parse(ARGC(all), all, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.n_modes, 3);
	ck_assert_str_eq(req.modes[0], "eager");
	ck_assert_str_eq(req.modes[1], "cuda-graph");
	ck_assert_str_eq(req.modes[2], "compile");
	hfctl_submit_fini(&s);

	submit_refused(ARGC(bad), bad, "\"graph\"");
	submit_refused(ARGC(bad), bad, "eager, cuda-graph, compile, all");
	submit_refused(ARGC(all_and), all_and, "all is every mode, give it alone");
	submit_refused(ARGC(twice), twice, "compile");
}
END_TEST

START_TEST(test_submit_refuses_duplicate_and_empty_list_items)
{
	char *dup[] = { "submit", "--models", "bert,gpt2,bert" };
	char *dup_across[] = { "submit", "--models", "bert", "--models", "bert" };
	char *dup_number[] = { "submit", "--all", "--batch-sizes", "8,08" };
	char *dup_backend[] = { "submit", "--all", "--backends", "cuda,cuda" };
	char *empty[] = { "submit", "--models", "bert,,gpt2" };
	char *trailing[] = { "submit", "--all", "--backends", "cpu," };
	char *blank[] = { "submit", "--family", "" };

	submit_refused(ARGC(dup), dup, "\"bert\" is listed twice in --models");
	submit_refused(ARGC(dup_across), dup_across, "\"bert\" is listed twice in --models");
	submit_refused(ARGC(dup_number), dup_number, "\"08\" is listed twice in --batch-sizes");
	submit_refused(ARGC(dup_backend), dup_backend, "\"cuda\" is listed twice in --backends");
	submit_refused(ARGC(empty), empty, "empty item in --models \"bert,,gpt2\"");
	submit_refused(ARGC(trailing), trailing, "empty item in --backends \"cpu,\"");
	submit_refused(ARGC(blank), blank, "empty item in --family \"\"");
}
END_TEST

START_TEST(test_submit_all_excludes_models_and_family)
{
	char *with_models[] = { "submit", "--all", "--models", "bert" };
	char *with_family[] = { "submit", "--family", "rag", "--all" };
	char *nothing[] = { "submit", "--backends", "cuda" };

	submit_refused(ARGC(with_models), with_models, "--all cannot be combined with --models or --family");
	submit_refused(ARGC(with_family), with_family, "--all cannot be combined with --models or --family");
	submit_refused(ARGC(nothing), nothing, "nothing to run: give --models, --family, --suite or --all");
}
END_TEST

START_TEST(test_submit_suite_is_sent_and_checked_for_form)
{
	char *argv[] = { "submit", "--suite", "all", "--models", "bert" };
	char *with_all[] = { "submit", "--suite", "core", "--all" };
	char *upper[] = { "submit", "--suite", "Core" };
	char *empty[] = { "submit", "--suite", "" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(argv), argv, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_str_eq(req.suite, "all");
	ck_assert_uint_eq(req.n_models, 1);
	ck_assert(!req.all_models);
	hfctl_submit_fini(&s);
	submit_refused(ARGC(with_all), with_all, "--all cannot be combined with --suite (--all is the core suite)");
	submit_refused(ARGC(upper), upper,
		       "invalid value \"Core\" for --suite: 1 to 63 of a-z 0-9 _ . - (\"hfctl models\" lists the suites)");
	submit_refused(ARGC(empty), empty,
		       "invalid value \"\" for --suite: 1 to 63 of a-z 0-9 _ . - (\"hfctl models\" lists the suites)");
}
END_TEST

START_TEST(test_submit_models_and_family_combine)
{
	char *argv[] = { "submit", "--models", "bert", "--family", "speech,rag" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(argv), argv, "alice", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.models.n, 1);
	ck_assert_uint_eq(s.families.n, 2);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_submit_refuses_bad_numbers)
{
	char *word[] = { "submit", "--all", "--batch-sizes", "x" };
	char *zero[] = { "submit", "--all", "--batch-sizes", "1,0" };
	char *negative[] = { "submit", "--all", "--seq-len", "-128" };
	char *plus[] = { "submit", "--all", "--iterations", "+5" };
	char *blank[] = { "submit", "--all", "--warmup", " 5" };
	char *suffix[] = { "submit", "--all", "--seq-len", "512k" };
	char *huge[] = { "submit", "--all", "--iterations", "99999999999999999999999" };
	char *too_big[] = { "submit", "--all", "--batch-sizes", "4097" };
	char *warmup0[] = { "submit", "--all", "--warmup", "0" };

	submit_refused(ARGC(word), word, "invalid value \"x\" for --batch-sizes: expected a whole number");
	submit_refused(ARGC(zero), zero, "invalid value \"0\" for --batch-sizes: must be between 1 and 4096");
	submit_refused(ARGC(negative), negative, "invalid value \"-128\" for --seq-len: must be between 1 and");
	submit_refused(ARGC(plus), plus, "invalid value \"+5\" for --iterations: expected a whole number");
	submit_refused(ARGC(blank), blank, "invalid value \" 5\" for --warmup: expected a whole number");
	submit_refused(ARGC(suffix), suffix, "invalid value \"512k\" for --seq-len: expected a whole number");
	submit_refused(ARGC(huge), huge, "invalid value \"99999999999999999999999\" for --iterations: must be between");
	submit_refused(ARGC(too_big), too_big, "invalid value \"4097\" for --batch-sizes: must be between 1 and 4096");
	submit_refused(ARGC(warmup0), warmup0, "invalid value \"0\" for --warmup");
}
END_TEST

START_TEST(test_submit_task_timeout_is_a_duration_in_whole_seconds)
{
	char *ok[] = { "submit", "--all", "--task-timeout", "1500ms" };
	char *old[] = { "submit", "--all", "--timeout", "3s" };
	char *short_[] = { "submit", "--all", "--task-timeout", "500ms" };
	char *long_[] = { "submit", "--all", "--timeout", "25h" };
	char *word[] = { "submit", "--all", "--task-timeout", "soon" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(ok), ok, "alice", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.timeout_s, 2); /* rounded up: never less than asked */
	ck_assert(!s.old_timeout);
	hfctl_submit_fini(&s);
	/* The old spelling still works, and says it was used (for the warning). */
	ck_assert_int_eq(hfctl_submit_parse(ARGC(old), old, "alice", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.timeout_s, 3);
	ck_assert(s.old_timeout);
	hfctl_submit_fini(&s);
	submit_refused(ARGC(short_), short_,
		       "invalid value \"500ms\" for --task-timeout: must be at least 1s");
	submit_refused(ARGC(long_), long_, "invalid value \"25h\" for --task-timeout: must be at most 24h");
	submit_refused(ARGC(word), word, "expected a duration such as 500ms, 5s or 2m");
}
END_TEST

START_TEST(test_submit_validates_family_names)
{
	char *bad[] = { "submit", "--family", "vision,graph" };
	char *ok[] = { "submit", "--family", "mixture-of-experts,state-space" };
	struct hfctl_submit s;

	submit_refused(ARGC(bad), bad, "unknown family \"graph\" (valid: encoder-only, ");
	ck_assert_int_eq(hfctl_submit_parse(ARGC(ok), ok, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_submit_priority_bounds)
{
	char *low[] = { "submit", "--all", "--priority", "-1000" };
	char *high[] = { "submit", "--all", "--priority", "1000" };
	char *below[] = { "submit", "--all", "--priority", "-1001" };
	char *above[] = { "submit", "--all", "--priority", "1001" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(low), low, "alice", &s, err, sizeof(err)), 0);
	ck_assert_int_eq(s.priority, -1000);
	hfctl_submit_fini(&s);
	ck_assert_int_eq(hfctl_submit_parse(ARGC(high), high, "alice", &s, err, sizeof(err)), 0);
	ck_assert_int_eq(s.priority, 1000);
	hfctl_submit_fini(&s);
	submit_refused(ARGC(below), below, "invalid value \"-1001\" for --priority: must be between -1000 and 1000");
	submit_refused(ARGC(above), above, "invalid value \"1001\" for --priority: must be between -1000 and 1000");
}
END_TEST

START_TEST(test_submit_refuses_empty_submitter_stray_arguments_and_unknown_options)
{
	char *submitter[] = { "submit", "--all", "--submitter", "" };
	char *stray[] = { "submit", "--all", "bert" };
	char *unknown[] = { "submit", "--all", "--bogus", "bert" };
	char *missing[] = { "submit", "--all", "--backends" };

	submit_refused(ARGC(submitter), submitter, "invalid value \"\" for --submitter: must not be empty");
	submit_refused(ARGC(stray), stray, "unexpected argument \"bert\" (see \"hfctl submit --help\")");
	submit_refused(ARGC(unknown), unknown, "unknown option \"--bogus\" (see \"hfctl submit --help\")");
	submit_refused(ARGC(missing), missing, "option \"--backends\" needs a value");
}
END_TEST

START_TEST(test_submit_help_wins_over_everything_else)
{
	char *argv[] = { "submit", "--backends", "tpu", "--help" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(argv), argv, "alice", &s, err, sizeof(err)), 0);
	ck_assert(s.help);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_list_split_leaves_list_unchanged_on_refusal)
{
	struct hfctl_list l = { 0 };

	ck_assert_int_eq(hfctl_list_split(&l, "--models", "a,b", err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_list_split(&l, "--models", "c,a", err, sizeof(err)), -EINVAL);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_int_eq(hfctl_list_split(&l, "--models", "c,", err, sizeof(err)), -EINVAL);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_int_eq(hfctl_list_split(&l, "--models", "c", err, sizeof(err)), 0);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.items[0], "a");
	ck_assert_str_eq(l.items[2], "c");
	hfctl_list_fini(&l);
	ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(test_job_id_must_be_a_positive_whole_number)
{
	char *one[] = { "status", "42" };
	char *none[] = { "status" };
	char *two[] = { "status", "42", "43" };
	uint64_t id = 7;

	ck_assert_int_eq(hfctl_parse_job_id("42", &id, err, sizeof(err)), 0);
	ck_assert_uint_eq(id, 42);
	ck_assert_int_eq(hfctl_parse_job_id("0", &id, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid job id \"0\": expected a positive whole number");
	ck_assert_int_eq(hfctl_parse_job_id("4x", &id, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(hfctl_parse_job_id("-3", &id, err, sizeof(err)), -EINVAL);
	ck_assert_uint_eq(id, 42); /* untouched on failure */

	ck_assert_int_eq(hfctl_job_arg("status", 2, one, 1, &id, err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_job_arg("status", 1, none, 1, &id, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "missing job id (usage: hfctl status JOB)");
	ck_assert_int_eq(hfctl_job_arg("status", 3, two, 1, &id, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "unexpected argument \"43\" (usage: hfctl status JOB)");
}
END_TEST

START_TEST(test_duration_has_a_floor)
{
	int64_t ms = 0;

	ck_assert_int_eq(hfctl_parse_duration("--interval", "2m", 100, &ms, err, sizeof(err)), 0);
	ck_assert_int_eq(ms, 120000);
	ck_assert_int_eq(hfctl_parse_duration("--interval", "50ms", 100, &ms, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value \"50ms\" for --interval: must be at least 100ms");
	ck_assert_int_eq(ms, 120000);
}
END_TEST

START_TEST(test_statuses_parse_into_a_set)
{
	bool set[HF__TASK_STATUS__STATUS_CANCELLED + 1];

	ck_assert_int_eq(hfctl_parse_statuses("--status", "failed,timeout", set, err, sizeof(err)), 0);
	ck_assert(set[HF__TASK_STATUS__STATUS_FAILED]);
	ck_assert(set[HF__TASK_STATUS__STATUS_TIMEOUT]);
	ck_assert(!set[HF__TASK_STATUS__STATUS_PASSED]);
	ck_assert_int_eq(hfctl_parse_statuses("--status", "failed,broken", set, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "unknown status \"broken\" (valid: queued, leased, running, passed, failed, "
			      "error, timeout, skipped, cancelled)");
}
END_TEST

/* ---- requirements ---- */

START_TEST(test_size_takes_binary_decimal_and_plain_units)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} cases[] = {
		{ "4096", 4096 },
		{ "3B", 3 },
		{ "1KiB", 1024 },
		{ "2KB", 2000 },
		{ "2K", 2048 },
		{ "500MB", 500000000 },
		{ "500MiB", 500ull << 20 },
		{ "16GiB", 16ull << 30 },
		{ "16gib", 16ull << 30 },
		{ "24G", 24ull << 30 },
		{ "80GB", 80000000000ull },
		{ "2TiB", 2ull << 40 },
		{ "1tb", 1000000000000ull },
		{ "18446744073709551615", UINT64_MAX },
		{ "16777215TiB", 16777215ull << 40 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;

		ck_assert_msg(hfctl_parse_size("--min-memory", cases[i].text, &v, err, sizeof(err)) == 0,
			      "\"%s\" refused: %s", cases[i].text, err);
		ck_assert_msg(v == cases[i].bytes, "\"%s\": got %llu", cases[i].text,
			      (unsigned long long)v);
	}
}
END_TEST

START_TEST(test_size_refuses_junk_zero_and_overflow)
{
	static const char *const junk[] = {
		"", "GiB", "1.5GiB", "16 GiB", " 16GiB", "-1G", "+1G", "16GiX", "16Gi", "16iB",
		"0x10", "16GiBs", "16PiB",
	};
	uint64_t v = 7;

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		ck_assert_int_eq(hfctl_parse_size("--min-memory", junk[i], &v, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, "expected a whole number with an optional unit, such as "
					  "16GiB, 500MB or 24G"),
			      "\"%s\": %s", junk[i], err);
	}
	ck_assert_int_eq(hfctl_parse_size("--min-memory", "16 GiB", &v, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value \"16 GiB\" for --min-memory: expected a whole number "
			      "with an optional unit, such as 16GiB, 500MB or 24G");

	ck_assert_int_eq(hfctl_parse_size("--min-memory", "0GiB", &v, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value \"0GiB\" for --min-memory: must be more than 0");
	/* 2^64 itself, in digits and through the unit. */
	ck_assert_int_eq(hfctl_parse_size("--min-memory", "18446744073709551616", &v, err,
					  sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid value \"18446744073709551616\" for --min-memory: too large");
	ck_assert_int_eq(hfctl_parse_size("--min-memory", "16777216TiB", &v, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "invalid value \"16777216TiB\" for --min-memory: too large");
	ck_assert_int_eq(hfctl_parse_size("--min-memory", "99999999999999999999999GB", &v, err,
					  sizeof(err)), -EINVAL);
	ck_assert_uint_eq(v, 7); /* untouched on failure */
}
END_TEST

START_TEST(test_compute_capability_is_major_dot_minor)
{
	static const struct {
		const char *text, *normal;
	} ok[] = {
		{ "8.0", "8.0" }, { "9.0", "9.0" }, { "12.1", "12.1" }, { "7.5", "7.5" }, { "99.99", "99.99" },
	};
	static const char *const bad[] = {
		"9", "86", "8.", ".8", "8.0.1", "0.5", "100.0", "8.100", "sm_90", "8,0", " 8.0", "8.0 ",
		"-8.0", "", "08.6", "7.05", "+8.0",
	};
	char cc[HFCTL_CC_MAX];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(hfctl_parse_compute_capability("--min-compute-capability", ok[i].text, cc,
							     err, sizeof(err)) == 0,
			      "\"%s\" refused: %s", ok[i].text, err);
		ck_assert_str_eq(cc, ok[i].normal);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(hfctl_parse_compute_capability("--min-compute-capability", bad[i], cc, err,
							     sizeof(err)) == -EINVAL,
			      "\"%s\" accepted", bad[i]);
	hfctl_parse_compute_capability("--min-compute-capability", "86", cc, err, sizeof(err));
	ck_assert_str_eq(err, "invalid value \"86\" for --min-compute-capability: expected "
			      "MAJOR.MINOR such as 8.0 or 9.0");
}
END_TEST

START_TEST(test_runtime_spec_is_a_name_with_an_optional_version_bound)
{
	static const char *const ok[] = {
		"torch", "transformers>=5.0", "torch==2.11.0+cu128", "optimum<2", "numpy<=2.1",
		"python>3.10", "sentence-transformers", "scikit_learn>=1.5rc1", "openvino==2025.1",
	};
	static const char *const bad[] = {
		">=5.0", "torch>=", "torch=>2", "torch!=2", "torch~=2.0", "torch>=v2", "torch 2",
		"-torch", "torch>=2.0-1", "torch>= 2", "torch=2", "",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(hfctl_runtime_spec_check("--runtime", ok[i], err, sizeof(err)) == 0,
			      "\"%s\" refused: %s", ok[i], err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(hfctl_runtime_spec_check("--runtime", bad[i], err, sizeof(err)) == -EINVAL,
			      "\"%s\" accepted", bad[i]);
	hfctl_runtime_spec_check("--runtime", "torch!=2", err, sizeof(err));
	ck_assert_str_eq(err, "invalid runtime \"torch!=2\" in --runtime: expected NAME or NAME "
			      "followed by >=, <=, ==, > or < and a version, such as torch or "
			      "transformers>=5.0");
}
END_TEST

START_TEST(test_submit_runtime_lists_are_checked_item_by_item)
{
	/* A pip-style range splits at its comma; the "<3" half has no name. */
	char *range[] = { "submit", "--all", "--runtime", "torch>=2.0,<3" };
	char *ok[] = { "submit", "--all", "--runtime", "torch,transformers>=5.0", "--runtime",
		       "optimum" };
	struct hfctl_submit s;

	submit_refused(ARGC(range), range, "invalid runtime \"<3\" in --runtime");
	ck_assert_int_eq(hfctl_submit_parse(ARGC(ok), ok, "alice", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.runtimes.n, 3);
	ck_assert_str_eq(s.runtimes.items[1], "transformers>=5.0");
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_labels_are_key_value_or_key_alone)
{
	struct hfctl_labels l = { 0 };

	ck_assert_int_eq(hfctl_labels_add(&l, "--label", "gpu=a100", err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_labels_add(&l, "--label", "rack=b7,spot,zone/x=eu-west=1", err,
					  sizeof(err)), 0);
	ck_assert_uint_eq(l.n, 4);
	ck_assert_str_eq(l.kv[0].key, "gpu");
	ck_assert_str_eq(l.kv[0].value, "a100");
	ck_assert_str_eq(l.kv[2].key, "spot");
	ck_assert_str_eq(l.kv[2].value, ""); /* only has to exist */
	ck_assert_str_eq(l.kv[3].key, "zone/x");
	ck_assert_str_eq(l.kv[3].value, "eu-west=1"); /* split at the first "=" */
	for (size_t i = 0; i < l.n; i++)
		ck_assert_ptr_eq(l.refs[i], &l.kv[i]);
	hfctl_labels_fini(&l);
	ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(test_labels_refuse_bad_items_and_stay_unchanged)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{ "k=", "invalid label \"k=\" in --label: the value is empty (give \"k\" alone to "
			"require only that the label exists)" },
		{ "=v", "invalid label \"=v\" in --label: the name is empty" },
		{ "my key=v", "invalid label \"my key=v\" in --label: the name may only contain "
			      "letters, digits and . _ - /" },
		{ "k= v", "invalid label \"k= v\" in --label: the value starts or ends with a blank" },
		{ "k=v\tw", "invalid label \"k=v\tw\" in --label: the value holds a control character" },
		{ "new=1,gpu=h100", "label \"gpu\" is listed twice in --label" },
		{ "dup,dup=1", "label \"dup\" is listed twice in --label" },
		{ "a,,b", "empty item in --label \"a,,b\"" },
	};
	struct hfctl_labels l = { 0 };

	ck_assert_int_eq(hfctl_labels_add(&l, "--label", "gpu=a100", err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(hfctl_labels_add(&l, "--label", bad[i].text, err, sizeof(err)), -EINVAL);
		ck_assert_str_eq(err, bad[i].msg);
		ck_assert_uint_eq(l.n, 1);
		ck_assert_str_eq(l.refs[0]->key, "gpu");
	}
	hfctl_labels_fini(&l);
}
END_TEST

START_TEST(test_gfx_targets_are_checked)
{
	char *ok[] = { "submit", "--all", "--backends", "rocm", "--gfx", "gfx942,gfx90a",
		       "--gfx", "gfx1100" };
	char *upper[] = { "submit", "--all", "--backends", "rocm", "--gfx", "GFX942" };
	char *bare[] = { "submit", "--all", "--backends", "rocm", "--gfx", "gfx" };
	char *number[] = { "submit", "--all", "--backends", "rocm", "--gfx", "942" };
	char *feature[] = { "submit", "--all", "--backends", "rocm", "--gfx", "gfx90a:xnack-" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(ok), ok, "alice", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.gfx_targets.n, 3);
	hfctl_submit_fini(&s);
	submit_refused(ARGC(upper), upper, "invalid gfx target \"GFX942\" in --gfx: expected e.g. gfx942 or gfx90a");
	submit_refused(ARGC(bare), bare, "invalid gfx target \"gfx\" in --gfx");
	submit_refused(ARGC(number), number, "invalid gfx target \"942\" in --gfx");
	submit_refused(ARGC(feature), feature, "invalid gfx target \"gfx90a:xnack-\" in --gfx");
}
END_TEST

START_TEST(test_devices_per_task_bounds)
{
	char *one[] = { "submit", "--all", "--devices-per-task", "1" };
	char *max[] = { "submit", "--all", "--devices-per-task", "16" };
	char *zero[] = { "submit", "--all", "--devices-per-task", "0" };
	char *above[] = { "submit", "--all", "--devices-per-task", "17" };
	char *word[] = { "submit", "--all", "--devices-per-task", "two" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(one), one, "alice", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.devices_per_task, 1);
	hfctl_submit_fini(&s);
	ck_assert_int_eq(hfctl_submit_parse(ARGC(max), max, "alice", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.devices_per_task, 16);
	hfctl_submit_fini(&s);
	submit_refused(ARGC(zero), zero, "invalid value \"0\" for --devices-per-task: must be between 1 and 16");
	submit_refused(ARGC(above), above, "invalid value \"17\" for --devices-per-task: must be between 1 and 16");
	submit_refused(ARGC(word), word, "invalid value \"two\" for --devices-per-task: expected a whole number");
}
END_TEST

START_TEST(test_submit_requirements_land_in_the_request)
{
	char *argv[] = { "submit", "--models", "llama", "--backends", "cuda,rocm",
			 "--min-memory", "24G", "--min-compute-capability", "8.0",
			 "--gfx", "gfx942,gfx90a", "--label", "rack=b7", "--label", "spot",
			 "--runtime", "torch,transformers>=5.0", "--devices-per-task", "2",
			 "--allow-waiting" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(argv), argv, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.min_memory_bytes, 24ull << 30);
	ck_assert_str_eq(req.min_compute_capability, "8.0");
	ck_assert_uint_eq(req.n_gfx_targets, 2);
	ck_assert_str_eq(req.gfx_targets[0], "gfx942");
	ck_assert_str_eq(req.gfx_targets[1], "gfx90a");
	ck_assert_uint_eq(req.n_labels, 2);
	ck_assert_str_eq(req.labels[0]->key, "rack");
	ck_assert_str_eq(req.labels[0]->value, "b7");
	ck_assert_str_eq(req.labels[1]->key, "spot");
	ck_assert_str_eq(req.labels[1]->value, "");
	ck_assert_uint_eq(req.n_runtimes, 2);
	ck_assert_str_eq(req.runtimes[0], "torch");
	ck_assert_str_eq(req.runtimes[1], "transformers>=5.0");
	ck_assert_uint_eq(req.devices_per_task, 2);
	ck_assert(req.allow_waiting);
	/* It packs: the request is a valid message. */
	ck_assert_uint_gt(hf__submit_request__get_packed_size(&req), 0);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_submit_without_requirements_asks_for_none)
{
	char *argv[] = { "submit", "--all" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(argv), argv, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.min_memory_bytes, 0);
	ck_assert_str_eq(req.min_compute_capability, "");
	ck_assert_uint_eq(req.n_gfx_targets, 0);
	ck_assert_uint_eq(req.n_labels, 0);
	ck_assert_uint_eq(req.n_runtimes, 0);
	ck_assert_uint_eq(req.devices_per_task, 0); /* the protocol's default: one */
	ck_assert(!req.allow_waiting);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_submit_requirement_values_are_refused_naming_them)
{
	char *memory[] = { "submit", "--all", "--min-memory", "lots" };
	char *cc[] = { "submit", "--all", "--backends", "cuda", "--min-compute-capability", "9" };
	char *label[] = { "submit", "--all", "--label", "gpu=" };

	submit_refused(ARGC(memory), memory, "invalid value \"lots\" for --min-memory");
	submit_refused(ARGC(cc), cc, "invalid value \"9\" for --min-compute-capability");
	submit_refused(ARGC(label), label, "invalid label \"gpu=\" in --label");
}
END_TEST

START_TEST(test_compute_capability_and_gfx_need_their_backend)
{
	char *cc_cpu[] = { "submit", "--all", "--min-compute-capability", "8.0" };
	char *gfx_cuda[] = { "submit", "--all", "--backends", "cuda", "--gfx", "gfx942" };
	char *cc_mixed[] = { "submit", "--all", "--backends", "cpu,cuda", "--min-compute-capability",
			     "8.0" };
	struct hfctl_submit s;

	submit_refused(ARGC(cc_cpu), cc_cpu, "--min-compute-capability applies to cuda devices, but "
					     "--backends does not include cuda");
	submit_refused(ARGC(gfx_cuda), gfx_cuda, "--gfx applies to rocm devices, but --backends does "
						 "not include rocm");
	ck_assert_int_eq(hfctl_submit_parse(ARGC(cc_mixed), cc_mixed, "alice", &s, err, sizeof(err)),
			 0);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_submit_max_running_and_max_retries_bounds)
{
	char *low[] = { "submit", "--all", "--max-running", "1", "--max-retries", "1" };
	char *high[] = { "submit", "--all", "--max-running", "100000", "--max-retries", "20" };
	char *run0[] = { "submit", "--all", "--max-running", "0" };
	char *run_above[] = { "submit", "--all", "--max-running", "100001" };
	char *run_word[] = { "submit", "--all", "--max-running", "ten" };
	char *ret0[] = { "submit", "--all", "--max-retries", "0" };
	char *ret_above[] = { "submit", "--all", "--max-retries", "21" };
	char *ret_neg[] = { "submit", "--all", "--max-retries", "-1" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(low), low, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.max_running, 1);
	ck_assert_uint_eq(req.max_retries, 1);
	hfctl_submit_fini(&s);
	ck_assert_int_eq(hfctl_submit_parse(ARGC(high), high, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.max_running, 100000);
	ck_assert_uint_eq(req.max_retries, 20);
	hfctl_submit_fini(&s);

	submit_refused(ARGC(run0), run0, "invalid value \"0\" for --max-running: must be between 1 and 100000");
	submit_refused(ARGC(run_above), run_above, "invalid value \"100001\" for --max-running: must be between 1 and 100000");
	submit_refused(ARGC(run_word), run_word, "invalid value \"ten\" for --max-running: expected a whole number");
	submit_refused(ARGC(ret0), ret0, "invalid value \"0\" for --max-retries: must be between 1 and 20");
	submit_refused(ARGC(ret_above), ret_above, "invalid value \"21\" for --max-retries: must be between 1 and 20");
	submit_refused(ARGC(ret_neg), ret_neg, "invalid value \"-1\" for --max-retries: must be between 1 and 20");
}
END_TEST

START_TEST(test_submit_flaky_reruns_bounds_and_request)
{
	char *three[] = { "submit", "--all", "--flaky-reruns", "3" };
	char *zero[] = { "submit", "--all", "--flaky-reruns", "0" };
	char *above[] = { "submit", "--all", "--flaky-reruns", "11" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(three), three, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.flaky_reruns, 3);
	hfctl_submit_fini(&s);
	submit_refused(ARGC(zero), zero, "invalid value \"0\" for --flaky-reruns: must be between 1 and 10");
	submit_refused(ARGC(above), above, "invalid value \"11\" for --flaky-reruns: must be between 1 and 10");
}
END_TEST

START_TEST(test_submit_without_limits_leaves_them_to_the_coordinator)
{
	char *argv[] = { "submit", "--all" };
	struct hfctl_submit s;
	Hf__SubmitRequest req;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(argv), argv, "alice", &s, err, sizeof(err)), 0);
	hfctl_submit_request(&s, &req);
	ck_assert_uint_eq(req.max_running, 0);  /* no cap */
	ck_assert_uint_eq(req.max_retries, 0);  /* the coordinator's default */
	ck_assert_uint_eq(req.flaky_reruns, 0); /* a failed test is its outcome */
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_task_id_must_be_a_positive_whole_number)
{
	char *one[] = { "explain", "123" };
	char *none[] = { "explain" };
	char *two[] = { "explain", "123", "124" };
	uint64_t id = 7;

	ck_assert_int_eq(hfctl_parse_task_id("9000000001", &id, err, sizeof(err)), 0);
	ck_assert_uint_eq(id, 9000000001ull);
	ck_assert_int_eq(hfctl_parse_task_id("0", &id, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "invalid task id \"0\": expected a positive whole number");
	ck_assert_int_eq(hfctl_parse_task_id("12a", &id, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(hfctl_parse_task_id("-5", &id, err, sizeof(err)), -EINVAL);
	ck_assert_uint_eq(id, 9000000001ull); /* untouched on failure */

	ck_assert_int_eq(hfctl_task_arg("explain", 2, one, 1, &id, err, sizeof(err)), 0);
	ck_assert_uint_eq(id, 123);
	ck_assert_int_eq(hfctl_task_arg("explain", 1, none, 1, &id, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "missing task id (usage: hfctl explain TASK)");
	ck_assert_int_eq(hfctl_task_arg("explain", 3, two, 1, &id, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "unexpected argument \"124\" (usage: hfctl explain TASK)");
}
END_TEST

/* ---- cancel ---- */

START_TEST(test_cancel_takes_a_job_or_one_task)
{
	char *job[] = { "cancel", "42" };
	char *task[] = { "cancel", "--task", "123", "--json" };
	char *task_eq[] = { "cancel", "--task=77" };
	char *help[] = { "cancel", "--task", "junk", "--help" };
	struct hfctl_cancel cl;

	ck_assert_int_eq(hfctl_cancel_parse(ARGC(job), job, &cl, err, sizeof(err)), 0);
	ck_assert_uint_eq(cl.job_id, 42);
	ck_assert_uint_eq(cl.task_id, 0);
	ck_assert(!cl.json);

	ck_assert_int_eq(hfctl_cancel_parse(ARGC(task), task, &cl, err, sizeof(err)), 0);
	ck_assert_uint_eq(cl.job_id, 0);
	ck_assert_uint_eq(cl.task_id, 123);
	ck_assert(cl.json);

	ck_assert_int_eq(hfctl_cancel_parse(ARGC(task_eq), task_eq, &cl, err, sizeof(err)), 0);
	ck_assert_uint_eq(cl.task_id, 77);

	ck_assert_int_eq(hfctl_cancel_parse(ARGC(help), help, &cl, err, sizeof(err)), 0);
	ck_assert(cl.help);
}
END_TEST

/* Parses "cancel ..." and expects a refusal whose message contains want;
 * ret must stay as it was. */
static void cancel_refused(int argc, char **argv, const char *want)
{
	struct hfctl_cancel cl = { .job_id = 999 };

	err[0] = '\0';
	ck_assert_int_eq(hfctl_cancel_parse(argc, argv, &cl, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, want) != NULL, "message \"%s\" lacks \"%s\"", err, want);
	ck_assert_uint_eq(cl.job_id, 999);
	ck_assert_uint_eq(cl.task_id, 0);
}

START_TEST(test_cancel_refuses_both_neither_and_bad_task_ids)
{
	char *both[] = { "cancel", "42", "--task", "123" };
	char *neither[] = { "cancel", "--json" };
	char *twice[] = { "cancel", "--task", "1", "--task", "2" };
	char *zero[] = { "cancel", "--task", "0" };
	char *word[] = { "cancel", "--task", "abc" };
	char *no_value[] = { "cancel", "--task" };
	char *bad_job[] = { "cancel", "x42" };
	char *unknown[] = { "cancel", "--all", "42" };

	cancel_refused(ARGC(both), both, "a job (\"42\") and --task cannot be given together");
	cancel_refused(ARGC(neither), neither,
		       "missing job id (usage: hfctl cancel JOB | hfctl cancel --task TASK)");
	cancel_refused(ARGC(twice), twice, "--task is given twice");
	cancel_refused(ARGC(zero), zero, "invalid task id \"0\": expected a positive whole number");
	cancel_refused(ARGC(word), word, "invalid task id \"abc\"");
	cancel_refused(ARGC(no_value), no_value, "option \"--task\" needs a value");
	cancel_refused(ARGC(bad_job), bad_job, "invalid job id \"x42\"");
	cancel_refused(ARGC(unknown), unknown, "unknown option \"--all\" (see \"hfctl cancel --help\")");
}
END_TEST

/* ---- drain targets ---- */

START_TEST(test_drain_target_is_a_worker_or_one_device)
{
	struct hfctl_drain_target t;
	Hf__DrainRequest req;

	ck_assert_int_eq(hfctl_drain_target_parse("gpu-07", &t, err, sizeof(err)), 0);
	ck_assert_str_eq(t.worker_id, "gpu-07");
	ck_assert(!t.one_device);
	hfctl_drain_request(&t, false, &req);
	ck_assert_str_eq(req.worker_id, "gpu-07");
	ck_assert(!req.one_device);
	ck_assert_int_eq(req.backend, HF__BACKEND__BACKEND_UNSPECIFIED);
	ck_assert(!req.undrain);

	ck_assert_int_eq(hfctl_drain_target_parse("gpu-07/cuda:3", &t, err, sizeof(err)), 0);
	ck_assert_str_eq(t.worker_id, "gpu-07");
	ck_assert(t.one_device);
	ck_assert_int_eq(t.backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_uint_eq(t.index, 3);
	hfctl_drain_request(&t, true, &req);
	ck_assert(req.one_device);
	ck_assert_int_eq(req.backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_uint_eq(req.index, 3);
	ck_assert(req.undrain);
	ck_assert_uint_gt(hf__drain_request__get_packed_size(&req), 0);

	/* The last "/" splits: a worker id may hold one; a trailing "/"
	 * names such a worker whole. */
	ck_assert_int_eq(hfctl_drain_target_parse("rack-1/gpu-07/rocm:0", &t, err, sizeof(err)), 0);
	ck_assert_str_eq(t.worker_id, "rack-1/gpu-07");
	ck_assert(t.one_device);
	ck_assert_int_eq(t.backend, HF__BACKEND__BACKEND_ROCM);
	ck_assert_uint_eq(t.index, 0);
	ck_assert_int_eq(hfctl_drain_target_parse("rack-1/gpu-07/", &t, err, sizeof(err)), 0);
	ck_assert_str_eq(t.worker_id, "rack-1/gpu-07");
	ck_assert(!t.one_device);

	ck_assert_int_eq(hfctl_drain_target_parse("w1/cpu:2147483647", &t, err, sizeof(err)), 0);
	ck_assert_uint_eq(t.index, 2147483647u);
}
END_TEST

/* Parses target and expects a refusal whose message is want; ret must stay
 * as it was. */
static void drain_refused(const char *target, const char *want)
{
	struct hfctl_drain_target t = { .worker_id = "before" };

	err[0] = '\0';
	ck_assert_int_eq(hfctl_drain_target_parse(target, &t, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, want);
	ck_assert_str_eq(t.worker_id, "before");
	ck_assert(!t.one_device);
}

START_TEST(test_drain_target_refuses_bad_backend_index_and_worker)
{
	char long_id[HFCTL_WORKER_ID_MAX + 2];
	char msg[512];

	drain_refused("gpu-07/tpu:3", "unknown backend \"tpu\" in drain target \"gpu-07/tpu:3\" "
				      "(valid: cpu, cuda, rocm, mps, openvino, qnn)");
	drain_refused("gpu-07/CUDA:3", "unknown backend \"CUDA\" in drain target \"gpu-07/CUDA:3\" "
				       "(did you mean \"cuda\"? valid: cpu, cuda, rocm, mps, openvino, qnn)");
	drain_refused("gpu-07/cuda:x", "invalid device index \"x\" in drain target "
				       "\"gpu-07/cuda:x\": expected a whole number from 0 to 2147483647");
	drain_refused("gpu-07/cuda:-1", "invalid device index \"-1\" in drain target "
					"\"gpu-07/cuda:-1\": expected a whole number from 0 to 2147483647");
	drain_refused("gpu-07/cuda:3a", "invalid device index \"3a\" in drain target "
					"\"gpu-07/cuda:3a\": expected a whole number from 0 to 2147483647");
	/* The coordinator keeps the index as an int: what would wrap to -1
	 * ("the whole worker") is refused. */
	drain_refused("gpu-07/cuda:2147483648", "invalid device index \"2147483648\" in drain "
						"target \"gpu-07/cuda:2147483648\": expected a "
						"whole number from 0 to 2147483647");
	drain_refused("gpu-07/cuda", "invalid drain target \"gpu-07/cuda\": expected WORKER or "
				     "WORKER/BACKEND:INDEX, such as gpu-07 or gpu-07/cuda:3");
	drain_refused("gpu-07/cuda:", "invalid drain target \"gpu-07/cuda:\": expected WORKER or "
				      "WORKER/BACKEND:INDEX, such as gpu-07 or gpu-07/cuda:3");
	drain_refused("gpu-07/:3", "invalid drain target \"gpu-07/:3\": expected WORKER or "
				   "WORKER/BACKEND:INDEX, such as gpu-07 or gpu-07/cuda:3");
	drain_refused("/cuda:0", "invalid worker id \"\" in drain target \"/cuda:0\": 1 to 128 "
				 "characters, no blanks or control characters");
	drain_refused("", "invalid worker id \"\" in drain target \"\": 1 to 128 characters, no "
			  "blanks or control characters");
	drain_refused("gpu 07", "invalid worker id \"gpu 07\" in drain target \"gpu 07\": 1 to "
				"128 characters, no blanks or control characters");

	memset(long_id, 'w', HFCTL_WORKER_ID_MAX + 1);
	long_id[HFCTL_WORKER_ID_MAX + 1] = '\0';
	snprintf(msg, sizeof(msg), "invalid worker id \"%s\" in drain target \"%s\": 1 to 128 "
		 "characters, no blanks or control characters", long_id, long_id);
	drain_refused(long_id, msg);
	long_id[HFCTL_WORKER_ID_MAX] = '\0'; /* 128 characters fit */
	{
		struct hfctl_drain_target t;

		ck_assert_int_eq(hfctl_drain_target_parse(long_id, &t, err, sizeof(err)), 0);
		ck_assert_str_eq(t.worker_id, long_id);
	}
}
END_TEST

START_TEST(test_drain_arg_takes_exactly_one_target)
{
	char *one[] = { "drain", "gpu-07/cuda:3" };
	char *none[] = { "undrain" };
	char *two[] = { "drain", "gpu-07", "gpu-08" };
	struct hfctl_drain_target t;

	ck_assert_int_eq(hfctl_drain_arg("drain", 2, one, 1, &t, err, sizeof(err)), 0);
	ck_assert_str_eq(t.worker_id, "gpu-07");
	ck_assert(t.one_device);
	ck_assert_int_eq(hfctl_drain_arg("undrain", 1, none, 1, &t, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "missing worker (usage: hfctl undrain WORKER[/BACKEND:INDEX])");
	ck_assert_int_eq(hfctl_drain_arg("drain", 3, two, 1, &t, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "unexpected argument \"gpu-08\" (usage: hfctl drain "
			      "WORKER[/BACKEND:INDEX])");
}
END_TEST

/* A registry of bert and gpt2. */
static Hf__ModelsReply *registry_new(void)
{
	static Hf__ModelInfo bert = HF__MODEL_INFO__INIT, gpt2 = HF__MODEL_INFO__INIT;
	static Hf__ModelInfo *models[] = { &bert, &gpt2 };
	static Hf__ModelsReply reply = HF__MODELS_REPLY__INIT;

	bert.model_type = "bert";
	gpt2.model_type = "gpt2";
	reply.n_models = 2;
	reply.models = models;
	return &reply;
}

START_TEST(test_unknown_models_are_all_named_in_one_message)
{
	char *one[] = { "submit", "--models", "bert,no-such-model" };
	char *two[] = { "submit", "--models", "x1,gpt2,x2" };
	char *known[] = { "submit", "--models", "gpt2,bert" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(one), one, "alice", &s, err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_submit_check_models(&s, registry_new(), err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "unknown model \"no-such-model\" (see \"hfctl models\")");
	hfctl_submit_fini(&s);

	ck_assert_int_eq(hfctl_submit_parse(ARGC(two), two, "alice", &s, err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_submit_check_models(&s, registry_new(), err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "unknown models \"x1\", \"x2\" (see \"hfctl models\")");
	hfctl_submit_fini(&s);

	ck_assert_int_eq(hfctl_submit_parse(ARGC(known), known, "alice", &s, err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_submit_check_models(&s, registry_new(), err, sizeof(err)), 0);
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_many_unknown_models_are_counted_when_they_do_not_fit)
{
	struct hfctl_submit s = { 0 };
	char name[32];
	char small[160];

	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "missing-%02d", i);
		ck_assert_int_eq(hfctl_list_split(&s.models, "--models", name, err, sizeof(err)), 0);
	}
	ck_assert_int_eq(hfctl_submit_check_models(&s, registry_new(), small, sizeof(small)), -ENOENT);
	ck_assert_msg(strstr(small, "unknown models \"missing-00\", ") == small, "%s", small);
	ck_assert_msg(strstr(small, " more (see \"hfctl models\")") != NULL, "%s", small);
	hfctl_submit_fini(&s);
}
END_TEST

/* ---- did you mean ---- */

START_TEST(test_suggest_distance_counts_edits_and_swaps)
{
	ck_assert_uint_eq(hfctl_suggest_distance("bret", 4, "bert", 4), 1);   /* a swap */
	ck_assert_uint_eq(hfctl_suggest_distance("submt", 5, "submit", 6), 1); /* an insertion */
	ck_assert_uint_eq(hfctl_suggest_distance("kinnd", 5, "kind", 4), 1);   /* a deletion */
	ck_assert_uint_eq(hfctl_suggest_distance("cuda", 4, "rocm", 4), 4);
	ck_assert_uint_eq(hfctl_suggest_distance("CUDA", 4, "cuda", 4), 0);    /* case aside */
	ck_assert_uint_eq(hfctl_suggest_distance("", 0, "abc", 3), 3);
	char big[HFCTL_SUGGEST_LEN_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_uint_eq(hfctl_suggest_distance(big, strlen(big), "a", 1), UINT_MAX);
}
END_TEST

START_TEST(test_suggest_offers_only_close_names)
{
	struct hfctl_suggest sg;
	char hint[128];

	hfctl_suggest_init(&sg, "cdua");
	hfctl_suggest_try_list(&sg, hf_backend_names());
	hfctl_suggest_hint(&sg, hint, sizeof(hint));
	ck_assert_str_eq(hint, "did you mean \"cuda\"? ");
	/* Too far for a short word: nothing. */
	hfctl_suggest_init(&sg, "tpu");
	hfctl_suggest_try_list(&sg, hf_backend_names());
	hfctl_suggest_hint(&sg, hint, sizeof(hint));
	ck_assert_str_eq(hint, "");
	ck_assert_ptr_null(sg.best);
	/* Longer words may be further off; the closest wins. */
	hfctl_suggest_init(&sg, "deccoder-onyl");
	hfctl_suggest_try_list(&sg, hf_family_names());
	ck_assert_ptr_nonnull(sg.best);
	ck_assert_int_eq(strncmp(sg.best, "decoder-only", sg.best_len), 0);
	ck_assert_uint_eq(sg.best_len, strlen("decoder-only"));
}
END_TEST

START_TEST(test_unknown_names_come_with_a_suggestion)
{
	char *backend[] = { "submit", "--all", "--backends", "cdua" };
	char *kind[] = { "submit", "--all", "--kind", "benchmrk" };
	char *prec[] = { "submit", "--all", "--precision", "fp61" };
	char *family[] = { "submit", "--family", "vison" };
	char *option[] = { "submit", "--all", "--kinnd", "test" };
	char *value_opt[] = { "submit", "--all", "--task-timout=5s" };
	char *far[] = { "submit", "--all", "--zzzzzz" };
	bool set[HF__TASK_STATUS__STATUS_CANCELLED + 1];

	submit_refused(ARGC(backend), backend, "");
	ck_assert_str_eq(err, "unknown backend \"cdua\" (did you mean \"cuda\"? valid: cpu, cuda, rocm, "
			      "mps, openvino, qnn)");
	submit_refused(ARGC(kind), kind, "unknown kind \"benchmrk\" (did you mean \"benchmark\"? valid: ");
	submit_refused(ARGC(prec), prec, "unknown precision \"fp61\" (did you mean \"fp16\"? valid: ");
	submit_refused(ARGC(family), family, "unknown family \"vison\" (did you mean \"vision\"? valid: ");
	submit_refused(ARGC(option), option, "");
	ck_assert_str_eq(err, "unknown option \"--kinnd\" (did you mean \"--kind\"? see \"hfctl submit "
			      "--help\")");
	submit_refused(ARGC(value_opt), value_opt,
		       "unknown option \"--task-timout\" (did you mean \"--task-timeout\"? ");
	submit_refused(ARGC(far), far, "");
	ck_assert_str_eq(err, "unknown option \"--zzzzzz\" (see \"hfctl submit --help\")");
	ck_assert_int_eq(hfctl_parse_statuses("--status", "faild", set, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "unknown status \"faild\" (did you mean \"failed\"? valid: ") == err,
		      "%s", err);
}
END_TEST

START_TEST(test_old_option_spellings_are_not_suggested)
{
	char *argv[] = { "submit", "--all", "--timout", "5s" };

	submit_refused(ARGC(argv), argv, "");
	ck_assert_msg(strstr(err, "did you mean \"--task-timeout\"?") == NULL &&
			      strstr(err, "did you mean \"--timeout\"?") == NULL,
		      "%s", err);
}
END_TEST

START_TEST(test_unknown_models_get_the_closest_registry_model)
{
	char *one[] = { "submit", "--models", "bret" };
	char *two[] = { "submit", "--models", "bret,gtp2,zzzzzz" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(one), one, "alice", &s, err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_submit_check_models(&s, registry_new(), err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "unknown model \"bret\" (did you mean \"bert\"? see \"hfctl models\")");
	hfctl_submit_fini(&s);

	ck_assert_int_eq(hfctl_submit_parse(ARGC(two), two, "alice", &s, err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_submit_check_models(&s, registry_new(), err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "unknown models \"bret\" (did you mean \"bert\"?), \"gtp2\" (did you mean "
			      "\"gpt2\"?), \"zzzzzz\" (see \"hfctl models\")");
	hfctl_submit_fini(&s);
}
END_TEST

START_TEST(test_since_takes_dates_and_durations_back_from_now)
{
	char err[HFCTL_ERR_MAX];
	double t = 0, now = 1.8e9;

	ck_assert_int_eq(hfctl_parse_since("--since", "7d", now, &t, err, sizeof(err)), 0);
	ck_assert(t == now - 7 * 86400);
	ck_assert_int_eq(hfctl_parse_since("--since", "30m", now, &t, err, sizeof(err)), 0);
	ck_assert(t == now - 1800);
	ck_assert_int_eq(hfctl_parse_since("--since", "2w", now, &t, err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_parse_since("--since", "2020-01-02", now, &t, err, sizeof(err)), 0);
	ck_assert(t > 1.5777e9 && t < 1.5781e9);
	ck_assert_int_eq(hfctl_parse_since("--since", "2020-01-02T10:30", now, &t, err, sizeof(err)), 0);
	ck_assert_int_eq(hfctl_parse_since("--since", "2020-01-02T10:30:15", now, &t, err, sizeof(err)), 0);
	const char *bad[] = { "", "7", "7y", "d", "-7d", "7 d", "2020-13-40", "2020-01-02T", "2099-01-01", "1e3s" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(hfctl_parse_since("--since", bad[i], now, &t, err, sizeof(err)) == -EINVAL, "%s", bad[i]);
		ck_assert_ptr_nonnull(strstr(err, "--since"));
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hfctl-args");
	TCase *tc = tcase_create("submit");
	tcase_add_test(tc, test_submit_parses_every_option);
	tcase_add_test(tc, test_submit_applies_defaults);
	tcase_add_test(tc, test_submit_request_id_is_checked_and_carried);
	tcase_add_test(tc, test_submit_sequence_lengths_one_or_several);
	tcase_add_test(tc, test_submit_repeated_list_options_add_up);
	tcase_add_test(tc, test_submit_refuses_unknown_backend_naming_it);
	tcase_add_test(tc, test_submit_refuses_unknown_kind_and_precision);
	tcase_add_test(tc, test_submit_modes);
	tcase_add_test(tc, test_submit_refuses_duplicate_and_empty_list_items);
	tcase_add_test(tc, test_submit_all_excludes_models_and_family);
	tcase_add_test(tc, test_submit_suite_is_sent_and_checked_for_form);
	tcase_add_test(tc, test_submit_models_and_family_combine);
	tcase_add_test(tc, test_submit_refuses_bad_numbers);
	tcase_add_test(tc, test_submit_task_timeout_is_a_duration_in_whole_seconds);
	tcase_add_test(tc, test_submit_validates_family_names);
	tcase_add_test(tc, test_submit_priority_bounds);
	tcase_add_test(tc, test_submit_refuses_empty_submitter_stray_arguments_and_unknown_options);
	tcase_add_test(tc, test_submit_help_wins_over_everything_else);
	suite_add_tcase(s, tc);

	tc = tcase_create("pieces");
	tcase_add_test(tc, test_list_split_leaves_list_unchanged_on_refusal);
	tcase_add_test(tc, test_job_id_must_be_a_positive_whole_number);
	tcase_add_test(tc, test_duration_has_a_floor);
	tcase_add_test(tc, test_statuses_parse_into_a_set);
	suite_add_tcase(s, tc);

	tc = tcase_create("requirements");
	tcase_add_test(tc, test_size_takes_binary_decimal_and_plain_units);
	tcase_add_test(tc, test_size_refuses_junk_zero_and_overflow);
	tcase_add_test(tc, test_compute_capability_is_major_dot_minor);
	tcase_add_test(tc, test_runtime_spec_is_a_name_with_an_optional_version_bound);
	tcase_add_test(tc, test_submit_runtime_lists_are_checked_item_by_item);
	tcase_add_test(tc, test_labels_are_key_value_or_key_alone);
	tcase_add_test(tc, test_labels_refuse_bad_items_and_stay_unchanged);
	tcase_add_test(tc, test_gfx_targets_are_checked);
	tcase_add_test(tc, test_devices_per_task_bounds);
	tcase_add_test(tc, test_submit_requirements_land_in_the_request);
	tcase_add_test(tc, test_submit_without_requirements_asks_for_none);
	tcase_add_test(tc, test_submit_requirement_values_are_refused_naming_them);
	tcase_add_test(tc, test_compute_capability_and_gfx_need_their_backend);
	tcase_add_test(tc, test_submit_max_running_and_max_retries_bounds);
	tcase_add_test(tc, test_submit_without_limits_leaves_them_to_the_coordinator);
	tcase_add_test(tc, test_submit_flaky_reruns_bounds_and_request);
	suite_add_tcase(s, tc);

	tc = tcase_create("cancel-drain");
	tcase_add_test(tc, test_task_id_must_be_a_positive_whole_number);
	tcase_add_test(tc, test_cancel_takes_a_job_or_one_task);
	tcase_add_test(tc, test_cancel_refuses_both_neither_and_bad_task_ids);
	tcase_add_test(tc, test_drain_target_is_a_worker_or_one_device);
	tcase_add_test(tc, test_drain_target_refuses_bad_backend_index_and_worker);
	tcase_add_test(tc, test_drain_arg_takes_exactly_one_target);
	suite_add_tcase(s, tc);

	tc = tcase_create("registry");
	tcase_add_test(tc, test_unknown_models_are_all_named_in_one_message);
	tcase_add_test(tc, test_many_unknown_models_are_counted_when_they_do_not_fit);
	tcase_add_test(tc, test_since_takes_dates_and_durations_back_from_now);
	tcase_add_test(tc, test_suggest_distance_counts_edits_and_swaps);
	tcase_add_test(tc, test_suggest_offers_only_close_names);
	tcase_add_test(tc, test_unknown_names_come_with_a_suggestion);
	tcase_add_test(tc, test_old_option_spellings_are_not_suggested);
	tcase_add_test(tc, test_unknown_models_get_the_closest_registry_model);
	suite_add_tcase(s, tc);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
