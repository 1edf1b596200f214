/* SPDX-License-Identifier: MIT
 *
 * Tests of the worker's session (worker/session.c) against a fake
 * coordinator: an nng REP server on the same libuv loop that answers as
 * hf-coordinator does, records what it was sent, and can be told to
 * misbehave.  The runner is a /bin/sh script, so tasks really run.  The
 * telemetry test detects a GPU through the stand-in NVML library.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "hf_nuv.h"
#include "hf_proto.h"
#include "hf_util.h"
#include "hw.h"
#include "runtime-probe.h"
#include "session.h"
#include "spool.h"

#define GUARD_MS 20000
#define MAX_SEEN 16

struct seen_result {
	uint64_t task_id;
	uint32_t attempt;
	Hf__TaskStatus status;
	char reason[256];
};

/* The fake coordinator: what it will answer, and what it saw. */
static struct fake {
	nuv_server_t *srv;
	Hf__ErrorCode register_error;   /* answer Register with this error */
	bool register_refuse;           /* answer accepted = false */
	bool forget_at_poll[64];        /* answer poll n with ERR_NOT_REGISTERED */
	bool ack;                       /* acknowledge results */
	uint64_t refuse_task;           /* answer ERR_BAD_REQUEST to a batch holding it */
	int n_refused;
	Hf__Assignment *assign_at_poll[64][2];
	Hf__TaskRef *cancel_at_poll[64];
	void (*on_result)(void);
	void (*on_poll)(int n, const Hf__Poll *p);

	int n_register, n_poll, n_batch;
	size_t register_running[8];
	size_t register_devices[8];
	char register_last_uuid[96], register_last_attr[128];
	bool register_last_declared;
	size_t register_backends;
	char register_cuda_reason[256];
	size_t poll_telemetry;
	Hf__DeviceTelemetry poll_telemetry_first;
	bool telemetry_on_every_poll;
	uint32_t register_slots, register_protocol;
	char register_id[64], register_label[64];
	size_t register_runtimes;
	struct seen_result results[MAX_SEEN];
	int n_results;
	bool saw_draining;
	uint32_t draining_free;
	/* Sessions: what each Register sent, and the polls and batches that
	 * did not carry the session of the last RegisterReply. */
	uint64_t register_session[8];
	int id_in_use_times;            /* answer the first n Registers ERR_ID_IN_USE */
	int polls_without_session, batches_without_session;
	/* hold_results: result batches are answered two at a time, the older
	 * when a second comes (or after a second alone), and what was seen
	 * of them: the most held at once, each task's acknowledgements. */
	bool hold_results;
	nuv_request_t *held_req[2];
	Hf__TaskRef held_refs[2][MAX_SEEN];
	size_t held_n[2];
	int held, max_held, acked[MAX_SEEN];
} fake;
static uv_timer_t release_timer;

#define FAKE_SESSION UINT64_C(0xfeedface12345678)

static char state_dir[64], script[128], url[128];
static uv_loop_t loop;
static uv_timer_t guard;
static struct session *session;
static int exit_code;
static bool ended;
static struct hw_inventory inv;
static struct runtime_list runtimes;
static bool telemetry;

/* ---- the fake coordinator ---- */

static void reply(nuv_request_t *req, Hf__Envelope *env)
{
	nng_msg *msg;

	ck_assert_int_eq(hf_env_pack(env, &msg), 0);
	nuv_reply(req, msg);
}

static void fake_register(nuv_request_t *req, const Hf__Register *r)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__RegisterReply rr = HF__REGISTER_REPLY__INIT;
	Hf__Error e = HF__ERROR__INIT;

	ck_assert_int_lt(fake.n_register, 8);
	fake.register_session[fake.n_register] = r->session;
	fake.register_devices[fake.n_register] = r->n_devices;
	fake.register_running[fake.n_register++] = r->n_running;
	if (r->n_devices) {
		const Hf__Device *d = r->devices[r->n_devices - 1];
		snprintf(fake.register_last_uuid, sizeof(fake.register_last_uuid), "%s", d->uuid);
		fake.register_last_declared = d->declared;
		if (d->n_attrs)
			snprintf(fake.register_last_attr, sizeof(fake.register_last_attr), "%s=%s",
				 d->attrs[0]->key, d->attrs[0]->value);
	}
	fake.register_backends = r->n_backends;
	for (size_t i = 0; i < r->n_backends; i++)
		if (r->backends[i]->backend == HF__BACKEND__BACKEND_CUDA)
			snprintf(fake.register_cuda_reason, sizeof(fake.register_cuda_reason), "%s",
				 r->backends[i]->reason);
	snprintf(fake.register_id, sizeof(fake.register_id), "%s", r->worker_id);
	fake.register_protocol = r->protocol_version;
	fake.register_slots = r->n_devices ? r->devices[0]->slots : 0;
	fake.register_runtimes = r->n_runtimes;
	if (r->n_labels)
		snprintf(fake.register_label, sizeof(fake.register_label), "%s=%s",
			 r->labels[0]->key, r->labels[0]->value);
	ck_assert_ptr_nonnull(r->cpu);
	if (fake.id_in_use_times > 0) {
		fake.id_in_use_times--;
		e.code = HF__ERROR_CODE__ERR_ID_IN_USE;
		e.message = "worker id \"w1\" is in use: another live worker holds it";
		env.body_case = HF__ENVELOPE__BODY_ERROR;
		env.error = &e;
	} else if (fake.register_error) {
		e.code = fake.register_error;
		e.message = "protocol version 1 is not accepted";
		e.min_protocol = 7;
		e.max_protocol = 9;
		env.body_case = HF__ENVELOPE__BODY_ERROR;
		env.error = &e;
	} else {
		rr.accepted = !fake.register_refuse;
		rr.reason = fake.register_refuse ? "worker id is taken" : "";
		rr.heartbeat_ms = 50;
		rr.lease_ms = 5000;
		rr.session = FAKE_SESSION;
		env.body_case = HF__ENVELOPE__BODY_REGISTER_REPLY;
		env.register_reply = &rr;
	}
	reply(req, &env);
}

static void fake_poll(nuv_request_t *req, const Hf__Poll *p)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__PollReply pr = HF__POLL_REPLY__INIT;
	Hf__Error e = HF__ERROR__INIT;
	Hf__Assignment *as[2];
	int n = fake.n_poll++;

	fake.polls_without_session += p->session != FAKE_SESSION;
	if (p->draining) {
		fake.saw_draining = true;
		fake.draining_free = p->n_free ? p->free[0]->free_slots : 99;
	}
	if (n == 0)
		fake.telemetry_on_every_poll = true;
	fake.telemetry_on_every_poll = fake.telemetry_on_every_poll && p->n_telemetry > 0;
	fake.poll_telemetry = p->n_telemetry;
	if (p->n_telemetry)
		fake.poll_telemetry_first = *p->telemetry[0];
	if (fake.on_poll)
		fake.on_poll(n, p);
	if (n < 64 && fake.forget_at_poll[n]) {
		e.code = HF__ERROR_CODE__ERR_NOT_REGISTERED;
		e.message = "unknown worker";
		env.body_case = HF__ENVELOPE__BODY_ERROR;
		env.error = &e;
		reply(req, &env);
		return;
	}
	if (n < 64) {
		for (int i = 0; i < 2; i++)
			if (fake.assign_at_poll[n][i])
				as[pr.n_assignments++] = fake.assign_at_poll[n][i];
		if (fake.cancel_at_poll[n]) {
			pr.n_cancel = 1;
			pr.cancel = &fake.cancel_at_poll[n];
		}
	}
	pr.assignments = as;
	env.body_case = HF__ENVELOPE__BODY_POLL_REPLY;
	env.poll_reply = &pr;
	reply(req, &env);
}

/* Acknowledges the older batch held (hold_results). */
static void fake_release_oldest(void)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Ack ack = HF__ACK__INIT;
	Hf__TaskRef *refp[MAX_SEEN];

	for (size_t i = 0; i < fake.held_n[0]; i++) {
		refp[i] = &fake.held_refs[0][i];
		fake.acked[refp[i]->task_id % MAX_SEEN]++;
	}
	ack.n_acked = fake.held_n[0];
	ack.acked = refp;
	env.body_case = HF__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	reply(fake.held_req[0], &env);
	fake.held--;
	fake.held_req[0] = fake.held_req[1];
	fake.held_n[0] = fake.held_n[1];
	memcpy(fake.held_refs[0], fake.held_refs[1], sizeof(fake.held_refs[0]));
	if (fake.on_result)
		fake.on_result();
}

static void release_timer_cb(uv_timer_t *h)
{
	(void)h;
	if (fake.held > 0)
		fake_release_oldest();
}

static void fake_results_held(nuv_request_t *req, const Hf__ResultBatch *b)
{
	/* Never a third batch while two are unanswered, and no result in
	 * two of them at once. */
	ck_assert_int_lt(fake.held, 2);
	ck_assert_uint_le(b->n_results, MAX_SEEN);
	for (size_t i = 0; i < b->n_results; i++) {
		for (int h = 0; h < fake.held; h++)
			for (size_t k = 0; k < fake.held_n[h]; k++)
				ck_assert(fake.held_refs[h][k].task_id != b->results[i]->task_id);
		ck_assert_int_lt(fake.n_results, MAX_SEEN);
		fake.results[fake.n_results++].task_id = b->results[i]->task_id;
		hf__task_ref__init(&fake.held_refs[fake.held][i]);
		fake.held_refs[fake.held][i].task_id = b->results[i]->task_id;
		fake.held_refs[fake.held][i].attempt = b->results[i]->attempt;
	}
	fake.held_req[fake.held] = req;
	fake.held_n[fake.held++] = b->n_results;
	fake.max_held = fake.held > fake.max_held ? fake.held : fake.max_held;
	if (fake.held == 2)
		fake_release_oldest();
	uv_timer_start(&release_timer, release_timer_cb, 1000, 1000);
}

static void fake_results(nuv_request_t *req, const Hf__ResultBatch *b)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Ack ack = HF__ACK__INIT;
	Hf__TaskRef refs[SESSION_BATCH_MAX], *refp[SESSION_BATCH_MAX];

	fake.n_batch++;
	fake.batches_without_session += b->session != FAKE_SESSION;
	if (fake.hold_results) {
		fake_results_held(req, b);
		return;
	}
	for (size_t i = 0; fake.refuse_task && i < b->n_results; i++) {
		if (b->results[i]->task_id != fake.refuse_task)
			continue;
		nng_msg *msg;
		fake.n_refused++;
		ck_assert_int_eq(hf_env_error(HF__ERROR_CODE__ERR_BAD_REQUEST, &msg,
					      "results[%zu].reason: invalid", i), 0);
		nuv_reply(req, msg);
		if (fake.on_result)
			fake.on_result();
		return;
	}
	for (size_t i = 0; i < b->n_results; i++) {
		const Hf__TaskResult *r = b->results[i];
		ck_assert_int_lt(fake.n_results, MAX_SEEN);
		struct seen_result *s = &fake.results[fake.n_results++];
		s->task_id = r->task_id;
		s->attempt = r->attempt;
		s->status = r->status;
		snprintf(s->reason, sizeof(s->reason), "%s", r->reason);
		hf__task_ref__init(&refs[i]);
		refs[i].task_id = r->task_id;
		refs[i].attempt = r->attempt;
		refp[i] = &refs[i];
	}
	if (fake.ack) {
		ack.n_acked = b->n_results;
		ack.acked = refp;
	}
	env.body_case = HF__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	reply(req, &env);
	if (fake.on_result)
		fake.on_result();
}

static void fake_request_cb(nuv_request_t *req, nng_msg *msg, void *arg)
{
	Hf__Envelope *env;

	(void)arg;
	ck_assert_int_eq(hf_env_unpack(nng_msg_body(msg), nng_msg_len(msg), &env), 0);
	nng_msg_free(msg);
	switch (env->body_case) {
	case HF__ENVELOPE__BODY_REGISTER:
		fake_register(req, env->register_);
		break;
	case HF__ENVELOPE__BODY_POLL:
		fake_poll(req, env->poll);
		break;
	case HF__ENVELOPE__BODY_RESULTS:
		fake_results(req, env->results);
		break;
	default:
		ck_abort_msg("unexpected message %d", env->body_case);
	}
	hf_env_free(env);
}

static void fake_start(void)
{
	ck_assert_int_eq(nuv_server_open(&loop, url, NULL, 4, 0, fake_request_cb, NULL, &fake.srv), 0);
}

/* ---- the worker ---- */

static void session_done_cb(struct session *s, int code, void *arg)
{
	(void)s;
	(void)arg;
	exit_code = code;
	ended = true;
	nuv_server_close(fake.srv);
	fake.srv = NULL;
	uv_close((uv_handle_t *)&guard, NULL);
	if (fake.hold_results)
		uv_close((uv_handle_t *)&release_timer, NULL);
}

static void guard_cb(uv_timer_t *h)
{
	(void)h;
	ck_abort_msg("the session did not end within %d ms", GUARD_MS);
}

static void setup(void)
{
	memset(&fake, 0, sizeof(fake));
	fake.ack = true;
	strcpy(state_dir, "/tmp/hfsessXXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(state_dir));
	snprintf(script, sizeof(script), "%s/runner.sh", state_dir);
	snprintf(url, sizeof(url), "ipc://%s/coordinator.ipc", state_dir);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	memset(&inv, 0, sizeof(inv));
	snprintf(inv.cpu.model, sizeof(inv.cpu.model), "Test CPU");
	snprintf(inv.cpu.arch, sizeof(inv.cpu.arch), "x86_64");
	inv.cpu.threads = 4;
	inv.devices[0].backend = HF__BACKEND__BACKEND_CPU;
	inv.devices[0].slots = 1;
	inv.devices[0].shared = true; /* as detection makes the CPU */
	inv.devices[0].visible_index = -1;
	for (int b = 0; b < HW_N_BACKENDS; b++)
		inv.backends[b].backend = (Hf__Backend)(b + 1);
	snprintf(inv.devices[0].name, sizeof(inv.devices[0].name), "Test CPU");
	inv.n_devices = 1;
	memset(&runtimes, 0, sizeof(runtimes));
	ck_assert_int_eq(runtime_list_add(&runtimes, "python", "3.11", true, ""), 0);
	ended = false;
	exit_code = -1;
	session = NULL;
	telemetry = false;
}

static void teardown(void)
{
	char cmd[128];

	runtime_list_fini(&runtimes);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_script(const char *body)
{
	FILE *f = fopen(script, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	ck_assert_int_eq(fclose(f), 0);
}

static void start_session(unsigned slots, int64_t drain_timeout_ms)
{
	static char *argv[] = { (char *)"/bin/sh", script, NULL };
	static const struct worker_label labels[] = { { (char *)"zone", (char *)"test" } };
	struct session_config cfg = {
		.url = url,
		.worker_id = "w1",
		.hostname = "testhost",
		.labels = labels,
		.n_labels = 1,
		.inv = &inv,
		.runtimes = &runtimes,
		.telemetry = telemetry,
		.heartbeat_ms = 50,
		.drain_timeout_ms = drain_timeout_ms,
		.exec = { .argv = argv, .state_dir = state_dir, .default_timeout_ms = 10000,
			  .kill_grace_ms = 200, .output_limit = 65536 },
	};
	char err[256];

	inv.devices[0].slots = slots;
	ck_assert_int_eq(session_new(&loop, &cfg, session_done_cb, NULL, &session, err, sizeof(err)), 0);
	uv_timer_init(&loop, &guard);
	uv_timer_start(&guard, guard_cb, GUARD_MS, 0);
	session_start(session);
}

/* Runs until the session ended and everything is closed. */
static void run_to_end(void)
{
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(ended);
	session_free(session);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

static Hf__Assignment *assignment(uint64_t task_id, uint32_t attempt)
{
	static Hf__Assignment as[8];
	static int next;
	Hf__Assignment *a = &as[next++ % 8];

	hf__assignment__init(a);
	a->task_id = task_id;
	a->attempt = attempt;
	a->model_type = "bert";
	a->kind = HF__TASK_KIND__KIND_TEST;
	a->backend = HF__BACKEND__BACKEND_CPU;
	a->timeout_s = 10;
	return a;
}

static size_t spool_count(void)
{
	struct spool *sp;
	Hf__TaskResult **list;
	size_t n;

	ck_assert_int_eq(spool_open(state_dir, &sp), 0);
	ck_assert_int_eq(spool_load(sp, &list, &n), 0);
	spool_results_free(list, n);
	spool_close(sp);
	return n;
}

static void drain_now(void)
{
	session_drain(session);
}

static void stop_now(void)
{
	session_stop_now(session);
}

/* ---- tests ---- */

START_TEST(test_registers_runs_an_assignment_and_reports_it)
{
	char dir[128];
	struct stat st;

	write_script("printf '{\"status\":\"passed\",\"weights\":\"random-init\"}' > \"$4\"");
	fake.assign_at_poll[0][0] = assignment(1, 1);
	fake.on_result = drain_now;
	fake_start();
	start_session(2, 5000);
	run_to_end();

	ck_assert_int_eq(exit_code, 0);
	ck_assert_int_eq(fake.n_register, 1);
	ck_assert_str_eq(fake.register_id, "w1");
	ck_assert_uint_eq(fake.register_protocol, HF_PROTOCOL_VERSION);
	ck_assert_uint_eq(fake.register_slots, 2);
	ck_assert_uint_eq(fake.register_runtimes, 1);
	ck_assert_str_eq(fake.register_label, "zone=test");
	ck_assert_int_eq(fake.n_results, 1);
	ck_assert_uint_eq(fake.results[0].task_id, 1);
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_PASSED);
	/* Acknowledged: gone from the spool, task directory removed. */
	ck_assert_uint_eq(spool_count(), 0);
	snprintf(dir, sizeof(dir), "%s/tasks/1-1", state_dir);
	ck_assert_int_eq(stat(dir, &st), -1);
}
END_TEST

START_TEST(test_refused_protocol_version_ends_with_exit_1)
{
	fake.register_error = HF__ERROR_CODE__ERR_VERSION;
	fake_start();
	start_session(1, 5000);
	run_to_end();
	ck_assert_int_eq(exit_code, 1);
	ck_assert_int_eq(fake.n_register, 1);
	ck_assert_int_eq(fake.n_poll, 0);
}
END_TEST

START_TEST(test_refused_registration_ends_with_exit_1)
{
	fake.register_refuse = true;
	fake_start();
	start_session(1, 5000);
	run_to_end();
	ck_assert_int_eq(exit_code, 1);
	ck_assert_int_eq(fake.n_poll, 0);
}
END_TEST

/* The id is held by another live worker at first: the worker keeps trying
 * (the other may be stopping), then sends the session it was given with
 * every poll and batch, and with its next Register. */
START_TEST(test_id_in_use_is_retried_and_the_session_goes_with_every_message)
{
	write_script("sleep 0.5\nprintf '{\"status\":\"passed\"}' > \"$4\"");
	fake.id_in_use_times = 2;
	fake.assign_at_poll[0][0] = assignment(7, 1);
	fake.forget_at_poll[1] = true;
	fake.on_result = drain_now;
	fake_start();
	start_session(1, 5000);
	run_to_end();
	ck_assert_int_eq(exit_code, 0);
	ck_assert_int_ge(fake.n_register, 4);
	ck_assert_uint_eq(fake.register_session[0], 0);
	ck_assert_uint_eq(fake.register_session[2], 0); /* the first accepted */
	ck_assert_uint_eq(fake.register_session[3], FAKE_SESSION); /* again within it */
	ck_assert_int_ge(fake.n_poll, 2);
	ck_assert_int_eq(fake.polls_without_session, 0);
	ck_assert_int_ge(fake.n_batch, 1);
	ck_assert_int_eq(fake.batches_without_session, 0);
	ck_assert_int_eq(fake.n_results, 1);
}
END_TEST

START_TEST(test_unavailable_coordinator_is_retried)
{
	fake.register_error = HF__ERROR_CODE__ERR_UNAVAILABLE;
	fake_start();
	start_session(1, 5000);
	/* Let it retry a few times, then let registration succeed. */
	while (fake.n_register < 3)
		uv_run(&loop, UV_RUN_ONCE);
	fake.register_error = HF__ERROR_CODE__ERR_NONE;
	while (fake.n_poll < 1)
		uv_run(&loop, UV_RUN_ONCE);
	session_drain(session);
	run_to_end();
	ck_assert_int_eq(exit_code, 0);
	ck_assert_int_ge(fake.n_register, 4);
}
END_TEST

/* Poll 2 is answered "not registered"; the poll after the new registration
 * still renews the running task's lease. */
static void poll_after_reregistering_lists_the_task(int n, const Hf__Poll *p)
{
	if (n == 3)
		ck_assert_uint_eq(p->n_running, 1);
}

START_TEST(test_not_registered_means_register_again_naming_running_tasks)
{
	write_script("sleep 1\nprintf '{\"status\":\"passed\"}' > \"$4\"");
	fake.assign_at_poll[0][0] = assignment(2, 1);
	fake.forget_at_poll[2] = true;
	fake.on_poll = poll_after_reregistering_lists_the_task;
	fake.on_result = drain_now;
	fake_start();
	start_session(1, 5000);
	run_to_end();
	ck_assert_int_eq(exit_code, 0);
	ck_assert_int_ge(fake.n_register, 2);
	ck_assert_uint_eq(fake.register_running[0], 0);
	ck_assert_uint_eq(fake.register_running[1], 1); /* the running task */
	ck_assert_int_eq(fake.n_results, 1);
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_PASSED);
}
END_TEST

START_TEST(test_assignment_beyond_free_slots_is_answered_with_an_error)
{
	write_script("sleep 0.3\nprintf '{\"status\":\"passed\"}' > \"$4\"");
	fake.assign_at_poll[0][0] = assignment(3, 1);
	fake.assign_at_poll[0][1] = assignment(4, 1);
	fake_start();
	start_session(1, 5000);
	while (fake.n_results < 2)
		uv_run(&loop, UV_RUN_ONCE);
	session_drain(session);
	run_to_end();
	/* The rejection comes first, at once; the task that ran after it. */
	ck_assert_uint_eq(fake.results[0].task_id, 4);
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(fake.results[0].reason, "worker has no free slot on device cpu:0");
	ck_assert_uint_eq(fake.results[1].task_id, 3);
	ck_assert_int_eq(fake.results[1].status, HF__TASK_STATUS__STATUS_PASSED);
}
END_TEST

START_TEST(test_cancel_in_a_poll_reply_stops_the_task)
{
	static Hf__TaskRef ref = HF__TASK_REF__INIT;

	write_script("exec sleep 100");
	ref.task_id = 5;
	ref.attempt = 1;
	fake.assign_at_poll[0][0] = assignment(5, 1);
	fake.cancel_at_poll[3] = &ref;
	fake.on_result = drain_now;
	fake_start();
	start_session(1, 5000);
	run_to_end();
	ck_assert_int_eq(fake.n_results, 1);
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_CANCELLED);
}
END_TEST

START_TEST(test_drain_offers_no_slots_and_lets_the_task_finish)
{
	write_script("sleep 0.5\nprintf '{\"status\":\"passed\"}' > \"$4\"");
	fake.assign_at_poll[0][0] = assignment(6, 1);
	fake_start();
	start_session(1, 5000);
	while (fake.n_poll < 2)
		uv_run(&loop, UV_RUN_ONCE);
	session_drain(session);
	run_to_end();
	ck_assert_int_eq(exit_code, 0);
	ck_assert(fake.saw_draining);
	ck_assert_uint_eq(fake.draining_free, 0);
	ck_assert_int_eq(fake.n_results, 1);
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_PASSED);
}
END_TEST

START_TEST(test_drain_timeout_stops_tasks_as_errors)
{
	write_script("exec sleep 100");
	fake.assign_at_poll[0][0] = assignment(7, 1);
	fake_start();
	start_session(1, 300);
	while (fake.n_poll < 2)
		uv_run(&loop, UV_RUN_ONCE);
	session_drain(session);
	run_to_end();
	ck_assert_int_eq(exit_code, 0);
	ck_assert_int_eq(fake.n_results, 1);
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(fake.results[0].reason, "worker shut down: task stopped after drain timeout");
}
END_TEST

START_TEST(test_unacknowledged_results_are_sent_again_after_a_restart)
{
	write_script("printf '{\"status\":\"failed\",\"reason\":\"wrong output\"}' > \"$4\"");
	fake.assign_at_poll[0][0] = assignment(8, 1);
	fake.ack = false;
	fake.on_result = stop_now;
	fake_start();
	start_session(1, 5000);
	run_to_end();
	ck_assert_int_ge(fake.n_results, 1);
	ck_assert_uint_eq(spool_count(), 1);

	/* A new worker process, and a coordinator that acknowledges. */
	int first_run_results = fake.n_results;
	memset(&fake, 0, sizeof(fake));
	fake.ack = true;
	fake.on_result = drain_now;
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ended = false;
	fake_start();
	start_session(1, 5000);
	run_to_end();
	ck_assert_int_ge(first_run_results, 1);
	ck_assert_int_eq(fake.n_results, 1);
	ck_assert_uint_eq(fake.results[0].task_id, 8);
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_FAILED);
	ck_assert_str_eq(fake.results[0].reason, "wrong output");
	ck_assert_uint_eq(spool_count(), 0);
}
END_TEST

START_TEST(test_a_result_refused_as_invalid_is_set_aside_and_the_rest_reported)
{
	char bad[160];
	struct stat st;

	/* Task 2's result is one the coordinator refuses; task 1's, in the same
	 * batch or not, must still be reported, and task 2's must not be sent
	 * for ever: it is set aside in the spool. */
	write_script("printf '{\"status\":\"passed\"}' > \"$4\"");
	fake.assign_at_poll[0][0] = assignment(1, 1);
	fake.assign_at_poll[0][1] = assignment(2, 1);
	fake.ack = true;
	fake.refuse_task = 2;
	fake.on_result = drain_now;
	fake_start();
	start_session(2, 5000);
	run_to_end();

	ck_assert_int_eq(exit_code, 0);
	ck_assert_int_ge(fake.n_refused, 1);
	ck_assert_int_eq(fake.n_results, 1);
	ck_assert_uint_eq(fake.results[0].task_id, 1);
	ck_assert_uint_eq(spool_count(), 0);
	snprintf(bad, sizeof(bad), "%s/spool/2-1.result.bad", state_dir);
	ck_assert_int_eq(stat(bad, &st), 0);
}
END_TEST

static void drain_when_four_acked(void)
{
	if (fake.acked[1] && fake.acked[2] && fake.acked[3] && fake.acked[4])
		drain_now();
}

START_TEST(test_two_result_batches_go_out_at_once_none_twice)
{
	/* The coordinator answers a batch only once a second is out (or after
	 * a second alone): the worker sends a second while the first waits,
	 * never a third, and never a result in two batches at once; the
	 * results that came meanwhile go once one is answered. */
	write_script("printf '{\"status\":\"passed\"}' > \"$4\"");
	fake.assign_at_poll[0][0] = assignment(1, 1);
	fake.assign_at_poll[0][1] = assignment(2, 1);
	fake.assign_at_poll[1][0] = assignment(3, 1);
	fake.assign_at_poll[1][1] = assignment(4, 1);
	fake.hold_results = true;
	fake.on_result = drain_when_four_acked;
	uv_timer_init(&loop, &release_timer);
	fake_start();
	start_session(4, 5000);
	run_to_end();

	ck_assert_int_eq(exit_code, 0);
	ck_assert_int_eq(fake.max_held, 2);
	for (int t = 1; t <= 4; t++)
		ck_assert_int_eq(fake.acked[t], 1);
	ck_assert_int_eq(fake.n_results, 4);
	ck_assert_uint_eq(spool_count(), 0);
}
END_TEST

START_TEST(test_registers_once_the_coordinator_appears)
{
	start_session(1, 5000);
	for (int i = 0; i < 20; i++) { /* nobody listens yet */
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(20000);
	}
	ck_assert_int_eq(fake.n_register, 0);
	fake_start();
	while (fake.n_poll < 1)
		uv_run(&loop, UV_RUN_ONCE);
	session_drain(session);
	run_to_end();
	ck_assert_int_eq(fake.n_register, 1);
}
END_TEST

/* A GPU that is not shared, as detection offers one. */
static void add_gpu(struct hw_inventory *to, unsigned index, const char *uuid)
{
	struct hw_device *d = hw_inventory_device_add(to, HF__BACKEND__BACKEND_CUDA, index);

	ck_assert_ptr_nonnull(d);
	snprintf(d->name, sizeof(d->name), "NVIDIA H100 80GB HBM3");
	snprintf(d->uuid, sizeof(d->uuid), "%s", uuid);
	snprintf(d->driver, sizeof(d->driver), "570.124.06");
	hw_device_attr_set(d, "compute_capability", "9.0");
}

START_TEST(test_register_describes_every_device_and_backend)
{
	add_gpu(&inv, 0, "GPU-test-0");
	inv.devices[1].declared = true;
	hw_status_absent(&inv.backends[HF__BACKEND__BACKEND_ROCM - 1], "no KFD topology");
	snprintf(inv.backends[HF__BACKEND__BACKEND_CUDA - 1].reason, 256, "%s", "");
	inv.backends[HF__BACKEND__BACKEND_CUDA - 1].present = true;
	fake_start();
	start_session(1, 5000);
	while (fake.n_poll < 1)
		uv_run(&loop, UV_RUN_ONCE);
	session_drain(session);
	run_to_end();
	ck_assert_uint_eq(fake.register_devices[0], 2);
	ck_assert_str_eq(fake.register_last_uuid, "GPU-test-0");
	ck_assert_str_eq(fake.register_last_attr, "compute_capability=9.0");
	ck_assert(fake.register_last_declared);
	ck_assert_uint_eq(fake.register_backends, HW_N_BACKENDS);
	ck_assert_str_eq(fake.register_cuda_reason, "");
}
END_TEST

/* The benchmark's device offers nothing while it runs, all once it ended. */
static int polls_busy_zero, polls_busy_other, polls_idle_full;

static void record_cpu_free(int n, const Hf__Poll *p)
{
	if (n == 0 || p->draining)
		return;
	if (p->n_running > 0) {
		if (p->free[0]->free_slots == 0)
			polls_busy_zero++;
		else
			polls_busy_other++;
	} else if (p->free[0]->free_slots == 2) {
		polls_idle_full++;
	}
}

/* The drain comes once the result is in and a poll offered the device
 * whole again, in either order (it came with the result's report or after
 * it, as the machine's load has it); from a timer, after the fake's reply. */
static uv_timer_t drain_timer;
static bool drain_started;

static void drain_timer_cb(uv_timer_t *h)
{
	session_drain(session);
	uv_close((uv_handle_t *)h, NULL);
}

static void drain_once_idle_seen(void)
{
	if (drain_started || polls_idle_full == 0 || fake.n_results == 0)
		return;
	drain_started = true;
	uv_timer_start(&drain_timer, drain_timer_cb, 0, 0);
}

static void record_cpu_free_then_drain(int n, const Hf__Poll *p)
{
	record_cpu_free(n, p);
	drain_once_idle_seen();
}

START_TEST(test_a_running_benchmark_leaves_its_device_no_free_slot)
{
	Hf__Assignment *a = assignment(30, 1);

	write_script("sleep 0.4\nprintf '{\"status\":\"passed\"}' > \"$4\"");
	a->kind = HF__TASK_KIND__KIND_BENCHMARK;
	fake.assign_at_poll[0][0] = a;
	fake.on_poll = record_cpu_free_then_drain;
	fake.on_result = drain_once_idle_seen;
	polls_busy_zero = polls_busy_other = polls_idle_full = 0;
	drain_started = false;
	uv_timer_init(&loop, &drain_timer);
	fake_start();
	start_session(2, 5000);
	run_to_end();
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_PASSED);
	ck_assert_int_gt(polls_busy_zero, 0);
	ck_assert_int_eq(polls_busy_other, 0);
	ck_assert_int_gt(polls_idle_full, 0);
}
END_TEST

START_TEST(test_a_second_task_on_a_busy_unshared_gpu_is_refused_at_once)
{
	Hf__Assignment *a = assignment(31, 1), *b = assignment(32, 1);

	add_gpu(&inv, 0, "GPU-test-0");
	/* The runner checks that it was given exactly this GPU. */
	write_script("sleep 0.3\n"
		     "if [ \"$CUDA_VISIBLE_DEVICES\" = GPU-test-0 ]; then\n"
		     "  printf '{\"status\":\"passed\"}' > \"$4\"\n"
		     "else\n"
		     "  printf '{\"status\":\"failed\",\"reason\":\"saw %s\"}' \"$CUDA_VISIBLE_DEVICES\" > \"$4\"\n"
		     "fi");
	a->backend = b->backend = HF__BACKEND__BACKEND_CUDA;
	fake.assign_at_poll[0][0] = a;
	fake.assign_at_poll[0][1] = b;
	fake_start();
	start_session(4, 5000);
	while (fake.n_results < 2)
		uv_run(&loop, UV_RUN_ONCE);
	session_drain(session);
	run_to_end();
	ck_assert_uint_eq(fake.results[0].task_id, 32);
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_ERROR);
	ck_assert_str_eq(fake.results[0].reason,
			 "device cuda:0 already runs a task and is not shared (see devices.shared)");
	ck_assert_uint_eq(fake.results[1].task_id, 31);
	ck_assert_msg(fake.results[1].status == HF__TASK_STATUS__STATUS_PASSED, "%s",
		      fake.results[1].reason);
}
END_TEST

START_TEST(test_polls_carry_the_telemetry_of_devices_that_have_it)
{
	struct hw_inventory *det = calloc(1, sizeof(*det));
	struct hw_options opt = {
		.root = WORKER_FIXTURES "/cpu-x86-xeon",
		.machine = "x86_64",
		.nvml_library = NVML_STANDIN,
		.openvino_library = "/nonexistent/libopenvino_c.so",
		.qnn_sdk_root = WORKER_FIXTURES "/cpu-x86-xeon",
		.cpu_slots = 1,
	};

	ck_assert_ptr_nonnull(det);
	setenv("HFLEET_NVML_STANDIN", WORKER_FIXTURES "/nvml/one-h100.ini", 1);
	ck_assert_int_eq(hw_inventory_detect(&opt, det), 0);
	inv = *det; /* the session reads the static inventory */
	telemetry = true;
	fake_start();
	start_session(1, 5000);
	while (fake.n_poll < 3)
		uv_run(&loop, UV_RUN_ONCE);
	session_drain(session);
	run_to_end();
	ck_assert(fake.telemetry_on_every_poll);
	ck_assert_uint_eq(fake.poll_telemetry, 1); /* the GPU; the CPU has none */
	ck_assert_uint_eq(fake.poll_telemetry_first.backend, HF__BACKEND__BACKEND_CUDA);
	ck_assert_uint_eq(fake.poll_telemetry_first.index, 0);
	ck_assert_float_eq(fake.poll_telemetry_first.utilization_pct, 37.0f);
	ck_assert_uint_eq(fake.poll_telemetry_first.memory_used_bytes, 524288000);
	ck_assert_float_eq(fake.poll_telemetry_first.temperature_c, 41.0f);
	hw_inventory_fini(det);
	free(det);
}
END_TEST

START_TEST(test_telemetry_can_be_turned_off)
{
	add_gpu(&inv, 0, "GPU-test-0");
	telemetry = false;
	fake_start();
	start_session(1, 5000);
	while (fake.n_poll < 2)
		uv_run(&loop, UV_RUN_ONCE);
	session_drain(session);
	run_to_end();
	ck_assert_uint_eq(fake.poll_telemetry, 0);
}
END_TEST

START_TEST(test_new_hardware_is_registered_again_while_tasks_run)
{
	static struct hw_inventory inv2;

	write_script("sleep 0.5\nprintf '{\"status\":\"passed\"}' > \"$4\"");
	fake.assign_at_poll[0][0] = assignment(33, 1);
	fake.on_result = drain_now;
	fake_start();
	start_session(1, 5000);
	while (fake.n_poll < 2)
		uv_run(&loop, UV_RUN_ONCE);
	inv2 = inv;
	add_gpu(&inv2, 0, "GPU-new-0");
	session_inventory_set(session, &inv2);
	run_to_end();
	ck_assert_int_eq(fake.n_register, 2);
	ck_assert_uint_eq(fake.register_devices[0], 1);
	ck_assert_uint_eq(fake.register_devices[1], 2);
	ck_assert_uint_eq(fake.register_running[1], 1); /* the task runs on */
	ck_assert_str_eq(fake.register_last_uuid, "GPU-new-0");
	ck_assert_int_eq(fake.n_results, 1);
	ck_assert_int_eq(fake.results[0].status, HF__TASK_STATUS__STATUS_PASSED);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("worker_session");
	TCase *tc = tcase_create("session");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_registers_runs_an_assignment_and_reports_it);
	tcase_add_test(tc, test_refused_protocol_version_ends_with_exit_1);
	tcase_add_test(tc, test_refused_registration_ends_with_exit_1);
	tcase_add_test(tc, test_unavailable_coordinator_is_retried);
	tcase_add_test(tc, test_id_in_use_is_retried_and_the_session_goes_with_every_message);
	tcase_add_test(tc, test_not_registered_means_register_again_naming_running_tasks);
	tcase_add_test(tc, test_assignment_beyond_free_slots_is_answered_with_an_error);
	tcase_add_test(tc, test_cancel_in_a_poll_reply_stops_the_task);
	tcase_add_test(tc, test_drain_offers_no_slots_and_lets_the_task_finish);
	tcase_add_test(tc, test_drain_timeout_stops_tasks_as_errors);
	tcase_add_test(tc, test_unacknowledged_results_are_sent_again_after_a_restart);
	tcase_add_test(tc, test_a_result_refused_as_invalid_is_set_aside_and_the_rest_reported);
	tcase_add_test(tc, test_registers_once_the_coordinator_appears);
	tcase_add_test(tc, test_register_describes_every_device_and_backend);
	tcase_add_test(tc, test_a_running_benchmark_leaves_its_device_no_free_slot);
	tcase_add_test(tc, test_a_second_task_on_a_busy_unshared_gpu_is_refused_at_once);
	tcase_add_test(tc, test_polls_carry_the_telemetry_of_devices_that_have_it);
	tcase_add_test(tc, test_telemetry_can_be_turned_off);
	tcase_add_test(tc, test_new_hardware_is_registered_again_while_tasks_run);
	tcase_add_test(tc, test_two_result_batches_go_out_at_once_none_twice);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
