/* SPDX-License-Identifier: MIT
 *
 * Prometheus metric families and their text rendering (see hf_metrics.h
 * for the threading rules: updates are relaxed atomics from any thread,
 * rendering reads them from any thread).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hf_metrics.h"
#include "hf_proto.h"

static const char *const type_name[] = { "counter", "gauge", "histogram" };

struct hf_metric *hf_metric_new(enum hf_metric_type type, const char *name, const char *help,
				size_t n_series, const double *bounds, size_t n_bounds)
{
	struct hf_metric *m;

	if (!name || !help || n_series == 0 || n_series > HF_METRIC_MAX_SERIES ||
	    (type == HF_METRIC_HISTOGRAM && (!bounds || n_bounds == 0 || n_bounds > HF_METRIC_MAX_BUCKETS)) ||
	    (type != HF_METRIC_HISTOGRAM && n_bounds))
		return NULL;
	for (size_t k = 1; k < n_bounds; k++)
		if (!(bounds[k] > bounds[k - 1]))
			return NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->name = name;
	m->help = help;
	m->type = type;
	m->n_series = n_series;
	m->labels = calloc(n_series, sizeof(*m->labels));
	if (!m->labels)
		goto fail;
	if (type == HF_METRIC_HISTOGRAM) {
		m->bounds = bounds;
		m->n_bounds = n_bounds;
		m->bounds_us = calloc(n_bounds, sizeof(*m->bounds_us));
		m->bucket = calloc(n_series * (n_bounds + 1), sizeof(*m->bucket));
		m->sum_us = calloc(n_series, sizeof(*m->sum_us));
		if (!m->bounds_us || !m->bucket || !m->sum_us)
			goto fail;
		for (size_t k = 0; k < n_bounds; k++)
			m->bounds_us[k] = (uint64_t)llround(bounds[k] * 1e6);
	} else {
		m->value = calloc(n_series, sizeof(*m->value));
		if (!m->value)
			goto fail;
	}
	return m;
fail:
	hf_metric_free(m);
	return NULL;
}

void hf_metric_free(struct hf_metric *m)
{
	if (!m)
		return;
	for (size_t i = 0; m->labels && i < m->n_series; i++)
		free(m->labels[i]);
	free(m->labels);
	free(m->value);
	free(m->bounds_us);
	free(m->bucket);
	free(m->sum_us);
	free(m);
}

/* A label name as the format allows: [a-zA-Z_][a-zA-Z0-9_]*. */
static bool label_name_ok(const char *s)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_'))
			return false;
	return true;
}

int hf_metric_labels(struct hf_metric *m, size_t i, const char *const *names,
		     const char *const *values, size_t n)
{
	struct hf_buf b;

	if (!m || i >= m->n_series || n > HF_METRIC_MAX_LABELS)
		return -EINVAL;
	for (size_t k = 0; k < n; k++)
		if (!label_name_ok(names[k]) || strcmp(names[k], "le") == 0 || !values[k])
			return -EINVAL;
	hf_buf_init(&b);
	for (size_t k = 0; k < n; k++) {
		hf_buf_printf(&b, "%s%s=\"", k ? "," : "", names[k]);
		hf_metrics_label_value(&b, values[k]);
		hf_buf_puts(&b, "\"");
	}
	if (b.oom) {
		hf_buf_fini(&b);
		return -ENOMEM;
	}
	free(m->labels[i]);
	m->labels[i] = n ? b.data : NULL;
	if (!n)
		hf_buf_fini(&b);
	return 0;
}

void hf_metric_add(struct hf_metric *m, size_t i, uint64_t n)
{
	if (m && m->value && i < m->n_series)
		atomic_fetch_add_explicit(&m->value[i], n, memory_order_relaxed);
}

void hf_metric_set(struct hf_metric *m, size_t i, int64_t v)
{
	if (m && m->value && i < m->n_series)
		atomic_store_explicit(&m->value[i], (uint64_t)v, memory_order_relaxed);
}

void hf_metric_observe_us(struct hf_metric *m, size_t i, uint64_t us)
{
	size_t k = 0;

	if (!m || !m->bucket || i >= m->n_series)
		return;
	while (k < m->n_bounds && us > m->bounds_us[k])
		k++;
	atomic_fetch_add_explicit(&m->bucket[i * (m->n_bounds + 1) + k], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_us[i], us, memory_order_relaxed);
}

uint64_t hf_metric_get(const struct hf_metric *m, size_t i)
{
	if (!m || i >= m->n_series)
		return 0;
	if (m->value)
		return atomic_load_explicit(&m->value[i], memory_order_relaxed);
	uint64_t n = 0;
	for (size_t k = 0; k <= m->n_bounds; k++)
		n += atomic_load_explicit(&m->bucket[i * (m->n_bounds + 1) + k], memory_order_relaxed);
	return n;
}

/* ---- rendering ---- */

void hf_metrics_format_double(char *out, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(out, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* Whole numbers as integers: le="10", not le="1e+01". */
	if (v == floor(v) && fabs(v) < 9007199254740992.0) {
		snprintf(out, len, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, len, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* Appends s escaped as the text format wants: \ and newline always, " in
 * a label value (quoted) but not in HELP text. */
static void escaped_put(struct hf_buf *b, const char *s, bool quoted)
{
	for (; *s; s++) {
		if (*s == '\\')
			hf_buf_puts(b, "\\\\");
		else if (quoted && *s == '"')
			hf_buf_puts(b, "\\\"");
		else if (*s == '\n')
			hf_buf_puts(b, "\\n");
		else
			hf_buf_append(b, s, 1);
	}
}

void hf_metrics_header(struct hf_buf *b, const char *name, const char *help, enum hf_metric_type type)
{
	hf_buf_printf(b, "# HELP %s ", name);
	escaped_put(b, help, false);
	hf_buf_printf(b, "\n# TYPE %s %s\n", name, type_name[type]);
}

void hf_metrics_label_value(struct hf_buf *b, const char *s)
{
	escaped_put(b, s, true);
}

static void sample_name(struct hf_buf *b, const char *name, const char *suffix, const char *labels,
			const char *extra)
{
	bool any = (labels && *labels) || extra;

	hf_buf_puts(b, name);
	hf_buf_puts(b, suffix);
	if (!any)
		return;
	hf_buf_puts(b, "{");
	if (labels && *labels)
		hf_buf_puts(b, labels);
	if (extra) {
		if (labels && *labels)
			hf_buf_puts(b, ",");
		hf_buf_puts(b, extra);
	}
	hf_buf_puts(b, "}");
}

void hf_metrics_sample_u64(struct hf_buf *b, const char *name, const char *labels, uint64_t v)
{
	sample_name(b, name, "", labels, NULL);
	hf_buf_printf(b, " %" PRIu64 "\n", v);
}

void hf_metrics_sample_i64(struct hf_buf *b, const char *name, const char *labels, int64_t v)
{
	sample_name(b, name, "", labels, NULL);
	hf_buf_printf(b, " %" PRId64 "\n", v);
}

void hf_metrics_sample_double(struct hf_buf *b, const char *name, const char *labels, double v)
{
	char num[40];

	hf_metrics_format_double(num, sizeof(num), v);
	sample_name(b, name, "", labels, NULL);
	hf_buf_printf(b, " %s\n", num);
}

static void render_histogram_series(const struct hf_metric *m, size_t i, struct hf_buf *b)
{
	const _Atomic uint64_t *bk = &m->bucket[i * (m->n_bounds + 1)];
	uint64_t cum = 0;
	char le[48], num[40];

	for (size_t k = 0; k <= m->n_bounds; k++) {
		cum += atomic_load_explicit(&bk[k], memory_order_relaxed);
		if (k < m->n_bounds) {
			hf_metrics_format_double(num, sizeof(num), m->bounds[k]);
			snprintf(le, sizeof(le), "le=\"%s\"", num);
		} else {
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		}
		sample_name(b, m->name, "_bucket", m->labels[i], le);
		hf_buf_printf(b, " %" PRIu64 "\n", cum);
	}
	hf_metrics_format_double(num, sizeof(num),
				 (double)atomic_load_explicit(&m->sum_us[i], memory_order_relaxed) / 1e6);
	sample_name(b, m->name, "_sum", m->labels[i], NULL);
	hf_buf_printf(b, " %s\n", num);
	/* _count equals the +Inf bucket by definition: the same number. */
	sample_name(b, m->name, "_count", m->labels[i], NULL);
	hf_buf_printf(b, " %" PRIu64 "\n", cum);
}

void hf_metric_render(const struct hf_metric *m, struct hf_buf *b)
{
	if (!m)
		return;
	hf_metrics_header(b, m->name, m->help, m->type);
	for (size_t i = 0; i < m->n_series; i++) {
		switch (m->type) {
		case HF_METRIC_COUNTER:
			hf_metrics_sample_u64(b, m->name, m->labels[i], hf_metric_get(m, i));
			break;
		case HF_METRIC_GAUGE:
			hf_metrics_sample_i64(b, m->name, m->labels[i], (int64_t)hf_metric_get(m, i));
			break;
		case HF_METRIC_HISTOGRAM:
			render_histogram_series(m, i, b);
			break;
		}
	}
}

/* ---- process and build ---- */

/* Open file descriptors: the entries of /proc/self/fd, less the one
 * opendir holds; -1 when it cannot be read. */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

void hf_metrics_render_process(struct hf_buf *b, double start_time_s)
{
	struct rusage ru;
	struct rlimit rl;
	unsigned long long vsize_pages = 0, rss_pages = 0;
	long page = sysconf(_SC_PAGESIZE);
	long fds = open_fds();
	FILE *f;

	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		hf_metrics_header(b, "process_cpu_seconds_total", "user and system CPU time spent in seconds",
				  HF_METRIC_COUNTER);
		hf_metrics_sample_double(b, "process_cpu_seconds_total", NULL, cpu);
	}
	f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%llu %llu", &vsize_pages, &rss_pages) == 2 && page > 0) {
			hf_metrics_header(b, "process_virtual_memory_bytes", "virtual memory size in bytes",
					  HF_METRIC_GAUGE);
			hf_metrics_sample_u64(b, "process_virtual_memory_bytes", NULL,
					      (uint64_t)vsize_pages * (uint64_t)page);
			hf_metrics_header(b, "process_resident_memory_bytes", "resident memory size in bytes",
					  HF_METRIC_GAUGE);
			hf_metrics_sample_u64(b, "process_resident_memory_bytes", NULL,
					      (uint64_t)rss_pages * (uint64_t)page);
		}
		fclose(f);
	}
	if (fds >= 0) {
		hf_metrics_header(b, "process_open_fds", "number of open file descriptors", HF_METRIC_GAUGE);
		hf_metrics_sample_u64(b, "process_open_fds", NULL, (uint64_t)fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		hf_metrics_header(b, "process_max_fds", "maximum number of open file descriptors",
				  HF_METRIC_GAUGE);
		hf_metrics_sample_u64(b, "process_max_fds", NULL, (uint64_t)rl.rlim_cur);
	}
	hf_metrics_header(b, "process_start_time_seconds",
			  "start time of the process since unix epoch in seconds", HF_METRIC_GAUGE);
	hf_metrics_sample_double(b, "process_start_time_seconds", NULL, start_time_s);
}

void hf_metrics_render_build_info(struct hf_buf *b)
{
	char labels[128];

	snprintf(labels, sizeof(labels), "version=\"%s\",protocol=\"%d\"", HF_VERSION, HF_PROTOCOL_VERSION);
	hf_metrics_header(b, "hfleet_build_info", "always 1; the labels say which build and protocol this is",
			  HF_METRIC_GAUGE);
	hf_metrics_sample_u64(b, "hfleet_build_info", labels, 1);
}
