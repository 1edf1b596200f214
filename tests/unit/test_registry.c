/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the model registry loader (coordinator/registry.c),
 * including the real registry file shipped in coordinator/registry/.
 */
#include <check.h>
#include <errno.h>
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
	tcase_add_test(tc, test_shipped_registry_covers_the_suite);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
