/* SPDX-License-Identifier: MIT
 *
 * The protocol envelope: packing an Hf__Envelope into an nng message and
 * unpacking one out of a received buffer, with the checks every receiver
 * needs (decodable, a body present, a protocol version).  Also the one table
 * of names for backends, task kinds and statuses used on the command line, in
 * JSON and in the database.
 *
 * Ownership: hf_env_pack never takes the envelope; the message it returns is
 * the caller's (nng_msg_free, or hand it to a send that takes it).
 * hf_env_unpack returns an envelope the caller frees with hf_env_free.  All
 * functions may be called from any thread.
 */
#ifndef HF_PROTO_H
#define HF_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>

#include "hf_limits.h"
#include "hfleet.pb-c.h"

/* The protocol version this build speaks, and the range a coordinator of
 * this build accepts from workers and clients.  Version 2 carries a token
 * in every request (Envelope.token) and gives each worker registration a
 * session that its polls, results and health reports carry; a peer of
 * version 1 is told to upgrade. */
#define HF_PROTOCOL_VERSION 2
#define HF_PROTOCOL_MIN 2
#define HF_PROTOCOL_MAX 2

/* Packs env (protocol_version is set to HF_PROTOCOL_VERSION when 0).
 * Returns 0, -EINVAL if env has no body, -ENOMEM. */
int hf_env_pack(const Hf__Envelope *env, nng_msg **ret_msg);

/* Decodes buf.  Returns 0, -EBADMSG if it is not a valid envelope or carries
 * no body. */
int hf_env_unpack(const void *buf, size_t len, Hf__Envelope **ret_env);

void hf_env_free(Hf__Envelope *env);

/* Builds and packs an Error envelope; message is printf-formatted. */
int hf_env_error(Hf__ErrorCode code, nng_msg **ret_msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Names: "cpu" "cuda" "rocm" "mps" "openvino" "qnn"; "test" "benchmark";
 * "queued" "leased" "running" "passed" "failed" "error" "timeout" "skipped"
 * "cancelled".  *_name returns "unknown" for values out of range; *_parse
 * returns -EINVAL for unknown names and leaves *ret untouched. */
const char *hf_backend_name(Hf__Backend b);
int hf_backend_parse(const char *s, Hf__Backend *ret);
const char *hf_kind_name(Hf__TaskKind k);
int hf_kind_parse(const char *s, Hf__TaskKind *ret);
const char *hf_status_name(Hf__TaskStatus s);
int hf_status_parse(const char *s, Hf__TaskStatus *ret);

/* True for the states a task ends in: passed failed error timeout skipped
 * cancelled. */
bool hf_status_is_final(Hf__TaskStatus s);

/* The log level of a line about one task's outcome: HF_LOG_INFO for
 * failed, error and timeout (what an operator looks for), HF_LOG_DEBUG for
 * the rest.  A line per task at info was thousands of lines a second at a
 * fleet's rate, past journald's default rate limit (10,000 messages in
 * 30 s a service), which then drops lines of every kind. */
int hf_status_log_level(Hf__TaskStatus s);

/* The list of valid names joined by ", ", for error messages. */
const char *hf_backend_names(void);

/* The 11 architecture families. */
bool hf_family_valid(const char *s);
const char *hf_family_names(void);

/* Precisions a task may ask for: fp32 fp16 bf16 int8. */
bool hf_precision_valid(const char *s);

/* Benchmark execution modes: eager cuda-graph compile.  hf_mode_static
 * returns the static name equal to s, or NULL; hf_mode_names the list for
 * messages ("eager, cuda-graph, compile"). */
#define HF_MODE_COUNT 3
extern const char *const hf_mode_list[HF_MODE_COUNT];
const char *hf_mode_static(const char *s);
bool hf_mode_valid(const char *s);
const char *hf_mode_names(void);

/* An id (worker ids, model types, request ids): 1 to HF_ID_MAX
 * (common/hf_limits.h) of A-Z a-z 0-9 . _ : - */
bool hf_id_valid(const char *s);

/* A submission's request id (SubmitRequest.request_id): an id. */
#define HF_REQUEST_ID_MAX HF_ID_MAX
bool hf_request_id_valid(const char *s);

#endif
