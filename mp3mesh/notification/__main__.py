"""Run the notification service: ``python -m mp3mesh.notification``."""

from __future__ import annotations

import os

from mp3mesh.core import logs, metrics, tracing
from mp3mesh.core.amqp.consumer import EXIT_HANDLER_STUCK, HandlerStuck, consume_until_signalled
from mp3mesh.core.migrations import migrate
from mp3mesh.notification.handler import Notifier
from mp3mesh.notification.ledger import MIGRATIONS, SentLedger
from mp3mesh.notification.mailer import Mailer
from mp3mesh.notification.settings import NotificationSettings


def main() -> None:
    settings = NotificationSettings()
    log = logs.configure("notification", settings.log_level, settings.log_format)
    metrics.serve(settings)
    tracing.configure("notification", settings)
    migrate(settings.database_url, MIGRATIONS)
    ledger = SentLedger(settings.database_url, **settings.database_timeouts)
    notifier = Notifier(
        ledger,
        Mailer(settings),
        settings.sender,
        settings.public_url,
        settings.mail_claim_seconds,
        # As long as the job records: retention after the job ended, then as long again.
        ledger_retention=2 * settings.retention_seconds,
    )
    try:
        consume_until_signalled(
            settings,
            settings.mp3_queue,
            notifier.handle,
            on_stop=notifier.stop,
            give_up=notifier.give_up,
        )
    except HandlerStuck:
        os._exit(EXIT_HANDLER_STUCK)  # the stuck handler's thread would hold the exit
    ledger.close()
    log.info("stopped")


if __name__ == "__main__":
    main()
