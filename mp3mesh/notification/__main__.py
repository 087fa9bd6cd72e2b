"""Run the notification service: ``python -m mp3mesh.notification``."""

from __future__ import annotations

import logging
import os

from pymongo import MongoClient

from mp3mesh.core import logs, metrics, tracing
from mp3mesh.core.amqp.consumer import (
    EXIT_HANDLER_STUCK,
    Consumer,
    HandlerStuck,
    consume_until_signalled,
)
from mp3mesh.core.amqp.publisher import ThreadedPublisher
from mp3mesh.core.heartbeat import Heartbeat
from mp3mesh.core.migrations import migrate
from mp3mesh.notification.handler import Notifier
from mp3mesh.notification.ledger import MIGRATIONS, SentLedger
from mp3mesh.notification.mailer import Mailer
from mp3mesh.notification.settings import NotificationSettings
from mp3mesh.notification.webhook_targets import parse_networks
from mp3mesh.notification.webhooks import WebhookDeliverer, WebhookFanOut


def main() -> None:
    settings = NotificationSettings()
    log = logs.configure("notification", settings.log_level, settings.log_format)
    # httpx logs every request's URL at INFO, and webhook URLs often carry a token of
    # their owner's; the deliveries log what they need themselves (no URL).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    metrics.serve(settings)
    tracing.configure("notification", settings)
    migrate(settings.database_url, MIGRATIONS)
    ledger = SentLedger(settings.database_url, **settings.database_timeouts)
    mongo: MongoClient = MongoClient(settings.mongo_url, **settings.mongo_options)
    db = mongo[settings.mongo_db]
    publisher = ThreadedPublisher(settings.amqp_url, [settings.webhook_queue])
    publisher.start()
    fan_out = WebhookFanOut(db, publisher, settings.webhook_queue)
    deliverer = WebhookDeliverer(
        db,
        parse_networks(settings.webhook_allowed_networks),
        settings.webhook_timeout_seconds,
        settings.webhook_retry_delays_seconds,
    )
    notifier = Notifier(
        ledger,
        Mailer(settings),
        settings.sender,
        settings.public_url,
        settings.mail_claim_seconds,
        # As long as the job records: retention after the job ended, then as long again.
        ledger_retention=2 * settings.retention_seconds,
        fan_out=fan_out.fan_out,
    )
    heartbeat = Heartbeat(settings.heartbeat_file)
    webhook_consumers = [
        Consumer(
            settings.amqp_url,
            settings.webhook_queue,
            deliverer.handle,
            declare=[settings.webhook_queue],
            on_stop=deliverer.stop,
            stop_grace=settings.stop_grace_seconds,
            retry_delays=settings.webhook_retry_delays_seconds,
            give_up=deliverer.give_up,
            heartbeat=heartbeat,
        )
        for _ in range(max(settings.webhook_concurrency, 1))
    ]
    try:
        consume_until_signalled(
            settings,
            settings.mp3_queue,
            notifier.handle,
            on_stop=notifier.stop,
            give_up=notifier.give_up,
            beside=webhook_consumers,
        )
    except HandlerStuck:
        os._exit(EXIT_HANDLER_STUCK)  # the stuck handler's thread would hold the exit
    publisher.close()
    deliverer.close()
    mongo.close()
    ledger.close()
    log.info("stopped")


if __name__ == "__main__":
    main()
