"""Prometheus metrics: every process of the real stack serves them, and one real job moves
the counts it should (before/after deltas, not only presence)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from devstack import SERVICE_SETTINGS, TEST_RETRY_DELAYS, Stack, wait_for
from mp3mesh.core.amqp.topology import retry_queue
from mp3mesh.core.metrics import RpcMetricsInterceptor
from mp3mesh.files.v1 import files_pb2

# A sample: its name and its labels, sorted.
Key = tuple[str, tuple[tuple[str, str], ...]]
Samples = dict[Key, float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Mapping[Key, float], name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        v
        for (n, sample_labels), v in samples.items()
        if n == name and labels.items() <= dict(sample_labels).items()
    )


def endpoints(stack: Stack) -> dict[str, str]:
    """Every metrics endpoint of the stack: one per service, and Envoy's admin."""
    urls = {
        service: f"http://127.0.0.1:{stack.env[f'{service.upper()}_METRICS_PORT']}/metrics"
        for service in SERVICE_SETTINGS
    }
    urls["envoy"] = f"http://127.0.0.1:{stack.env['ENVOY_ADMIN_PORT']}/stats/prometheus"
    return urls


def scrape(stack: Stack) -> dict[str, Samples]:
    scraped = {}
    for name, url in endpoints(stack).items():
        reply = httpx.get(url, timeout=10)
        assert reply.status_code == 200, (name, reply.status_code)
        assert reply.headers["content-type"].startswith("text/plain"), name
        scraped[name] = parse(reply.text)
    return scraped


# What the pipeline's consumers count: still moving while jobs of earlier tests finish.
PIPELINE_COUNTS = ("mp3mesh_queue_messages_total", "mp3mesh_jobs_total", "mp3mesh_mails_total")


def idle_scrape(stack: Stack) -> dict[str, Samples]:
    """A scrape once no job of an earlier test is still moving: the pipeline's queues
    (retry queues included) are empty and its counts stay put for 3 s."""
    queues = [
        name
        for queue in (stack.env["VIDEO_QUEUE"], stack.env["MP3_QUEUE"])
        for name in (queue, *(retry_queue(queue, delay) for delay in TEST_RETRY_DELAYS))
    ]

    def pipeline(scraped: dict[str, Samples]) -> list[float]:
        return [
            value(scraped[service], name)
            for service in ("converter", "notification")
            for name in PIPELINE_COUNTS
        ]

    deadline = time.monotonic() + 120
    while True:
        first = scrape(stack)
        time.sleep(3)
        second = scrape(stack)
        waiting = sum(stack.queue_depth(queue)[0] for queue in queues)
        if waiting == 0 and pipeline(first) == pipeline(second):
            return second
        assert time.monotonic() < deadline, "the stack did not come to rest"


@pytest.mark.e2e
def test_one_job_moves_the_counts_of_every_service(
    stack: Stack, media: Path, tmp_path: Path
) -> None:
    before = idle_scrape(stack)
    client, _ = stack.new_user()
    auth = {"authorization": f"Bearer {client.token}"}
    video = media / "clip.mp4"

    # Upload through Envoy (raw body), follow the job, download through the shim.
    uploaded = httpx.post(
        f"{stack.envoy_url}/v1/videos",
        params={"metadata.filename": "clip.mp4"},
        content=video.read_bytes(),
        headers=auth,
        timeout=120,
    )
    assert uploaded.status_code == 200, uploaded.text
    job = client.wait(uploaded.json()["job"]["id"])
    assert job.mp3_file_id, job
    stack.wait_for_mail(job.id)
    mp3 = httpx.get(
        f"{stack.shim_url}/download", params={"fid": job.mp3_file_id}, headers=auth, timeout=60
    )
    assert mp3.status_code == 200 and mp3.content[:3] in (b"ID3", b"\xff\xfb"), mp3.status_code
    refused = httpx.get(f"{stack.shim_url}/status", params={"fid": job.id}, timeout=30)
    assert refused.status_code == 401  # by the shim itself: the gateway never sees it
    with pytest.raises(grpc.RpcError) as refused_at_the_gateway:
        client.files.GetJob(files_pb2.GetJobRequest(job_id=job.id), timeout=30)
    assert refused_at_the_gateway.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]

    # Counters are bumped just after the work they count: wait for the last ones.
    def settled() -> bool:
        now = scrape(stack)
        return value(now["notification"], "mp3mesh_mails_total", outcome="sent") > value(
            before["notification"], "mp3mesh_mails_total", outcome="sent"
        ) and value(now["converter"], "mp3mesh_queue_messages_total", outcome="ack") > value(
            before["converter"], "mp3mesh_queue_messages_total", outcome="ack"
        )

    wait_for(settled, "the mail and the conversion counted", 60)
    after = scrape(stack)

    def delta(service: str, name: str, **labels: str) -> float:
        return value(after[service], name, **labels) - value(before[service], name, **labels)

    upload, download = {"grpc_method": "Upload"}, {"grpc_method": "Download"}
    # gateway: the RPCs by method and code, their latency, the bytes, the job's announcement
    assert delta("gateway", "grpc_server_handled_total", **upload, grpc_code="OK") == 1
    assert delta("gateway", "grpc_server_handling_seconds_count", **upload) == 1
    assert delta("gateway", "grpc_server_handled_total", **download, grpc_code="OK") == 1
    assert (
        delta(
            "gateway",
            "grpc_server_handled_total",
            grpc_method="GetJob",
            grpc_code="UNAUTHENTICATED",
        )
        == 1
    )
    assert delta("gateway", "mp3mesh_upload_bytes_total") == video.stat().st_size
    assert delta("gateway", "mp3mesh_download_bytes_total") == len(mp3.content)
    assert delta("gateway", "mp3mesh_uploads_total", outcome="accepted") == 1
    assert delta("gateway", "mp3mesh_job_announcements_total", outcome="confirmed") == 1
    # auth: the user's Register and Login; the gateway checks tokens itself, never asking
    assert delta("auth", "grpc_server_handled_total", grpc_method="Register", grpc_code="OK") == 1
    assert delta("auth", "grpc_server_handled_total", grpc_method="Login", grpc_code="OK") == 1
    assert (
        delta("auth", "grpc_server_handled_total", grpc_method="ValidateToken", grpc_code="OK") == 0
    )
    # converter: the job's outcome, its conversion time, the queue message acked
    assert delta("converter", "mp3mesh_jobs_total", outcome="succeeded") == 1
    assert delta("converter", "mp3mesh_conversion_seconds_count") == 1
    assert delta("converter", "mp3mesh_conversion_seconds_sum") > 0
    video_queue = {"queue": stack.env["VIDEO_QUEUE"]}
    assert delta("converter", "mp3mesh_queue_messages_total", **video_queue, outcome="ack") == 1
    # notification: the mail, the queue message acked
    assert delta("notification", "mp3mesh_mails_total", outcome="sent") == 1
    mp3_queue = {"queue": stack.env["MP3_QUEUE"]}
    assert delta("notification", "mp3mesh_queue_messages_total", **mp3_queue, outcome="ack") == 1
    # shim: the download and the refused status request, by handler and HTTP status
    files = "mp3mesh.files.v1.FileService"
    assert (
        delta("shim", "mp3mesh_http_requests_total", handler=f"{files}/Download", code="200") == 1
    )
    assert delta("shim", "mp3mesh_http_requests_total", handler=f"{files}/GetJob", code="401") == 1
    assert delta("shim", "mp3mesh_http_request_seconds_count", handler=f"{files}/Download") == 1
    # Envoy: the upload it transcoded, counted by its gRPC stats filter and its cluster.
    # (Envoy's tag extraction takes the dotted service name apart: mp3mesh.files.v1.)
    grpc_upload = "envoy_cluster_grpc_v1_FileService_Upload_success_total"
    assert delta("envoy", grpc_upload, envoy_cluster_name="gateway") == 1
    assert delta("envoy", "envoy_cluster_upstream_rq_total", envoy_cluster_name="gateway") >= 1


@pytest.mark.e2e
def test_metrics_endpoints_serve_only_metrics(stack: Stack) -> None:
    for name, url in endpoints(stack).items():
        if name != "envoy":
            assert "process_resident_memory_bytes" in httpx.get(url, timeout=10).text, name
    admin_only = f"http://127.0.0.1:{stack.env['ENVOY_ADMIN_PORT']}"
    assert httpx.get(f"{admin_only}/stats/prometheus", timeout=10).status_code == 200


def test_the_rpc_interceptor_counts_every_kind_of_call_by_code() -> None:
    """A real grpc.aio server (grpc_health's servicer): a unary call answered OK and one
    answered NOT_FOUND, and a server stream whose handler writes with context.write(),
    cancelled (the server notices when it stops)."""

    def handled(method: str, code: str) -> float:
        labels = {
            "grpc_type": "server_stream" if method == "Watch" else "unary",
            "grpc_service": "grpc.health.v1.Health",
            "grpc_method": method,
            "grpc_code": code,
        }
        return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0

    async def calls() -> None:
        server = grpc.aio.server(interceptors=[RpcMetricsInterceptor()])
        servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await servicer.set("known", health_pb2.HealthCheckResponse.SERVING)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                await stub.Check(health_pb2.HealthCheckRequest(service="known"))
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Check(health_pb2.HealthCheckRequest(service="unknown"))
                assert refused.value.code() == grpc.StatusCode.NOT_FOUND
                watch = stub.Watch(health_pb2.HealthCheckRequest(service="known"))
                first = await watch.read()
                assert first.status == health_pb2.HealthCheckResponse.SERVING
                watch.cancel()
        finally:
            await server.stop(None)

    ok, not_found = handled("Check", "OK"), handled("Check", "NOT_FOUND")
    watch_cancelled_before = handled("Watch", "CANCELLED")
    asyncio.run(calls())
    assert handled("Check", "OK") == ok + 1
    assert handled("Check", "NOT_FOUND") == not_found + 1
    assert handled("Watch", "CANCELLED") == watch_cancelled_before + 1
