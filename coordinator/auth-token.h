/* SPDX-License-Identifier: MIT
 *
 * Tokens and roles, without I/O: the token format, hashing a token's
 * secret, making a new token, the roles and what each may do, and the
 * coordinator's in-memory table of live tokens.
 *
 * A token is "hft_<id>_<secret>": id is 12 lowercase hex digits (48 random
 * bits, the key of the table and of the database row), secret the unpadded
 * base64url of 32 random bytes (43 characters).  Only the SHA-256 of the
 * secret is stored anywhere; a presented token is found by its id and its
 * hash compared in constant time.  The table keeps, with each live token,
 * the secret that last matched its hash, so that the same token presented
 * again (every poll of a worker) costs a constant-time compare of 43 bytes
 * instead of a SHA-256; revoking the token removes the copy with it.
 *
 * Roles: viewer (reads), submitter (viewer + submit, cancel and retry of
 * its own jobs), admin (everything on the control port), worker (only the
 * worker port, only as the worker id that is the token's name).
 *
 * The table is the loop thread's (struct coord owns one); the other
 * functions keep no state and may be called from any thread.
 */
#ifndef HF_AUTH_TOKEN_H
#define HF_AUTH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hfleet.pb-c.h"

#define AUTH_ID_LEN 12
#define AUTH_SECRET_LEN 43
#define AUTH_HASH_LEN 32
#define AUTH_TOKEN_LEN (4 + AUTH_ID_LEN + 1 + AUTH_SECRET_LEN)
#define AUTH_NAME_MAX 128 /* a token's name: an id of at most 127 (a worker id) */
/* The most live tokens a coordinator keeps (each ~200 bytes). */
#define AUTH_TOKENS_MAX 100000

enum auth_role {
	AUTH_VIEWER,
	AUTH_SUBMITTER,
	AUTH_ADMIN,
	AUTH_WORKER,
};

/* "viewer" "submitter" "admin" "worker". */
const char *auth_role_name(enum auth_role role);
/* Returns 0, or -EINVAL for another name (*ret untouched). */
int auth_role_parse(const char *s, enum auth_role *ret);

/* The role a control request needs (viewer, submitter or admin); cancel
 * and retry need submitter for one's own jobs, admin for others'.  The
 * worker port's requests all need worker. */
enum auth_role auth_control_role_needed(Hf__Envelope__BodyCase body);

/* May role do what needs `needed`?  A higher role includes the lower
 * (viewer < submitter < admin); worker includes nothing but itself. */
bool auth_role_allows(enum auth_role role, enum auth_role needed);

/* Splits token into its id and the SHA-256 of its secret.  Returns 0, or
 * -EINVAL when it is not of the form hft_<12 hex>_<43 base64url>. */
int auth_token_parse(const char *token, char ret_id[AUTH_ID_LEN + 1], uint8_t ret_hash[AUTH_HASH_LEN]);

/* Checks token's form and finds its id and its secret (AUTH_SECRET_LEN
 * characters inside token) without hashing.  Returns 0, or -EINVAL when it
 * is not of the form hft_<12 hex>_<43 base64url>. */
int auth_token_split(const char *token, char ret_id[AUTH_ID_LEN + 1], const char **ret_secret);

/* Makes a new token from the kernel's random source (getrandom).  Returns
 * 0 or a negative errno. */
int auth_token_generate(char ret_token[AUTH_TOKEN_LEN + 1], char ret_id[AUTH_ID_LEN + 1],
			uint8_t ret_hash[AUTH_HASH_LEN]);

/* Do the two hashes match?  In time that does not depend on where they
 * differ. */
bool auth_hash_equal(const uint8_t a[AUTH_HASH_LEN], const uint8_t b[AUTH_HASH_LEN]);

/* ---- the table of live tokens (loop thread) ---- */

struct auth_token {
	char id[AUTH_ID_LEN + 1];
	char name[AUTH_NAME_MAX];
	enum auth_role role;
	uint8_t hash[AUTH_HASH_LEN];
	/* The secret last presented with this id whose hash was hash
	 * (auth_store_verify); secret_known false: none yet. */
	bool secret_known;
	char secret[AUTH_SECRET_LEN];
	int64_t touched_ms;  /* when last_used_at was last queued for writing (monotonic), 0: never */
	double used_at;      /* unix seconds of the last use not yet written, 0: none */
	bool touch_queued;   /* its id is on the coordinator's list of uses to write */
};

/* Sorted by id: lookups in logarithmic time. */
struct auth_store {
	struct auth_token *v;
	size_t n, cap;
};

/* Adds (or replaces) t.  Returns 0, -ENOMEM, or -ENOSPC beyond
 * AUTH_TOKENS_MAX. */
int auth_store_add(struct auth_store *s, const struct auth_token *t);
/* The token with this id, or NULL.  The pointer is good until the next
 * add or remove. */
struct auth_token *auth_store_find(struct auth_store *s, const char *id);
/* The live token that token (the whole "hft_..." string) is: found by its
 * id, its secret equal (constant time) to the one that last matched the
 * stored hash, else hashed and compared (and kept on a match).  Returns 0
 * with *ret; -EINVAL for a malformed token; -ENOENT for an unknown or
 * revoked id or a secret that does not match (ret_id is filled for the
 * refusal's message from -ENOENT on). */
int auth_store_verify(struct auth_store *s, const char *token, char ret_id[AUTH_ID_LEN + 1],
		      struct auth_token **ret);
/* Removes the token with this id, or every token with this name; returns
 * how many. */
size_t auth_store_remove(struct auth_store *s, const char *id_or_name);
void auth_store_fini(struct auth_store *s);

#endif
