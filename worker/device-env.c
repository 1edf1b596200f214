/* SPDX-License-Identifier: MIT
 *
 * Device-visibility variables for a runner (see device-env.h).
 */
#include "device-env.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_util.h"
#include "hf_validate.h"

static const char *const our_names[] = {
	"HFLEET_DEVICE_INDEX",  "HFLEET_DEVICE_INDICES", "HFLEET_DEVICE_NAME",
	"HFLEET_DEVICE_UUID",   "HFLEET_OPENVINO_DEVICE", "HFLEET_QNN_DEVICE",
	"HFLEET_QNN_BACKEND",   "CUDA_VISIBLE_DEVICES",  "CUDA_DEVICE_ORDER",
	"HIP_VISIBLE_DEVICES",  "ROCR_VISIBLE_DEVICES",  "GPU_DEVICE_ORDINAL",
	"ZE_AFFINITY_MASK",     "ZE_ENABLE_PCI_ID_DEVICE_ORDER",
};

bool devenv_is_ours(const char *entry)
{
	for (size_t i = 0; i < sizeof(our_names) / sizeof(our_names[0]); i++) {
		size_t n = strlen(our_names[i]);
		if (strncmp(entry, our_names[i], n) == 0 && entry[n] == '=')
			return true;
	}
	return false;
}

const struct devenv_fixed devenv_multicast_vars[] = {
	{ "NCCL_NVLS_ENABLE", "0" },
	{ "TORCH_SYMM_MEM_DISABLE_MULTICAST", "1" },
	{ "NVSHMEM_DISABLE_NVLS", "1" },
};
const size_t devenv_n_multicast_vars = sizeof(devenv_multicast_vars) / sizeof(devenv_multicast_vars[0]);

int devenv_multicast_off(char *changed, size_t len)
{
	size_t used = 0;

	if (len > 0)
		changed[0] = '\0';
	for (size_t i = 0; i < devenv_n_multicast_vars; i++) {
		const struct devenv_fixed *v = &devenv_multicast_vars[i];
		const char *old = getenv(v->name);
		if (old && strcmp(old, v->value) != 0 && used < len) {
			int n = snprintf(changed + used, len - used, "%s%s=%s", used ? ", " : "", v->name,
					 old);
			used = n < 0 ? len : used + (size_t)n;
		}
		if (setenv(v->name, v->value, 1) < 0)
			return -errno;
	}
	if (len > 0)
		hf_utf8_sanitize(changed);
	return 0;
}

void devenv_fini(struct devenv *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->vars[i]);
	e->n = 0;
	e->vars[0] = NULL;
}

const char *devenv_get(const struct devenv *e, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->vars[i], name, n) == 0 && e->vars[i][n] == '=')
			return e->vars[i] + n + 1;
	return NULL;
}

static int env_add(struct devenv *e, const char *name, const char *value)
{
	if (e->n >= DEVENV_MAX)
		return -ENOSPC; /* a bug: DEVENV_MAX covers every backend */
	if (asprintf(&e->vars[e->n], "%s=%s", name, value) < 0) {
		e->vars[e->n] = NULL;
		return -ENOMEM;
	}
	e->vars[++e->n] = NULL;
	return 0;
}

static void list_add(struct hf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void list_add(struct hf_buf *b, const char *fmt, ...)
{
	char item[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(item, sizeof(item), fmt, ap);
	va_end(ap);
	if (b->len)
		hf_buf_puts(b, ",");
	hf_buf_puts(b, item);
}

static int uint_cmp(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

/* The OpenVINO name of a device: its ov_device attribute, else its name. */
static const char *ov_name(const struct hw_device *d)
{
	const char *v = hw_device_attr(d, "ov_device");

	return v ? v : d->name;
}

static bool is_gpu(const char *ov)
{
	return strncmp(ov, "GPU", 3) == 0 && (ov[3] == '\0' || ov[3] == '.');
}

/* ZE_AFFINITY_MASK and HFLEET_OPENVINO_DEVICE. */
static void openvino_vars(const struct hw_device *const *devs, size_t n, struct hf_buf *mask,
			  struct hf_buf *names)
{
	unsigned ze[DEVENV_MAX_DEVICES], n_ze = 0;
	bool isolate = true;
	size_t gpus = 0;

	for (size_t i = 0; i < n; i++) {
		if (!devs || !devs[i] || !is_gpu(ov_name(devs[i])))
			continue;
		gpus++;
		if (devs[i]->visible_index < 0 || n_ze >= DEVENV_MAX_DEVICES)
			isolate = false;
		else
			ze[n_ze++] = (unsigned)devs[i]->visible_index;
	}
	isolate = isolate && gpus > 0;
	if (isolate) {
		qsort(ze, n_ze, sizeof(ze[0]), uint_cmp);
		for (unsigned i = 0; i < n_ze; i++)
			list_add(mask, "%u", ze[i]);
	}
	for (size_t i = 0; i < n; i++) {
		const struct hw_device *d = devs ? devs[i] : NULL;
		if (!d)
			continue;
		if (isolate && is_gpu(ov_name(d))) {
			unsigned rank = 0;
			while (rank < n_ze && ze[rank] != (unsigned)d->visible_index)
				rank++;
			list_add(names, "GPU.%u", rank);
		} else {
			list_add(names, "%s", ov_name(d));
		}
	}
}

/* Whether devs[i]'s UUID is one of devs[0 .. i-1]'s. */
static bool uuid_listed_before(const struct hw_device *const *devs, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (devs[k] && strcmp(devs[k]->uuid, devs[i]->uuid) == 0)
			return true;
	return false;
}

int devenv_build(Hf__Backend backend, const uint32_t *indices, const struct hw_device *const *devs,
		 size_t n, struct devenv *e)
{
	struct hf_buf idx, uuid, vis, hip, names;
	unsigned rocr[DEVENV_MAX_DEVICES], n_rocr = 0;
	bool all_uuid = n > 0;
	int r = 0;

	memset(e, 0, sizeof(*e));
	if (n > DEVENV_MAX_DEVICES)
		return -EINVAL;
	hf_buf_init(&idx);
	hf_buf_init(&uuid);
	hf_buf_init(&vis);
	hf_buf_init(&hip);
	hf_buf_init(&names);
	for (size_t i = 0; i < n; i++) {
		const struct hw_device *d = devs ? devs[i] : NULL;
		list_add(&idx, "%" PRIu32, indices[i]);
		if (d && d->uuid[0])
			list_add(&uuid, "%s", d->uuid);
		else
			all_uuid = false;
	}
#define ADD(name, value)                        \
	do {                                    \
		r = env_add(e, (name), (value)); \
		if (r < 0)                      \
			goto out;               \
	} while (0)

	if (n > 0) {
		char first[16];
		snprintf(first, sizeof(first), "%" PRIu32, indices[0]);
		ADD("HFLEET_DEVICE_INDEX", first);
		ADD("HFLEET_DEVICE_INDICES", idx.data ? idx.data : "");
		if (devs && devs[0] && devs[0]->name[0])
			ADD("HFLEET_DEVICE_NAME", devs[0]->name);
		if (all_uuid && uuid.data)
			ADD("HFLEET_DEVICE_UUID", uuid.data);
	}

	switch (backend) {
	case HF__BACKEND__BACKEND_CPU:
		ADD("CUDA_VISIBLE_DEVICES", "");
		ADD("HIP_VISIBLE_DEVICES", "");
		break;
	case HF__BACKEND__BACKEND_CUDA:
		for (size_t i = 0; i < n; i++) {
			const struct hw_device *d = devs ? devs[i] : NULL;
			/* Each GPU once: devices declared on one GPU's UUID
			 * (devices.declare) are one GPU to CUDA, and a list that
			 * names one twice makes CUDA see none at all. */
			if (d && d->uuid[0] && uuid_listed_before(devs, i))
				continue;
			if (d && d->uuid[0])
				list_add(&vis, "%s", d->uuid);
			else
				list_add(&vis, "%" PRIu32, indices[i]);
		}
		ADD("CUDA_VISIBLE_DEVICES", vis.data ? vis.data : "");
		ADD("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
		break;
	case HF__BACKEND__BACKEND_ROCM:
		for (size_t i = 0; i < n && n_rocr < DEVENV_MAX_DEVICES; i++) {
			const struct hw_device *d = devs ? devs[i] : NULL;
			rocr[n_rocr++] = d && d->visible_index >= 0 ? (unsigned)d->visible_index
								    : indices[i];
		}
		qsort(rocr, n_rocr, sizeof(rocr[0]), uint_cmp);
		for (unsigned i = 0; i < n_rocr; i++) {
			list_add(&vis, "%u", rocr[i]);
			list_add(&hip, "%u", i);
		}
		ADD("ROCR_VISIBLE_DEVICES", vis.data ? vis.data : "");
		ADD("HIP_VISIBLE_DEVICES", hip.data ? hip.data : "");
		break;
	case HF__BACKEND__BACKEND_OPENVINO:
		openvino_vars(devs, n, &vis, &names);
		if (vis.data)
			ADD("ZE_AFFINITY_MASK", vis.data);
		if (names.data)
			ADD("HFLEET_OPENVINO_DEVICE", names.data);
		break;
	case HF__BACKEND__BACKEND_QNN:
		ADD("HFLEET_QNN_DEVICE", idx.data ? idx.data : "");
		if (n > 0 && devs && devs[0] && devs[0]->library[0])
			ADD("HFLEET_QNN_BACKEND", devs[0]->library);
		break;
	default:
		break;
	}
#undef ADD
	if (idx.oom || uuid.oom || vis.oom || hip.oom || names.oom)
		r = -ENOMEM;
out:
	hf_buf_fini(&idx);
	hf_buf_fini(&uuid);
	hf_buf_fini(&vis);
	hf_buf_fini(&hip);
	hf_buf_fini(&names);
	return r;
}
