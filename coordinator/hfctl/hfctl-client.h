/* SPDX-License-Identifier: MIT
 *
 * hfctl's side of the control protocol: one synchronous nng REQ socket to
 * the coordinator, one request and one reply at a time.  A call packs the
 * request envelope, sends it, waits for the reply within the timeout,
 * unpacks it and checks that it is the expected reply; an Error envelope
 * from the coordinator and every transport failure become a negative errno
 * and one message for the user.
 *
 * Errors (and where they come from):
 *   -EINVAL           the coordinator refused the request (ERR_BAD_REQUEST),
 *                     or the URL is malformed or of an unknown transport
 *   -ENOENT           a model or family the registry lacks (ERR_UNKNOWN_MODEL)
 *   -ESRCH            no such job (ERR_NOT_FOUND)
 *   -EAGAIN           the coordinator cannot do it now (ERR_UNAVAILABLE)
 *   -ENODEV           no registered device could ever run the submitted tasks
 *                     (ERR_UNSATISFIABLE); the message is the coordinator's,
 *                     which names the requirements and why they are not met
 *   -EACCES           no token, or one the coordinator does not know or has
 *                     revoked (ERR_UNAUTHENTICATED)
 *   -EPERM            the token's role may not do this (ERR_FORBIDDEN)
 *   -EPROTONOSUPPORT  the coordinator does not accept our protocol version
 *   -EPROTOTYPE       the address is the coordinator's worker port, not its
 *                     control port (ERR_WRONG_PORT); the message says so
 *   -EREMOTEIO        any other error the coordinator reported
 *   -EBADMSG          the reply is not a valid envelope, or not the one asked
 *   -ECONNREFUSED     (opening only) nothing listens at any of the addresses
 *   -ETIMEDOUT, -ECONNRESET, -EMSGSIZE, -ENOMEM, -EIO
 *                     the transport (nng), translated by nuv_errno
 *
 * Messages are written into err without the "hfctl: " prefix, e.g.
 *   could not reach coordinator at "tcp://10.0.0.5:7101": timed out
 *
 * Ownership: the client is the caller's (hfctl_client_close); a call never
 * takes the request; a reply envelope returned is the caller's (hf_env_free).
 * One thread at a time per client.
 */
#ifndef HFCTL_CLIENT_H
#define HFCTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"
#include "hf_tls.h"

/* Replies can be large (the results of 10^5 tasks). */
#define HFCTL_RECV_MAX ((size_t)64 << 20)

struct hfctl_client;

/* Opens a REQ socket to url.  First each address of url (a comma-separated
 * list) is connected to once, all at once, within timeout_ms: when nothing
 * listens at any, this fails at once (-ECONNREFUSED), and when none answers
 * in time it fails with -ETIMEDOUT.  (A tls+tcp:// address is probed so
 * only when it is the only one, with a whole TLS handshake; one in a list
 * is not probed.)  Then the socket connects in the background (and again
 * if the connection drops), so a coordinator that goes away later shows up
 * as a call that times out.  A malformed URL or TLS settings that cannot be
 * used (no CA for a tls+tcp:// url, an unreadable file) fail here too.  tls (kept
 * by reference) is used for a tls+tcp:// url: the coordinator's certificate
 * is verified.  When a call to a tls+tcp:// coordinator fails, the message
 * says whether the TLS handshake is why.  timeout_ms bounds each call,
 * sending and receiving together. */
int hfctl_client_open(const char *url, const struct hf_tls *tls, int64_t timeout_ms,
		      struct hfctl_client **ret_client, char *err, size_t errlen);

/* Closes the socket and frees the client.  NULL is fine. */
void hfctl_client_close(struct hfctl_client *c);

/* Sends req and waits for a reply whose body is expect.  On success
 * *ret_reply is that envelope. */
int hfctl_client_call(struct hfctl_client *c, const Hf__Envelope *req, Hf__Envelope__BodyCase expect,
		      Hf__Envelope **ret_reply, char *err, size_t errlen);

/* The Error the coordinator answered the last call with (its structured
 * fields: Error.unfit), or NULL when the last call got none.  Valid until
 * the next call. */
const Hf__Error *hfctl_client_last_error(const struct hfctl_client *c);

/* True for failures that may pass if the call is made again later: the
 * coordinator could not be reached, or said it is unavailable. */
bool hfctl_client_error_transient(int r);

#endif
