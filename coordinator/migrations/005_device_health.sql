-- SPDX-License-Identifier: MIT
-- hfleet schema, version 5: device health (issue 5): quarantined devices and
-- the health checks workers ran on their devices.

-- A device whose tasks kept failing in the infrastructure, or whose health
-- check failed, is quarantined until a check passes or an operator returns
-- it to service (hfctl undrain).  One row per quarantined device.
CREATE TABLE device_quarantine (
    worker_id text NOT NULL,
    backend   text NOT NULL,
    idx       integer NOT NULL,
    reason    text NOT NULL DEFAULT '',
    since     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker_id, backend, idx)
);

-- Every health check a worker reported: a small real computation on the
-- device through the runner, at registration, periodically, or when the
-- coordinator asked for one on a quarantined device.
CREATE TABLE device_health_checks (
    id         bigserial PRIMARY KEY,
    worker_id  text NOT NULL,
    backend    text NOT NULL,
    idx        integer NOT NULL,
    ok         boolean NOT NULL,
    detail     text NOT NULL DEFAULT '',
    duration_s double precision,
    trigger    text NOT NULL DEFAULT '',
    checked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_health_checks_device_idx ON device_health_checks (worker_id, backend, idx, checked_at);
