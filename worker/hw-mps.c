/* SPDX-License-Identifier: MIT
 *
 * Apple MPS detection (see hw-mps.h).
 *
 * On Linux (the only system hfleet is built and tested on today) this file
 * reports the backend absent and that is all it does.  The macOS part below
 * is written against the Objective-C runtime's C interface, so it needs no
 * Objective-C compiler, but it HAS NEVER BEEN COMPILED OR RUN: the rest of
 * hf-worker does not build on macOS yet (it reads /proc, uses glibc's
 * sigabbrev_np).  Treat it as the plan for the macOS port, not as a
 * working backend: MTLCreateSystemDefaultDevice gives the Metal device;
 * its name, recommendedMaxWorkingSetSize (the memory a process may use on a
 * unified-memory Mac) and registryID are read with objc_msgSend.
 */
#include "hw-mps.h"

#include <string.h>

#include "hf_util.h"

#ifdef __APPLE__

#include <inttypes.h>
#include <objc/message.h>
#include <objc/runtime.h>
#include <stdio.h>

/* Metal.framework; id<MTLDevice> is an Objective-C object pointer. */
extern id MTLCreateSystemDefaultDevice(void);

int hw_mps_probe(struct hw_inventory *inv, struct hw_backend_status *st)
{
	id dev = MTLCreateSystemDefaultDevice();
	id name;
	const char *utf8;
	uint64_t bytes, registry;
	struct hw_device *d;
	char buf[32];

	if (!dev) {
		hw_status_absent(st, "MTLCreateSystemDefaultDevice found no Metal device");
		return 0;
	}
	d = hw_inventory_device_add(inv, HF__BACKEND__BACKEND_MPS, 0);
	if (!d) {
		hw_status_absent(st, "the device list is full");
		((void (*)(id, SEL))objc_msgSend)(dev, sel_registerName("release"));
		return 0;
	}
	name = ((id (*)(id, SEL))objc_msgSend)(dev, sel_registerName("name"));
	utf8 = name ? ((const char *(*)(id, SEL))objc_msgSend)(name, sel_registerName("UTF8String"))
		    : NULL;
	hf_strlcpy(d->name, utf8 && *utf8 ? utf8 : "Apple GPU", sizeof(d->name));
	bytes = ((uint64_t (*)(id, SEL))objc_msgSend)(dev,
						     sel_registerName("recommendedMaxWorkingSetSize"));
	d->memory_bytes = bytes;
	registry = ((uint64_t (*)(id, SEL))objc_msgSend)(dev, sel_registerName("registryID"));
	snprintf(buf, sizeof(buf), "%" PRIx64, registry);
	hw_device_attr_set(d, "registry_id", buf);
	hf_strlcpy(d->arch, "metal", sizeof(d->arch));
	((void (*)(id, SEL))objc_msgSend)(dev, sel_registerName("release"));
	st->present = true;
	st->reason[0] = '\0';
	hf_strlcpy(st->library, "Metal.framework", sizeof(st->library));
	return 0;
}

#else /* not __APPLE__ */

int hw_mps_probe(struct hw_inventory *inv, struct hw_backend_status *st)
{
	(void)inv;
	hw_status_absent(st, HW_MPS_ABSENT_REASON);
	return 0;
}

#endif
