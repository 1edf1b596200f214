/* SPDX-License-Identifier: MIT
 *
 * Unit tests for the JSON hfctl prints (coordinator/hfctl/hfctl-json.c):
 * field names and value types, the embedding of metrics_json, text that is
 * not valid UTF-8, the fleet's devices with telemetry that is not
 * available, and a task's explanation.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "hfctl-json.h"
#include "hfctl_fleet_fixture.h"

START_TEST(test_metrics_json_is_embedded_as_a_value)
{
	json_t *v = hfctl_json_metrics("{\"latency_ms\": {\"p50\": 3.5}, \"tokens_per_s\": 120}");

	ck_assert(json_is_object(v));
	ck_assert(json_real_value(json_object_get(json_object_get(v, "latency_ms"), "p50")) == 3.5);
	ck_assert_int_eq(json_integer_value(json_object_get(v, "tokens_per_s")), 120);
	json_decref(v);
}
END_TEST

START_TEST(test_metrics_that_are_not_json_stay_as_text)
{
	json_t *v = hfctl_json_metrics("{truncated");

	ck_assert(json_is_string(v));
	ck_assert_str_eq(json_string_value(v), "{truncated");
	json_decref(v);

	v = hfctl_json_metrics("");
	ck_assert(json_is_null(v));
	json_decref(v);
}
END_TEST

START_TEST(test_invalid_utf8_is_replaced_not_dropped)
{
	json_t *v = hfctl_json_string("ok \xff\xfe end");

	ck_assert(json_is_string(v));
	ck_assert_str_eq(json_string_value(v), "ok ?? end");
	json_decref(v);

	v = hfctl_json_string("caf\xc3\xa9");
	ck_assert_str_eq(json_string_value(v), "caf\xc3\xa9");
	json_decref(v);
}
END_TEST

START_TEST(test_result_row_has_every_field_by_name)
{
	Hf__ResultRow row = HF__RESULT_ROW__INIT;
	json_t *v;

	row.task_id = 9000000001ull;
	row.model_type = "bert";
	row.backend = HF__BACKEND__BACKEND_ROCM;
	row.kind = HF__TASK_KIND__KIND_BENCHMARK;
	row.status = HF__TASK_STATUS__STATUS_TIMEOUT;
	row.batch_size = 8;
	row.seq_len = 512;
	row.reason = "took \"too\" long,\nkilled";
	row.metrics_json = "[1, 2]";
	row.duration_s = 1.25;
	v = hfctl_json_result(&row);

	ck_assert_uint_eq(json_object_size(v), 17);
	/* A coordinator older than modes sends none: eager. */
	ck_assert_str_eq(json_string_value(json_object_get(v, "mode")), "eager");
	ck_assert_int_eq(json_integer_value(json_object_get(v, "seq_len")), 512);
	ck_assert_int_eq(json_integer_value(json_object_get(v, "task_id")), 9000000001ll);
	ck_assert_str_eq(json_string_value(json_object_get(v, "backend")), "rocm");
	ck_assert_str_eq(json_string_value(json_object_get(v, "kind")), "benchmark");
	ck_assert_str_eq(json_string_value(json_object_get(v, "status")), "timeout");
	ck_assert_str_eq(json_string_value(json_object_get(v, "reason")), "took \"too\" long,\nkilled");
	ck_assert(json_is_array(json_object_get(v, "metrics_json")));
	ck_assert(json_real_value(json_object_get(v, "duration_s")) == 1.25);
	ck_assert(json_is_string(json_object_get(v, "weights")));
	json_decref(v);
}
END_TEST

START_TEST(test_job_counts_every_status_and_unfinished_is_null)
{
	Hf__StatusCount passed = HF__STATUS_COUNT__INIT;
	Hf__StatusCount *counts[] = { &passed };
	Hf__JobStatus js = HF__JOB_STATUS__INIT;
	json_t *v, *c;

	passed.status = HF__TASK_STATUS__STATUS_PASSED;
	passed.count = 3;
	js.job_id = 42;
	js.state = "running";
	js.created_at = 1732279503.5;
	js.total = 5;
	js.n_counts = 1;
	js.counts = counts;
	v = hfctl_json_job(&js);

	ck_assert_int_eq(json_integer_value(json_object_get(v, "job_id")), 42);
	ck_assert(json_is_real(json_object_get(v, "created_at")));
	ck_assert(json_is_null(json_object_get(v, "finished_at")));
	c = json_object_get(v, "counts");
	ck_assert_uint_eq(json_object_size(c), 9);
	ck_assert_int_eq(json_integer_value(json_object_get(c, "passed")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(c, "queued")), 0);
	json_decref(v);
}
END_TEST

START_TEST(test_worker_nests_devices_runtimes_and_labels)
{
	Hf__WorkerInfo w = HF__WORKER_INFO__INIT;
	Hf__Device dev = HF__DEVICE__INIT;
	Hf__Device *devs[] = { &dev };
	Hf__Runtime rt = HF__RUNTIME__INIT;
	Hf__Runtime *rts[] = { &rt };
	Hf__KeyValue kv = HF__KEY_VALUE__INIT;
	Hf__KeyValue *kvs[] = { &kv };
	json_t *v, *d;

	dev.backend = HF__BACKEND__BACKEND_QNN;
	dev.slots = 2;
	rt.name = "torch";
	rt.available = false;
	rt.detail = "no module named torch";
	kv.key = "rack";
	kv.value = "b7";
	w.worker_id = "w1";
	w.n_devices = 1;
	w.devices = devs;
	w.n_runtimes = 1;
	w.runtimes = rts;
	w.n_labels = 1;
	w.labels = kvs;
	w.connected = true;
	v = hfctl_json_worker(&w);

	d = json_array_get(json_object_get(v, "devices"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "backend")), "qnn");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "slots")), 2);
	ck_assert(json_is_false(json_object_get(json_array_get(json_object_get(v, "runtimes"), 0),
						 "available")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "labels"), "rack")), "b7");
	ck_assert(json_is_true(json_object_get(v, "connected")));
	ck_assert(json_is_null(json_object_get(v, "cpu")));
	ck_assert(json_is_null(json_object_get(v, "last_seen")));
	ck_assert(json_is_false(json_object_get(d, "declared")));
	json_decref(v);
}
END_TEST
START_TEST(test_devices_json_has_every_field_and_null_when_unavailable)
{
	struct fleet f;
	json_t *v = hfctl_json_devices(fleet_new(&f)), *devs, *d, *t, *a;
	char *text;

	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(json_object_size(v), 2);
	devs = json_object_get(v, "devices");
	ck_assert_uint_eq(json_array_size(devs), 3);

	/* The H100: every field, attrs as an object, every reading. */
	d = json_array_get(devs, 0);
	ck_assert_uint_eq(json_object_size(d), 17);
	ck_assert_str_eq(json_string_value(json_object_get(d, "state")), "in-service");
	ck_assert(json_is_null(json_object_get(d, "state_reason")));
	ck_assert_int_eq(json_integer_value(json_object_get(d, "infra_failures")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "worker_id")), "gpu-01");
	ck_assert_str_eq(json_string_value(json_object_get(d, "backend")), "cuda");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "index")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "name")), "NVIDIA H100 80GB HBM3");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "memory_bytes")), 85520809984ll);
	ck_assert_str_eq(json_string_value(json_object_get(d, "arch")), "sm_90");
	ck_assert_str_eq(json_string_value(json_object_get(d, "driver")), "570.124.06");
	ck_assert_str_eq(json_string_value(json_object_get(d, "uuid")), "GPU-5f0c");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "slots")), 1);
	ck_assert(json_is_false(json_object_get(d, "declared")));
	a = json_object_get(d, "attrs");
	ck_assert_uint_eq(json_object_size(a), 3);
	ck_assert_str_eq(json_string_value(json_object_get(a, "compute_capability")), "9.0");
	ck_assert_str_eq(json_string_value(json_object_get(a, "mig")), "enabled");
	ck_assert_str_eq(json_string_value(json_object_get(a, "cuda_driver")), "12.8");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "running")), 1);
	ck_assert(json_is_true(json_object_get(d, "connected")));
	t = json_object_get(d, "telemetry");
	ck_assert_uint_eq(json_object_size(t), 4);
	ck_assert(json_real_value(json_object_get(t, "utilization_pct")) == 37.0);
	ck_assert_int_eq(json_integer_value(json_object_get(t, "memory_used_bytes")), 12ll << 30);
	/* The float's shortest decimal, not the double nearest to it. */
	ck_assert(json_real_value(json_object_get(t, "temperature_c")) == 41.3);
	ck_assert(json_real_value(json_object_get(t, "power_w")) == 121.5);

	/* A quarantined device says why. */
	d = json_array_get(devs, 1);
	ck_assert_str_eq(json_string_value(json_object_get(d, "state")), "quarantined");
	ck_assert_str_eq(json_string_value(json_object_get(d, "state_reason")),
			 "health check failed: matmul differs from the CPU's");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "infra_failures")), 3);

	/* Negative gauges and a memory use of 0 are not available: null. */
	t = json_object_get(json_array_get(devs, 1), "telemetry");
	ck_assert_uint_eq(json_object_size(t), 4);
	ck_assert(json_is_null(json_object_get(t, "utilization_pct")));
	ck_assert(json_is_null(json_object_get(t, "memory_used_bytes")));
	ck_assert(json_is_null(json_object_get(t, "temperature_c")));
	ck_assert(json_is_null(json_object_get(t, "power_w")));

	/* No telemetry at all: still an object, of nulls; no state from an
	 * older coordinator: null. */
	d = json_array_get(devs, 2);
	ck_assert(json_is_null(json_object_get(d, "state")));
	ck_assert(json_is_true(json_object_get(d, "declared")));
	ck_assert(json_is_false(json_object_get(d, "connected")));
	t = json_object_get(d, "telemetry");
	ck_assert_uint_eq(json_object_size(t), 4);
	ck_assert(json_is_null(json_object_get(t, "utilization_pct")));
	ck_assert(json_is_null(json_object_get(t, "power_w")));

	a = json_object_get(v, "absent");
	ck_assert_uint_eq(json_array_size(a), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 1), "worker")), "cpu-07");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 1), "backend")), "cuda");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 1), "reason")),
			 "libnvidia-ml.so.1 not found");

	/* And it prints as the manual shows it. */
	text = json_dumps(json_object_get(json_array_get(devs, 0), "telemetry"),
			  JSON_COMPACT | JSON_REAL_PRECISION(15));
	ck_assert_str_eq(text, "{\"utilization_pct\":37.0,\"memory_used_bytes\":12884901888,"
			       "\"temperature_c\":41.3,\"power_w\":121.5}");
	free(text);
	json_decref(v);
}
END_TEST

START_TEST(test_devices_json_of_an_empty_fleet_has_empty_arrays)
{
	Hf__DevicesReply r = HF__DEVICES_REPLY__INIT;
	json_t *v = hfctl_json_devices(&r);
	char *text = json_dumps(v, JSON_COMPACT);

	ck_assert_str_eq(text, "{\"devices\":[],\"absent\":[]}");
	free(text);
	json_decref(v);
}
END_TEST

START_TEST(test_explain_json_has_the_status_by_name_and_every_reason_in_order)
{
	char *reasons[] = { "gpu-01 cuda:0: quarantined", "", "gpu-02: bad \xff byte" };
	Hf__ExplainReply r = HF__EXPLAIN_REPLY__INIT;
	json_t *v;
	char *text;

	r.task_id = 9000000001ull;
	r.status = HF__TASK_STATUS__STATUS_QUEUED;
	r.summary = "every matching device is quarantined or drained";
	r.n_reasons = 3;
	r.reasons = reasons;
	v = hfctl_json_explain(&r);
	text = json_dumps(v, JSON_COMPACT);
	ck_assert_str_eq(text, "{\"task_id\":9000000001,\"status\":\"queued\","
			       "\"summary\":\"every matching device is quarantined or drained\","
			       "\"reasons\":[\"gpu-01 cuda:0: quarantined\",\"\",\"gpu-02: bad ? byte\"],"
		"\"fits\":[],\"fits_omitted\":0}");
	free(text);
	json_decref(v);

	r.status = HF__TASK_STATUS__STATUS_RUNNING;
	r.summary = "";
	r.n_reasons = 0;
	v = hfctl_json_explain(&r);
	text = json_dumps(v, JSON_COMPACT);
	ck_assert_str_eq(text, "{\"task_id\":9000000001,\"status\":\"running\",\"summary\":\"\","
			       "\"reasons\":[],\"fits\":[],\"fits_omitted\":0}");
	free(text);
	json_decref(v);
}
END_TEST

START_TEST(test_model_and_submit_json_carry_the_limits)
{
	Hf__ModelLimit l0 = HF__MODEL_LIMIT__INIT, l1 = HF__MODEL_LIMIT__INIT;
	Hf__ModelLimit *limits[] = { &l0, &l1 };
	Hf__ModelInfo m = HF__MODEL_INFO__INIT;
	Hf__LimitedTasks lt = HF__LIMITED_TASKS__INIT;
	Hf__LimitedTasks *limited[] = { &lt };
	Hf__SubmitReply sr = HF__SUBMIT_REPLY__INIT;
	json_t *v;
	char *text;

	m.model_type = "rag";
	m.hf_id = "facebook/rag-token-nq";
	m.family = "rag";
	m.task = "text2text-generation";
	m.modality = "text";
	m.size_class = "small";
	m.notes = "";
	l0.reason = "no retriever";
	l1.backend = HF__BACKEND__BACKEND_CUDA;
	l1.kind = HF__TASK_KIND__KIND_BENCHMARK;
	l1.reason = "too big";
	m.limits = limits;
	m.n_limits = 2;
	v = hfctl_json_model(&m);
	text = json_dumps(json_object_get(v, "limits"), JSON_COMPACT);
	ck_assert_str_eq(text, "[{\"backend\":\"*\",\"kind\":\"*\",\"reason\":\"no retriever\"},"
			       "{\"backend\":\"cuda\",\"kind\":\"benchmark\",\"reason\":\"too big\"}]");
	free(text);
	json_decref(v);
	m.n_limits = 0;
	v = hfctl_json_model(&m);
	text = json_dumps(json_object_get(v, "limits"), JSON_COMPACT);
	ck_assert_str_eq(text, "[]");
	free(text);
	json_decref(v);

	sr.job_id = 7;
	sr.task_count = 3;
	v = hfctl_json_submit(&sr);
	text = json_dumps(v, JSON_COMPACT);
	ck_assert_str_eq(text, "{\"job_id\":7,\"task_count\":3,\"existing\":false,\"limited\":[]}");
	free(text);
	json_decref(v);
	lt.model_type = "rag";
	lt.backend = HF__BACKEND__BACKEND_CPU;
	lt.kind = HF__TASK_KIND__KIND_TEST;
	lt.reason = "no retriever";
	lt.task_count = 2;
	sr.limited = limited;
	sr.n_limited = 1;
	sr.existing = true;   /* a repeated submit answered with the job made before */
	v = hfctl_json_submit(&sr);
	text = json_dumps(v, JSON_COMPACT);
	ck_assert_str_eq(text, "{\"job_id\":7,\"task_count\":3,\"existing\":true,\"limited\":[{\"model_type\":\"rag\","
			       "\"backend\":\"cpu\",\"kind\":\"test\",\"reason\":\"no retriever\","
			       "\"task_count\":2}]}");
	free(text);
	json_decref(v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hfctl-json");
	TCase *tc = tcase_create("json");
	tcase_add_test(tc, test_metrics_json_is_embedded_as_a_value);
	tcase_add_test(tc, test_model_and_submit_json_carry_the_limits);
	tcase_add_test(tc, test_metrics_that_are_not_json_stay_as_text);
	tcase_add_test(tc, test_invalid_utf8_is_replaced_not_dropped);
	tcase_add_test(tc, test_result_row_has_every_field_by_name);
	tcase_add_test(tc, test_job_counts_every_status_and_unfinished_is_null);
	tcase_add_test(tc, test_worker_nests_devices_runtimes_and_labels);
	tcase_add_test(tc, test_devices_json_has_every_field_and_null_when_unavailable);
	tcase_add_test(tc, test_devices_json_of_an_empty_fleet_has_empty_arrays);
	tcase_add_test(tc, test_explain_json_has_the_status_by_name_and_every_reason_in_order);
	suite_add_tcase(s, tc);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
