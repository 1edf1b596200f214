-- SPDX-License-Identifier: MIT
-- hfleet schema, version 9: readers' speed with years of history (issue 12).
--
-- Two more summaries, kept in the transaction that changes what they sum:
--
-- task_history: one narrow row per decided task (its outcome and its
-- deciding result's figures), kept by the trigger on tasks of migration 008
-- (hfleet_tasks_summarise, extended here).  A covering index makes one
-- model's benchmark history an index-only scan (benchmark_history reads
-- it) and a second index gives `hfctl history` a model's newest outcomes
-- without sorting them.
--
-- device_hours: per device and UTC hour, the seconds it held leases and the
-- leases granted (from attempts, added by a trigger when an attempt ends),
-- and the sum and count of the telemetry's GPU utilisation samples (added
-- by a trigger on device_telemetry).  hfleet_fleet_utilisation reads it and
-- adds the leases still running, counted up to now.
--
-- One piece of logic each: the triggers and hfleet_rebuild_summaries() read
-- the same views (task_history_source, attempt_hours), the triggers for
-- one row, the rebuild for all.

-- ---- task_history ----

-- What task_history holds for each decided task.
CREATE VIEW task_history_source AS
SELECT t.id AS task_id, t.job_id, t.result_id, t.model_type, t.backend, t.kind, t.precision,
       t.batch_size, t.seq_len, t.state AS status, t.finished_at, r.device_name, r.env_id,
       r.latency_mean_ms, r.latency_stdev_ms, r.latency_cv, r.latency_p50_ms, r.latency_p90_ms,
       r.latency_p95_ms, r.latency_p99_ms, r.throughput_items_s, r.peak_memory_bytes,
       r.energy_j_per_item, r.avg_power_w, r.noisy
FROM tasks t
LEFT JOIN results r ON r.id = t.result_id
WHERE t.finished_at IS NOT NULL
  AND t.state IN ('passed', 'failed', 'error', 'timeout', 'skipped', 'cancelled');

CREATE TABLE task_history (
    task_id            bigint PRIMARY KEY,
    job_id             bigint NOT NULL,
    result_id          bigint,
    model_type         text NOT NULL,
    backend            text NOT NULL,
    kind               text NOT NULL,
    precision          text NOT NULL,
    batch_size         integer NOT NULL,
    seq_len            integer NOT NULL,
    status             text NOT NULL,
    finished_at        timestamptz NOT NULL,
    device_name        text,
    env_id             bigint,
    latency_mean_ms    double precision,
    latency_stdev_ms   double precision,
    latency_cv         double precision,
    latency_p50_ms     double precision,
    latency_p90_ms     double precision,
    latency_p95_ms     double precision,
    latency_p99_ms     double precision,
    throughput_items_s double precision,
    peak_memory_bytes  bigint,
    energy_j_per_item  double precision,
    avg_power_w        double precision,
    noisy              boolean
);

-- ---- device_hours ----

-- The hours of one lease from granted to ended: the seconds of each UTC
-- hour it covers and 1 in the hour it was granted (a lease of no length
-- still counts there; an end before the grant counts as no time).
CREATE FUNCTION hfleet_lease_hours(granted timestamptz, ended timestamptz)
RETURNS TABLE (hour timestamptz, busy_s double precision, started integer)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT hr.hour,
           greatest(EXTRACT(EPOCH FROM (least(ended, hr.hour + interval '1 hour')
                                        - greatest(granted, hr.hour))), 0)::double precision,
           (hr.hour = date_trunc('hour', granted, 'UTC'))::integer
    FROM generate_series(date_trunc('hour', granted, 'UTC'), greatest(ended, granted),
                         interval '1 hour') AS hr (hour)
    WHERE hr.hour < ended OR hr.hour = date_trunc('hour', granted, 'UTC')
$$;

-- Every attempt split by device and hour; a lease not yet ended runs up to
-- now (running).
CREATE VIEW attempt_hours AS
SELECT a.task_id, a.attempt, a.worker_id, t.backend, di.idx, h.hour, h.busy_s, h.started,
       a.ended_at IS NULL AS running
FROM attempts a
JOIN tasks t ON t.id = a.task_id
CROSS JOIN LATERAL (SELECT DISTINCT u.idx
                    FROM unnest(coalesce(a.device_indices, ARRAY[a.device_index])) AS u (idx)) di
CROSS JOIN LATERAL hfleet_lease_hours(a.granted_at, coalesce(a.ended_at, now())) h;

CREATE TABLE device_hours (
    worker_id    text NOT NULL,
    backend      text NOT NULL,
    idx          integer NOT NULL,
    hour         timestamptz NOT NULL,
    busy_s       double precision NOT NULL DEFAULT 0,   -- ended leases only
    tasks        integer NOT NULL DEFAULT 0,            -- ended leases granted this hour
    util_sum     double precision NOT NULL DEFAULT 0,   -- telemetry utilization_pct
    util_samples integer NOT NULL DEFAULT 0,
    PRIMARY KEY (worker_id, backend, idx, hour)
);
CREATE INDEX device_hours_hour_idx ON device_hours (hour);
-- The leases still running, for hfleet_fleet_utilisation.
CREATE INDEX attempts_running_idx ON attempts (task_id) WHERE ended_at IS NULL;

CREATE FUNCTION hfleet_attempts_summarise() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_hours AS d (worker_id, backend, idx, hour, busy_s, tasks)
    SELECT h.worker_id, h.backend, h.idx, h.hour, sum(h.busy_s), sum(h.started)
    FROM attempt_hours h
    WHERE h.task_id = NEW.task_id AND h.attempt = NEW.attempt AND NOT h.running
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (worker_id, backend, idx, hour) DO UPDATE SET
        busy_s = d.busy_s + EXCLUDED.busy_s, tasks = d.tasks + EXCLUDED.tasks;
    RETURN NULL;
END
$$;

-- An attempt counts once, when it ends (the coordinator sets ended_at once,
-- from NULL; an attempt stored already ended counts when inserted).
CREATE TRIGGER attempts_summarise_insert
    AFTER INSERT ON attempts
    FOR EACH ROW WHEN (NEW.ended_at IS NOT NULL)
    EXECUTE FUNCTION hfleet_attempts_summarise();
CREATE TRIGGER attempts_summarise_end
    AFTER UPDATE OF ended_at ON attempts
    FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
    EXECUTE FUNCTION hfleet_attempts_summarise();

CREATE FUNCTION hfleet_telemetry_summarise() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_hours AS d (worker_id, backend, idx, hour, util_sum, util_samples)
    VALUES (NEW.worker_id, NEW.backend, NEW.idx, date_trunc('hour', NEW.sampled_at, 'UTC'),
            coalesce(NEW.utilization_pct, 0), (NEW.utilization_pct IS NOT NULL)::integer)
    ON CONFLICT (worker_id, backend, idx, hour) DO UPDATE SET
        util_sum = d.util_sum + EXCLUDED.util_sum,
        util_samples = d.util_samples + EXCLUDED.util_samples;
    RETURN NULL;
END
$$;

CREATE TRIGGER device_telemetry_summarise
    AFTER INSERT ON device_telemetry
    FOR EACH ROW EXECUTE FUNCTION hfleet_telemetry_summarise();

-- ---- the trigger on tasks and the rebuild ----

-- Migration 008's function, with task_history kept first.
CREATE OR REPLACE FUNCTION hfleet_tasks_summarise() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    INSERT INTO task_history AS h
    SELECT * FROM task_history_source s WHERE s.task_id = NEW.id
    ON CONFLICT (task_id) DO UPDATE SET
        job_id = EXCLUDED.job_id, result_id = EXCLUDED.result_id,
        model_type = EXCLUDED.model_type, backend = EXCLUDED.backend, kind = EXCLUDED.kind,
        precision = EXCLUDED.precision, batch_size = EXCLUDED.batch_size,
        seq_len = EXCLUDED.seq_len, status = EXCLUDED.status, finished_at = EXCLUDED.finished_at,
        device_name = EXCLUDED.device_name, env_id = EXCLUDED.env_id,
        latency_mean_ms = EXCLUDED.latency_mean_ms, latency_stdev_ms = EXCLUDED.latency_stdev_ms,
        latency_cv = EXCLUDED.latency_cv, latency_p50_ms = EXCLUDED.latency_p50_ms,
        latency_p90_ms = EXCLUDED.latency_p90_ms, latency_p95_ms = EXCLUDED.latency_p95_ms,
        latency_p99_ms = EXCLUDED.latency_p99_ms, throughput_items_s = EXCLUDED.throughput_items_s,
        peak_memory_bytes = EXCLUDED.peak_memory_bytes,
        energy_j_per_item = EXCLUDED.energy_j_per_item, avg_power_w = EXCLUDED.avg_power_w,
        noisy = EXCLUDED.noisy;
    IF NEW.kind = 'test' AND NEW.state IN ('passed', 'failed', 'error', 'timeout') THEN
        INSERT INTO matrix_state AS m (model_type, backend, precision, decisive_task_id,
                                       decisive_result_id, decisive_status, decisive_at)
        VALUES (NEW.model_type, NEW.backend, NEW.precision, NEW.id, NEW.result_id, NEW.state,
                NEW.finished_at)
        ON CONFLICT (model_type, backend, precision) DO UPDATE SET
            decisive_task_id = EXCLUDED.decisive_task_id,
            decisive_result_id = EXCLUDED.decisive_result_id,
            decisive_status = EXCLUDED.decisive_status,
            decisive_at = EXCLUDED.decisive_at,
            skipped_since = CASE WHEN m.skipped_since <= EXCLUDED.decisive_at THEN NULL
                                 ELSE m.skipped_since END
        WHERE m.decisive_at IS NULL OR m.decisive_at <= EXCLUDED.decisive_at;
    ELSIF NEW.kind = 'test' THEN
        INSERT INTO matrix_state AS m (model_type, backend, precision, other_task_id,
                                       other_result_id, other_status, other_at, skipped_since)
        VALUES (NEW.model_type, NEW.backend, NEW.precision, NEW.id, NEW.result_id, NEW.state,
                NEW.finished_at, NEW.finished_at)
        ON CONFLICT (model_type, backend, precision) DO UPDATE SET
            other_task_id = CASE WHEN m.other_at > EXCLUDED.other_at THEN m.other_task_id
                                 ELSE EXCLUDED.other_task_id END,
            other_result_id = CASE WHEN m.other_at > EXCLUDED.other_at THEN m.other_result_id
                                   ELSE EXCLUDED.other_result_id END,
            other_status = CASE WHEN m.other_at > EXCLUDED.other_at THEN m.other_status
                                ELSE EXCLUDED.other_status END,
            other_at = greatest(m.other_at, EXCLUDED.other_at),
            skipped_since = CASE WHEN m.decisive_at >= EXCLUDED.other_at THEN m.skipped_since
                                 ELSE least(m.skipped_since, EXCLUDED.other_at) END;
    ELSIF NEW.kind = 'benchmark' AND NEW.state = 'passed' AND NEW.result_id IS NOT NULL THEN
        SELECT coalesce(x.device_name, '') AS device_name, x.latency_p50_ms, x.latency_cv, x.noisy,
               x.env_id
        INTO r FROM results x WHERE x.id = NEW.result_id;
        INSERT INTO benchmark_runs AS b (task_id, result_id, model_type, backend, device_name,
                                         precision, batch_size, seq_len, finished_at, latency_p50_ms,
                                         latency_cv, noisy, env_id)
        VALUES (NEW.id, NEW.result_id, NEW.model_type, NEW.backend, coalesce(r.device_name, ''),
                NEW.precision, NEW.batch_size, NEW.seq_len, NEW.finished_at, r.latency_p50_ms,
                r.latency_cv, r.noisy, r.env_id)
        ON CONFLICT (task_id) DO UPDATE SET
            result_id = EXCLUDED.result_id, device_name = EXCLUDED.device_name,
            finished_at = EXCLUDED.finished_at, latency_p50_ms = EXCLUDED.latency_p50_ms,
            latency_cv = EXCLUDED.latency_cv, noisy = EXCLUDED.noisy, env_id = EXCLUDED.env_id;
        INSERT INTO benchmark_state AS b (model_type, backend, device_name, precision, batch_size,
                                          seq_len, task_id, result_id, finished_at)
        VALUES (NEW.model_type, NEW.backend, coalesce(r.device_name, ''), NEW.precision, NEW.batch_size,
                NEW.seq_len, NEW.id, NEW.result_id, NEW.finished_at)
        ON CONFLICT (model_type, backend, device_name, precision, batch_size, seq_len) DO UPDATE SET
            task_id = EXCLUDED.task_id, result_id = EXCLUDED.result_id,
            finished_at = EXCLUDED.finished_at
        WHERE b.finished_at <= EXCLUDED.finished_at;
    END IF;
    RETURN NULL;
END
$$;

-- A task that runs again (hfctl retry queues it with finished_at NULL) is
-- no longer decided: its row goes until the trigger above writes the new
-- outcome.
CREATE FUNCTION hfleet_tasks_undecide() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_history WHERE task_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_undecide
    AFTER UPDATE OF state, finished_at ON tasks
    FOR EACH ROW
    WHEN (OLD.finished_at IS NOT NULL
          AND (NEW.finished_at IS NULL
               OR NEW.state NOT IN ('passed', 'failed', 'error', 'timeout', 'skipped', 'cancelled')))
    EXECUTE FUNCTION hfleet_tasks_undecide();

-- Rebuilds task_history and device_hours (the backfill below; a bulk load
-- that ran with triggers off calls hfleet_rebuild_summaries(), which now
-- calls this too).
CREATE FUNCTION hfleet_rebuild_history_and_hours() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE task_history, device_hours;
    INSERT INTO task_history SELECT * FROM task_history_source;
    INSERT INTO device_hours (worker_id, backend, idx, hour, busy_s, tasks, util_sum, util_samples)
    SELECT coalesce(a.worker_id, u.worker_id), coalesce(a.backend, u.backend), coalesce(a.idx, u.idx),
           coalesce(a.hour, u.hour), coalesce(a.busy_s, 0), coalesce(a.tasks, 0),
           coalesce(u.util_sum, 0), coalesce(u.util_samples, 0)
    FROM (SELECT h.worker_id, h.backend, h.idx, h.hour, sum(h.busy_s) AS busy_s,
                 sum(h.started)::integer AS tasks
          FROM attempt_hours h WHERE NOT h.running
          GROUP BY 1, 2, 3, 4) a
    FULL JOIN (SELECT d.worker_id, d.backend, d.idx, date_trunc('hour', d.sampled_at, 'UTC') AS hour,
                      coalesce(sum(d.utilization_pct::double precision), 0) AS util_sum,
                      count(d.utilization_pct)::integer AS util_samples
               FROM device_telemetry d GROUP BY 1, 2, 3, 4) u
      ON (u.worker_id, u.backend, u.idx, u.hour) = (a.worker_id, a.backend, a.idx, a.hour);
$$;

-- Migration 008's rebuild keeps its body under a new name; the rebuild is
-- that plus the two above.
ALTER FUNCTION hfleet_rebuild_summaries() RENAME TO hfleet_rebuild_summaries_008;

CREATE FUNCTION hfleet_rebuild_summaries() RETURNS void
LANGUAGE sql AS $$
    SELECT hfleet_rebuild_summaries_008();
    SELECT hfleet_rebuild_history_and_hours();
$$;

-- The backfill: history and hours of everything stored before this migration.
SELECT hfleet_rebuild_history_and_hours();

-- One model's history, newest first (hfctl history), and one model's passed
-- benchmarks by time with every figure benchmark_history shows (an
-- index-only scan).
CREATE INDEX task_history_model_idx ON task_history (model_type, finished_at, task_id);
CREATE INDEX task_history_benchmark_idx ON task_history (model_type, finished_at)
    INCLUDE (backend, device_name, precision, batch_size, seq_len, job_id, task_id,
             latency_mean_ms, latency_stdev_ms, latency_cv, latency_p50_ms, latency_p90_ms,
             latency_p95_ms, latency_p99_ms, throughput_items_s, peak_memory_bytes,
             energy_j_per_item, avg_power_w, noisy, env_id)
    WHERE kind = 'benchmark' AND status = 'passed' AND result_id IS NOT NULL;

-- ---- the readers' interface, reading the new tables ----

-- Every passed benchmark result; finished_at is tasks.finished_at.
CREATE OR REPLACE VIEW benchmark_history AS
SELECT h.model_type, m.family, h.backend, h.device_name, h.precision, h.batch_size, h.seq_len,
       h.job_id, h.task_id, h.finished_at,
       h.latency_mean_ms, h.latency_stdev_ms, h.latency_cv, h.latency_p50_ms, h.latency_p90_ms,
       h.latency_p95_ms, h.latency_p99_ms, h.throughput_items_s, h.peak_memory_bytes,
       h.energy_j_per_item, h.avg_power_w, h.noisy, h.env_id
FROM task_history h
JOIN models m ON m.model_type = h.model_type
WHERE h.kind = 'benchmark' AND h.status = 'passed' AND h.result_id IS NOT NULL;

-- Per device and UTC hour from the hour that holds since up to until: seconds
-- busy with leases (split at hour boundaries; a lease not yet ended counts
-- up to now), utilisation = busy_s / 3600 (above 1 when a device has
-- several slots), leases granted in that hour, and the mean GPU utilisation
-- the heartbeats sampled in that hour.
CREATE OR REPLACE FUNCTION hfleet_fleet_utilisation(since timestamptz, until timestamptz)
RETURNS TABLE (worker_id text, backend text, idx integer, device_name text, hour timestamptz,
               busy_s double precision, utilisation double precision, tasks bigint,
               avg_gpu_util_pct double precision)
LANGUAGE sql STABLE AS $$
    WITH u AS (
        SELECT d.worker_id, d.backend, d.idx, d.hour, d.busy_s, d.tasks::bigint AS tasks,
               d.util_sum, d.util_samples::bigint AS util_samples
        FROM device_hours d
        WHERE d.hour >= date_trunc('hour', since, 'UTC') AND d.hour < until
        UNION ALL
        SELECT h.worker_id, h.backend, h.idx, h.hour, h.busy_s, h.started, 0, 0
        FROM attempt_hours h
        WHERE h.running AND h.hour >= date_trunc('hour', since, 'UTC') AND h.hour < until)
    SELECT u.worker_id, u.backend, u.idx, dv.name, u.hour, sum(u.busy_s), sum(u.busy_s) / 3600,
           sum(u.tasks)::bigint, sum(u.util_sum) / nullif(sum(u.util_samples), 0)
    FROM u
    LEFT JOIN devices dv ON (dv.worker_id, dv.backend, dv.idx) = (u.worker_id, u.backend, u.idx)
    GROUP BY u.worker_id, u.backend, u.idx, dv.name, u.hour
$$;

-- The readers' grants: 008's list plus the new tables and the two views the
-- triggers read (hfleet_fleet_utilisation reads attempt_hours).
CREATE OR REPLACE FUNCTION hfleet_reader_grants() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    GRANT SELECT ON task_outcomes, compatibility_matrix, benchmark_latest, benchmark_history,
                    benchmark_regressions, cross_backend, fleet_utilisation, device_health,
                    models, jobs, tasks, attempts, results, environments, workers, devices,
                    device_telemetry, device_quarantine, device_health_checks, drains,
                    matrix_state, benchmark_state, benchmark_runs, schema_migrations,
                    task_history, device_hours, task_history_source, attempt_hours
        TO hfleet_reader;
    GRANT EXECUTE ON FUNCTION hfleet_compare_jobs(bigint, bigint, double precision),
                              hfleet_regressions_rolling(integer, double precision),
                              hfleet_fleet_utilisation(timestamptz, timestamptz)
        TO hfleet_reader;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hfleet_reader') THEN
        PERFORM hfleet_reader_grants();
    END IF;
END
$$;
