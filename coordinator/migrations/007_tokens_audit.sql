-- SPDX-License-Identifier: MIT
-- Who may do what (tokens) and who did what (audit).
--
-- A token is "hft_<id>_<secret>"; only the SHA-256 of the secret is kept,
-- so the table cannot give a token away.  The coordinator loads the live
-- tokens at start and checks every request against that copy in memory;
-- last_used_at is written at most once a minute per token.

CREATE TABLE tokens (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('viewer', 'submitter', 'admin', 'worker')),
    hash         bytea NOT NULL CHECK (length(hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE INDEX tokens_name ON tokens (name);

-- One row per action that changed something: submit, cancel, retry, drain,
-- undrain, token-create, token-revoke.  Written in the transaction of the
-- action itself.
CREATE TABLE audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    role    text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL,
    detail  text NOT NULL DEFAULT '',
    job_id  bigint
);

CREATE INDEX audit_job ON audit (job_id, id) WHERE job_id IS NOT NULL;
