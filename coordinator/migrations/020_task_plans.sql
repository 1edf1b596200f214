-- SPDX-License-Identifier: MIT
-- hfleet schema, version 20: a large job's tasks written after its answer
-- (issue 15).
--
-- Inserting a task costs PostgreSQL about 11 us on a 2-core machine (its
-- heap row, three B-tree entries, the statement triggers), so a
-- 100,000-task submit spent about 1.2 s in its transaction before its
-- submitter was answered.  A submit now writes its first
-- scheduler.submit_slice tasks as before and the rest of its plan as rows
-- of this table, each the next slice of tasks in a compact form: the
-- strings the slice names once (names), and per task an index into them
-- for each text column and its two integers.  The submit commits the job,
-- its first tasks and these rows together, so an accepted job is durable
-- whole; the coordinator then writes one slice per transaction on its job
-- lane (coordinator/db-plans.c): the slice's row deleted and its tasks
-- inserted in one statement, so a slice is written exactly once, whoever
-- writes it (a coordinator that starts writes every slice left first).
--
-- Until its last slice is written a job is not done (every "job done"
-- check asks for no row here too), its status counts the slices' tasks as
-- queued, and a cancel that comes meanwhile has the slices written as
-- cancelled tasks.  Readers of tasks see a job's tasks appear slice by
-- slice, within a few seconds of its answer for 100,000 tasks.
--
-- Ids are those the submit drew as one block (hfleet_task_ids): the
-- slice's first_id and its tasks in order, first_id + (i - 1).

CREATE TABLE task_plans (
    job_id      bigint NOT NULL REFERENCES jobs (id),
    first_id    bigint NOT NULL,
    iterations  integer NOT NULL,
    warmup      integer NOT NULL,
    timeout_s   integer NOT NULL,
    names       text[] NOT NULL,
    -- per task, in order: 1-based indexes into names
    model       smallint[] NOT NULL,
    backend     smallint[] NOT NULL,
    kind        smallint[] NOT NULL,
    precision   smallint[] NOT NULL,
    mode        smallint[] NOT NULL,
    -- per task, in order
    batch_size  integer[] NOT NULL,
    seq_len     integer[] NOT NULL,
    PRIMARY KEY (job_id, first_id),
    CHECK (cardinality(model) > 0
           AND cardinality(backend) = cardinality(model) AND cardinality(kind) = cardinality(model)
           AND cardinality(precision) = cardinality(model) AND cardinality(mode) = cardinality(model)
           AND cardinality(batch_size) = cardinality(model)
           AND cardinality(seq_len) = cardinality(model)),
    -- every index names a string of the row: a slice that could not be
    -- written is refused when it is stored, not when it is written
    CHECK (1 <= ALL (model) AND cardinality(names) >= ALL (model)
           AND 1 <= ALL (backend) AND cardinality(names) >= ALL (backend)
           AND 1 <= ALL (kind) AND cardinality(names) >= ALL (kind)
           AND 1 <= ALL (precision) AND cardinality(names) >= ALL (precision)
           AND 1 <= ALL (mode) AND cardinality(names) >= ALL (mode)
           AND array_position(names, NULL) IS NULL)
);
