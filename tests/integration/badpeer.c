/* SPDX-License-Identifier: MIT
 *
 * A hostile worker for the integration tests: sends one message that
 * breaks a rule of the protocol's limits to a coordinator's worker address
 * over a real nng REQ socket, and prints the answer.  Exits 0 when the
 * coordinator refused it with ERR_BAD_REQUEST (and its answer is itself a
 * valid message: UTF-8 text), 1 otherwise.
 *   hf-badpeer URL ATTACK
 * ATTACK: nonfinal-result status-99 nan-result dup-devices nul-string
 *         bad-utf8-id huge-poll
 *   hf-badpeer URL register-flood PREFIX N [CACHED]
 *                              N registrations, each listing CACHED cached
 *                              models of 200 bytes (a big registration)
 * registers N workers PREFIX-0 .. PREFIX-(N-1), one after the other, and
 * prints "accepted A refused R (last error: ...)"; exits 0 when every
 * answer was a RegisterReply or ERR_UNAVAILABLE.
 *   hf-badpeer URL script ID STEP...
 * acts as worker ID, one step after the other, printing one line per
 * answer ("STEP: registered", "STEP: leased T A", "STEP: acked N",
 * "STEP: error CODE: MESSAGE"); exits 0 when every step got an answer.
 * Steps (the ownership attacks, and a worker that stops polling):
 *   register          Register with one CPU device, sending the session
 *                     held (0 at first); keeps the session it is given
 *   session:N         hold session N from now on (a forger's guess)
 *   poll              poll (free slot on cpu:0) until a task is leased
 *   sleep:MS          wait, sending nothing
 *   result:SPEC,...   a ResultBatch, each result "failed"; SPEC is TASK:ATTEMPT,
 *                     L (the task and attempt leased by poll) or L+1 (its
 *                     next attempt)
 *   health:INDEX      a HealthReport that cpu:INDEX failed its check
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "hf_proto.h"
#include "hf_validate.h"

/* The token of worker id, from the file $HF_BADPEER_TOKENS ("id token"
 * lines), or NULL: the flood registers under many ids, each with its own
 * worker token. */
static char *token_for(const char *id)
{
	static char line[512], token[256];
	const char *path = getenv("HF_BADPEER_TOKENS");
	FILE *f = path ? fopen(path, "r") : NULL;
	char *found = NULL;

	while (f && fgets(line, sizeof(line), f)) {
		char name[200];
		if (sscanf(line, "%199s %255s", name, token) == 2 && strcmp(name, id) == 0) {
			found = token;
			break;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static int pack(Hf__Envelope *env, nng_msg **ret)
{
	return hf_env_pack(env, ret) < 0 ? -1 : 0;
}

static int result_attack(const char *attack, nng_msg **ret)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__ResultBatch b = HF__RESULT_BATCH__INIT;
	Hf__TaskResult r = HF__TASK_RESULT__INIT, *rp[] = { &r };

	b.worker_id = "badpeer";
	b.results = rp;
	b.n_results = 1;
	r.task_id = 987654321; /* no such task */
	r.attempt = 1;
	r.reason = "";
	if (strcmp(attack, "nonfinal-result") == 0) {
		r.status = HF__TASK_STATUS__STATUS_UNSPECIFIED;
	} else if (strcmp(attack, "status-99") == 0) {
		r.status = (Hf__TaskStatus)99;
	} else {
		r.status = HF__TASK_STATUS__STATUS_PASSED;
		r.started_at = NAN;
	}
	env.body_case = HF__ENVELOPE__BODY_RESULTS;
	env.results = &b;
	return pack(&env, ret);
}

static int register_attack(const char *attack, nng_msg **ret)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Register reg = HF__REGISTER__INIT;
	Hf__Device d[2], *dp[2];
	char *cached[] = { "bertXgpt2" };

	for (int i = 0; i < 2; i++) {
		hf__device__init(&d[i]);
		d[i].backend = HF__BACKEND__BACKEND_CPU;
		d[i].index = (uint32_t)i;
		d[i].slots = 1;
		dp[i] = &d[i];
	}
	reg.worker_id = "badpeer";
	reg.hostname = "badpeer";
	reg.software_version = "0.0.0";
	reg.protocol_version = HF_PROTOCOL_VERSION;
	reg.devices = dp;
	reg.n_devices = 2;
	if (strcmp(attack, "dup-devices") == 0)
		d[1].index = 0;
	else if (strcmp(attack, "bad-utf8-id") == 0)
		reg.worker_id = "bad\xff\xfe";
	else if (strcmp(attack, "nul-string") == 0)
		reg.cached_models = cached, reg.n_cached_models = 1;
	env.body_case = HF__ENVELOPE__BODY_REGISTER;
	env.register_ = &reg;
	if (pack(&env, ret) < 0)
		return -1;
	if (strcmp(attack, "nul-string") == 0) {
		/* "bertXgpt2" -> "bert\0gpt2": protobuf-c would read "bert". */
		char *body = nng_msg_body(*ret);
		size_t len = nng_msg_len(*ret);
		for (size_t i = 0; i + 9 <= len; i++)
			if (memcmp(body + i, "bertXgpt2", 9) == 0)
				body[i + 4] = '\0';
	}
	return 0;
}

static int poll_attack(nng_msg **ret)
{
	Hf__Envelope env = HF__ENVELOPE__INIT;
	Hf__Poll p = HF__POLL__INIT;
	size_t n = 100000;
	Hf__DeviceFree *f = calloc(n, sizeof(*f));
	Hf__DeviceFree **fp = calloc(n, sizeof(*fp));
	int r;

	if (!f || !fp)
		return -1;
	for (size_t i = 0; i < n; i++) {
		hf__device_free__init(&f[i]);
		f[i].backend = HF__BACKEND__BACKEND_CPU;
		f[i].index = (uint32_t)(i % 4096);
		f[i].free_slots = 1;
		fp[i] = &f[i];
	}
	p.worker_id = "badpeer";
	p.free = fp;
	p.n_free = n;
	env.body_case = HF__ENVELOPE__BODY_POLL;
	env.poll = &p;
	r = pack(&env, ret);
	free(f);
	free(fp);
	return r;
}

static int register_flood(const char *url, const char *prefix, int n, int cached)
{
	nng_socket sock;
	int rv, accepted = 0, refused = 0, other = 0;
	char last[256] = "", id[96], err[256];
	char **models = calloc((size_t)cached + 1, sizeof(*models));

	for (int k = 0; models && k < cached; k++) {
		models[k] = malloc(201);
		if (!models[k])
			return 1;
		int len = snprintf(models[k], 201, "org/model-%d-", k);
		memset(models[k] + len, 'x', (size_t)(200 - len));
		models[k][200] = '\0';
	}

	if ((rv = nng_req0_open(&sock)) != 0 || (rv = nng_dial(sock, url, NULL, 0)) != 0) {
		fprintf(stderr, "hf-badpeer: could not connect to \"%s\": %s\n", url, nng_strerror(rv));
		return 1;
	}
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
	for (int i = 0; i < n; i++) {
		Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
		Hf__Register reg = HF__REGISTER__INIT;
		nng_msg *msg;
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		reg.worker_id = id;
		reg.hostname = id;
		reg.software_version = "0.0.0";
		reg.protocol_version = HF_PROTOCOL_VERSION;
		reg.cached_models = models;
		reg.n_cached_models = (size_t)cached;
		env.body_case = HF__ENVELOPE__BODY_REGISTER;
		env.register_ = &reg;
		env.token = token_for(id);
		if (!env.token)
			env.token = (char *)protobuf_c_empty_string;
		if (hf_env_pack(&env, &msg) < 0 || (rv = nng_sendmsg(sock, msg, 0)) != 0 ||
		    (rv = nng_recvmsg(sock, &msg, 0)) != 0) {
			fprintf(stderr, "hf-badpeer: no answer to registration %d\n", i);
			return 1;
		}
		rv = hf_msg_decode(nng_msg_body(msg), nng_msg_len(msg), HF_MSG_WORKER_REPLY, &reply, err,
				   sizeof(err));
		nng_msg_free(msg);
		if (rv < 0) {
			other++;
			continue;
		}
		if (reply->body_case == HF__ENVELOPE__BODY_REGISTER_REPLY) {
			accepted++;
		} else if (reply->body_case == HF__ENVELOPE__BODY_ERROR &&
			   reply->error->code == HF__ERROR_CODE__ERR_UNAVAILABLE) {
			refused++;
			snprintf(last, sizeof(last), "%s", reply->error->message);
		} else {
			other++;
		}
		hf_env_free(reply);
	}
	nng_close(sock);
	for (int k = 0; models && k < cached; k++)
		free(models[k]);
	free(models);
	printf("accepted %d refused %d (last error: %s)\n", accepted, refused, last);
	return other ? 1 : 0;
}

/* ---- script: one worker's steps ---- */

struct script {
	nng_socket sock;
	const char *id;
	uint64_t session;
	uint64_t leased_task;
	uint32_t leased_attempt;
};

/* Sends env and decodes the answer into *ret; prints why not and returns -1. */
static int script_call(struct script *sc, const char *step, Hf__Envelope *env, Hf__Envelope **ret)
{
	nng_msg *msg;
	char err[256];
	int rv;

	env->protocol_version = HF_PROTOCOL_VERSION;
	env->token = token_for(sc->id);
	if (hf_env_pack(env, &msg) < 0 || (rv = nng_sendmsg(sc->sock, msg, 0)) != 0 ||
	    (rv = nng_recvmsg(sc->sock, &msg, 0)) != 0) {
		printf("%s: no answer\n", step);
		return -1;
	}
	rv = hf_msg_decode(nng_msg_body(msg), nng_msg_len(msg), HF_MSG_WORKER_REPLY, ret, err, sizeof(err));
	nng_msg_free(msg);
	if (rv < 0) {
		printf("%s: invalid answer: %s\n", step, err);
		return -1;
	}
	if ((*ret)->body_case == HF__ENVELOPE__BODY_ERROR)
		printf("%s: error %d: %s\n", step, (*ret)->error->code, (*ret)->error->message);
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int script_register(struct script *sc, const char *step)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__Register reg = HF__REGISTER__INIT;
	Hf__Device d = HF__DEVICE__INIT, *dp[] = { &d };

	d.backend = HF__BACKEND__BACKEND_CPU;
	d.slots = 1;
	reg.worker_id = (char *)sc->id;
	reg.hostname = "badpeer";
	reg.software_version = "0.0.0";
	reg.protocol_version = HF_PROTOCOL_VERSION;
	reg.devices = dp;
	reg.n_devices = 1;
	reg.session = sc->session;
	env.body_case = HF__ENVELOPE__BODY_REGISTER;
	env.register_ = &reg;
	if (script_call(sc, step, &env, &reply) < 0)
		return -1;
	if (reply->body_case == HF__ENVELOPE__BODY_REGISTER_REPLY) {
		sc->session = reply->register_reply->session;
		printf("%s: registered\n", step);
	}
	hf_env_free(reply);
	return 0;
}

static int script_poll(struct script *sc, const char *step)
{
	for (int tries = 0; tries < 300; tries++) {
		Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
		Hf__Poll p = HF__POLL__INIT;
		Hf__DeviceFree f = HF__DEVICE_FREE__INIT, *fp[] = { &f };
		f.backend = HF__BACKEND__BACKEND_CPU;
		f.free_slots = 1;
		p.worker_id = (char *)sc->id;
		p.free = fp;
		p.n_free = 1;
		p.session = sc->session;
		env.body_case = HF__ENVELOPE__BODY_POLL;
		env.poll = &p;
		if (script_call(sc, step, &env, &reply) < 0)
			return -1;
		if (reply->body_case == HF__ENVELOPE__BODY_ERROR) {
			hf_env_free(reply);
			return 0;
		}
		if (reply->body_case == HF__ENVELOPE__BODY_POLL_REPLY && reply->poll_reply->n_assignments) {
			sc->leased_task = reply->poll_reply->assignments[0]->task_id;
			sc->leased_attempt = reply->poll_reply->assignments[0]->attempt;
			printf("%s: leased %" PRIu64 " %" PRIu32 "\n", step, sc->leased_task, sc->leased_attempt);
			hf_env_free(reply);
			return 0;
		}
		hf_env_free(reply);
		sleep_ms(100);
	}
	printf("%s: nothing leased\n", step);
	return -1;
}

static int script_results(struct script *sc, const char *step, const char *specs)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__ResultBatch b = HF__RESULT_BATCH__INIT;
	Hf__TaskResult r[16], *rp[16];
	char copy[512];
	size_t n = 0;

	snprintf(copy, sizeof(copy), "%s", specs);
	for (char *save = NULL, *spec = strtok_r(copy, ",", &save); spec && n < 16;
	     spec = strtok_r(NULL, ",", &save), n++) {
		hf__task_result__init(&r[n]);
		if (strcmp(spec, "L") == 0 || strcmp(spec, "L+1") == 0) {
			r[n].task_id = sc->leased_task;
			r[n].attempt = sc->leased_attempt + (spec[1] == '+');
		} else if (sscanf(spec, "%" SCNu64 ":%" SCNu32, &r[n].task_id, &r[n].attempt) != 2) {
			printf("%s: bad result spec \"%s\"\n", step, spec);
			return -1;
		}
		r[n].status = HF__TASK_STATUS__STATUS_FAILED;
		r[n].reason = "forged by hf-badpeer";
		r[n].started_at = (double)time(NULL) - 1;
		r[n].finished_at = (double)time(NULL);
		rp[n] = &r[n];
	}
	b.worker_id = (char *)sc->id;
	b.results = rp;
	b.n_results = n;
	b.session = sc->session;
	env.body_case = HF__ENVELOPE__BODY_RESULTS;
	env.results = &b;
	if (script_call(sc, step, &env, &reply) < 0)
		return -1;
	if (reply->body_case == HF__ENVELOPE__BODY_ACK)
		printf("%s: acked %zu\n", step, reply->ack->n_acked);
	hf_env_free(reply);
	return 0;
}

static int script_health(struct script *sc, const char *step, uint32_t index)
{
	Hf__Envelope env = HF__ENVELOPE__INIT, *reply = NULL;
	Hf__HealthReport hr = HF__HEALTH_REPORT__INIT;
	Hf__HealthResult h = HF__HEALTH_RESULT__INIT, *hp[] = { &h };

	h.backend = HF__BACKEND__BACKEND_CPU;
	h.index = index;
	h.ok = false;
	h.detail = "forged by hf-badpeer";
	h.checked_at = (double)time(NULL);
	h.trigger = "periodic";
	hr.worker_id = (char *)sc->id;
	hr.results = hp;
	hr.n_results = 1;
	hr.session = sc->session;
	env.body_case = HF__ENVELOPE__BODY_HEALTH_REPORT;
	env.health_report = &hr;
	if (script_call(sc, step, &env, &reply) < 0)
		return -1;
	if (reply->body_case == HF__ENVELOPE__BODY_ACK)
		printf("%s: acked\n", step);
	hf_env_free(reply);
	return 0;
}

static int script(const char *url, const char *id, int n, char **steps)
{
	struct script sc = { .id = id };
	int rv = 0;

	if ((rv = nng_req0_open(&sc.sock)) != 0 || (rv = nng_dial(sc.sock, url, NULL, 0)) != 0) {
		fprintf(stderr, "hf-badpeer: could not connect to \"%s\": %s\n", url, nng_strerror(rv));
		return 1;
	}
	nng_socket_set_ms(sc.sock, NNG_OPT_RECVTIMEO, 10000);
	for (int i = 0; i < n && rv == 0; i++) {
		const char *st = steps[i];
		if (strcmp(st, "register") == 0)
			rv = script_register(&sc, st);
		else if (strncmp(st, "session:", 8) == 0)
			sc.session = strtoull(st + 8, NULL, 10);
		else if (strcmp(st, "poll") == 0)
			rv = script_poll(&sc, st);
		else if (strncmp(st, "sleep:", 6) == 0)
			sleep_ms(atol(st + 6));
		else if (strncmp(st, "result:", 7) == 0)
			rv = script_results(&sc, st, st + 7);
		else if (strncmp(st, "health:", 7) == 0)
			rv = script_health(&sc, st, (uint32_t)atoi(st + 7));
		else
			rv = (fprintf(stderr, "hf-badpeer: unknown step \"%s\"\n", st), -1);
		fflush(stdout);
	}
	nng_close(sc.sock);
	return rv == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	Hf__Envelope *reply = NULL;
	nng_socket sock;
	nng_msg *msg = NULL;
	char err[256];
	int rv;

	if ((argc == 5 || argc == 6) && strcmp(argv[2], "register-flood") == 0)
		return register_flood(argv[1], argv[3], atoi(argv[4]), argc == 6 ? atoi(argv[5]) : 0);
	if (argc >= 4 && strcmp(argv[2], "script") == 0)
		return script(argv[1], argv[3], argc - 4, argv + 4);
	if (argc != 3) {
		fprintf(stderr, "usage: hf-badpeer URL ATTACK\n");
		return 2;
	}
	const char *a = argv[2];
	if (strcmp(a, "nonfinal-result") == 0 || strcmp(a, "status-99") == 0 || strcmp(a, "nan-result") == 0)
		rv = result_attack(a, &msg);
	else if (strcmp(a, "dup-devices") == 0 || strcmp(a, "bad-utf8-id") == 0 || strcmp(a, "nul-string") == 0)
		rv = register_attack(a, &msg);
	else if (strcmp(a, "huge-poll") == 0)
		rv = poll_attack(&msg);
	else
		rv = (fprintf(stderr, "hf-badpeer: unknown attack \"%s\"\n", a), -1);
	if (rv < 0)
		return 2;

	if ((rv = nng_req0_open(&sock)) != 0 || (rv = nng_dial(sock, argv[1], NULL, 0)) != 0) {
		fprintf(stderr, "hf-badpeer: could not connect to \"%s\": %s\n", argv[1], nng_strerror(rv));
		return 1;
	}
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000);
	if ((rv = nng_sendmsg(sock, msg, 0)) != 0 || (rv = nng_recvmsg(sock, &msg, 0)) != 0) {
		fprintf(stderr, "hf-badpeer: no answer: %s\n", nng_strerror(rv));
		return 1;
	}
	rv = hf_msg_decode(nng_msg_body(msg), nng_msg_len(msg), HF_MSG_WORKER_REPLY, &reply, err, sizeof(err));
	nng_msg_free(msg);
	nng_close(sock);
	if (rv < 0) {
		fprintf(stderr, "hf-badpeer: invalid answer: %s\n", err);
		return 1;
	}
	if (reply->body_case == HF__ENVELOPE__BODY_ERROR) {
		printf("error %d: %s\n", reply->error->code, reply->error->message);
		rv = reply->error->code == HF__ERROR_CODE__ERR_BAD_REQUEST ? 0 : 1;
	} else {
		printf("answered with message type %d\n", reply->body_case);
		rv = 1;
	}
	hf_env_free(reply);
	return rv;
}
