/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the protocol envelope codec and the name tables
 * (common/hf_proto.c).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"

START_TEST(test_envelope_roundtrip_keeps_every_field)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Register reg = HF__REGISTER__INIT;
	Hf__Device dev = HF__DEVICE__INIT;
	Hf__Device *devs[] = { &dev };
	nng_msg *msg;
	Hf__Envelope *out;

	reg.worker_id = "w1";
	reg.hostname = "host";
	reg.protocol_version = 1;
	dev.backend = HF__BACKEND__BACKEND_CUDA;
	dev.index = 3;
	dev.memory_bytes = 80ull << 30;
	dev.name = "NVIDIA H100";
	reg.n_devices = 1;
	reg.devices = devs;
	env.body_case = HF__ENVELOPE__BODY_REGISTER;
	env.register_ = &reg;

	ck_assert_int_eq(hf_env_pack(&env, &msg), 0);
	ck_assert_int_eq(hf_env_unpack(nng_msg_body(msg), nng_msg_len(msg), &out), 0);
	ck_assert_int_eq(out->protocol_version, HF_PROTOCOL_VERSION);
	ck_assert_int_eq(out->body_case, HF__ENVELOPE__BODY_REGISTER);
	ck_assert_str_eq(out->register_->worker_id, "w1");
	ck_assert_uint_eq(out->register_->n_devices, 1);
	ck_assert_int_eq(out->register_->devices[0]->backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_uint_eq(out->register_->devices[0]->index, 3);
	ck_assert_uint_eq(out->register_->devices[0]->memory_bytes, 80ull << 30);
	ck_assert_str_eq(out->register_->devices[0]->name, "NVIDIA H100");
	hf_env_free(out);
	nng_msg_free(msg);
}
END_TEST

START_TEST(test_pack_refuses_envelope_without_body)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	nng_msg *msg = NULL;
	ck_assert_int_eq(hf_env_pack(&env, &msg), -EINVAL);
	ck_assert_ptr_null(msg);
}
END_TEST

START_TEST(test_unpack_rejects_garbage_and_empty)
{
	Hf__Envelope *out = NULL;
	const unsigned char garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99 };
	ck_assert_int_eq(hf_env_unpack(garbage, sizeof(garbage), &out), -EBADMSG);
	ck_assert_int_eq(hf_env_unpack("", 0, &out), -EBADMSG); /* no body */
	ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_unpack_rejects_truncated_message)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__SubmitRequest sub = HF__SUBMIT_REQUEST__INIT;
	char *models[] = { "bert", "gpt2" };
	nng_msg *msg;
	Hf__Envelope *out = NULL;

	sub.n_models = 2;
	sub.models = models;
	env.body_case = HF__ENVELOPE__BODY_SUBMIT;
	env.submit = &sub;
	ck_assert_int_eq(hf_env_pack(&env, &msg), 0);
	ck_assert_int_eq(hf_env_unpack(nng_msg_body(msg), nng_msg_len(msg) - 3, &out), -EBADMSG);
	ck_assert_ptr_null(out);
	nng_msg_free(msg);
}
END_TEST

START_TEST(test_error_envelope_names_accepted_versions)
{
	nng_msg *msg;
	Hf__Envelope *out;
	ck_assert_int_eq(hf_env_error(HF__ERROR_CODE__ERR_VERSION, &msg, "protocol %d not accepted", 9), 0);
	ck_assert_int_eq(hf_env_unpack(nng_msg_body(msg), nng_msg_len(msg), &out), 0);
	ck_assert_int_eq(out->body_case, HF__ENVELOPE__BODY_ERROR);
	ck_assert_int_eq(out->error->code, HF__ERROR_CODE__ERR_VERSION);
	ck_assert_str_eq(out->error->message, "protocol 9 not accepted");
	ck_assert_uint_eq(out->error->min_protocol, HF_PROTOCOL_MIN);
	ck_assert_uint_eq(out->error->max_protocol, HF_PROTOCOL_MAX);
	hf_env_free(out);
	nng_msg_free(msg);
}
END_TEST

START_TEST(test_names_roundtrip_and_reject_unknown)
{
	Hf__Backend b = HF__BACKEND__BACKEND_UNSPECIFIED;
	Hf__TaskStatus s;
	Hf__TaskKind k;

	for (int i = 1; i <= 6; i++) {
		ck_assert_int_eq(hf_backend_parse(hf_backend_name((Hf__Backend)i), &b), 0);
		ck_assert_int_eq(b, i);
	}
	ck_assert_int_eq(hf_backend_parse("tpu", &b), -EINVAL);
	ck_assert_int_eq(b, 6); /* untouched on failure */
	ck_assert_str_eq(hf_backend_name((Hf__Backend)42), "unknown");
	ck_assert_int_eq(hf_kind_parse("benchmark", &k), 0);
	ck_assert_int_eq(k, HF__TASK_KIND__KIND_BENCHMARK);
	ck_assert_int_eq(hf_status_parse("skipped", &s), 0);
	ck_assert(hf_status_is_final(s));
	ck_assert(!hf_status_is_final(HF__TASK_STATUS__STATUS_LEASED));
	ck_assert(hf_family_valid("mixture-of-experts"));
	ck_assert(!hf_family_valid("graph"));
	ck_assert(hf_precision_valid("bf16"));
	ck_assert(!hf_precision_valid("fp8"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, test_envelope_roundtrip_keeps_every_field);
	tcase_add_test(tc, test_pack_refuses_envelope_without_body);
	tcase_add_test(tc, test_unpack_rejects_garbage_and_empty);
	tcase_add_test(tc, test_unpack_rejects_truncated_message);
	tcase_add_test(tc, test_error_envelope_names_accepted_versions);
	tcase_add_test(tc, test_names_roundtrip_and_reject_unknown);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
