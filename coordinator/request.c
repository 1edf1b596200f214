/* SPDX-License-Identifier: MIT
 *
 * The edge of both coordinator ports: every request is decoded and
 * validated here (common/hf_validate.h) before a handler sees it, a refused
 * one is answered and its peer logged (rate-limited), and replies are
 * packed and sent.  Loop thread only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "coordinator.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_util.h"

void coord_reply(nuv_request_t *req, Hf__Envelope *env)
{
	nng_msg *msg;
	if (hf_env_pack(env, &msg) < 0) {
		coord_reply_error(req, HF__ERROR_CODE__ERR_INTERNAL, "could not pack the reply");
		return;
	}
	nuv_reply(req, msg);
}

void coord_reply_error(nuv_request_t *req, Hf__ErrorCode code, const char *fmt, ...)
{
	char text[1024];
	nng_msg *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (hf_env_error(code, &msg, "%s", text) < 0)
		msg = NULL; /* drop the request: the peer times out and retries */
	nuv_reply(req, msg);
}

Hf__ErrorCode coord_db_error_code(int rc)
{
	return rc == -EINVAL ? HF__ERROR_CODE__ERR_BAD_REQUEST : HF__ERROR_CODE__ERR_UNAVAILABLE;
}

/* One line per refused message, at most one a second per port: a peer
 * sending garbage in a loop must not flood the log.  Loop thread only. */
static void log_refused(const nuv_request_t *req, enum hf_msg_role role, const char *why)
{
	static int64_t last_ms[2];
	static unsigned long suppressed[2];
	int k = role == HF_MSG_WORKER_REQUEST ? 0 : 1;
	int64_t now = hf_mono_ms();

	if (last_ms[k] && now - last_ms[k] < 1000) {
		suppressed[k]++;
		return;
	}
	if (suppressed[k])
		log_warn("refused a message from %s: %s (and %lu more messages on this port in the last second)",
			 nuv_request_peer(req), why, suppressed[k]);
	else
		log_warn("refused a message from %s: %s", nuv_request_peer(req), why);
	last_ms[k] = now;
	suppressed[k] = 0;
}

Hf__Envelope *coord_request_unpack(nuv_request_t *req, nng_msg *msg, enum hf_msg_role role)
{
	Hf__Envelope *env = NULL;
	char err[512];
	int r = hf_msg_decode(nng_msg_body(msg), nng_msg_len(msg), role, &env, err, sizeof(err));

	if (r < 0)
		log_refused(req, role, err);
	nng_msg_free(msg);
	switch (r) {
	case 0:
		return env;
	case -EPROTONOSUPPORT:
		coord_reply_error(req, HF__ERROR_CODE__ERR_VERSION, "%s", err);
		return NULL;
	case -EPROTOTYPE:
		coord_reply_error(req, HF__ERROR_CODE__ERR_WRONG_PORT, "%s", err);
		return NULL;
	case -EBADMSG:
		coord_reply_error(req, HF__ERROR_CODE__ERR_BAD_REQUEST, "malformed message: %s", err);
		return NULL;
	default:
		coord_reply_error(req, HF__ERROR_CODE__ERR_BAD_REQUEST, "%s", err);
		return NULL;
	}
}
