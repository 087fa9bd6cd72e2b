"""One trace per job, across the real services, as an OTLP receiver sees it.

The services are separate processes, so an in-process span exporter cannot see their
spans. Each one exports as in production instead (TRACES_EXPORTER=otlp: the SDK's
OTLP/HTTP exporter), to a small OTLP/HTTP receiver this module runs: it decodes each
ExportTraceServiceRequest with the OTLP protobuf definitions and keeps the spans. So the
test reads exactly what a collector would get, over a real connection.
"""

from __future__ import annotations

import gzip
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pika
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from devstack import AMQP_URL, ServiceStack, make_video, service_stack, wait_for

pytestmark = pytest.mark.e2e
# The services a job's trace crosses (auth is not one: tokens are checked where they arrive).
MESH = {"shim", "gateway", "converter", "notification"}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str]


class OtlpReceiver(ThreadingHTTPServer):
    """Accepts OTLP/HTTP protobuf exports on /v1/traces and keeps their spans."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ExportHandler)
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def keep(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    with self.lock:
                        self.spans.append(_span(resource["service.name"], span))


def _span(service: str, span: SpanProto) -> Span:
    return Span(
        service=service,
        name=span.name,
        kind=SpanProto.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        attributes={a.key: a.value.string_value for a in span.attributes},
    )


class _ExportHandler(BaseHTTPRequestHandler):
    server: OtlpReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        self.server.keep(ExportTraceServiceRequest.FromString(body))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def traced(
    receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    var = tmp_path_factory.mktemp("traced")
    # OTEL_BSP_SCHEDULE_DELAY: the SDK's batch export interval (5 s by default).
    with service_stack(
        var, TRACES_EXPORTER="otlp", OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="200"
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("traced-media") / "clip.mp4", 4)


def upload(stack: ServiceStack, token: str, video: Path, traceparent: str) -> str:
    """Upload through the shim (multipart) as a caller whose span is ``traceparent``."""
    with video.open("rb") as f:
        reply = httpx.post(
            f"{stack.shim_url}/upload",
            files={"file": (video.name, f, "video/mp4")},
            headers={"authorization": f"Bearer {token}", "traceparent": traceparent},
            timeout=120,
        )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["job"]["id"])


def job_trace(receiver: OtlpReceiver, trace_id: str) -> dict[str, list[Span]]:
    """The trace's spans by service, once the mail's span has arrived."""

    def complete() -> bool:
        names = {(s.service, s.name) for s in receiver.trace(trace_id)}
        return ("notification", "smtp send") in names

    wait_for(complete, "the job's spans, up to the mail", 90)
    time.sleep(1)  # a batch in flight from another process
    spans: dict[str, list[Span]] = {}
    for span in receiver.trace(trace_id):
        spans.setdefault(span.service, []).append(span)
    return spans


def one(spans: list[Span], name: str, kind: str) -> Span:
    found = [s for s in spans if s.name == name and s.kind == kind]
    assert len(found) == 1, (name, kind, [(s.name, s.kind) for s in spans])
    return found[0]


def assert_one_connected_trace(by_service: dict[str, list[Span]], root_parent: str) -> None:
    """Every span's parent is a span of the trace, but for the first one, whose parent is
    the caller's span (``root_parent``)."""
    spans = [span for group in by_service.values() for span in group]
    ids = {span.span_id for span in spans}
    assert len(ids) == len(spans)
    orphans = [s for s in spans if s.parent_id not in ids]
    assert [(s.service, s.parent_id) for s in orphans] == [("shim", root_parent)], orphans


def assert_the_pipeline_links(
    by_service: dict[str, list[Span]], stack: ServiceStack, job_id: str
) -> Span:
    """Upload -> announcement -> conversion -> mail, each the parent of the next (the
    token is checked inside the upload, with no call to auth); returns the gateway's
    Upload span."""
    video_queue, mp3_queue = stack.env["VIDEO_QUEUE"], stack.env["MP3_QUEUE"]
    files = "mp3mesh.files.v1.FileService"
    shim = one(by_service["shim"], f"POST {files}/Upload", "SERVER")
    gateway = by_service["gateway"]
    upload_span = one(gateway, f"{files}/Upload", "SERVER")
    announced = [s for s in gateway if s.name == f"publish {video_queue}"]
    converter = by_service["converter"]
    convert = one(converter, f"process {video_queue}", "CONSUMER")
    ffmpeg = one(converter, "ffmpeg", "INTERNAL")
    finished = one(converter, f"publish {mp3_queue}", "PRODUCER")
    notify = one(by_service["notification"], f"process {mp3_queue}", "CONSUMER")
    mail = one(by_service["notification"], "smtp send", "INTERNAL")

    assert upload_span.parent_id == shim.span_id
    assert not [s for s in gateway if s.kind == "CLIENT"], "no call to auth per request"
    assert announced and all(s.parent_id == upload_span.span_id for s in announced)
    assert convert.parent_id in {s.span_id for s in announced}
    assert ffmpeg.parent_id == finished.parent_id == convert.span_id
    assert notify.parent_id == finished.span_id and mail.parent_id == notify.span_id
    for span in (upload_span, convert, notify):
        assert span.attributes["mp3mesh.job_id"] == job_id, span
    return upload_span


def assert_logged_in_the_trace(
    stack: ServiceStack, by_service: dict[str, list[Span]], trace_id: str
) -> None:
    """The job's log lines in each service carry the trace id and one of its span ids."""
    expected = {
        "gateway": "video uploaded",
        "converter": "job succeeded",
        "notification": "notified",
    }
    for service, event in expected.items():
        lines = [
            e
            for e in stack.log_events(service)
            if e.get("event") == event and e.get("trace_id") == trace_id
        ]
        assert len(lines) == 1, (service, event)
        assert lines[0]["span_id"] in {s.span_id for s in by_service[service]}


def test_one_job_is_one_trace_across_the_services(
    traced: ServiceStack, receiver: OtlpReceiver, video: Path
) -> None:
    client = traced.new_user()
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    job_id = upload(traced, client.token, video, f"00-{trace_id}-{caller_span}-01")
    assert client.wait(job_id).mp3_file_id

    by_service = job_trace(receiver, trace_id)
    assert MESH <= set(by_service), sorted(by_service)
    assert_one_connected_trace(by_service, caller_span)
    assert_the_pipeline_links(by_service, traced, job_id)
    assert_logged_in_the_trace(traced, by_service, trace_id)


def test_a_job_announced_later_by_the_outbox_relay_stays_in_its_trace(
    traced: ServiceStack, receiver: OtlpReceiver, video: Path
) -> None:
    """The broker refuses the announcement at upload time (the video queue is gone: the
    publish comes back unroutable); the gateway's relay publishes it a few seconds later,
    from the trace context stored with the pending announcement."""
    client = traced.new_user()
    traced.stop("converter")
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        connection.channel().queue_delete(traced.env["VIDEO_QUEUE"])
    finally:
        connection.close()
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    job_id = upload(traced, client.token, video, f"00-{trace_id}-{caller_span}-01")
    traced.start("converter")  # declares the queue again; the relay then publishes
    assert client.wait(job_id).mp3_file_id

    by_service = job_trace(receiver, trace_id)
    assert_one_connected_trace(by_service, caller_span)
    upload_span = assert_the_pipeline_links(by_service, traced, job_id)
    attempts = [s for s in by_service["gateway"] if s.name.startswith("publish ")]
    assert len(attempts) >= 2, attempts  # refused at upload, then the relay's
    assert all(s.parent_id == upload_span.span_id for s in attempts)
    relayed = [
        e
        for e in traced.log_events("gateway")
        if e.get("event") == "outbox relay: job announced" and e.get("job_id") == job_id
    ]
    assert relayed and relayed[0]["trace_id"] == trace_id
