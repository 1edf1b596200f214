/* SPDX-License-Identifier: MIT
 *
 * Text rendering for hfctl (see hfctl-format.h).  No I/O and no clock reads
 * here: the callers pass the time and the terminal width in.
 */
#include "hfctl-format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hf_fit.h"

/* ---- task counts ---- */

void hfctl_counts_from_job(const Hf__JobStatus *js, struct hfctl_counts *ret)
{
	struct hfctl_counts c = { .total = js->total };

	for (size_t i = 0; i < js->n_counts; i++) {
		Hf__TaskStatus s = js->counts[i]->status;
		if (s > 0 && s < HFCTL_N_STATUS)
			c.n[s] += js->counts[i]->count;
	}
	*ret = c;
}

void hfctl_counts_add(struct hfctl_counts *c, Hf__TaskStatus s)
{
	c->total++;
	if (s > 0 && s < HFCTL_N_STATUS)
		c->n[s]++;
}

uint32_t hfctl_counts_done(const struct hfctl_counts *c)
{
	uint32_t done = 0;

	for (int s = 1; s < HFCTL_N_STATUS; s++)
		if (hf_status_is_final((Hf__TaskStatus)s))
			done += c->n[s];
	return done;
}

uint32_t hfctl_counts_failed(const struct hfctl_counts *c)
{
	return c->n[HF__TASK_STATUS__STATUS_FAILED] + c->n[HF__TASK_STATUS__STATUS_ERROR] +
	       c->n[HF__TASK_STATUS__STATUS_TIMEOUT];
}

void hfctl_summary_format(const struct hfctl_counts *c, struct hf_buf *out)
{
	static const Hf__TaskStatus order[] = {
		HF__TASK_STATUS__STATUS_PASSED,  HF__TASK_STATUS__STATUS_FAILED,
		HF__TASK_STATUS__STATUS_ERROR,   HF__TASK_STATUS__STATUS_TIMEOUT,
		HF__TASK_STATUS__STATUS_SKIPPED, HF__TASK_STATUS__STATUS_CANCELLED,
		HF__TASK_STATUS__STATUS_RUNNING, HF__TASK_STATUS__STATUS_LEASED,
		HF__TASK_STATUS__STATUS_QUEUED,
	};
	const char *sep = ": ";

	hf_buf_printf(out, "%" PRIu32 " %s", c->total, c->total == 1 ? "task" : "tasks");
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (c->n[order[i]] == 0)
			continue;
		hf_buf_printf(out, "%s%" PRIu32 " %s", sep, c->n[order[i]], hf_status_name(order[i]));
		sep = ", ";
	}
}

/* ---- the watch progress line ---- */

/* snprintf at *pos in buf, keeping *pos within the buffer when it is cut. */
static void buf_put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void buf_put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*pos += (size_t)n < len - *pos ? (size_t)n : len - *pos - 1;
}

/* How much of the counts a progress line shows, from most to least. */
enum progress_detail {
	PROGRESS_ALL,      /* the always-shown counts, and the others when not zero */
	PROGRESS_NOTABLE,  /* failed error timeout cancelled running, when not zero */
	PROGRESS_NONE,     /* percentage, done/total and elapsed only */
};

/* Writes the text after the bar: " 57% 171/300  ...  elapsed 1m12s" (the
 * percentage padded to three digits so the text does not jump as it grows).
 * Returns its length. */
static size_t progress_text(const struct hfctl_counts *c, const char *elapsed,
			    enum progress_detail detail, char *buf, size_t len)
{
	static const struct {
		Hf__TaskStatus status;
		const char *label;
		bool always;   /* shown at PROGRESS_ALL even when zero */
		bool notable;  /* shown at PROGRESS_NOTABLE when not zero */
	} order[] = {
		{ HF__TASK_STATUS__STATUS_PASSED, "passed", true, false },
		{ HF__TASK_STATUS__STATUS_FAILED, "failed", true, true },
		{ HF__TASK_STATUS__STATUS_ERROR, "error", true, true },
		{ HF__TASK_STATUS__STATUS_TIMEOUT, "timeout", false, true },
		{ HF__TASK_STATUS__STATUS_SKIPPED, "skipped", true, false },
		{ HF__TASK_STATUS__STATUS_CANCELLED, "cancelled", false, true },
		{ HF__TASK_STATUS__STATUS_RUNNING, "running", true, true },
		{ HF__TASK_STATUS__STATUS_QUEUED, "queued", true, false },
	};
	uint32_t done = hfctl_counts_done(c);
	uint64_t pct = c->total ? (uint64_t)done * 100 / c->total : 100;
	const char *sep = "  ";
	size_t pos = 0;

	buf_put(buf, len, &pos, "%3" PRIu64 "%% %" PRIu32 "/%" PRIu32, pct > 100 ? 100 : pct, done,
		c->total);
	for (size_t i = 0; detail != PROGRESS_NONE && i < sizeof(order) / sizeof(order[0]); i++) {
		uint32_t n = c->n[order[i].status];

		/* A leased task is on its way to running: count it there. */
		if (order[i].status == HF__TASK_STATUS__STATUS_RUNNING)
			n += c->n[HF__TASK_STATUS__STATUS_LEASED];
		if (detail == PROGRESS_ALL ? !order[i].always && n == 0 : !order[i].notable || n == 0)
			continue;
		buf_put(buf, len, &pos, "%s%s %" PRIu32, sep, order[i].label, n);
		sep = " ";
	}
	buf_put(buf, len, &pos, "  elapsed %s", elapsed);
	return pos;
}

size_t hfctl_progress_format(const struct hfctl_counts *c, int64_t elapsed_ms, size_t width,
			     char *buf, size_t len)
{
	/* Ten counters of at most ten digits with their labels, and a
	 * duration, fit with room to spare. */
	char text[256], elapsed[32];
	uint32_t done = hfctl_counts_done(c);
	size_t n, pos = 0, avail = width > 0 ? width - 1 : 0;
	const char *t = text;

	if (len == 0)
		return 0;
	hfctl_duration_format(elapsed_ms, elapsed, sizeof(elapsed));

	/* "[" bar "] " text, in width - 1 columns, with as much detail as
	 * leaves room for a useful bar. */
	for (int detail = PROGRESS_ALL; width > 0 && detail <= PROGRESS_NONE; detail++) {
		size_t inner, filled;

		n = progress_text(c, elapsed, (enum progress_detail)detail, text, sizeof(text));
		if (avail < n + 3 + HFCTL_BAR_MIN)
			continue;
		inner = avail - n - 3;
		if (inner > HFCTL_BAR_MAX)
			inner = HFCTL_BAR_MAX;
		filled = c->total ? (size_t)((uint64_t)(done < c->total ? done : c->total) * inner /
					     c->total) : inner;
		buf_put(buf, len, &pos, "[");
		for (size_t i = 0; i < inner; i++)
			buf_put(buf, len, &pos, "%c", i < filled ? '#' : '.');
		buf_put(buf, len, &pos, "] %s", text);
		return pos;
	}

	/* No bar: the text alone, without the percentage's padding; on a
	 * terminal the least detail, cut to fit (it is ASCII: bytes are
	 * columns). */
	n = progress_text(c, elapsed, width > 0 ? PROGRESS_NONE : PROGRESS_ALL, text, sizeof(text));
	while (*t == ' ') {
		t++;
		n--;
	}
	if (width > 0 && n > avail)
		n = avail;
	buf_put(buf, len, &pos, "%.*s", (int)n, t);
	return pos;
}

/* ---- tables ---- */

struct hfctl_table {
	const struct hfctl_column *cols;
	size_t ncols;
	size_t whole_col;  /* a column whose cells are not cut (--wide); ncols: none */
	size_t *widths;
	char **cells;      /* row-major, rows * ncols */
	size_t rows, cap;  /* in rows */
	bool oom;          /* a row was lost */
};

size_t hfctl_text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* Copies s, turning C0 and C1 control characters into spaces and cutting it
 * to max columns with "..." at the end (max 0: no limit). */
static char *cell_dup(const char *s, size_t max)
{
	size_t n = strlen(s), keep = n;
	char *d;

	if (max > 3 && hfctl_text_width(s) > max) {
		size_t w = 0;

		/* Keep max - 3 code points, then the ellipsis. */
		for (keep = 0; keep < n; keep++) {
			if (((unsigned char)s[keep] & 0xc0) != 0x80 && w++ == max - 3)
				break;
		}
	}
	d = malloc(keep + 4);
	if (!d)
		return NULL;
	for (size_t i = 0; i < keep; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f) {
			d[i] = ' ';
		} else if (ch == 0xc2 && i + 1 < keep && (unsigned char)s[i + 1] >= 0x80 &&
			   (unsigned char)s[i + 1] <= 0x9f) {
			/* U+0080..U+009F: C1 controls, CSI among them. */
			d[i] = ' ';
			d[++i] = ' ';
		} else {
			d[i] = (char)ch;
		}
	}
	strcpy(d + keep, keep < n ? "..." : "");
	return d;
}

struct hfctl_table *hfctl_table_new(const struct hfctl_column *cols, size_t ncols)
{
	struct hfctl_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->widths = calloc(ncols, sizeof(*t->widths));
	if (!t->widths) {
		free(t);
		return NULL;
	}
	t->cols = cols;
	t->ncols = ncols;
	t->whole_col = ncols;
	for (size_t c = 0; c < ncols; c++)
		t->widths[c] = hfctl_text_width(cols[c].title);
	return t;
}

void hfctl_table_whole(struct hfctl_table *t, size_t col)
{
	if (t && col < t->ncols)
		t->whole_col = col;
}

void hfctl_table_free(struct hfctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->rows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->widths);
	free(t);
}

void hfctl_table_add(struct hfctl_table *t, const char *const *cells)
{
	char **row;

	if (!t || t->oom)
		return;
	if (t->rows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = realloc(t->cells, cap * t->ncols * sizeof(*nc));

		if (!nc) {
			t->oom = true;
			return;
		}
		t->cells = nc;
		t->cap = cap;
	}
	row = t->cells + t->rows * t->ncols;
	for (size_t c = 0; c < t->ncols; c++) {
		row[c] = cell_dup(cells[c] ? cells[c] : "", c == t->whole_col ? 0 : t->cols[c].max_width);
		if (!row[c]) {
			while (c-- > 0)
				free(row[c]);
			t->oom = true;
			return;
		}
	}
	for (size_t c = 0; c < t->ncols; c++) {
		size_t w = hfctl_text_width(row[c]);
		if (w > t->widths[c])
			t->widths[c] = w;
	}
	t->rows++;
}

static void table_line(const struct hfctl_table *t, const char *const *cells, struct hf_buf *out)
{
	size_t start = out->len;

	for (size_t c = 0; c < t->ncols; c++) {
		size_t pad = t->widths[c] - hfctl_text_width(cells[c]);
		bool last = c + 1 == t->ncols;

		if (c > 0)
			hf_buf_puts(out, "  ");
		if (t->cols[c].right)
			hf_buf_printf(out, "%*s", (int)pad, "");
		hf_buf_puts(out, cells[c]);
		if (!t->cols[c].right && !last)
			hf_buf_printf(out, "%*s", (int)pad, "");
	}
	/* Empty cells at the end of the row leave their separators behind. */
	while (!out->oom && out->len > start && out->data[out->len - 1] == ' ')
		out->data[--out->len] = '\0';
	hf_buf_puts(out, "\n");
}

void hfctl_table_render(const struct hfctl_table *t, struct hf_buf *out)
{
	const char **titles = t && !t->oom ? malloc(t->ncols * sizeof(*titles)) : NULL;

	if (!titles) {
		out->oom = true;
		return;
	}
	for (size_t c = 0; c < t->ncols; c++)
		titles[c] = t->cols[c].title;
	table_line(t, titles, out);
	free(titles);
	for (size_t r = 0; r < t->rows; r++)
		table_line(t, (const char *const *)t->cells + r * t->ncols, out);
}

const char *hfctl_dash(const char *s)
{
	return s && s[0] ? s : "-";
}

const char *hfctl_mode_shown(Hf__TaskKind kind, const char *mode)
{
	if (kind != HF__TASK_KIND__KIND_BENCHMARK)
		return "-";
	return mode && mode[0] ? mode : "eager";
}

/* ---- registry limits ---- */

void hfctl_limit_scope(Hf__Backend backend, Hf__TaskKind kind, struct hf_buf *out)
{
	hf_buf_puts(out, backend == HF__BACKEND__BACKEND_UNSPECIFIED ? "*" : hf_backend_name(backend));
	if (kind != HF__TASK_KIND__KIND_UNSPECIFIED)
		hf_buf_printf(out, "/%s", hf_kind_name(kind));
}

void hfctl_model_limits_format(const Hf__ModelInfo *m, struct hf_buf *out)
{
	if (m->n_limits == 0) {
		hf_buf_puts(out, "-");
		return;
	}
	for (size_t i = 0; i < m->n_limits; i++) {
		if (i)
			hf_buf_puts(out, ", ");
		hfctl_limit_scope(m->limits[i]->backend, m->limits[i]->kind, out);
	}
}

void hfctl_limited_format(const Hf__LimitedTasks *l, struct hf_buf *out)
{
	hf_buf_printf(out, "%s on %s (%s, %" PRIu32 " task%s): the registry marks it limited: %s",
		      l->model_type, hf_backend_name(l->backend), hf_kind_name(l->kind), l->task_count,
		      l->task_count == 1 ? "" : "s", l->reason);
}

/* ---- fleet summaries ---- */

void hfctl_devices_format(Hf__Device *const *devs, size_t n, struct hf_buf *out)
{
	if (n == 0)
		hf_buf_puts(out, "-");
	for (size_t i = 0; i < n; i++) {
		hf_buf_printf(out, "%s%s:%" PRIu32, i ? ", " : "", hf_backend_name(devs[i]->backend),
			      devs[i]->index);
		if (devs[i]->slots > 1)
			hf_buf_printf(out, " x%" PRIu32, devs[i]->slots);
	}
}

void hfctl_runtimes_format(Hf__Runtime *const *rts, size_t n, struct hf_buf *out)
{
	if (n == 0)
		hf_buf_puts(out, "-");
	for (size_t i = 0; i < n; i++) {
		const char *v = rts[i]->available ? rts[i]->version : "absent";

		hf_buf_printf(out, "%s%s%s%s", i ? ", " : "", rts[i]->name, v[0] ? " " : "", v);
	}
}

void hfctl_gib_format(uint64_t bytes, struct hf_buf *out)
{
	if (bytes == 0)
		hf_buf_puts(out, "-");
	else
		hf_buf_printf(out, "%.1f GiB", (double)bytes / (double)((uint64_t)1 << 30));
}

static const char *device_attr(const Hf__Device *d, const char *key)
{
	for (size_t i = 0; i < d->n_attrs; i++)
		if (d->attrs[i]->key && strcmp(d->attrs[i]->key, key) == 0)
			return d->attrs[i]->value;
	return NULL;
}

/* The ARCH cell: what matching compares a requirement with, and MIG. */
static void device_arch_format(const Hf__Device *d, struct hf_buf *out)
{
	const char *arch = device_attr(d, "compute_capability");
	const char *mig = device_attr(d, "mig");
	size_t start = out->len;

	if (!arch || !arch[0])
		arch = device_attr(d, "gfx_target");
	if (!arch || !arch[0])
		arch = d->arch;
	if (arch && arch[0])
		hf_buf_puts(out, arch);
	if (mig && strcmp(mig, "enabled") == 0)
		hf_buf_puts(out, out->len > start ? " MIG" : "MIG");
	if (out->len == start)
		hf_buf_puts(out, "-");
}

/* A reading of a float gauge: "-" when negative, which means not
 * available. */
static void gauge_format(float v, const char *unit, char *buf, size_t len)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.0f%s", (double)v, unit);
}

static const struct hfctl_column devices_columns[] = {
	{ "WORKER", false, 0 }, { "DEVICE", false, 0 },  { "NAME", false, 0 },
	{ "MEMORY", true, 0 },  { "ARCH", false, 0 },	 { "DRIVER", false, 0 },
	{ "UTIL", true, 0 },	{ "MEM-USED", true, 0 }, { "TEMP", true, 0 },
	{ "POWER", true, 0 },	{ "RUNNING", true, 0 },	 { "CONNECTED", false, 0 },
	{ "STATE", false, 0 },
};

#define DEVICES_NCOLS (sizeof(devices_columns) / sizeof(devices_columns[0]))

/* The cells of one device; the buffers are the caller's to release. */
struct device_cells {
	struct hf_buf device, name, memory, arch, used;
	char util[32], temp[32], power[32], running[16];
};

static void device_row_add(struct hfctl_table *t, const Hf__DeviceInfo *di)
{
	static const Hf__Device no_device = HF__DEVICE__INIT;
	const Hf__Device *d = di->device ? di->device : &no_device;
	const Hf__DeviceTelemetry *tm = di->telemetry;
	struct device_cells c;

	hf_buf_init(&c.device);
	hf_buf_init(&c.name);
	hf_buf_init(&c.memory);
	hf_buf_init(&c.arch);
	hf_buf_init(&c.used);
	hf_buf_printf(&c.device, "%s:%" PRIu32, hf_backend_name(d->backend), d->index);
	hf_buf_printf(&c.name, "%s%s", hfctl_dash(d->name), d->declared ? " (declared)" : "");
	hfctl_gib_format(d->memory_bytes, &c.memory);
	device_arch_format(d, &c.arch);
	hfctl_gib_format(tm ? tm->memory_used_bytes : 0, &c.used);
	gauge_format(tm ? tm->utilization_pct : -1, "%", c.util, sizeof(c.util));
	gauge_format(tm ? tm->temperature_c : -1, "C", c.temp, sizeof(c.temp));
	gauge_format(tm ? tm->power_w : -1, "W", c.power, sizeof(c.power));
	snprintf(c.running, sizeof(c.running), "%" PRIu32, di->running);

	/* A buffer that ran out of memory has no text: a NULL cell, shown
	 * empty; the table's own failures show in its output buffer. */
	const char *cells[DEVICES_NCOLS] = {
		hfctl_dash(di->worker_id),
		c.device.oom ? NULL : c.device.data,
		c.name.oom ? NULL : c.name.data,
		c.memory.oom ? NULL : c.memory.data,
		c.arch.oom ? NULL : c.arch.data,
		hfctl_dash(d->driver),
		c.util,
		c.used.oom ? NULL : c.used.data,
		c.temp,
		c.power,
		c.running,
		di->connected ? "yes" : "no",
		hfctl_dash(di->state),
	};
	hfctl_table_add(t, cells);
	hf_buf_fini(&c.device);
	hf_buf_fini(&c.name);
	hf_buf_fini(&c.memory);
	hf_buf_fini(&c.arch);
	hf_buf_fini(&c.used);
}

static size_t devices_workers_count(Hf__DeviceInfo *const *devs, size_t n)
{
	size_t workers = 0;

	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(hfctl_dash(devs[i]->worker_id), hfctl_dash(devs[j]->worker_id)) == 0;
		workers += !seen;
	}
	return workers;
}

/* Appends s with control characters turned into spaces, as in a table. */
static void text_put(struct hf_buf *out, const char *s)
{
	char *clean = cell_dup(s ? s : "", 0);

	if (!clean) {
		out->oom = true;
		return;
	}
	hf_buf_puts(out, clean);
	free(clean);
}

void hfctl_devices_table_format(const Hf__DevicesReply *r, struct hf_buf *out)
{
	size_t n = r->n_devices, workers = devices_workers_count(r->devices, r->n_devices);
	size_t quarantined = 0;

	if (n > 0) {
		struct hfctl_table *t = hfctl_table_new(devices_columns, DEVICES_NCOLS);

		for (size_t i = 0; i < n; i++)
			device_row_add(t, r->devices[i]);
		hfctl_table_render(t, out);
		hfctl_table_free(t);
	}
	hf_buf_printf(out, "%zu device%s on %zu worker%s\n", n, n == 1 ? "" : "s", workers,
		      workers == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++)
		quarantined += r->devices[i]->state && strcmp(r->devices[i]->state, "quarantined") == 0;
	if (quarantined > 0) {
		hf_buf_puts(out, "\nquarantined devices:\n");
		for (size_t i = 0; i < n; i++) {
			const Hf__DeviceInfo *di = r->devices[i];
			if (!di->state || strcmp(di->state, "quarantined") != 0 || !di->device)
				continue;
			hf_buf_puts(out, "  ");
			text_put(out, di->worker_id);
			hf_buf_printf(out, "/%s:%" PRIu32 ": ", hf_backend_name(di->device->backend),
				      di->device->index);
			text_put(out, hfctl_dash(di->state_reason));
			hf_buf_puts(out, "\n");
		}
	}
	if (r->n_absent == 0)
		return;
	hf_buf_puts(out, "\nabsent backends:\n");
	for (size_t i = 0; i < r->n_absent; i++) {
		hf_buf_puts(out, "  ");
		text_put(out, r->absent[i]->key);
		hf_buf_puts(out, ": ");
		text_put(out, hfctl_dash(r->absent[i]->value));
		hf_buf_puts(out, "\n");
	}
}

void hfctl_absent_key_split(const char *key, size_t *ret_worker_len, const char **ret_backend)
{
	const char *slash = strrchr(key, '/');

	*ret_worker_len = slash ? (size_t)(slash - key) : strlen(key);
	*ret_backend = slash ? slash + 1 : "";
}

/* ---- drain and explain ---- */

#define UNSATISFIABLE_HINT "(use --allow-waiting to queue the tasks anyway)"

void hfctl_drain_format(const Hf__DrainRequest *req, uint32_t devices, struct hf_buf *out)
{
	const char *state = req->undrain ? "back in service" : "draining";

	if (req->one_device)
		hf_buf_printf(out, "%s/%s:%" PRIu32 ": %s\n", req->worker_id,
			      hf_backend_name(req->backend), req->index, state);
	else
		hf_buf_printf(out, "worker %s: %" PRIu32 " device%s %s\n", req->worker_id, devices,
			      devices == 1 ? "" : "s", state);
}

void hfctl_connected_format(bool connected, double last_seen, char *buf, size_t len)
{
	char when[32];
	time_t t = (time_t)last_seen;
	struct tm tm;

	if (connected || last_seen <= 0 || !localtime_r(&t, &tm)) {
		snprintf(buf, len, connected ? "yes" : "no");
		return;
	}
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf, len, "no, since %s", when);
}

void hfctl_worker_drains_cell(const Hf__WorkerInfo *w, struct hf_buf *out)
{
	size_t devices = 0;

	for (size_t i = 0; i < w->n_drains; i++)
		if (!w->drains[i]->one_device) {
			hf_buf_puts(out, "yes");
			return;
		}
	for (size_t i = 0; i < w->n_drains; i++)
		hf_buf_printf(out, "%s%s:%" PRIu32, devices++ ? "," : "",
			      hf_backend_name(w->drains[i]->backend), w->drains[i]->index);
	if (!devices)
		hf_buf_puts(out, "no");
}

void hfctl_drain_line_format(const char *worker_id, const Hf__Drain *d, double now, struct hf_buf *out)
{
	char ago[48], when[32];
	time_t t = (time_t)d->since;
	struct tm tm;

	text_put(out, worker_id);
	if (d->one_device)
		hf_buf_printf(out, "/%s:%" PRIu32, hf_backend_name(d->backend), d->index);
	hf_buf_puts(out, ": drained");
	if (d->by && d->by[0]) {
		hf_buf_puts(out, " by ");
		text_put(out, d->by);
	}
	if (d->since > 0 && localtime_r(&t, &tm)) {
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		hfctl_ago_format(now, d->since, ago, sizeof(ago));
		hf_buf_printf(out, " since %s (%s)", when, ago);
	}
}

void hfctl_explain_format(const Hf__ExplainReply *r, struct hf_buf *out)
{
	hf_buf_printf(out, "task %" PRIu64 ": %s", r->task_id, hf_status_name(r->status));
	if (r->summary && r->summary[0]) {
		hf_buf_puts(out, " \xe2\x80\x94 "); /* an em dash */
		text_put(out, r->summary);
	}
	hf_buf_puts(out, "\n");
	if (r->n_fits) {
		/* The structured list, in this machine's local time. */
		for (size_t i = 0; i < r->n_fits; i++) {
			hf_buf_puts(out, "  ");
			hfctl_device_fit_format(r->fits[i], hf_wall_s(), out);
			hf_buf_puts(out, "\n");
		}
	} else {
		for (size_t i = 0; i < r->n_reasons; i++) {
			if (!r->reasons[i] || !r->reasons[i][0])
				continue;
			hf_buf_puts(out, "  ");
			text_put(out, r->reasons[i]);
			hf_buf_puts(out, "\n");
		}
	}
	if (r->fits_omitted)
		hf_buf_printf(out, "  and %" PRIu32 " more\n", r->fits_omitted);
}

void hfctl_device_fit_format(const Hf__DeviceFit *f, double now, struct hf_buf *out)
{
	hf_fit_line(f, now, HF_FIT_CLOCK_LOCAL, text_put, out);
}

void hfctl_unsatisfiable_list_format(const Hf__Error *e, struct hf_buf *out)
{
	const char *m = e->message ? e->message : "";
	const char *colon = strstr(m, " tasks");

	/* The coordinator's first clause ("no connected worker can run cuda
	 * tasks"), then the structured list, one per line. */
	if (colon)
		hf_buf_append(out, m, (size_t)(colon - m) + strlen(" tasks"));
	else
		hf_buf_puts(out, "no connected worker can run these tasks");
	hf_buf_puts(out, ":\n");
	for (size_t i = 0; i < e->n_unfit; i++) {
		hf_buf_puts(out, "  ");
		hfctl_device_fit_format(e->unfit[i], hf_wall_s(), out);
		hf_buf_puts(out, "\n");
	}
	if (e->unfit_omitted)
		hf_buf_printf(out, "  and %" PRIu32 " more\n", e->unfit_omitted);
	hf_buf_puts(out, UNSATISFIABLE_HINT);
}

/* ---- messages ---- */


void hfctl_unsatisfiable_format(const char *message, struct hf_buf *out)
{
	size_t len = message ? strlen(message) : 0;

	/* A message of several lines ends in a newline or not: either way the
	 * hint gets a line of its own. */
	while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
		len--;
	if (len == 0) {
		hf_buf_puts(out, "no registered device can run these tasks " UNSATISFIABLE_HINT);
		return;
	}
	hf_buf_append(out, message, len);
	if (strstr(message, "--allow-waiting"))
		return;
	hf_buf_puts(out, memchr(message, '\n', len) ? "\n" UNSATISFIABLE_HINT : " " UNSATISFIABLE_HINT);
}

/* ---- CSV ---- */

void hfctl_csv_field(struct hf_buf *out, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		hf_buf_puts(out, s);
		return;
	}
	hf_buf_puts(out, "\"");
	for (const char *q; (q = strchr(s, '"')); s = q + 1) {
		hf_buf_append(out, s, (size_t)(q - s) + 1);
		hf_buf_puts(out, "\"");
	}
	hf_buf_puts(out, s);
	hf_buf_puts(out, "\"");
}

void hfctl_csv_record(struct hf_buf *out, const char *const *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			hf_buf_puts(out, ",");
		hfctl_csv_field(out, fields[i]);
	}
	hf_buf_puts(out, "\r\n");
}

/* ---- durations and times ---- */

void hfctl_duration_format(int64_t ms, char *buf, size_t len)
{
	const int64_t s = 1000, m = 60 * s, h = 60 * m, d = 24 * h;

	if (ms <= 0)
		snprintf(buf, len, "0s");
	else if (ms < s)
		snprintf(buf, len, "%" PRId64 "ms", ms);
	else if (ms < 10 * s && ms / 100 % 10 != 0)
		snprintf(buf, len, "%" PRId64 ".%" PRId64 "s", ms / s, ms / 100 % 10);
	else if (ms < m)
		snprintf(buf, len, "%" PRId64 "s", ms / s);
	else if (ms < h)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", ms / m, ms % m / s);
	else if (ms < d)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", ms / h, ms % h / m);
	else
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", ms / d, ms % d / h);
}

void hfctl_time_format(double unix_s, char *buf, size_t len)
{
	time_t t = (time_t)unix_s;
	struct tm tm;

	if (unix_s <= 0 || !localtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
}

void hfctl_ago_format(double now_s, double then_s, char *buf, size_t len)
{
	char d[32];
	int64_t secs;

	if (then_s <= 0) {
		snprintf(buf, len, "never");
		return;
	}
	secs = now_s > then_s ? (int64_t)(now_s - then_s) : 0;
	hfctl_duration_format(secs * 1000, d, sizeof(d));
	snprintf(buf, len, "%s ago", d);
}
