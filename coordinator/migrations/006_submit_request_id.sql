-- SPDX-License-Identifier: MIT
-- hfleet schema, version 6: idempotent submission (issue 5).  A client may
-- name its submission; a repeated submit with the same name, from the same
-- submitter, gets the job the first one made instead of a second job (hfctl
-- retries a submit whose answer was lost with the same name).
ALTER TABLE jobs ADD COLUMN request_id text;
CREATE UNIQUE INDEX jobs_request_id_idx ON jobs (submitter, request_id) WHERE request_id IS NOT NULL;
