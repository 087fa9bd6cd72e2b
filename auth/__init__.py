"""auth: users in PostgreSQL, argon2 password hashes, signed expiring JWTs."""
