-- SPDX-License-Identifier: MIT
-- hfleet schema, version 4: reruns of failed tests (hfctl submit --flaky-reruns).

ALTER TABLE jobs ADD COLUMN flaky_reruns integer NOT NULL DEFAULT 0;

-- A failed test that was run again because the job allows flaky reruns
-- (also marked retried: it did not decide the outcome).
ALTER TABLE results ADD COLUMN flaky_rerun boolean NOT NULL DEFAULT false;

-- task_outcomes gains how many failed runs preceded the deciding one: a
-- task that passed with reruns > 0 is flaky.
CREATE OR REPLACE VIEW task_outcomes AS
SELECT t.id AS task_id, t.job_id, t.model_type, m.family, m.hf_id, t.backend, t.kind,
       t.batch_size, t.seq_len, t.precision, t.state AS status, t.attempt,
       r.reason, r.metrics, r.env, r.weights, r.worker_id, r.device_index,
       r.started_at, r.finished_at,
       EXTRACT(EPOCH FROM (r.finished_at - r.started_at)) AS duration_s,
       (SELECT count(*) FROM results f WHERE f.task_id = t.id AND f.flaky_rerun) AS reruns
FROM tasks t
JOIN models m USING (model_type)
LEFT JOIN results r ON r.id = t.result_id;
