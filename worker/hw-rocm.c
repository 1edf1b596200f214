/* SPDX-License-Identifier: MIT
 *
 * AMD GPUs from the KFD topology and the amdgpu sysfs files (see
 * hw-rocm.h).
 */
#include "hw-rocm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_util.h"
#include "hw-util.h"

#define KFD_NODES "/sys/class/kfd/kfd/topology/nodes"
#define MAX_NODES 256
#define MAX_BANKS 16
#define PROPS_MAX 8192

/* KFD memory heap types (kfd_topology.h). */
#define HEAP_FB_PUBLIC 1
#define HEAP_FB_PRIVATE 2

struct rocm_dev {
	unsigned index;
	char drm[512]; /* root + /sys/class/drm/renderDN/device; "" unknown */
};

struct hw_rocm {
	struct rocm_dev devs[HW_MAX_DEVICES];
	size_t n_devs;
};

/* Marketing names by PCI device id, for GPUs whose product_name is empty. */
static const struct {
	unsigned id;
	const char *name;
} amd_names[] = {
	{ 0x738c, "AMD Instinct MI100" },
	{ 0x740c, "AMD Instinct MI250X / MI250" },
	{ 0x740f, "AMD Instinct MI210" },
	{ 0x74a0, "AMD Instinct MI300A" },
	{ 0x74a1, "AMD Instinct MI300X" },
	{ 0x74a5, "AMD Instinct MI325X" },
	{ 0x7448, "AMD Radeon PRO W7900" },
	{ 0x744c, "AMD Radeon RX 7900 XTX / XT" },
};

int hw_rocm_gfx_name(unsigned long version, char *buf, size_t len)
{
	unsigned long major = version / 10000, minor = (version / 100) % 100, stepping = version % 100;

	if (version == 0 || major == 0 || minor > 15 || stepping > 15)
		return -EINVAL;
	snprintf(buf, len, "gfx%lu%lx%lx", major, minor, stepping);
	return 0;
}

/* The node's frame-buffer memory: the sum of its public and private FB
 * banks, or of all its banks when it has none (an APU). */
static uint64_t node_memory(const char *root, unsigned node)
{
	char dir[128], props[PROPS_MAX];
	unsigned banks[MAX_BANKS];
	uint64_t fb = 0, all = 0;
	int n;

	snprintf(dir, sizeof(dir), KFD_NODES "/%u/mem_banks", node);
	n = hw_dir_numbered(root, dir, "", banks, MAX_BANKS);
	for (int i = 0; i < n; i++) {
		uint64_t heap, size;

		if (hw_file_read(root, props, sizeof(props), "%s/%u/properties", dir, banks[i]) < 0 ||
		    hw_props_u64(props, "size_in_bytes", &size) < 0)
			continue;
		all += size;
		if (hw_props_u64(props, "heap_type", &heap) == 0 &&
		    (heap == HEAP_FB_PUBLIC || heap == HEAP_FB_PRIVATE))
			fb += size;
	}
	return fb ? fb : all;
}

static void gpu_name(const char *drm, uint64_t device_id, const char *gfx, char *buf, size_t len)
{
	char product[256];

	if (drm[0] && hw_file_read("", product, sizeof(product), "%s/product_name", drm) == 0 &&
	    product[0]) {
		hf_strlcpy(buf, product, len);
		return;
	}
	for (size_t i = 0; i < sizeof(amd_names) / sizeof(amd_names[0]); i++) {
		if (amd_names[i].id == device_id) {
			hf_strlcpy(buf, amd_names[i].name, len);
			return;
		}
	}
	snprintf(buf, len, "AMD GPU (%s)", gfx[0] ? gfx : "unknown target");
}

static void driver_version(const char *root, char *buf, size_t len)
{
	char v[64], kernel[64];

	if (hw_file_read(root, v, sizeof(v), "/sys/module/amdgpu/version") == 0 && v[0])
		hf_strlcpy(buf, v, len);
	else if (hw_file_read(root, kernel, sizeof(kernel), "/proc/sys/kernel/osrelease") == 0)
		snprintf(buf, len, "amdgpu in kernel %.40s", kernel);
	else
		hf_strlcpy(buf, "amdgpu", len);
}

/* Whether the worker can open /dev/kfd; if not, why, in reason. */
static bool kfd_usable(const char *root, char *reason, size_t len)
{
	char path[HW_PATH_MAX];

	if (hw_path(path, sizeof(path), root, "/dev/kfd") < 0) {
		snprintf(reason, len, "path of /dev/kfd too long");
		return false;
	}
	if (access(path, R_OK | W_OK) == 0)
		return true;
	if (errno == ENOENT)
		snprintf(reason, len, "no device node /dev/kfd (in a container, pass /dev/kfd and "
				      "/dev/dri through)");
	else
		snprintf(reason, len, "no access to /dev/kfd: %s (the worker's user must be in the "
				      "render group)",
			 strerror(errno));
	return false;
}

static int rocm_gpu_add(const char *root, struct hw_rocm *rocm, struct hw_inventory *inv,
			unsigned node, const char *props, unsigned index, const char *driver)
{
	uint64_t v, device_id = 0, simd = 0, simd_per_cu = 0, unique = 0, minor = 0;
	char gfx[32] = "", buf[32];
	struct rocm_dev *rd = &rocm->devs[rocm->n_devs];
	struct hw_device *d;

	d = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_ROCM, index);
	if (!d)
		return -ENOSPC;
	rd->index = index;
	rd->drm[0] = '\0';
	if (hw_props_u64(props, "drm_render_minor", &minor) == 0 && minor > 0 &&
	    hw_path(rd->drm, sizeof(rd->drm), root, "/sys/class/drm/renderD%" PRIu64 "/device",
		    minor) < 0)
		rd->drm[0] = '\0';
	if (hw_props_u64(props, "gfx_target_version", &v) == 0)
		hw_rocm_gfx_name((unsigned long)v, gfx, sizeof(gfx));
	hw_props_u64(props, "device_id", &device_id);
	gpu_name(rd->drm, device_id, gfx, d->name, sizeof(d->name));
	hf_strlcpy(d->arch, gfx, sizeof(d->arch));
	hf_strlcpy(d->driver, driver, sizeof(d->driver));
	d->memory_bytes = node_memory(root, node);
	if (hw_props_u64(props, "unique_id", &unique) == 0 && unique)
		snprintf(d->uuid, sizeof(d->uuid), "GPU-%016" PRIx64, unique);
	d->visible_index = (int)index; /* ROCR_VISIBLE_DEVICES counts GPU nodes in order */
	if (gfx[0])
		hw_device_attr_set(d, "gfx_target", gfx);
	if (hw_props_u64(props, "simd_count", &simd) == 0 &&
	    hw_props_u64(props, "simd_per_cu", &simd_per_cu) == 0 && simd_per_cu) {
		snprintf(buf, sizeof(buf), "%" PRIu64, simd / simd_per_cu);
		hw_device_attr_set(d, "compute_units", buf);
	}
	snprintf(buf, sizeof(buf), "%u", node);
	hw_device_attr_set(d, "kfd_node", buf);
	if (device_id) {
		snprintf(buf, sizeof(buf), "0x%04" PRIx64, device_id);
		hw_device_attr_set(d, "pci_device", buf);
	}
	rocm->n_devs++;
	return 0;
}

int hw_rocm_probe(const char *root, struct hw_inventory *inv, struct hw_backend_status *st,
		  struct hw_rocm **ret_rocm)
{
	unsigned nodes[MAX_NODES], gpus = 0;
	size_t before = inv->n_devices;
	struct hw_rocm *rocm;
	char *props = NULL, driver[64];
	int n, r = 0;

	*ret_rocm = NULL;
	n = hw_dir_numbered(root, KFD_NODES, "", nodes, MAX_NODES);
	if (n == -ENOENT) {
		hw_status_absent(st, "no KFD topology at " KFD_NODES " (amdgpu driver not loaded)");
		return 0;
	}
	if (n < 0) {
		hw_status_absent(st, "could not read " KFD_NODES ": %s", strerror(-n));
		return 0;
	}
	rocm = calloc(1, sizeof(*rocm));
	props = malloc(PROPS_MAX);
	if (!rocm || !props) {
		r = -ENOMEM;
		goto out;
	}
	driver_version(root, driver, sizeof(driver));
	for (int i = 0; i < n; i++) {
		uint64_t simd = 0;

		if (hw_file_read(root, props, PROPS_MAX, KFD_NODES "/%u/properties", nodes[i]) < 0) {
			log_warn("could not read KFD node %u, ignoring it", nodes[i]);
			continue;
		}
		if (hw_props_u64(props, "simd_count", &simd) < 0 || simd == 0)
			continue; /* a CPU node */
		if (rocm_gpu_add(root, rocm, inv, nodes[i], props, gpus, driver) < 0)
			break;
		gpus++;
	}
	if (gpus == 0) {
		hw_status_absent(st, "the KFD topology has no GPU node");
		goto absent;
	}
	if (!kfd_usable(root, st->reason, sizeof(st->reason)))
		goto absent;
	st->present = true;
	st->reason[0] = '\0';
	hf_strlcpy(st->driver, driver, sizeof(st->driver));
	*ret_rocm = rocm;
	rocm = NULL;
	goto out;

absent:
	st->present = false;
	inv->n_devices = before;
out:
	free(props);
	free(rocm);
	return r;
}

/* The first hwmon directory of a DRM device, into buf; false if none. */
static bool hwmon_dir(const char *drm, char *buf, size_t len)
{
	char dir[HW_PATH_MAX];
	unsigned n[4];

	if (hw_path(dir, sizeof(dir), drm, "/hwmon") < 0 ||
	    hw_dir_numbered("", dir, "hwmon", n, 4) <= 0)
		return false;
	return hw_path(buf, len, dir, "/hwmon%u", n[0]) == 0;
}

int hw_rocm_sample(struct hw_rocm *rocm, unsigned index, struct hw_telemetry *ret)
{
	const struct rocm_dev *rd = NULL;
	char hwmon[HW_PATH_MAX];
	uint64_t v;

	for (size_t i = 0; i < rocm->n_devs && !rd; i++)
		if (rocm->devs[i].index == index)
			rd = &rocm->devs[i];
	if (!rd)
		return -ENOENT;
	ret->backend = HF__BACKEND__BACKEND_ROCM;
	ret->index = index;
	ret->utilization_pct = ret->temperature_c = ret->power_w = -1.0f;
	ret->memory_used_bytes = 0;
	if (!rd->drm[0])
		return 0;
	if (hw_file_read_u64("", &v, "%s/gpu_busy_percent", rd->drm) == 0 && v <= 100)
		ret->utilization_pct = (float)v;
	if (hw_file_read_u64("", &v, "%s/mem_info_vram_used", rd->drm) == 0)
		ret->memory_used_bytes = v;
	if (hwmon_dir(rd->drm, hwmon, sizeof(hwmon))) {
		/* temp1 is the edge sensor; GPUs without one (MI300) have the
		 * junction as temp2.  Millidegrees and microwatts. */
		if (hw_file_read_u64("", &v, "%s/temp1_input", hwmon) == 0 ||
		    hw_file_read_u64("", &v, "%s/temp2_input", hwmon) == 0)
			ret->temperature_c = (float)v / 1000.0f;
		if (hw_file_read_u64("", &v, "%s/power1_average", hwmon) == 0 ||
		    hw_file_read_u64("", &v, "%s/power1_input", hwmon) == 0)
			ret->power_w = (float)v / 1e6f;
	}
	return 0;
}

void hw_rocm_close(struct hw_rocm *rocm)
{
	free(rocm);
}
