-- One-time codes: valid_until is when a code stops working; expires_at, which
-- the janitor sweeps by, now also covers the rate-limit window, so the codes
-- a user was sent stay countable for as long as the limit looks back.
ALTER TABLE one_time_codes ADD COLUMN valid_until TIMESTAMPTZ NULL;
UPDATE one_time_codes SET valid_until = expires_at;
