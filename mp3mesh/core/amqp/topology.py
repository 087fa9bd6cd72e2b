"""What exists on the broker and how to reach it: connections, durable queues with their
dead-letter and retry queues, topic exchanges. Whoever starts first declares; every
declaration here is idempotent, so consumers and publishers each declare what they use.
"""

from __future__ import annotations

from collections.abc import Sequence

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dead"


def retry_queue(queue: str, delay: float) -> str:
    """Where a message waits ``delay`` seconds before going back to ``queue``. The delay is
    in the name: a queue's TTL cannot change, so other delays make other queues."""
    return f"{queue}.retry.{delay:g}s"


@retry(
    retry=retry_if_exception_type(pika.exceptions.AMQPConnectionError),
    wait=wait_exponential(multiplier=0.2, max=5),
    stop=stop_after_delay(60),
    reraise=True,
)
def connect(url: str) -> pika.BlockingConnection:
    """Connect, retrying while the broker is starting (up to a minute)."""
    return pika.BlockingConnection(pika.URLParameters(url))


def declare_queues(
    channel: BlockingChannel, queues: Sequence[str], retry_delays: Sequence[float] = ()
) -> None:
    """Declare each queue durable, with rejected messages routed to ``<queue>.dead``, and
    its retry queues: messages expire there after their delay and dead-letter back."""
    for queue in queues:
        channel.queue_declare(dead_letter_queue(queue), durable=True)
        channel.queue_declare(
            queue,
            durable=True,
            arguments={
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead_letter_queue(queue),
            },
        )
        for delay in retry_delays:
            channel.queue_declare(
                retry_queue(queue, delay),
                durable=True,
                arguments={
                    "x-message-ttl": round(delay * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue,
                },
            )


def declare_topic(channel: BlockingChannel, exchange: str) -> None:
    """A durable topic exchange: publishing to it works before any subscriber exists."""
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
