/* SPDX-License-Identifier: MIT
 *
 * Unit tests for job expansion (coordinator/expand.c).
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "expand.h"
#include "hf_proto.h"

static struct registry *reg;

static void setup(void)
{
	char err[256];
	const char *text = REGISTRY_HEADER "\n"
		"bert\tgoogle-bert/bert-base-uncased\tencoder-only\tfill-mask\ttext\tsmall\t\n"
		"gpt2\topenai-community/gpt2\tdecoder-only\ttext-generation\ttext\tsmall\t\n"
		"llama\tmeta-llama/Llama-3.2-1B\tdecoder-only\ttext-generation\ttext\tmedium\t\t"
		"cuda/benchmark: too big ; mps: no kernels\n"
		"vit\tgoogle/vit-base-patch16-224\tvision\timage-classification\timage\tsmall\t\t"
		"*: needs a package\n";
	ck_assert_int_eq(registry_parse(text, strlen(text), "t", &reg, err, sizeof(err)), 0);
}

static void teardown(void)
{
	registry_free(reg);
}

START_TEST(test_models_times_backends_times_batches_times_precisions)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	char *models[] = { "gpt2", "bert" };
	Hf__Backend backends[] = { HF__BACKEND__BACKEND_CPU, HF__BACKEND__BACKEND_CUDA };
	Hf__TaskKind kinds[] = { HF__TASK_KIND__KIND_BENCHMARK };
	uint32_t batches[] = { 1, 8, 8 }; /* the duplicate counts once */
	char *precs[] = { "fp16", "bf16" };
	struct job_plan *plan;
	Hf__ErrorCode code;
	char err[512];

	req.models = models;
	req.n_models = 2;
	req.backends = backends;
	req.n_backends = 2;
	req.kinds = kinds;
	req.n_kinds = 1;
	req.batch_sizes = batches;
	req.n_batch_sizes = 3;
	req.precisions = precs;
	req.n_precisions = 2;
	req.priority = 5;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_uint_eq(plan->n_tasks, 2 * 2 * 1 * 2 * 2);
	ck_assert_int_eq(plan->priority, 5);
	ck_assert_uint_eq(plan->seq_lens[0], EXPAND_DEFAULT_SEQ_LEN);
	/* models come in registry order: bert first */
	ck_assert_str_eq(reg->models[plan->tasks[0].model].model_type, "bert");
	ck_assert_int_eq(plan->tasks[0].kind, HF__TASK_KIND__KIND_BENCHMARK);
	ck_assert_str_eq(reg->models[plan->tasks[15].model].model_type, "gpt2");
	ck_assert_int_eq(plan->tasks[15].backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_uint_eq(plan->tasks[15].batch_size, 8);
	ck_assert_str_eq(plan->tasks[15].precision, "bf16");
	ck_assert_ptr_nonnull(strstr(plan->spec_json, "\"fp16\""));
	job_plan_free(plan);
}
END_TEST

START_TEST(test_limited_combinations_are_listed_and_still_planned)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	char *models[] = { "llama", "vit", "bert" };
	Hf__Backend backends[] = { HF__BACKEND__BACKEND_CPU, HF__BACKEND__BACKEND_CUDA };
	Hf__TaskKind kinds[] = { HF__TASK_KIND__KIND_TEST, HF__TASK_KIND__KIND_BENCHMARK };
	uint32_t batches[] = { 1, 4 };
	struct job_plan *plan;
	Hf__ErrorCode code;
	char err[512];

	req.models = models;
	req.n_models = 3;
	req.backends = backends;
	req.n_backends = 2;
	req.kinds = kinds;
	req.n_kinds = 2;
	req.batch_sizes = batches;
	req.n_batch_sizes = 2;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	/* Limits are marks: every task is planned. */
	ck_assert_uint_eq(plan->n_tasks, 3 * 2 * 2 * 2);
	/* llama cuda/benchmark, then vit on every backend and kind; bert none. */
	ck_assert_uint_eq(plan->n_limited, 1 + 4);
	ck_assert_str_eq(reg->models[plan->limited[0].model].model_type, "llama");
	ck_assert_int_eq(plan->limited[0].backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_int_eq(plan->limited[0].kind, HF__TASK_KIND__KIND_BENCHMARK);
	ck_assert_str_eq(plan->limited[0].reason, "too big");
	ck_assert_uint_eq(plan->limited[0].n_tasks, 2);
	for (size_t i = 1; i < 5; i++) {
		ck_assert_str_eq(reg->models[plan->limited[i].model].model_type, "vit");
		ck_assert_str_eq(plan->limited[i].reason, "needs a package");
	}
	job_plan_free(plan);

	/* Nothing limited asked for: nothing listed. */
	req.n_models = 1;
	req.models = models + 2;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_uint_eq(plan->n_limited, 0);
	job_plan_free(plan);
}
END_TEST

START_TEST(test_defaults_are_cpu_test_batch1_fp32)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	struct job_plan *plan;
	Hf__ErrorCode code;
	char err[512];

	req.all_models = true;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_uint_eq(plan->n_tasks, reg->n);
	for (size_t i = 0; i < plan->n_tasks; i++) {
		ck_assert_int_eq(plan->tasks[i].backend, HF__BACKEND__BACKEND_CPU);
		ck_assert_int_eq(plan->tasks[i].kind, HF__TASK_KIND__KIND_TEST);
		ck_assert_uint_eq(plan->tasks[i].batch_size, 1);
		ck_assert_str_eq(plan->tasks[i].precision, "fp32");
	}
	job_plan_free(plan);
}
END_TEST

START_TEST(test_family_selects_its_models_once)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	char *fam[] = { "decoder-only" };
	char *models[] = { "gpt2" }; /* also in the family: one task, not two */
	struct job_plan *plan;
	Hf__ErrorCode code;
	char err[512];

	req.families = fam;
	req.n_families = 1;
	req.models = models;
	req.n_models = 1;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_uint_eq(plan->n_tasks, 2);
	job_plan_free(plan);
}
END_TEST

START_TEST(test_unknown_models_are_all_named)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	char *models[] = { "bert", "no-such-model", "gpt7" };
	struct job_plan *plan = NULL;
	Hf__ErrorCode code = HF__ERROR_CODE__ERR_NONE;
	char err[512];

	req.models = models;
	req.n_models = 3;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(code, HF__ERROR_CODE__ERR_UNKNOWN_MODEL);
	ck_assert_ptr_nonnull(strstr(err, "\"no-such-model\""));
	ck_assert_ptr_nonnull(strstr(err, "\"gpt7\""));
	ck_assert_ptr_null(strstr(err, "\"bert\""));
	ck_assert_ptr_null(plan);
}
END_TEST

START_TEST(test_bad_requests_are_refused_with_reason)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	char *models[] = { "bert" };
	char *fam[] = { "graph" };
	uint32_t zero[] = { 0 };
	char *prec[] = { "fp8" };
	Hf__Backend bad_backend[] = { (Hf__Backend)77 };
	struct job_plan *plan = NULL;
	Hf__ErrorCode code;
	char err[512];

	/* nothing selected */
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(code, HF__ERROR_CODE__ERR_BAD_REQUEST);
	/* --all with a list */
	req.all_models = true;
	req.models = models;
	req.n_models = 1;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	req.all_models = false;
	/* batch size 0 */
	req.batch_sizes = zero;
	req.n_batch_sizes = 1;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "batch size 0"));
	req.n_batch_sizes = 0;
	/* precision */
	req.precisions = prec;
	req.n_precisions = 1;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "\"fp8\""));
	req.n_precisions = 0;
	/* backend out of range */
	req.backends = bad_backend;
	req.n_backends = 1;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	req.n_backends = 0;
	/* flaky reruns */
	req.flaky_reruns = EXPAND_MAX_FLAKY_RERUNS + 1;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "flaky reruns"));
	req.flaky_reruns = 0;
	/* request id: the coordinator checks it as hfctl does */
	req.request_id = "nightly 1";
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "request id \"nightly 1\" is not 1 to 128 of"));
	req.request_id = "nightly-1";
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_str_eq(plan->request_id, "nightly-1");
	job_plan_free(plan);
	plan = NULL;
	req.request_id = (char *)"";   /* no key */
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_ptr_null(plan->request_id);
	job_plan_free(plan);
	plan = NULL;
	/* priority */
	req.priority = 5000;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	req.priority = 0;
	/* family */
	req.families = fam;
	req.n_families = 1;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(code, HF__ERROR_CODE__ERR_UNKNOWN_MODEL);
	ck_assert_ptr_nonnull(strstr(err, "\"graph\""));
	ck_assert_ptr_null(plan);
}
END_TEST

START_TEST(test_job_size_limit_is_enforced)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	struct job_plan *plan = NULL;
	Hf__ErrorCode code;
	char err[512];

	req.all_models = true;
	ck_assert_int_eq(expand_job(reg, &req, 3, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "limit of 3"));
	ck_assert_int_eq(expand_job(reg, &req, 4, &plan, &code, err, sizeof(err)), 0);
	job_plan_free(plan);
}
END_TEST

START_TEST(test_sequence_lengths_multiply_text_benchmarks_only)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	char *models[] = { "bert", "vit" };
	Hf__TaskKind kinds[] = { HF__TASK_KIND__KIND_TEST, HF__TASK_KIND__KIND_BENCHMARK };
	uint32_t seqs[] = { 512, 128, 512 }; /* the duplicate counts once */
	uint32_t batches[] = { 1, 8 };
	struct job_plan *plan;
	Hf__ErrorCode code;
	char err[512];
	size_t per_seq[2] = { 0 };

	req.models = models;
	req.n_models = 2;
	req.kinds = kinds;
	req.n_kinds = 2;
	req.batch_sizes = batches;
	req.n_batch_sizes = 2;
	req.seq_lens = seqs;
	req.n_seq_lens = 3;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	/* bert: test 2 batches at the first length + benchmark 2 lengths x 2
	 * batches; vit (no text input): test 2 + benchmark 2, at the first */
	ck_assert_uint_eq(plan->n_tasks, 2 + 4 + 2 + 2);
	ck_assert_uint_eq(plan->n_seq_lens, 2);
	ck_assert_uint_eq(plan->seq_lens[0], 512);
	for (size_t i = 0; i < plan->n_tasks; i++) {
		const struct task_spec *t = &plan->tasks[i];
		bool text_bench = strcmp(reg->models[t->model].model_type, "bert") == 0 &&
				  t->kind == HF__TASK_KIND__KIND_BENCHMARK;
		if (!text_bench)
			ck_assert_uint_eq(t->seq_len, 512);
		else
			per_seq[t->seq_len == 128]++;
	}
	ck_assert_uint_eq(per_seq[0], 2);
	ck_assert_uint_eq(per_seq[1], 2);
	ck_assert_ptr_nonnull(strstr(plan->spec_json, "\"seq_lens\":[512,128]"));
	job_plan_free(plan);

	/* the size limit counts what is planned */
	ck_assert_int_eq(expand_job(reg, &req, 9, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "would have 10 tasks"));
	/* not both forms; no zero */
	req.seq_len = 64;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "both given"));
	req.seq_len = 0;
	seqs[1] = 0;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "sequence length 0 is outside"));
}
END_TEST

/* Benchmarks get a task per mode; tests one (eager), whatever was asked;
 * unknown modes and too many are refused naming the value; none: eager. */
START_TEST(test_modes_multiply_benchmarks_only)
{
	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	char *models[] = { "bert", "vit" };
	Hf__TaskKind kinds[] = { HF__TASK_KIND__KIND_TEST, HF__TASK_KIND__KIND_BENCHMARK };
	uint32_t batches[] = { 1, 8 };
	char *modes[] = { "eager", "cuda-graph", "eager" }; /* the duplicate counts once */
	char *bad[] = { "graph" };
	char *many[] = { "eager", "cuda-graph", "compile", "eager", "compile" };
	struct job_plan *plan;
	Hf__ErrorCode code;
	char err[512];
	size_t tests = 0, eager = 0, graph = 0;

	req.models = models;
	req.n_models = 2;
	req.kinds = kinds;
	req.n_kinds = 2;
	req.batch_sizes = batches;
	req.n_batch_sizes = 2;
	req.modes = modes;
	req.n_modes = 3;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	/* per model: test 2 batches + benchmark 2 batches x 2 modes */
	ck_assert_uint_eq(plan->n_tasks, 2 * (2 + 4));
	for (size_t i = 0; i < plan->n_tasks; i++) {
		const struct task_spec *t = &plan->tasks[i];
		if (t->kind == HF__TASK_KIND__KIND_TEST) {
			ck_assert_str_eq(t->mode, "eager");
			tests++;
		} else if (strcmp(t->mode, "eager") == 0) {
			eager++;
		} else {
			ck_assert_str_eq(t->mode, "cuda-graph");
			graph++;
		}
	}
	ck_assert_uint_eq(tests, 4);
	ck_assert_uint_eq(eager, 4);
	ck_assert_uint_eq(graph, 4);
	ck_assert_ptr_nonnull(strstr(plan->spec_json, "\"modes\":[\"eager\",\"cuda-graph\",\"eager\"]"));
	job_plan_free(plan);

	/* the size limit counts the modes */
	ck_assert_int_eq(expand_job(reg, &req, 11, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "would have 12 tasks"));

	req.modes = bad;
	req.n_modes = 1;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(code, HF__ERROR_CODE__ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "unknown mode \"graph\""));
	ck_assert_ptr_nonnull(strstr(err, "eager, cuda-graph, compile"));

	req.modes = many;
	req.n_modes = 5;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "too many modes (5"));

	req.modes = NULL;
	req.n_modes = 0;
	ck_assert_int_eq(expand_job(reg, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_uint_eq(plan->n_tasks, 2 * (2 + 2));
	for (size_t i = 0; i < plan->n_tasks; i++)
		ck_assert_str_eq(plan->tasks[i].mode, "eager");
	ck_assert_ptr_null(strstr(plan->spec_json, "modes"));
	job_plan_free(plan);
}
END_TEST

/* A registry that grew past its core: --all and --family keep choosing from
 * core, --suite names any suite, and an unknown one is refused with the list. */
START_TEST(test_suites_select_and_all_stays_core)
{
	struct registry *big;
	struct job_plan *plan;
	Hf__ErrorCode code;
	char err[512];
	const char *text = REGISTRY_HEADER "\n# transformers 5.17\n"
		"bert\tx/bert\tencoder-only\tfill-mask\ttext\tsmall\t\t\tcore\ttransformers\n"
		"gpt2\tx/gpt2\tdecoder-only\ttext-generation\ttext\tsmall\t\t\tcore\ttransformers\n"
		"olmo3\t\tdecoder-only\ttext-generation\ttext\t\t\t\t\treference-list\n"
		"qwen3_5\t\tmultimodal\timage-text-to-text\timage+text\t\t\t\tnightly\treference-list\n";
	ck_assert_int_eq(registry_parse(text, strlen(text), "t", &big, err, sizeof(err)), 0);

	Hf__SubmitRequest req = HF__SUBMIT_REQUEST__INIT;
	req.all_models = true;
	ck_assert_int_eq(expand_job(big, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_uint_eq(plan->n_tasks, 2); /* bert, gpt2: as before the registry grew */
	job_plan_free(plan);

	char *fam[] = { "decoder-only" };
	req = (Hf__SubmitRequest)HF__SUBMIT_REQUEST__INIT;
	req.families = fam;
	req.n_families = 1;
	ck_assert_int_eq(expand_job(big, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_uint_eq(plan->n_tasks, 1); /* gpt2 */
	job_plan_free(plan);

	static const struct { const char *suite; size_t n; } cases[] = {
		{ "all", 4 }, { "core", 2 }, { "decoder-only", 2 }, { "nightly", 1 }, { "multimodal", 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		req = (Hf__SubmitRequest)HF__SUBMIT_REQUEST__INIT;
		req.suite = (char *)cases[i].suite;
		ck_assert_msg(expand_job(big, &req, 1000, &plan, &code, err, sizeof(err)) == 0, "%s", err);
		ck_assert_msg(plan->n_tasks == cases[i].n, "%s: %zu", cases[i].suite, plan->n_tasks);
		ck_assert_ptr_nonnull(strstr(plan->spec_json, cases[i].suite));
		job_plan_free(plan);
	}
	/* Suite and models add up, each model once. */
	char *models[] = { "olmo3", "bert" };
	req = (Hf__SubmitRequest)HF__SUBMIT_REQUEST__INIT;
	req.suite = "core";
	req.models = models;
	req.n_models = 2;
	ck_assert_int_eq(expand_job(big, &req, 1000, &plan, &code, err, sizeof(err)), 0);
	ck_assert_uint_eq(plan->n_tasks, 3);
	job_plan_free(plan);

	req = (Hf__SubmitRequest)HF__SUBMIT_REQUEST__INIT;
	req.suite = "speech";
	ck_assert_int_eq(expand_job(big, &req, 1000, &plan, &code, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(code, HF__ERROR_CODE__ERR_UNKNOWN_MODEL);
	ck_assert_str_eq(err, "unknown suite \"speech\" (valid: all, core, nightly, encoder-only, decoder-only, multimodal)");
	registry_free(big);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("expand");
	TCase *tc = tcase_create("expand");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_models_times_backends_times_batches_times_precisions);
	tcase_add_test(tc, test_defaults_are_cpu_test_batch1_fp32);
	tcase_add_test(tc, test_limited_combinations_are_listed_and_still_planned);
	tcase_add_test(tc, test_family_selects_its_models_once);
	tcase_add_test(tc, test_unknown_models_are_all_named);
	tcase_add_test(tc, test_bad_requests_are_refused_with_reason);
	tcase_add_test(tc, test_job_size_limit_is_enforced);
	tcase_add_test(tc, test_sequence_lengths_multiply_text_benchmarks_only);
	tcase_add_test(tc, test_suites_select_and_all_stays_core);
	tcase_add_test(tc, test_modes_multiply_benchmarks_only);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
