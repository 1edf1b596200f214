/* SPDX-License-Identifier: MIT
 *
 * The one line of text for a worker or device that cannot take a task
 * (an Hf__DeviceFit): the coordinator puts it in ERR_UNSATISFIABLE's
 * message and in explain's reasons, hfctl prints it from the structured
 * list.  The two differ only in the clock they show and in how they put
 * the peer's strings (hfctl escapes them for the terminal), so both are
 * parameters.  No state; any thread.
 */
#ifndef HF_FIT_H
#define HF_FIT_H

#include "hf_util.h"
#include "hfleet.pb-c.h"

/* The time a disconnected worker was last seen in: "12:03:10 UTC" (the
 * coordinator's messages), or this machine's local time, "12:03:10", with
 * the date when it is a day or more ago (hfctl). */
enum hf_fit_clock {
	HF_FIT_CLOCK_UTC,
	HF_FIT_CLOCK_LOCAL,
};

/* How a string from the message (worker id, state, an unmet requirement)
 * is appended; NULL appends it as it is (hf_buf_puts). */
typedef void (*hf_fit_put_fn)(struct hf_buf *out, const char *s);

/* Is state one of those that the unmet requirements explain by themselves
 * ("unfit", "no-device", "too-few"), so that it is not written? */
bool hf_fit_state_is_unmet(const char *state);

/* Appends f as one line, now being the time (unix seconds) to count from:
 *
 *   gpu-3/cuda:0: memory 24.0 GiB < 40.0 GiB required; no label pool=a
 *   gpu-5: disconnected since 12:03:10 UTC (18 min); it could run them
 *   gpu-4/cuda:1: quarantined (3 infrastructure failures in a row)
 */
void hf_fit_line(const Hf__DeviceFit *f, double now, enum hf_fit_clock clock, hf_fit_put_fn put,
		 struct hf_buf *out);

#endif
