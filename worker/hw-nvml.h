/* SPDX-License-Identifier: MIT
 *
 * NVIDIA CUDA devices through NVML, the library the NVIDIA driver installs
 * (libnvidia-ml.so.1), loaded at run time: no NVIDIA header or library is
 * needed to build or run the worker.  The few NVML types and functions used
 * are declared in hw-nvml.c from NVML's documented, stable C ABI.
 *
 * Per GPU (NVML index i): cuda:i with its UUID, name, total memory, compute
 * capability (attrs compute_capability "9.0", arch "sm_90"), driver version
 * (Device.driver) and CUDA driver version (attrs cuda_driver "12.8"), and
 * attrs mig "disabled" where the GPU supports MIG.  A GPU with MIG enabled is
 * not offered itself (CUDA cannot use it as a whole); each of its MIG
 * instances is, with its own UUID ("MIG-...") and memory, attrs mig
 * "enabled", gpu_index and gpu_uuid naming the GPU, and an index counted
 * from the number of GPUs upwards, so the indices of whole GPUs always match
 * nvidia-smi's.
 *
 * The library stays loaded and initialised while the inventory lives, for
 * telemetry: utilisation, memory used, temperature and power (MIG instances:
 * memory used and the GPU's temperature; NVML has no per-instance
 * utilisation or power).
 *
 * Threads: NVML is thread-safe; a struct hw_nvml is used by one thread at a
 * time (detection, then the loop thread's sampling).
 */
#ifndef HW_NVML_H
#define HW_NVML_H

#include "hw-inventory.h"

#define HW_NVML_LIBRARY_DEFAULT "libnvidia-ml.so.1"

struct hw_nvml;

/* Loads library (a name or a path), initialises NVML and adds the devices
 * to inv.  st says whether the backend is present and why not.  When it is,
 * *ret_nvml is the open interface (hw_nvml_close); otherwise NULL.  Returns
 * 0, or -ENOMEM. */
int hw_nvml_probe(const char *library, struct hw_inventory *inv, struct hw_backend_status *st,
		  struct hw_nvml **ret_nvml);

/* The readings of cuda device index.  Returns 0, or -ENOENT when the
 * device is not one this interface found. */
int hw_nvml_sample(struct hw_nvml *nvml, unsigned index, struct hw_telemetry *ret);

/* nvmlShutdown, then unloads the library.  NULL is fine. */
void hw_nvml_close(struct hw_nvml *nvml);

#endif
