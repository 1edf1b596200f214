-- SPDX-License-Identifier: MIT
-- hfleet schema, version 11: a task's job and model checked once per
-- statement, not once per row.
--
-- Inserting a job's tasks spent two thirds of its time in the two foreign
-- keys of tasks (job_id -> jobs, model_type -> models): PostgreSQL checks a
-- foreign key with one query per inserted row, and a 100,000-task job took
-- 1.04 s to insert with them and 0.36 s without them on a 2-core machine
-- (issue 15).  They become a statement-level trigger over the inserted rows
-- (a transition table): the distinct jobs and models they name are locked
-- FOR KEY SHARE, as a foreign key locks them, and any row naming one that
-- does not exist fails the statement with foreign_key_violation (SQLSTATE
-- 23503, what the foreign key raised).  A task's job and model never change
-- after the insert (the coordinator never sets them): an UPDATE that
-- changes either is refused.  On the other side, deleting a job or a model
-- that tasks name, or changing its key, is refused as the foreign keys'
-- NO ACTION refused it.

ALTER TABLE tasks DROP CONSTRAINT tasks_job_id_fkey;
ALTER TABLE tasks DROP CONSTRAINT tasks_model_type_fkey;

CREATE FUNCTION hfleet_tasks_refs_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad text;
BEGIN
    PERFORM 1 FROM jobs j WHERE j.id IN (SELECT DISTINCT n.job_id FROM new_tasks n) FOR KEY SHARE OF j;
    PERFORM 1 FROM models m WHERE m.model_type IN (SELECT DISTINCT n.model_type FROM new_tasks n)
        FOR KEY SHARE OF m;
    SELECT n.job_id::text INTO bad FROM new_tasks n
        WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = n.job_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('insert or update on table "tasks" names job %s, which does not exist', bad);
    END IF;
    SELECT n.model_type INTO bad FROM new_tasks n
        WHERE NOT EXISTS (SELECT 1 FROM models m WHERE m.model_type = n.model_type) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('insert or update on table "tasks" names model %s, which does not exist', bad);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_refs_insert
    AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT
    EXECUTE FUNCTION hfleet_tasks_refs_check();

-- Fires only for an UPDATE that names job_id or model_type, which the
-- coordinator never issues: no cost on the lease and result paths.
CREATE FUNCTION hfleet_tasks_refs_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.job_id IS DISTINCT FROM OLD.job_id OR NEW.model_type IS DISTINCT FROM OLD.model_type THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('task %s: its job and model cannot change', OLD.id);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_refs_fixed
    BEFORE UPDATE OF job_id, model_type ON tasks
    FOR EACH ROW
    EXECUTE FUNCTION hfleet_tasks_refs_fixed();

CREATE FUNCTION hfleet_jobs_referenced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id)
       AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = OLD.id) THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('job %s still has tasks', OLD.id);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

CREATE TRIGGER jobs_referenced
    BEFORE DELETE OR UPDATE OF id ON jobs
    FOR EACH ROW
    EXECUTE FUNCTION hfleet_jobs_referenced();

CREATE FUNCTION hfleet_models_referenced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.model_type IS DISTINCT FROM OLD.model_type)
       AND EXISTS (SELECT 1 FROM tasks t WHERE t.model_type = OLD.model_type) THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('model %s still has tasks', OLD.model_type);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

CREATE TRIGGER models_referenced
    BEFORE DELETE OR UPDATE OF model_type ON models
    FOR EACH ROW
    EXECUTE FUNCTION hfleet_models_referenced();
