/* SPDX-License-Identifier: MIT
 *
 * Tokens and roles (see auth-token.h): the format, hashing with mbedTLS's
 * SHA-256, making tokens from getrandom, the permission table and the
 * sorted table of live tokens.  No I/O but getrandom.
 */
#include "auth-token.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/sha256.h>

static const char *const role_names[] = {
	[AUTH_VIEWER] = "viewer",
	[AUTH_SUBMITTER] = "submitter",
	[AUTH_ADMIN] = "admin",
	[AUTH_WORKER] = "worker",
};

const char *auth_role_name(enum auth_role role)
{
	return (unsigned)role < sizeof(role_names) / sizeof(role_names[0]) ? role_names[role] : "unknown";
}

int auth_role_parse(const char *s, enum auth_role *ret)
{
	for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (s && strcmp(s, role_names[i]) == 0) {
			*ret = (enum auth_role)i;
			return 0;
		}
	return -EINVAL;
}

enum auth_role auth_control_role_needed(Hf__Envelope__BodyCase body)
{
	switch (body) {
	case HF__ENVELOPE__BODY_JOB_STATUS:
	case HF__ENVELOPE__BODY_JOB_LIST:
	case HF__ENVELOPE__BODY_RESULTS_REQUEST:
	case HF__ENVELOPE__BODY_WORKERS:
	case HF__ENVELOPE__BODY_DEVICES:
	case HF__ENVELOPE__BODY_MODELS:
	case HF__ENVELOPE__BODY_EXPLAIN:
	case HF__ENVELOPE__BODY_WHOAMI:
	case HF__ENVELOPE__BODY_LOGS:
	case HF__ENVELOPE__BODY_COMPARE:
	case HF__ENVELOPE__BODY_HISTORY:
	case HF__ENVELOPE__BODY_REPORT:
		return AUTH_VIEWER;
	case HF__ENVELOPE__BODY_SUBMIT:
	case HF__ENVELOPE__BODY_CANCEL: /* and admin for another's job: checked with the job */
	case HF__ENVELOPE__BODY_RETRY:
		return AUTH_SUBMITTER;
	default: /* drain, tokens, audit, and anything added later */
		return AUTH_ADMIN;
	}
}

bool auth_role_allows(enum auth_role role, enum auth_role needed)
{
	if (role == AUTH_WORKER || needed == AUTH_WORKER)
		return role == needed;
	return role >= needed;
}

/* ---- the format ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void secret_hash(const char *secret, uint8_t hash[AUTH_HASH_LEN])
{
	mbedtls_sha256_ret((const unsigned char *)secret, AUTH_SECRET_LEN, hash, 0);
}

/* A base64url character's value, or -1. */
static int b64url_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '-' ? 62 : ch == '_' ? 63 : -1;
}

int auth_token_split(const char *token, char ret_id[AUTH_ID_LEN + 1], const char **ret_secret)
{
	if (!token || strnlen(token, AUTH_TOKEN_LEN + 1) != AUTH_TOKEN_LEN || memcmp(token, "hft_", 4) != 0 ||
	    token[4 + AUTH_ID_LEN] != '_')
		return -EINVAL;
	const char *id = token + 4, *secret = token + 5 + AUTH_ID_LEN;
	for (size_t i = 0; i < AUTH_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return -EINVAL;
	for (size_t i = 0; i < AUTH_SECRET_LEN; i++)
		if (b64url_value(secret[i]) < 0)
			return -EINVAL;
	/* 32 bytes are 43 characters and 4 bits: the last one's low 2 bits are 0. */
	if (b64url_value(secret[AUTH_SECRET_LEN - 1]) & 3)
		return -EINVAL;
	memcpy(ret_id, id, AUTH_ID_LEN);
	ret_id[AUTH_ID_LEN] = '\0';
	*ret_secret = secret;
	return 0;
}

int auth_token_parse(const char *token, char ret_id[AUTH_ID_LEN + 1], uint8_t ret_hash[AUTH_HASH_LEN])
{
	const char *secret;
	int r = auth_token_split(token, ret_id, &secret);

	if (r < 0)
		return r;
	secret_hash(secret, ret_hash);
	return 0;
}

static int random_fill(uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(buf + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return 0;
}

int auth_token_generate(char ret_token[AUTH_TOKEN_LEN + 1], char ret_id[AUTH_ID_LEN + 1],
			uint8_t ret_hash[AUTH_HASH_LEN])
{
	uint8_t raw[AUTH_ID_LEN / 2 + 33] = { 0 }; /* the id's bytes, the secret's 32 and a zero */
	char *p = ret_token;
	int r = random_fill(raw, AUTH_ID_LEN / 2 + 32);

	if (r < 0)
		return r;
	memcpy(p, "hft_", 4);
	p += 4;
	for (size_t i = 0; i < AUTH_ID_LEN / 2; i++) {
		*p++ = "0123456789abcdef"[raw[i] >> 4];
		*p++ = "0123456789abcdef"[raw[i] & 15];
	}
	*p++ = '_';
	const uint8_t *s = raw + AUTH_ID_LEN / 2;
	/* base64url without padding: 10 groups of 3 bytes, then 2 bytes as 3 characters. */
	for (size_t i = 0; i < 33; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | (i + 2 < 32 ? s[i + 2] : 0);
		*p++ = b64url[(v >> 18) & 63];
		*p++ = b64url[(v >> 12) & 63];
		*p++ = b64url[(v >> 6) & 63];
		if (i + 2 < 32)
			*p++ = b64url[v & 63];
	}
	*p = '\0';
	memset(raw, 0, sizeof(raw));
	return auth_token_parse(ret_token, ret_id, ret_hash);
}

/* Are the n bytes of a and b the same?  In time that does not depend on
 * where they differ. */
static bool bytes_equal(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	volatile uint8_t diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

bool auth_hash_equal(const uint8_t a[AUTH_HASH_LEN], const uint8_t b[AUTH_HASH_LEN])
{
	return bytes_equal(a, b, AUTH_HASH_LEN);
}

/* ---- the table ---- */

/* The position of id, or where it would go. */
static size_t store_pos(const struct auth_store *s, const char *id, bool *found)
{
	size_t lo = 0, hi = s->n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid].id, id);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int auth_store_add(struct auth_store *s, const struct auth_token *t)
{
	bool found;
	size_t i = store_pos(s, t->id, &found);

	if (found) {
		s->v[i] = *t;
		return 0;
	}
	if (s->n >= AUTH_TOKENS_MAX)
		return -ENOSPC;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct auth_token *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->v[i] = *t;
	s->n++;
	return 0;
}

struct auth_token *auth_store_find(struct auth_store *s, const char *id)
{
	bool found;
	size_t i = store_pos(s, id, &found);
	return found ? &s->v[i] : NULL;
}

int auth_store_verify(struct auth_store *s, const char *token, char ret_id[AUTH_ID_LEN + 1],
		      struct auth_token **ret)
{
	const char *secret;
	uint8_t hash[AUTH_HASH_LEN];
	struct auth_token *tok;

	*ret = NULL;
	if (auth_token_split(token, ret_id, &secret) < 0)
		return -EINVAL;
	tok = auth_store_find(s, ret_id);
	if (!tok)
		return -ENOENT;
	/* The same secret as the last that matched: its hash is the stored
	 * one, without computing it again.  Another one is hashed. */
	if (tok->secret_known && bytes_equal(tok->secret, secret, AUTH_SECRET_LEN)) {
		*ret = tok;
		return 0;
	}
	secret_hash(secret, hash);
	if (!auth_hash_equal(tok->hash, hash))
		return -ENOENT;
	memcpy(tok->secret, secret, AUTH_SECRET_LEN);
	tok->secret_known = true;
	*ret = tok;
	return 0;
}

size_t auth_store_remove(struct auth_store *s, const char *id_or_name)
{
	size_t kept = 0, removed = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->v[i].id, id_or_name) == 0 || strcmp(s->v[i].name, id_or_name) == 0) {
			memset(s->v[i].hash, 0, AUTH_HASH_LEN);
			memset(s->v[i].secret, 0, AUTH_SECRET_LEN);
			s->v[i].secret_known = false;
			removed++;
			continue;
		}
		s->v[kept++] = s->v[i];
	}
	s->n = kept;
	return removed;
}

void auth_store_fini(struct auth_store *s)
{
	if (s->v)
		explicit_bzero(s->v, s->n * sizeof(*s->v)); /* the secrets kept (a memset before free may be dropped) */
	free(s->v);
	memset(s, 0, sizeof(*s));
}
