/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the token table's check (coordinator/auth-token.c): the
 * form, the secret kept after a match so that a repeat costs a compare, and
 * that a kept secret never lets through what a full check would refuse (a
 * revoked or replaced token, another secret under the same id).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth-token.h"

/* A live token in s named name; its whole string in ret_token. */
static void add_token(struct auth_store *s, const char *name, char ret_token[AUTH_TOKEN_LEN + 1])
{
	struct auth_token t = { 0 };

	ck_assert_int_eq(auth_token_generate(ret_token, t.id, t.hash), 0);
	strcpy(t.name, name);
	t.role = AUTH_WORKER;
	ck_assert_int_eq(auth_store_add(s, &t), 0);
}

/* token with one secret character changed (still of the right form). */
static void other_secret(const char *token, char ret[AUTH_TOKEN_LEN + 1])
{
	strcpy(ret, token);
	ret[5 + AUTH_ID_LEN] = ret[5 + AUTH_ID_LEN] == 'A' ? 'B' : 'A';
}

START_TEST(test_a_repeat_is_taken_and_another_secret_refused)
{
	struct auth_store s = { 0 };
	char tok[AUTH_TOKEN_LEN + 1], forged[AUTH_TOKEN_LEN + 1], id[AUTH_ID_LEN + 1];
	struct auth_token *t;

	add_token(&s, "w1", tok);
	other_secret(tok, forged);
	/* Another secret before any match, and after: refused both times. */
	ck_assert_int_eq(auth_store_verify(&s, forged, id, &t), -ENOENT);
	ck_assert_ptr_null(t);
	ck_assert_int_eq(auth_store_verify(&s, tok, id, &t), 0);
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(t->name, "w1");
	ck_assert(t->secret_known);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(auth_store_verify(&s, tok, id, &t), 0);
		ck_assert_str_eq(id, t->id);
		ck_assert_int_eq(auth_store_verify(&s, forged, id, &t), -ENOENT);
		ck_assert_int_eq(strncmp(id, tok + 4, AUTH_ID_LEN), 0); /* for the refusal's message */
	}
	/* The kept secret is the one that matched, not the last presented. */
	ck_assert_int_eq(auth_store_verify(&s, tok, id, &t), 0);
	ck_assert_mem_eq(t->secret, tok + 5 + AUTH_ID_LEN, AUTH_SECRET_LEN);
	auth_store_fini(&s);
}
END_TEST

START_TEST(test_revoked_and_replaced_tokens_are_refused_after_a_match)
{
	struct auth_store s = { 0 };
	char a[AUTH_TOKEN_LEN + 1], b[AUTH_TOKEN_LEN + 1], id[AUTH_ID_LEN + 1];
	struct auth_token *t, fresh = { 0 };

	add_token(&s, "w1", a);
	add_token(&s, "w2", b);
	ck_assert_int_eq(auth_store_verify(&s, a, id, &t), 0);
	ck_assert_int_eq(auth_store_verify(&s, b, id, &t), 0);
	/* Revoked by id: refused on the very next check; the other stays. */
	ck_assert_uint_eq(auth_store_remove(&s, "w1"), 1);
	ck_assert_int_eq(auth_store_verify(&s, a, id, &t), -ENOENT);
	ck_assert_ptr_null(t);
	ck_assert_int_eq(auth_store_verify(&s, b, id, &t), 0);
	/* Replaced under the same id (a new hash): the kept secret goes with
	 * the old entry. */
	memcpy(fresh.id, b + 4, AUTH_ID_LEN);
	strcpy(fresh.name, "w2");
	fresh.role = AUTH_WORKER;
	memset(fresh.hash, 0x5a, AUTH_HASH_LEN);
	ck_assert_int_eq(auth_store_add(&s, &fresh), 0);
	ck_assert_int_eq(auth_store_verify(&s, b, id, &t), -ENOENT);
	ck_assert_uint_eq(s.n, 1);
	auth_store_fini(&s);
}
END_TEST

START_TEST(test_malformed_tokens)
{
	struct auth_store s = { 0 };
	char tok[AUTH_TOKEN_LEN + 1], bad[AUTH_TOKEN_LEN + 2], id[AUTH_ID_LEN + 1];
	const char *secret;
	struct auth_token *t;

	add_token(&s, "w1", tok);
	ck_assert_int_eq(auth_token_split(tok, id, &secret), 0);
	ck_assert_ptr_eq(secret, tok + 5 + AUTH_ID_LEN);
	ck_assert_int_eq(strncmp(id, tok + 4, AUTH_ID_LEN), 0);
	ck_assert_int_eq(auth_store_verify(&s, "", id, &t), -EINVAL);
	ck_assert_int_eq(auth_store_verify(&s, "hft_", id, &t), -EINVAL);
	/* One character too many, one too few, a wrong prefix, an upper-case
	 * id digit, a character outside base64url, and a last character whose
	 * low bits are not 0. */
	snprintf(bad, sizeof(bad), "%sA", tok);
	ck_assert_int_eq(auth_store_verify(&s, bad, id, &t), -EINVAL);
	strcpy(bad, tok);
	bad[AUTH_TOKEN_LEN - 1] = '\0';
	ck_assert_int_eq(auth_store_verify(&s, bad, id, &t), -EINVAL);
	struct {
		size_t at;
		char ch;
	} edits[] = { { 0, 'H' }, { 4, 'A' }, { 16, '-' }, { 17, '+' }, { 17, '=' }, { AUTH_TOKEN_LEN - 1, 'B' } };
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		strcpy(bad, tok);
		bad[edits[i].at] = edits[i].ch;
		ck_assert_msg(auth_store_verify(&s, bad, id, &t) == -EINVAL, "edit %zu taken", i);
	}
	/* Every base64url character is taken where the form allows it. */
	strcpy(bad, tok);
	memcpy(bad + 17, strncmp(tok + 17, "-_9", 3) ? "-_9" : "_-8", 3);
	ck_assert_int_eq(auth_token_split(bad, id, &secret), 0);
	ck_assert_int_eq(auth_store_verify(&s, bad, id, &t), -ENOENT);
	auth_store_fini(&s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("auth_token");
	TCase *tc = tcase_create("auth_token");
	tcase_add_test(tc, test_a_repeat_is_taken_and_another_secret_refused);
	tcase_add_test(tc, test_revoked_and_replaced_tokens_are_refused_after_a_match);
	tcase_add_test(tc, test_malformed_tokens);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
