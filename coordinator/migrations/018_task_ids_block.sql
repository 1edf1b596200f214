-- SPDX-License-Identifier: MIT
-- hfleet schema, version 18: a job's task ids drawn as one block (issue 15).
--
-- A submit draws its tasks' ids before it inserts them (each planned task
-- must know its id: the coordinator queues them in memory once the job is
-- committed).  Drawn with one nextval per task, the ids of a 100,000-task
-- job took about 90 ms of a one-second submit on a 2-core machine: a
-- function call, a lock of the sequence and a row sent back per task.
--
-- hfleet_task_ids(n) advances tasks_id_seq by n at once and returns the
-- first of the n ids it reserved: [first, first + n).  setval is not
-- atomic with the nextval before it, so every caller takes one advisory
-- lock around the pair; the coordinator draws task ids only through this
-- function (tasks.id's DEFAULT is for hand-made rows, never beside a
-- running coordinator).  The lock is a session lock released before the
-- function returns, also when setval fails (an n beyond the sequence's
-- end), so a long submit transaction holds nothing that another drawer
-- waits for.  Like nextval's, the ids are not given back when the
-- transaction that drew them rolls back.

CREATE FUNCTION hfleet_task_ids(n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
BEGIN
    IF n IS NULL OR n < 1 THEN
        RAISE invalid_parameter_value USING MESSAGE = format('cannot draw %s task ids', n);
    END IF;
    PERFORM pg_advisory_lock(1751543300);
    BEGIN
        last := setval('tasks_id_seq', nextval('tasks_id_seq') + n - 1);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_advisory_unlock(1751543300);
        RAISE;
    END;
    PERFORM pg_advisory_unlock(1751543300);
    RETURN last - n + 1;
END
$$;

-- Only the coordinator draws ids (and calling it needs the sequence's
-- UPDATE right anyway); no reader role gets to run it.
REVOKE EXECUTE ON FUNCTION hfleet_task_ids(bigint) FROM PUBLIC;
