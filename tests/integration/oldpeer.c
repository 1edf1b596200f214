/* SPDX-License-Identifier: MIT
 *
 * A peer from another protocol version, for the integration tests: sends a
 * Register claiming protocol version N to a coordinator's worker address
 * and prints the answer.  Exits 0 when the coordinator refused it with
 * ERR_VERSION, 1 otherwise.
 *   hf-oldpeer URL VERSION
 */
#include <stdio.h>
#include <stdlib.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "hf_proto.h"

int main(int argc, char **argv)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__Register reg = HF__REGISTER__INIT;
	nng_socket sock;
	nng_msg *msg;
	int rv;

	if (argc != 3) {
		fprintf(stderr, "usage: hf-oldpeer URL VERSION\n");
		return 2;
	}
	reg.worker_id = "oldpeer";
	reg.hostname = "oldpeer";
	reg.software_version = "0.0.0";
	reg.protocol_version = (uint32_t)atoi(argv[2]);
	env.protocol_version = reg.protocol_version;
	env.body_case = HF__ENVELOPE__BODY_REGISTER;
	env.register_ = &reg;

	if ((rv = nng_req0_open(&sock)) != 0 || (rv = nng_dial(sock, argv[1], NULL, 0)) != 0) {
		fprintf(stderr, "hf-oldpeer: could not connect to \"%s\": %s\n", argv[1], nng_strerror(rv));
		return 1;
	}
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
	if (hf_env_pack(&env, &msg) < 0 || (rv = nng_sendmsg(sock, msg, 0)) != 0 ||
	    (rv = nng_recvmsg(sock, &msg, 0)) != 0) {
		fprintf(stderr, "hf-oldpeer: no answer: %s\n", nng_strerror(rv));
		return 1;
	}
	rv = hf_env_unpack(nng_msg_body(msg), nng_msg_len(msg), &reply);
	nng_msg_free(msg);
	nng_close(sock);
	if (rv < 0) {
		fprintf(stderr, "hf-oldpeer: malformed answer\n");
		return 1;
	}
	if (reply->body_case == HF__ENVELOPE__BODY_ERROR) {
		printf("error %d: %s\n", reply->error->code, reply->error->message);
		rv = reply->error->code == HF__ERROR_CODE__ERR_VERSION ? 0 : 1;
	} else {
		printf("answered with message type %d\n", reply->body_case);
		rv = 1;
	}
	hf_env_free(reply);
	return rv;
}
