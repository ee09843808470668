-- The back-channel logout queue (OpenID Connect Back-Channel Logout 1.0):
-- one row per logout token a client's backchannel_logout_uri still has to
-- receive. A row is written in the transaction that ends the SSO session,
-- so a provider that stops before sending loses no logout, and deleted once
-- the token was delivered or the provider gave up on it.
--
-- The token itself is signed when it is sent, from these claims: id is its
-- jti (the same on every attempt, so a relying party can tell a resent
-- token), client_id its audience, sid and subject the session it ends.
--
-- due_at is when a provider should next try: the next attempt, or while a
-- provider holds the row (lease set), when that claim lapses and another
-- provider may take the row over.
CREATE TABLE backchannel_logouts (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    sid        TEXT NOT NULL DEFAULT '',
    subject    TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    due_at     TIMESTAMPTZ NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    lease      TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT ''
);

CREATE INDEX backchannel_logouts_due_idx ON backchannel_logouts (due_at);
