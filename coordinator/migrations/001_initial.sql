-- SPDX-License-Identifier: MIT
-- hfleet schema, version 1.  Applied once, in one transaction, by
-- hf-coordinator at start (see coordinator/db.c); never edited after it has
-- shipped: changes go into a new numbered file.

CREATE TABLE models (
    model_type  text PRIMARY KEY,
    hf_id       text NOT NULL,
    family      text NOT NULL CHECK (family IN ('encoder-only', 'decoder-only', 'encoder-decoder',
                    'vision', 'vision-text', 'speech', 'multimodal', 'diffusion',
                    'mixture-of-experts', 'state-space', 'rag')),
    task        text NOT NULL,
    modality    text NOT NULL,
    size_class  text NOT NULL,
    notes       text NOT NULL DEFAULT '',
    active      boolean NOT NULL DEFAULT true,   -- false once dropped from the registry
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    submitter   text NOT NULL,
    priority    integer NOT NULL DEFAULT 0,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'cancelled')),
    spec        jsonb NOT NULL,
    task_count  integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX jobs_running_idx ON jobs (id) WHERE state = 'running';

CREATE TABLE tasks (
    id           bigserial PRIMARY KEY,
    job_id       bigint NOT NULL REFERENCES jobs (id),
    model_type   text NOT NULL REFERENCES models (model_type),
    backend      text NOT NULL CHECK (backend IN ('cpu', 'cuda', 'rocm', 'mps', 'openvino', 'qnn')),
    kind         text NOT NULL CHECK (kind IN ('test', 'benchmark')),
    batch_size   integer NOT NULL CHECK (batch_size > 0),
    seq_len      integer NOT NULL,
    precision    text NOT NULL,
    iterations   integer NOT NULL,
    warmup       integer NOT NULL,
    timeout_s    integer NOT NULL,
    state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'leased', 'passed',
                     'failed', 'error', 'timeout', 'skipped', 'cancelled')),
    attempt      integer NOT NULL DEFAULT 0,     -- the current attempt: the fencing token
    worker_id    text,
    device_index integer,
    result_id    bigint,                         -- the result that decided the outcome
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX tasks_job_idx ON tasks (job_id, state);
CREATE INDEX tasks_live_idx ON tasks (id) WHERE state IN ('queued', 'leased');

-- One row per execution of a task: the lease history.
CREATE TABLE attempts (
    task_id      bigint NOT NULL REFERENCES tasks (id),
    attempt      integer NOT NULL,
    worker_id    text NOT NULL,
    device_index integer NOT NULL,
    granted_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    end_reason   text,                           -- result | lease-expired | cancelled
    PRIMARY KEY (task_id, attempt)
);

-- Every result a worker reported, once per (task, attempt).  A result from
-- an attempt that was no longer current when it arrived is kept with
-- stale = true and never decides the task's outcome.
CREATE TABLE results (
    id           bigserial PRIMARY KEY,
    task_id      bigint NOT NULL REFERENCES tasks (id),
    attempt      integer NOT NULL,
    status       text NOT NULL CHECK (status IN ('passed', 'failed', 'error', 'timeout',
                     'skipped', 'cancelled')),
    reason       text NOT NULL DEFAULT '',
    metrics      jsonb NOT NULL DEFAULT '{}',
    env          jsonb NOT NULL DEFAULT '{}',
    weights      text NOT NULL DEFAULT '',
    log_excerpt  text NOT NULL DEFAULT '',
    worker_id    text NOT NULL,
    device_index integer NOT NULL,
    exit_code    integer,
    started_at   timestamptz,
    finished_at  timestamptz,
    stale        boolean NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, attempt)
);

CREATE TABLE workers (
    id               text PRIMARY KEY,
    hostname         text NOT NULL,
    software_version text NOT NULL,
    protocol_version integer NOT NULL,
    labels           jsonb NOT NULL DEFAULT '{}',
    cpu              jsonb NOT NULL DEFAULT '{}',
    runtimes         jsonb NOT NULL DEFAULT '[]',
    first_seen       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    worker_id    text NOT NULL REFERENCES workers (id),
    backend      text NOT NULL,
    idx          integer NOT NULL,
    name         text NOT NULL DEFAULT '',
    memory_bytes bigint NOT NULL DEFAULT 0,
    arch         text NOT NULL DEFAULT '',
    driver       text NOT NULL DEFAULT '',
    uuid         text NOT NULL DEFAULT '',
    slots        integer NOT NULL DEFAULT 1,
    state        text NOT NULL DEFAULT 'ok',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker_id, backend, idx)
);

-- Stable views for dashboards (documented in docs/database.md).
CREATE VIEW task_outcomes AS
SELECT t.id AS task_id, t.job_id, t.model_type, m.family, m.hf_id, t.backend, t.kind,
       t.batch_size, t.seq_len, t.precision, t.state AS status, t.attempt,
       r.reason, r.metrics, r.env, r.weights, r.worker_id, r.device_index,
       r.started_at, r.finished_at,
       EXTRACT(EPOCH FROM (r.finished_at - r.started_at)) AS duration_s
FROM tasks t
JOIN models m USING (model_type)
LEFT JOIN results r ON r.id = t.result_id;

CREATE VIEW compatibility_matrix AS
SELECT DISTINCT ON (o.model_type, o.backend)
       o.model_type, o.family, o.backend, o.status, o.reason, o.job_id, o.finished_at
FROM task_outcomes o
WHERE o.kind = 'test' AND o.status NOT IN ('queued', 'leased')
ORDER BY o.model_type, o.backend, o.finished_at DESC NULLS LAST;
