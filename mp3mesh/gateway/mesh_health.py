"""MeshHealthService (``GET /health``): each gRPC service's grpc.health.v1 status, asked
on every call, so the answer is never older than the request.

An unhealthy answer carries ``x-http-code: 503`` in its response metadata, grpc-gateway's
way for a handler to set the HTTP status: both REST edges apply it (Envoy with a Lua
filter, the shim in its transcoder), and native gRPC callers still get status OK.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mp3mesh.health.v1 import health_pb2 as mesh_health_pb2
from mp3mesh.health.v1 import health_pb2_grpc as mesh_health_pb2_grpc

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
