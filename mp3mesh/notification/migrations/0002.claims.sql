-- A row is now written before the mail is sent (a claim, held until claimed_until) and
-- completed after (sent_at); rows written before this migration were all sent.
ALTER TABLE sent_notifications ALTER COLUMN sent_at DROP NOT NULL;
ALTER TABLE sent_notifications ALTER COLUMN sent_at DROP DEFAULT;
ALTER TABLE sent_notifications ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
-- Set when the SMTP server refused the mail for good (5xx): it is not tried again.
ALTER TABLE sent_notifications ADD COLUMN IF NOT EXISTS refused text;
