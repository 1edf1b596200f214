/* SPDX-License-Identifier: MIT
 *
 * The device inventory (see hw.h).  Backends are detected in a fixed order
 * so device lists are stable from one start to the next.
 */
#include "hw.h"

#include <string.h>

#include "hf_util.h"

static void inventory_add_cpu(struct hw_inventory *inv, unsigned slots)
{
	struct hw_device *d = &inv->devices[inv->n_devices++];

	memset(d, 0, sizeof(*d));
	d->backend = HF__BACKEND__BACKEND_CPU;
	d->index = 0;
	hf_strlcpy(d->name, inv->cpu.model, sizeof(d->name));
	hf_strlcpy(d->arch, inv->cpu.arch, sizeof(d->arch));
	d->memory_bytes = inv->cpu.memory_bytes;
	d->slots = slots;
}

int hw_inventory_detect(const char *root, unsigned cpu_slots, struct hw_inventory *ret)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	r = hw_cpu_detect(root, NULL, &ret->cpu);
	if (r < 0)
		return r;
	inventory_add_cpu(ret, cpu_slots);
	/* Accelerator backends add their devices here. */
	return 0;
}

const struct hw_device *hw_inventory_find(const struct hw_inventory *inv, Hf__Backend backend,
					  unsigned index)
{
	for (size_t i = 0; i < inv->n_devices; i++)
		if (inv->devices[i].backend == backend && inv->devices[i].index == index)
			return &inv->devices[i];
	return NULL;
}
