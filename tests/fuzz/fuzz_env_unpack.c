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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
