/* SPDX-License-Identifier: MIT
 *
 * Envelope codec and the name tables (see hf_proto.h).  This is the one place
 * where protobuf-c's results are translated into errno-style codes.
 */
#include "hf_proto.h"
#include "hf_log.h"
#include "hf_validate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hf_env_pack(const Hf__Envelope *env, nng_msg **ret_msg)
{
	Hf__Envelope copy;
	nng_msg *msg;
	size_t len;

	if (!env || env->body_case == HF__ENVELOPE__BODY__NOT_SET)
		return -EINVAL;
	copy = *env;
	if (copy.protocol_version == 0)
		copy.protocol_version = HF_PROTOCOL_VERSION;

	len = hf__envelope__get_packed_size(&copy);
	if (nng_msg_alloc(&msg, len) != 0)
		return -ENOMEM;
	if (hf__envelope__pack(&copy, nng_msg_body(msg)) != len) {
		nng_msg_free(msg);
		return -EINVAL;
	}
	*ret_msg = msg;
	return 0;
}

int hf_env_unpack(const void *buf, size_t len, Hf__Envelope **ret_env)
{
	Hf__Envelope *env;

	if (!buf && len > 0)
		return -EBADMSG;
	env = hf__envelope__unpack(NULL, len, buf);
	if (!env)
		return -EBADMSG;
	if (env->body_case == HF__ENVELOPE__BODY__NOT_SET || env->protocol_version == 0) {
		hf__envelope__free_unpacked(env, NULL);
		return -EBADMSG;
	}
	*ret_env = env;
	return 0;
}

void hf_env_free(Hf__Envelope *env)
{
	if (env)
		hf__envelope__free_unpacked(env, NULL);
}

int hf_env_error(Hf__ErrorCode code, nng_msg **ret_msg, const char *fmt, ...)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Error err = HF__ERROR__INIT;
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* What we send is valid UTF-8 (strict parsers refuse anything else),
	 * also when the text quotes what a peer sent or was cut mid-character. */
	hf_utf8_sanitize(text);

	err.code = code;
	err.message = text;
	err.min_protocol = HF_PROTOCOL_MIN;
	err.max_protocol = HF_PROTOCOL_MAX;
	env.body_case = HF__ENVELOPE__BODY_ERROR;
	env.error = &err;
	return hf_env_pack(&env, ret_msg);
}

static const char *const backend_names[] = {
	[HF__BACKEND__BACKEND_CPU] = "cpu",
	[HF__BACKEND__BACKEND_CUDA] = "cuda",
	[HF__BACKEND__BACKEND_ROCM] = "rocm",
	[HF__BACKEND__BACKEND_MPS] = "mps",
	[HF__BACKEND__BACKEND_OPENVINO] = "openvino",
	[HF__BACKEND__BACKEND_QNN] = "qnn",
};

static const char *const kind_names[] = {
	[HF__TASK_KIND__KIND_TEST] = "test",
	[HF__TASK_KIND__KIND_BENCHMARK] = "benchmark",
};

static const char *const status_names[] = {
	[HF__TASK_STATUS__STATUS_QUEUED] = "queued",
	[HF__TASK_STATUS__STATUS_LEASED] = "leased",
	[HF__TASK_STATUS__STATUS_RUNNING] = "running",
	[HF__TASK_STATUS__STATUS_PASSED] = "passed",
	[HF__TASK_STATUS__STATUS_FAILED] = "failed",
	[HF__TASK_STATUS__STATUS_ERROR] = "error",
	[HF__TASK_STATUS__STATUS_TIMEOUT] = "timeout",
	[HF__TASK_STATUS__STATUS_SKIPPED] = "skipped",
	[HF__TASK_STATUS__STATUS_CANCELLED] = "cancelled",
};

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *table_name(const char *const *table, size_t n, int v)
{
	if (v <= 0 || (size_t)v >= n || !table[v])
		return "unknown";
	return table[v];
}

static int table_parse(const char *const *table, size_t n, const char *s, int *ret)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 1; i < n; i++) {
		if (table[i] && strcmp(table[i], s) == 0) {
			*ret = (int)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *hf_backend_name(Hf__Backend b)
{
	return table_name(backend_names, N_ELEM(backend_names), (int)b);
}

int hf_backend_parse(const char *s, Hf__Backend *ret)
{
	int v, r = table_parse(backend_names, N_ELEM(backend_names), s, &v);
	if (r == 0)
		*ret = (Hf__Backend)v;
	return r;
}

const char *hf_backend_names(void)
{
	return "cpu, cuda, rocm, mps, openvino, qnn";
}

const char *hf_kind_name(Hf__TaskKind k)
{
	return table_name(kind_names, N_ELEM(kind_names), (int)k);
}

int hf_kind_parse(const char *s, Hf__TaskKind *ret)
{
	int v, r = table_parse(kind_names, N_ELEM(kind_names), s, &v);
	if (r == 0)
		*ret = (Hf__TaskKind)v;
	return r;
}

const char *hf_status_name(Hf__TaskStatus s)
{
	return table_name(status_names, N_ELEM(status_names), (int)s);
}

int hf_status_parse(const char *s, Hf__TaskStatus *ret)
{
	int v, r = table_parse(status_names, N_ELEM(status_names), s, &v);
	if (r == 0)
		*ret = (Hf__TaskStatus)v;
	return r;
}

bool hf_status_is_final(Hf__TaskStatus s)
{
	switch (s) {
	case HF__TASK_STATUS__STATUS_PASSED:
	case HF__TASK_STATUS__STATUS_FAILED:
	case HF__TASK_STATUS__STATUS_ERROR:
	case HF__TASK_STATUS__STATUS_TIMEOUT:
	case HF__TASK_STATUS__STATUS_SKIPPED:
	case HF__TASK_STATUS__STATUS_CANCELLED:
		return true;
	default:
		return false;
	}
}

int hf_status_log_level(Hf__TaskStatus s)
{
	switch (s) {
	case HF__TASK_STATUS__STATUS_FAILED:
	case HF__TASK_STATUS__STATUS_ERROR:
	case HF__TASK_STATUS__STATUS_TIMEOUT:
		return HF_LOG_INFO;
	default:
		return HF_LOG_DEBUG;
	}
}

static const char *const family_names[] = {
	"encoder-only", "decoder-only", "encoder-decoder", "vision", "vision-text", "speech",
	"multimodal", "diffusion", "mixture-of-experts", "state-space", "rag",
};

bool hf_family_valid(const char *s)
{
	for (size_t i = 0; s && i < N_ELEM(family_names); i++)
		if (strcmp(family_names[i], s) == 0)
			return true;
	return false;
}

const char *hf_family_names(void)
{
	return "encoder-only, decoder-only, encoder-decoder, vision, vision-text, speech, "
	       "multimodal, diffusion, mixture-of-experts, state-space, rag";
}

bool hf_request_id_valid(const char *s)
{
	return hf_id_valid(s);
}

bool hf_id_valid(const char *s)
{
	size_t n = s ? strnlen(s, HF_ID_MAX + 1) : 0;

	if (n == 0 || n > HF_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == ':' || ch == '-'))
			return false;
	}
	return true;
}

const char *const hf_mode_list[HF_MODE_COUNT] = { "eager", "cuda-graph", "compile" };

const char *hf_mode_static(const char *s)
{
	for (size_t i = 0; s && i < HF_MODE_COUNT; i++)
		if (strcmp(hf_mode_list[i], s) == 0)
			return hf_mode_list[i];
	return NULL;
}

bool hf_mode_valid(const char *s)
{
	return hf_mode_static(s) != NULL;
}

const char *hf_mode_names(void)
{
	return "eager, cuda-graph, compile";
}

bool hf_precision_valid(const char *s)
{
	static const char *const names[] = { "fp32", "fp16", "bf16", "int8" };
	for (size_t i = 0; s && i < N_ELEM(names); i++)
		if (strcmp(names[i], s) == 0)
			return true;
	return false;
}
