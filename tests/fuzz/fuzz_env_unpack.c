/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: the protocol envelope as every receiver first decodes it
 * (hf_env_unpack), before any message's own rules.  An envelope that decodes
 * must survive a round trip: packed again with hf_env_pack it decodes again,
 * and packing that gives the same bytes.
 *
 * fuzz_envelope.c fuzzes the decoder with the rules (hf_msg_decode), which
 * supersedes this target once common/hf_validate.c is in the tree.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool strict;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	strict = getenv("HF_FUZZ_STRICT") && strcmp(getenv("HF_FUZZ_STRICT"), "1") == 0;
	return 0;
}

/* Whether m or a message inside it kept an unknown field numbered 0. */
static bool has_field_zero(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return true;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *p = (const char *)m + f->offset;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			ProtobufCMessage *const *sub = *(ProtobufCMessage *const *const *)p;
			for (size_t k = 0; k < n; k++)
				if (has_field_zero(sub[k]))
					return true;
		} else if (*(ProtobufCMessage *const *)p &&
			   has_field_zero(*(ProtobufCMessage *const *)p)) {
			return true;
		}
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Hf__Envelope *env = NULL, *again = NULL;
	nng_msg *msg = NULL, *msg2 = NULL;
	int r;

	r = hf_env_unpack(data, size, &env);
	if (r == -EBADMSG)
		return 0;
	if (r != 0)
		abort();
	if (env->body_case == HF__ENVELOPE__BODY__NOT_SET || env->protocol_version == 0)
		abort(); /* hf_env_unpack promises both */

	/* KNOWN FINDING (tests/fuzz/crashes/env_unpack-field-number-zero):
	 * protobuf-c 1.4.1 refuses field number 0 only in a one-byte tag; in a
	 * longer (overlong) tag it keeps it as an unknown field, which packs
	 * into a one-byte tag 0 that does not decode again.  Skip the round trip
	 * for those until the decoder refuses them; HF_FUZZ_STRICT=1 checks
	 * anyway. */
	if (!strict && has_field_zero(&env->base)) {
		hf_env_free(env);
		return 0;
	}
	if (hf_env_pack(env, &msg) != 0)
		abort();
	if (hf_env_unpack(nng_msg_body(msg), nng_msg_len(msg), &again) != 0)
		abort(); /* what we packed must decode */
	if (again->body_case != env->body_case || again->protocol_version != env->protocol_version)
		abort();
	if (hf_env_pack(again, &msg2) != 0)
		abort();
	if (nng_msg_len(msg2) != nng_msg_len(msg) ||
	    memcmp(nng_msg_body(msg2), nng_msg_body(msg), nng_msg_len(msg)) != 0)
		abort(); /* packing is a function of the decoded envelope */

	nng_msg_free(msg2);
	nng_msg_free(msg);
	hf_env_free(again);
	hf_env_free(env);
	return 0;
}
