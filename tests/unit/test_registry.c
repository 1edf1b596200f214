/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the model registry loader (coordinator/registry.c),
 * including the real registry file shipped in coordinator/registry/.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"
#include "registry.h"

#define HDR REGISTRY_HEADER "\n"

static int parse(const char *text, struct registry **reg, char *err)
{
	return registry_parse(text, strlen(text), "t.tsv", reg, err, 512);
}

START_TEST(test_parses_sorts_and_finds_models)
{
	struct registry *reg;
	char err[512];
	const char *text = HDR
		"gpt2\topenai-community/gpt2\tdecoder-only\ttext-generation\ttext\tsmall\t\n"
		"# a comment\n"
		"\n"
		"bert\tgoogle-bert/bert-base-uncased\tencoder-only\tfill-mask\ttext\tsmall\tthe classic\n"
		"vit\tgoogle/vit-base-patch16-224\tvision\timage-classification\timage\tsmall\n";
	ck_assert_int_eq(parse(text, &reg, err), 0);
	ck_assert_uint_eq(reg->n, 3);
	ck_assert_str_eq(reg->models[0].model_type, "bert");
	ck_assert_str_eq(reg->models[0].notes, "the classic");
	ck_assert_str_eq(reg->models[2].notes, "");
	ck_assert_int_eq(registry_find(reg, "gpt2"), 1);
	ck_assert_str_eq(reg->models[registry_find(reg, "vit")].family, "vision");
	ck_assert_int_eq(registry_find(reg, "no-such-model"), -1);
	registry_free(reg);
}
END_TEST

START_TEST(test_wrong_header_is_refused)
{
	struct registry *reg = NULL;
	char err[512];
	ck_assert_int_eq(parse("type\tid\n", &reg, err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "t.tsv:1"));
	ck_assert_ptr_null(reg);
}
END_TEST

START_TEST(test_unknown_family_names_line_and_value)
{
	struct registry *reg = NULL;
	char err[512];
	const char *text = HDR "bert\tx/y\tencoder-only\tfill-mask\ttext\tsmall\t\n"
			       "gnn\tx/z\tgraph\tnode-classification\tgraph\tsmall\t\n";
	ck_assert_int_eq(parse(text, &reg, err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "t.tsv:3"));
	ck_assert_ptr_nonnull(strstr(err, "\"graph\""));
}
END_TEST

START_TEST(test_duplicates_short_lines_and_bad_sizes_are_refused)
{
	struct registry *reg = NULL;
	char err[512];
	ck_assert_int_eq(parse(HDR "bert\tx/y\tencoder-only\tfill-mask\ttext\tsmall\t\n"
				   "bert\tx/z\tencoder-only\tfill-mask\ttext\tsmall\t\n", &reg, err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "listed twice"));
	ck_assert_int_eq(parse(HDR "bert\tx/y\tencoder-only\n", &reg, err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "t.tsv:2"));
	ck_assert_int_eq(parse(HDR "bert\tx/y\tencoder-only\tfill-mask\ttext\thuge\t\n", &reg, err), -EINVAL);
	ck_assert_int_eq(parse(HDR "bert\tx y\tencoder-only\tfill-mask\ttext\tsmall\t\n", &reg, err), -EINVAL);
	ck_assert_int_eq(parse(HDR, &reg, err), -EINVAL);
	ck_assert_int_eq(parse("", &reg, err), -EINVAL);
}
END_TEST

#define ROW "bert\tx/y\tencoder-only\tfill-mask\ttext\tsmall\tnotes\t"

START_TEST(test_limits_are_parsed_and_matched)
{
	struct registry *reg;
	char err[512];
	const char *text = HDR
		ROW "* : no retriever ; cuda/benchmark: too big (v1; maybe)\n"
		"gpt2\tx/z\tdecoder-only\ttext-generation\ttext\tsmall\t\t\n"
		"vit\tx/w\tvision\timage-classification\timage\tsmall\n"
		"t5\tx/v\tencoder-decoder\ttranslation\ttext\tsmall\t\tmps/test: an operator: missing\n";
	ck_assert_msg(parse(text, &reg, err) == 0, "%s", err);
	ck_assert_uint_eq(reg->n_limits, 3);
	const struct reg_model *bert = &reg->models[registry_find(reg, "bert")];
	ck_assert_uint_eq(bert->n_limits, 2);
	ck_assert_int_eq(bert->limits[0].backend, HF__BACKEND__BACKEND_UNSPECIFIED);
	ck_assert_int_eq(bert->limits[0].kind, HF__TASK_KIND__KIND_UNSPECIFIED);
	ck_assert_str_eq(bert->limits[0].reason, "no retriever");
	ck_assert_int_eq(bert->limits[1].backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_int_eq(bert->limits[1].kind, HF__TASK_KIND__KIND_BENCHMARK);
	ck_assert_str_eq(bert->limits[1].reason, "too big (v1; maybe)");
	ck_assert_str_eq(bert->notes, "notes");
	/* The first entry that covers the combination decides. */
	ck_assert_ptr_eq(registry_limit(bert, HF__BACKEND__BACKEND_CUDA, HF__TASK_KIND__KIND_BENCHMARK),
			 &bert->limits[0]);
	ck_assert_uint_eq(reg->models[registry_find(reg, "gpt2")].n_limits, 0);
	ck_assert_uint_eq(reg->models[registry_find(reg, "vit")].n_limits, 0);
	ck_assert_ptr_null(registry_limit(&reg->models[registry_find(reg, "vit")],
					  HF__BACKEND__BACKEND_CPU, HF__TASK_KIND__KIND_TEST));
	const struct reg_model *t5 = &reg->models[registry_find(reg, "t5")];
	ck_assert_uint_eq(t5->n_limits, 1);
	ck_assert_str_eq(t5->limits[0].reason, "an operator: missing");
	ck_assert_ptr_nonnull(registry_limit(t5, HF__BACKEND__BACKEND_MPS, HF__TASK_KIND__KIND_TEST));
	ck_assert_ptr_null(registry_limit(t5, HF__BACKEND__BACKEND_MPS, HF__TASK_KIND__KIND_BENCHMARK));
	ck_assert_ptr_null(registry_limit(t5, HF__BACKEND__BACKEND_CPU, HF__TASK_KIND__KIND_TEST));
	char scope[32];
	registry_limit_scope(&t5->limits[0], scope, sizeof(scope));
	ck_assert_str_eq(scope, "mps/test");
	registry_limit_scope(&bert->limits[0], scope, sizeof(scope));
	ck_assert_str_eq(scope, "*");
	registry_free(reg);
}
END_TEST

START_TEST(test_old_files_without_limits_load)
{
	struct registry *reg;
	char err[512];
	const char *text = REGISTRY_HEADER_V1 "\n"
		"bert\tx/y\tencoder-only\tfill-mask\ttext\tsmall\tnotes\n";
	ck_assert_msg(parse(text, &reg, err) == 0, "%s", err);
	ck_assert_uint_eq(reg->models[0].n_limits, 0);
	ck_assert_ptr_null(reg->models[0].limits);
	registry_free(reg);
	/* The old header has no eighth column. */
	reg = NULL;
	ck_assert_int_eq(parse(REGISTRY_HEADER_V1 "\n" ROW "*: x\n", &reg, err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "t.tsv:2: too many fields"));
	ck_assert_ptr_null(reg);
}
END_TEST

START_TEST(test_bad_limits_name_the_line)
{
	static const struct {
		const char *limits, *message;
	} bad[] = {
		{ "tpu: no such backend", "t.tsv:3: unknown backend \"tpu\"" },
		{ "cuda/train: x", "t.tsv:3: unknown kind \"train\"" },
		{ "*/test: x ; cuda/: y", "t.tsv:3: unknown kind \"\"" },
		{ "cuda:", "t.tsv:3: a limit of \"bert\" (cuda) has no reason" },
		{ "cpu/test:   ", "t.tsv:3: a limit of \"bert\" (cpu/test) has no reason" },
		{ "no scope here", "t.tsv:3: limit \"no scope here\" of \"bert\" is not" },
		{ "cpu: a ;  ; cuda: b", "t.tsv:3: limit \"\" of \"bert\"" },
		{ ": x", "t.tsv:3: unknown backend \"\"" },
		{ "cpu: a ; cpu: b", "t.tsv:3: \"bert\" lists the limit cpu twice" },
	};
	char text[512], err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct registry *reg = NULL;
		snprintf(text, sizeof(text), "%s%s%s%s\n", HDR,
			 "albert\tx/a\tencoder-only\tfill-mask\ttext\tsmall\t\tcpu: fine\n", ROW,
			 bad[i].limits);
		ck_assert_int_eq(parse(text, &reg, err), -EINVAL);
		ck_assert_msg(strstr(err, bad[i].message) != NULL, "%s: got %s", bad[i].limits, err);
		ck_assert_ptr_null(reg);
	}
}
END_TEST

/* A row of the current format: model, family, suites, source. */
#define ROW3(m, fam, suites, source) m "\tx/" m "\t" fam "\tfill-mask\ttext\tsmall\t\t\t" suites "\t" source "\n"

START_TEST(test_suites_are_parsed_and_picked)
{
	struct registry *reg;
	char err[512], names[256];
	bool picked[4] = { 0 };
	const char *text = HDR "# transformers 5.17.0\n"
		"# a second comment of the same form is not read: # transformers 1.0\n"
		ROW3("bert", "encoder-only", "core", "transformers")
		ROW3("gpt2", "decoder-only", "core,nightly", "transformers")
		ROW3("vit", "vision", "", "reference-list")
		ROW3("zeta", "decoder-only", "nightly", "");

	ck_assert_msg(parse(text, &reg, err) == 0, "%s", err);
	ck_assert_str_eq(reg->transformers_version, "5.17.0");
	ck_assert(reg->models[0].core && reg->models[1].core && !reg->models[2].core);
	ck_assert_str_eq(reg->models[2].source, "reference-list");
	ck_assert(registry_in_suite(&reg->models[1], "nightly"));
	ck_assert(!registry_in_suite(&reg->models[0], "nightly"));
	ck_assert(!registry_in_suite(&reg->models[0], "nightl"));
	ck_assert(registry_in_suite(&reg->models[2], "all"));
	ck_assert(registry_in_suite(&reg->models[2], "vision"));
	ck_assert_str_eq(registry_default_suite(reg), "core");

	ck_assert_int_eq(registry_suite_pick(reg, "core", picked, err, sizeof(err)), 0);
	ck_assert(picked[0] && picked[1] && !picked[2] && !picked[3]);
	memset(picked, 0, sizeof(picked));
	ck_assert_int_eq(registry_suite_pick(reg, "decoder-only", picked, err, sizeof(err)), 0);
	ck_assert(!picked[0] && picked[1] && !picked[2] && picked[3]);
	memset(picked, 0, sizeof(picked));
	ck_assert_int_eq(registry_suite_pick(reg, "all", picked, err, sizeof(err)), 0);
	ck_assert(picked[0] && picked[1] && picked[2] && picked[3]);
	/* A name no model has: refused with the list, nothing picked. */
	memset(picked, 0, sizeof(picked));
	ck_assert_int_eq(registry_suite_pick(reg, "speech", picked, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "unknown suite \"speech\" (valid: all, core, nightly, encoder-only, decoder-only, vision)");
	ck_assert(!picked[0] && !picked[1] && !picked[2] && !picked[3]);
	registry_suite_names(reg, names, 12);
	ck_assert_str_eq(names, "all, core"); /* cut at a whole name */
	registry_free(reg);
}
END_TEST

START_TEST(test_bad_suites_and_sources_name_the_line)
{
	static const char *const bad[][2] = {
		{ ROW3("bert", "encoder-only", "all", ""), "reserved" },
		{ ROW3("bert", "encoder-only", "vision", ""), "reserved" },
		{ ROW3("bert", "encoder-only", "Core", ""), "not 1 to" },
		{ ROW3("bert", "encoder-only", "core,,x", ""), "not 1 to" },
		{ ROW3("bert", "encoder-only", "core,", ""), "end with" },
		{ ROW3("bert", "encoder-only", "core,x,core", ""), "twice" },
		{ ROW3("bert", "encoder-only", "a b", ""), "not 1 to" },
		{ ROW3("bert", "encoder-only", "", "pypi"), "source \"pypi\"" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct registry *reg = NULL;
		char err[512], text[512];
		snprintf(text, sizeof(text), "%s%s", HDR, bad[i][0]);
		ck_assert_msg(parse(text, &reg, err) == -EINVAL, "%zu was taken", i);
		ck_assert_msg(strstr(err, "t.tsv:2") && strstr(err, bad[i][1]), "%zu: %s", i, err);
		ck_assert_ptr_null(reg);
	}
}
END_TEST

START_TEST(test_no_hub_id_or_size_yet_is_allowed)
{
	struct registry *reg;
	char err[512];
	const char *text = HDR "afmoe\t\tmixture-of-experts\ttext-generation\ttext\t\tno default Hub id\t\t\treference-list\n";
	ck_assert_msg(parse(text, &reg, err) == 0, "%s", err);
	ck_assert_str_eq(reg->models[0].hf_id, "");
	ck_assert_str_eq(reg->models[0].size_class, "");
	/* No model in core: --all and --family choose from every model. */
	ck_assert_str_eq(registry_default_suite(reg), "all");
	ck_assert_str_eq(reg->transformers_version, "");
	registry_free(reg);
	/* Only a version-like word is taken: it goes into logs and replies. */
	ck_assert_msg(parse(HDR "# transformers 5.17\x01x\n# transformers 5.2.0+local (built by hand)\n"
			    ROW3("bert", "encoder-only", "", ""), &reg, err) == 0, "%s", err);
	ck_assert_str_eq(reg->transformers_version, "5.2.0+local");
	registry_free(reg);
}
END_TEST

START_TEST(test_older_files_are_all_core)
{
	struct registry *reg;
	char err[512];
	const char *text = REGISTRY_HEADER_V2 "\n" ROW "\n";
	ck_assert_msg(parse(text, &reg, err) == 0, "%s", err);
	ck_assert(reg->models[0].core);
	ck_assert_str_eq(reg->models[0].suites, "");
	ck_assert_uint_eq(reg->n_suites, 0);
	ck_assert_str_eq(registry_default_suite(reg), "core");
	registry_free(reg);
}
END_TEST

static Hf__Runtime *runtime(Hf__Runtime *rt, const char *name, const char *version, bool available)
{
	*rt = (Hf__Runtime)HF__RUNTIME__INIT;
	rt->name = (char *)name;
	rt->version = (char *)version;
	rt->available = available;
	return rt;
}

START_TEST(test_transformers_skew_is_told)
{
	struct registry *reg;
	char err[512], msg[256];
	Hf__Runtime a, b;
	Hf__Runtime *rts[2];

	ck_assert_int_eq(parse(HDR "# transformers 5.17\n" ROW3("bert", "encoder-only", "core", ""), &reg, err), 0);
	rts[0] = runtime(&a, "torch", "2.11.0", true);
	rts[1] = runtime(&b, "transformers", "5.12.0", true);
	ck_assert(registry_transformers_skew(reg, rts, 2, msg, sizeof(msg)));
	ck_assert_str_eq(msg, "transformers 5.12.0 is older than the registry's 5.17: its runner skips the model types it lacks");
	runtime(&b, "transformers", "6.0.0.dev0", true);
	ck_assert(registry_transformers_skew(reg, rts, 2, msg, sizeof(msg)));
	ck_assert_ptr_nonnull(strstr(msg, "transformers 6.0.0.dev0 is newer than the registry's 5.17"));
	runtime(&b, "transformers", "5.17.3", true); /* a patch release adds no types */
	ck_assert(!registry_transformers_skew(reg, rts, 2, msg, sizeof(msg)));
	runtime(&b, "transformers", "", false);      /* absent: the runner says so per task */
	ck_assert(!registry_transformers_skew(reg, rts, 2, msg, sizeof(msg)));
	runtime(&b, "transformers", "unknown", true);
	ck_assert(!registry_transformers_skew(reg, rts, 2, msg, sizeof(msg)));
	registry_free(reg);
	/* A registry that does not say its version says nothing. */
	ck_assert_int_eq(parse(HDR ROW3("bert", "encoder-only", "core", ""), &reg, err), 0);
	runtime(&b, "transformers", "4.0.0", true);
	ck_assert(!registry_transformers_skew(reg, rts, 2, msg, sizeof(msg)));
	registry_free(reg);
}
END_TEST

START_TEST(test_shipped_registry_covers_the_suite)
{
	struct registry *reg;
	char err[512];
	size_t per_family[11] = { 0 };
	static const char *const families[] = { "encoder-only", "decoder-only", "encoder-decoder",
		"vision", "vision-text", "speech", "multimodal", "diffusion", "mixture-of-experts",
		"state-space", "rag" };

	ck_assert_msg(registry_load_file(REGISTRY_FILE, &reg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_ge(reg->n, 280);
	for (size_t i = 0; i < reg->n; i++)
		for (int f = 0; f < 11; f++)
			if (strcmp(reg->models[i].family, families[f]) == 0)
				per_family[f]++;
	for (int f = 0; f < 11; f++)
		ck_assert_msg(per_family[f] > 0, "family %s has no model", families[f]);
	ck_assert_int_ge(registry_find(reg, "bert"), 0);
	ck_assert_int_ge(registry_find(reg, "llama"), 0);
	ck_assert_int_ge(registry_find(reg, "whisper"), 0);
	/* The limits the registry marks, and nothing hidden. */
	const struct reg_model *layoutlmv2 = &reg->models[registry_find(reg, "layoutlmv2")];
	ck_assert_ptr_nonnull(registry_limit(layoutlmv2, HF__BACKEND__BACKEND_CPU, HF__TASK_KIND__KIND_TEST));
	/* rag runs against the runner's synthetic document index: no limit */
	ck_assert_uint_eq(reg->models[registry_find(reg, "rag")].n_limits, 0);
	const struct reg_model *llama4 = &reg->models[registry_find(reg, "llama4")];
	ck_assert_ptr_nonnull(registry_limit(llama4, HF__BACKEND__BACKEND_CUDA,
					     HF__TASK_KIND__KIND_BENCHMARK));
	ck_assert_ptr_null(registry_limit(llama4, HF__BACKEND__BACKEND_CUDA, HF__TASK_KIND__KIND_TEST));
	const struct reg_model *dinat = &reg->models[registry_find(reg, "dinat")];
	ck_assert_uint_eq(dinat->n_limits, 1);
	ck_assert_ptr_nonnull(strstr(dinat->limits[0].reason, "natten"));
	ck_assert_uint_eq(reg->models[registry_find(reg, "clvp")].n_limits, 0);
	/* dinat, layoutlmv2 and two benchmarks too large for one GPU; the
	 * two sub-configs AutoModel has no class for run on their parent's class */
	ck_assert_uint_eq(reg->n_limits, 4);
	ck_assert_uint_eq(reg->models[registry_find(reg, "dia_decoder")].n_limits, 0);
	ck_assert_uint_eq(reg->models[registry_find(reg, "bert")].n_limits, 0);
	/* Every type transformers 5.17 builds (coordinator/registry/README.md);
	 * the seed project's 308 are core. */
	size_t core = 0;
	for (size_t i = 0; i < reg->n; i++)
		core += reg->models[i].core;
	ck_assert_uint_eq(reg->n, 557);
	ck_assert_uint_eq(core, 308);
	/* "5.17" from the reference list, "5.17.0" once rebuilt from the library */
	ck_assert_msg(strncmp(reg->transformers_version, "5.17", 4) == 0, "%s", reg->transformers_version);
	char names[512];
	registry_suite_names(reg, names, sizeof(names));
	ck_assert_str_eq(names, "all, core, encoder-only, decoder-only, encoder-decoder, vision, vision-text, "
				"speech, multimodal, diffusion, mixture-of-experts, state-space, rag");
	registry_free(reg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("registry");
	tcase_add_test(tc, test_parses_sorts_and_finds_models);
	tcase_add_test(tc, test_wrong_header_is_refused);
	tcase_add_test(tc, test_unknown_family_names_line_and_value);
	tcase_add_test(tc, test_duplicates_short_lines_and_bad_sizes_are_refused);
	tcase_add_test(tc, test_limits_are_parsed_and_matched);
	tcase_add_test(tc, test_old_files_without_limits_load);
	tcase_add_test(tc, test_bad_limits_name_the_line);
	tcase_add_test(tc, test_suites_are_parsed_and_picked);
	tcase_add_test(tc, test_bad_suites_and_sources_name_the_line);
	tcase_add_test(tc, test_no_hub_id_or_size_yet_is_allowed);
	tcase_add_test(tc, test_older_files_are_all_core);
	tcase_add_test(tc, test_transformers_skew_is_told);
	tcase_add_test(tc, test_shipped_registry_covers_the_suite);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
