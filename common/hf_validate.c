/* SPDX-License-Identifier: MIT
 *
 * Decoding with validation (see hf_validate.h): the wire pass over the raw
 * bytes, the field rules it applies, the unpacking and the removal of
 * unknown fields.  The semantic pass, one function per message type, is in
 * hf_validate-msg.c.  Any thread.
 */
#include "hf_validate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"
#include "hf_validate-int.h"

/* ---- text helpers ---- */

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when none starts
 * there (NUL counts as invalid). */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	uint32_t cp, min;
	size_t n;

	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2, cp = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0; /* continuation byte, overlong lead (c0 c1) or beyond U+10FFFF (f5..ff) */
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool hf_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		if (p[i] >= 0x01 && p[i] < 0x80) { /* the common case, quickly */
			i++;
			continue;
		}
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

char *hf_utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t len = s ? strlen(s) : 0, i = 0;

	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0) {
			p[i] = '?';
			n = 1;
		}
		i += n;
	}
	return s;
}

bool hf_suite_name_valid(const char *s, size_t len)
{
	if (len == 0 || len >= HF_SUITE_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '.' || s[i] == '-'))
			return false;
	return true;
}

char *hf_text_escape(char *out, size_t outlen, const char *s, size_t len)
{
	size_t o = 0;

	if (outlen == 0)
		return out;
	for (size_t i = 0; s && i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char one[5];
		size_t n;
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
			one[0] = (char)c;
			n = 1;
		} else {
			snprintf(one, sizeof(one), "\\x%02X", c);
			n = 4;
		}
		if (o + n + 4 > outlen) { /* room for "..." and the NUL */
			if (o + 4 <= outlen)
				memcpy(out + o, "...", 3), o += 3;
			break;
		}
		memcpy(out + o, one, n);
		o += n;
	}
	out[o] = '\0';
	return out;
}

/* ---- error paths ---- */

size_t vpath_push(struct vctx *v, const char *name, long idx)
{
	size_t old = v->path_len;

	if (old < VPATH_MAX) {
		v->seg[old].name = name;
		v->seg[old].idx = idx;
	}
	v->path_len = old + 1;
	return old;
}

void vpath_pop(struct vctx *v, size_t old)
{
	v->path_len = old;
}

int vfail(struct vctx *v, int rc, const char *fmt, ...)
{
	char text[512], path[192];
	size_t o = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	path[0] = '\0';
	for (size_t i = 0; i < v->path_len && i < VPATH_MAX && o < sizeof(path) - 1; i++) {
		int n = v->seg[i].idx >= 0 ? snprintf(path + o, sizeof(path) - o, "%s%s[%ld]", i ? "." : "",
						      v->seg[i].name, v->seg[i].idx)
					   : snprintf(path + o, sizeof(path) - o, "%s%s", i ? "." : "", v->seg[i].name);
		if (n < 0)
			break;
		o = (size_t)n >= sizeof(path) - o ? sizeof(path) - 1 : o + (size_t)n;
	}
	if (v->err && v->errlen) {
		snprintf(v->err, v->errlen, "%s%s%s", path, o ? ": " : "", text);
		hf_utf8_sanitize(v->err);
	}
	return rc;
}

/* ---- the field rules ---- */

/* A string's most bytes and a repeated field's most entries.  Every string
 * and repeated field of a message a port receives has one (a unit test
 * walks the descriptors); replies to hfctl are read without them (only
 * hfctl is at risk there, and its receive limit bounds them). */
struct field_rule {
	const char *name;
	uint32_t count; /* repeated: most entries */
	uint32_t len;   /* string: most bytes (of each entry) */
};

#define RULES_MAX 16

struct msg_rules {
	const ProtobufCMessageDescriptor *desc;
	struct field_rule f[RULES_MAX];
};

static const struct msg_rules rules[] = {
	{ &hf__key_value__descriptor,
	  { { "key", 0, HF_LABEL_KEY_MAX }, { "value", 0, HF_LABEL_VALUE_MAX } } },
	{ &hf__device__descriptor,
	  { { "name", 0, HF_NAME_MAX }, { "arch", 0, HF_ARCH_MAX }, { "driver", 0, HF_DRIVER_MAX },
	    { "uuid", 0, HF_UUID_MAX }, { "attrs", HF_MAX_DEVICE_ATTRS, 0 } } },
	{ &hf__backend_status__descriptor,
	  { { "reason", 0, HF_DETAIL_MAX }, { "driver", 0, HF_DRIVER_MAX }, { "library", 0, HF_LIBRARY_MAX } } },
	{ &hf__cpu_info__descriptor,
	  { { "model", 0, HF_NAME_MAX }, { "flags", HF_MAX_CPU_FLAGS, HF_CPU_FLAG_MAX },
	    { "arch", 0, HF_ARCH_MAX } } },
	{ &hf__runtime__descriptor,
	  { { "name", 0, HF_NAME_MAX }, { "version", 0, HF_VERSION_MAX }, { "detail", 0, HF_DETAIL_MAX } } },
	{ &hf__register__descriptor,
	  { { "worker_id", 0, HF_WORKER_ID_MAX }, { "hostname", 0, HF_HOSTNAME_MAX },
	    { "software_version", 0, HF_VERSION_MAX }, { "labels", HF_MAX_LABELS, 0 },
	    { "devices", HF_MAX_DEVICES, 0 }, { "runtimes", HF_MAX_RUNTIMES, 0 },
	    { "running", HF_MAX_RUNNING, 0 }, { "backends", HF_MAX_BACKENDS, 0 },
	    { "cached_models", HF_MAX_CACHED_MODELS, HF_MODEL_ID_MAX } } },
	{ &hf__register_reply__descriptor, { { "reason", 0, HF_MESSAGE_MAX } } },
	{ &hf__poll__descriptor,
	  { { "worker_id", 0, HF_WORKER_ID_MAX }, { "free", HF_MAX_FREE, 0 }, { "running", HF_MAX_RUNNING, 0 },
	    { "telemetry", HF_MAX_TELEMETRY, 0 } } },
	{ &hf__assignment__descriptor,
	  { { "model_type", 0, HF_ID_MAX }, { "hf_id", 0, HF_MODEL_ID_MAX }, { "family", 0, HF_FAMILY_MAX },
	    { "task", 0, HF_NAME_MAX }, { "modality", 0, HF_NAME_MAX },
	    { "precision", 0, HF_PRECISION_MAX }, { "device_indices", HF_MAX_DEVICES_PER_TASK, 0 },
	    { "mode", 0, HF_MODE_MAX } } },
	{ &hf__poll_reply__descriptor,
	  { { "assignments", HF_MAX_ASSIGNMENTS, 0 }, { "cancel", HF_MAX_RUNNING, 0 },
	    { "health_checks", HF_MAX_DEVICES, 0 } } },
	{ &hf__task_result__descriptor,
	  { { "reason", 0, HF_REASON_MAX }, { "metrics_json", 0, HF_JSON_MAX }, { "env_json", 0, HF_JSON_MAX },
	    { "log_excerpt", 0, HF_LOG_EXCERPT_MAX }, { "weights", 0, HF_REASON_MAX } } },
	{ &hf__result_batch__descriptor,
	  { { "worker_id", 0, HF_WORKER_ID_MAX }, { "results", HF_MAX_RESULTS, 0 } } },
	{ &hf__health_result__descriptor,
	  { { "detail", 0, HF_DETAIL_MAX }, { "trigger", 0, HF_TRIGGER_MAX } } },
	{ &hf__health_report__descriptor,
	  { { "worker_id", 0, HF_WORKER_ID_MAX }, { "results", HF_MAX_HEALTH_RESULTS, 0 } } },
	{ &hf__ack__descriptor, { { "acked", HF_MAX_RESULTS, 0 } } },
	{ &hf__error__descriptor, { { "message", 0, HF_MESSAGE_MAX }, { "unfit", HF_MAX_DEVICE_FITS, 0 } } },
	{ &hf__device_fit__descriptor,
	  { { "worker_id", 0, HF_WORKER_ID_MAX }, { "state", 0, HF_FIT_STATE_MAX },
	    { "unmet", HF_MAX_UNMET, HF_UNMET_MAX } } },
	{ &hf__submit_request__descriptor,
	  { { "models", HF_MAX_SUBMIT_MODELS, HF_ID_MAX }, { "families", HF_MAX_SUBMIT_FAMILIES, HF_FAMILY_MAX },
	    { "backends", HF_MAX_SUBMIT_BACKENDS, 0 }, { "kinds", HF_MAX_SUBMIT_KINDS, 0 },
	    { "batch_sizes", HF_MAX_SUBMIT_BATCH_SIZES, 0 },
	    { "precisions", HF_MAX_SUBMIT_PRECISIONS, HF_PRECISION_MAX },
	    { "submitter", 0, HF_SUBMITTER_MAX }, { "name", 0, HF_NAME_MAX },
	    { "min_compute_capability", 0, HF_CC_MAX }, { "gfx_targets", HF_MAX_SUBMIT_GFX, HF_GFX_MAX },
	    { "labels", HF_MAX_LABELS, 0 }, { "runtimes", HF_MAX_SUBMIT_RUNTIMES, HF_RUNTIME_REQ_MAX },
	    { "request_id", 0, HF_ID_MAX }, { "seq_lens", HF_MAX_SUBMIT_SEQ_LENS, 0 },
	    { "suite", 0, HF_SUITE_MAX }, { "modes", HF_MAX_SUBMIT_MODES, HF_MODE_MAX } } },
	{ &hf__drain_request__descriptor, { { "worker_id", 0, HF_WORKER_ID_MAX } } },
	{ &hf__envelope__descriptor, { { "token", 0, HF_TOKEN_MAX } } },
	{ &hf__token_create_request__descriptor,
	  { { "name", 0, HF_WORKER_ID_MAX }, { "role", 0, HF_ROLE_MAX } } },
	{ &hf__token_revoke_request__descriptor, { { "id_or_name", 0, HF_WORKER_ID_MAX } } },
	{ &hf__models_request__descriptor, { { "family", 0, HF_FAMILY_MAX } } },
	{ &hf__results_request__descriptor,
	  { { "models", HF_MAX_FILTER_VALUES, HF_ID_MAX }, { "families", HF_MAX_FILTER_VALUES, HF_FAMILY_MAX },
	    { "backends", HF_MAX_FILTER_VALUES, 0 }, { "statuses", HF_MAX_FILTER_VALUES, 0 },
	    { "kinds", HF_MAX_FILTER_VALUES, 0 } } },
	{ &hf__job_list_request__descriptor,
	  { { "state", 0, HF_JOB_STATE_MAX }, { "submitter", 0, HF_SUBMITTER_MAX }, { "name", 0, HF_NAME_MAX } } },
	{ &hf__history_request__descriptor, { { "model_type", 0, HF_ID_MAX }, { "precision", 0, HF_PRECISION_MAX } } },
};

static const struct msg_rules *rules_for(const ProtobufCMessageDescriptor *desc)
{
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rules[i].desc == desc)
			return &rules[i];
	return NULL;
}

bool hf_validate_rule_of(const ProtobufCMessageDescriptor *desc, const char *field, uint32_t *ret_count,
			 uint32_t *ret_len)
{
	const struct msg_rules *mr = rules_for(desc);

	for (size_t i = 0; mr && i < RULES_MAX && mr->f[i].name; i++) {
		if (strcmp(mr->f[i].name, field) == 0) {
			*ret_count = mr->f[i].count;
			*ret_len = mr->f[i].len;
			return true;
		}
	}
	return false;
}

/* ---- the wire pass ---- */

#define WIRE_MAX_FIELDS 64 /* the most fields of one message (Envelope: 50) */

struct wire {
	struct vctx v;
	enum hf_msg_role role;
	bool strict; /* apply the field rules */
	unsigned n_unknown;
};

static int read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*pos >= len)
			return -1;
		uint8_t b = p[(*pos)++];
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -1;
}

enum { WT_VARINT = 0, WT_64 = 1, WT_LEN = 2, WT_32 = 5 };

static int wire_type_of(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return WT_32;
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return WT_64;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return WT_LEN;
	default:
		return WT_VARINT;
	}
}

/* Skips a field of wire type wt at *pos. */
static int wire_skip(const uint8_t *p, size_t len, size_t *pos, unsigned wt)
{
	uint64_t v;

	switch (wt) {
	case WT_VARINT:
		return read_varint(p, len, pos, &v);
	case WT_64:
		if (len - *pos < 8)
			return -1;
		*pos += 8;
		return 0;
	case WT_32:
		if (len - *pos < 4)
			return -1;
		*pos += 4;
		return 0;
	case WT_LEN:
		if (read_varint(p, len, pos, &v) < 0 || v > len - *pos)
			return -1;
		*pos += (size_t)v;
		return 0;
	default:
		return -1; /* groups (3, 4) are not proto3; 6 and 7 do not exist */
	}
}

/* One varint value of field f: a 32-bit type must hold a 32-bit value (else
 * protobuf-c would silently cut it), an enum a value it declares. */
static int wire_varint_value(struct wire *w, const ProtobufCFieldDescriptor *f, uint64_t v)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_UINT32:
		if (v > UINT32_MAX)
			return vfail(&w->v, -EINVAL, "%llu is more than 32 bits", (unsigned long long)v);
		return 0;
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_ENUM:
		/* Negative int32 values are sign-extended to 64 bits on the wire. */
		if (v > INT32_MAX && v < UINT64_C(0xffffffff80000000))
			return vfail(&w->v, -EINVAL, "%llu is not a 32-bit value", (unsigned long long)v);
		if (f->type == PROTOBUF_C_TYPE_ENUM &&
		    !protobuf_c_enum_descriptor_get_value(f->descriptor, (int)(int32_t)(uint32_t)v))
			return vfail(&w->v, -EINVAL, "%d is not a known %s value", (int)(int32_t)(uint32_t)v,
				     ((const ProtobufCEnumDescriptor *)f->descriptor)->short_name);
		return 0;
	default:
		return 0;
	}
}

static int wire_message(struct wire *w, const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len,
			unsigned depth);

/* Which bodies each role accepts, and the most bytes of each (0: no own
 * limit beyond the receive limit). */
static uint32_t body_max(enum hf_msg_role role, uint32_t field)
{
	switch (role) {
	case HF_MSG_WORKER_REQUEST:
		switch (field) {
		case HF__ENVELOPE__BODY_REGISTER:
			return HF_MAX_REGISTER_BYTES;
		case HF__ENVELOPE__BODY_POLL:
			return HF_MAX_POLL_BYTES;
		case HF__ENVELOPE__BODY_RESULTS:
			return HF_MAX_RESULTS_BYTES;
		case HF__ENVELOPE__BODY_HEALTH_REPORT:
			return HF_MAX_HEALTH_REPORT_BYTES;
		default:
			return 0;
		}
	case HF_MSG_CONTROL_REQUEST:
		/* The control requests are the even fields 20..58. */
		return field >= HF__ENVELOPE__BODY_SUBMIT && field <= HF__ENVELOPE__BODY_REPORT &&
				       field % 2 == 0 ?
			       HF_MAX_CONTROL_REQUEST_BYTES :
			       0;
	case HF_MSG_WORKER_REPLY:
		switch (field) {
		case HF__ENVELOPE__BODY_REGISTER_REPLY:
		case HF__ENVELOPE__BODY_POLL_REPLY:
		case HF__ENVELOPE__BODY_ACK:
		case HF__ENVELOPE__BODY_ERROR:
			return UINT32_MAX;
		default:
			return 0;
		}
	case HF_MSG_CONTROL_REPLY:
		return field == HF__ENVELOPE__BODY_ERROR ||
				       (field >= HF__ENVELOPE__BODY_SUBMIT_REPLY &&
					field <= HF__ENVELOPE__BODY_REPORT_REPLY && field % 2 == 1) ?
			       UINT32_MAX :
			       0;
	}
	return 0;
}

static const char *role_what(enum hf_msg_role role)
{
	switch (role) {
	case HF_MSG_WORKER_REQUEST:
		return "a worker request";
	case HF_MSG_CONTROL_REQUEST:
		return "a control request";
	case HF_MSG_WORKER_REPLY:
		return "a reply to a worker";
	default:
		return "a reply to hfctl";
	}
}

/* Is a body the role does not take one that the other port takes? */
static bool wrong_port(const struct wire *w, uint32_t field)
{
	return (w->role == HF_MSG_WORKER_REQUEST && body_max(HF_MSG_CONTROL_REQUEST, field) != 0) ||
	       (w->role == HF_MSG_CONTROL_REQUEST && body_max(HF_MSG_WORKER_REQUEST, field) != 0);
}

/* The message says which port this is and which setting names the other,
 * without the field path: the peer is at the wrong address, not sending a
 * wrong field. */
static int wrong_port_fail(struct wire *w, const char *body)
{
	if (w->v.err && w->v.errlen) {
		if (w->role == HF_MSG_WORKER_REQUEST)
			snprintf(w->v.err, w->v.errlen,
				 "this is the coordinator's worker port (a %s request is hfctl's); hfctl "
				 "talks to the control port (coordinator.control_listen)",
				 body);
		else
			snprintf(w->v.err, w->v.errlen,
				 "this is the coordinator's control port (a %s request is hf-worker's); "
				 "hf-worker talks to the worker port (coordinator.worker_listen)",
				 body);
	}
	return -EPROTOTYPE;
}

/* A length-delimited field f of msg at p[0..n), the idx-th of its kind. */
static int wire_len_field(struct wire *w, const ProtobufCMessageDescriptor *desc,
			  const ProtobufCFieldDescriptor *f, const uint8_t *p, size_t n, uint32_t count_max,
			  uint32_t len_max, uint32_t *count, unsigned depth)
{
	int r = 0;

	if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES) {
		(*count)++;
		if (n > len_max)
			return vfail(&w->v, -EINVAL, "%zu bytes, at most %u", n, len_max);
		if (f->type == PROTOBUF_C_TYPE_STRING && !hf_utf8_valid((const char *)p, n))
			return vfail(&w->v, -EINVAL, "not valid UTF-8 text (or it holds a NUL)");
		return 0;
	}
	if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
		(*count)++;
		if (depth + 1 > HF_MAX_NESTING)
			return vfail(&w->v, -EINVAL, "nested more than %d deep", HF_MAX_NESTING);
		if (desc == &hf__envelope__descriptor) {
			/* The body: the path starts inside it. */
			size_t old = w->v.path_len;
			vpath_pop(&w->v, 0);
			r = wire_message(w, f->descriptor, p, n, depth + 1);
			if (r == 0)
				vpath_pop(&w->v, old);
			return r;
		}
		return wire_message(w, f->descriptor, p, n, depth + 1);
	}
	/* A packed repeated scalar: count and check each value. */
	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return vfail(&w->v, -EBADMSG, "a packed list in a field that is not repeated");
	int wt = wire_type_of(f->type);
	size_t pos = 0;
	while (pos < n) {
		uint64_t v = 0;
		if (++(*count) > count_max)
			return vfail(&w->v, -EINVAL, "more than %u entries", count_max);
		if (wt == WT_VARINT) {
			if (read_varint(p, n, &pos, &v) < 0)
				return vfail(&w->v, -EBADMSG, "truncated packed list");
			r = wire_varint_value(w, f, v);
			if (r < 0)
				return r;
		} else if (wire_skip(p, n, &pos, (unsigned)wt) < 0) {
			return vfail(&w->v, -EBADMSG, "truncated packed list");
		}
	}
	return 0;
}

static int wire_message(struct wire *w, const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len,
			unsigned depth)
{
	uint32_t counts[WIRE_MAX_FIELDS] = { 0 }, count_max[WIRE_MAX_FIELDS], len_max[WIRE_MAX_FIELDS];
	unsigned n_unknown = 0, n_body = 0;
	size_t pos = 0;

	if (desc->n_fields > WIRE_MAX_FIELDS)
		return vfail(&w->v, -EBADMSG, "message type %s has too many fields to check", desc->name);
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
		/* Without a rule: strings of replies to hfctl are bounded only by the
		 * message; in strict mode a string or list without a rule is refused
		 * (the unit test makes sure none lacks one). */
		count_max[i] = repeated ? (w->strict ? 0 : UINT32_MAX) : 1;
		len_max[i] = w->strict ? 0 : UINT32_MAX;
	}
	/* The message's rules, looked up once (not once per field: this runs
	 * for every message a port receives). */
	const struct msg_rules *mr = w->strict ? rules_for(desc) : NULL;
	for (size_t k = 0; mr && k < RULES_MAX && mr->f[k].name; k++) {
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, mr->f[k].name);
		if (!f)
			continue;
		unsigned i = (unsigned)(f - desc->fields);
		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			count_max[i] = mr->f[k].count;
		len_max[i] = mr->f[k].len;
	}

	while (pos < len) {
		uint64_t key, v;
		if (read_varint(p, len, &pos, &key) < 0)
			return vfail(&w->v, -EBADMSG, "truncated field key");
		uint64_t num = key >> 3;
		unsigned wt = (unsigned)(key & 7);
		if (num == 0 || num > 0x1fffffff)
			return vfail(&w->v, -EBADMSG, "field number %llu is invalid", (unsigned long long)num);
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, (unsigned)num);
		if (!f) {
			/* A field of a newer revision: skipped, never kept. */
			if (++n_unknown > HF_MAX_UNKNOWN_FIELDS || ++w->n_unknown > 4 * HF_MAX_UNKNOWN_FIELDS)
				return vfail(&w->v, -EINVAL, "more than %d unknown fields", HF_MAX_UNKNOWN_FIELDS);
			if (wire_skip(p, len, &pos, wt) < 0)
				return vfail(&w->v, -EBADMSG, "truncated unknown field %llu", (unsigned long long)num);
			continue;
		}
		unsigned idx = (unsigned)(f - desc->fields);
		bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
		int expect = wire_type_of(f->type), r = 0;
		bool packed = wt == WT_LEN && expect != WT_LEN;
		size_t old = vpath_push(&w->v, f->name, repeated && !packed ? (long)counts[idx] : -1);

		if (desc == &hf__envelope__descriptor && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
			if (body_max(w->role, f->id) == 0 && wrong_port(w, f->id))
				return wrong_port_fail(w, f->name);
			if (body_max(w->role, f->id) == 0)
				return vfail(&w->v, -EINVAL, "a %s message is not %s", f->name, role_what(w->role));
			if (++n_body > 1)
				return vfail(&w->v, -EINVAL, "a second body in one envelope");
		}
		if (wt == WT_LEN && expect != WT_LEN && !repeated)
			return vfail(&w->v, -EBADMSG, "wire type %u does not fit the field", wt);
		if (wt != WT_LEN && (int)wt != expect)
			return vfail(&w->v, -EBADMSG, "wire type %u does not fit the field", wt);
		if (!repeated && counts[idx] >= 1)
			return vfail(&w->v, -EINVAL, "given more than once");
		if (repeated && counts[idx] >= count_max[idx])
			return vfail(&w->v, -EINVAL, "more than %u entries", count_max[idx]);

		if (wt == WT_LEN) {
			if (read_varint(p, len, &pos, &v) < 0 || v > len - pos)
				return vfail(&w->v, -EBADMSG, "length beyond the end of the message");
			if (desc == &hf__envelope__descriptor && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    v > body_max(w->role, f->id))
				return vfail(&w->v, -EINVAL, "a %s message of %llu bytes, at most %u", f->name,
					     (unsigned long long)v, body_max(w->role, f->id));
			r = wire_len_field(w, desc, f, p + pos, (size_t)v, count_max[idx], len_max[idx],
					   &counts[idx], depth);
			pos += (size_t)v;
		} else if (wt == WT_VARINT) {
			if (read_varint(p, len, &pos, &v) < 0)
				return vfail(&w->v, -EBADMSG, "truncated value");
			counts[idx]++;
			r = wire_varint_value(w, f, v);
		} else {
			if (wire_skip(p, len, &pos, wt) < 0)
				return vfail(&w->v, -EBADMSG, "truncated value");
			counts[idx]++;
		}
		if (r < 0)
			return r;
		vpath_pop(&w->v, old);
	}
	return 0;
}

/* ---- unknown fields ---- */

/* Frees the unknown fields protobuf-c kept, in m and every message in it.
 * protobuf-c allocated them with its default allocator (malloc). */
static void strip_unknown(ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char *base = (char *)m;

	for (size_t i = 0; i < m->n_unknown_fields; i++)
		free(m->unknown_fields[i].data);
	free(m->unknown_fields);
	m->unknown_fields = NULL;
	m->n_unknown_fields = 0;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(size_t *)(base + f->quantifier_offset);
			ProtobufCMessage **v = *(ProtobufCMessage ***)(base + f->offset);
			for (size_t k = 0; v && k < n; k++)
				if (v[k])
					strip_unknown(v[k]);
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		ProtobufCMessage *sub = *(ProtobufCMessage **)(base + f->offset);
		if (sub)
			strip_unknown(sub);
	}
}

/* ---- decoding ---- */

int hf_msg_decode(const void *buf, size_t len, enum hf_msg_role role, Hf__Envelope **ret_env, char *err,
		  size_t errlen)
{
	struct wire w = {
		.v = { .err = err, .errlen = errlen },
		.role = role,
		.strict = role != HF_MSG_CONTROL_REPLY,
	};
	Hf__Envelope *env;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!buf && len > 0)
		return vfail(&w.v, -EBADMSG, "no message");
	r = wire_message(&w, &hf__envelope__descriptor, buf, len, 0);
	if (r < 0)
		return r;
	env = hf__envelope__unpack(NULL, len, buf);
	if (!env)
		return vfail(&w.v, -EBADMSG, "not a decodable message");
	if (env->body_case == HF__ENVELOPE__BODY__NOT_SET || env->protocol_version == 0) {
		r = vfail(&w.v, -EBADMSG, env->protocol_version ? "no message body" : "no protocol version");
		goto fail;
	}
	if ((role == HF_MSG_WORKER_REQUEST || role == HF_MSG_CONTROL_REQUEST) &&
	    (env->protocol_version < HF_PROTOCOL_MIN || env->protocol_version > HF_PROTOCOL_MAX)) {
		r = vfail(&w.v, -EPROTONOSUPPORT,
			  "protocol version %u is not accepted: this coordinator accepts versions %d to %d%s",
			  env->protocol_version, HF_PROTOCOL_MIN, HF_PROTOCOL_MAX,
			  env->protocol_version < HF_PROTOCOL_MIN ?
				  "; upgrade hf-worker or hfctl to a release that speaks it (protocol 2 "
				  "authenticates every request with a token)" :
				  "");
		goto fail;
	}
	strip_unknown(&env->base);
	r = hf_msg_validate(env, role, err, errlen);
	if (r < 0)
		goto fail;
	*ret_env = env;
	return 0;

fail:
	hf__envelope__free_unpacked(env, NULL);
	return r;
}
