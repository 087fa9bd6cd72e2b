"""RabbitMQ on pika, in three parts: :mod:`~mp3mesh.core.amqp.topology` (connections, queues
with their dead-letter and retry queues, topic exchanges), :mod:`~mp3mesh.core.amqp.publisher`
(confirmed, typed protobuf messages; a publisher thread for asyncio code) and
:mod:`~mp3mesh.core.amqp.consumer` (acks, retries, dead letters, a graceful stop).

Each caller names the queues it uses; nothing here reads a service's settings for queue
names, and nothing here ends the process.
"""

from mp3mesh.core.amqp.consumer import (
    EXIT_HANDLER_STUCK,
    RETRIES_HEADER,
    Consumer,
    GiveUp,
    Handler,
    HandlerStuck,
    Outcome,
    Requeue,
    UndecodableMessage,
    consume_until_signalled,
    decode,
    retries_of,
    run_side_by_side,
)
from mp3mesh.core.amqp.publisher import (
    PROTOBUF_CONTENT_TYPE,
    ThreadedPublisher,
    publish,
    publish_event,
)
from mp3mesh.core.amqp.topology import (
    connect,
    dead_letter_queue,
    declare_queues,
    declare_topic,
    retry_queue,
)

__all__ = [
    "EXIT_HANDLER_STUCK",
    "PROTOBUF_CONTENT_TYPE",
    "RETRIES_HEADER",
    "Consumer",
    "GiveUp",
    "Handler",
    "HandlerStuck",
    "Outcome",
    "Requeue",
    "ThreadedPublisher",
    "UndecodableMessage",
    "connect",
    "consume_until_signalled",
    "dead_letter_queue",
    "declare_queues",
    "declare_topic",
    "decode",
    "publish",
    "publish_event",
    "retries_of",
    "retry_queue",
    "run_side_by_side",
]
