/* SPDX-License-Identifier: MIT
 *
 * Prometheus metrics shared by the daemons: counters, gauges and
 * histograms with fixed buckets, and their rendering in the Prometheus
 * text exposition format 0.0.4 (# HELP, # TYPE, name{labels} value;
 * histograms as _bucket{le=...} cumulative, _sum and _count).
 *
 * A family (struct hf_metric) has a fixed number of series, each with its
 * labels set once (hf_metric_labels), so the label set is bounded by
 * construction: callers pick a series by index (an enum of outcomes, of
 * database operations, a device's position).  Values are exact: counters
 * and integer gauges are uint64_t/int64_t printed as integers; histogram
 * observations are integer microseconds, so bucket counts and _count are
 * exact and only _sum is a float (printed with the fewest digits that
 * read back to the same double).
 *
 * Threads: updates (hf_metric_add, hf_metric_set, hf_metric_observe_us)
 * are relaxed atomic operations, lock-free and callable from any thread;
 * rendering reads the same atomics from any thread (one series may be a
 * few updates ahead of another in one rendering: fine for monitoring).
 * Creating, labelling and freeing a family is the owner's job, before and
 * after any other thread can see it.
 *
 * The writer helpers (hf_metrics_header, hf_metrics_sample_*) render
 * families whose series are only known when rendering (per device, per
 * worker); label values are escaped here (\\, \" and \n) so hostile text
 * cannot break the format.
 */
#ifndef HF_METRICS_H
#define HF_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_util.h"

enum hf_metric_type {
	HF_METRIC_COUNTER,
	HF_METRIC_GAUGE,
	HF_METRIC_HISTOGRAM,
};

/* Label names and values per series, and bucket bounds, are bounded so a
 * family's rendering is bounded too. */
#define HF_METRIC_MAX_SERIES 4096
#define HF_METRIC_MAX_BUCKETS 32
#define HF_METRIC_MAX_LABELS 4

struct hf_metric {
	const char *name, *help;      /* static strings */
	enum hf_metric_type type;
	size_t n_series;
	char **labels;                /* per series: rendered `a="x",b="y"` or NULL */
	_Atomic uint64_t *value;      /* counter (count), gauge (int64_t bits) */
	/* histogram: bounds_us[n_bounds] ascending; per series n_bounds + 1
	 * bucket counts (the last is +Inf, not cumulative in memory), the
	 * sum in microseconds */
	const double *bounds;         /* seconds, static */
	uint64_t *bounds_us;
	size_t n_bounds;
	_Atomic uint64_t *bucket;
	_Atomic uint64_t *sum_us;
};

/* Creates a family of n_series series (1 when unlabelled).  bounds (in
 * seconds, ascending, n_bounds of them) only for a histogram.  Returns
 * NULL on bad arguments or no memory. */
struct hf_metric *hf_metric_new(enum hf_metric_type type, const char *name, const char *help,
				size_t n_series, const double *bounds, size_t n_bounds);
void hf_metric_free(struct hf_metric *m);

/* Sets series i's labels: names[k]=values[k] for k < n.  Values are
 * escaped.  Returns 0, -EINVAL or -ENOMEM. */
int hf_metric_labels(struct hf_metric *m, size_t i, const char *const *names,
		     const char *const *values, size_t n);

/* Updates (any thread).  An index out of range is ignored. */
void hf_metric_add(struct hf_metric *m, size_t i, uint64_t n);
void hf_metric_set(struct hf_metric *m, size_t i, int64_t v);
void hf_metric_observe_us(struct hf_metric *m, size_t i, uint64_t us);

/* Reads (for tests and for gauges derived from counters). */
uint64_t hf_metric_get(const struct hf_metric *m, size_t i);

/* Appends the family (HELP, TYPE and every series). */
void hf_metric_render(const struct hf_metric *m, struct hf_buf *b);

/* ---- writers for families rendered from live state ---- */

/* # HELP and # TYPE lines.  help must not hold a newline. */
void hf_metrics_header(struct hf_buf *b, const char *name, const char *help, enum hf_metric_type type);

/* Appends a label value, escaped as the text format requires. */
void hf_metrics_label_value(struct hf_buf *b, const char *s);

/* One sample line: name{labels} value.  labels is NULL or rendered
 * label text (`a="x"`, built with hf_metrics_label_value). */
void hf_metrics_sample_u64(struct hf_buf *b, const char *name, const char *labels, uint64_t v);
void hf_metrics_sample_i64(struct hf_buf *b, const char *name, const char *labels, int64_t v);
void hf_metrics_sample_double(struct hf_buf *b, const char *name, const char *labels, double v);

/* A double in the fewest significant digits that read back to the same
 * value (+Inf, -Inf and NaN as the format spells them). */
void hf_metrics_format_double(char *out, size_t len, double v);

/* process_* metrics of this process from /proc/self and getrusage:
 * cpu seconds, resident and virtual memory, open and max fds, start time
 * (start_time_s: seconds since the epoch when the process started). */
void hf_metrics_render_process(struct hf_buf *b, double start_time_s);

/* hfleet_build_info{version,protocol} 1 */
void hf_metrics_render_build_info(struct hf_buf *b);

#endif
