/* SPDX-License-Identifier: MIT
 *
 * Intel devices for the openvino backend.  The devices offered are the ones
 * the OpenVINO runtime reports (its C library, libopenvino_c.so, loaded at
 * run time: ov_core_create, ov_core_get_available_devices), in its order:
 * "CPU", "GPU.0", "GPU.1", "NPU", ... as openvino:0, openvino:1, ...  Each
 * is described from OpenVINO's properties (FULL_DEVICE_NAME,
 * DEVICE_ARCHITECTURE, DEVICE_TYPE, GPU_/NPU_DEVICE_TOTAL_MEM_SIZE) and
 * enriched from sysfs:
 *
 *  - Intel GPUs: /sys/class/drm/cardN/device with vendor 0x8086 and driver
 *    i915 or xe (from the device's uevent), ordered by PCI address, which is
 *    how the Intel compute runtime numbers them for ZE_AFFINITY_MASK and how
 *    OpenVINO numbers GPU.n.  When OpenVINO's GPU count matches sysfs, GPU.n
 *    gets the n-th card's kernel driver, PCI id and its Level Zero index
 *    (visible_index); otherwise the GPU is offered without them.
 *  - Intel NPUs: /sys/class/accel/accelN/device with vendor 0x8086 and
 *    driver intel_vpu, usable only with its node /dev/accel/accelN.
 *
 * Every device has attrs ov_device (OpenVINO's name for it), which is what
 * the runner is told to use.  The backend is absent when the library cannot
 * be loaded or reports no device; the reason then also says what sysfs
 * shows, so an operator sees an Intel GPU that only lacks the runtime.
 *
 * The library is loaded with RTLD_NODELETE and never unloaded (its plugins
 * start threads); the OpenVINO core is released right after detection: the
 * backend has no telemetry.  sysfs and /dev are read below a root prefix.
 */
#ifndef HW_INTEL_H
#define HW_INTEL_H

#include "hw-inventory.h"

#define HW_OPENVINO_LIBRARY_DEFAULT "libopenvino_c.so"

/* Adds what OpenVINO reports to inv and fills st.  library NULL or the
 * default also tries versioned libopenvino_c.so.* files in the standard
 * library directories.  cpu (may be NULL) gives the memory of OpenVINO's
 * CPU device.  Returns 0 or -ENOMEM. */
int hw_intel_probe(const char *root, const char *library, const struct hw_cpu *cpu,
		   struct hw_inventory *inv, struct hw_backend_status *st);

/* "v12.55.8" from OpenVINO's GPU DEVICE_ARCHITECTURE "GPU: vendor=0x8086
 * arch=v12.55.8"; other values are copied as they are. */
void hw_intel_arch_name(const char *ov_arch, char *buf, size_t len);

#endif
