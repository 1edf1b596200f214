/* SPDX-License-Identifier: MIT
 *
 * Qualcomm QNN: the Hexagon NPU (HTP) through the QNN SDK's backend
 * library.  The library is libQnnHtp.so from the SDK (QNN_SDK_ROOT or
 * hardware.qnn_sdk_root, in lib/<target>/ for this machine: on aarch64
 * aarch64-oe-linux-gcc11.2, aarch64-ubuntu-gcc9.4, aarch64-oe-linux-gcc9.3,
 * aarch64-oe-linux-gcc8.2 or aarch64-android; on x86_64 x86_64-linux-clang),
 * else wherever the dynamic linker finds it.  It is loaded at run time and
 * asked for its interface providers (QnnInterface_getProviders), which names
 * the backend and its QNN API version.  The HTP runs on the compute DSP,
 * reached through FastRPC: the backend is present only with a node
 * /dev/fastrpc-cdsp* or /dev/adsprpc-smd*.
 *
 * One device, qnn:0, "Qualcomm Hexagon HTP", whose arch is the HTP version
 * ("v75") when the SoC is known from /sys/devices/soc0/machine (a short
 * table of Snapdragon parts), else empty: declare it with devices.declare
 * ("qnn:0:arch=v75").  Its library (Device.library, HFLEET_QNN_BACKEND for
 * the runner) is the path that was loaded.  Memory is shared with the CPU
 * and reported as unknown (0) unless declared.  No telemetry.
 *
 * The library is loaded with RTLD_NODELETE and never unloaded.  /dev and
 * /sys are read below a root prefix; the SDK root is used as given.
 */
#ifndef HW_QNN_H
#define HW_QNN_H

#include <stddef.h>

#include "hw-inventory.h"

/* Adds qnn:0 to inv when the backend is present, and fills st.  sdk_root
 * NULL or "": none (the library is looked up by name).  machine: uname's
 * machine ("aarch64", "x86_64").  Returns 0 (absence is not an error). */
int hw_qnn_probe(const char *root, const char *sdk_root, const char *machine,
		 struct hw_inventory *inv, struct hw_backend_status *st);

/* The HTP version of a Snapdragon part ("SM8650" -> "v75"), or NULL. */
const char *hw_qnn_htp_arch(const char *soc);

#endif
