/* SPDX-License-Identifier: MIT
 *
 * Unit tests for hfctl's argument validation (coordinator/hfctl/hfctl-args.c):
 * what "hfctl submit" accepts and the message it gives for what it refuses,
 * list splitting, numbers, durations, job ids and the registry check.
 */
#include <check.h>
#include <errno.h>
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
			 "--timeout", "90s", "--iterations", "50", "--warmup", "5",
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
	ck_assert(!s.watch);
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
	submit_refused(ARGC(nothing), nothing, "nothing to run: give --models, --family or --all");
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
	char *ok[] = { "submit", "--all", "--timeout", "1500ms" };
	char *short_[] = { "submit", "--all", "--timeout", "500ms" };
	char *long_[] = { "submit", "--all", "--timeout", "25h" };
	char *word[] = { "submit", "--all", "--timeout", "soon" };
	struct hfctl_submit s;

	ck_assert_int_eq(hfctl_submit_parse(ARGC(ok), ok, "alice", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.timeout_s, 2); /* rounded up: never less than asked */
	hfctl_submit_fini(&s);
	submit_refused(ARGC(short_), short_, "invalid value \"500ms\" for --timeout: must be at least 1s");
	submit_refused(ARGC(long_), long_, "invalid value \"25h\" for --timeout: must be at most 24h");
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

int main(void)
{
	Suite *s = suite_create("hfctl-args");
	TCase *tc = tcase_create("submit");
	tcase_add_test(tc, test_submit_parses_every_option);
	tcase_add_test(tc, test_submit_applies_defaults);
	tcase_add_test(tc, test_submit_repeated_list_options_add_up);
	tcase_add_test(tc, test_submit_refuses_unknown_backend_naming_it);
	tcase_add_test(tc, test_submit_refuses_unknown_kind_and_precision);
	tcase_add_test(tc, test_submit_refuses_duplicate_and_empty_list_items);
	tcase_add_test(tc, test_submit_all_excludes_models_and_family);
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

	tc = tcase_create("registry");
	tcase_add_test(tc, test_unknown_models_are_all_named_in_one_message);
	tcase_add_test(tc, test_many_unknown_models_are_counted_when_they_do_not_fit);
	suite_add_tcase(s, tc);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
