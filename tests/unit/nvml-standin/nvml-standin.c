/* SPDX-License-Identifier: MIT
 *
 * A stand-in for NVIDIA's libnvidia-ml.so.1, built by the tests as a shared
 * module and loaded by hf-worker through the same dlopen path as the real
 * library (hardware.nvml_library set to this module's path).  It exports
 * the NVML functions hw-nvml.c uses, with NVML's C signatures, and answers
 * from a scenario file named by the environment variable
 * HFLEET_NVML_STANDIN, read at nvmlInit_v2:
 *
 *   init = ok                 # or driver_not_loaded, no_permission
 *   driver = 570.124.06
 *   cuda_driver = 12080       # as nvmlSystemGetCudaDriverVersion gives it
 *   [gpu]                     # one section per GPU, in NVML index order
 *   name = NVIDIA H100 80GB HBM3
 *   uuid = GPU-...
 *   memory_total = 85520809984
 *   memory_used = 524288000
 *   cc = 9.0
 *   mig = disabled            # enabled, disabled or unsupported
 *   utilization = 37          # percent; temperature in C; power_mw
 *   nvlink = 1,2,3            # the GPUs it reaches over NVLink (absent:
 *                             # nvmlDeviceGetP2PStatus answers Not Supported)
 *   [mig]                     # a MIG instance of the GPU above
 *   slot = 0                  # its index for nvmlDeviceGetMigDeviceHandleByIndex
 *   name, uuid, memory_total, memory_used as for a GPU
 *
 * Built with -DNVML_STANDIN_BROKEN it lacks nvmlDeviceGetUUID, like a
 * library too old or not NVML at all.
 *
 * hfleet_nvml_standin_inits() tells the tests how many nvmlInit calls are
 * not yet matched by nvmlShutdown.  Test code: single-threaded, no
 * allocation, bounded tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_UNKNOWN 999

#define MAX_GPUS 16
#define MAX_MIGS 7

typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
	unsigned int gpu, memory;
} nvmlUtilization_t;

struct standin_dev {
	char name[96], uuid[96];
	unsigned long long mem_total, mem_used;
	int cc_major, cc_minor;
	int mig; /* -1 unsupported, 0 disabled, 1 enabled */
	int util, temp, power_mw; /* -1: not supported */
	int slot;                 /* MIG instances: their slot */
	int nvlink;               /* -1: unknown; else a bit per peer GPU index */
	struct standin_dev *parent;
};

static struct {
	int inits;
	nvmlReturn_t init_rc;
	char driver[80];
	int cuda;
	struct standin_dev gpus[MAX_GPUS];
	unsigned n_gpus;
	struct standin_dev migs[MAX_GPUS * MAX_MIGS];
	unsigned n_migs;
} st;

typedef struct standin_dev *nvmlDevice_t;

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static void dev_init(struct standin_dev *d)
{
	memset(d, 0, sizeof(*d));
	d->mig = -1;
	d->util = d->temp = d->power_mw = -1;
	d->nvlink = -1;
}

static void dev_set(struct standin_dev *d, const char *k, const char *v)
{
	if (strcmp(k, "name") == 0)
		snprintf(d->name, sizeof(d->name), "%s", v);
	else if (strcmp(k, "uuid") == 0)
		snprintf(d->uuid, sizeof(d->uuid), "%s", v);
	else if (strcmp(k, "memory_total") == 0)
		d->mem_total = strtoull(v, NULL, 10);
	else if (strcmp(k, "memory_used") == 0)
		d->mem_used = strtoull(v, NULL, 10);
	else if (strcmp(k, "cc") == 0)
		sscanf(v, "%d.%d", &d->cc_major, &d->cc_minor);
	else if (strcmp(k, "mig") == 0)
		d->mig = strcmp(v, "enabled") == 0 ? 1 : strcmp(v, "disabled") == 0 ? 0 : -1;
	else if (strcmp(k, "utilization") == 0)
		d->util = atoi(v);
	else if (strcmp(k, "temperature") == 0)
		d->temp = atoi(v);
	else if (strcmp(k, "power_mw") == 0)
		d->power_mw = atoi(v);
	else if (strcmp(k, "slot") == 0)
		d->slot = atoi(v);
	else if (strcmp(k, "nvlink") == 0) {
		d->nvlink = 0; /* "none", or indices separated by commas */
		for (char *p = (char *)v; *p;) {
			if (*p >= '0' && *p <= '9') {
				long peer = strtol(p, &p, 10);
				if (peer < MAX_GPUS)
					d->nvlink |= 1 << peer;
			} else {
				p++;
			}
		}
	}
}

/* Reads the scenario; returns the nvmlInit result it asks for. */
static nvmlReturn_t scenario_load(void)
{
	const char *path = getenv("HFLEET_NVML_STANDIN");
	struct standin_dev *cur = NULL;
	char line[512];
	FILE *f;

	memset(&st, 0, sizeof(st));
	if (!path || !(f = fopen(path, "r")))
		return NVML_ERROR_UNKNOWN;
	while (fgets(line, sizeof(line), f)) {
		char *l = trim(line), *eq;

		if (!*l || *l == '#')
			continue;
		if (strcmp(l, "[gpu]") == 0 && st.n_gpus < MAX_GPUS) {
			cur = &st.gpus[st.n_gpus++];
			dev_init(cur);
			continue;
		}
		if (strcmp(l, "[mig]") == 0 && st.n_gpus > 0 && st.n_migs < MAX_GPUS * MAX_MIGS) {
			cur = &st.migs[st.n_migs++];
			dev_init(cur);
			cur->parent = &st.gpus[st.n_gpus - 1];
			continue;
		}
		eq = strchr(l, '=');
		if (!eq)
			continue;
		*eq = '\0';
		char *k = trim(l), *v = trim(eq + 1);
		if (cur) {
			dev_set(cur, k, v);
		} else if (strcmp(k, "init") == 0) {
			st.init_rc = strcmp(v, "driver_not_loaded") == 0 ? NVML_ERROR_DRIVER_NOT_LOADED
				     : strcmp(v, "no_permission") == 0   ? NVML_ERROR_NO_PERMISSION
									 : NVML_SUCCESS;
		} else if (strcmp(k, "driver") == 0) {
			snprintf(st.driver, sizeof(st.driver), "%s", v);
		} else if (strcmp(k, "cuda_driver") == 0) {
			st.cuda = atoi(v);
		}
	}
	fclose(f);
	return st.init_rc;
}

EXPORT int hfleet_nvml_standin_inits(void)
{
	return st.inits;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t rc)
{
	switch (rc) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
	case NVML_ERROR_NOT_FOUND: return "Not Found";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	default: return "Unknown Error";
	}
}

EXPORT nvmlReturn_t nvmlInit_v2(void)
{
	nvmlReturn_t rc;

	if (st.inits > 0) {
		st.inits++;
		return NVML_SUCCESS;
	}
	rc = scenario_load();
	if (rc == NVML_SUCCESS)
		st.inits = 1;
	return rc;
}

EXPORT nvmlReturn_t nvmlShutdown(void)
{
	if (st.inits == 0)
		return NVML_ERROR_UNINITIALIZED;
	st.inits--;
	return NVML_SUCCESS;
}

static nvmlReturn_t copy_out(const char *s, char *buf, unsigned int len)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	if (strlen(s) + 1 > len)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(buf, s, strlen(s) + 1);
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len)
{
	return copy_out(st.driver, buf, len);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	*v = st.cuda;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	*count = st.n_gpus;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *ret)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	if (i >= st.n_gpus)
		return NVML_ERROR_INVALID_ARGUMENT;
	*ret = &st.gpus[i];
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *buf, unsigned int len)
{
	return copy_out(d->name, buf, len);
}

EXPORT nvmlReturn_t nvmlDeviceGetP2PStatus(nvmlDevice_t a, nvmlDevice_t b, int index, int *status)
{
	if (!a || !b || !status || a->parent || b->parent)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (index != 2 /* NVML_P2P_CAPS_INDEX_NVLINK */ || a->nvlink < 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*status = (a->nvlink >> (b - st.gpus)) & 1 ? 0 /* OK */ : 5 /* NOT_SUPPORTED */;
	return NVML_SUCCESS;
}

#ifndef NVML_STANDIN_BROKEN
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned int len)
{
	return copy_out(d->uuid, buf, len);
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	m->total = d->mem_total;
	m->used = d->mem_used;
	m->free = d->mem_total - d->mem_used;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	if (d->parent)
		d = d->parent;
	*major = d->cc_major;
	*minor = d->cc_minor;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	if (d->parent || d->mig < 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*current = *pending = (unsigned)d->mig;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *count)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	if (d->parent || d->mig < 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*count = MAX_MIGS;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int index,
							 nvmlDevice_t *ret)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	if (d->mig != 1)
		return NVML_ERROR_NOT_SUPPORTED;
	for (unsigned i = 0; i < st.n_migs; i++) {
		if (st.migs[i].parent == d && st.migs[i].slot == (int)index) {
			*ret = &st.migs[i];
			return NVML_SUCCESS;
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	if (d->parent || d->util < 0)
		return NVML_ERROR_NOT_SUPPORTED;
	u->gpu = (unsigned)d->util;
	u->memory = 0;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	if (sensor != 0)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (d->parent || d->temp < 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*t = (unsigned)d->temp;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw)
{
	if (!st.inits)
		return NVML_ERROR_UNINITIALIZED;
	if (d->parent || d->power_mw < 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*mw = (unsigned)d->power_mw;
	return NVML_SUCCESS;
}
