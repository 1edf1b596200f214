/* SPDX-License-Identifier: MIT
 *
 * A hand-built DevicesReply shared by the hfctl unit tests that render it
 * (test_hfctl_format.c, test_hfctl_json.c): one definition, so the table
 * and the JSON are checked against the same fleet.
 */
#ifndef HFCTL_FLEET_FIXTURE_H
#define HFCTL_FLEET_FIXTURE_H

#include <stddef.h>

#include "hfleet.pb-c.h"

/* A fleet of two workers: gpu-01 with an H100 in MIG mode reporting every
 * reading and a second GPU whose gauges are not available, cpu-07 with a
 * declared MI300X that sends no telemetry; two backends absent. */
struct fleet {
	Hf__KeyValue cc, mig, drv, gfx, abs_rocm, abs_cuda;
	Hf__KeyValue *h100_attrs[3], *mi300_attrs[1], *absent[2];
	Hf__Device h100, second, mi300;
	Hf__DeviceTelemetry t_h100, t_second;
	Hf__DeviceInfo d[3];
	Hf__DeviceInfo *dp[3];
	Hf__DevicesReply reply;
};

static void kv_set(Hf__KeyValue *kv, char *key, char *value)
{
	hf__key_value__init(kv);
	kv->key = key;
	kv->value = value;
}

static Hf__DevicesReply *fleet_new(struct fleet *f)
{
	kv_set(&f->cc, "compute_capability", "9.0");
	kv_set(&f->mig, "mig", "enabled");
	kv_set(&f->drv, "cuda_driver", "12.8");
	kv_set(&f->gfx, "gfx_target", "gfx942");
	kv_set(&f->abs_rocm, "gpu-01/rocm", "no /dev/kfd");
	kv_set(&f->abs_cuda, "cpu-07/cuda", "libnvidia-ml.so.1 not found");
	f->h100_attrs[0] = &f->cc;
	f->h100_attrs[1] = &f->mig;
	f->h100_attrs[2] = &f->drv;
	f->mi300_attrs[0] = &f->gfx;
	f->absent[0] = &f->abs_rocm;
	f->absent[1] = &f->abs_cuda;

	hf__device__init(&f->h100);
	f->h100.backend = HF__BACKEND__BACKEND_CUDA;
	f->h100.name = "NVIDIA H100 80GB HBM3";
	f->h100.memory_bytes = 85520809984ull; /* 81559 MiB, as NVML reports it */
	f->h100.arch = "sm_90";
	f->h100.driver = "570.124.06";
	f->h100.uuid = "GPU-5f0c";
	f->h100.slots = 1;
	f->h100.n_attrs = 3;
	f->h100.attrs = f->h100_attrs;

	hf__device__init(&f->second);
	f->second.backend = HF__BACKEND__BACKEND_CUDA;
	f->second.index = 1;
	f->second.name = "NVIDIA L4";
	f->second.memory_bytes = 24ull << 30;
	f->second.driver = "570.124.06";
	f->second.slots = 1;

	hf__device__init(&f->mi300);
	f->mi300.backend = HF__BACKEND__BACKEND_ROCM;
	f->mi300.name = "AMD Instinct MI300X";
	f->mi300.memory_bytes = 192ull << 30;
	f->mi300.arch = "gfx942";
	f->mi300.slots = 1;
	f->mi300.declared = true;
	f->mi300.n_attrs = 1;
	f->mi300.attrs = f->mi300_attrs;

	hf__device_telemetry__init(&f->t_h100);
	f->t_h100.backend = HF__BACKEND__BACKEND_CUDA;
	f->t_h100.utilization_pct = 37.0f;
	f->t_h100.memory_used_bytes = 12ull << 30;
	f->t_h100.temperature_c = 41.3f;
	f->t_h100.power_w = 121.5f;

	hf__device_telemetry__init(&f->t_second);
	f->t_second.backend = HF__BACKEND__BACKEND_CUDA;
	f->t_second.index = 1;
	f->t_second.utilization_pct = -1;
	f->t_second.memory_used_bytes = 0;
	f->t_second.temperature_c = -1;
	f->t_second.power_w = -1;

	for (size_t i = 0; i < 3; i++) {
		hf__device_info__init(&f->d[i]);
		f->dp[i] = &f->d[i];
	}
	f->d[0].worker_id = "gpu-01";
	f->d[0].device = &f->h100;
	f->d[0].telemetry = &f->t_h100;
	f->d[0].running = 1;
	f->d[0].connected = true;
	f->d[0].state = "in-service";
	f->d[1].worker_id = "gpu-01";
	f->d[1].device = &f->second;
	f->d[1].telemetry = &f->t_second;
	f->d[1].connected = true;
	f->d[1].state = "quarantined";
	f->d[1].state_reason = "health check failed: matmul differs from the CPU's";
	f->d[1].infra_failures = 3;
	f->d[2].worker_id = "cpu-07";
	f->d[2].device = &f->mi300;
	f->d[2].telemetry = NULL;

	hf__devices_reply__init(&f->reply);
	f->reply.n_devices = 3;
	f->reply.devices = f->dp;
	f->reply.n_absent = 2;
	f->reply.absent = f->absent;
	return &f->reply;
}

#endif
