/* SPDX-License-Identifier: MIT
 *
 * Warm runner processes (see warm-pool.h).  Each runner owns five libuv
 * handles: the process, its stdin (written), its output pipe and its
 * control pipe (read), and one timer that serves, in turn, as the idle
 * timeout, the grace between closing stdin and SIGKILL, the bound on
 * waiting for the pipes after an exit, and the bound on waiting for the exit
 * after the control pipe closed.  A runner's memory is released when all of
 * its handles are closed, and the pool's when the last runner's is, after
 * warm_pool_close.
 */
#include "warm-pool.h"
#include "warm-pool-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "contain.h"
#include "hf_log.h"
#include "hf_util.h"
#include "worker-metrics.h"

/* After a runner exited, how long its pipes may stay open (held by a
 * process that left its process group) before the worker stops reading;
 * also how long a runner that closed its control pipe mid-task has to exit
 * before that counts as breaking the protocol. */
#define OUTPUT_DRAIN_MS 2000
/* At a done line, the output already in the pipe is read as the task's, up
 * to this much. */
#define DONE_DRAIN_MAX (1024 * 1024)
#define CONTROL_FD 3
/* "size resident shared text lib data dt": seven numbers of at most 20
 * characters each. */
#define PROC_STATM_MAX 160
/* Output of a runner before its first task that is logged. */
#define START_LOG_MAX 2048

static void runner_gone(struct warm_runner *w);

/* ---- memory ---- */

static void pool_free(struct warm_pool *p)
{
	for (size_t i = 0; p->argv && i < p->argc; i++)
		free(p->argv[i]);
	free(p->argv);
	free(p);
}

static void runner_free(struct warm_runner *w)
{
	struct warm_pool *p = w->pool;

	if (w->prev)
		w->prev->next = w->next;
	else
		p->runners = w->next;
	if (w->next)
		w->next->prev = w->prev;
	contain_group_free(w->group); /* what is left of it dies */
	if (w->statm_fd >= 0)
		close(w->statm_fd);
	free(w->key);
	free(w->where);
	free(w);
	p->n_runners--;
	warm_pool_maybe_free(p);
}

void warm_pool_maybe_free(struct warm_pool *p)
{
	void (*cb)(void *) = p->closed_cb;
	void *arg = p->closed_arg;

	if (!p->closing || p->n_runners > 0 || p->n_reserve_handles > 0)
		return;
	pool_free(p);
	if (cb)
		cb(arg);
}

static void runner_handle_closed_cb(uv_handle_t *h)
{
	struct warm_runner *w = h->data;

	if (--w->open_handles == 0)
		runner_free(w);
}

static void runner_handle_close(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, runner_handle_closed_cb);
}

/* Closes every handle; the runner is freed when they are.  The timer is
 * closed here and nowhere else, so the count cannot reach zero before. */
static void runner_close(struct warm_runner *w)
{
	if (w->closing)
		return;
	w->closing = true;
	w->retiring = true;
	if (w->in_init)
		runner_handle_close((uv_handle_t *)&w->in);
	w->in_closed = true;
	if (w->out_init)
		runner_handle_close((uv_handle_t *)&w->out);
	if (w->ctl_init)
		runner_handle_close((uv_handle_t *)&w->ctl);
	if (w->proc_init)
		runner_handle_close((uv_handle_t *)&w->proc);
	runner_handle_close((uv_handle_t *)&w->timer);
}

/* ---- small actions ---- */

static void describe_exit(const struct warm_runner *w, char *buf, size_t len)
{
	const char *abbrev = w->term_signal ? sigabbrev_np(w->term_signal) : NULL;

	if (w->term_signal && abbrev)
		snprintf(buf, len, "was killed by signal SIG%s", abbrev);
	else if (w->term_signal)
		snprintf(buf, len, "was killed by signal %d", w->term_signal);
	else
		snprintf(buf, len, "exited with status %lld", (long long)w->exit_status);
}

/* Signals the runner and what it started: its process group, and for
 * SIGKILL all of its containment group (contain.h), also what left the
 * process group.  Not after the exit was seen, when the pid may belong to
 * someone else, except once from the exit callback. */
static void runner_signal(struct warm_runner *w, int sig)
{
	if (!w->spawned || w->proc.pid <= 0 || !w->group)
		return;
	contain_signal(w->group, sig);
}

static void runner_timer_cb(uv_timer_t *h);

static void runner_timer_start(struct warm_runner *w, enum timer_use use, int64_t ms)
{
	w->timer_use = use;
	uv_timer_start(&w->timer, runner_timer_cb, (uint64_t)(ms > 0 ? ms : 0), 0);
}

static void runner_timer_stop(struct warm_runner *w)
{
	w->timer_use = TIMER_NONE;
	uv_timer_stop(&w->timer);
}

/* End of file on the runner's stdin: a runner exits when it reads it. */
static void runner_close_stdin(struct warm_runner *w)
{
	if (!w->in_init || w->in_closed)
		return;
	w->in_closed = true;
	runner_handle_close((uv_handle_t *)&w->in);
}

static void runner_detach(struct warm_runner *w)
{
	w->task = NULL;
	w->task_id = 0;
	w->output = NULL;
}

/* No other task: close its stdin, SIGKILL its group after the grace. */
void warm_runner_retire(struct warm_runner *w, const char *why)
{
	if (w->retiring)
		return;
	w->retiring = true;
	log_info("retiring warm runner pid %d (%s) after %u task%s: %s", w->proc.pid, w->where,
		 w->served, w->served == 1 ? "" : "s", why);
	warm_reserve_runner_lost(w->pool, w->key, false);
	runner_close_stdin(w);
	if (!w->exited)
		runner_timer_start(w, TIMER_KILL, w->pool->kill_grace_ms);
}

/* It cannot be trusted any more: kill its group now. */
static void runner_kill(struct warm_runner *w)
{
	if (warm_runner_counts(w))
		warm_reserve_runner_lost(w->pool, w->key, false);
	w->broken = true;
	w->retiring = true;
	runner_close_stdin(w);
	if (!w->exited)
		runner_signal(w, SIGKILL);
}

/* The runner broke the protocol: its task (if any) ends with message, and
 * the runner is killed. */
static void runner_protocol_error(struct warm_runner *w, const char *message)
{
	struct warm_pool *p = w->pool;
	struct warm_end end = { .kind = WARM_END_PROTOCOL, .message = message };
	void *task = w->task;

	log_warn("warm runner pid %d (%s): %s; killing it", w->proc.pid, w->where, message);
	runner_detach(w);
	runner_kill(w);
	if (task)
		p->cb(task, &end, p->arg);
}

/* ---- reading ---- */

static void runner_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct warm_runner *w = h->data;

	(void)suggested;
	*buf = uv_buf_init(w->pool->read_buf, sizeof(w->pool->read_buf));
}

static void runner_maybe_gone(struct warm_runner *w)
{
	if (w->exited && w->out_eof && w->ctl_eof)
		runner_gone(w);
}

/* What a runner says before its first task (a runner started ahead of
 * tasks: "imported torch 2.11 and transformers 5.17 in 4.2 s") goes to the
 * worker's log, a line per line, up to START_LOG_MAX bytes, non-printable
 * bytes as '?'. */
static void runner_log_start(struct warm_runner *w, const char *data, size_t n)
{
	char line[START_LOG_MAX + 1];
	size_t len = 0;

	for (size_t i = 0; i < n && w->start_logged < START_LOG_MAX; i++, w->start_logged++) {
		unsigned char c = (unsigned char)data[i];
		if (c != '\n')
			line[len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		if ((c == '\n' || i + 1 == n) && len > 0) {
			line[len] = '\0';
			log_info("warm runner pid %d (%s) before its first task: %s", w->proc.pid,
				 w->where, line);
			len = 0;
		}
	}
}

static void out_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct warm_runner *w = s->data;

	if (nread > 0) {
		if (w->output)
			tail_buf_append(w->output, buf->base, (size_t)nread);
		else if (w->served == 0)
			runner_log_start(w, buf->base, (size_t)nread);
		/* else between tasks: the output belongs to no one */
		return;
	}
	if (nread == 0)
		return;
	if (nread != UV_EOF)
		log_warn("could not read the output of warm runner pid %d: %s, ignoring the rest",
			 w->proc.pid, uv_strerror((int)nread));
	w->out_eof = true;
	uv_read_stop(s);
	runner_maybe_gone(w);
}

/* The output the runner wrote before its done line is in the pipe by now:
 * read it for the task before the task ends (the done line came through
 * another pipe, and libuv might otherwise see it first). */
static void runner_drain_output(struct warm_runner *w)
{
	uv_os_fd_t fd;
	size_t total = 0;

	if (!w->out_init || w->out_eof || !w->output ||
	    uv_fileno((const uv_handle_t *)&w->out, &fd) < 0)
		return;
	while (total < DONE_DRAIN_MAX) {
		ssize_t n = read(fd, w->pool->read_buf, sizeof(w->pool->read_buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* empty (EAGAIN), end of file or an error: libuv sees it too */
		tail_buf_append(w->output, w->pool->read_buf, (size_t)n);
		total += (size_t)n;
	}
}

/* The runner's resident memory: the larger of what its done line says and
 * what /proc says of the process (0 when neither is known).  Its statm file
 * stays open (the process is the worker's child: its pid cannot be reused
 * before it is reaped), so each task costs one pread. */
static uint64_t runner_rss(struct warm_runner *w, const struct warm_control *c)
{
	uint64_t rss = c->has_rss ? c->rss_bytes : 0, proc_rss = 0;
	long page = sysconf(_SC_PAGESIZE);
	char path[64], text[PROC_STATM_MAX + 1];
	ssize_t n;

	if (w->exited || page <= 0)
		return rss;
	if (w->statm_fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/statm", w->proc.pid);
		w->statm_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (w->statm_fd < 0)
			return rss;
	}
	do
		n = pread(w->statm_fd, text, sizeof(text) - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return rss;
	text[n] = '\0';
	if (warm_statm_parse(text, (uint64_t)page, &proc_rss) == 0 && proc_rss > rss)
		rss = proc_rss;
	return rss;
}

static void runner_idle(struct warm_runner *w)
{
	struct warm_pool *p = w->pool;

	/* Most recently used first: the others idle out. */
	if (w->prev) {
		w->prev->next = w->next;
		if (w->next)
			w->next->prev = w->prev;
		w->prev = NULL;
		w->next = p->runners;
		p->runners->prev = w;
		p->runners = w;
	}
	if (p->idle_timeout_ms > 0)
		runner_timer_start(w, TIMER_IDLE, p->idle_timeout_ms);
}

static void runner_done(struct warm_runner *w, const struct warm_control *c)
{
	struct warm_pool *p = w->pool;
	struct warm_end end = { .kind = WARM_END_DONE, .fatal = c->fatal,
				.device_fault = c->device_fault, .result = c->result };
	char msg[160], why[WARM_CONTROL_TEXT_MAX + 128];
	void *task = w->task;
	uint64_t rss;

	if (!task) {
		runner_protocol_error(w, "warm runner reported a task done while it had none");
		return;
	}
	if (c->has_task_id && c->task_id != w->task_id) {
		snprintf(msg, sizeof(msg),
			 "warm runner reported task %" PRIu64 " done while running task %" PRIu64,
			 c->task_id, w->task_id);
		runner_protocol_error(w, msg);
		return;
	}
	runner_drain_output(w);
	runner_detach(w);
	w->served++;
	w->task_inline = c->task_inline;
	warm_reserve_runner_served(p, w->key);
	/* What left the runner's session during the task dies with the task;
	 * its own children may stay until it is retired. */
	contain_kill_escaped(w->group);
	rss = runner_rss(w, c);
	/* Decided before the callback, which may hand this runner the next
	 * task. */
	if (w->retiring)
		; /* stopped or exited meanwhile: it goes anyway */
	else if (warm_retire_reason(&p->limits, w->served, rss, c, why, sizeof(why)))
		warm_runner_retire(w, why);
	else
		runner_idle(w);
	p->cb(task, &end, p->arg);
}

static void runner_control_line(struct warm_runner *w, const char *line, size_t len)
{
	struct warm_control c;
	char err[256], msg[WARM_CONTROL_TEXT_MAX + 320];
	int r;

	if (strspn(line, " \t\r") == len)
		return; /* a blank line says nothing */
	r = warm_control_parse(line, len, &c, err, sizeof(err));
	if (r < 0) {
		snprintf(msg, sizeof(msg), "warm runner sent a malformed control line (%s)",
			 r == -ENOMEM ? "out of memory reading it" : err);
		runner_protocol_error(w, msg);
		return;
	}
	if (c.kind == WARM_CONTROL_ERROR) {
		if (!w->task) {
			log_warn("warm runner pid %d (%s) reported an error while idle: %s, ignoring",
				 w->proc.pid, w->where, c.text);
			return;
		}
		snprintf(msg, sizeof(msg), "warm runner refused the task: %s", c.text);
		runner_protocol_error(w, msg);
		return;
	}
	runner_done(w, &c);
	warm_control_fini(&c);
}

static void runner_control_bytes(struct warm_runner *w, const char *data, size_t n)
{
	char msg[128];

	for (size_t i = 0; i < n && !w->broken; i++) {
		if (data[i] == '\n') {
			w->line[w->line_len] = '\0';
			runner_control_line(w, w->line, w->line_len);
			w->line_len = 0;
			continue;
		}
		if (w->line_len == sizeof(w->line) - 1) {
			snprintf(msg, sizeof(msg),
				 "warm runner sent a control line longer than %d bytes",
				 WARM_CONTROL_LINE_MAX - 1);
			runner_protocol_error(w, msg);
			return;
		}
		w->line[w->line_len++] = data[i];
	}
}

static void ctl_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct warm_runner *w = s->data;

	if (nread > 0) {
		runner_control_bytes(w, buf->base, (size_t)nread);
		return;
	}
	if (nread == 0)
		return;
	if (nread != UV_EOF)
		log_warn("could not read the control pipe of warm runner pid %d: %s", w->proc.pid,
			 uv_strerror((int)nread));
	w->ctl_eof = true;
	uv_read_stop(s);
	if (w->exited) {
		runner_maybe_gone(w);
	} else if (w->task) {
		/* Usually the runner is exiting: its exit decides, unless it
		 * does not come. */
		if (!w->retiring)
			runner_timer_start(w, TIMER_CTL_EOF, OUTPUT_DRAIN_MS);
	} else {
		/* Before any task, unasked: it is dying at start. */
		if (w->served == 0 && !w->retiring)
			warm_reserve_runner_lost(w->pool, w->key, true);
		warm_runner_retire(w, "it closed its control pipe");
	}
}

/* ---- the end of a runner ---- */

/* The runner exited and its pipes are closed (or no longer waited for): a
 * task it still had ends here, and its handles are closed. */
static void runner_gone(struct warm_runner *w)
{
	struct warm_pool *p = w->pool;
	struct warm_end end = {
		.kind = WARM_END_EXITED,
		.exit_status = w->exit_status,
		.term_signal = w->term_signal,
	};
	void *task = w->task;

	if (w->closing)
		return;
	runner_detach(w);
	runner_close(w);
	if (task)
		p->cb(task, &end, p->arg);
}

static void runner_exit_cb(uv_process_t *proc, int64_t exit_status, int term_signal)
{
	struct warm_runner *w = proc->data;
	char how[64];
	/* Gone before it served a task, and not sent away: it fails at start. */
	bool start_failed = !w->retiring && !w->task && w->served == 0;

	if (!w->retiring)
		warm_reserve_runner_lost(w->pool, w->key, start_failed);
	w->exit_status = exit_status;
	w->term_signal = term_signal;
	contain_exited(w->group);
	runner_signal(w, SIGKILL); /* whatever it left behind */
	w->exited = true;
	describe_exit(w, how, sizeof(how));
	if (w->task && !w->retiring)
		log_warn("warm runner pid %d (%s) %s while running task %" PRIu64, w->proc.pid,
			 w->where, how, w->task_id);
	else if (!w->retiring)
		log_warn("warm runner pid %d (%s) %s while idle; the next task gets a new one",
			 w->proc.pid, w->where, how);
	else
		log_info("warm runner pid %d (%s) %s", w->proc.pid, w->where, how);
	w->retiring = true;
	runner_close_stdin(w);
	if (w->out_eof && w->ctl_eof)
		runner_gone(w);
	else
		runner_timer_start(w, TIMER_DRAIN, OUTPUT_DRAIN_MS);
}

static void runner_timer_cb(uv_timer_t *h)
{
	struct warm_runner *w = h->data;
	enum timer_use use = w->timer_use;
	char why[96];

	w->timer_use = TIMER_NONE;
	switch (use) {
	case TIMER_IDLE:
		snprintf(why, sizeof(why), "idle for %g s (runner.warm_idle_timeout)",
			 (double)w->pool->idle_timeout_ms / 1000.0);
		warm_runner_retire(w, why);
		break;
	case TIMER_KILL:
		if (w->exited)
			break;
		log_warn("warm runner pid %d (%s) did not exit within %g s of its stdin being closed, "
			 "killing it",
			 w->proc.pid, w->where, (double)w->pool->kill_grace_ms / 1000.0);
		runner_signal(w, SIGKILL);
		break;
	case TIMER_DRAIN:
		if (w->out_init && !w->out_eof)
			uv_read_stop((uv_stream_t *)&w->out);
		if (w->ctl_init && !w->ctl_eof)
			uv_read_stop((uv_stream_t *)&w->ctl);
		w->out_eof = w->ctl_eof = true;
		runner_gone(w);
		break;
	case TIMER_CTL_EOF:
		if (w->task && !w->exited && !w->retiring)
			runner_protocol_error(w, "warm runner closed its control pipe while running the "
						 "task");
		break;
	case TIMER_NONE:
		break;
	}
}

/* ---- starting ---- */

static int pipe_handle_open(struct warm_runner *w, uv_pipe_t *pipe, bool *init, uv_file *fd)
{
	int r = uv_pipe_init(w->pool->loop, pipe, 0);

	if (r < 0)
		return r;
	pipe->data = w;
	*init = true;
	w->open_handles++;
	r = uv_pipe_open(pipe, *fd);
	if (r < 0)
		return r;
	*fd = -1; /* the handle's now */
	return 0;
}

static void fd_close(uv_file *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Spawns the runner with its three pipes; a negative errno on failure (the
 * handles opened so far are closed by runner_close). */
static int runner_spawn(struct warm_runner *w, char *const *env)
{
	struct warm_pool *p = w->pool;
	uv_process_options_t opts;
	uv_stdio_container_t stdio[CONTROL_FD + 1];
	uv_file in[2] = { -1, -1 }, out[2] = { -1, -1 }, ctl[2] = { -1, -1 };
	char name[32];
	int r;

	/* Ours are non-blocking; the runner's ends are ordinary blocking
	 * descriptors. */
	r = uv_pipe(in, 0, UV_NONBLOCK_PIPE);
	if (r < 0)
		goto out;
	r = uv_pipe(out, UV_NONBLOCK_PIPE, 0);
	if (r < 0)
		goto out;
	r = uv_pipe(ctl, UV_NONBLOCK_PIPE, 0);
	if (r < 0)
		goto out;
	r = pipe_handle_open(w, &w->in, &w->in_init, &in[1]);
	if (r < 0)
		goto out;
	r = pipe_handle_open(w, &w->out, &w->out_init, &out[0]);
	if (r < 0)
		goto out;
	r = pipe_handle_open(w, &w->ctl, &w->ctl_init, &ctl[0]);
	if (r < 0)
		goto out;

	memset(&opts, 0, sizeof(opts));
	stdio[0].flags = UV_INHERIT_FD;
	stdio[0].data.fd = in[0];
	/* One pipe for stdout and stderr keeps their lines in the order written. */
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = out[1];
	stdio[2] = stdio[1];
	stdio[CONTROL_FD].flags = UV_INHERIT_FD;
	stdio[CONTROL_FD].data.fd = ctl[1];
	opts.file = p->argv[0];
	opts.args = p->argv;
	opts.env = (char **)env;
	opts.stdio = stdio;
	opts.stdio_count = CONTROL_FD + 1;
	opts.flags = UV_PROCESS_DETACHED;
	opts.exit_cb = runner_exit_cb;
	w->proc.data = w;
	snprintf(name, sizeof(name), "warm-%u", w->seq);
	r = contain_group_new(p->contain, name, &w->group);
	if (r == 0)
		r = contain_spawn_enter(w->group);
	if (r < 0)
		goto out;
	r = uv_spawn(p->loop, &w->proc, &opts);
	contain_spawn_leave(w->group, r == 0 ? w->proc.pid : 0);
	w->proc_init = true; /* initialised even when the spawn failed */
	w->open_handles++;
	if (r < 0)
		goto out;
	w->spawned = true;
	worker_metrics_runner_started();
	r = uv_read_start((uv_stream_t *)&w->out, runner_alloc_cb, out_read_cb);
	if (r < 0) {
		log_warn("could not read the output of warm runner pid %d: %s, ignoring it",
			 w->proc.pid, uv_strerror(r));
		w->out_eof = true;
	}
	r = uv_read_start((uv_stream_t *)&w->ctl, runner_alloc_cb, ctl_read_cb);
	if (r < 0) {
		/* Without its control pipe it could never finish a task. */
		log_error("could not read the control pipe of warm runner pid %d: %s", w->proc.pid,
			  uv_strerror(r));
		w->ctl_eof = true;
		runner_kill(w);
		goto out;
	}
	r = 0;
out:
	fd_close(&in[0]);
	fd_close(&in[1]);
	fd_close(&out[0]);
	fd_close(&out[1]); /* the runner has its copies */
	fd_close(&ctl[0]);
	fd_close(&ctl[1]);
	return r;
}

int warm_runner_start(struct warm_pool *p, const char *key, char *const *env, const char *where,
		      struct warm_runner **ret)
{
	struct warm_runner *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->pool = p;
	w->statm_fd = -1;
	w->seq = ++p->seq;
	w->key = strdup(key);
	w->where = strdup(where);
	if (!w->key || !w->where) {
		free(w->key);
		free(w->where);
		free(w);
		return -ENOMEM;
	}
	uv_timer_init(p->loop, &w->timer);
	w->timer.data = w;
	w->open_handles = 1;
	w->next = p->runners;
	if (p->runners)
		p->runners->prev = w;
	p->runners = w;
	p->n_runners++;

	r = runner_spawn(w, env);
	if (r < 0) {
		if (!w->spawned)
			runner_close(w);
		/* else: it was killed, and goes through its exit */
		return r;
	}
	log_info("warm runner started for %s: pid %d", where, w->proc.pid);
	*ret = w;
	return 0;
}

/* ---- submitting ---- */

static void runner_write_cb(uv_write_t *req, int status)
{
	struct warm_write *ww = req->data;
	struct warm_runner *w = ww->w;
	char msg[160];

	if (status < 0 && status != UV_ECANCELED && w->task == ww->task && ww->task) {
		snprintf(msg, sizeof(msg), "could not send the task to the warm runner: %s",
			 uv_strerror(status));
		runner_protocol_error(w, msg);
	}
	free(ww->line);
	free(ww);
}

/* The idle runner of key a task goes to: the most recently used one that
 * has served a task (its frameworks are imported for sure), else the one
 * started first of those that have served none (a runner started ahead of
 * tasks may still be importing them: the oldest is the likeliest done). */
static struct warm_runner *pool_find_idle(struct warm_pool *p, const char *key)
{
	struct warm_runner *fresh = NULL;

	for (struct warm_runner *w = p->runners; w; w = w->next) {
		if (!w->spawned || w->task || w->retiring || w->exited || w->closing ||
		    strcmp(w->key, key) != 0)
			continue;
		if (w->served > 0)
			return w;
		fresh = w; /* the list is newest first: the last one is the oldest */
	}
	return fresh;
}

bool warm_pool_has_idle(struct warm_pool *p, const char *key)
{
	return !p->closing && pool_find_idle(p, key);
}

bool warm_pool_takes_inline(struct warm_pool *p, const char *key)
{
	struct warm_runner *w = p->closing ? NULL : pool_find_idle(p, key);

	return w && w->task_inline;
}

int warm_pool_submit(struct warm_pool *p, const char *key, char *const *env, const char *where,
		     uint64_t task_id, const char *task_path, const char *task_json,
		     const char *result_path, struct tail_buf *output, void *task,
		     struct warm_runner **ret_runner)
{
	struct warm_runner *w;
	struct warm_write *ww;
	uv_buf_t buf;
	size_t len;
	bool fresh = false;
	int r;

	if (p->closing)
		return -ESHUTDOWN;
	ww = calloc(1, sizeof(*ww));
	if (!ww)
		return -ENOMEM;
	w = pool_find_idle(p, key);
	if (task_json && w && w->task_inline)
		r = warm_request_format_inline(task_json, result_path, &ww->line, &len);
	else
		r = warm_request_format(task_path, result_path, &ww->line, &len);
	if (r < 0) {
		free(ww);
		return r;
	}
	if (!w) {
		r = env ? warm_runner_start(p, key, env, where, &w) : -EINVAL;
		if (r < 0) {
			free(ww->line);
			free(ww);
			return r;
		}
		fresh = true;
	}
	runner_timer_stop(w);
	w->task = task;
	w->task_id = task_id;
	w->output = output;
	ww->w = w;
	ww->task = task;
	ww->req.data = ww;
	buf = uv_buf_init(ww->line, (unsigned)len);
	r = uv_write(&ww->req, (uv_stream_t *)&w->in, &buf, 1, runner_write_cb);
	if (r < 0) {
		log_warn("could not send task %" PRIu64 " to warm runner pid %d: %s", task_id,
			 w->proc.pid, uv_strerror(r));
		free(ww->line);
		free(ww);
		runner_detach(w);
		runner_kill(w);
		return r;
	}
	log_debug("task %" PRIu64 " sent to %s warm runner pid %d (%s)", task_id,
		  fresh ? "new" : "idle", w->proc.pid, where);
	*ret_runner = w;
	return 0;
}

/* ---- the executor's calls ---- */

int warm_runner_pid(const struct warm_runner *w)
{
	return w->exited ? 0 : w->proc.pid;
}

void warm_runner_signal(struct warm_runner *w, int sig)
{
	if (!w->exited)
		runner_signal(w, sig);
}

void warm_runner_condemn(struct warm_runner *w)
{
	if (w->retiring)
		return;
	w->retiring = true;
	log_info("warm runner pid %d (%s) is stopped with task %" PRIu64
		 "; the next task gets a new one",
		 w->proc.pid, w->where, w->task_id);
	warm_reserve_runner_lost(w->pool, w->key, false);
	runner_timer_stop(w);
	runner_close_stdin(w);
}

void warm_runner_abandon(struct warm_runner *w)
{
	log_debug("warm runner pid %d (%s) is killed with its task %" PRIu64, w->proc.pid,
		  w->where, w->task_id);
	runner_detach(w);
	runner_kill(w);
}

bool warm_runner_counts(const struct warm_runner *w)
{
	return w->spawned && !w->retiring && !w->exited && !w->closing;
}

size_t warm_pool_size(const struct warm_pool *p)
{
	size_t n = 0;

	for (const struct warm_runner *w = p->runners; w; w = w->next)
		n += warm_runner_counts(w);
	return n;
}

/* ---- the pool ---- */

int warm_pool_new(uv_loop_t *loop, const struct warm_pool_config *cfg, warm_end_cb cb,
		  void *arg, struct warm_pool **ret_pool)
{
	struct warm_pool *p;
	size_t argc = 0;

	if (!cfg->argv || !cfg->argv[0] || !cb || !cfg->contain)
		return -EINVAL;
	while (cfg->argv[argc])
		argc++;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->contain = cfg->contain;
	p->kill_grace_ms = cfg->kill_grace_ms;
	p->idle_timeout_ms = cfg->idle_timeout_ms;
	p->limits = cfg->limits;
	p->cb = cb;
	p->arg = arg;
	p->argv = calloc(argc + 2, sizeof(*p->argv));
	if (!p->argv)
		goto oom;
	for (size_t i = 0; i < argc; i++) {
		p->argv[i] = strdup(cfg->argv[i]);
		if (!p->argv[i])
			goto oom;
		p->argc++;
	}
	p->argv[argc] = strdup("--serve");
	if (!p->argv[argc])
		goto oom;
	p->argc++;
	*ret_pool = p;
	return 0;
oom:
	pool_free(p);
	return -ENOMEM;
}

bool warm_pool_close(struct warm_pool *p, void (*closed_cb)(void *arg), void *arg)
{
	if (!p)
		return true;
	p->closing = true;
	warm_reserve_close_all(p);
	for (struct warm_runner *w = p->runners; w; w = w->next) {
		if (w->task)
			warm_runner_abandon(w); /* a bug in the caller, but no process is left */
		else if (!w->closing)
			warm_runner_retire(w, "the worker stops");
	}
	if (p->n_runners == 0 && p->n_reserve_handles == 0) {
		pool_free(p);
		return true;
	}
	p->closed_cb = closed_cb;
	p->closed_arg = arg;
	return false;
}
