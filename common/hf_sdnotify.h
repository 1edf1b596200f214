/* SPDX-License-Identifier: MIT
 *
 * A daemon's conversation with its service manager (sd_notify(3), through
 * Debian's libsystemd): READY=1 once it serves, STATUS= lines that a person
 * reads in "systemctl status", RELOADING=1 and STOPPING=1, EXTEND_TIMEOUT_USEC=
 * while a long start makes progress, and the watchdog.
 *
 * The watchdog: when the manager asks for one (WATCHDOG_USEC and
 * WATCHDOG_PID, sd_watchdog_enabled(3)), a timer on the daemon's loop sends
 * WATCHDOG=1 every half interval, but only while the daemon's health
 * callback says it is well; a loop that no longer turns sends nothing by
 * construction.  A held-back watchdog is logged once as a warning (with the
 * callback's reason) and its return once as info.  The manager restarts a
 * daemon that sent none for the interval (WatchdogSec=).
 *
 * The status: every HF_SD_STATUS_MS the tick callback is asked for the
 * current line; it is sent when it changed.
 *
 * Without NOTIFY_SOCKET (not started by systemd with Type=notify) nothing is
 * sent and no timer runs.  The messages go out from the main process, as
 * NotifyAccess=main wants; children inherit NOTIFY_SOCKET but the manager
 * ignores what they send.
 *
 * Loop thread only.
 */
#ifndef HF_SDNOTIFY_H
#define HF_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* How often the status line is refreshed (at most). */
#define HF_SD_STATUS_MS 2000

struct hf_sd;

/* Where a start stands, asked every tick before READY=1. */
enum hf_sd_start {
	HF_SD_START_WAITING,  /* no progress: TimeoutStartSec= applies */
	HF_SD_START_PROGRESS, /* making progress: EXTEND_TIMEOUT_USEC= */
	HF_SD_START_READY,    /* send READY=1 */
};

struct hf_sd_ops {
	/* Writes the status line for "systemctl status" into buf (a few
	 * words: "12 workers, 3 jobs running").  Required. */
	void (*status)(void *arg, char *buf, size_t len);
	/* Whether the watchdog may be fed; when not, writes why into why.
	 * interval_ms is the manager's watchdog interval.  NULL: the loop
	 * turning is enough. */
	bool (*healthy)(void *arg, int64_t interval_ms, char *why, size_t len);
	/* Before READY=1: where the start stands.  A start making progress (a
	 * migration running, say) has the manager wait longer for READY=1
	 * than TimeoutStartSec=; one that became ready without the daemon
	 * calling hf_sd_ready (it noticed on another thread) sends READY=1.
	 * NULL: the daemon calls hf_sd_ready itself. */
	enum hf_sd_start (*start)(void *arg);
};

/* Starts the conversation on loop.  Returns 0 (also when there is no
 * manager to talk to: *ret_sd is then a handle that sends nothing) or
 * -ENOMEM.  ops and arg must outlive the handle. */
int hf_sd_open(uv_loop_t *loop, const struct hf_sd_ops *ops, void *arg, struct hf_sd **ret_sd);

/* Whether a manager listens (NOTIFY_SOCKET is set). */
bool hf_sd_active(const struct hf_sd *sd);

/* The watchdog interval the manager asked for, in ms (0: none). */
int64_t hf_sd_watchdog_ms(const struct hf_sd *sd);

/* READY=1 with the current status; again after a reload.  Idempotent. */
void hf_sd_ready(struct hf_sd *sd);

/* RELOADING=1 (a reload started; hf_sd_ready ends it). */
void hf_sd_reloading(struct hf_sd *sd);

/* STOPPING=1 with the current status.  The watchdog goes on being fed
 * until hf_sd_close, as a drain can take minutes.  Idempotent. */
void hf_sd_stopping(struct hf_sd *sd);

/* Sends the status now (it changed in a way a person waits for). */
void hf_sd_status_now(struct hf_sd *sd);

/* Stops the timers and frees the handle (after their close callbacks).
 * NULL is fine. */
void hf_sd_close(struct hf_sd *sd);

#endif
