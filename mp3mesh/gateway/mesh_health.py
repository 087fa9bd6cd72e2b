"""MeshHealthService (``GET /health``): each gRPC service's grpc.health.v1 status, asked
on every call, so the answer is never older than the request.

An unhealthy answer carries ``x-http-code: 503`` in its response metadata, grpc-gateway's
way for a handler to set the HTTP status: both REST edges apply it (Envoy with a Lua
filter, the shim in its transcoder), and native gRPC callers still get status OK.

The answer is serialized deterministically (:func:`add_mesh_health_service`): its map of
services goes on the wire sorted by name. Otherwise upb writes map entries in hash order,
seeded per process, and Envoy's transcoder prints them in the order they come, so the
two edges' bytes would differ from one gateway start to the next (the shim sorts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mp3mesh.health.v1 import health_pb2 as mesh_health_pb2
from mp3mesh.health.v1 import health_pb2_grpc as mesh_health_pb2_grpc

MESH_HEALTH_SERVICE = mesh_health_pb2.DESCRIPTOR.services_by_name["MeshHealthService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
HTTP_CODE_KEY = "x-http-code"
HEALTHY, UNHEALTHY = "healthy", "unhealthy"


class MeshHealthServicer(mesh_health_pb2_grpc.MeshHealthServiceServicer):
    def __init__(
        self,
        local: health.aio.HealthServicer,
        local_services: tuple[str, ...],
        peers: Mapping[str, health_pb2_grpc.HealthStub],
        timeout: float,
    ) -> None:
        """``local``: this process's health servicer, for ``local_services``; ``peers``:
        a Health stub per service served elsewhere, asked with ``timeout``."""
        self.local = local
        self.local_services = local_services
        self.peers = peers
        self.timeout = timeout

    async def GetMeshHealth(
        self,
        request: mesh_health_pb2.GetMeshHealthRequest,
        context: grpc.aio.ServicerContext,
    ) -> mesh_health_pb2.GetMeshHealthResponse:
        names = [*self.local_services, *self.peers]
        statuses = await asyncio.gather(
            *(self._local_status(name, context) for name in self.local_services),
            *(self._peer_status(stub, name) for name, stub in self.peers.items()),
        )
        serving = all(status == "SERVING" for status in statuses)
        if not serving:
            await context.send_initial_metadata(((HTTP_CODE_KEY, "503"),))
        return mesh_health_pb2.GetMeshHealthResponse(
            status=HEALTHY if serving else UNHEALTHY,
            services=dict(zip(names, statuses, strict=True)),
        )

    async def _local_status(self, service: str, context: grpc.aio.ServicerContext) -> str:
        reply = await self.local.Check(health_pb2.HealthCheckRequest(service=service), context)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def _peer_status(self, stub: health_pb2_grpc.HealthStub, service: str) -> str:
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def add_mesh_health_service(servicer: MeshHealthServicer, server: grpc.aio.Server) -> None:
    """``add_MeshHealthServiceServicer_to_server``, with the answer serialized
    deterministically (map entries sorted by key)."""
    handlers = {
        "GetMeshHealth": grpc.unary_unary_rpc_method_handler(
            servicer.GetMeshHealth,
            request_deserializer=mesh_health_pb2.GetMeshHealthRequest.FromString,
            response_serializer=_sorted_wire,
        )
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(MESH_HEALTH_SERVICE, handlers),)
    )
    server.add_registered_method_handlers(MESH_HEALTH_SERVICE, handlers)


def _sorted_wire(message: mesh_health_pb2.GetMeshHealthResponse) -> bytes:
    return message.SerializeToString(deterministic=True)
