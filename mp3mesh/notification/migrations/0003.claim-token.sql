-- Each claim draws a token, so that only its holder can release it (a sender whose claim
-- expired must not release the claim another sender holds now).
ALTER TABLE sent_notifications ADD COLUMN IF NOT EXISTS claim_token text;
