-- Tokens revoked before their expiry (Logout), by their jti; rows are dropped once the
-- token has expired anyway.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_tokens_expires_at ON revoked_tokens (expires_at);
