-- The login app's own sessions: who signed in to the login app in this
-- browser, and how, for the account page. The cookie value is a bearer
-- secret, so only its SHA-256 is kept.
CREATE TABLE account_sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr        TEXT NOT NULL,
    auth_time  TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX account_sessions_user_idx ON account_sessions (user_id);
CREATE INDEX account_sessions_expires_idx ON account_sessions (expires_at);
