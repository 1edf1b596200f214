-- SPDX-License-Identifier: MIT
-- hfleet schema, version 19: the statistics of tasks.job_id and tasks.state
-- taken from a smaller sample (issue 15).
--
-- A submit or retry that queues many tasks analyses these two columns in
-- its own transaction (coordinator/db-jobs.c, tasks_analyze_after_queueing)
-- so that the planner knows at once that most of the table is queued.
-- ANALYZE samples 300 rows per unit of the largest statistics target of
-- the columns it analyses: at the default 100 that is 30,000 rows, whose
-- values it sorts and counts, and it took 60 to 75 ms of a one-second
-- 100,000-task submit on a 2-core machine (a table of 138,000 tasks).  At
-- 10 it samples 3,000 rows and took 8 ms.
--
-- What the planner needs of these columns is coarse: state has eight
-- values, all of which fit in a most-common-values list of 10, with their
-- shares known to about a percent from 3,000 rows; job_id is compared for
-- equality only, where the largest jobs (those whose share matters) are
-- in the list and the rest are estimated from the number of distinct
-- jobs.  Autovacuum's whole-table ANALYZE keeps the other columns'
-- default target (its sample stays 30,000 rows) and stores these two at
-- 10.

ALTER TABLE tasks
    ALTER COLUMN job_id SET STATISTICS 10,
    ALTER COLUMN state SET STATISTICS 10;
