/* SPDX-License-Identifier: MIT
 *
 * Unit tests for requirements and device matching (coordinator/match.c).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"
#include "scheduler.h"

static Hf__KeyValue kv(const char *k, const char *v)
{
	Hf__KeyValue x = HF__KEY_VALUE__INIT;
	x.key = (char *)k;
	x.value = (char *)v;
	return x;
}

/* A worker with one H100 (cc 9.0, 80 GiB), torch 2.11 and transformers 5.17,
 * labelled pool=nightly. */
struct fixture {
	Hf__Register reg;
	Hf__Device gpu, rocm;
	Hf__KeyValue gpu_attrs[1], rocm_attrs[1], labels[1];
	Hf__KeyValue *gpu_attr_p[1], *rocm_attr_p[1], *label_p[1];
	Hf__Runtime torch, tf, ov;
	Hf__Runtime *rt_p[3];
	Hf__Device *dev_p[2];
};

static void fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	hf__register__init(&f->reg);
	hf__device__init(&f->gpu);
	hf__device__init(&f->rocm);
	f->reg.worker_id = "w1";
	f->gpu.backend = HF__BACKEND__BACKEND_CUDA;
	f->gpu.memory_bytes = 80ull << 30;
	f->gpu.arch = "sm_90";
	f->gpu_attrs[0] = kv("compute_capability", "9.0");
	f->gpu_attr_p[0] = &f->gpu_attrs[0];
	f->gpu.attrs = f->gpu_attr_p;
	f->gpu.n_attrs = 1;
	f->rocm.backend = HF__BACKEND__BACKEND_ROCM;
	f->rocm.memory_bytes = 192ull << 30;
	f->rocm.arch = "gfx942";
	f->rocm_attrs[0] = kv("gfx_target", "gfx942");
	f->rocm_attr_p[0] = &f->rocm_attrs[0];
	f->rocm.attrs = f->rocm_attr_p;
	f->rocm.n_attrs = 1;
	f->dev_p[0] = &f->gpu;
	f->dev_p[1] = &f->rocm;
	f->reg.devices = f->dev_p;
	f->reg.n_devices = 2;
	f->labels[0] = kv("pool", "nightly");
	f->label_p[0] = &f->labels[0];
	f->reg.labels = f->label_p;
	f->reg.n_labels = 1;
	hf__runtime__init(&f->torch);
	hf__runtime__init(&f->tf);
	hf__runtime__init(&f->ov);
	f->torch.name = "torch";
	f->torch.version = "2.11.0+cu128";
	f->torch.available = true;
	f->tf.name = "transformers";
	f->tf.version = "5.17.0";
	f->tf.available = true;
	f->ov.name = "openvino";
	f->ov.version = "";
	f->ov.available = false;
	f->rt_p[0] = &f->torch;
	f->rt_p[1] = &f->tf;
	f->rt_p[2] = &f->ov;
	f->reg.runtimes = f->rt_p;
	f->reg.n_runtimes = 3;
}

static struct match_req *req_of(Hf__SubmitRequest *s)
{
	struct match_req *r = NULL;
	char err[256];
	ck_assert_msg(match_req_from_submit(s, &r, err, sizeof(err)) == 0, "%s", err);
	return r;
}

START_TEST(test_no_requirements_fit_any_device)
{
	struct fixture f;
	Hf__SubmitRequest s = HF__SUBMIT_REQUEST__INIT;
	char why[256];
	fixture_init(&f);
	struct match_req *r = req_of(&s);
	ck_assert(match_req_trivial(r));
	ck_assert(match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	ck_assert(match_device_fits(NULL, &f.reg, &f.rocm, why, sizeof(why)));
	match_req_free(r);
}
END_TEST

START_TEST(test_memory_and_compute_capability_are_checked)
{
	struct fixture f;
	Hf__SubmitRequest s = HF__SUBMIT_REQUEST__INIT;
	char why[256];
	fixture_init(&f);
	s.min_memory_bytes = 96ull << 30;
	struct match_req *r = req_of(&s);
	ck_assert(!match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "80.0 GiB"));
	match_req_free(r);

	s.min_memory_bytes = 0;
	s.min_compute_capability = "9.0";
	r = req_of(&s);
	ck_assert(match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	match_req_free(r);
	s.min_compute_capability = "10.0";
	r = req_of(&s);
	ck_assert(!match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "9.0"));
	ck_assert(!match_device_fits(r, &f.reg, &f.rocm, why, sizeof(why))); /* no cc at all */
	match_req_free(r);
}
END_TEST

START_TEST(test_gfx_targets_labels_and_runtimes)
{
	struct fixture f;
	Hf__SubmitRequest s = HF__SUBMIT_REQUEST__INIT;
	char *gfx[] = { "gfx90a", "gfx942" };
	char *rt_ok[] = { "torch>=2.4", "transformers==5.17" };
	char *rt_bad[] = { "transformers>=6" };
	char *rt_absent[] = { "openvino" };
	Hf__KeyValue want = kv("pool", "nightly"), other = kv("pool", "adhoc");
	Hf__KeyValue *want_p[] = { &want }, *other_p[] = { &other };
	char why[256];
	struct match_req *r;

	fixture_init(&f);
	s.gfx_targets = gfx;
	s.n_gfx_targets = 2;
	r = req_of(&s);
	ck_assert(match_device_fits(r, &f.reg, &f.rocm, why, sizeof(why)));
	ck_assert(!match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	match_req_free(r);
	s.n_gfx_targets = 0;

	s.labels = want_p;
	s.n_labels = 1;
	r = req_of(&s);
	ck_assert(match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	match_req_free(r);
	s.labels = other_p;
	r = req_of(&s);
	ck_assert(!match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "pool=adhoc"));
	match_req_free(r);
	s.n_labels = 0;

	s.runtimes = rt_ok;
	s.n_runtimes = 2;
	r = req_of(&s);
	ck_assert_msg(match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)), "%s", why);
	match_req_free(r);
	s.runtimes = rt_bad;
	s.n_runtimes = 1;
	r = req_of(&s);
	ck_assert(!match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "5.17.0"));
	match_req_free(r);
	s.runtimes = rt_absent;
	r = req_of(&s);
	ck_assert(!match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "no openvino"));
	match_req_free(r);
}
END_TEST

START_TEST(test_invalid_requirements_are_refused)
{
	Hf__SubmitRequest s = HF__SUBMIT_REQUEST__INIT;
	struct match_req *r = NULL;
	char err[256];
	char *bad_rt[] = { "torch=>2" };
	char *bad_gfx[] = { "mi300" };

	s.min_compute_capability = "nine";
	ck_assert_int_eq(match_req_from_submit(&s, &r, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "\"nine\""));
	s.min_compute_capability = "";
	s.runtimes = bad_rt;
	s.n_runtimes = 1;
	ck_assert_int_eq(match_req_from_submit(&s, &r, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "torch=>2"));
	s.n_runtimes = 0;
	s.gfx_targets = bad_gfx;
	s.n_gfx_targets = 1;
	ck_assert_int_eq(match_req_from_submit(&s, &r, err, sizeof(err)), -EINVAL);
	s.n_gfx_targets = 0;
	s.devices_per_task = MATCH_MAX_DEVICES + 1;
	ck_assert_int_eq(match_req_from_submit(&s, &r, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_requirements_survive_json_roundtrip)
{
	Hf__SubmitRequest s = HF__SUBMIT_REQUEST__INIT;
	char *gfx[] = { "gfx942" };
	char *rts[] = { "transformers>=5.0" };
	Hf__KeyValue l = kv("rack", "b7");
	Hf__KeyValue *lp[] = { &l };
	struct match_req *a, *b;

	s.min_memory_bytes = 12345;
	s.min_compute_capability = "8.6";
	s.gfx_targets = gfx;
	s.n_gfx_targets = 1;
	s.runtimes = rts;
	s.n_runtimes = 1;
	s.labels = lp;
	s.n_labels = 1;
	s.devices_per_task = 4;
	a = req_of(&s);
	char *json = match_req_to_json(a);
	ck_assert_ptr_nonnull(json);
	ck_assert_int_eq(match_req_from_json(json, &b), 0);
	char *again = match_req_to_json(b);
	ck_assert_str_eq(json, again);
	ck_assert_int_eq(b->cc_major, 8);
	ck_assert_int_eq(b->cc_minor, 6);
	ck_assert_uint_eq(b->devices, 4);
	ck_assert_int_eq(match_req_from_json("not json", &b), -EINVAL);
	free(json);
	free(again);
	match_req_free(a);
	match_req_free(b);
}
END_TEST

START_TEST(test_version_comparison)
{
	ck_assert_int_lt(match_version_cmp("2.11.0+cu128", "2.12"), 0);
	ck_assert_int_gt(match_version_cmp("5.17.0", "5.9"), 0);
	ck_assert_int_eq(match_version_cmp("5.17", "5.17.0"), 0);
	ck_assert_int_eq(match_version_cmp("2.4.1", "2.4.1.post0"), 0);
}
END_TEST

/* Two GPUs of one slot each and a CPU of four slots; one job of tests, one
 * of benchmarks, one that needs two GPUs per task. */
START_TEST(test_fit_gives_benchmarks_and_multi_device_tasks_their_devices_alone)
{
	struct fixture f;
	Hf__Device gpu1 = HF__DEVICE__INIT, cpu = HF__DEVICE__INIT;
	Hf__Device *devs[3];
	Hf__SubmitRequest two = HF__SUBMIT_REQUEST__INIT;
	struct sched *s = sched_new();
	struct sched_task t, *out;
	uint32_t free_slots[3];
	struct match_fit fit;

	fixture_init(&f);
	f.gpu.slots = 1;
	gpu1 = f.gpu;
	gpu1.index = 1;
	cpu.backend = HF__BACKEND__BACKEND_CPU;
	cpu.slots = 4;
	devs[0] = &f.gpu;
	devs[1] = &gpu1;
	devs[2] = &cpu;
	f.reg.devices = devs;
	f.reg.n_devices = 3;

	sched_job_add(s, 1, 0);                       /* cpu benchmarks */
	struct sched_job *pair = sched_job_add(s, 2, 0); /* cuda, two devices per task */
	two.devices_per_task = 2;
	pair->data = req_of(&two);
	pair->data_free = (void (*)(void *))match_req_free;
	memset(&t, 0, sizeof(t));
	t.precision = "fp32";
	t.id = 10;
	t.job_id = 1;
	t.backend = HF__BACKEND__BACKEND_CPU;
	t.kind = HF__TASK_KIND__KIND_BENCHMARK;
	sched_task_add(s, &t);
	t.id = 20;
	t.job_id = 2;
	t.backend = HF__BACKEND__BACKEND_CUDA;
	t.kind = HF__TASK_KIND__KIND_TEST;
	sched_task_add(s, &t);

	/* the CPU is half busy: no benchmark */
	free_slots[0] = 1;
	free_slots[1] = 0; /* gpu1 busy: the pair cannot be formed */
	free_slots[2] = 2;
	fit = (struct match_fit){ .reg = &f.reg, .free = free_slots, .pos = 2 };
	ck_assert_uint_eq(sched_take(s, HF__BACKEND__BACKEND_CPU, "w1", 0, 1, match_fit_task, &fit, &out), 0);
	fit.pos = 0;
	ck_assert_uint_eq(sched_take(s, HF__BACKEND__BACKEND_CUDA, "w1", 0, 1, match_fit_task, &fit, &out), 0);

	/* all idle: the benchmark takes the whole CPU, the pair both GPUs */
	free_slots[0] = 1;
	free_slots[1] = 1;
	free_slots[2] = 4;
	fit.pos = 2;
	ck_assert_uint_eq(sched_take(s, HF__BACKEND__BACKEND_CPU, "w1", 0, 1, match_fit_task, &fit, &out), 1);
	ck_assert_uint_eq(out->id, 10);
	ck_assert_uint_eq(free_slots[2], 0);
	fit.pos = 0;
	ck_assert_uint_eq(sched_take(s, HF__BACKEND__BACKEND_CUDA, "w1", 0, 1, match_fit_task, &fit, &out), 1);
	ck_assert_uint_eq(out->id, 20);
	ck_assert_uint_eq(fit.n_extra, 1);
	ck_assert_uint_eq(fit.extra[0], 1);
	ck_assert_uint_eq(free_slots[0], 0);
	ck_assert_uint_eq(free_slots[1], 0);
	sched_free(s);
}
END_TEST

/* Every unmet requirement is named, not only the first; the device's own
 * name is the caller's to add.  Past max, the phrases are counted, not
 * formatted, and the join says how many more. */
START_TEST(test_every_unmet_requirement_is_listed)
{
	struct fixture f;
	Hf__SubmitRequest s = HF__SUBMIT_REQUEST__INIT;
	Hf__KeyValue lab = kv("zone", "eu"), *labp[1] = { &lab };
	char *rts[2] = { "torch>=3.0", "openvino" };
	struct match_unmet u = { .max = MATCH_MAX_UNMET };
	char why[1024];

	fixture_init(&f);
	s.min_memory_bytes = 96ull << 30;
	s.min_compute_capability = "10.0";
	s.labels = labp;
	s.n_labels = 1;
	s.runtimes = rts;
	s.n_runtimes = 2;
	struct match_req *r = req_of(&s);
	ck_assert_uint_eq(match_device_unmet(r, &f.reg, &f.gpu, &u), 5);
	ck_assert_str_eq(u.why[0], "memory 80.0 GiB < 96.0 GiB required");
	ck_assert_str_eq(u.why[1], "compute capability 9.0 < 10.0 required");
	ck_assert_str_eq(u.why[2], "no label zone=eu");
	ck_assert_str_eq(u.why[3], "torch 2.11.0+cu128, >=3.0 required");
	ck_assert_str_eq(u.why[4], "no openvino");
	ck_assert(!match_device_fits(r, &f.reg, &f.gpu, why, sizeof(why)));
	ck_assert_str_eq(why, "memory 80.0 GiB < 96.0 GiB required; compute capability 9.0 < 10.0 required; "
			      "no label zone=eu; torch 2.11.0+cu128, >=3.0 required; no openvino");
	/* Only two formatted: the rest is counted. */
	u.max = 2;
	ck_assert_uint_eq(match_device_unmet(r, &f.reg, &f.gpu, &u), 5);
	match_unmet_join(&u, why, sizeof(why));
	ck_assert_str_eq(why, "memory 80.0 GiB < 96.0 GiB required; compute capability 9.0 < 10.0 required; "
			      "and 3 more");
	/* None formatted (the scheduler's hot path) still tells the fit. */
	ck_assert(!match_device_fits(r, &f.reg, &f.gpu, NULL, 0));
	/* A cut-short buffer stays a string. */
	ck_assert(!match_device_fits(r, &f.reg, &f.gpu, why, 10));
	ck_assert_uint_eq(strlen(why), 9);
	match_req_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("match");
	TCase *tc = tcase_create("match");
	tcase_add_test(tc, test_no_requirements_fit_any_device);
	tcase_add_test(tc, test_every_unmet_requirement_is_listed);
	tcase_add_test(tc, test_memory_and_compute_capability_are_checked);
	tcase_add_test(tc, test_gfx_targets_labels_and_runtimes);
	tcase_add_test(tc, test_invalid_requirements_are_refused);
	tcase_add_test(tc, test_requirements_survive_json_roundtrip);
	tcase_add_test(tc, test_version_comparison);
	tcase_add_test(tc, test_fit_gives_benchmarks_and_multi_device_tasks_their_devices_alone);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
