-- SPDX-License-Identifier: MIT
-- hfleet schema, version 13: migration 011's check of a task's job and
-- model reads the inserted rows once, not four times.
--
-- Migration 011's statement-level trigger scanned its transition table
-- (every inserted row) four times: the distinct jobs, the distinct models,
-- then an anti-join against jobs and one against models.  For a 100,000-task
-- job that was 180 ms of a 510 ms insert on a 2-core machine (issue 15).
-- Here one pass gathers the distinct jobs and models the rows name (a few
-- hundred at most for a job), and the locks and the existence checks run
-- over those few values.  Same locks (FOR KEY SHARE), same refusals
-- (foreign_key_violation, SQLSTATE 23503, the same messages); about 60 ms
-- of the check remain (the transition table itself and the one pass).

CREATE OR REPLACE FUNCTION hfleet_tasks_refs_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad text;
    jobs_named bigint[];
    models_named text[];
BEGIN
    SELECT array_agg(DISTINCT n.job_id), array_agg(DISTINCT n.model_type)
        INTO jobs_named, models_named FROM new_tasks n;
    PERFORM 1 FROM jobs j WHERE j.id = ANY (jobs_named) FOR KEY SHARE OF j;
    PERFORM 1 FROM models m WHERE m.model_type = ANY (models_named) FOR KEY SHARE OF m;
    SELECT x::text INTO bad FROM unnest(jobs_named) AS x
        WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = x) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('insert or update on table "tasks" names job %s, which does not exist', bad);
    END IF;
    SELECT x INTO bad FROM unnest(models_named) AS x
        WHERE NOT EXISTS (SELECT 1 FROM models m WHERE m.model_type = x) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('insert or update on table "tasks" names model %s, which does not exist', bad);
    END IF;
    RETURN NULL;
END
$$;
