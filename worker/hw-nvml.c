/* SPDX-License-Identifier: MIT
 *
 * NVIDIA GPUs through NVML loaded with dlopen (see hw-nvml.h).  NVML errors
 * are turned into words here, and only here, with nvmlErrorString.
 */
#include "hw-nvml.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"
#include "hf_util.h"
#include "hw-util.h"

/* ---- the part of NVML's C ABI used here (nvml.h, stable since R450) ---- */

typedef int nvmlReturn_t; /* an enum in nvml.h: int-sized */
typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct {
	unsigned long long total;
	unsigned long long free;
	unsigned long long used;
} nvmlMemory_t;

typedef struct {
	unsigned int gpu;
	unsigned int memory;
} nvmlUtilization_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_FOUND 6
#define NVML_TEMPERATURE_GPU 0
#define NVML_DEVICE_MIG_ENABLE 1
#define NVML_NAME_BUFFER 96          /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */
#define NVML_UUID_BUFFER 96          /* NVML_DEVICE_UUID_V2_BUFFER_SIZE */
#define NVML_DRIVER_BUFFER 80        /* NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE */
#define NVML_P2P_CAPS_INDEX_NVLINK 2 /* nvmlGpuP2PCapsIndex_t */
#define NVML_P2P_STATUS_OK 0         /* nvmlGpuP2PStatus_t */

struct nvml_api {
	nvmlReturn_t (*init)(void);
	nvmlReturn_t (*shutdown)(void);
	const char *(*error_string)(nvmlReturn_t);
	nvmlReturn_t (*driver_version)(char *, unsigned int);
	nvmlReturn_t (*cuda_driver_version)(int *);
	nvmlReturn_t (*count)(unsigned int *);
	nvmlReturn_t (*handle_by_index)(unsigned int, nvmlDevice_t *);
	nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t *);
	nvmlReturn_t (*compute_capability)(nvmlDevice_t, int *, int *);
	/* Optional: absent in old drivers, or not needed to offer a device. */
	nvmlReturn_t (*mig_mode)(nvmlDevice_t, unsigned int *, unsigned int *);
	nvmlReturn_t (*mig_max)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*mig_handle)(nvmlDevice_t, unsigned int, nvmlDevice_t *);
	nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t *);
	nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int *);
	nvmlReturn_t (*power)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*p2p_status)(nvmlDevice_t, nvmlDevice_t, int, int *);
};

/* One offered device: our index, its handle and, for a MIG instance, the
 * GPU it is part of. */
struct nvml_dev {
	unsigned index;
	nvmlDevice_t handle;
	nvmlDevice_t parent; /* NULL: a whole GPU */
};

struct hw_nvml {
	void *lib;
	struct nvml_api api;
	bool initialised;
	struct nvml_dev devs[HW_MAX_DEVICES];
	size_t n_devs;
};

static const char *nvml_error(const struct hw_nvml *n, nvmlReturn_t rc)
{
	const char *s = n->api.error_string ? n->api.error_string(rc) : NULL;

	return s && *s ? s : "unknown NVML error";
}

/* Resolves the symbols; the first required one missing is named in
 * reason. */
static int nvml_bind(struct hw_nvml *n, const char *library, char *reason, size_t len)
{
	struct {
		const char *name, *fallback;
		void **slot;
		bool required;
	} syms[] = {
		{ "nvmlInit_v2", NULL, (void **)&n->api.init, true },
		{ "nvmlShutdown", NULL, (void **)&n->api.shutdown, true },
		{ "nvmlErrorString", NULL, (void **)&n->api.error_string, true },
		{ "nvmlSystemGetDriverVersion", NULL, (void **)&n->api.driver_version, true },
		{ "nvmlDeviceGetCount_v2", NULL, (void **)&n->api.count, true },
		{ "nvmlDeviceGetHandleByIndex_v2", NULL, (void **)&n->api.handle_by_index, true },
		{ "nvmlDeviceGetName", NULL, (void **)&n->api.name, true },
		{ "nvmlDeviceGetUUID", NULL, (void **)&n->api.uuid, true },
		{ "nvmlDeviceGetMemoryInfo", NULL, (void **)&n->api.memory, true },
		{ "nvmlDeviceGetCudaComputeCapability", NULL, (void **)&n->api.compute_capability, true },
		{ "nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion",
		  (void **)&n->api.cuda_driver_version, false },
		{ "nvmlDeviceGetMigMode", NULL, (void **)&n->api.mig_mode, false },
		{ "nvmlDeviceGetMaxMigDeviceCount", NULL, (void **)&n->api.mig_max, false },
		{ "nvmlDeviceGetMigDeviceHandleByIndex", NULL, (void **)&n->api.mig_handle, false },
		{ "nvmlDeviceGetUtilizationRates", NULL, (void **)&n->api.utilization, false },
		{ "nvmlDeviceGetTemperature", NULL, (void **)&n->api.temperature, false },
		{ "nvmlDeviceGetPowerUsage", NULL, (void **)&n->api.power, false },
		{ "nvmlDeviceGetP2PStatus", NULL, (void **)&n->api.p2p_status, false },
	};

	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		*syms[i].slot = hw_lib_sym(n->lib, syms[i].name);
		if (!*syms[i].slot && syms[i].fallback)
			*syms[i].slot = hw_lib_sym(n->lib, syms[i].fallback);
		if (!*syms[i].slot && syms[i].required) {
			snprintf(reason, len, "library \"%s\" does not export %s (not NVML, or too old)",
				 library, syms[i].name);
			return -ELIBBAD;
		}
	}
	return 0;
}

/* "12.8" from 12080. */
static void cuda_version_format(int v, char *buf, size_t len)
{
	snprintf(buf, len, "%d.%d", v / 1000, (v % 1000) / 10);
}

static struct nvml_dev *nvml_dev_find(struct hw_nvml *n, unsigned index)
{
	for (size_t i = 0; i < n->n_devs; i++)
		if (n->devs[i].index == index)
			return &n->devs[i];
	return NULL;
}

/* The fields every offered device has, from its own handle.  Returns 0, or
 * a negative errno with why in reason (the device is then not offered). */
static int nvml_device_fill(struct hw_nvml *n, nvmlDevice_t h, struct hw_device *d, char *reason,
			    size_t len)
{
	char name[NVML_NAME_BUFFER] = "", uuid[NVML_UUID_BUFFER] = "";
	nvmlMemory_t mem;
	nvmlReturn_t rc;

	/* Without its UUID a device cannot be given to a child reliably. */
	rc = n->api.uuid(h, uuid, sizeof(uuid));
	if (rc != NVML_SUCCESS || !uuid[0]) {
		snprintf(reason, len, "nvmlDeviceGetUUID failed: %s",
			 rc != NVML_SUCCESS ? nvml_error(n, rc) : "empty UUID");
		return -EIO;
	}
	hf_strlcpy(d->uuid, uuid, sizeof(d->uuid));
	rc = n->api.name(h, name, sizeof(name));
	hf_strlcpy(d->name, rc == NVML_SUCCESS && name[0] ? name : "NVIDIA GPU", sizeof(d->name));
	rc = n->api.memory(h, &mem);
	if (rc == NVML_SUCCESS)
		d->memory_bytes = mem.total;
	else
		log_warn("could not read the memory size of NVIDIA device %s: %s, ignoring", uuid,
			 nvml_error(n, rc));
	return 0;
}

/* Compute capability and versions, shared by a GPU and its MIG instances. */
struct gpu_common {
	char cc[16], arch[16];
	char driver[NVML_DRIVER_BUFFER];
	char cuda[16];
};

static void nvml_device_common(struct hw_device *d, const struct gpu_common *c)
{
	hf_strlcpy(d->driver, c->driver, sizeof(d->driver));
	hf_strlcpy(d->arch, c->arch, sizeof(d->arch));
	if (c->cc[0])
		hw_device_attr_set(d, "compute_capability", c->cc);
	if (c->cuda[0])
		hw_device_attr_set(d, "cuda_driver", c->cuda);
}

static bool nvml_dev_remember(struct hw_nvml *n, unsigned index, nvmlDevice_t h, nvmlDevice_t parent)
{
	if (n->n_devs >= HW_MAX_DEVICES)
		return false;
	n->devs[n->n_devs++] = (struct nvml_dev){ index, h, parent };
	return true;
}

/* The MIG instances of GPU gpu_index as devices numbered from *next.
 * Returns how many were offered. */
static unsigned nvml_mig_add(struct hw_nvml *n, struct hw_inventory *inv, nvmlDevice_t gpu,
			     unsigned gpu_index, const char *gpu_uuid, const struct gpu_common *c,
			     unsigned *next)
{
	unsigned max = 0, offered = 0;
	char idx[16], reason[256];
	nvmlReturn_t rc;

	rc = n->api.mig_max(gpu, &max);
	if (rc != NVML_SUCCESS) {
		log_warn("could not count the MIG instances of NVIDIA GPU %u: %s", gpu_index,
			 nvml_error(n, rc));
		return 0;
	}
	snprintf(idx, sizeof(idx), "%u", gpu_index);
	for (unsigned j = 0; j < max; j++) {
		nvmlDevice_t mig;
		struct hw_device *d;

		rc = n->api.mig_handle(gpu, j, &mig);
		if (rc == NVML_ERROR_NOT_FOUND)
			continue; /* no instance in this slot */
		if (rc != NVML_SUCCESS) {
			log_warn("could not open MIG instance %u of NVIDIA GPU %u: %s, ignoring it", j,
				 gpu_index, nvml_error(n, rc));
			continue;
		}
		d = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_CUDA, *next);
		if (!d)
			break;
		if (nvml_device_fill(n, mig, d, reason, sizeof(reason)) < 0) {
			log_warn("could not read MIG instance %u of NVIDIA GPU %u: %s, ignoring it", j,
				 gpu_index, reason);
			inv->n_devices--;
			continue;
		}
		nvml_device_common(d, c);
		hw_device_attr_set(d, "mig", "enabled");
		hw_device_attr_set(d, "gpu_index", idx);
		hw_device_attr_set(d, "gpu_uuid", gpu_uuid);
		if (!nvml_dev_remember(n, *next, mig, gpu)) {
			inv->n_devices--;
			break;
		}
		(*next)++;
		offered++;
	}
	return offered;
}

static void nvml_gpus_add(struct hw_nvml *n, struct hw_inventory *inv, unsigned count,
			  struct gpu_common *c)
{
	unsigned next_mig = count; /* MIG instances are numbered after the GPUs */
	char reason[256];

	for (unsigned i = 0; i < count; i++) {
		unsigned current = 0, pending = 0;
		bool mig_known = false;
		int major = 0, minor = 0;
		nvmlDevice_t h;
		nvmlReturn_t rc;
		struct hw_device *d;

		rc = n->api.handle_by_index(i, &h);
		if (rc != NVML_SUCCESS) {
			log_warn("could not open NVIDIA GPU %u: %s, ignoring it", i, nvml_error(n, rc));
			continue;
		}
		rc = n->api.compute_capability(h, &major, &minor);
		if (rc == NVML_SUCCESS) {
			snprintf(c->cc, sizeof(c->cc), "%d.%d", major, minor);
			snprintf(c->arch, sizeof(c->arch), "sm_%d%d", major, minor);
		} else {
			c->cc[0] = c->arch[0] = '\0';
		}
		if (n->api.mig_mode && n->api.mig_mode(h, &current, &pending) == NVML_SUCCESS)
			mig_known = true;

		if (mig_known && current == NVML_DEVICE_MIG_ENABLE) {
			char uuid[NVML_UUID_BUFFER] = "";
			n->api.uuid(h, uuid, sizeof(uuid));
			if (!n->api.mig_max || !n->api.mig_handle) {
				log_warn("NVIDIA GPU %u has MIG enabled, but library does not list MIG "
					 "instances: it offers no device",
					 i);
				continue;
			}
			if (nvml_mig_add(n, inv, h, i, uuid, c, &next_mig) == 0)
				log_warn("NVIDIA GPU %u has MIG enabled but no MIG instance: it offers "
					 "no device",
					 i);
			continue;
		}

		d = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_CUDA, i);
		if (!d)
			break;
		if (nvml_device_fill(n, h, d, reason, sizeof(reason)) < 0) {
			log_warn("could not read NVIDIA GPU %u: %s, ignoring it", i, reason);
			inv->n_devices--;
			continue;
		}
		nvml_device_common(d, c);
		if (mig_known)
			hw_device_attr_set(d, "mig", "disabled");
		if (mig_known && pending != current)
			log_info("NVIDIA GPU %u: a MIG mode change is pending (takes effect after a "
				 "GPU reset)",
				 i);
		if (!nvml_dev_remember(n, i, h, NULL)) {
			inv->n_devices--;
			break;
		}
	}
}

/* The attribute nvlink_peers of each whole GPU: the indices of the other
 * whole GPUs NVML says it reaches over NVLink (directly or through
 * NVSwitch), "none" when it reaches none; not set where NVML cannot say
 * (no nvmlDeviceGetP2PStatus, or every query refused). */
static void nvml_nvlink_peers(struct hw_nvml *n, struct hw_inventory *inv)
{
	if (!n->api.p2p_status)
		return;
	for (size_t i = 0; i < n->n_devs; i++) {
		const struct nvml_dev *a = &n->devs[i];
		char peers[96] = "";
		size_t len = 0;
		bool answered = false;

		if (a->parent)
			continue;
		for (size_t j = 0; j < n->n_devs; j++) {
			const struct nvml_dev *b = &n->devs[j];
			int status = -1;

			if (j == i || b->parent ||
			    n->api.p2p_status(a->handle, b->handle, NVML_P2P_CAPS_INDEX_NVLINK, &status) !=
				    NVML_SUCCESS)
				continue;
			answered = true;
			if (status == NVML_P2P_STATUS_OK && len + 12 < sizeof(peers))
				len += (size_t)snprintf(peers + len, sizeof(peers) - len, "%s%u",
							len ? "," : "", b->index);
		}
		for (size_t k = 0; answered && k < inv->n_devices; k++)
			if (inv->devices[k].backend == HF__BACKEND__BACKEND_CUDA &&
			    inv->devices[k].index == a->index)
				hw_device_attr_set(&inv->devices[k], "nvlink_peers", len ? peers : "none");
	}
}

int hw_nvml_probe(const char *library, struct hw_inventory *inv, struct hw_backend_status *st,
		  struct hw_nvml **ret_nvml)
{
	struct gpu_common common;
	struct hw_nvml *n;
	unsigned count = 0;
	size_t before = inv->n_devices;
	nvmlReturn_t rc;
	int cuda = 0;

	*ret_nvml = NULL;
	memset(&common, 0, sizeof(common));
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	if (hw_lib_open(library, false, &n->lib, st->reason, sizeof(st->reason)) < 0)
		goto absent;
	if (nvml_bind(n, library, st->reason, sizeof(st->reason)) < 0)
		goto absent;
	hw_lib_path((void *)n->api.init, library, st->library, sizeof(st->library));

	rc = n->api.init();
	if (rc != NVML_SUCCESS) {
		hw_status_absent(st, "nvmlInit failed: %s", nvml_error(n, rc));
		goto absent;
	}
	n->initialised = true;
	rc = n->api.driver_version(common.driver, sizeof(common.driver));
	if (rc != NVML_SUCCESS) {
		log_warn("could not read the NVIDIA driver version: %s, ignoring", nvml_error(n, rc));
		common.driver[0] = '\0';
	}
	if (n->api.cuda_driver_version && n->api.cuda_driver_version(&cuda) == NVML_SUCCESS && cuda > 0)
		cuda_version_format(cuda, common.cuda, sizeof(common.cuda));
	rc = n->api.count(&count);
	if (rc != NVML_SUCCESS) {
		hw_status_absent(st, "nvmlDeviceGetCount failed: %s", nvml_error(n, rc));
		goto absent;
	}
	if (count == 0) {
		hw_status_absent(st, "NVML found no NVIDIA GPU");
		goto absent;
	}
	nvml_gpus_add(n, inv, count, &common);
	nvml_nvlink_peers(n, inv);
	if (inv->n_devices == before) {
		hw_status_absent(st, "none of the %u NVIDIA GPUs NVML found can be used (see the log)",
				 count);
		goto absent;
	}

	st->present = true;
	st->reason[0] = '\0';
	if (common.cuda[0])
		snprintf(st->driver, sizeof(st->driver), "%s (CUDA %s)", common.driver, common.cuda);
	else
		hf_strlcpy(st->driver, common.driver, sizeof(st->driver));
	*ret_nvml = n;
	return 0;

absent:
	st->present = false;
	st->driver[0] = '\0';
	inv->n_devices = before;
	hw_nvml_close(n);
	return 0;
}

int hw_nvml_sample(struct hw_nvml *n, unsigned index, struct hw_telemetry *ret)
{
	struct nvml_dev *dev = nvml_dev_find(n, index);
	nvmlUtilization_t util;
	nvmlMemory_t mem;
	unsigned v;

	if (!dev)
		return -ENOENT;
	ret->backend = HF__BACKEND__BACKEND_CUDA;
	ret->index = index;
	ret->utilization_pct = ret->temperature_c = ret->power_w = -1.0f;
	ret->memory_used_bytes = 0;
	if (n->api.memory(dev->handle, &mem) == NVML_SUCCESS)
		ret->memory_used_bytes = mem.used;
	/* Temperature is the chip's, which a MIG instance shares; utilisation
	 * and power NVML only reports for whole GPUs. */
	if (n->api.temperature &&
	    n->api.temperature(dev->parent ? dev->parent : dev->handle, NVML_TEMPERATURE_GPU, &v) ==
		    NVML_SUCCESS)
		ret->temperature_c = (float)v;
	if (!dev->parent) {
		if (n->api.utilization && n->api.utilization(dev->handle, &util) == NVML_SUCCESS)
			ret->utilization_pct = (float)util.gpu;
		if (n->api.power && n->api.power(dev->handle, &v) == NVML_SUCCESS)
			ret->power_w = (float)v / 1000.0f;
	}
	return 0;
}

void hw_nvml_close(struct hw_nvml *n)
{
	if (!n)
		return;
	if (n->initialised)
		n->api.shutdown();
	hw_lib_close(n->lib);
	free(n);
}
