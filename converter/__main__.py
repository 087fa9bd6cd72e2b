"""Run the converter: ``python -m converter``."""

from __future__ import annotations

import signal

from pymongo import MongoClient

from converter.consumer import Converter
from converter.settings import ConverterSettings
from meshcore import logs
from meshcore.amqp import Consumer


def main() -> None:
    settings = ConverterSettings()
    log = logs.configure("converter", settings.log_level, settings.log_format)
    mongo: MongoClient = MongoClient(settings.mongo_url)
    converter = Converter(mongo[settings.mongo_db], settings)
    consumer = Consumer(
        settings.amqp_url,
        settings.video_queue,
        converter.handle,
        declare=[settings.video_queue, settings.mp3_queue],
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: consumer.stop())
    consumer.run()
    mongo.close()
    log.info("stopped")


if __name__ == "__main__":
    main()
