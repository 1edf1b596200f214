/* SPDX-License-Identifier: MIT
 *
 * Intel GPUs and NPUs from sysfs, and the devices of the OpenVINO runtime
 * loaded with dlopen (see hw-intel.h).  OpenVINO status codes are put into
 * words here, and only here.
 */
#include "hw-intel.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"
#include "hf_util.h"
#include "hw-util.h"

#define MAX_PCI 32
#define INTEL_VENDOR 0x8086

/* ---- sysfs ---- */

struct intel_pci {
	unsigned minor;    /* N of cardN or accelN */
	char slot[32];     /* PCI address, "0000:03:00.0" */
	unsigned device_id;
	char driver[32];   /* kernel driver: i915, xe, intel_vpu */
	bool node;         /* NPU: /dev/accel/accelN exists */
};

/* The device's vendor, id, slot and driver from its sysfs directory.
 * False when it is not an Intel device. */
static bool pci_read(const char *root, const char *class_dir, const char *prefix, unsigned minor,
		     struct intel_pci *ret)
{
	char uevent[2048];
	uint64_t vendor;

	memset(ret, 0, sizeof(*ret));
	ret->minor = minor;
	if (hw_file_read_u64(root, &vendor, "%s/%s%u/device/vendor", class_dir, prefix, minor) < 0 ||
	    vendor != INTEL_VENDOR)
		return false;
	if (hw_file_read(root, uevent, sizeof(uevent), "%s/%s%u/device/uevent", class_dir, prefix,
			 minor) == 0) {
		for (char *line = uevent, *next; line; line = next) {
			unsigned v, id;

			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			if (strncmp(line, "DRIVER=", 7) == 0)
				hf_strlcpy(ret->driver, line + 7, sizeof(ret->driver));
			else if (strncmp(line, "PCI_SLOT_NAME=", 14) == 0)
				hf_strlcpy(ret->slot, line + 14, sizeof(ret->slot));
			else if (strncmp(line, "PCI_ID=", 7) == 0 && sscanf(line + 7, "%x:%x", &v, &id) == 2)
				ret->device_id = id;
		}
	}
	if (!ret->driver[0])
		hw_link_base(root, ret->driver, sizeof(ret->driver), "%s/%s%u/device/driver", class_dir,
			     prefix, minor);
	if (!ret->slot[0])
		hw_link_base(root, ret->slot, sizeof(ret->slot), "%s/%s%u/device", class_dir, prefix,
			     minor);
	return true;
}

static int pci_slot_cmp(const void *a, const void *b)
{
	const struct intel_pci *x = a, *y = b;
	int c = strcmp(x->slot, y->slot);

	return c ? c : (x->minor < y->minor ? -1 : x->minor > y->minor);
}

/* Intel GPUs driven by i915 or xe, in PCI address order. */
static size_t gpus_scan(const char *root, struct intel_pci *ret, size_t max)
{
	unsigned cards[MAX_PCI];
	int n = hw_dir_numbered(root, "/sys/class/drm", "card", cards, MAX_PCI);
	size_t found = 0;

	for (int i = 0; i < n && found < max; i++) {
		struct intel_pci p;
		if (!pci_read(root, "/sys/class/drm", "card", cards[i], &p))
			continue;
		if (strcmp(p.driver, "i915") != 0 && strcmp(p.driver, "xe") != 0)
			continue;
		ret[found++] = p;
	}
	qsort(ret, found, sizeof(*ret), pci_slot_cmp);
	return found;
}

/* Intel NPUs driven by intel_vpu, and whether their device node exists. */
static size_t npus_scan(const char *root, struct intel_pci *ret, size_t max)
{
	unsigned accels[MAX_PCI];
	int n = hw_dir_numbered(root, "/sys/class/accel", "accel", accels, MAX_PCI);
	size_t found = 0;

	for (int i = 0; i < n && found < max; i++) {
		struct intel_pci p;
		if (!pci_read(root, "/sys/class/accel", "accel", accels[i], &p) ||
		    strcmp(p.driver, "intel_vpu") != 0)
			continue;
		p.node = hw_file_exists(root, "/dev/accel/accel%u", accels[i]);
		ret[found++] = p;
	}
	qsort(ret, found, sizeof(*ret), pci_slot_cmp);
	return found;
}

/* "; sysfs shows 2 Intel GPUs (i915, xe) and 1 Intel NPU" for an absent
 * reason, or "" when sysfs shows nothing. */
static void sysfs_summary(const struct intel_pci *gpus, size_t n_gpus, const struct intel_pci *npus,
			  size_t n_npus, char *buf, size_t len)
{
	char drivers[64] = "";
	size_t nodes = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n_npus; i++)
		nodes += npus[i].node;
	for (size_t i = 0; i < n_gpus; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(gpus[j].driver, gpus[i].driver) == 0;
		if (!seen && strlen(drivers) + strlen(gpus[i].driver) + 3 < sizeof(drivers))
			snprintf(drivers + strlen(drivers), sizeof(drivers) - strlen(drivers), "%s%s",
				 drivers[0] ? ", " : "", gpus[i].driver);
	}
	if (n_gpus == 0 && n_npus == 0)
		return;
	snprintf(buf, len, "; sysfs shows %zu Intel GPU%s%s%s%s and %zu Intel NPU%s%s", n_gpus,
		 n_gpus == 1 ? "" : "s", n_gpus ? " (" : "", drivers, n_gpus ? ")" : "", n_npus,
		 n_npus == 1 ? "" : "s",
		 n_npus && nodes < n_npus ? ", with no device node under /dev/accel" : "");
}

void hw_intel_arch_name(const char *ov_arch, char *buf, size_t len)
{
	const char *a = strstr(ov_arch, "arch=");

	hf_strlcpy(buf, a ? a + 5 : ov_arch, len);
}

/* ---- the part of OpenVINO's C API used here (openvino/c/ov_core.h, 2023.0+) ---- */

typedef int ov_status_e; /* an enum: OK is 0, errors are negative */
typedef struct ov_core ov_core_t;

typedef struct {
	char **devices;
	size_t size;
} ov_available_devices_t;

typedef struct {
	const char *buildNumber;
	const char *description;
} ov_version_t;

struct ov_api {
	ov_status_e (*core_create)(ov_core_t **);
	void (*core_free)(ov_core_t *);
	ov_status_e (*available_devices)(const ov_core_t *, ov_available_devices_t *);
	void (*available_devices_free)(ov_available_devices_t *);
	/* Optional. */
	ov_status_e (*get_property)(const ov_core_t *, const char *, const char *, char **);
	void (*free)(const char *);
	ov_status_e (*version)(ov_version_t *);
	void (*version_free)(ov_version_t *);
	const char *(*error_info)(ov_status_e);
};

static const char *ov_error(const struct ov_api *api, ov_status_e st, char *buf, size_t len)
{
	const char *s = api->error_info ? api->error_info(st) : NULL;

	if (s && *s)
		return s;
	snprintf(buf, len, "status %d", st);
	return buf;
}

/* Directories where a distribution or the OpenVINO archive puts the
 * library, searched for a versioned libopenvino_c.so.* when the plain name
 * is not found (only the -dev packages install the plain name). */
static const char *const ov_lib_dirs[] = {
	"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
	"/usr/local/lib", "/opt/intel/openvino/runtime/lib/intel64",
	"/opt/intel/openvino/runtime/lib/aarch64",
};

/* The newest libopenvino_c.so.<version> in the standard directories. */
static bool ov_versioned_find(char *buf, size_t len)
{
	static const char prefix[] = "libopenvino_c.so.";
	bool found = false;
	char best[512] = "";

	for (size_t i = 0; i < sizeof(ov_lib_dirs) / sizeof(ov_lib_dirs[0]); i++) {
		DIR *d = opendir(ov_lib_dirs[i]);
		struct dirent *de;

		if (!d)
			continue;
		while ((de = readdir(d))) {
			if (strncmp(de->d_name, prefix, sizeof(prefix) - 1) != 0)
				continue;
			if (!found || strverscmp(de->d_name, strrchr(best, '/') + 1) > 0) {
				snprintf(best, sizeof(best), "%s/%s", ov_lib_dirs[i], de->d_name);
				found = true;
			}
		}
		closedir(d);
		if (found)
			break; /* the first directory that has one, as the linker would */
	}
	if (found)
		hf_strlcpy(buf, best, len);
	return found;
}

static int ov_open(const char *library, void **ret, char *reason, size_t len)
{
	bool is_default = !library || strcmp(library, HW_OPENVINO_LIBRARY_DEFAULT) == 0;
	char versioned[256];
	int r;

	r = hw_lib_open(library ? library : HW_OPENVINO_LIBRARY_DEFAULT, true, ret, reason, len);
	if (r != -ENOENT || !is_default)
		return r;
	if (!ov_versioned_find(versioned, sizeof(versioned))) {
		snprintf(reason, len,
			 "library \"%s\" not found, nor a versioned one in the standard directories",
			 HW_OPENVINO_LIBRARY_DEFAULT);
		return -ENOENT;
	}
	return hw_lib_open(versioned, true, ret, reason, len);
}

static int ov_bind(void *lib, const char *library, struct ov_api *api, char *reason, size_t len)
{
	struct {
		const char *name;
		void **slot;
		bool required;
	} syms[] = {
		{ "ov_core_create", (void **)&api->core_create, true },
		{ "ov_core_free", (void **)&api->core_free, true },
		{ "ov_core_get_available_devices", (void **)&api->available_devices, true },
		{ "ov_available_devices_free", (void **)&api->available_devices_free, true },
		{ "ov_core_get_property", (void **)&api->get_property, false },
		{ "ov_free", (void **)&api->free, false },
		{ "ov_get_openvino_version", (void **)&api->version, false },
		{ "ov_version_free", (void **)&api->version_free, false },
		{ "ov_get_error_info", (void **)&api->error_info, false },
	};

	memset(api, 0, sizeof(*api));
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		*syms[i].slot = hw_lib_sym(lib, syms[i].name);
		if (!*syms[i].slot && syms[i].required) {
			snprintf(reason, len, "library \"%s\" does not export %s (not OpenVINO's C API)",
				 library, syms[i].name);
			return -ELIBBAD;
		}
	}
	if (!api->free)
		api->get_property = NULL; /* its strings could not be released */
	return 0;
}

/* A property as text into buf; false when OpenVINO does not give it. */
static bool ov_prop(const struct ov_api *api, const ov_core_t *core, const char *dev,
		    const char *key, char *buf, size_t len)
{
	char *v = NULL;

	if (!api->get_property || api->get_property(core, dev, key, &v) != 0 || !v)
		return false;
	hf_strlcpy(buf, v, len);
	api->free(v);
	return buf[0] != '\0';
}

/* "GPU" from "GPU.1", and 1 (0 when there is no number). */
static void ov_name_split(const char *name, char *type, size_t len, unsigned *ret_n)
{
	const char *dot = strchr(name, '.');
	size_t tl = dot ? (size_t)(dot - name) : strlen(name);

	snprintf(type, len, "%.*s", (int)tl, name);
	*ret_n = dot ? (unsigned)strtoul(dot + 1, NULL, 10) : 0;
}

static void kernel_driver(const char *root, const char *driver, char *buf, size_t len)
{
	char kernel[64];

	if (hw_file_read(root, kernel, sizeof(kernel), "/proc/sys/kernel/osrelease") == 0)
		snprintf(buf, len, "%.20s in kernel %.30s", driver, kernel);
	else
		hf_strlcpy(buf, driver, len);
}

static void ov_device_add(const char *root, const struct ov_api *api, const ov_core_t *core,
			  const char *ov_name, unsigned index, const struct hw_cpu *cpu,
			  const struct intel_pci *gpus, size_t n_gpus, bool gpus_match,
			  const struct intel_pci *npus, size_t n_npus, struct hw_inventory *inv)
{
	char type[16], key[64], buf[256];
	const struct intel_pci *pci = NULL;
	struct hw_device *d;
	unsigned n;

	d = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_OPENVINO, index);
	if (!d)
		return;
	ov_name_split(ov_name, type, sizeof(type), &n);
	hw_device_attr_set(d, "ov_device", ov_name);
	if (strcmp(type, "GPU") == 0 && gpus_match && n < n_gpus) {
		pci = &gpus[n];
		d->visible_index = (int)n; /* Level Zero numbers Intel GPUs in PCI order */
	} else if (strcmp(type, "NPU") == 0 && n < n_npus) {
		pci = &npus[n];
	}

	if (ov_prop(api, core, ov_name, "FULL_DEVICE_NAME", buf, sizeof(buf)))
		hf_strlcpy(d->name, buf, sizeof(d->name));
	else if (pci)
		snprintf(d->name, sizeof(d->name), "Intel %s 0x%04x", type, pci->device_id);
	else
		hf_strlcpy(d->name, ov_name, sizeof(d->name));
	if (ov_prop(api, core, ov_name, "DEVICE_ARCHITECTURE", buf, sizeof(buf)))
		hw_intel_arch_name(buf, d->arch, sizeof(d->arch));
	if (ov_prop(api, core, ov_name, "DEVICE_TYPE", buf, sizeof(buf)))
		hw_device_attr_set(d, "device_type", buf);
	snprintf(key, sizeof(key), "%s_DEVICE_TOTAL_MEM_SIZE", type);
	if (ov_prop(api, core, ov_name, key, buf, sizeof(buf)))
		d->memory_bytes = strtoull(buf, NULL, 10);
	else if (strcmp(type, "CPU") == 0 && cpu)
		d->memory_bytes = cpu->memory_bytes;
	if (pci) {
		kernel_driver(root, pci->driver, d->driver, sizeof(d->driver));
		hw_device_attr_set(d, "kernel_driver", pci->driver);
		snprintf(buf, sizeof(buf), "0x%04x", pci->device_id);
		hw_device_attr_set(d, "pci_device", buf);
		if (pci->slot[0])
			hw_device_attr_set(d, "pci_slot", pci->slot);
	}
}

int hw_intel_probe(const char *root, const char *library, const struct hw_cpu *cpu,
		   struct hw_inventory *inv, struct hw_backend_status *st)
{
	struct intel_pci gpus[MAX_PCI], npus[MAX_PCI];
	size_t n_gpus, n_npus, ov_gpus = 0, before = inv->n_devices;
	ov_available_devices_t list = { NULL, 0 };
	ov_core_t *core = NULL;
	struct ov_api api;
	ov_version_t version = { NULL, NULL };
	char summary[192], err[32];
	void *lib = NULL;
	ov_status_e rc;

	n_gpus = gpus_scan(root, gpus, MAX_PCI);
	n_npus = npus_scan(root, npus, MAX_PCI);
	sysfs_summary(gpus, n_gpus, npus, n_npus, summary, sizeof(summary));

	if (ov_open(library, &lib, st->reason, sizeof(st->reason)) < 0 ||
	    ov_bind(lib, library ? library : HW_OPENVINO_LIBRARY_DEFAULT, &api, st->reason,
		    sizeof(st->reason)) < 0)
		goto absent;
	hw_lib_path((void *)api.core_create, library ? library : HW_OPENVINO_LIBRARY_DEFAULT,
		    st->library, sizeof(st->library));
	rc = api.core_create(&core);
	if (rc != 0 || !core) {
		hw_status_absent(st, "ov_core_create failed: %s", ov_error(&api, rc, err, sizeof(err)));
		core = NULL;
		goto absent;
	}
	rc = api.available_devices(core, &list);
	if (rc != 0) {
		hw_status_absent(st, "ov_core_get_available_devices failed: %s",
				 ov_error(&api, rc, err, sizeof(err)));
		goto absent;
	}
	if (list.size == 0) {
		hw_status_absent(st, "OpenVINO reports no device");
		goto absent;
	}
	for (size_t i = 0; i < list.size; i++)
		ov_gpus += strncmp(list.devices[i], "GPU", 3) == 0;
	if (ov_gpus != n_gpus && (ov_gpus || n_gpus))
		log_info("OpenVINO reports %zu GPUs and sysfs shows %zu Intel GPUs: the GPUs are "
			 "offered without ZE_AFFINITY_MASK isolation",
			 ov_gpus, n_gpus);
	for (size_t i = 0; i < list.size; i++)
		ov_device_add(root, &api, core, list.devices[i], (unsigned)i, cpu, gpus, n_gpus,
			      ov_gpus == n_gpus, npus, n_npus, inv);

	st->present = true;
	st->reason[0] = '\0';
	if (api.version && api.version(&version) == 0 && version.buildNumber)
		hf_strlcpy(st->driver, version.buildNumber, sizeof(st->driver));
	if (api.version_free && version.buildNumber)
		api.version_free(&version);
	api.available_devices_free(&list);
	api.core_free(core);
	hw_lib_close(lib);
	return 0;

absent:
	if (list.devices)
		api.available_devices_free(&list);
	if (core)
		api.core_free(core);
	hw_lib_close(lib);
	st->present = false;
	inv->n_devices = before;
	/* The summary is appended only if it fits whole. */
	if (strlen(st->reason) + strlen(summary) < sizeof(st->reason))
		strcat(st->reason, summary);
	return 0;
}
