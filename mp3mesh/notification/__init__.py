"""notification: consumes `mp3`, emails the job's owner, never twice for one job."""
