/* SPDX-License-Identifier: MIT
 *
 * The device inventory's helpers for the backend modules (see
 * hw-inventory.h): adding a device, its attributes, a backend's absence
 * and the lookups.  Called during detection on the detecting thread; the
 * lookups on any thread afterwards.
 */
#include "hw-inventory.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hf_log.h"
#include "hf_util.h"

struct hw_device *hw_inventory_device_add(struct hw_inventory *inv, Hf__Backend backend,
					  unsigned index)
{
	struct hw_device *d;

	if (inv->n_devices >= HW_MAX_DEVICES) {
		log_warn("more than %d devices: %s:%u and later ones are not offered", HW_MAX_DEVICES,
			 hf_backend_name(backend), index);
		return NULL;
	}
	d = &inv->devices[inv->n_devices++];
	memset(d, 0, sizeof(*d));
	d->backend = backend;
	d->index = index;
	d->slots = 1;
	d->visible_index = -1;
	return d;
}

int hw_device_attr_set(struct hw_device *d, const char *key, const char *value)
{
	struct hw_attr *a = NULL;

	for (size_t i = 0; i < d->n_attrs && !a; i++)
		if (strcmp(d->attrs[i].key, key) == 0)
			a = &d->attrs[i];
	if (!a) {
		if (d->n_attrs >= HW_MAX_ATTRS)
			return -ENOSPC;
		a = &d->attrs[d->n_attrs++];
		hf_strlcpy(a->key, key, sizeof(a->key));
	}
	hf_strlcpy(a->value, value, sizeof(a->value));
	return 0;
}

const char *hw_device_attr(const struct hw_device *d, const char *key)
{
	for (size_t i = 0; i < d->n_attrs; i++)
		if (strcmp(d->attrs[i].key, key) == 0)
			return d->attrs[i].value;
	return NULL;
}

void hw_status_absent(struct hw_backend_status *st, const char *fmt, ...)
{
	va_list ap;

	st->present = false;
	va_start(ap, fmt);
	vsnprintf(st->reason, sizeof(st->reason), fmt, ap);
	va_end(ap);
}

/* ---- the inventory ---- */

const struct hw_device *hw_inventory_find(const struct hw_inventory *inv, Hf__Backend backend,
					  unsigned index)
{
	for (size_t i = 0; i < inv->n_devices; i++)
		if (inv->devices[i].backend == backend && inv->devices[i].index == index)
			return &inv->devices[i];
	return NULL;
}

const struct hw_backend_status *hw_inventory_backend(const struct hw_inventory *inv,
						     Hf__Backend backend)
{
	if (backend < HF__BACKEND__BACKEND_CPU || backend > HF__BACKEND__BACKEND_QNN)
		return NULL;
	return &inv->backends[backend - 1];
}
