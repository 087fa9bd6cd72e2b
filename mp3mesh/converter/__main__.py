"""Run the converter: ``python -m mp3mesh.converter``."""

from __future__ import annotations

import os
from pathlib import Path

from pymongo import MongoClient

from mp3mesh.converter.handler import Converter, sweep_work_dir
from mp3mesh.converter.settings import ConverterSettings
from mp3mesh.core import logs, metrics, tracing
from mp3mesh.core.amqp.consumer import EXIT_HANDLER_STUCK, HandlerStuck, consume_until_signalled
from mp3mesh.core.amqp.publisher import ThreadedPublisher


def main() -> None:
    settings = ConverterSettings()
    log = logs.configure("converter", settings.log_level, settings.log_format)
    metrics.serve(settings)
    tracing.configure("converter", settings)
    if settings.work_dir:
        Path(settings.work_dir).mkdir(parents=True, exist_ok=True)
    for stale in sweep_work_dir(settings.work_dir):
        log.info("removed a dead converter's temp directory", path=str(stale))
    mongo: MongoClient = MongoClient(settings.mongo_url, **settings.mongo_options)
    event_publisher = ThreadedPublisher(
        settings.amqp_url, [settings.mp3_queue], topics=[settings.job_events_exchange]
    )
    event_publisher.start()
    converter = Converter(mongo[settings.mongo_db], settings, event_publisher)
    log.info("converting", concurrent_conversions=settings.conversions)
    try:
        consume_until_signalled(
            settings,
            settings.video_queue,
            converter.handle,
            declare=[settings.mp3_queue],  # a finished job is announced again there
            on_stop=converter.stop,
            give_up=converter.give_up,
            concurrency=settings.conversions,
        )
    except HandlerStuck:
        os._exit(EXIT_HANDLER_STUCK)  # the stuck handler's thread would hold the exit
    converter.close()
    event_publisher.close()
    mongo.close()
    log.info("stopped")


if __name__ == "__main__":
    main()
