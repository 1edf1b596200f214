/* SPDX-License-Identifier: MIT
 *
 * CPU detection from /proc and /sys (see hw-cpu.h).  The parsers work on
 * text so they are tested against fixture files; hw_cpu_detect is the only
 * function that reads files, always below its root prefix.
 */
#include "hw-cpu.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_util.h"

#define PROC_FILE_MAX (8u << 20)

/* The flags reported, in the order reported.  x86 names come from the
 * "flags" line, arm64 names from "Features" (asimd is NEON). */
static const char *const x86_flags[] = {
	"avx", "avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16",
	"amx_int8", "f16c", "fma", "sse4_2",
};
static const char *const arm_flags[] = { "asimd", "sve", "sve2", "bf16", "i8mm" };

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- arm64 names ---- */

struct arm_part {
	unsigned implementer, part;
	const char *name;
};

static const struct {
	unsigned id;
	const char *name;
} arm_implementers[] = {
	{ 0x41, "ARM" }, { 0x42, "Broadcom" }, { 0x43, "Cavium" }, { 0x46, "Fujitsu" },
	{ 0x48, "HiSilicon" }, { 0x4e, "NVIDIA" }, { 0x50, "APM" }, { 0x51, "Qualcomm" },
	{ 0x61, "Apple" }, { 0x6d, "Microsoft" }, { 0xc0, "Ampere" },
};

static const struct arm_part arm_parts[] = {
	{ 0x41, 0xd03, "Cortex-A53" },   { 0x41, 0xd04, "Cortex-A35" },
	{ 0x41, 0xd05, "Cortex-A55" },   { 0x41, 0xd07, "Cortex-A57" },
	{ 0x41, 0xd08, "Cortex-A72" },   { 0x41, 0xd09, "Cortex-A73" },
	{ 0x41, 0xd0a, "Cortex-A75" },   { 0x41, 0xd0b, "Cortex-A76" },
	{ 0x41, 0xd0c, "Neoverse-N1" },  { 0x41, 0xd0d, "Cortex-A77" },
	{ 0x41, 0xd40, "Neoverse-V1" },  { 0x41, 0xd41, "Cortex-A78" },
	{ 0x41, 0xd44, "Cortex-X1" },    { 0x41, 0xd46, "Cortex-A510" },
	{ 0x41, 0xd47, "Cortex-A710" },  { 0x41, 0xd48, "Cortex-X2" },
	{ 0x41, 0xd49, "Neoverse-N2" },  { 0x41, 0xd4a, "Neoverse-E1" },
	{ 0x41, 0xd4f, "Neoverse-V2" },  { 0x41, 0xd80, "Cortex-A520" },
	{ 0x41, 0xd81, "Cortex-A720" },  { 0x41, 0xd82, "Cortex-X4" },
	{ 0x41, 0xd84, "Neoverse-V3" },  { 0x41, 0xd8e, "Neoverse-N3" },
	{ 0x46, 0x001, "A64FX" },        { 0x48, 0xd01, "Kunpeng-920" },
	{ 0xc0, 0xac3, "Ampere-1" },     { 0xc0, 0xac4, "Ampere-1a" },
};

void hw_arm_cpu_name(unsigned implementer, unsigned part, char *buf, size_t len)
{
	const char *vendor = NULL;

	for (size_t i = 0; i < N_ELEM(arm_implementers); i++)
		if (arm_implementers[i].id == implementer)
			vendor = arm_implementers[i].name;
	for (size_t i = 0; i < N_ELEM(arm_parts); i++) {
		if (arm_parts[i].implementer == implementer && arm_parts[i].part == part) {
			snprintf(buf, len, "%s %s", vendor, arm_parts[i].name);
			return;
		}
	}
	if (vendor)
		snprintf(buf, len, "%s part 0x%03x", vendor, part);
	else
		snprintf(buf, len, "arm64 implementer 0x%02x part 0x%03x", implementer, part);
}

/* ---- /proc/cpuinfo ---- */

struct logical_cpu {
	long physical_id;
	long core_id;
};

static int logical_cpu_cmp(const void *a, const void *b)
{
	const struct logical_cpu *x = a, *y = b;

	if (x->physical_id != y->physical_id)
		return x->physical_id < y->physical_id ? -1 : 1;
	if (x->core_id != y->core_id)
		return x->core_id < y->core_id ? -1 : 1;
	return 0;
}

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n) {
		bool starts = p == list || p[-1] == ' ' || p[-1] == '\t';
		bool ends = p[n] == '\0' || p[n] == ' ' || p[n] == '\t';
		if (starts && ends)
			return true;
	}
	return false;
}

static void add_flags(struct hw_cpu *cpu, const char *list, const char *const *wanted, size_t n)
{
	for (size_t i = 0; i < n && cpu->n_flags < HW_CPU_MAX_FLAGS; i++)
		if (has_word(list, wanted[i]))
			cpu->flags[cpu->n_flags++] = wanted[i];
}

static bool parse_long(const char *s, int base, long *ret)
{
	char *end;

	errno = 0;
	long v = strtol(s, &end, base);
	if (errno || end == s || *end)
		return false;
	*ret = v;
	return true;
}

/* Splits one "key<blanks>: value" line in place; false for other lines. */
static bool split_line(char *line, char **ret_key, char **ret_value)
{
	char *colon = strchr(line, ':');
	char *k_end, *v;

	if (!colon)
		return false;
	k_end = colon;
	while (k_end > line && (k_end[-1] == ' ' || k_end[-1] == '\t'))
		k_end--;
	*k_end = '\0';
	v = colon + 1;
	v += strspn(v, " \t");
	for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r');)
		*--e = '\0';
	*ret_key = line;
	*ret_value = v;
	return true;
}

int hw_cpuinfo_parse(const char *text, struct hw_cpu *cpu)
{
	struct logical_cpu *cpus = NULL;
	size_t n = 0, cap = 0;
	char model[sizeof(cpu->model)] = "", fallback[sizeof(cpu->model)] = "";
	long implementer = -1, part = -1, cores_per_socket = 0;
	bool have_flags = false;
	char *copy = strdup(text);
	int r = 0;

	if (!copy)
		return -ENOMEM;
	cpu->n_flags = 0;
	for (char *line = copy, *next; line; line = next) {
		char *key, *value;
		long v;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!split_line(line, &key, &value))
			continue;

		if (strcmp(key, "processor") == 0 && parse_long(value, 10, &v)) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct logical_cpu *grown = realloc(cpus, ncap * sizeof(*cpus));
				if (!grown) {
					r = -ENOMEM;
					goto out;
				}
				cpus = grown;
				cap = ncap;
			}
			cpus[n++] = (struct logical_cpu){ -1, -1 };
		} else if (strcmp(key, "physical id") == 0 && n > 0 && parse_long(value, 10, &v)) {
			cpus[n - 1].physical_id = v;
		} else if (strcmp(key, "core id") == 0 && n > 0 && parse_long(value, 10, &v)) {
			cpus[n - 1].core_id = v;
		} else if (strcmp(key, "cpu cores") == 0 && !cores_per_socket && parse_long(value, 10, &v)) {
			cores_per_socket = v > 0 ? v : 0;
		} else if (strcmp(key, "model name") == 0 && !model[0]) {
			hf_strlcpy(model, value, sizeof(model));
		} else if (strcmp(key, "CPU implementer") == 0 && implementer < 0) {
			if (!parse_long(value, 0, &implementer))
				implementer = -1;
		} else if (strcmp(key, "CPU part") == 0 && part < 0) {
			if (!parse_long(value, 0, &part))
				part = -1;
		} else if (!fallback[0] && *value &&
			   (strcmp(key, "Processor") == 0 || strcmp(key, "cpu model") == 0 ||
			    strcmp(key, "uarch") == 0 || strcmp(key, "cpu") == 0)) {
			hf_strlcpy(fallback, value, sizeof(fallback));
		} else if (strcmp(key, "flags") == 0 && !have_flags) {
			add_flags(cpu, value, x86_flags, N_ELEM(x86_flags));
			have_flags = true;
		} else if (strcmp(key, "Features") == 0 && !have_flags) {
			add_flags(cpu, value, arm_flags, N_ELEM(arm_flags));
			have_flags = true;
		}
	}
	if (n == 0) {
		r = -ENODATA;
		goto out;
	}

	if (model[0])
		hf_strlcpy(cpu->model, model, sizeof(cpu->model));
	else if (implementer >= 0 && part >= 0)
		hw_arm_cpu_name((unsigned)implementer, (unsigned)part, cpu->model, sizeof(cpu->model));
	else if (fallback[0])
		hf_strlcpy(cpu->model, fallback, sizeof(cpu->model));
	else
		hf_strlcpy(cpu->model, "unknown", sizeof(cpu->model));

	cpu->threads = (unsigned)n;
	qsort(cpus, n, sizeof(*cpus), logical_cpu_cmp);
	unsigned sockets = 0, cores = 0;
	bool core_ids = false;
	for (size_t i = 0; i < n; i++) {
		bool new_socket = i == 0 || cpus[i].physical_id != cpus[i - 1].physical_id;
		if (cpus[i].physical_id >= 0 && new_socket)
			sockets++;
		if (cpus[i].core_id >= 0) {
			core_ids = true;
			if (new_socket || cpus[i].core_id != cpus[i - 1].core_id)
				cores++;
		}
	}
	cpu->sockets = sockets ? sockets : 1;
	if (core_ids)
		cpu->cores = cores;
	else if (cores_per_socket)
		cpu->cores = (unsigned)cores_per_socket * cpu->sockets;
	else
		cpu->cores = cpu->threads;

out:
	free(cpus);
	free(copy);
	return r;
}

unsigned hw_cpu_usable(const struct hw_cpu *cpu)
{
	unsigned n = cpu->threads;

	if (cpu->usable && (!n || cpu->usable < n))
		n = cpu->usable;
	return n ? n : 1;
}

/* ---- /proc/meminfo, lists ---- */

int hw_meminfo_parse(const char *text, uint64_t *ret_bytes)
{
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		unsigned long long kb;
		char unit[8];

		if (strncmp(p, "MemTotal:", 9) != 0)
			continue;
		if (sscanf(p + 9, "%llu %7s", &kb, unit) != 2 || strcmp(unit, "kB") != 0)
			return -ENODATA;
		*ret_bytes = (uint64_t)kb * 1024;
		return 0;
	}
	return -ENODATA;
}

int hw_cpulist_count(const char *text, unsigned *ret_count)
{
	unsigned count = 0;
	const char *p = text;

	p += strspn(p, " \t\n");
	if (!*p)
		return -EINVAL;
	for (;;) {
		char *end;
		unsigned long lo, hi;

		errno = 0;
		lo = strtoul(p, &end, 10);
		if (errno || end == p)
			return -EINVAL;
		hi = lo;
		p = end;
		if (*p == '-') {
			p++;
			hi = strtoul(p, &end, 10);
			if (errno || end == p || hi < lo)
				return -EINVAL;
			p = end;
		}
		count += (unsigned)(hi - lo + 1);
		if (*p != ',')
			break;
		p++;
	}
	p += strspn(p, " \t\n");
	if (*p)
		return -EINVAL;
	*ret_count = count;
	return 0;
}

/* ---- detection ---- */

static int read_under(const char *root, const char *rel, char **ret_text)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s%s", root, rel) >= sizeof(path))
		return -ENAMETOOLONG;
	return hf_read_file(path, PROC_FILE_MAX, ret_text, NULL);
}

static bool read_memory_max(const char *root, const char *cgroup, uint64_t *ret_limit)
{
	char rel[4096], *text = NULL, *end;
	unsigned long long v;
	bool ok;

	if ((size_t)snprintf(rel, sizeof(rel), "/sys/fs/cgroup%s/memory.max",
			     strcmp(cgroup, "/") == 0 ? "" : cgroup) >= sizeof(rel))
		return false;
	if (read_under(root, rel, &text) < 0)
		return false;
	errno = 0;
	v = strtoull(text, &end, 10); /* "max" (no limit) does not parse */
	ok = !errno && end != text && (*end == '\n' || *end == '\0');
	if (ok)
		*ret_limit = v;
	free(text);
	return ok;
}

/* The smallest cgroup v2 memory.max from this process's cgroup up to the
 * root; false when none is set (or cgroup v2 is not in use). */
static bool cgroup_memory_limit(const char *root, uint64_t *ret_limit)
{
	char *text = NULL, *path = NULL;
	uint64_t limit = UINT64_MAX, v;
	bool found = false;

	if (read_under(root, "/proc/self/cgroup", &text) < 0)
		return false;
	for (char *line = text; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (strncmp(line, "0::/", 4) == 0) {
			path = line + 3;
			path[strcspn(path, "\n")] = '\0';
			break;
		}
	}
	while (path) {
		if (read_memory_max(root, path, &v) && v < limit) {
			limit = v;
			found = true;
		}
		if (strcmp(path, "/") == 0)
			break;
		char *slash = strrchr(path, '/');
		if (slash == path)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	free(text);
	if (found)
		*ret_limit = limit;
	return found;
}

int hw_cpu_detect(const char *root, const char *machine, struct hw_cpu *ret)
{
	struct hw_cpu cpu;
	bool live;
	char *text = NULL;
	uint64_t limit;
	int r;

	if (!root)
		return -EINVAL;
	live = root[0] == '\0';
	memset(&cpu, 0, sizeof(cpu));
	hf_strlcpy(cpu.model, "unknown", sizeof(cpu.model));

	r = read_under(root, "/proc/cpuinfo", &text);
	if (r == 0)
		r = hw_cpuinfo_parse(text, &cpu);
	free(text);
	text = NULL;
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		log_warn("could not read the CPU description from %s/proc/cpuinfo: %s, ignoring", root,
			 strerror(-r));
	if (cpu.threads == 0 && live) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n > 0) {
			cpu.threads = cpu.cores = (unsigned)n;
			cpu.sockets = 1;
		}
	}

	if (live) {
		cpu_set_t set;
		if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
			cpu.usable = (unsigned)CPU_COUNT(&set);
	}

	r = read_under(root, "/proc/meminfo", &text);
	if (r == 0)
		r = hw_meminfo_parse(text, &cpu.memory_bytes);
	free(text);
	text = NULL;
	if (r < 0) {
		log_warn("could not read the memory size from %s/proc/meminfo: %s, ignoring", root,
			 strerror(-r));
		if (live) {
			long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
			if (pages > 0 && size > 0)
				cpu.memory_bytes = (uint64_t)pages * (uint64_t)size;
		}
	}
	if (cgroup_memory_limit(root, &limit) && limit < cpu.memory_bytes) {
		log_debug("memory limited by the cgroup to %" PRIu64 " bytes", limit);
		cpu.memory_bytes = limit;
	}

	cpu.numa_nodes = 1;
	if (read_under(root, "/sys/devices/system/node/online", &text) == 0) {
		unsigned nodes;
		if (hw_cpulist_count(text, &nodes) == 0 && nodes > 0)
			cpu.numa_nodes = nodes;
		free(text);
	}

	if (machine) {
		hf_strlcpy(cpu.arch, machine, sizeof(cpu.arch));
	} else {
		struct utsname u;
		hf_strlcpy(cpu.arch, uname(&u) == 0 ? u.machine : "unknown", sizeof(cpu.arch));
	}
	*ret = cpu;
	return 0;
}
