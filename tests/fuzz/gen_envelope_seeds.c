/* SPDX-License-Identifier: MIT
 *
 * Writes the seed corpus of the envelope fuzz targets: for every message an
 * Envelope body can carry, one envelope with every field filled with a
 * plausible value (repeated fields twice, nested messages filled as well)
 * and one with an empty body.  The values are chosen by field name (a
 * worker id, a model id, a family, a precision, ...) so that most seeds are
 * valid messages and the fuzzer starts deep in the validation.  The filling
 * walks protobuf-c's descriptors, so a message added to the protocol gets
 * its seeds without a change here.
 *
 *   gen_envelope_seeds DIR    writes DIR/envelope/<body>-{full,empty}-role<N>
 *
 * In DIR/envelope the first byte is the role fuzz_envelope.c decodes the
 * message as: 0 worker request, 1 control request, 2 worker reply,
 * 3 control reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf_proto.h"

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p) {
		perror("calloc");
		exit(1);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p) {
		perror("strdup");
		exit(1);
	}
	return p;
}

static int named(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return 1;
	return 0;
}

static const char *string_for(const char *name)
{
	static const struct { const char *field, *value; } values[] = {
		{ "worker_id", "worker-1" }, { "hostname", "gpu-host-1" },
		{ "software_version", "0.1.0" }, { "family", "decoder-only" },
		{ "families", "encoder-only" }, { "precision", "fp16" }, { "precisions", "bf16" },
		{ "metrics_json", "{\"load_time_s\":0.41,\"latency_ms\":{\"p50\":12.25}}" },
		{ "env_json", "{\"torch\":\"2.5.1\",\"device_name\":\"NVIDIA H200\"}" },
		{ "hf_id", "openai-community/gpt2" }, { "models", "bert" },
		{ "cached_models", "google-bert/bert-base-uncased" }, { "model_type", "gpt2" },
		{ "request_id", "req-2024.06:1" }, { "state", "running" }, { "trigger", "periodic" },
		{ "weights", "pretrained" }, { "min_compute_capability", "8.0" },
		{ "gfx_targets", "gfx942" }, { "runtimes", "transformers>=4.40" }, { "key", "rack" },
		{ "value", "a1" }, { "flags", "avx512f" }, { "arch", "sm_90" },
		{ "task", "text-generation" }, { "modality", "text" }, { "name", "nightly" },
		{ "submitter", "ci" }, { "driver", "550.54.15" }, { "uuid", "GPU-0a1b2c3d" },
		{ "model", "AMD EPYC 9654" }, { "version", "2.5.1" }, { "library", "libnvidia-ml.so.1" },
		{ "reason", "out of memory" }, { "message", "unknown job 7" },
		{ "detail", "matmul matches the CPU" }, { "summary", "waiting for a cuda device" },
		{ "reasons", "worker-1 cuda:0: busy" }, { "log_excerpt", "loading\nforward\n" },
		{ "size_class", "small" }, { "notes", "needs trust_remote_code" },
		{ "state_reason", "3 infrastructure errors" },
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		if (strcmp(values[i].field, name) == 0)
			return values[i].value;
	return "x";
}

static uint64_t number_for(const char *name)
{
	static const struct { const char *field; uint64_t value; } values[] = {
		{ "index", 0 }, { "device_index", 0 }, { "device_indices", 0 }, { "batch_size", 1 },
		{ "batch_sizes", 1 }, { "seq_len", 128 }, { "seq_lens", 128 }, { "timeout_s", 600 },
		{ "iterations", 20 }, { "warmup", 3 }, { "heartbeat_ms", 1000 }, { "lease_ms", 30000 }, { "hold_ms", 1000 },
		{ "protocol_version", HF_PROTOCOL_VERSION }, { "min_protocol", HF_PROTOCOL_MIN },
		{ "max_protocol", HF_PROTOCOL_MAX },
		{ "memory_bytes", UINT64_C(85899345920) }, { "min_memory_bytes", UINT64_C(8589934592) },
		{ "memory_used_bytes", UINT64_C(1073741824) }, { "cores", 96 }, { "threads", 192 },
		{ "exit_code", 0 }, { "priority", 5 }, { "limit", 20 }, { "max_running", 4 },
		{ "max_retries", 2 }, { "flaky_reruns", 1 }, { "devices_per_task", 1 },
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		if (strcmp(values[i].field, name) == 0)
			return values[i].value;
	return 7;
}

static ProtobufCMessage *message_full(const ProtobufCMessageDescriptor *desc, int depth);

/* Fills one value of field f at p. */
static void value_fill(const ProtobufCFieldDescriptor *f, void *p, int depth)
{
	static const char *const true_bools[] = { "accepted", "present", "available", "ok",
						  "connected", "declared", NULL };
	uint64_t n = number_for(f->name);

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)p = (uint32_t)n;
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		*(uint64_t *)p = n;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)p = 42.5f;
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)p = strstr(f->name, "_at") || strcmp(f->name, "last_seen") == 0
				       ? 1718000000.25 : 1.5;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = named(f->name, true_bools);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *e = f->descriptor;
		*(int *)p = e->n_values > 1 ? e->values[1].value : e->values[0].value;
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		*(char **)p = xstrdup(string_for(f->name));
		break;
	case PROTOBUF_C_TYPE_BYTES:
		((ProtobufCBinaryData *)p)->data = (uint8_t *)xstrdup("bytes");
		((ProtobufCBinaryData *)p)->len = 5;
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		*(ProtobufCMessage **)p = message_full(f->descriptor, depth + 1);
		break;
	}
}

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	default:
		return 4;
	}
}

/* A message of this type with every field set (repeated fields twice; the
 * nesting stops after a few levels). */
static ProtobufCMessage *message_full(const ProtobufCMessageDescriptor *desc, int depth)
{
	ProtobufCMessage *m = xcalloc(1, desc->sizeof_message);

	desc->message_init(m);
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		char *base = (char *)m;

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = depth < 3 ? 2 : 1;
			char *array = xcalloc(n, value_size(f));
			for (size_t k = 0; k < n; k++)
				value_fill(f, array + k * value_size(f), depth);
			*(size_t *)(base + f->quantifier_offset) = n;
			*(void **)(base + f->offset) = array;
			continue;
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth >= 4)
			continue;
		value_fill(f, base + f->offset, depth);
		if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
		    f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			*(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
	}
	return m;
}

static ProtobufCMessage *message_empty(const ProtobufCMessageDescriptor *desc)
{
	ProtobufCMessage *m = xcalloc(1, desc->sizeof_message);
	desc->message_init(m);
	return m;
}

static void write_seed(const char *dir, const char *sub, const char *name, int role,
		       const uint8_t *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	f = fopen(path, "wb");
	if (!f || (role >= 0 && fputc(role, f) == EOF) || fwrite(buf, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* The roles a body is received in (fuzz_envelope.c's first byte). */
static int body_roles(unsigned id, int roles[2])
{
	if (id == HF__ENVELOPE__BODY_ERROR) {
		roles[0] = 2;
		roles[1] = 3;
		return 2;
	}
	if (id < 20) /* worker port: Register Poll ResultBatch HealthReport */
		roles[0] = (id == 10 || id == 12 || id == 14 || id == 17) ? 0 : 2;
	else /* control port: requests even, replies odd */
		roles[0] = id % 2 == 0 ? 1 : 3;
	return 1;
}

int main(int argc, char **argv)
{
	const ProtobufCMessageDescriptor *env_desc = &hf__envelope__descriptor;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	for (unsigned i = 0; i < env_desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &env_desc->fields[i];
		int roles[2], n_roles;

		if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			continue;
		n_roles = body_roles(f->id, roles);
		for (int variant = 0; variant < 2; variant++) {
			Hf__Envelope *env = xcalloc(1, sizeof(*env));
			uint8_t *buf;
			size_t len;
			char name[128];

			hf__envelope__init(env);
			env->protocol_version = HF_PROTOCOL_VERSION;
			/* Requests carry a token (protocol 2): one of the right form. */
			if (roles[0] == 0 || roles[0] == 1)
				env->token = strdup("hft_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
			env->body_case = f->id;
			*(ProtobufCMessage **)((char *)env + f->offset) =
				variant == 0 ? message_full(f->descriptor, 0) : message_empty(f->descriptor);
			len = hf__envelope__get_packed_size(env);
			buf = xcalloc(1, len);
			hf__envelope__pack(env, buf);

			snprintf(name, sizeof(name), "%s-%s", f->name, variant == 0 ? "full" : "empty");
			for (int k = 0; k < n_roles; k++) {
				char rname[160];
				snprintf(rname, sizeof(rname), "%s-role%d", name, roles[k]);
				write_seed(argv[1], "envelope", rname, roles[k], buf, len);
			}
			free(buf);
			hf__envelope__free_unpacked(env, NULL);
		}
	}
	return 0;
}
