/* SPDX-License-Identifier: MIT
 *
 * Who sent a request, and may it do that: the one check every request of
 * both ports passes before a handler sees it (auth.c).  The token in the
 * envelope is looked up in the coordinator's table of live tokens (loaded
 * from the database at start, changed by token create and revoke; never a
 * database round trip per request) and its secret's hash compared in
 * constant time.  Then the role: the worker port takes only worker tokens,
 * and only for the worker id that is the token's name; the control port
 * takes no worker tokens, and each request needs the role
 * auth_control_role_needed names.  Cancel and retry of another's job need
 * admin: that is checked against the job's submitter in the database
 * (control-api.c passes the owner).
 *
 * A refusal is answered here: ERR_UNAUTHENTICATED (no token, a malformed,
 * unknown or revoked one) or ERR_FORBIDDEN (the message names the role
 * needed), and logged at most once a second.
 *
 * With auth.required = false (a loopback-only lab), a request without a
 * token acts as admin (and, on the worker port, as any worker); one with a
 * token is checked as always.
 *
 * Loop thread only.
 */
#ifndef HF_AUTH_H
#define HF_AUTH_H

#include <stdbool.h>

#include "auth-token.h"
#include "hf_nuv.h"
#include "hfleet.pb-c.h"

struct coord;
struct db_token;

/* Who a request comes from: a copy, good for as long as the request. */
struct coord_principal {
	char name[AUTH_NAME_MAX];
	enum auth_role role;
	char token_id[AUTH_ID_LEN + 1]; /* "": no token (auth.required off) */
};

/* Checks the token and the role of env, received on the worker port
 * (worker_port) or the control port.  Returns true with *ret; false when it
 * has replied with the refusal (the caller frees env and stops). */
bool coord_auth_check(struct coord *c, nuv_request_t *req, const Hf__Envelope *env, bool worker_port,
		      struct coord_principal *ret);

/* Fills the table from the tokens loaded at start. */
void coord_auth_load(struct coord *c, const struct db_token *tokens, size_t n);
/* Frees the table and the uses not yet written. */
void coord_auth_fini(struct coord *c);

/* control-auth.c: answers token create, list and revoke, audit and whoami
 * (already allowed by coord_auth_check).  Takes env. */
void control_auth_handle(struct coord *c, nuv_request_t *req, Hf__Envelope *env,
			 const struct coord_principal *who);

/* Is this body one control_auth_handle answers? */
bool control_auth_body(Hf__Envelope__BodyCase body);

#endif
