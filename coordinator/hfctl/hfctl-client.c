/* SPDX-License-Identifier: MIT
 *
 * The synchronous control-protocol client (see hfctl-client.h).  nng's
 * errors are translated by nuv_errno (common/hf_nuv.c), the coordinator's
 * error codes here.
 */
#include "hfctl-client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "hf_nuv.h"
#include "hf_util.h"
#include "hf_validate.h"

struct hfctl_client {
	nng_socket sock;
	char *url;
	const struct hf_tls *tls;
	int64_t timeout_ms;
	Hf__Envelope *last_error;  /* the last call's Error envelope, or NULL */
};

/* The reason part of a transport message. */
static const char *transport_reason(int r)
{
	switch (-r) {
	case ETIMEDOUT:
		return "timed out";
	case ECONNREFUSED:
		return "connection refused";
	case ECONNRESET:
		return "connection reset";
	case EMSGSIZE:
		return "reply too large";
	case ENOMEM:
		return "out of memory";
	case EINVAL:
		return "invalid address";
	case ENOTSUP:
		return "unsupported transport";
	case ESHUTDOWN:
		return "socket closed";
	case EKEYREJECTED:
		return "TLS: a certificate was not accepted";
	case EPROTO:
		return "TLS handshake failed";
	default:
		return "input/output error";
	}
}

int hfctl_client_open(const char *url, const struct hf_tls *tls, int64_t timeout_ms,
		      struct hfctl_client **ret_client, char *err, size_t errlen)
{
	struct hfctl_client *c = calloc(1, sizeof(*c));
	bool sock_open = false;
	int r;

	if (!c || !(c->url = strdup(url))) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	c->timeout_ms = timeout_ms;
	c->tls = tls;

	r = nuv_errno(nng_req0_open(&c->sock));
	if (r < 0) {
		snprintf(err, errlen, "could not open socket: %s", transport_reason(r));
		goto fail;
	}
	sock_open = true;
	r = nuv_errno(nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, HFCTL_RECV_MAX));
	if (r < 0) {
		snprintf(err, errlen, "could not set up socket: %s", transport_reason(r));
		goto fail;
	}
	char why[512];
	r = hf_tls_dial(c->sock, url, tls, why, sizeof(why));
	if (r < 0) {
		/* Both mean a URL or TLS settings hfctl cannot use: the
		 * user's to fix. */
		if (r == -ENOTSUP || r == -EINVAL || r == -ENOENT) {
			snprintf(err, errlen, "%s", why);
			r = -EINVAL;
		} else {
			snprintf(err, errlen, "could not reach coordinator at \"%s\": %s (%s)", url,
				 transport_reason(r), why);
		}
		goto fail;
	}
	*ret_client = c;
	return 0;

fail:
	if (sock_open)
		nng_close(c->sock);
	if (c)
		free(c->url);
	free(c);
	return r;
}

void hfctl_client_close(struct hfctl_client *c)
{
	if (!c)
		return;
	nng_close(c->sock);
	hf_env_free(c->last_error);
	free(c->url);
	free(c);
}

/* nng retries a failed TLS handshake quietly, as any failed connection, so
 * a call to a TLS coordinator that fails only times out: connect once more
 * to see whether TLS is why, and say so.  Bounded by a second (or the
 * call's timeout when shorter). */
static void tls_explain(const struct hfctl_client *c, int r, char *err, size_t errlen)
{
	char why[512];
	size_t len = strlen(err);
	int timeout = c->timeout_ms < 1000 ? (int)c->timeout_ms : 1000;

	if (r != -ETIMEDOUT || !hf_tls_url(c->url) || strchr(c->url, ','))
		return;
	r = hf_tls_probe(c->url, c->tls, timeout, why, sizeof(why));
	if ((r == -EKEYREJECTED || r == -EPROTO) && len < errlen)
		snprintf(err + len, errlen - len, "; %s", why);
}

/* Turns an Error envelope into the errno and message documented in the
 * header. */
static int coordinator_error(const struct hfctl_client *c, const Hf__Error *e, char *err,
			     size_t errlen)
{
	const char *text = e->message && e->message[0] ? e->message : "no reason given";

	switch (e->code) {
	case HF__ERROR_CODE__ERR_BAD_REQUEST:
		snprintf(err, errlen, "%s", text);
		return -EINVAL;
	case HF__ERROR_CODE__ERR_UNKNOWN_MODEL:
		snprintf(err, errlen, "%s", text);
		return -ENOENT;
	case HF__ERROR_CODE__ERR_NOT_FOUND:
		snprintf(err, errlen, "%s", text);
		return -ESRCH;
	case HF__ERROR_CODE__ERR_UNSATISFIABLE:
		snprintf(err, errlen, "%s", text);
		return -ENODEV;
	case HF__ERROR_CODE__ERR_UNAVAILABLE:
		snprintf(err, errlen, "coordinator unavailable: %s", text);
		return -EAGAIN;
	case HF__ERROR_CODE__ERR_UNAUTHENTICATED:
		snprintf(err, errlen, "not authenticated: %s", text);
		return -EACCES;
	case HF__ERROR_CODE__ERR_FORBIDDEN:
		snprintf(err, errlen, "not allowed: %s", text);
		return -EPERM;
	case HF__ERROR_CODE__ERR_VERSION:
		snprintf(err, errlen,
			 "coordinator at \"%s\" does not accept protocol version %d "
			 "(it accepts %u to %u): %s",
			 c->url, HF_PROTOCOL_VERSION, e->min_protocol, e->max_protocol, text);
		return -EPROTONOSUPPORT;
	default:
		snprintf(err, errlen, "coordinator error (code %d): %s", (int)e->code, text);
		return -EREMOTEIO;
	}
}

int hfctl_client_call(struct hfctl_client *c, const Hf__Envelope *req, Hf__Envelope__BodyCase expect,
		      Hf__Envelope **ret_reply, char *err, size_t errlen)
{
	int64_t deadline = hf_mono_ms() + c->timeout_ms, left;
	nng_duration send_ms = (nng_duration)(c->timeout_ms < INT32_MAX ? c->timeout_ms : INT32_MAX);
	nng_msg *msg = NULL, *reply = NULL;
	Hf__Envelope *env = NULL;
	int r;

	hf_env_free(c->last_error);
	c->last_error = NULL;
	r = hf_env_pack(req, &msg);
	if (r < 0) {
		snprintf(err, errlen, "could not encode request: %s",
			 r == -ENOMEM ? "out of memory" : "invalid message");
		goto out;
	}

	/* nng's timeouts are per operation: give the receive what the send
	 * left of the call's time. */
	r = nuv_errno(nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, send_ms));
	if (r == 0)
		r = nuv_errno(nng_sendmsg(c->sock, msg, 0));
	if (r == 0) {
		msg = NULL; /* nng took it */
		left = deadline - hf_mono_ms();
		left = left < 1 ? 1 : left < INT32_MAX ? left : INT32_MAX;
		r = nuv_errno(nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, (nng_duration)left));
	}
	if (r == 0)
		r = nuv_errno(nng_recvmsg(c->sock, &reply, 0));
	if (r < 0) {
		snprintf(err, errlen, "could not reach coordinator at \"%s\": %s", c->url,
			 transport_reason(r));
		tls_explain(c, r, err, errlen);
		goto out;
	}

	char why[256];
	r = hf_msg_decode(nng_msg_body(reply), nng_msg_len(reply), HF_MSG_CONTROL_REPLY, &env, why,
			  sizeof(why));
	if (r < 0) {
		snprintf(err, errlen,
			 "could not read reply from coordinator at \"%s\": not a valid hfleet message (%s)",
			 c->url, why);
		r = -EBADMSG;
		goto out;
	}
	if (env->body_case == HF__ENVELOPE__BODY_ERROR) {
		r = coordinator_error(c, env->error, err, errlen);
		c->last_error = env; /* for hfctl_client_last_error */
		env = NULL;
		goto out;
	}
	if (env->body_case != expect) {
		snprintf(err, errlen,
			 "could not read reply from coordinator at \"%s\": unexpected message (body %d)",
			 c->url, (int)env->body_case);
		r = -EBADMSG;
		goto out;
	}
	*ret_reply = env;
	env = NULL;

out:
	hf_env_free(env);
	if (reply)
		nng_msg_free(reply);
	if (msg)
		nng_msg_free(msg);
	return r;
}

const Hf__Error *hfctl_client_last_error(const struct hfctl_client *c)
{
	return c && c->last_error ? c->last_error->error : NULL;
}

bool hfctl_client_error_transient(int r)
{
	return r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ECONNRESET || r == -EAGAIN;
}
