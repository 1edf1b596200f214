/* SPDX-License-Identifier: MIT
 *
 * A REQ end of nng's SP protocol over one libuv TCP connection, for the
 * fleet simulator: the same bytes an nng REQ socket sends (the 8-byte SP
 * header, then 8-byte big-endian lengths, a 4-byte request id with its high
 * bit set before each payload; docs/protocol.md, "Connections"), without
 * nng's threads.  With thousands of simulated workers in one process, an
 * nng socket each spends most of the simulator's CPU on nng's locks and
 * thread wake-ups (measured: ~260 us a poll at 10,000 workers on 2 cores),
 * which would starve the coordinator it measures; this costs a few
 * microseconds a call.
 *
 * Several calls may be outstanding on one client (matched by request id).
 * A connection that fails or closes fails its outstanding calls
 * (-ECONNRESET) and is dialled again at the next call.  Calls time out
 * only when sp_client_expire is called (the simulator does at each beat).
 *
 * Everything runs on the loop thread; the reply callback gets an nng_msg
 * holding the payload (the callee's to free), so replies go through the
 * same decoding as with nng (hf_nuv.h's nuv_reply_cb).
 */
#ifndef BENCH_SP_CLIENT_H
#define BENCH_SP_CLIENT_H

#include <stdint.h>

#include <nng/nng.h>
#include <uv.h>

#include "hf_nuv.h"

struct sp_client;

/* url: tcp://HOST:PORT with a numeric IPv4 host.  Returns 0 or -EINVAL. */
int sp_client_open(uv_loop_t *loop, const char *url, struct sp_client **ret);

/* Sends msg's body (msg is taken in all cases) and calls cb once with the
 * reply or an error; the call waits extra_ms longer than sp_client_expire's
 * timeout (a held poll: its hold).  Returns 0, or a negative errno (cb is
 * not called). */
int sp_client_call(struct sp_client *c, nng_msg *msg, int extra_ms, nuv_reply_cb cb, void *arg);

/* Fails the calls sent more than timeout_ms (and their extra_ms) ago with
 * -ETIMEDOUT. */
void sp_client_expire(struct sp_client *c, int64_t timeout_ms);

#endif
