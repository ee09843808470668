-- Latchkey schema, version 1. Written for PostgreSQL; for SQLite the store
-- rewrites the column types (TIMESTAMPTZ, BYTEA) it does not know. Times are UTC.

-- OAuth 2.0 clients. metadata is the RFC 7591 document without secrets.
CREATE TABLE clients (
    id                      TEXT PRIMARY KEY,
    secret_hash             TEXT NOT NULL DEFAULT '',
    rotated_secret_hashes   TEXT NOT NULL DEFAULT '[]',
    registration_token_hash TEXT NOT NULL DEFAULT '',
    metadata                TEXT NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL
);

-- Every fosite request stored under a signature: authorization codes (1),
-- access tokens (2), refresh tokens (3), PKCE (4), OpenID Connect sessions (5)
-- and pushed authorization requests (6). data is the JSON request record.
CREATE TABLE oauth2_tokens (
    kind             SMALLINT NOT NULL,
    signature        TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    subject          TEXT NOT NULL DEFAULT '',
    active           BOOLEAN NOT NULL DEFAULT TRUE,
    access_signature TEXT NOT NULL DEFAULT '',
    rotated_at       TIMESTAMPTZ NULL,
    requested_at     TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    data             TEXT NOT NULL,
    PRIMARY KEY (signature, kind)
);
CREATE INDEX oauth2_tokens_request_idx ON oauth2_tokens (request_id, kind);
CREATE INDEX oauth2_tokens_expires_idx ON oauth2_tokens (expires_at);

-- RFC 8628 device authorization requests, found by device code or user code signature.
CREATE TABLE device_codes (
    signature           TEXT PRIMARY KEY,
    user_code_signature TEXT NOT NULL UNIQUE,
    request_id          TEXT NOT NULL,
    client_id           TEXT NOT NULL,
    state               SMALLINT NOT NULL DEFAULT 0,
    active              BOOLEAN NOT NULL DEFAULT TRUE,
    last_polled_at      TIMESTAMPTZ NULL,
    requested_at        TIMESTAMPTZ NOT NULL,
    expires_at          TIMESTAMPTZ NOT NULL,
    data                TEXT NOT NULL
);
CREATE INDEX device_codes_expires_idx ON device_codes (expires_at);

-- JWT IDs already seen (client assertions, RFC 7523), keyed by their SHA-256.
CREATE TABLE jtis (
    jti_hash   TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX jtis_expires_idx ON jtis (expires_at);

-- Signing keys. The private JWK is sealed with AES-256-GCM under a key derived
-- from the system secret. state: next (published, not yet signing), current
-- (signing), retired (published until expires_at for verification only).
CREATE TABLE signing_keys (
    id           TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    state        TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    private_jwk  BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    activated_at TIMESTAMPTZ NULL,
    retired_at   TIMESTAMPTZ NULL,
    expires_at   TIMESTAMPTZ NULL
);

-- Login, consent, logout and device challenges: the provider's state machine
-- shared with the login app. id is the SHA-256 of the challenge handed out.
CREATE TABLE challenges (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    client_id   TEXT NOT NULL DEFAULT '',
    session_id  TEXT NOT NULL DEFAULT '',
    request     TEXT NOT NULL DEFAULT '{}',
    result      TEXT NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    decided_at  TIMESTAMPTZ NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX challenges_expires_idx ON challenges (expires_at);

-- SSO sessions behind the provider's session cookie. id is the SHA-256 of
-- the cookie value; sid is the public session ID put in tokens.
CREATE TABLE login_sessions (
    id               TEXT PRIMARY KEY,
    sid              TEXT NOT NULL UNIQUE,
    subject          TEXT NOT NULL,
    authenticated_at TIMESTAMPTZ NOT NULL,
    acr              TEXT NOT NULL DEFAULT '',
    amr              TEXT NOT NULL DEFAULT '[]',
    remember         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_sessions_subject_idx ON login_sessions (subject);
CREATE INDEX login_sessions_expires_idx ON login_sessions (expires_at);

-- Which clients took part in an SSO session, for front- and back-channel logout.
CREATE TABLE login_session_clients (
    sid        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sid, client_id)
);

-- Remembered consent decisions.
CREATE TABLE consent_grants (
    subject    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL DEFAULT '',
    audience   TEXT NOT NULL DEFAULT '',
    claims     TEXT NOT NULL DEFAULT '{}',
    granted_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NULL,
    PRIMARY KEY (subject, client_id)
);

-- The login app's users. username is stored lower-case.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    email          TEXT NOT NULL DEFAULT '',
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash  TEXT NOT NULL DEFAULT '',
    profile        TEXT NOT NULL DEFAULT '{}',
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_email_idx ON users (email);

-- Accounts at upstream OpenID providers linked to users.
CREATE TABLE federated_identities (
    provider         TEXT NOT NULL,
    upstream_subject TEXT NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, upstream_subject)
);
CREATE INDEX federated_identities_user_idx ON federated_identities (user_id);

-- TOTP enrolment; the secret is sealed like signing keys. last_step blocks replays.
CREATE TABLE totp_enrolments (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret     BYTEA NOT NULL,
    confirmed  BOOLEAN NOT NULL DEFAULT FALSE,
    last_step  BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);

-- WebAuthn credentials (passkeys and security keys).
CREATE TABLE webauthn_credentials (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    credential   TEXT NOT NULL,
    sign_count   BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NULL
);
CREATE INDEX webauthn_credentials_user_idx ON webauthn_credentials (user_id);

-- Recovery codes, stored hashed, each single-use.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- One-time codes sent by email, stored hashed. valid_until is when a code
-- stops working; expires_at, which the janitor sweeps by, also covers the
-- resend-limit window, so sent codes stay countable as long as the limit looks back.
CREATE TABLE one_time_codes (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    valid_until TIMESTAMPTZ NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ NULL
);
CREATE INDEX one_time_codes_user_idx ON one_time_codes (user_id, purpose, created_at);
CREATE INDEX one_time_codes_expires_idx ON one_time_codes (expires_at);

-- Failed-attempt counters per account and per source, for throttling and lockout.
CREATE TABLE attempt_counters (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    window_start TIMESTAMPTZ NOT NULL,
    locked_until TIMESTAMPTZ NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX attempt_counters_expires_idx ON attempt_counters (expires_at);

-- Generation counters that tell every replica when to drop a cache.
CREATE TABLE cache_generations (
    topic      TEXT PRIMARY KEY,
    generation BIGINT NOT NULL DEFAULT 0
);
INSERT INTO cache_generations (topic, generation) VALUES ('clients', 0), ('signing_keys', 0);
