/* SPDX-License-Identifier: MIT
 *
 * What the configuration says about devices, parsed from four settings and
 * applied to a detected inventory.  Pure: no I/O besides log lines about
 * entries that matched nothing.
 *
 *   devices.hide     "cuda:1,rocm:0" hides those devices; "cuda" hides the
 *                    whole backend, which is then not even probed.
 *   devices.slots    "cuda=1,cpu=4,cuda:3=2": tasks a device runs at once,
 *                    per backend or per device (a device entry wins over
 *                    its backend's, whatever the order).  Default: 1 for an
 *                    accelerator, worker.slots for the CPU.  "auto"
 *                    ("cuda=auto") sizes the device from the machine
 *                    (devconf_auto_slots) and makes it shared by itself.
 *   devices.shared   devices or backends whose slots may run different
 *                    tasks at once.  Default "cpu".  A device not listed
 *                    runs one task at a time, so giving it more than one
 *                    slot is refused at start.
 *   devices.declare  devices the probe cannot find or describe, entries
 *                    separated by ';': "qnn:0:name=Hexagon HTP v75:
 *                    memory=8GiB:arch=v75;openvino:0:name=NPU".  After
 *                    "backend:index" come key=value fields: name, memory
 *                    (bytes, or with KiB MiB GiB TiB / KB MB GB TB / K M G
 *                    T), arch, driver, uuid, and attr.<key> for any
 *                    attribute (attr.ov_device=NPU).  A declared device that
 *                    the probe also found keeps the probed fields the
 *                    declaration does not give.  Declared devices carry
 *                    declared = true.
 *
 * Selectors are "backend" or "backend:index" with the names cpu, cuda, rocm,
 * mps, openvino, qnn; blanks around items are ignored.
 *
 * Ownership: a struct devconf owns its arrays (devconf_fini).  Not
 * thread-safe to build; read-only and shareable once built.
 */
#ifndef DEVICE_CONF_H
#define DEVICE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_proto.h"
#include "hw.h"

struct devconf_sel {
	Hf__Backend backend;
	int index; /* -1: every device of the backend */
};

struct devconf_slot {
	struct devconf_sel sel;
	unsigned slots;  /* 0 when automatic */
	bool automatic;  /* "auto": decided by devconf_apply */
};

/* devices.slot_memory's default: the device memory one auto slot needs. */
#define DEVCONF_SLOT_MEMORY (UINT64_C(8) << 30)

enum {
	DEVCONF_NAME = 1 << 0,
	DEVCONF_MEMORY = 1 << 1,
	DEVCONF_ARCH = 1 << 2,
	DEVCONF_DRIVER = 1 << 3,
	DEVCONF_UUID = 1 << 4,
};

struct devconf_declared {
	struct hw_device dev; /* backend, index and the fields given */
	unsigned fields;      /* DEVCONF_* given */
};

struct devconf {
	struct devconf_sel *hide;
	size_t n_hide;
	struct devconf_slot *slots;
	size_t n_slots;
	struct devconf_sel *shared;
	size_t n_shared;
	struct devconf_declared *declared;
	size_t n_declared;
	unsigned cpu_slots; /* worker.slots */
	uint64_t slot_memory; /* devices.slot_memory; 0: DEVCONF_SLOT_MEMORY */
};

/* Parses the four settings' values (NULL = empty; shared NULL = "cpu") and
 * checks them together.  Returns 0, -EINVAL with a message in err that names
 * the setting and the bad item, or -ENOMEM.  dc is overwritten; call
 * devconf_fini in all cases. */
int devconf_init(struct devconf *dc, const char *hide, const char *slots, const char *shared,
		 const char *declare, unsigned cpu_slots, char *err, size_t errlen);
void devconf_fini(struct devconf *dc);

/* The parsers devconf_init uses, each for one setting's value; err gets
 * what is wrong without the setting's name.  Arrays are the caller's
 * (free). */
int devconf_sels_parse(const char *text, struct devconf_sel **ret, size_t *ret_n, char *err,
		       size_t errlen);
int devconf_slots_parse(const char *text, struct devconf_slot **ret, size_t *ret_n, char *err,
			size_t errlen);
int devconf_declare_parse(const char *text, struct devconf_declared **ret, size_t *ret_n,
			  char *err, size_t errlen);

/* "8GiB" -> 8589934592.  Returns 0 or -EINVAL (also on overflow). */
int devconf_memory_parse(const char *text, uint64_t *ret);

/* Whether devices.hide names the whole backend. */
bool devconf_backend_hidden(const struct devconf *dc, Hf__Backend backend);

/* The slots and sharing of a device under this configuration. */
unsigned devconf_device_slots(const struct devconf *dc, Hf__Backend backend, unsigned index);
bool devconf_device_shared(const struct devconf *dc, Hf__Backend backend, unsigned index);

/* Whether devices.slots says "auto" for the device (devconf_device_slots
 * then says 1 until devconf_apply decides; the device is shared). */
bool devconf_device_auto(const struct devconf *dc, Hf__Backend backend, unsigned index);

/* The slots of an auto device: min(cpus / n_auto, memory_bytes /
 * slot_memory), at least 1 and at most 256; memory_bytes 0 (unknown) leaves
 * the CPUs alone to decide.  why (len bytes, may be NULL) gets the reason,
 * as "16 CPUs, 141 GiB / 8 GiB". */
unsigned devconf_auto_slots(unsigned cpus, unsigned n_auto, uint64_t memory_bytes,
			    uint64_t slot_memory, char *why, size_t len);

/* Applies dc to a detected inventory: drops hidden devices, merges the
 * declared ones (marking their backend present), sorts the devices by
 * backend and index, and sets every device's slots and shared flag (auto
 * devices from inv->cpu and their memory, logged, with the reason in their
 * attribute slots_auto).  dc NULL applies the defaults (cpu shared with
 * cpu_slots from the device). */
void devconf_apply(const struct devconf *dc, struct hw_inventory *inv);

#endif
