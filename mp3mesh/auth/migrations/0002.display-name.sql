-- The name a user registered with (POST /register's "name"); empty when none was given.
ALTER TABLE users ADD COLUMN IF NOT EXISTS display_name text NOT NULL DEFAULT '';
