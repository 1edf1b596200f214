/* SPDX-License-Identifier: MIT
 *
 * Formatting the --probe report (see probe-report.h).
 */
#include "probe-report.h"

#include <errno.h>
#include <string.h>

#include "hf_proto.h"

json_t *probe_report_json(const struct hw_inventory *inv, const struct runtime_list *rt)
{
	const struct hw_cpu *c = &inv->cpu;
	json_t *root = json_object(), *flags = json_array(), *devices = json_array(),
	       *runtimes = json_array();
	bool ok = root && flags && devices && runtimes;

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
	for (size_t i = 0; ok && i < inv->n_devices; i++) {
		const struct hw_device *d = &inv->devices[i];
		ok = json_array_append_new(devices,
					   json_pack("{s:s, s:I, s:s, s:s, s:I, s:I}",
						     "backend", hf_backend_name(d->backend),
						     "index", (json_int_t)d->index, "name", d->name,
						     "arch", d->arch,
						     "memory_bytes", (json_int_t)d->memory_bytes,
						     "slots", (json_int_t)d->slots)) == 0;
	}
	for (size_t i = 0; ok && i < rt->n; i++) {
		const struct runtime *r = &rt->items[i];
		ok = json_array_append_new(runtimes,
					   json_pack("{s:s, s:s, s:b, s:s}", "name", r->name,
						     "version", r->version, "available",
						     r->available, "detail", r->detail)) == 0;
	}
	ok = ok && json_object_set(root, "devices", devices) == 0 &&
	     json_object_set(root, "runtimes", runtimes) == 0;

	json_decref(flags);
	json_decref(devices);
	json_decref(runtimes);
	if (!ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}

static void format_bytes(uint64_t bytes, char *buf, size_t len)
{
	if (bytes == 0)
		snprintf(buf, len, "unknown");
	else
		snprintf(buf, len, "%.1f GiB", (double)bytes / (1024.0 * 1024.0 * 1024.0));
}

static int width(const char *s, int min)
{
	int n = (int)strlen(s);
	return n > min ? n : min;
}

int probe_report_print(const struct hw_inventory *inv, const struct runtime_list *rt, FILE *f)
{
	const struct hw_cpu *c = &inv->cpu;
	char mem[32];
	int w_name = 4, w_arch = 4, w_mem = 6, w_rname = 4, w_ver = 7;

	format_bytes(c->memory_bytes, mem, sizeof(mem));
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

	for (size_t i = 0; i < inv->n_devices; i++) {
		format_bytes(inv->devices[i].memory_bytes, mem, sizeof(mem));
		w_name = width(inv->devices[i].name, w_name);
		w_arch = width(inv->devices[i].arch, w_arch);
		w_mem = width(mem, w_mem);
	}
	fprintf(f, "\nDEVICES\n  %-8s %5s  %-*s  %-*s  %-*s  %5s\n", "BACKEND", "INDEX", w_name,
		"NAME", w_arch, "ARCH", w_mem, "MEMORY", "SLOTS");
	for (size_t i = 0; i < inv->n_devices; i++) {
		const struct hw_device *d = &inv->devices[i];
		format_bytes(d->memory_bytes, mem, sizeof(mem));
		fprintf(f, "  %-8s %5u  %-*s  %-*s  %-*s  %5u\n", hf_backend_name(d->backend),
			d->index, w_name, d->name, w_arch, d->arch, w_mem, mem, d->slots);
	}

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
