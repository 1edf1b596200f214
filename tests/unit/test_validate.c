/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the decoding with validation (common/hf_validate.c,
 * common/hf_validate-msg.c): each rule class with handcrafted wire bytes
 * (what protobuf-c would never produce: NUL in a string, bad UTF-8, too
 * many entries) and with messages packed by protobuf-c (ranges, enums,
 * duplicates).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_proto.h"
#include "hf_validate.h"

/* ---- a wire writer ---- */

struct wb {
	uint8_t *b;
	size_t n, cap;
};

static void wb_raw(struct wb *w, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (w->n + n > w->cap) {
		w->cap = (w->n + n) * 2 + 64;
		w->b = realloc(w->b, w->cap);
		ck_assert_ptr_nonnull(w->b);
	}
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

static void wb_varint(struct wb *w, uint64_t v)
{
	uint8_t one;
	do {
		one = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			one |= 0x80;
		wb_raw(w, &one, 1);
	} while (v);
}

static void wb_uint(struct wb *w, uint32_t field, uint64_t v)
{
	wb_varint(w, (uint64_t)field << 3);
	wb_varint(w, v);
}

static void wb_bytes(struct wb *w, uint32_t field, const void *p, size_t n)
{
	wb_varint(w, (uint64_t)field << 3 | 2);
	wb_varint(w, n);
	wb_raw(w, p, n);
}

static void wb_str(struct wb *w, uint32_t field, const char *s)
{
	wb_bytes(w, field, s, strlen(s));
}

static void wb_sub(struct wb *w, uint32_t field, const struct wb *sub)
{
	wb_bytes(w, field, sub->b, sub->n);
}

static void wb_double(struct wb *w, uint32_t field, double d)
{
	wb_varint(w, (uint64_t)field << 3 | 1);
	wb_raw(w, &d, 8); /* little-endian hosts */
}

static void wb_free(struct wb *w)
{
	free(w->b);
	memset(w, 0, sizeof(*w));
}

/* An envelope of this protocol version around body (field body_field). */
static struct wb envelope(uint32_t body_field, const struct wb *body)
{
	struct wb e = { 0 };
	wb_uint(&e, 1, HF_PROTOCOL_VERSION);
	wb_sub(&e, body_field, body);
	return e;
}

static char err[512];

/* Decodes e in role; returns the result (the envelope is freed). */
static int decode(const struct wb *e, enum hf_msg_role role)
{
	Hf__Envelope *env = NULL;
	int r = hf_msg_decode(e->b, e->n, role, &env, err, sizeof(err));
	if (r == 0)
		hf_env_free(env);
	else
		ck_assert_ptr_null(env);
	ck_assert_msg(hf_utf8_valid(err, strlen(err)), "error text is not UTF-8");
	return r;
}

#define ck_refused(e, role, rc, text)                                                        \
	do {                                                                                 \
		ck_assert_int_eq(decode((e), (role)), (rc));                                 \
		ck_assert_msg(strstr(err, (text)) != NULL, "error \"%s\" lacks \"%s\"", err, (text)); \
	} while (0)

/* A register body with worker_id id (field numbers from proto/hfleet.proto). */
static struct wb register_body(const char *id)
{
	struct wb r = { 0 }, dev = { 0 };
	wb_str(&r, 1, id);
	wb_str(&r, 2, "host-1");
	wb_uint(&r, 4, 1);
	wb_uint(&dev, 1, HF__BACKEND__BACKEND_CPU);
	wb_uint(&dev, 2, 0);
	wb_uint(&dev, 8, 1);
	wb_sub(&r, 6, &dev);
	wb_free(&dev);
	return r;
}

/* Packs env with protobuf-c and decodes it in role. */
static int pack_decode(Hf__Envelope *env, enum hf_msg_role role)
{
	nng_msg *msg;
	ck_assert_int_eq(hf_env_pack(env, &msg), 0);
	struct wb e = { 0 };
	wb_raw(&e, nng_msg_body(msg), nng_msg_len(msg));
	nng_msg_free(msg);
	int r = decode(&e, role);
	wb_free(&e);
	return r;
}

/* ---- valid messages ---- */

START_TEST(test_valid_register_decodes_and_loses_unknown_fields)
{
	struct wb r = register_body("gpu-node-1.lab:a_b"), e;
	Hf__Envelope *env = NULL;

	wb_str(&r, 99, "a field of a newer protocol revision");
	wb_str(&r, 3, "0.1.0 \xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e"); /* é € 𝄞 */
	e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	ck_assert_int_eq(hf_msg_decode(e.b, e.n, HF_MSG_WORKER_REQUEST, &env, err, sizeof(err)), 0);
	ck_assert_str_eq(env->register_->worker_id, "gpu-node-1.lab:a_b");
	ck_assert_uint_eq(env->register_->n_devices, 1);
	ck_assert_uint_eq(env->register_->base.n_unknown_fields, 0);
	ck_assert_ptr_null(env->register_->base.unknown_fields);
	hf_env_free(env);
	wb_free(&r);
	wb_free(&e);
}
END_TEST

/* ---- strings ---- */

START_TEST(test_nul_in_string_is_refused)
{
	/* protobuf-c 1.4.1 itself reads "bert\0gpt2" as "bert": */
	struct wb r = register_body("w1"), e;
	wb_bytes(&r, 11, "bert\0gpt2", 9);
	e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	Hf__Envelope *raw = hf__envelope__unpack(NULL, e.n, e.b);
	ck_assert_ptr_nonnull(raw);
	ck_assert_str_eq(raw->register_->cached_models[0], "bert");
	hf__envelope__free_unpacked(raw, NULL);

	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "cached_models[0]: not valid UTF-8");
	wb_free(&r);
	wb_free(&e);
}
END_TEST

START_TEST(test_invalid_utf8_is_refused_and_not_echoed)
{
	static const char *const bad[] = {
		"\xc0\xaf",         /* overlong '/' */
		"\xe0\x80\xaf",     /* overlong, 3 bytes */
		"\xed\xa0\x80",     /* a UTF-16 surrogate */
		"\xf4\x90\x80\x80", /* beyond U+10FFFF */
		"\xe2\x82",         /* cut short */
		"\x80",             /* a lone continuation byte */
		"ok\xff",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct wb r = register_body("w1"), e;
		wb_str(&r, 11, "bert");
		wb_str(&r, 11, bad[i]);
		e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
		ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "cached_models[1]: not valid UTF-8");
		wb_free(&r);
		wb_free(&e);
	}
	/* protobuf-c does not check UTF-8 at all: */
	struct wb r = { 0 }, e;
	wb_str(&r, 1, "w\xff");
	e = envelope(HF__ENVELOPE__BODY_POLL, &r);
	Hf__Envelope *raw = hf__envelope__unpack(NULL, e.n, e.b);
	ck_assert_ptr_nonnull(raw);
	hf__envelope__free_unpacked(raw, NULL);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "worker_id: not valid UTF-8");
	ck_assert_ptr_null(strchr(err, '\xff'));
	wb_free(&r);
	wb_free(&e);
}
END_TEST

START_TEST(test_overlong_string_is_refused)
{
	char host[300];
	struct wb r = { 0 }, e;

	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	wb_str(&r, 1, "w1");
	wb_str(&r, 2, host);
	e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "hostname: 299 bytes, at most 255");
	wb_free(&r);
	wb_free(&e);
}
END_TEST

START_TEST(test_worker_id_outside_the_alphabet_is_refused_escaped)
{
	struct wb r = register_body("gpu node\xc3\xa9"), e;
	e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "worker_id: \"gpu node\\xC3\\xA9\" is not an id");
	wb_free(&r);
	wb_free(&e);

	r = register_body("");
	e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "worker_id: an id of 1 to");
	wb_free(&r);
	wb_free(&e);
}
END_TEST

/* ---- counts ---- */

static struct wb poll_with_free(size_t n)
{
	struct wb p = { 0 }, f = { 0 };
	wb_str(&p, 1, "w1");
	for (size_t i = 0; i < n; i++) {
		f.n = 0;
		wb_uint(&f, 1, HF__BACKEND__BACKEND_CUDA);
		wb_uint(&f, 2, i);
		wb_uint(&f, 3, 1);
		wb_sub(&p, 2, &f);
	}
	wb_free(&f);
	return p;
}

START_TEST(test_too_many_entries_are_refused_before_unpacking)
{
	struct wb p = poll_with_free(HF_MAX_FREE), e;
	e = envelope(HF__ENVELOPE__BODY_POLL, &p);
	ck_assert_int_eq(decode(&e, HF_MSG_WORKER_REQUEST), 0);
	wb_free(&p);
	wb_free(&e);

	p = poll_with_free(HF_MAX_FREE + 1);
	e = envelope(HF__ENVELOPE__BODY_POLL, &p);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "free[128]: more than 128 entries");
	wb_free(&p);
	wb_free(&e);
}
END_TEST

START_TEST(test_million_entry_poll_is_refused_cheaply)
{
	struct wb p = poll_with_free(1000000), e;
	struct timespec t0, t1;

	/* Too large for a poll as a whole, and too many entries. */
	e = envelope(HF__ENVELOPE__BODY_POLL, &p);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "bytes, at most");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 100);
	wb_free(&e);

	/* The same list as a (large enough) results message body: the count
	 * limit stops the walk at the 257th entry. */
	struct wb b = { 0 }, one = { 0 };
	wb_str(&b, 1, "w1");
	wb_uint(&one, 1, 1);
	for (int i = 0; i < 300; i++)
		wb_sub(&b, 2, &one);
	e = envelope(HF__ENVELOPE__BODY_RESULTS, &b);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "results[256]: more than 256 entries");
	wb_free(&e);
	wb_free(&b);
	wb_free(&one);
	wb_free(&p);
}
END_TEST

START_TEST(test_packed_list_counts_each_value)
{
	struct wb s = { 0 }, packed = { 0 }, e;
	for (int i = 0; i < HF_MAX_SUBMIT_BATCH_SIZES + 1; i++)
		wb_varint(&packed, 1);
	wb_bytes(&s, 6, packed.b, packed.n);
	e = envelope(HF__ENVELOPE__BODY_SUBMIT, &s);
	ck_refused(&e, HF_MSG_CONTROL_REQUEST, -EINVAL, "batch_sizes: more than 64 entries");
	wb_free(&s);
	wb_free(&packed);
	wb_free(&e);
}
END_TEST

START_TEST(test_singular_field_twice_is_refused)
{
	struct wb r = register_body("w1"), e;
	wb_uint(&r, 4, 1); /* protocol_version again */
	e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "protocol_version: given more than once");
	wb_free(&r);
	wb_free(&e);
}
END_TEST

START_TEST(test_unknown_fields_are_bounded)
{
	struct wb r = register_body("w1"), e;
	for (int i = 0; i < HF_MAX_UNKNOWN_FIELDS + 1; i++)
		wb_uint(&r, 1000 + (uint32_t)i, 7);
	e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "unknown fields");
	wb_free(&r);
	wb_free(&e);
}
END_TEST

/* ---- numbers and enums ---- */

static struct wb result_batch(double started_at, uint32_t status, uint32_t device_index)
{
	struct wb b = { 0 }, t = { 0 };
	wb_str(&b, 1, "w1");
	wb_uint(&t, 1, 42);
	wb_uint(&t, 2, 1);
	wb_uint(&t, 3, status);
	wb_double(&t, 8, started_at);
	wb_uint(&t, 11, device_index);
	wb_sub(&b, 2, &t);
	wb_free(&t);
	return b;
}

START_TEST(test_bad_numbers_are_refused)
{
	struct {
		double started_at;
		uint32_t status, device_index;
		const char *text;
	} cases[] = {
		{ 1.7e9, HF__TASK_STATUS__STATUS_PASSED, 0, NULL },
		{ 0, HF__TASK_STATUS__STATUS_ERROR, 3, NULL },
		{ NAN, HF__TASK_STATUS__STATUS_PASSED, 0, "results[0].started_at: NaN is not a finite number" },
		{ INFINITY, HF__TASK_STATUS__STATUS_PASSED, 0, "results[0].started_at: infinity" },
		{ -1.0, HF__TASK_STATUS__STATUS_PASSED, 0, "results[0].started_at: -1 is outside" },
		{ 1e300, HF__TASK_STATUS__STATUS_PASSED, 0, "results[0].started_at" },
		{ 1.7e9, HF__TASK_STATUS__STATUS_PASSED, 70000, "results[0].device_index: 70000 is outside 0 .. 4095" },
		{ 1.7e9, 0, 0, "results[0].status: 0 is not a final status" },
		{ 1.7e9, HF__TASK_STATUS__STATUS_RUNNING, 0, "results[0].status: 3 is not a final status" },
		{ 1.7e9, 99, 0, "results[0].status: 99 is not a known TaskStatus value" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wb b = result_batch(cases[i].started_at, cases[i].status, cases[i].device_index);
		struct wb e = envelope(HF__ENVELOPE__BODY_RESULTS, &b);
		if (!cases[i].text)
			ck_assert_msg(decode(&e, HF_MSG_WORKER_REQUEST) == 0, "case %zu: %s", i, err);
		else
			ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, cases[i].text);
		wb_free(&b);
		wb_free(&e);
	}
}
END_TEST

START_TEST(test_value_wider_than_its_field_is_refused)
{
	struct wb b = result_batch(1.7e9, HF__TASK_STATUS__STATUS_PASSED, 0), e;
	/* a uint32 attempt of 2^32 + 1 (protobuf-c would keep 1) */
	struct wb t = { 0 };
	wb_uint(&t, 1, 43);
	wb_uint(&t, 2, (UINT64_C(1) << 32) + 1);
	wb_uint(&t, 3, HF__TASK_STATUS__STATUS_PASSED);
	wb_sub(&b, 2, &t);
	e = envelope(HF__ENVELOPE__BODY_RESULTS, &b);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "results[1].attempt: 4294967297 is more than 32 bits");
	wb_free(&t);
	wb_free(&b);
	wb_free(&e);
}
END_TEST

START_TEST(test_task_ids_beyond_bigint_are_refused)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__CancelRequest cr = HF__CANCEL_REQUEST__INIT;
	cr.job_id = (uint64_t)INT64_MAX + 1;
	env.body_case = HF__ENVELOPE__BODY_CANCEL;
	env.cancel = &cr;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "job_id: 9223372036854775808 is outside"));
}
END_TEST

START_TEST(test_bad_telemetry_and_backend_are_refused)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Poll p = HF__POLL__INIT;
	Hf__DeviceTelemetry t = HF__DEVICE_TELEMETRY__INIT, *tp[] = { &t };
	p.worker_id = "w1";
	p.telemetry = tp;
	p.n_telemetry = 1;
	t.backend = HF__BACKEND__BACKEND_CUDA;
	t.utilization_pct = 50;
	t.temperature_c = -1; /* not available */
	env.body_case = HF__ENVELOPE__BODY_POLL;
	env.poll = &p;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REQUEST), 0);
	t.power_w = NAN;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "telemetry[0].power_w: NaN"));
	t.power_w = 0;
	t.backend = HF__BACKEND__BACKEND_UNSPECIFIED;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "telemetry[0].backend: 0 is not a backend"));
}
END_TEST

/* ---- duplicates ---- */

START_TEST(test_duplicate_devices_are_refused)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Register reg = HF__REGISTER__INIT;
	Hf__Device d[3], *dp[3];
	for (int i = 0; i < 3; i++) {
		hf__device__init(&d[i]);
		d[i].backend = HF__BACKEND__BACKEND_CUDA;
		d[i].index = (uint32_t)i;
		d[i].slots = 1;
		dp[i] = &d[i];
	}
	reg.worker_id = "w1";
	reg.protocol_version = HF_PROTOCOL_VERSION;
	reg.devices = dp;
	reg.n_devices = 3;
	env.body_case = HF__ENVELOPE__BODY_REGISTER;
	env.register_ = &reg;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REQUEST), 0);
	d[2].index = 0;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "devices[2]: device cuda:0 is already listed as devices[0]"));
	/* Same index, other backend: distinct. */
	d[2].backend = HF__BACKEND__BACKEND_CPU;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REQUEST), 0);
}
END_TEST

START_TEST(test_duplicate_poll_entries_are_refused)
{
	struct wb p = poll_with_free(2), f = { 0 }, e;
	wb_uint(&f, 1, HF__BACKEND__BACKEND_CUDA);
	wb_uint(&f, 2, 1);
	wb_uint(&f, 3, 1);
	wb_sub(&p, 2, &f);
	e = envelope(HF__ENVELOPE__BODY_POLL, &p);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "free[2]: device cuda:1 is already listed as free[1]");
	wb_free(&e);
	wb_free(&f);
	wb_free(&p);
}
END_TEST

START_TEST(test_duplicate_results_are_refused)
{
	struct wb b = result_batch(1.7e9, HF__TASK_STATUS__STATUS_PASSED, 0), t = { 0 }, e;
	wb_uint(&t, 1, 42);
	wb_uint(&t, 2, 1);
	wb_uint(&t, 3, HF__TASK_STATUS__STATUS_FAILED);
	wb_sub(&b, 2, &t);
	e = envelope(HF__ENVELOPE__BODY_RESULTS, &b);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "results[1]: task 42 attempt 1 is already reported");
	wb_free(&t);
	wb_free(&b);
	wb_free(&e);
}
END_TEST

/* ---- envelopes, roles, versions ---- */

START_TEST(test_garbage_and_truncation_are_not_decodable)
{
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct wb g = { 0 };
	wb_raw(&g, garbage, sizeof(garbage));
	ck_assert_int_eq(decode(&g, HF_MSG_WORKER_REQUEST), -EBADMSG);
	wb_free(&g);

	struct wb r = register_body("w1"), e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	for (size_t cut = 0; cut < e.n; cut++) {
		struct wb t = { 0 };
		wb_raw(&t, e.b, cut);
		int rc = decode(&t, HF_MSG_WORKER_REQUEST);
		ck_assert_msg(rc == -EBADMSG, "cut at %zu: %d (%s)", cut, rc, err);
		wb_free(&t);
	}
	/* A length prefix far beyond the message. */
	struct wb big = { 0 };
	wb_uint(&big, 1, 1);
	wb_varint(&big, (uint64_t)HF__ENVELOPE__BODY_REGISTER << 3 | 2);
	wb_varint(&big, UINT64_C(1) << 40);
	ck_assert_int_eq(decode(&big, HF_MSG_WORKER_REQUEST), -EBADMSG);
	wb_free(&big);
	wb_free(&r);
	wb_free(&e);
}
END_TEST

START_TEST(test_body_must_fit_the_port)
{
	struct wb r = register_body("w1"), e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	/* A request of the other port says which port this is (ERR_WRONG_PORT). */
	ck_refused(&e, HF_MSG_CONTROL_REQUEST, -EPROTOTYPE,
		   "this is the coordinator's control port (a register request is hf-worker's); "
		   "hf-worker talks to the worker port (coordinator.worker_listen)");
	ck_refused(&e, HF_MSG_WORKER_REPLY, -EINVAL, "is not a reply to a worker");
	wb_free(&e);

	struct wb s = { 0 };
	e = envelope(HF__ENVELOPE__BODY_SUBMIT, &s);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EPROTOTYPE,
		   "this is the coordinator's worker port (a submit request is hfctl's); hfctl talks "
		   "to the control port (coordinator.control_listen)");
	wb_free(&e);

	/* A body neither port takes is refused as before. */
	e = envelope(HF__ENVELOPE__BODY_ACK, &s);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "ack: a ack message is not a worker request");
	ck_refused(&e, HF_MSG_CONTROL_REQUEST, -EINVAL, "is not a control request");
	wb_free(&e);

	/* Two bodies in one envelope. */
	e = envelope(HF__ENVELOPE__BODY_REGISTER, &r);
	wb_sub(&e, HF__ENVELOPE__BODY_POLL, &s);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EINVAL, "a second body");
	wb_free(&e);
	wb_free(&r);
}
END_TEST

START_TEST(test_protocol_version_outside_the_range)
{
	struct wb r = register_body("w1"), e = { 0 };
	wb_uint(&e, 1, 7);
	wb_sub(&e, HF__ENVELOPE__BODY_REGISTER, &r);
	ck_refused(&e, HF_MSG_WORKER_REQUEST, -EPROTONOSUPPORT, "protocol version 7 is not accepted");
	wb_free(&e);

	/* A worker reads a newer coordinator's Error all the same. */
	struct wb er = { 0 };
	wb_uint(&er, 1, HF__ERROR_CODE__ERR_VERSION);
	wb_str(&er, 2, "version 1 is too old");
	wb_uint(&e, 1, 7);
	wb_sub(&e, HF__ENVELOPE__BODY_ERROR, &er);
	ck_assert_int_eq(decode(&e, HF_MSG_WORKER_REPLY), 0);
	wb_free(&e);
	wb_free(&er);
	wb_free(&r);
}
END_TEST

START_TEST(test_control_replies_are_read_without_field_limits)
{
	/* A results reply with a 1 MiB metrics text: hfctl reads it. */
	size_t n = 1u << 20;
	char *metrics = malloc(n + 1);
	ck_assert_ptr_nonnull(metrics);
	memset(metrics, 'x', n);
	metrics[n] = '\0';
	struct wb row = { 0 }, rr = { 0 }, e;
	wb_str(&row, 10, metrics);
	wb_sub(&rr, 1, &row);
	e = envelope(HF__ENVELOPE__BODY_RESULTS_REPLY, &rr);
	ck_assert_int_eq(decode(&e, HF_MSG_CONTROL_REPLY), 0);
	wb_free(&e);
	/* ... but not one with invalid UTF-8. */
	row.n = 0;
	wb_str(&row, 10, "\xff");
	rr.n = 0;
	wb_sub(&rr, 1, &row);
	e = envelope(HF__ENVELOPE__BODY_RESULTS_REPLY, &rr);
	ck_refused(&e, HF_MSG_CONTROL_REPLY, -EINVAL, "rows[0].metrics_json: not valid UTF-8");
	wb_free(&e);
	wb_free(&row);
	wb_free(&rr);
	free(metrics);
}
END_TEST

START_TEST(test_worker_description_is_bounded)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Register reg = HF__REGISTER__INIT;
	static Hf__Device d[HF_MAX_DEVICES];
	static Hf__Device *dp[HF_MAX_DEVICES];
	static Hf__KeyValue kv[HF_MAX_DEVICE_ATTRS];
	static Hf__KeyValue *kvp[HF_MAX_DEVICE_ATTRS];
	static char key[HF_MAX_DEVICE_ATTRS][HF_LABEL_KEY_MAX + 1], value[HF_LABEL_VALUE_MAX + 1];

	memset(value, 'v', HF_LABEL_VALUE_MAX);
	for (int k = 0; k < HF_MAX_DEVICE_ATTRS; k++) {
		memset(key[k], 'k', HF_LABEL_KEY_MAX);
		key[k][0] = (char)('a' + k);
		hf__key_value__init(&kv[k]);
		kv[k].key = key[k];
		kv[k].value = value;
		kvp[k] = &kv[k];
	}
	for (int i = 0; i < HF_MAX_DEVICES; i++) {
		hf__device__init(&d[i]);
		d[i].backend = HF__BACKEND__BACKEND_CUDA;
		d[i].index = (uint32_t)i;
		d[i].attrs = kvp;
		d[i].n_attrs = HF_MAX_DEVICE_ATTRS;
		dp[i] = &d[i];
	}
	reg.worker_id = "w1";
	reg.devices = dp;
	reg.n_devices = HF_MAX_DEVICES;
	env.body_case = HF__ENVELOPE__BODY_REGISTER;
	env.register_ = &reg;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "description"));
	/* A realistic large worker: 128 devices, 4 short attributes each. */
	for (int i = 0; i < HF_MAX_DEVICES; i++) {
		d[i].name = "NVIDIA H100 80GB HBM3";
		d[i].n_attrs = 0;
	}
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REQUEST), 0);
}
END_TEST

/* Every string and repeated field of what a port receives (and of what a
 * worker receives) has a rule: walk the message types reachable from each
 * accepted body. */
static void assert_rules(const ProtobufCMessageDescriptor *d, unsigned depth)
{
	ck_assert_uint_le(depth, HF_MAX_NESTING);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		uint32_t count = 0, len = 0;
		bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
		bool string = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES;
		if (repeated || string) {
			ck_assert_msg(hf_validate_rule_of(d, f->name, &count, &len), "%s.%s has no rule", d->name,
				      f->name);
			ck_assert_msg(!repeated || count > 0, "%s.%s has no count", d->name, f->name);
			ck_assert_msg(!string || len > 0, "%s.%s has no length", d->name, f->name);
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE)
			assert_rules(f->descriptor, depth + 1);
	}
}

START_TEST(test_every_received_field_has_a_limit)
{
	const ProtobufCMessageDescriptor *const bodies[] = {
		&hf__register__descriptor, &hf__poll__descriptor, &hf__result_batch__descriptor,
		&hf__health_report__descriptor, &hf__submit_request__descriptor,
		&hf__job_status_request__descriptor, &hf__job_list_request__descriptor,
		&hf__results_request__descriptor, &hf__cancel_request__descriptor,
		&hf__workers_request__descriptor, &hf__models_request__descriptor,
		&hf__devices_request__descriptor, &hf__retry_request__descriptor,
		&hf__drain_request__descriptor, &hf__explain_request__descriptor,
		&hf__logs_request__descriptor, &hf__compare_request__descriptor,
		&hf__history_request__descriptor, &hf__report_request__descriptor,
		&hf__register_reply__descriptor, &hf__poll_reply__descriptor, &hf__ack__descriptor,
		&hf__error__descriptor,
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		assert_rules(bodies[i], 1);
}
END_TEST

/* ---- text helpers ---- */

/* The readers' requests: filters, thresholds and limits in range, or
 * refused naming the field. */
START_TEST(test_submit_suite_name_is_checked)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__SubmitRequest sr = HF__SUBMIT_REQUEST__INIT;
	char long_name[80];

	env.body_case = HF__ENVELOPE__BODY_SUBMIT;
	env.submit = &sr;
	sr.all_models = true;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), 0); /* no suite */
	sr.all_models = false;
	sr.suite = "core";
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), 0);
	sr.suite = "mixture-of-experts";
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), 0);
	sr.suite = "Core";
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_msg(strstr(err, "suite: \"Core\" is not a suite name (1 to 63 of a-z 0-9 _ . -)"), "%s", err);
	sr.suite = "a\tb";
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	memset(long_name, 'a', 70);
	long_name[70] = '\0';
	sr.suite = long_name;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "suite"));
}
END_TEST

/* Benchmark modes: known names, each once, at most HF_MAX_SUBMIT_MODES;
 * a bad one is refused naming it and the valid names. */
START_TEST(test_submit_modes_are_checked)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__SubmitRequest sr = HF__SUBMIT_REQUEST__INIT;
	char *good[] = { "eager", "cuda-graph", "compile" };
	char *bad[] = { "eager", "graph" };
	char *twice[] = { "compile", "compile" };
	char *many[] = { "eager", "cuda-graph", "compile", "eager", "cuda-graph" };
	char *evil[] = { "e\x1b[2Jager" };

	env.body_case = HF__ENVELOPE__BODY_SUBMIT;
	env.submit = &sr;
	sr.all_models = true;
	sr.modes = good;
	sr.n_modes = 3;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), 0);
	sr.modes = bad;
	sr.n_modes = 2;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_msg(strstr(err, "modes[1]: \"graph\" is not a benchmark mode (eager, cuda-graph, compile)"), "%s",
		      err);
	sr.modes = twice;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_msg(strstr(err, "modes[1]: \"compile\" is given twice"), "%s", err);
	sr.modes = many;
	sr.n_modes = 5;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_msg(strstr(err, "modes"), "%s", err);
	sr.modes = evil;
	sr.n_modes = 1;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_msg(!strchr(err, '\x1b'), "%s", err);
}
END_TEST

/* A worker refuses an assignment whose mode it does not know; none (an
 * older coordinator) is eager. */
START_TEST(test_assignment_mode_is_checked)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__PollReply pr = HF__POLL_REPLY__INIT;
	Hf__Assignment a = HF__ASSIGNMENT__INIT, *as[] = { &a };

	env.body_case = HF__ENVELOPE__BODY_POLL_REPLY;
	env.poll_reply = &pr;
	pr.assignments = as;
	pr.n_assignments = 1;
	a.task_id = 1;
	a.attempt = 1;
	a.model_type = "bert";
	a.backend = HF__BACKEND__BACKEND_CUDA;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REPLY), 0);
	a.mode = "cuda-graph";
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REPLY), 0);
	a.mode = "turbo";
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REPLY), -EINVAL);
	ck_assert_msg(strstr(err, "mode: \"turbo\" is not a benchmark mode"), "%s", err);
	/* The job's priority orders tasks leased ahead: a submit's range. */
	a.mode = "eager";
	a.priority = HF_PRIORITY_MIN;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REPLY), 0);
	a.priority = HF_PRIORITY_MAX + 1;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_WORKER_REPLY), -EINVAL);
	ck_assert_msg(strstr(err, "priority"), "%s", err);
}
END_TEST

START_TEST(test_reader_requests_are_checked)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ResultsRequest rr = HF__RESULTS_REQUEST__INIT;
	Hf__JobListRequest jl = HF__JOB_LIST_REQUEST__INIT;
	Hf__CompareRequest cr = HF__COMPARE_REQUEST__INIT;
	Hf__HistoryRequest hr = HF__HISTORY_REQUEST__INIT;
	char *models[] = { "bert", "bad model" }, *families[] = { "encoder-only", "nope" };
	Hf__Backend backends[] = { HF__BACKEND__BACKEND_CPU, HF__BACKEND__BACKEND_UNSPECIFIED };
	Hf__TaskStatus statuses[] = { HF__TASK_STATUS__STATUS_FAILED, HF__TASK_STATUS__STATUS_UNSPECIFIED };

	env.body_case = HF__ENVELOPE__BODY_RESULTS_REQUEST;
	env.results_request = &rr;
	rr.job_id = 1;
	rr.models = models;
	rr.n_models = 1;
	rr.families = families;
	rr.n_families = 1;
	rr.backends = backends;
	rr.n_backends = 1;
	rr.statuses = statuses;
	rr.n_statuses = 1;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), 0);
	rr.n_models = 2;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "models[1]"));
	rr.n_models = 1;
	rr.n_families = 2;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "families[1]"));
	rr.n_families = 1;
	rr.n_backends = 2;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "backends[1]"));
	rr.n_backends = 1;
	rr.n_statuses = 2;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "statuses[1]"));

	env.body_case = HF__ENVELOPE__BODY_JOB_LIST;
	env.job_list = &jl;
	jl.state = "done";
	jl.since = 1.7e9;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), 0);
	jl.state = "finished";
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "state"));
	jl.state = "";
	jl.since = NAN;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "since"));

	env.body_case = HF__ENVELOPE__BODY_COMPARE;
	env.compare = &cr;
	cr.base_job_id = 1;
	cr.cand_job_id = 2;
	cr.threshold = 0.1;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), 0);
	cr.threshold = -0.5;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "threshold"));
	cr.threshold = 0.1;
	cr.cand_job_id = 0;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "cand_job_id"));

	env.body_case = HF__ENVELOPE__BODY_HISTORY;
	env.history = &hr;
	hr.model_type = "bert";
	hr.precision = "fp16";
	hr.limit = 10;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), 0);
	hr.precision = "fp64";
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "precision"));
	hr.precision = "";
	hr.model_type = "";
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "model_type"));
	hr.model_type = "bert";
	hr.limit = HF_HISTORY_LIMIT_MAX + 1;
	ck_assert_int_eq(pack_decode(&env, HF_MSG_CONTROL_REQUEST), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "limit"));
}
END_TEST

START_TEST(test_sent_error_texts_are_utf8)
{
	nng_msg *msg;
	Hf__Envelope *env;

	ck_assert_int_eq(hf_env_error(HF__ERROR_CODE__ERR_BAD_REQUEST, &msg, "unknown model \"%s\"",
				      "bert\xff\xc0\xaf"), 0);
	ck_assert_int_eq(hf_msg_decode(nng_msg_body(msg), nng_msg_len(msg), HF_MSG_WORKER_REPLY, &env, err,
				       sizeof(err)), 0);
	ck_assert_str_eq(env->error->message, "unknown model \"bert???\"");
	hf_env_free(env);
	nng_msg_free(msg);

	char out[16];
	hf_text_escape(out, sizeof(out), "ab\x01\xff\"cdefghijklmnop", 20);
	ck_assert_str_eq(out, "ab\\x01\\xFF...");
	ck_assert(hf_utf8_valid("\xc3\xa9", 2));
	ck_assert(!hf_utf8_valid("a\0b", 3));
}
END_TEST

static Suite *validate_suite(void)
{
	Suite *s = suite_create("validate");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_valid_register_decodes_and_loses_unknown_fields);
	tcase_add_test(tc, test_nul_in_string_is_refused);
	tcase_add_test(tc, test_invalid_utf8_is_refused_and_not_echoed);
	tcase_add_test(tc, test_overlong_string_is_refused);
	tcase_add_test(tc, test_worker_id_outside_the_alphabet_is_refused_escaped);
	tcase_add_test(tc, test_too_many_entries_are_refused_before_unpacking);
	tcase_add_test(tc, test_million_entry_poll_is_refused_cheaply);
	tcase_add_test(tc, test_packed_list_counts_each_value);
	tcase_add_test(tc, test_singular_field_twice_is_refused);
	tcase_add_test(tc, test_unknown_fields_are_bounded);
	tcase_add_test(tc, test_bad_numbers_are_refused);
	tcase_add_test(tc, test_value_wider_than_its_field_is_refused);
	tcase_add_test(tc, test_task_ids_beyond_bigint_are_refused);
	tcase_add_test(tc, test_bad_telemetry_and_backend_are_refused);
	tcase_add_test(tc, test_duplicate_devices_are_refused);
	tcase_add_test(tc, test_duplicate_poll_entries_are_refused);
	tcase_add_test(tc, test_duplicate_results_are_refused);
	tcase_add_test(tc, test_garbage_and_truncation_are_not_decodable);
	tcase_add_test(tc, test_body_must_fit_the_port);
	tcase_add_test(tc, test_protocol_version_outside_the_range);
	tcase_add_test(tc, test_control_replies_are_read_without_field_limits);
	tcase_add_test(tc, test_worker_description_is_bounded);
	tcase_add_test(tc, test_every_received_field_has_a_limit);
	tcase_add_test(tc, test_sent_error_texts_are_utf8);
	tcase_add_test(tc, test_reader_requests_are_checked);
	tcase_add_test(tc, test_submit_suite_name_is_checked);
	tcase_add_test(tc, test_submit_modes_are_checked);
	tcase_add_test(tc, test_assignment_mode_is_checked);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(validate_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
