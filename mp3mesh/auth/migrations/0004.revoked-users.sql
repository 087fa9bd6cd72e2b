-- Every token of a user issued before a time, refused (a password change, a deleted
-- account: the row outlives the user's); dropped once those tokens have expired anyway.
CREATE TABLE IF NOT EXISTS revoked_users (
    user_id       text PRIMARY KEY,
    issued_before timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_users_expires_at ON revoked_users (expires_at);
