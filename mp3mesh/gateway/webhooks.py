"""WebhookService: a user's webhook endpoints, kept in the ``webhooks`` collection beside
the jobs (mp3mesh/core/webhooks.py has their shape). Delivery is notification's
(mp3mesh/notification/webhooks.py); this only registers, lists and deletes."""

from __future__ import annotations

from typing import Any

import grpc
import pymongo
import structlog
from bson import ObjectId
from bson.errors import InvalidId
from pymongo.asynchronous.database import AsyncDatabase

from mp3mesh.core import jobs, webhooks
from mp3mesh.core.grpc_server import abort
from mp3mesh.core.limits import MAX_ID_LENGTH, too_long
from mp3mesh.gateway.auth_interceptor import current_caller
from mp3mesh.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

log = structlog.get_logger()


class WebhookServicer(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(
        self, db: AsyncDatabase[Any], max_per_user: int = webhooks.MAX_WEBHOOKS_PER_USER
    ) -> None:
        self.webhooks = db[webhooks.COLLECTION]
        self.max_per_user = max_per_user

    async def ensure_indexes(self) -> None:
        await self.webhooks.create_index([("owner_id", pymongo.ASCENDING)])

    async def CreateWebhook(
        self, request: webhooks_pb2.CreateWebhookRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.CreateWebhookResponse:
        caller = current_caller()
        try:
            url = webhooks.check_url(request.url)
            events = webhooks.check_events(list(request.events))
        except webhooks.InvalidWebhook as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if await self.webhooks.count_documents({"owner_id": caller.user_id}) >= self.max_per_user:
            await abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"at most {self.max_per_user} webhooks per user; delete one first",
            )
        doc = {
            "_id": ObjectId(),
            "owner_id": caller.user_id,
            "url": url,
            "events": events,
            "secret": webhooks.new_secret(),
            "disabled": False,
            "disabled_reason": "",
            "created": jobs.now(),
        }
        await self.webhooks.insert_one(doc)
        log.info("webhook registered", webhook_id=str(doc["_id"]), events=events)
        return webhooks_pb2.CreateWebhookResponse(webhook=webhooks.to_proto(doc, with_secret=True))

    async def ListWebhooks(
        self, request: webhooks_pb2.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListWebhooksResponse:
        cursor = self.webhooks.find({"owner_id": current_caller().user_id}).sort("_id", 1)
        docs = await cursor.to_list(self.max_per_user)
        return webhooks_pb2.ListWebhooksResponse(webhooks=[webhooks.to_proto(d) for d in docs])

    async def DeleteWebhook(
        self, request: webhooks_pb2.DeleteWebhookRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.DeleteWebhookResponse:
        value = request.webhook_id
        if not value:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "webhook id is required")
        if message := too_long("webhook id", value, MAX_ID_LENGTH):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{message}: not a valid id")
        try:
            oid = ObjectId(value)
        except (InvalidId, TypeError):
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"webhook id {value!r} is not a valid id: expected 24 hexadecimal characters",
            )
        result = await self.webhooks.delete_one({"_id": oid, "owner_id": current_caller().user_id})
        if result.deleted_count == 0:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no webhook {value}")
        log.info("webhook deleted", webhook_id=value)
        return webhooks_pb2.DeleteWebhookResponse()
