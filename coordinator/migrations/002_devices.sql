-- SPDX-License-Identifier: MIT
-- hfleet schema, version 2: devices as the unit of allocation (issue 3).
-- Job requirements, multi-device leases, what each backend reported, device
-- attributes, and sampled device telemetry.

ALTER TABLE jobs ADD COLUMN requirements jsonb NOT NULL DEFAULT '{}';

-- Every device of a lease; device_index stays the first of them.
ALTER TABLE tasks ADD COLUMN device_indices integer[];
ALTER TABLE attempts ADD COLUMN device_indices integer[];

ALTER TABLE workers ADD COLUMN backends jsonb NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN attrs jsonb NOT NULL DEFAULT '{}';
ALTER TABLE devices ADD COLUMN declared boolean NOT NULL DEFAULT false;

-- Heartbeat telemetry, sampled at a low rate (coordinator setting
-- telemetry.sample_interval); NULL where the device does not report it.
CREATE TABLE device_telemetry (
    worker_id         text NOT NULL,
    backend           text NOT NULL,
    idx               integer NOT NULL,
    sampled_at        timestamptz NOT NULL DEFAULT now(),
    utilization_pct   real,
    memory_used_bytes bigint,
    temperature_c     real,
    power_w           real
);
CREATE INDEX device_telemetry_time_idx ON device_telemetry (sampled_at);
CREATE INDEX device_telemetry_device_idx ON device_telemetry (worker_id, backend, idx, sampled_at);
