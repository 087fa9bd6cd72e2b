-- One row per job whose email the SMTP server accepted: redeliveries are not mailed again.
CREATE TABLE IF NOT EXISTS sent_notifications (
    job_id     text PRIMARY KEY,
    recipient  text NOT NULL,
    status     text NOT NULL,
    sent_at    timestamptz NOT NULL DEFAULT now()
);
