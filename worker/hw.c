/* SPDX-License-Identifier: MIT
 *
 * The device inventory (see hw.h): runs each backend's detection in a fixed
 * order (cpu, cuda, rocm, mps, openvino, qnn), applies the device
 * configuration, and reads telemetry from the vendor interfaces the
 * backends left open.
 */
#include "hw.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "device-conf.h"
#include "hf_log.h"
#include "hf_util.h"
#include "hw-intel.h"
#include "hw-mps.h"
#include "hw-nvml.h"
#include "hw-qnn.h"
#include "hw-rocm.h"
#include "hw-util.h"

struct hw_vendors {
	struct hw_nvml *nvml;
	struct hw_rocm *rocm;
};

static void inventory_add_cpu(struct hw_inventory *inv, unsigned slots)
{
	struct hw_device *d = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_CPU, 0);

	if (!d)
		return;
	hf_strlcpy(d->name, inv->cpu.model, sizeof(d->name));
	hf_strlcpy(d->arch, inv->cpu.arch, sizeof(d->arch));
	d->memory_bytes = inv->cpu.memory_bytes;
	d->slots = slots ? slots : 1;
	d->shared = true;
}

int hw_inventory_detect(const struct hw_options *opt, struct hw_inventory *ret)
{
	const char *root = opt->root ? opt->root : "";
	const char *sdk = opt->qnn_sdk_root && *opt->qnn_sdk_root ? opt->qnn_sdk_root
								   : getenv("QNN_SDK_ROOT");
	const struct devconf *dc = opt->devconf;
	struct hw_backend_status *st;
	struct utsname u;
	char machine[sizeof(u.machine)], kernel[64];
	int r;

	memset(ret, 0, sizeof(*ret));
	for (int b = 0; b < HW_N_BACKENDS; b++)
		ret->backends[b].backend = (Hf__Backend)(b + 1);
	ret->vendors = calloc(1, sizeof(*ret->vendors));
	if (!ret->vendors)
		return -ENOMEM;
	if (opt->machine)
		hf_strlcpy(machine, opt->machine, sizeof(machine));
	else
		hf_strlcpy(machine, uname(&u) == 0 ? u.machine : "unknown", sizeof(machine));

	r = hw_cpu_detect(root, machine, &ret->cpu);
	if (r < 0)
		return r;
	st = &ret->backends[HF__BACKEND__BACKEND_CPU - 1];
	st->present = true;
	if (hw_file_read(root, kernel, sizeof(kernel), "/proc/sys/kernel/osrelease") == 0)
		snprintf(st->driver, sizeof(st->driver), "Linux %.48s", kernel);
	if (devconf_backend_hidden(dc, HF__BACKEND__BACKEND_CPU))
		hw_status_absent(st, "hidden by setting \"devices.hide\"");
	else
		inventory_add_cpu(ret, opt->cpu_slots);

	for (Hf__Backend b = HF__BACKEND__BACKEND_CUDA; b <= HF__BACKEND__BACKEND_QNN; b++) {
		st = &ret->backends[b - 1];
		if (devconf_backend_hidden(dc, b)) {
			hw_status_absent(st, "hidden by setting \"devices.hide\"");
			continue;
		}
		switch (b) {
		case HF__BACKEND__BACKEND_CUDA:
			r = hw_nvml_probe(opt->nvml_library ? opt->nvml_library
							    : HW_NVML_LIBRARY_DEFAULT,
					  ret, st, &ret->vendors->nvml);
			break;
		case HF__BACKEND__BACKEND_ROCM:
			r = hw_rocm_probe(root, ret, st, &ret->vendors->rocm);
			break;
		case HF__BACKEND__BACKEND_MPS:
			r = hw_mps_probe(ret, st);
			break;
		case HF__BACKEND__BACKEND_OPENVINO:
			r = hw_intel_probe(root, opt->openvino_library, &ret->cpu, ret, st);
			break;
		case HF__BACKEND__BACKEND_QNN:
			r = hw_qnn_probe(root, sdk, machine, ret, st);
			break;
		default:
			r = 0;
			break;
		}
		if (r < 0)
			return r;
		if (st->present)
			log_debug("backend %s: present, driver \"%s\"", hf_backend_name(b), st->driver);
		else
			log_debug("backend %s: absent: %s", hf_backend_name(b), st->reason);
	}
	devconf_apply(dc, ret);
	return 0;
}

void hw_inventory_fini(struct hw_inventory *inv)
{
	if (!inv || !inv->vendors)
		return;
	hw_nvml_close(inv->vendors->nvml);
	hw_rocm_close(inv->vendors->rocm);
	free(inv->vendors);
	inv->vendors = NULL;
}

/* ---- telemetry ---- */

size_t hw_telemetry_sample(const struct hw_inventory *inv, struct hw_telemetry *out, size_t max)
{
	const struct hw_vendors *v = inv->vendors;
	size_t n = 0;

	if (!v)
		return 0;
	for (size_t i = 0; i < inv->n_devices && n < max; i++) {
		const struct hw_device *d = &inv->devices[i];
		struct hw_telemetry t;
		int r = -ENOENT;

		if (d->backend == HF__BACKEND__BACKEND_CUDA && v->nvml)
			r = hw_nvml_sample(v->nvml, d->index, &t);
		else if (d->backend == HF__BACKEND__BACKEND_ROCM && v->rocm)
			r = hw_rocm_sample(v->rocm, d->index, &t);
		if (r < 0)
			continue;
		if (t.utilization_pct < 0 && t.memory_used_bytes == 0 && t.temperature_c < 0 &&
		    t.power_w < 0)
			continue; /* nothing to say */
		out[n++] = t;
	}
	return n;
}
