/* SPDX-License-Identifier: MIT
 *
 * The daemons' sd_notify conversation (see hf_sdnotify.h): two timers on the
 * loop, one for the watchdog and one for the status line.  Loop thread only.
 */
#include "hf_sdnotify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "hf_log.h"

#define STATUS_MAX 256

struct hf_sd {
	const struct hf_sd_ops *ops;
	void *arg;
	bool notify;              /* NOTIFY_SOCKET is set */
	bool ready, stopping;
	bool watchdog_held;       /* the last tick held the watchdog back */
	int64_t watchdog_ms;      /* 0: none asked for */
	uv_timer_t watchdog_timer, status_timer;
	int open_handles;
	char status[STATUS_MAX];  /* as last sent */
};

/* sd_notify fails only when the manager's socket is gone: nothing to do
 * about it but say so, once. */
static void sd_send(struct hf_sd *sd, const char *msg)
{
	static bool warned;
	int r = sd_notify(0, msg);

	(void)sd;
	if (r < 0 && !warned) {
		warned = true;
		log_warn("could not notify the service manager: %s", strerror(-r));
	}
}

/* The current status line, with nothing in it that would end the message
 * field (a newline). */
static void status_compose(struct hf_sd *sd, char *buf, size_t len)
{
	buf[0] = '\0';
	sd->ops->status(sd->arg, buf, len);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < ' ')
			*p = ' ';
}

/* Sends extra (may be "") followed by the status line; force: even when
 * the line did not change. */
static void status_send(struct hf_sd *sd, const char *extra, bool force)
{
	char line[STATUS_MAX], msg[STATUS_MAX + 96];

	if (!sd->notify)
		return;
	status_compose(sd, line, sizeof(line));
	if (!force && strcmp(line, sd->status) == 0)
		return;
	snprintf(sd->status, sizeof(sd->status), "%s", line);
	snprintf(msg, sizeof(msg), "%sSTATUS=%s", extra, line);
	sd_send(sd, msg);
}

static void status_timer_cb(uv_timer_t *t)
{
	struct hf_sd *sd = t->data;

	enum hf_sd_start st = HF_SD_START_WAITING;

	if (!sd->ready && !sd->stopping && sd->ops->start)
		st = sd->ops->start(sd->arg);
	if (st == HF_SD_START_READY) {
		hf_sd_ready(sd);
		return;
	}
	/* A start that makes progress gets three more ticks each tick; one
	 * that does not (the database unreachable) runs into
	 * TimeoutStartSec=. */
	if (st == HF_SD_START_PROGRESS) {
		char extra[64];
		snprintf(extra, sizeof(extra), "EXTEND_TIMEOUT_USEC=%" PRIu64 "\n",
			 (uint64_t)3 * HF_SD_STATUS_MS * 1000);
		status_send(sd, extra, true);
		return;
	}
	status_send(sd, "", false);
}

static void watchdog_timer_cb(uv_timer_t *t)
{
	struct hf_sd *sd = t->data;
	char why[256] = "";

	if (sd->ops->healthy && !sd->ops->healthy(sd->arg, sd->watchdog_ms, why, sizeof(why))) {
		if (!sd->watchdog_held)
			log_warn("holding the watchdog back: %s; the service manager restarts this daemon "
				 "when it stays so for %" PRId64 " ms",
				 why[0] ? why : "unhealthy", sd->watchdog_ms);
		sd->watchdog_held = true;
		return;
	}
	if (sd->watchdog_held)
		log_info("feeding the watchdog again");
	sd->watchdog_held = false;
	sd_send(sd, "WATCHDOG=1");
}

int hf_sd_open(uv_loop_t *loop, const struct hf_sd_ops *ops, void *arg, struct hf_sd **ret_sd)
{
	struct hf_sd *sd = calloc(1, sizeof(*sd));
	uint64_t usec = 0;

	if (!sd)
		return -ENOMEM;
	sd->ops = ops;
	sd->arg = arg;
	sd->notify = getenv("NOTIFY_SOCKET") != NULL;
	*ret_sd = sd;
	if (!sd->notify)
		return 0;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		sd->watchdog_ms = usec / 1000 ? (int64_t)(usec / 1000) : 1;

	/* Neither timer keeps the loop alive: the loop ends when the daemon's
	 * own handles are closed. */
	uv_timer_init(loop, &sd->status_timer);
	sd->status_timer.data = sd;
	sd->open_handles++;
	uv_timer_start(&sd->status_timer, status_timer_cb, HF_SD_STATUS_MS, HF_SD_STATUS_MS);
	uv_unref((uv_handle_t *)&sd->status_timer);
	if (sd->watchdog_ms) {
		uint64_t half = (uint64_t)(sd->watchdog_ms / 2 ? sd->watchdog_ms / 2 : 1);
		uv_timer_init(loop, &sd->watchdog_timer);
		sd->watchdog_timer.data = sd;
		sd->open_handles++;
		uv_timer_start(&sd->watchdog_timer, watchdog_timer_cb, half, half);
		uv_unref((uv_handle_t *)&sd->watchdog_timer);
		log_info("service manager watchdog: %" PRId64 " ms (fed every %" PRIu64 " ms)",
			 sd->watchdog_ms, half);
	}
	return 0;
}

bool hf_sd_active(const struct hf_sd *sd)
{
	return sd && sd->notify;
}

int64_t hf_sd_watchdog_ms(const struct hf_sd *sd)
{
	return sd ? sd->watchdog_ms : 0;
}

void hf_sd_ready(struct hf_sd *sd)
{
	if (!sd || sd->stopping)
		return;
	if (sd->ready) {
		status_send(sd, "", false);
		return;
	}
	sd->ready = true;
	status_send(sd, "READY=1\n", true);
}

void hf_sd_reloading(struct hf_sd *sd)
{
	char extra[96];

	if (!sd || sd->stopping || !sd->ready)
		return;
	sd->ready = false;
	/* systemd 253 and later want the time with it; 252 ignores it. */
	snprintf(extra, sizeof(extra), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\n",
		 uv_hrtime() / 1000);
	status_send(sd, extra, true);
}

void hf_sd_stopping(struct hf_sd *sd)
{
	if (!sd || sd->stopping)
		return;
	sd->stopping = true;
	status_send(sd, "STOPPING=1\n", true);
}

void hf_sd_status_now(struct hf_sd *sd)
{
	if (sd)
		status_send(sd, "", false);
}

static void sd_close_cb(uv_handle_t *h)
{
	struct hf_sd *sd = h->data;

	if (--sd->open_handles == 0)
		free(sd);
}

void hf_sd_close(struct hf_sd *sd)
{
	if (!sd)
		return;
	if (!sd->open_handles) {
		free(sd);
		return;
	}
	uv_close((uv_handle_t *)&sd->status_timer, sd_close_cb);
	if (sd->watchdog_ms)
		uv_close((uv_handle_t *)&sd->watchdog_timer, sd_close_cb);
}
