"""The shim's answer when a backend fails: its message, never the channel's host names."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack import free_port
from mp3mesh.core.channels import service_channel
from mp3mesh.shim.errors import BACKEND_UNREACHABLE, backend_message


async def _check(address: str) -> grpc.aio.AioRpcError:
    async with service_channel(address) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            return exc
    raise AssertionError("the call succeeded")


def test_an_unreachable_backend_is_named_nowhere() -> None:
    port = free_port()  # nothing listens there
    refused = asyncio.run(_check(f"127.0.0.1:{port}"))
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert str(port) in (refused.details() or "")  # what gRPC itself would have said
    assert backend_message(refused) == BACKEND_UNREACHABLE


def test_a_backends_own_message_passes_through() -> None:
    async def run() -> grpc.aio.AioRpcError:
        server = grpc.aio.server()

        class Down(health_pb2_grpc.HealthServicer):
            async def Check(self, request: object, context: grpc.aio.ServicerContext) -> None:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "a data store is unavailable")

        health_pb2_grpc.add_HealthServicer_to_server(Down(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            return await _check(f"127.0.0.1:{port}")
        finally:
            await server.stop(None)

    assert backend_message(asyncio.run(run())) == "a data store is unavailable"
