-- Secrets the provider makes once and every replica shares, sealed with
-- the system secret (a database dump does not reveal them) under a key of
-- their own purpose. Unlike the system secret they are never rotated: the
-- pairwise subject key, for one, decides the sub relying parties know
-- their users by. One row per secret, named by name; the first replica to
-- need one inserts it, the others read it.
CREATE TABLE provider_secrets (
    name       TEXT PRIMARY KEY,
    sealed     BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
