/* SPDX-License-Identifier: MIT
 *
 * Formatting the --probe report (see probe-report.h).
 */
#include "probe-report.h"

#include <errno.h>
#include <string.h>

#include "hf_proto.h"
#include "hf_util.h"
#include "hw-util.h"

static json_t *device_json(const struct hw_device *d)
{
	json_t *attrs = json_object(), *o;

	for (size_t i = 0; attrs && i < d->n_attrs; i++)
		if (json_object_set_new(attrs, d->attrs[i].key, json_string(d->attrs[i].value)) < 0) {
			json_decref(attrs);
			return NULL;
		}
	if (!attrs)
		return NULL;
	o = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:I, s:b, s:b, s:o}", "backend",
		      hf_backend_name(d->backend), "index", (json_int_t)d->index, "name", d->name,
		      "arch", d->arch, "memory_bytes", (json_int_t)d->memory_bytes, "driver",
		      d->driver, "uuid", d->uuid, "slots", (json_int_t)d->slots, "shared", d->shared,
		      "declared", d->declared, "attrs", attrs);
	return o;
}

json_t *probe_report_json(const struct hw_inventory *inv, const struct runtime_list *rt)
{
	const struct hw_cpu *c = &inv->cpu;
	json_t *root = json_object(), *flags = json_array(), *devices = json_array(),
	       *backends = json_array(), *runtimes = json_array();
	bool ok = root && flags && devices && backends && runtimes;

	for (size_t i = 0; ok && i < c->n_flags; i++)
		ok = json_array_append_new(flags, json_string(c->flags[i])) == 0;
	ok = ok && json_object_set_new(root, "cpu",
				       json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:O}",
						 "model", c->model, "arch", c->arch,
						 "sockets", (json_int_t)c->sockets,
						 "cores", (json_int_t)c->cores,
						 "threads", (json_int_t)c->threads,
						 "numa_nodes", (json_int_t)c->numa_nodes,
						 "memory_bytes", (json_int_t)c->memory_bytes,
						 "flags", flags)) == 0;
	for (size_t i = 0; ok && i < inv->n_devices; i++)
		ok = json_array_append_new(devices, device_json(&inv->devices[i])) == 0;
	for (size_t i = 0; ok && i < HW_N_BACKENDS; i++) {
		const struct hw_backend_status *st = &inv->backends[i];
		ok = json_array_append_new(backends,
					   json_pack("{s:s, s:b, s:s, s:s, s:s}", "backend",
						     hf_backend_name(st->backend), "present",
						     st->present, "reason", st->reason, "driver",
						     st->driver, "library", st->library)) == 0;
	}
	for (size_t i = 0; ok && i < rt->n; i++) {
		const struct runtime *r = &rt->items[i];
		ok = json_array_append_new(runtimes,
					   json_pack("{s:s, s:s, s:b, s:s}", "name", r->name,
						     "version", r->version, "available",
						     r->available, "detail", r->detail)) == 0;
	}
	ok = ok && json_object_set(root, "devices", devices) == 0 &&
	     json_object_set(root, "backends", backends) == 0 &&
	     json_object_set(root, "runtimes", runtimes) == 0;

	json_decref(flags);
	json_decref(devices);
	json_decref(backends);
	json_decref(runtimes);
	if (!ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}

static int width(const char *s, int min)
{
	int n = (int)strlen(s);
	return n > min ? n : min;
}

/* "shared, declared, compute_capability=9.0, uuid=GPU-..." */
static void device_notes(const struct hw_device *d, struct hf_buf *b)
{
	if (d->shared)
		hf_buf_puts(b, "shared");
	if (d->declared)
		hf_buf_printf(b, "%sdeclared", b->len ? ", " : "");
	for (size_t i = 0; i < d->n_attrs; i++)
		hf_buf_printf(b, "%s%s=%s", b->len ? ", " : "", d->attrs[i].key, d->attrs[i].value);
	if (d->uuid[0])
		hf_buf_printf(b, "%suuid=%s", b->len ? ", " : "", d->uuid);
}

static void devices_print(const struct hw_inventory *inv, FILE *f)
{
	int w_dev = 6, w_name = 4, w_mem = 6, w_arch = 4, w_drv = 6;
	char mem[32], dev[48];

	for (size_t i = 0; i < inv->n_devices; i++) {
		const struct hw_device *d = &inv->devices[i];
		hw_bytes_format(d->memory_bytes, mem, sizeof(mem));
		snprintf(dev, sizeof(dev), "%s:%u", hf_backend_name(d->backend), d->index);
		w_dev = width(dev, w_dev);
		w_name = width(d->name, w_name);
		w_mem = width(mem, w_mem);
		w_arch = width(d->arch, w_arch);
		w_drv = width(d->driver, w_drv);
	}
	fprintf(f, "\nDEVICES\n  %-*s  %-*s  %-*s  %-*s  %-*s  %5s  %s\n", w_dev, "DEVICE", w_name,
		"NAME", w_mem, "MEMORY", w_arch, "ARCH", w_drv, "DRIVER", "SLOTS", "NOTES");
	for (size_t i = 0; i < inv->n_devices; i++) {
		const struct hw_device *d = &inv->devices[i];
		struct hf_buf notes;

		hf_buf_init(&notes);
		device_notes(d, &notes);
		hw_bytes_format(d->memory_bytes, mem, sizeof(mem));
		snprintf(dev, sizeof(dev), "%s:%u", hf_backend_name(d->backend), d->index);
		fprintf(f, "  %-*s  %-*s  %-*s  %-*s  %-*s  %5u  %s\n", w_dev, dev, w_name, d->name,
			w_mem, mem, w_arch, d->arch[0] ? d->arch : "-", w_drv,
			d->driver[0] ? d->driver : "-", d->slots, notes.data ? notes.data : "");
		hf_buf_fini(&notes);
	}
	if (inv->n_devices == 0)
		fprintf(f, "  (none)\n");
}

static void backends_print(const struct hw_inventory *inv, FILE *f)
{
	int w_drv = 6;

	for (size_t i = 0; i < HW_N_BACKENDS; i++)
		w_drv = width(inv->backends[i].driver, w_drv);
	fprintf(f, "\nBACKENDS\n  %-8s  %-7s  %-*s  %s\n", "BACKEND", "PRESENT", w_drv, "DRIVER",
		"LIBRARY OR REASON");
	for (size_t i = 0; i < HW_N_BACKENDS; i++) {
		const struct hw_backend_status *st = &inv->backends[i];
		const char *detail = st->present ? st->library : st->reason;
		/* A backend present only through declared devices keeps the
		 * probe's reason. */
		if (st->present && st->reason[0])
			detail = st->reason;
		fprintf(f, "  %-8s  %-7s  %-*s  %s\n", hf_backend_name(st->backend),
			st->present ? "yes" : "no", w_drv, st->driver[0] ? st->driver : "-", detail);
	}
}

int probe_report_print(const struct hw_inventory *inv, const struct runtime_list *rt, FILE *f)
{
	const struct hw_cpu *c = &inv->cpu;
	char mem[32];
	int w_rname = 4, w_ver = 7;

	hw_bytes_format(c->memory_bytes, mem, sizeof(mem));
	fprintf(f, "CPU\n");
	fprintf(f, "  %-12s %s\n", "model", c->model);
	fprintf(f, "  %-12s %s\n", "arch", c->arch);
	fprintf(f, "  %-12s %u\n", "sockets", c->sockets);
	fprintf(f, "  %-12s %u\n", "cores", c->cores);
	fprintf(f, "  %-12s %u\n", "threads", c->threads);
	fprintf(f, "  %-12s %u\n", "numa nodes", c->numa_nodes);
	fprintf(f, "  %-12s %s\n", "memory", mem);
	fprintf(f, "  %-12s", "flags");
	for (size_t i = 0; i < c->n_flags; i++)
		fprintf(f, " %s", c->flags[i]);
	fprintf(f, "%s\n", c->n_flags ? "" : " (none)");

	devices_print(inv, f);
	backends_print(inv, f);

	for (size_t i = 0; i < rt->n; i++) {
		w_rname = width(rt->items[i].name, w_rname);
		w_ver = width(rt->items[i].version, w_ver);
	}
	fprintf(f, "\nRUNTIMES\n  %-*s  %-*s  %-9s  %s\n", w_rname, "NAME", w_ver, "VERSION",
		"AVAILABLE", "DETAIL");
	for (size_t i = 0; i < rt->n; i++) {
		const struct runtime *r = &rt->items[i];
		fprintf(f, "  %-*s  %-*s  %-9s  %s\n", w_rname, r->name, w_ver,
			r->version[0] ? r->version : "-", r->available ? "yes" : "no", r->detail);
	}
	if (fflush(f) != 0 || ferror(f))
		return -EIO;
	return 0;
}
