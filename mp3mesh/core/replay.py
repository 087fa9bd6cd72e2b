"""Move dead-lettered messages back to their queue: ``python -m mp3mesh.core.replay [QUEUE...]``.

For after an outage outlasted every retry (or a fix for a handler bug is deployed): each
message of ``<queue>.dead`` is published to ``<queue>`` with its retry count reset, and
removed from the dead-letter queue only once the broker confirmed the copy, so a crash
mid-replay duplicates at most one message and loses none (handlers ignore repeats).
Reads AMQP_URL, VIDEO_QUEUE and MP3_QUEUE like the services; with no QUEUE, replays both.
"""

from __future__ import annotations

import argparse

import pika

from mp3mesh.core.amqp.consumer import RETRIES_HEADER
from mp3mesh.core.amqp.topology import connect, dead_letter_queue
from mp3mesh.core.settings import BrokerSettings


def replay(url: str, queue: str, limit: int | None = None) -> int:
    """Replay up to ``limit`` messages of ``queue``'s dead-letter queue; returns how many."""
    connection = connect(url)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        moved = 0
        while limit is None or moved < limit:
            method, properties, body = channel.basic_get(dead_letter_queue(queue))
            if method is None:
                break
            headers = {k: v for k, v in (properties.headers or {}).items() if k != "x-death"}
            headers[RETRIES_HEADER] = 0
            properties.headers = headers
            channel.basic_publish("", queue, body, properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            moved += 1
        return moved
    finally:
        if connection.is_open:
            connection.close()


def main(argv: list[str] | None = None) -> None:
    settings = BrokerSettings()
    parser = argparse.ArgumentParser(prog="python -m mp3mesh.core.replay", description=__doc__)
    parser.add_argument("queues", nargs="*", default=[settings.video_queue, settings.mp3_queue])
    parser.add_argument("--limit", type=int, default=None, help="at most this many per queue")
    args = parser.parse_args(argv)
    for queue in args.queues:
        try:
            moved = replay(settings.amqp_url, queue, args.limit)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise SystemExit(f"{queue}: {exc.reply_text}") from exc
        print(f"{queue}: {moved} message(s) moved back from {dead_letter_queue(queue)}")


if __name__ == "__main__":
    main()
