-- SPDX-License-Identifier: MIT
-- hfleet schema, version 3: retries, concurrency caps and drains (issue 5).

ALTER TABLE jobs ADD COLUMN max_running integer NOT NULL DEFAULT 0;   -- 0: no cap
ALTER TABLE jobs ADD COLUMN max_retries integer NOT NULL DEFAULT 3;   -- infrastructure failures per task

-- A result that did not decide its task's outcome because the task ran
-- again: an infrastructure failure that was retried, or an outcome an
-- operator asked to retry (hfctl retry).  Kept for diagnosis.
ALTER TABLE results ADD COLUMN retried boolean NOT NULL DEFAULT false;

-- Workers and devices an operator drained: they finish what they run and
-- get nothing new.  backend = '' and idx = -1 drain the whole worker.
CREATE TABLE drains (
    worker_id text NOT NULL,
    backend   text NOT NULL DEFAULT '',
    idx       integer NOT NULL DEFAULT -1,
    since     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker_id, backend, idx)
);

-- The deciding result of each task, for dashboards (neither stale nor retried).
CREATE OR REPLACE VIEW task_outcomes AS
SELECT t.id AS task_id, t.job_id, t.model_type, m.family, m.hf_id, t.backend, t.kind,
       t.batch_size, t.seq_len, t.precision, t.state AS status, t.attempt,
       r.reason, r.metrics, r.env, r.weights, r.worker_id, r.device_index,
       r.started_at, r.finished_at,
       EXTRACT(EPOCH FROM (r.finished_at - r.started_at)) AS duration_s
FROM tasks t
JOIN models m USING (model_type)
LEFT JOIN results r ON r.id = t.result_id;
