"""Service-to-service channels spread calls over every address their target resolves to."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from devstack import free_port
from mp3mesh.core.channels import service_channel


async def _server_knowing(service: str) -> tuple[grpc.aio.Server, int]:
    """A real gRPC server whose health service knows ``service`` and no other."""
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    await servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, port


def test_calls_go_to_every_resolved_server() -> None:
    async def run() -> set[str]:
        (first, p1), (second, p2) = await _server_knowing("a"), await _server_knowing("b")
        answered_by = set()
        try:
            # One target, two addresses: what a headless Service's name resolves to.
            async with service_channel(f"ipv4:127.0.0.1:{p1},127.0.0.1:{p2}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                for _ in range(20):
                    try:
                        await stub.Check(health_pb2.HealthCheckRequest(service="a"), timeout=10)
                        answered_by.add("first")
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() == grpc.StatusCode.NOT_FOUND
                        answered_by.add("second")
        finally:
            await asyncio.gather(first.stop(None), second.stop(None))
        return answered_by

    assert asyncio.run(run()) == {"first", "second"}
