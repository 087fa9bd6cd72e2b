"""Unit tests of the REST shim's mapping: path templates, routing, HTTP to protobuf fields,
JSON printing, and the streaming body readers. Real descriptors throughout: the mesh's
own services, and a small test service built as a FileDescriptorProto for the field
kinds and rule shapes the mesh's protos do not use (repeated, enums, custom verbs...)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import grpc
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor

from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.core.limits import UPLOAD_MESSAGE_BYTES
from mp3mesh.files.v1 import files_pb2
from mp3mesh.shim.errors import HttpError
from mp3mesh.shim.jsonpb import json_bytes
from mp3mesh.shim.multipart import apply_file_part, open_file_part, upload_chunks, upload_messages
from mp3mesh.shim.request import build_request, message_class
from mp3mesh.shim.rules import (
    FieldPathError,
    MethodNotAllowed,
    NoRoute,
    PathTemplate,
    Route,
    Router,
    TemplateError,
    routes_for,
)

AUTH = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
FILES = files_pb2.DESCRIPTOR.services_by_name["FileService"]
MESH_ROUTER = Router([*routes_for(AUTH), *routes_for(FILES)])

# -- a test service with what the mesh's protos lack ---------------------------------

_F = descriptor_pb2.FieldDescriptorProto


def _field(
    name: str, number: int, kind: int, type_name: str | None = None, repeated: bool = False
) -> descriptor_pb2.FieldDescriptorProto:
    json_name = name.split("_")[0] + "".join(part.title() for part in name.split("_")[1:])
    return _F(
        name=name,
        number=number,
        type=kind,  # type: ignore[arg-type]
        type_name=type_name,
        label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
        json_name=json_name,
    )


def _library_file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="shimtest/v1/library.proto",
        package="shimtest.v1",
        syntax="proto3",
        dependency=["google/api/annotations.proto", "google/protobuf/timestamp.proto"],
    )
    proto.enum_type.add(name="Genre").value.extend(
        [
            descriptor_pb2.EnumValueDescriptorProto(name="GENRE_UNSPECIFIED", number=0),
            descriptor_pb2.EnumValueDescriptorProto(name="GENRE_POETRY", number=1),
        ]
    )
    author = proto.message_type.add(name="Author")
    author.field.append(_field("display_name", 1, _F.TYPE_STRING))
    book = proto.message_type.add(name="Book")
    book.field.extend(
        [
            _field("name", 1, _F.TYPE_STRING),
            _field("tags", 2, _F.TYPE_STRING, repeated=True),
            _field("genre", 3, _F.TYPE_ENUM, ".shimtest.v1.Genre"),
            _field("page_count", 4, _F.TYPE_INT64),
            _field("in_print", 5, _F.TYPE_BOOL),
            _field("author", 6, _F.TYPE_MESSAGE, ".shimtest.v1.Author"),
            _field("publish_time", 7, _F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
            _field("rating", 8, _F.TYPE_DOUBLE),
        ]
    )
    update = proto.message_type.add(name="UpdateBookRequest")
    update.field.extend(
        [
            _field("book", 1, _F.TYPE_MESSAGE, ".shimtest.v1.Book"),
            _field("etag", 2, _F.TYPE_STRING),
        ]
    )
    service = proto.service.add(name="Library")
    rules = {
        "GetBook": (
            "Book",
            http_pb2.HttpRule(
                get="/v1/{name=shelves/*/books/*}",
                additional_bindings=[http_pb2.HttpRule(get="/v1/books/{author.display_name}")],
            ),
        ),
        "ListBooks": ("Book", http_pb2.HttpRule(get="/v1/books")),
        "UpdateBook": (
            "UpdateBookRequest",
            http_pb2.HttpRule(patch="/v1/{book.name=shelves/*/books/*}", body="book"),
        ),
        "PurgeBooks": (
            "Book",
            http_pb2.HttpRule(custom=http_pb2.CustomHttpPattern(kind="PURGE", path="/v1/books")),
        ),
        "PublishBook": ("Book", http_pb2.HttpRule(post="/v1/{name=shelves/*/books/*}:publish")),
    }
    for name, (request, rule) in rules.items():
        method = service.method.add(
            name=name, input_type=f".shimtest.v1.{request}", output_type=".shimtest.v1.Book"
        )
        method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    return proto


descriptor_pool.Default().Add(_library_file())
LIBRARY = descriptor_pool.Default().FindServiceByName("shimtest.v1.Library")
LIBRARY_ROUTES = list(routes_for(LIBRARY))
LIBRARY_ROUTER = Router(LIBRARY_ROUTES)


def _route(router: Router, http_method: str, path: str) -> tuple[Route, dict[str, str]]:
    match = router.match(http_method, path)
    return match.route, match.path_params


# -- path templates ------------------------------------------------------------------


def test_template_with_variable_and_custom_verb() -> None:
    template = PathTemplate.parse("/v1/jobs/{job_id}:watch")
    assert template.verb == "watch"
    assert [v.field_path for v in template.variables] == ["job_id"]
    assert template.match("/v1/jobs/abc:watch") == {"job_id": "abc"}
    assert template.match("/v1/jobs/abc") is None
    assert template.match("/v1/jobs/a/b:watch") is None  # one segment only


def test_single_segment_variable_decodes_everything() -> None:
    template = PathTemplate.parse("/v1/jobs/{job_id}")
    assert template.match("/v1/jobs/a%2Fb%20c") == {"job_id": "a/b c"}


def test_multi_segment_variable_keeps_encoded_slashes() -> None:
    template = PathTemplate.parse("/v1/{name=shelves/*/books/**}")
    assert template.variables[0].multi_segment
    assert template.match("/v1/shelves/s1/books/b%2F1/x%20y") == {
        "name": "shelves/s1/books/b%2F1/x y"
    }
    assert template.match("/v1/shelves/s1/chapters/c1") is None


def test_nested_field_path_and_wildcards() -> None:
    template = PathTemplate.parse("/v1/{book.name}/*/x")
    assert template.match("/v1/b1/anything/x") == {"book.name": "b1"}
    assert template.literal_count == 2


def test_openapi_path_drops_variable_patterns() -> None:
    template = PathTemplate.parse("/v1/{name=shelves/*/books/*}:publish")
    assert template.openapi_path() == "/v1/{name}:publish"


@pytest.mark.parametrize(
    "text",
    ["v1/jobs", "/v1/{job_id", "/v1/**/x", "/v1/{a={b}}", "/v1//x", "/v1/{1x}", "/v1/x:", "/v1}"],
)
def test_malformed_templates_are_refused(text: str) -> None:
    with pytest.raises(TemplateError):
        PathTemplate.parse(text)


# -- routes from the mesh's annotations ---------------------------------------------


def _table(services: Iterable[ServiceDescriptor]) -> set[tuple[str, str, str, str]]:
    return {
        (r.http_method, r.template.text, r.method.name, r.body)
        for service in services
        for r in routes_for(service)
    }


def test_routes_come_from_the_annotations_with_additional_bindings() -> None:
    assert _table([AUTH, FILES]) == {
        ("POST", "/v1/users", "Register", "*"),
        ("POST", "/register", "Register", "*"),
        ("DELETE", "/v1/sessions/current", "Logout", ""),
        ("POST", "/logout", "Logout", ""),
        ("POST", "/v1/sessions", "Login", "*"),
        ("POST", "/login", "Login", "*"),
        ("GET", "/v1/users/me", "WhoAmI", ""),
        ("GET", "/.well-known/jwks.json", "GetJwks", ""),
        ("POST", "/v1/users/me:changePassword", "ChangePassword", "*"),
        ("POST", "/v1/users/me:delete", "DeleteAccount", "*"),
        ("POST", "/v1/videos", "Upload", "http_body"),
        ("POST", "/upload", "Upload", "http_body"),
        ("GET", "/v1/mp3s/{file_id}", "Download", ""),
        ("GET", "/download", "Download", ""),
        ("GET", "/v1/jobs/{job_id}", "GetJob", ""),
        ("GET", "/status", "GetJob", ""),
        ("GET", "/v1/jobs/{job_id}:watch", "WatchJob", ""),
        ("GET", "/v1/jobs", "ListJobs", ""),
        ("GET", "/v1/presets", "ListPresets", ""),
        ("POST", "/v1/jobs/{job_id}:cancel", "CancelJob", ""),
        ("DELETE", "/v1/jobs/{job_id}", "DeleteJob", ""),
        ("POST", "/v1/jobs/{job_id}:retry", "RetryJob", ""),
    }  # ValidateToken has no rule: not on REST


def test_route_kinds() -> None:
    upload, _ = _route(MESH_ROUTER, "POST", "/upload")
    download, params = _route(MESH_ROUTER, "GET", "/v1/mp3s/abc")
    assert upload.streams_request_body and not upload.returns_http_body
    assert upload.grpc_path == "/mp3mesh.files.v1.FileService/Upload"
    assert download.returns_http_body and params == {"file_id": "abc"}


def test_verb_template_wins_over_plain_variable() -> None:
    watch, params = _route(MESH_ROUTER, "GET", "/v1/jobs/abc:watch")
    assert (watch.method.name, params) == ("WatchJob", {"job_id": "abc"})
    get, params = _route(MESH_ROUTER, "GET", "/v1/jobs/abc")
    assert (get.method.name, params) == ("GetJob", {"job_id": "abc"})


def test_unknown_path_and_wrong_method() -> None:
    with pytest.raises(NoRoute):
        MESH_ROUTER.match("GET", "/v1/nothing")
    with pytest.raises(MethodNotAllowed) as refused:
        MESH_ROUTER.match("DELETE", "/v1/jobs")
    assert refused.value.allowed == ("GET",)


def test_custom_method_body_field_and_additional_binding() -> None:
    purge, _ = _route(LIBRARY_ROUTER, "PURGE", "/v1/books")
    assert purge.method.name == "PurgeBooks"
    update, params = _route(LIBRARY_ROUTER, "PATCH", "/v1/shelves/s/books/b")
    assert (update.method.name, update.body, params) == (
        "UpdateBook",
        "book",
        {"book.name": "shelves/s/books/b"},
    )
    by_author, params = _route(LIBRARY_ROUTER, "GET", "/v1/books/Ann%20Smith")
    assert (by_author.method.name, params) == ("GetBook", {"author.display_name": "Ann Smith"})
    publish, _ = _route(LIBRARY_ROUTER, "POST", "/v1/shelves/s/books/b:publish")
    assert publish.method.name == "PublishBook"


def _service_with(rule: http_pb2.HttpRule, client_streaming: bool = False) -> ServiceDescriptor:
    """A one-method service in a pool of its own, to see a bad rule refused."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in (descriptor_pb2, http_pb2, annotations_pb2):
        pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="bad.proto",
        package="bad",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    proto.message_type.add(name="M").field.append(_field("id", 1, _F.TYPE_STRING))
    method = proto.service.add(name="S").method.add(
        name="Do", input_type=".bad.M", output_type=".bad.M", client_streaming=client_streaming
    )
    method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    pool.Add(proto)
    return pool.FindServiceByName("bad.S")


@pytest.mark.parametrize(
    ("rule", "client_streaming", "error"),
    [
        (http_pb2.HttpRule(get="/v1/{nope}"), False, FieldPathError),
        (http_pb2.HttpRule(post="/v1/m", body="nope"), False, FieldPathError),
        (http_pb2.HttpRule(get="/v1/m", response_body="id"), False, ValueError),
        (http_pb2.HttpRule(post="/v1/m", body="*"), True, ValueError),  # stream, not HttpBody
        (http_pb2.HttpRule(get="v1/m"), False, TemplateError),
    ],
)
def test_bad_rules_fail_at_start_up(
    rule: http_pb2.HttpRule, client_streaming: bool, error: type[Exception]
) -> None:
    with pytest.raises(error):
        list(routes_for(_service_with(rule, client_streaming)))


# -- HTTP into request fields ---------------------------------------------------------


def _request(router: Router, method: str, path: str, query=(), body: bytes = b""):  # type: ignore[no-untyped-def]
    route, params = _route(router, method, path)
    return build_request(route, params, list(query), body)


def test_query_parameters_by_json_or_proto_name() -> None:
    for name in ("pageSize", "page_size"):
        request = _request(MESH_ROUTER, "GET", "/v1/jobs", [(name, "5"), ("pageToken", "t")])
        assert (request.page_size, request.page_token) == (5, "t")


def test_a_repeated_singular_parameter_takes_the_last_value() -> None:
    request = _request(MESH_ROUTER, "GET", "/v1/jobs", [("pageSize", "1"), ("page_size", "2")])
    assert request.page_size == 2


def test_nested_and_int64_query_parameters() -> None:
    request = _request(
        MESH_ROUTER,
        "POST",
        "/v1/videos",
        [("metadata.filename", "v.mp4"), ("metadata.sizeBytes", "12345678901234")],
    )
    assert request.metadata.filename == "v.mp4"
    assert request.metadata.size_bytes == 12345678901234


def test_repeated_enum_bool_timestamp_and_nested_parameters() -> None:
    book = _request(
        LIBRARY_ROUTER,
        "GET",
        "/v1/books",
        [
            ("tags", "a"),
            ("tags", "b"),
            ("genre", "GENRE_POETRY"),
            ("pageCount", "9007199254740993"),
            ("inPrint", "true"),
            ("author.displayName", "Ann"),
            ("publishTime", "2024-05-01T10:00:00Z"),
            ("rating", "4.5"),
        ],
    )
    assert list(book.tags) == ["a", "b"]
    assert book.genre == 1
    assert book.page_count == 9007199254740993
    assert book.in_print is True
    assert book.author.display_name == "Ann"
    assert book.publish_time.seconds == 1714557600
    assert book.rating == 4.5
    assert _request(LIBRARY_ROUTER, "GET", "/v1/books", [("genre", "1")]).genre == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            [("foo", "1")],
            'Could not find field "foo" in the type "mp3mesh.files.v1.ListJobsRequest".',
        ),
        ([("pageSize", "abc")], 'page_size: invalid value "abc" for type TYPE_INT32'),
        (
            [("pageSize.x", "1")],
            'Encountered a non-leaf field "page_size" that is not a message while parsing'
            " a field path",
        ),
    ],
)
def test_bad_query_parameters_are_400_in_envoys_words(
    query: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(HttpError) as refused:
        _request(MESH_ROUTER, "GET", "/v1/jobs", query)
    assert (refused.value.code, refused.value.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        message,
    )


def test_unknown_nested_parameter_names_the_inner_type() -> None:
    with pytest.raises(HttpError, match=r'"foo" in the type "mp3mesh\.files\.v1\.UploadMetadata"'):
        _request(MESH_ROUTER, "POST", "/v1/videos", [("metadata.foo", "1")])


def test_the_path_wins_over_the_query() -> None:
    request = _request(MESH_ROUTER, "GET", "/v1/jobs/fromPath", [("job_id", "fromQuery")])
    assert request.job_id == "fromPath"


def test_seed_query_parameter_fills_the_same_request() -> None:
    assert _request(MESH_ROUTER, "GET", "/status", [("fid", "abc")]).fid == "abc"


def test_whole_body_ignores_unknown_json_fields_like_envoy() -> None:
    request = _request(
        MESH_ROUTER, "POST", "/v1/users", body=b'{"email":"a@b.c","password":"p","bogus":1}'
    )
    assert (request.email, request.password) == ("a@b.c", "p")


def test_an_empty_body_is_an_empty_message() -> None:
    assert _request(MESH_ROUTER, "POST", "/login", body=b"").ByteSize() == 0


def test_invalid_json_body_is_400() -> None:
    with pytest.raises(HttpError) as refused:
        _request(MESH_ROUTER, "POST", "/v1/users", body=b'{"email":')
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_body_field_mapping_with_path_inside_it() -> None:
    request = _request(
        LIBRARY_ROUTER,
        "PATCH",
        "/v1/shelves/s/books/b",
        [("etag", "e1")],
        body=b'{"name":"ignored","tags":["x"],"pageCount":"3"}',
    )
    assert (request.book.name, list(request.book.tags), request.book.page_count) == (
        "shelves/s/books/b",
        ["x"],
        3,
    )
    assert request.etag == "e1"


# -- protobuf into JSON, as Envoy prints it --------------------------------------------


def test_json_prints_defaults_in_field_number_order_like_envoy() -> None:
    job = files_pb2.Job(id="j", status=files_pb2.JOB_STATUS_SUCCEEDED, duration_seconds=4.0)
    job.mp3_size_bytes = 97948
    assert json_bytes(files_pb2.GetJobResponse(job=job)) == (
        b'{"job":{"id":"j","ownerId":"","videoFileId":"","mp3FileId":"",'
        b'"status":"JOB_STATUS_SUCCEEDED","progressPercent":0,"error":"","attempts":0,'
        b'"filename":"","videoSizeBytes":"0","videoSha256":"","durationSeconds":4,'
        b'"mp3SizeBytes":"97948","webhookDeliveries":[]}}'
    )


def test_json_escapes_what_protobufs_cpp_writer_escapes() -> None:
    job = files_pb2.Job(filename="a<b>&\u00e9\u2028\ufeff\U0001f600\t\x7f")
    printed = json_bytes(job).decode()
    assert '"filename":"a\\u003cb\\u003e&\u00e9\\u2028\\ufeff\U0001f600\\t\\u007f"' in printed


def test_the_full_view_is_one_field_the_basic_view_leaves_out() -> None:
    """Job declares webhook_deliveries (50) before details (30); Envoy prints by number."""
    job = files_pb2.Job(id="j")
    assert b"details" not in json_bytes(job)
    job.details.ffmpeg_args.append("ffmpeg")
    assert json_bytes(job).endswith(
        b'"details":{"ffmpegArgs":["ffmpeg"],"attemptHistory":[]},"webhookDeliveries":[]}'
    )


def test_empty_repeated_fields_are_printed() -> None:
    assert json_bytes(files_pb2.ListJobsResponse()) == b'{"jobs":[],"nextPageToken":""}'


def test_optional_fields_are_printed_only_when_set_even_at_zero() -> None:
    """Explicit presence (proto3 ``optional``) is printed only when set, a set 0 included;
    fields without presence always, at their defaults. Envoy's transcoder does the same
    (tests/e2e/test_rest_conformance.py compares its bytes with the shim's)."""
    unset = files_pb2.ConversionOptions(bitrate_kbps=0)
    assert json_bytes(unset) == (
        b'{"preset":"","bitrateKbps":0,"channels":"","sampleRateHz":0,"start":"","end":"",'
        b'"title":"","artist":"","album":"","coverAt":""}'
    )
    zero = files_pb2.ConversionOptions(vbr_quality=0, loudness_lufs=-16.0)
    assert b'"bitrateKbps":0,"vbrQuality":0,"channels":""' in json_bytes(zero)
    assert b'"end":"","loudnessLufs":-16,"title":""' in json_bytes(zero)


# -- streaming bodies ----------------------------------------------------------------


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


def test_upload_chunks_recut_small_reads_and_keep_every_byte() -> None:
    data = bytes(range(256)) * 5000  # 1.28 MB in 1000-byte reads
    chunks = asyncio.run(_collect(upload_chunks(_pieces(data, 1000), max_bytes=len(data))))
    assert b"".join(chunks) == data
    assert all(len(chunk) == UPLOAD_MESSAGE_BYTES for chunk in chunks[:-1])


def test_upload_chunks_refuse_more_than_the_limit_with_413() -> None:
    with pytest.raises(HttpError) as refused:
        asyncio.run(_collect(upload_chunks(_pieces(b"x" * 1001, 100), max_bytes=1000)))
    assert (refused.value.code, refused.value.http_status) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        413,
    )


def _multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--BOUNDARY\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            body += b"Content-Type: video/mp4\r\n"
        body += b"\r\n" + content + b"\r\n"
    return body + b"--BOUNDARY--\r\n"


MULTIPART = "multipart/form-data; boundary=BOUNDARY"


@pytest.mark.parametrize("read_size", [1, 7, 64 * 1024])
def test_multipart_file_part_streams_out_whatever_the_read_size(read_size: int) -> None:
    video = bytes(range(256)) * 40 + b"\r\n--BOUNDAR"  # a near-boundary inside the data
    body = _multipart(("note", None, b"hello"), ("file", "clip.mp4", video))

    async def read() -> tuple[str, str, bytes]:
        part = await open_file_part(MULTIPART, _pieces(body, read_size))
        return part.filename, part.content_type, b"".join(await _collect(part.chunks))

    assert asyncio.run(read()) == ("clip.mp4", "video/mp4", video)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (_multipart(("note", None, b"x")), MULTIPART, "no file part"),
        (_multipart(("a", "1.mp4", b"x"), ("b", "2.mp4", b"y")), MULTIPART, "more than one"),
        (_multipart(("file", "v.mp4", b"x" * 100))[:-20], MULTIPART, "closing boundary"),
        (b"", "multipart/form-data", "no boundary"),
    ],
)
def test_bad_multipart_bodies_are_400(body: bytes, content_type: str, message: str) -> None:
    async def read() -> None:
        part = await open_file_part(content_type, _pieces(body, 10))
        await _collect(part.chunks)

    with pytest.raises(HttpError, match=message):
        asyncio.run(read())


def test_upload_messages_carry_query_fields_type_and_bytes() -> None:
    upload, params = _route(MESH_ROUTER, "POST", "/upload")
    first = build_request(upload, params, [("metadata.filename", "named.mp4")])

    async def messages() -> list[files_pb2.UploadRequest]:
        body = _multipart(("file", "clip.mp4", b"0123456789"))
        part = await open_file_part(MULTIPART, _pieces(body, 4))
        apply_file_part(first, part)
        stream = upload_messages(first, upload.body_fields, part.content_type, part.chunks)
        return [message async for message in stream]  # type: ignore[misc]

    sent = asyncio.run(messages())
    assert sent[0].metadata.filename == "named.mp4"  # the query wins over the part's name
    assert sent[0].metadata.content_type == "video/mp4"
    assert sent[0].http_body.content_type == "video/mp4"
    assert b"".join(message.http_body.data for message in sent) == b"0123456789"
    assert all(not message.HasField("metadata") for message in sent[1:])


def test_an_empty_raw_body_still_sends_the_first_message() -> None:
    upload, params = _route(MESH_ROUTER, "POST", "/v1/videos")
    first = build_request(upload, params, [])

    async def messages() -> list[object]:
        stream = upload_messages(first, upload.body_fields, "video/mp4", _pieces(b"", 1))
        return [message async for message in stream]

    assert asyncio.run(messages()) == [first]
    assert message_class(upload.method.input_type) is files_pb2.UploadRequest
