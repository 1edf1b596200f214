/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: the envelope decoder with every worker-port and control-port
 * message's validation (hf_msg_decode, common/hf_validate.h), as the
 * coordinator, the worker and hfctl call it on every message they receive.
 *
 * Input: the first byte picks the role (modulo 4: worker request, control
 * request, worker reply, control reply), the rest is the message.  A message
 * that passes must survive a round trip: packed with hf_env_pack it passes
 * again under the same role, and packing that gives the same bytes.  A
 * refusal must say why: -EINVAL comes with a message, and -EPROTOTYPE (a
 * request of the other port) with one naming the port.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"
#include "hf_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum hf_msg_role roles[] = {
	HF_MSG_WORKER_REQUEST,
	HF_MSG_CONTROL_REQUEST,
	HF_MSG_WORKER_REPLY,
	HF_MSG_CONTROL_REPLY,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Hf__Envelope *env = NULL, *again = NULL;
	nng_msg *msg = NULL, *msg2 = NULL;
	enum hf_msg_role role;
	char err[512];
	int r;

	if (size < 1)
		return 0;
	role = roles[data[0] % 4];
	data++;
	size--;

	err[0] = '\0';
	r = hf_msg_decode(data, size, role, &env, err, sizeof(err));
	if (r == -EBADMSG)
		return 0;
	/* A request of a protocol version this build does not accept is
	 * refused as such (ERR_VERSION), its fields unread. */
	if (r == -EPROTONOSUPPORT &&
	    (role == HF_MSG_WORKER_REQUEST || role == HF_MSG_CONTROL_REQUEST)) {
		if (!err[0] || !memchr(err, '\0', sizeof(err)))
			abort();
		return 0;
	}
	if (r == -EINVAL) {
		if (!err[0] || !memchr(err, '\0', sizeof(err)))
			abort(); /* a broken rule is named */
		return 0;
	}
	/* A request of the other port is refused as such, for the request
	 * roles only, and says which port this is (ERR_WRONG_PORT). */
	if (r == -EPROTOTYPE) {
		if ((role != HF_MSG_WORKER_REQUEST && role != HF_MSG_CONTROL_REQUEST) || !err[0] ||
		    !memchr(err, '\0', sizeof(err)) || !strstr(err, "port"))
			abort();
		return 0;
	}
	if (r != 0 || !env)
		abort();

	if (hf_env_pack(env, &msg) != 0)
		abort();
	err[0] = '\0';
	r = hf_msg_decode(nng_msg_body(msg), nng_msg_len(msg), role, &again, err, sizeof(err));
	if (r != 0)
		abort(); /* a validated message, packed again, is still valid */
	if (again->body_case != env->body_case)
		abort();
	if (hf_env_pack(again, &msg2) != 0)
		abort();
	if (nng_msg_len(msg2) != nng_msg_len(msg) ||
	    memcmp(nng_msg_body(msg2), nng_msg_body(msg), nng_msg_len(msg)) != 0)
		abort();

	nng_msg_free(msg2);
	nng_msg_free(msg);
	hf_env_free(again);
	hf_env_free(env);
	return 0;
}
