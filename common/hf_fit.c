/* SPDX-License-Identifier: MIT
 *
 * The one line of text for a worker or device that cannot take a task
 * (see hf_fit.h).  No state; any thread.
 */
#include "hf_fit.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "hf_proto.h"

bool hf_fit_state_is_unmet(const char *state)
{
	return !strcmp(state, "unfit") || !strcmp(state, "no-device") || !strcmp(state, "too-few");
}

static void disconnected_put(const Hf__DeviceFit *f, double now, enum hf_fit_clock clock, struct hf_buf *out)
{
	double ago = now - f->last_seen;
	char when[32];
	time_t t = (time_t)f->last_seen;
	struct tm tm;

	if (!(f->last_seen > 0 && ago >= 0)) {
		hf_buf_puts(out, "disconnected");
		return;
	}
	if (clock == HF_FIT_CLOCK_UTC) {
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%H:%M:%S UTC", &tm);
	} else {
		localtime_r(&t, &tm);
		strftime(when, sizeof(when), ago >= 86400 ? "%Y-%m-%d %H:%M" : "%H:%M:%S", &tm);
	}
	hf_buf_printf(out, "disconnected since %s (%.0f %s)", when, ago >= 120 ? ago / 60 : ago,
		      ago >= 120 ? "min" : "s");
}

void hf_fit_line(const Hf__DeviceFit *f, double now, enum hf_fit_clock clock, hf_fit_put_fn put,
		 struct hf_buf *out)
{
	bool state_shown = f->connected && !hf_fit_state_is_unmet(f->state);

	if (!put)
		put = hf_buf_puts;
	put(out, f->worker_id);
	if (f->one_device)
		hf_buf_printf(out, "/%s:%" PRIu32, hf_backend_name(f->backend), f->index);
	hf_buf_puts(out, ": ");
	if (!f->connected) {
		disconnected_put(f, now, clock, out);
		if (f->would_fit)
			hf_buf_puts(out, "; it could run them");
		if (f->n_unmet)
			hf_buf_puts(out, "; ");
	} else if (state_shown) {
		put(out, f->state);
		if (f->n_unmet)
			hf_buf_puts(out, " (");
	}
	for (size_t i = 0; i < f->n_unmet; i++) {
		if (i)
			hf_buf_puts(out, "; ");
		put(out, f->unmet[i]);
	}
	if (state_shown && f->n_unmet)
		hf_buf_puts(out, ")");
}
