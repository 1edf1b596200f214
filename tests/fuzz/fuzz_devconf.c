/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: the devices.* settings (worker/device-conf.h).  The input is
 * up to four lines, the values of devices.hide, devices.slots,
 * devices.shared and devices.declare in that order (an absent line is an
 * unset setting), which go to devconf_init as worker_conf_load hands them
 * over; a configuration that is accepted is then applied to a small probed
 * inventory with devconf_apply, as hw_inventory_detect does.
 *
 * An accepted configuration must give an inventory that keeps hw.h's and
 * device-conf.h's promises: sorted by backend and index without duplicates,
 * no hidden device left, every declared device present and marked, at least
 * one slot each, and more than one only on a shared device.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device-conf.h"
#include "hf_log.h"
#include "hw.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CPU_SLOTS 4

static struct hw_inventory inv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	hf_log_init("fuzz_devconf", HF_LOG_ERROR); /* "names a device it does not have" */
	return 0;
}

/* What a probe of a machine with a few accelerators finds. */
static void inventory_probed(void)
{
	static const struct { Hf__Backend b; unsigned index; } probed[] = {
		{ HF__BACKEND__BACKEND_CPU, 0 },     { HF__BACKEND__BACKEND_CUDA, 1 },
		{ HF__BACKEND__BACKEND_CUDA, 0 },    { HF__BACKEND__BACKEND_ROCM, 0 },
		{ HF__BACKEND__BACKEND_OPENVINO, 0 }, { HF__BACKEND__BACKEND_QNN, 0 },
	};

	inv.n_devices = 0;
	for (size_t i = 0; i < sizeof(probed) / sizeof(probed[0]); i++) {
		struct hw_device *d = hw_inventory_device_add(&inv, probed[i].b, probed[i].index);
		if (!d)
			abort();
		strcpy(d->name, "probed");
		d->memory_bytes = 1u << 30;
		if (probed[i].b == HF__BACKEND__BACKEND_CPU) {
			d->slots = CPU_SLOTS;
			d->shared = true;
		}
	}
}

/* The next line of the input from *pos as a C string (NULL when the input
 * has no more lines). */
static char *next_line(const uint8_t *data, size_t size, size_t *pos)
{
	const uint8_t *nl;
	size_t len;
	char *s;

	if (*pos > size)
		return NULL;
	nl = memchr(data + *pos, '\n', size - *pos);
	len = nl ? (size_t)(nl - (data + *pos)) : size - *pos;
	s = strndup((const char *)data + *pos, len);
	if (!s)
		abort();
	*pos += len + 1;
	return s;
}

static void check_applied(const struct devconf *dc)
{
	for (size_t i = 0; i < inv.n_devices; i++) {
		const struct hw_device *d = &inv.devices[i];
		if (i > 0) {
			const struct hw_device *prev = &inv.devices[i - 1];
			if (prev->backend > d->backend ||
			    (prev->backend == d->backend && prev->index >= d->index))
				abort(); /* out of order, or twice */
		}
		if (d->slots < 1 || (d->slots > 1 && !d->shared))
			abort();
		for (size_t h = 0; h < dc->n_hide; h++)
			if (dc->hide[h].backend == d->backend &&
			    (dc->hide[h].index < 0 || (unsigned)dc->hide[h].index == d->index))
				abort(); /* hidden, yet offered */
		if (d->slots != devconf_device_slots(dc, d->backend, d->index) && d->shared)
			abort();
	}
	for (size_t k = 0; k < dc->n_declared; k++) {
		const struct hw_device *want = &dc->declared[k].dev;
		const struct hw_device *got = hw_inventory_find(&inv, want->backend, want->index);
		if (!got || !got->declared)
			abort(); /* declared, yet missing */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;
	char *hide, *slots, *shared, *declare;
	struct devconf dc;
	char err[512];
	int r;

	if (size == 0)
		pos = 1; /* no line at all */
	hide = next_line(data, size, &pos);
	slots = next_line(data, size, &pos);
	shared = next_line(data, size, &pos);
	declare = next_line(data, size, &pos);

	err[0] = '\0';
	r = devconf_init(&dc, hide, slots, shared, declare, CPU_SLOTS, err, sizeof(err));
	if (r == 0) {
		inventory_probed();
		devconf_apply(&dc, &inv);
		check_applied(&dc);
	} else if (r != -EINVAL || !err[0]) {
		abort(); /* a refusal says what is wrong */
	}
	devconf_fini(&dc);
	free(hide);
	free(slots);
	free(shared);
	free(declare);
	return 0;
}
