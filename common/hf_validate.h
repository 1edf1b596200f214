/* SPDX-License-Identifier: MIT
 *
 * The one place where a received message is decoded and validated.  Every
 * daemon and hfctl decode what they receive with hf_msg_decode, never with
 * protobuf-c directly, so that no handler ever sees a message that breaks a
 * limit of common/hf_limits.h.
 *
 * It works in two passes:
 *  1. over the raw bytes, driven by protobuf-c's descriptors, before
 *     protobuf-c allocates anything: the body must be one the receiving
 *     port accepts and within that type's encoded size; every string valid
 *     UTF-8 without NUL (protobuf-c copies strings with memcpy and ends
 *     them with a NUL, so "bert\0gpt2" would read as "bert") and within its
 *     length; every repeated field within its count (a poll listing 1e6
 *     entries is refused after reading its first 129 keys); a singular
 *     field at most once; enum values known; nesting at most HF_MAX_NESTING;
 *     at most HF_MAX_UNKNOWN_FIELDS fields of newer protocol revisions,
 *     which are skipped and, after unpacking, freed: no caller keeps them.
 *  2. over the unpacked message, one function per message type: numeric
 *     ranges (NaN, infinities, out of range), id alphabets, enum values that
 *     make sense there (a result's status must be final), duplicates
 *     (device ids of a registration, free-slot and telemetry entries of a
 *     poll, results of a batch).
 *
 * Error texts name the field path and the limit ("results[3].status: 0 is
 * not a final status"); they are valid UTF-8 and quote received text only
 * escaped and shortened.
 *
 * Thread safety: every function may be called from any thread; none keeps
 * state.
 */
#ifndef HF_VALIDATE_H
#define HF_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_limits.h"
#include "hfleet.pb-c.h"

enum hf_msg_role {
	HF_MSG_WORKER_REQUEST,  /* what the worker port accepts: Register Poll ResultBatch HealthReport */
	HF_MSG_CONTROL_REQUEST, /* what the control port accepts (hfctl -> coordinator) */
	HF_MSG_WORKER_REPLY,    /* coordinator -> worker: RegisterReply PollReply Ack Error */
	HF_MSG_CONTROL_REPLY,   /* coordinator -> hfctl */
};

/* Decodes and validates one received message (buf is the nng message body).
 * Returns 0 with *ret_env (free with hf_env_free); -EBADMSG when it is not a
 * decodable envelope; -EINVAL when a field breaks a rule: err names the field
 * path and the limit, e.g. "results[3].status: 0 is not a final status".
 * For the request roles also -EPROTONOSUPPORT when the envelope's protocol
 * version is outside HF_PROTOCOL_MIN .. HF_PROTOCOL_MAX (its fields are not
 * looked at: a newer protocol may have other rules); err says so.  Replies
 * are read whatever version the coordinator speaks, so that its Error
 * (ERR_VERSION) can be read.  For the request roles also -EPROTOTYPE when
 * the body is a request of the other port (a control request to the worker
 * port, a worker's to the control port); err says which port this is and
 * which setting names the other.  err may be NULL when errlen is 0. */
int hf_msg_decode(const void *buf, size_t len, enum hf_msg_role role,
		  Hf__Envelope **ret_env, char *err, size_t errlen);

/* The semantic pass alone, on a message that passed the wire pass (for
 * tests and for messages built in memory).  Returns 0 or -EINVAL with err. */
int hf_msg_validate(const Hf__Envelope *env, enum hf_msg_role role, char *err, size_t errlen);

/* Is s[0..len) valid UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF) without NUL? */
bool hf_utf8_valid(const char *s, size_t len);

/* Makes the NUL-terminated s valid UTF-8 in place: each byte that does not
 * start a valid sequence becomes '?'.  Returns s. */
char *hf_utf8_sanitize(char *s);

/* Writes s (at most len bytes of it) to out for an error message: printable
 * ASCII as is, every other byte as \xNN, cut with "..." to fit outlen.
 * Returns out. */
char *hf_text_escape(char *out, size_t outlen, const char *s, size_t len);

/* Is s[0..len) a suite name: 1 to HF_SUITE_MAX-1 of [a-z0-9_.-]?  The one
 * rule for SubmitRequest.suite, hfctl's --suite and the registry's suites
 * column. */
bool hf_suite_name_valid(const char *s, size_t len);

/* The rule hf_msg_decode applies to field of messages of type desc: the
 * most entries (repeated fields) and the most bytes of each string.  False
 * when there is none (for the unit test that makes sure every string and
 * repeated field a port receives has one). */
bool hf_validate_rule_of(const ProtobufCMessageDescriptor *desc, const char *field, uint32_t *ret_count,
			 uint32_t *ret_len);

#endif
