/* SPDX-License-Identifier: MIT
 *
 * What hf-coordinator tells systemd (common/hf_sdnotify.h): the status line
 * of "systemctl status", when the start is ready or making progress, and
 * whether the watchdog may be fed.  Loop thread only.
 *
 * Ready: once the database is migrated, the live state loaded and the
 * listeners open (main.c's start_done calls coord_sd_ready), or once this
 * coordinator stands by for another that is active on the same database
 * (standing by is its service until it takes over; the status says so).
 *
 * The watchdog is fed while the loop turns (the timer runs on it) and, once
 * serving, while the database thread has not been inside one batch of
 * operations for longer than the watchdog interval: a statement or a
 * connection attempt hung that long stops the coordinator from doing its
 * work (leases, results, every hfctl request wait on it), and only a restart
 * cures a thread stuck in libpq.  A database that refuses connections does
 * not hold the watchdog back: the thread answers at once, the coordinator
 * reconnects by itself and keeps its workers, and a restart would gain
 * nothing; the status says "database unreachable" instead.
 */
#include <inttypes.h>
#include <stdio.h>

#include "coordinator.h"
#include "hf_sdnotify.h"

static void count_job(struct sched_job *job, void *arg)
{
	(void)job;
	(*(size_t *)arg)++;
}

static void coord_sd_status(void *arg, char *buf, size_t len)
{
	struct coord *c = arg;
	size_t workers = 0, connected = 0, jobs = 0, queued, running;
	int64_t now = hf_mono_ms();

	if (c->stopping) {
		snprintf(buf, len, "stopping");
		return;
	}
	if (!c->serving) {
		if (c->db && db_standby(c->db))
			snprintf(buf, len, "standby: another coordinator is active on this database; "
				 "waiting to take over");
		else if (c->db && db_healthy(c->db))
			snprintf(buf, len, "starting: migrating the database and loading the live state");
		else
			snprintf(buf, len, "starting: waiting for the database");
		return;
	}
	for (struct coord_worker *w = c->workers; w; w = w->next) {
		workers++;
		connected += coord_worker_connected(c, w, now);
	}
	sched_jobs_foreach(c->sched, count_job, &jobs);
	queued = sched_count_state(c->sched, SCHED_QUEUED) + sched_count_state(c->sched, SCHED_GRANTING) +
		 sched_count_state(c->sched, SCHED_DELAYED);
	running = sched_count_state(c->sched, SCHED_LEASED) + sched_count_state(c->sched, SCHED_EXPIRING);
	snprintf(buf, len, "%zu worker%s connected (%zu known), %zu job%s running, %zu task%s queued, %zu running%s",
		 connected, connected == 1 ? "" : "s", workers, jobs, jobs == 1 ? "" : "s", queued,
		 queued == 1 ? "" : "s", running,
		 c->db && db_healthy(c->db) ? "" : "; database unreachable, reconnecting");
}

static bool coord_sd_healthy(void *arg, int64_t interval_ms, char *why, size_t len)
{
	struct coord *c = arg;
	int64_t busy;

	if (!c->serving || !c->db)
		return true;
	busy = db_busy_ms(c->db);
	if (busy <= interval_ms)
		return true;
	snprintf(why, len, "the database thread has been inside one operation for %" PRId64 " ms", busy);
	return false;
}

static enum hf_sd_start coord_sd_start(void *arg)
{
	struct coord *c = arg;

	if (c->serving || (c->db && db_standby(c->db)))
		return HF_SD_START_READY;
	/* Connected: migrating and loading, which may take a while on a big
	 * database.  Not connected: TimeoutStartSec= applies. */
	if (c->db && db_healthy(c->db))
		return HF_SD_START_PROGRESS;
	return HF_SD_START_WAITING;
}

static const struct hf_sd_ops coord_sd_ops = {
	.status = coord_sd_status,
	.healthy = coord_sd_healthy,
	.start = coord_sd_start,
};

int coord_sd_open(struct coord *c)
{
	return hf_sd_open(c->loop, &coord_sd_ops, c, &c->sd);
}
