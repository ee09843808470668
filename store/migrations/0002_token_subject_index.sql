-- Revoking everything a subject holds (admin API, CLI) finds the subject's
-- tokens and codes by subject and kind.
CREATE INDEX oauth2_tokens_subject_idx ON oauth2_tokens (subject, kind);
