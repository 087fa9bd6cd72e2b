"""Run the notification service: ``python -m notification``."""

from __future__ import annotations

import signal

from tenacity import retry, stop_after_delay, wait_exponential

from meshcore import logs
from meshcore.amqp import Consumer
from notification.consumer import Notifier
from notification.ledger import SentLedger, migrate
from notification.mailer import Mailer
from notification.settings import NotificationSettings


def main() -> None:
    settings = NotificationSettings()
    log = logs.configure("notification", settings.log_level, settings.log_format)
    retry(wait=wait_exponential(max=5), stop=stop_after_delay(60), reraise=True)(migrate)(
        settings.database_url
    )
    ledger = SentLedger(settings.database_url)
    notifier = Notifier(ledger, Mailer(settings), settings.sender, settings.public_url)
    consumer = Consumer(
        settings.amqp_url,
        settings.mp3_queue,
        notifier.handle,
        declare=[settings.video_queue, settings.mp3_queue],
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: consumer.stop())
    consumer.run()
    ledger.close()
    log.info("stopped")


if __name__ == "__main__":
    main()
