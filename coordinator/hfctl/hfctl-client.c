/* SPDX-License-Identifier: MIT
 *
 * The synchronous control-protocol client (see hfctl-client.h).  nng's
 * errors are translated by nuv_errno (common/hf_nuv.c), the coordinator's
 * error codes here.  Opening the client first connects to each address
 * once (address_probe) so that nothing listening fails at once: the REQ
 * socket itself dials in the background and would only time out.
 */
#include "hfctl-client.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- the first contact ---- */

/* At most this many addresses are probed; a longer list is dialled as it
 * is. */
#define PROBE_MAX 16

struct probe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t started, done;
	bool connected;
};

struct probe_one {
	struct probe *all;
	nng_stream_dialer *d;
	nng_aio *aio;
	int rv;
};

static void probe_cb(void *arg)
{
	struct probe_one *one = arg;
	nng_stream *s;

	one->rv = nng_aio_result(one->aio);
	if (one->rv == 0 && (s = nng_aio_get_output(one->aio, 0))) {
		nng_stream_close(s);
		nng_stream_free(s);
	}
	pthread_mutex_lock(&one->all->mu);
	one->all->done++;
	if (one->rv == 0)
		one->all->connected = true;
	pthread_cond_signal(&one->all->cv);
	pthread_mutex_unlock(&one->all->mu);
}

/* Copies url (len bytes) to ret for a stream dialer, or returns false for
 * a transport not probed this way.  tls+tcp:// is not: a connection closed
 * before the TLS handshake would count as a failed handshake at the
 * coordinator, which warns about those (see tls_refused). */
static bool probe_url(const char *url, size_t len, char *ret, size_t retlen)
{
	static const char *const schemes[] = { "tcp://", "tcp4://", "tcp6://", "ipc://" };

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0 && len < retlen) {
			memcpy(ret, url, len);
			ret[len] = '\0';
			return true;
		}
	}
	return false;
}

/* Connects once to each address of the comma-separated list urls, all at
 * once, and waits until one connects, all have failed or timeout_ms has
 * passed.  Returns 0 when one connected (or an address could not be
 * probed), -ECONNREFUSED when nothing listens at any, -ETIMEDOUT when none
 * answered in time (nothing answered at all: a host that drops
 * connections), each with its message. */
static int address_probe(const char *urls, int64_t timeout_ms, char *err, size_t errlen)
{
	struct probe all = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	struct probe_one ones[PROBE_MAX] = { 0 };
	struct timespec until;
	char one_url[512];
	bool refused = true;
	size_t n = 0;
	int r = 0;

	for (const char *p = urls; *p;) {
		size_t len;

		p += strspn(p, ", ");
		len = strcspn(p, ", ");
		if (len == 0)
			break;
		if (n == PROBE_MAX || !probe_url(p, len, one_url, sizeof(one_url)))
			goto unprobed;
		ones[n].all = &all;
		if (nng_stream_dialer_alloc(&ones[n].d, one_url) != 0 ||
		    nng_aio_alloc(&ones[n].aio, probe_cb, &ones[n]) != 0)
			goto unprobed;
		nng_aio_set_timeout(ones[n].aio,
				    (nng_duration)(timeout_ms < INT32_MAX ? timeout_ms : INT32_MAX));
		pthread_mutex_lock(&all.mu);
		all.started++;
		pthread_mutex_unlock(&all.mu);
		nng_stream_dialer_dial(ones[n].d, ones[n].aio);
		n++;
		p += len;
	}

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(timeout_ms / 1000) + 1;
	pthread_mutex_lock(&all.mu);
	while (!all.connected && all.done < all.started)
		if (pthread_cond_timedwait(&all.cv, &all.mu, &until) != 0)
			break;
	pthread_mutex_unlock(&all.mu);
	goto out;

unprobed:
	/* Not probed: the REQ socket finds out, as before. */
	all.connected = true;
out:
	for (size_t i = 0; i < n + 1 && i < PROBE_MAX; i++) {
		if (ones[i].aio) {
			/* Waits for the callback too: ones and all outlive it. */
			nng_aio_stop(ones[i].aio);
			nng_aio_free(ones[i].aio);
		}
		if (ones[i].d) {
			nng_stream_dialer_close(ones[i].d);
			nng_stream_dialer_free(ones[i].d);
		}
		if (i < n && ones[i].rv != NNG_ECONNREFUSED && ones[i].rv != NNG_ENOENT)
			refused = false;
	}
	if (!all.connected && n > 0) {
		r = refused ? -ECONNREFUSED : -ETIMEDOUT;
		snprintf(err, errlen, "could not reach coordinator at \"%s\": %s", urls,
			 refused ? "connection refused (nothing listens there)" : "timed out");
	}
	return r;
}

/* The same for one tls+tcp:// address: a whole TLS handshake and SP
 * header exchange (hf_tls_probe), which the coordinator takes as a
 * connection that closed without a request.  Only "nothing listens" and
 * "nothing answers" fail here; a TLS failure is found and explained by the
 * call, as before. */
static int tls_refused(const char *url, const struct hf_tls *tls, int64_t timeout_ms, char *err,
		       size_t errlen)
{
	char why[512];
	int r = hf_tls_probe(url, tls, (int)(timeout_ms < INT32_MAX ? timeout_ms : INT32_MAX), why,
			     sizeof(why));

	if (r != -ECONNREFUSED && r != -ETIMEDOUT)
		return 0;
	snprintf(err, errlen, "could not reach coordinator at \"%s\": %s", url,
		 r == -ECONNREFUSED ? "connection refused (nothing listens there)" : "timed out");
	return r;
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
	r = address_probe(url, timeout_ms, err, errlen);
	if (r < 0)
		goto fail;
	char why[512];
	if (hf_tls_url(url) && !strchr(url, ','))
		r = tls_refused(url, tls, timeout_ms, err, errlen);
	if (r < 0)
		goto fail;
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
	case HF__ERROR_CODE__ERR_WRONG_PORT:
		snprintf(err, errlen, "wrong address \"%s\": %s", c->url, text);
		return -EPROTOTYPE;
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
	/* Not -ECONNREFUSED: only opening gives it, when nothing listens at
	 * any address, which asking again does not mend. */
	return r == -ETIMEDOUT || r == -ECONNRESET || r == -EAGAIN;
}
