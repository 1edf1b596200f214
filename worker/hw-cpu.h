/* SPDX-License-Identifier: MIT
 *
 * CPU detection: model, topology, memory, the ISA flags that matter for
 * inference, NUMA nodes and machine architecture, read from /proc and /sys.
 *
 * Every function that reads files takes a root prefix ("" for the running
 * system) so the unit tests point it at fixture trees; the parsers of file
 * contents are pure.  Detection is tolerant: a file that is missing or
 * unreadable leaves its fields at 0 or "unknown" and is logged, never fatal.
 *
 * No allocation escapes: struct hw_cpu is plain data whose flag pointers
 * refer to static strings.  Thread-safe (no global state).
 */
#ifndef HW_CPU_H
#define HW_CPU_H

#include <stddef.h>
#include <stdint.h>

#define HW_CPU_MAX_FLAGS 16

struct hw_cpu {
	char model[256];     /* "unknown" when nothing names it */
	char arch[32];       /* uname machine: x86_64, aarch64 */
	unsigned sockets;
	unsigned cores;      /* physical cores, all sockets */
	unsigned threads;    /* logical CPUs */
	unsigned usable;     /* of which this process may run on (its affinity, live system
			      * only); 0: unknown */
	unsigned numa_nodes;
	uint64_t memory_bytes;
	const char *flags[HW_CPU_MAX_FLAGS]; /* in a fixed order, static strings */
	size_t n_flags;
};

/* Detects the CPU under root.  machine is the architecture to report (NULL:
 * uname's).  On the running system (root "") values /proc does not give are
 * taken from sysconf.  Memory is the smaller of MemTotal and the cgroup v2
 * memory.max limits of this process's cgroup and its ancestors.  Returns 0
 * even when parts could not be read (they stay 0 or "unknown", with a
 * warning logged), or -EINVAL for a NULL root. */
int hw_cpu_detect(const char *root, const char *machine, struct hw_cpu *ret);

/* The logical CPUs the worker's runners can use: usable when known, else
 * threads; at least 1. */
unsigned hw_cpu_usable(const struct hw_cpu *cpu);

/* Parses /proc/cpuinfo text into model, sockets, cores, threads and flags
 * (x86 "flags" and arm64 "Features" are both understood; other fields of
 * *cpu are left alone).  Sockets are the distinct "physical id"s (1 if there
 * are none); cores the distinct (physical id, core id) pairs, else "cpu
 * cores" per socket, else one per logical CPU.  Returns 0, -ENODATA when it
 * names no processor, -ENOMEM. */
int hw_cpuinfo_parse(const char *text, struct hw_cpu *cpu);

/* Parses /proc/meminfo text; MemTotal in bytes.  Returns 0 or -ENODATA. */
int hw_meminfo_parse(const char *text, uint64_t *ret_bytes);

/* Counts the entries of a kernel cpu/node list such as "0-3,8,10-11".
 * Returns 0 or -EINVAL. */
int hw_cpulist_count(const char *text, unsigned *ret_count);

/* The name of an arm64 CPU from its "CPU implementer" and "CPU part"
 * (e.g. 0x41, 0xd40 -> "ARM Neoverse-V1"), written into buf. */
void hw_arm_cpu_name(unsigned implementer, unsigned part, char *buf, size_t len);

#endif
