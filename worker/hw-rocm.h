/* SPDX-License-Identifier: MIT
 *
 * AMD ROCm devices from the KFD topology the amdgpu driver publishes in
 * sysfs (/sys/class/kfd/kfd/topology/nodes/N), which is what the ROCm
 * runtime itself enumerates: a node with simd_count > 0 is a GPU, and GPUs
 * are numbered in node order (the order of ROCR_VISIBLE_DEVICES).
 *
 * Per GPU: rocm:i with its gfx target from gfx_target_version (90402 ->
 * "gfx942", arch and attrs gfx_target), memory from the node's frame-buffer
 * memory banks (mem_banks/M/properties size_in_bytes), UUID "GPU-<unique_id
 * in hex>", name from the DRM device's product_name or its PCI id, and the
 * driver version from /sys/module/amdgpu/version (the kernel release for the
 * in-tree driver).  The backend is absent when there is no topology, no GPU
 * node, or /dev/kfd is missing or not accessible to the worker's user.
 *
 * Telemetry comes from the GPU's DRM device in sysfs: gpu_busy_percent,
 * mem_info_vram_used, and the hwmon temperature and power when present.
 * The amd-smi / rocm-smi libraries are not used.
 *
 * Every path is read below a root prefix ("" for the running system).
 * Not thread-safe per struct hw_rocm; no global state.
 */
#ifndef HW_ROCM_H
#define HW_ROCM_H

#include <stddef.h>

#include "hw-inventory.h"

struct hw_rocm;

/* Adds the GPUs under root to inv and fills st.  When the backend is
 * present, *ret_rocm holds what telemetry needs (hw_rocm_close); otherwise
 * NULL.  Returns 0 or -ENOMEM. */
int hw_rocm_probe(const char *root, struct hw_inventory *inv, struct hw_backend_status *st,
		  struct hw_rocm **ret_rocm);

/* The readings of rocm device index.  Returns 0 or -ENOENT (not ours). */
int hw_rocm_sample(struct hw_rocm *rocm, unsigned index, struct hw_telemetry *ret);

void hw_rocm_close(struct hw_rocm *rocm);

/* "gfx942" from a KFD gfx_target_version (major * 10000 + minor * 100 +
 * stepping; minor and stepping are written as hex digits, so 90010 is
 * "gfx90a").  Returns 0 or -EINVAL for 0 or an out-of-range version. */
int hw_rocm_gfx_name(unsigned long version, char *buf, size_t len);

#endif
