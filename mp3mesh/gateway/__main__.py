"""Run the gateway: ``python -m mp3mesh.gateway``."""

from __future__ import annotations

import asyncio

import structlog
from grpc_health.v1 import health, health_pb2_grpc
from pymongo import AsyncMongoClient

from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.core import logs, metrics, tls, tracing
from mp3mesh.core.amqp.publisher import ThreadedPublisher
from mp3mesh.core.channels import service_channel
from mp3mesh.core.grpc_server import Service, serve
from mp3mesh.core.verification import verifier_from_auth
from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.auth_interceptor import AuthInterceptor
from mp3mesh.gateway.bounds import ClientBounds
from mp3mesh.gateway.download_wire import add_file_service
from mp3mesh.gateway.housekeeping import Housekeeping
from mp3mesh.gateway.job_events import JobEventSubscriber
from mp3mesh.gateway.mesh_health import (
    MESH_HEALTH_SERVICE,
    MeshHealthServicer,
    add_mesh_health_service,
)
from mp3mesh.gateway.relay import OutboxRelay
from mp3mesh.gateway.resumable import ResumableUploads
from mp3mesh.gateway.servicer import FileServicer
from mp3mesh.gateway.settings import GatewaySettings
from mp3mesh.gateway.store import FileStore
from mp3mesh.gateway.webhooks import WebhookServicer
from mp3mesh.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

log = structlog.get_logger()

FILE_SERVICE = files_pb2.DESCRIPTOR.services_by_name["FileService"].full_name
AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
WEBHOOK_SERVICE = webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name


async def run(settings: GatewaySettings) -> None:
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, **settings.mongo_options)
    store = FileStore(mongo[settings.mongo_db], settings.unfinished_upload_age_seconds)
    await store.ensure_indexes()
    webhook_servicer = WebhookServicer(mongo[settings.mongo_db])
    await webhook_servicer.ensure_indexes()
    resumable = ResumableUploads(
        store.db,
        max_bytes=settings.max_upload_bytes,
        ttl=settings.resumable_upload_ttl_seconds,
    )
    await resumable.ensure_indexes()
    # The job.events topic too: CancelJob and RetryJob tell the job's watchers at once.
    publisher = ThreadedPublisher(
        settings.amqp_url,
        [settings.video_queue, settings.mp3_queue],
        topics=[settings.job_events_exchange],
    )
    await asyncio.to_thread(publisher.start)
    relay = OutboxRelay(
        store.jobs,
        publisher,
        video_queue=settings.video_queue,
        mp3_queue=settings.mp3_queue,
        publish_timeout=settings.publish_timeout_seconds,
        interval=settings.relay_interval_seconds,
    )
    housekeeping = Housekeeping(
        store,
        video_queue=settings.video_queue,
        interval=settings.relay_interval_seconds,
        retention=settings.retention_seconds,
        queued_patience=settings.queued_job_patience_seconds,
        resumable=resumable,
    )
    relaying = asyncio.create_task(relay.run())
    sweeping = asyncio.create_task(housekeeping.run())
    event_subscriber = JobEventSubscriber(settings.amqp_url, settings.job_events_exchange)
    await event_subscriber.start()
    auth_channel = service_channel(
        settings.auth_address, tls.channel_credentials(settings), settings.auth_tls_name
    )
    servicer = FileServicer(
        store,
        relay,
        event_subscriber,
        max_upload_bytes=settings.max_upload_bytes,
        watch_poll=settings.watch_poll_seconds,
        retention_seconds=settings.retention_seconds,
        bounds=ClientBounds(
            uploads_per_user=settings.max_uploads_per_user,
            watches_per_user=settings.max_watches_per_user,
            upload_idle_seconds=settings.upload_idle_seconds,
            upload_total_seconds=settings.upload_total_seconds,
            max_empty_upload_messages=settings.max_empty_upload_messages,
        ),
        resumable=resumable,
    )
    verifier, revocations = await verifier_from_auth(settings, auth_channel)
    interceptor = AuthInterceptor(
        verifier, protected_prefix=(f"/{FILE_SERVICE}/", f"/{WEBHOOK_SERVICE}/")
    )

    health_servicer = health.aio.HealthServicer()
    mesh_health = MeshHealthServicer(
        health_servicer,
        (FILE_SERVICE,),
        {AUTH_SERVICE: health_pb2_grpc.HealthStub(auth_channel)},
        timeout=settings.auth_timeout_seconds,
    )

    async def close() -> None:
        relaying.cancel()
        sweeping.cancel()
        await store.finish_cleanups(settings.cleanup_grace_seconds)
        await asyncio.to_thread(revocations.close)
        await auth_channel.close()
        await asyncio.to_thread(publisher.close)
        await asyncio.to_thread(event_subscriber.close)
        await mongo.close()

    await serve(
        [
            Service(FILE_SERVICE, servicer, add_file_service),
            Service(
                WEBHOOK_SERVICE,
                webhook_servicer,
                webhooks_pb2_grpc.add_WebhookServiceServicer_to_server,
            ),
            Service(MESH_HEALTH_SERVICE, mesh_health, add_mesh_health_service),
        ],
        settings.gateway_listen,
        settings,
        interceptors=[interceptor],
        on_stop=close,
        health_servicer=health_servicer,
    )


def main() -> None:
    settings = GatewaySettings()
    logs.configure("gateway", settings.log_level, settings.log_format)
    metrics.serve(settings)
    tracing.configure("gateway", settings)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
