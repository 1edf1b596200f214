/* SPDX-License-Identifier: MIT
 *
 * Unit tests for reading the local HuggingFace cache (worker/hf-cache.c),
 * against a hub cache layout made by the test.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf-cache.h"
#include "hf_util.h"

static char root[64];

static void make(const char *rel)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	ck_assert_int_eq(hf_mkdir_p(path, 0755), 0);
}

static void setup(void)
{
	strcpy(root, "/tmp/hfcacheXXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s, ignoring\n", root);
}

START_TEST(test_models_with_a_snapshot_are_listed_sorted_as_hub_ids)
{
	char **ids;
	size_t n;

	make("models--openai-community--gpt2/snapshots/607a30d7");
	make("models--google-bert--bert-base-uncased/snapshots/86b5e0934494");
	make("models--gpt2/snapshots/e7da7f2");            /* a legacy id without an owner */
	make("models--acme--half-downloaded/blobs");          /* no snapshot: no weights */
	make("datasets--acme--corpus/snapshots/1");           /* not a model */
	make(".locks/models--acme--x");
	ck_assert_int_eq(hf_cache_scan(root, &ids, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(ids[0], "google-bert/bert-base-uncased");
	ck_assert_str_eq(ids[1], "gpt2");
	ck_assert_str_eq(ids[2], "openai-community/gpt2");
	hf_cache_free(ids, n);
}
END_TEST

static void touch(const char *rel)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
}

START_TEST(test_weights_dirs_add_checkpoints_sorted_without_duplicates)
{
	char **ids;
	size_t n;
	char dirs[256];

	make("hub/models--openai-community--gpt2/snapshots/607a30d7");
	make("w1/openai-community/gpt2");                  /* also in the hub cache */
	touch("w1/openai-community/gpt2/config.json");
	touch("w1/openai-community/gpt2/model.safetensors");
	make("w1/bert-tiny");                              /* NAME without an org */
	touch("w1/bert-tiny/config.json");
	touch("w1/bert-tiny/pytorch_model.bin");
	make("w1/acme/config-only");                       /* no checkpoint file: not listed */
	touch("w1/acme/config-only/config.json");
	make("w1/acme/weights-only");                      /* no config.json: not listed */
	touch("w1/acme/weights-only/model.safetensors");
	make("w1/.hidden/model");
	touch("w1/.hidden/model/config.json");
	touch("w1/.hidden/model/model.safetensors");
	make("w2/meta/llama");
	touch("w2/meta/llama/config.json");
	touch("w2/meta/llama/model.safetensors.index.json");

	snprintf(dirs, sizeof(dirs), "%s/hub", root);
	ck_assert_int_eq(hf_cache_scan(dirs, &ids, &n), 0);
	ck_assert_uint_eq(n, 1);
	snprintf(dirs, sizeof(dirs), "%s/w1:/nonexistent::%s/w2", root, root);
	ck_assert_int_eq(hf_weights_dirs_scan(dirs, &ids, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(ids[0], "bert-tiny");
	ck_assert_str_eq(ids[1], "meta/llama");
	ck_assert_str_eq(ids[2], "openai-community/gpt2");
	/* no directories: the list is left as it is */
	ck_assert_int_eq(hf_weights_dirs_scan("", &ids, &n), 0);
	ck_assert_uint_eq(n, 3);
	hf_cache_free(ids, n);

	/* from an empty list */
	ids = NULL;
	n = 0;
	snprintf(dirs, sizeof(dirs), "%s/w2", root);
	ck_assert_int_eq(hf_weights_dirs_scan(dirs, &ids, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(ids[0], "meta/llama");
	hf_cache_free(ids, n);
}
END_TEST

START_TEST(test_a_missing_cache_is_an_empty_list)
{
	char **ids = (char **)1;
	size_t n = 7;
	ck_assert_int_eq(hf_cache_scan("/nonexistent/hub", &ids, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(ids);
	ck_assert_int_eq(hf_cache_scan(NULL, &ids, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_cache_dir_follows_setting_then_environment)
{
	char *d;

	setenv("HF_HUB_CACHE", "/env/hub", 1);
	setenv("HF_HOME", "/env/home", 1);
	setenv("HOME", "/home/u", 1);
	d = hf_cache_dir("/set/hub");
	ck_assert_str_eq(d, "/set/hub");
	free(d);
	d = hf_cache_dir("");
	ck_assert_str_eq(d, "/env/hub");
	free(d);
	unsetenv("HF_HUB_CACHE");
	d = hf_cache_dir(NULL);
	ck_assert_str_eq(d, "/env/home/hub");
	free(d);
	unsetenv("HF_HOME");
	d = hf_cache_dir(NULL);
	ck_assert_str_eq(d, "/home/u/.cache/huggingface/hub");
	free(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hf_cache");
	TCase *tc = tcase_create("hf_cache");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_models_with_a_snapshot_are_listed_sorted_as_hub_ids);
	tcase_add_test(tc, test_a_missing_cache_is_an_empty_list);
	tcase_add_test(tc, test_weights_dirs_add_checkpoints_sorted_without_duplicates);
	tcase_add_test(tc, test_cache_dir_follows_setting_then_environment);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
