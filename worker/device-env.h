/* SPDX-License-Identifier: MIT
 *
 * The environment that gives a runner exactly the device(s) of its task,
 * and nothing else, per backend:
 *
 *   every task  HFLEET_DEVICE_INDEX (the first device), HFLEET_DEVICE_INDICES
 *               ("0,1"), HFLEET_DEVICE_NAME (the first device's name),
 *               HFLEET_DEVICE_UUID (comma-separated, when every device has
 *               one)
 *   cpu         CUDA_VISIBLE_DEVICES="" and HIP_VISIBLE_DEVICES="": no GPU
 *   cuda        CUDA_VISIBLE_DEVICES=<UUIDs> (a GPU's "GPU-..." or a MIG
 *               instance's "MIG-..."; the index when a device has none) and
 *               CUDA_DEVICE_ORDER=PCI_BUS_ID
 *   rocm        ROCR_VISIBLE_DEVICES=<ROCR indices, ascending>, and
 *               HIP_VISIBLE_DEVICES=0..n-1: ROCr applies its list first and
 *               HIP numbers what is left from 0, so HIP_VISIBLE_DEVICES must
 *               not repeat the ROCR indices
 *   openvino    HFLEET_OPENVINO_DEVICE=<OpenVINO device names>; for Intel
 *               GPUs whose Level Zero index is known, ZE_AFFINITY_MASK=<those
 *               indices, ascending>, and since the runner then sees only
 *               those GPUs, they are named GPU.0..GPU.n-1 in the order of
 *               the mask
 *   qnn         HFLEET_QNN_DEVICE=<indices> and HFLEET_QNN_BACKEND=<the
 *               backend library's path>
 *   mps         nothing more (a Mac has one Metal device)
 *
 * Every variable named here is removed from what the runner inherits from
 * the worker (devenv_is_ours), so a value set around the worker never
 * leaks into a task.
 *
 * Multicast off, for every process the worker starts (runners, health
 * checks, the runtime probe), whatever the worker's own environment says:
 * NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1 and
 * NVSHMEM_DISABLE_NVLS=1 (devenv_multicast_off, once at start, in the
 * worker's own environment, which every child inherits).  NVLink
 * multicast (NVLS) objects outlive a process that dies holding them, and on
 * shared multi-GPU hosts they can put the GPUs out of service for every
 * tenant; a benchmark of hfleet never needs them.
 *
 * Ownership: a struct devenv owns its strings (devenv_fini).  Pure and
 * thread-safe.
 */
#ifndef DEVICE_ENV_H
#define DEVICE_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"
#include "hw.h"

#define DEVENV_MAX 12
#define DEVENV_MAX_DEVICES 16

struct devenv {
	char *vars[DEVENV_MAX + 1]; /* "NAME=value", NULL-terminated */
	size_t n;
};

/* Builds the variables for a task of backend on n devices: indices[i] and,
 * when known, devs[i] (devs NULL, or an entry NULL: only the index is
 * known, and index-based values are used).  n is at most
 * DEVENV_MAX_DEVICES.  Returns 0, -EINVAL (too many devices) or -ENOMEM; e is
 * overwritten and must be released with devenv_fini in all cases. */
int devenv_build(Hf__Backend backend, const uint32_t *indices, const struct hw_device *const *devs,
		 size_t n, struct devenv *e);

void devenv_fini(struct devenv *e);

/* The value of a variable in e, or NULL. */
const char *devenv_get(const struct devenv *e, const char *name);

/* Whether an inherited "NAME=value" entry is one the worker decides. */
bool devenv_is_ours(const char *entry);

/* The variables that keep multicast off, and the value each must have. */
struct devenv_fixed {
	const char *name, *value;
};
extern const struct devenv_fixed devenv_multicast_vars[];
extern const size_t devenv_n_multicast_vars;

/* Sets every devenv_multicast_vars entry in this process's environment
 * (setenv: call before any thread or child starts).  Writes to changed
 * (len bytes, "" when nothing was changed) the entries that had another
 * value, as "NAME=old, ...", for the caller to log.  Returns 0 or -errno
 * (ENOMEM). */
int devenv_multicast_off(char *changed, size_t len);

#endif
