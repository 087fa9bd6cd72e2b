"""An OpenAPI 3.1 document from the same routes the shim serves, so it cannot drift.

Schemas come from the message descriptors under the proto3 JSON mapping the edges
speak: lowerCamelCase properties, int64 as strings, enums by name, Timestamps as
RFC 3339 strings. Every component is named by its full proto name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.rpc import status_pb2

from mp3mesh.core import options
from mp3mesh.shim.rules import FieldPathError, Route, resolve_field_path

Schema = dict[str, Any]

_T = FieldDescriptor
_SCALARS: dict[int, Schema] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT64: {"type": "string", "format": "int64"},
    _T.TYPE_SINT64: {"type": "string", "format": "int64"},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    _T.TYPE_UINT64: {"type": "string", "format": "uint64"},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "format": "uint32"},
    _T.TYPE_FIXED32: {"type": "integer", "format": "uint32"},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "format": "byte"},
}
# Well-known types whose JSON form is not an object of their fields.
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string", "example": "name,createTime"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
}
_BINARY: Schema = {"type": "string", "format": "binary"}
_STATUS = status_pb2.Status.DESCRIPTOR


def openapi_document(routes: Sequence[Route], title: str = "mp3mesh") -> dict[str, Any]:
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    seen: Counter[str] = Counter()
    for route in routes:
        service, method = route.method.containing_service.name, route.method.name
        seen[route.method.full_name] += 1
        count = seen[route.method.full_name]
        operation: dict[str, Any] = {
            "operationId": f"{service}_{method}{count if count > 1 else ''}",
            "tags": [service],
            "parameters": _parameters(route, components),
            "responses": {
                "200": _success(route, components),
                "default": {
                    "description": "An error, as a google.rpc.Status",
                    "content": {"application/json": {"schema": components.ref(_STATUS)}},
                },
            },
        }
        if route.method.full_name == RANGED_DOWNLOAD:
            _ranged(operation)
        if route.body:
            operation["requestBody"] = _request_body(route, components)
        paths.setdefault(route.template.openapi_path(), {})[route.http_method.lower()] = operation
    paths.update(_tus_paths(components))
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "v1"},
        "paths": paths,
        "components": {"schemas": components.schemas},
    }


# Served with HTTP ranges by RestBridge._download (docs/downloads.md): the byte range comes
# from the Range header, not from the request's read_offset/read_limit.
RANGED_DOWNLOAD = "mp3mesh.files.v1.FileService.Download"
_RANGE_FIELDS = ("read_offset", "read_limit", "readOffset", "readLimit")


def _ranged(operation: dict[str, Any]) -> None:
    operation["parameters"] = [
        p for p in operation["parameters"] if p["name"] not in _RANGE_FIELDS
    ] + [
        {"name": name, "in": "header", "schema": {"type": "string"}, "description": why}
        for name, why in (
            ("Range", "One range: bytes=a-b, bytes=a- or bytes=-n (several: the whole file)"),
            ("If-Range", "The ETag of the copy the range continues; another one: 200, all"),
            ("If-None-Match", "ETags the client has: 304 if one is this file's"),
        )
    ]
    responses = operation["responses"]
    responses["200"]["headers"] = {
        name: {"schema": {"type": "string"}} for name in ("ETag", "Accept-Ranges")
    }
    responses["206"] = {
        "description": "The range asked for (Content-Range: bytes a-b/size)",
        "content": {"audio/mpeg": {"schema": _BINARY}},
    }
    responses["304"] = {"description": "If-None-Match named this file's ETag"}
    responses["416"] = {
        "description": "The range is not within the file (Content-Range: bytes */size)",
        "content": responses["default"]["content"],
    }


# Resumable uploads, tus 1.0 (mp3mesh/shim/tus.py, docs/uploads.md): headers and status
# codes rather than a proto mapping, so written out here.
_DIGITS: Schema = {"type": "string", "pattern": "^[0-9]{1,19}$"}


def _tus_paths(components: _Components) -> dict[str, dict[str, Any]]:
    error = {"application/json": {"schema": components.ref(_STATUS)}}

    def header(name: str, schema: Schema, why: str, required: bool = False) -> dict[str, Any]:
        return {
            "name": name,
            "in": "header",
            "required": required,
            "schema": schema,
            "description": why,
        }

    # Not marked required (nor its value an enum): a request without it is well formed
    # HTTP that tus answers 412, not 400, which is what a schema violation would claim.
    tus = header(
        "Tus-Resumable",
        {"type": "string"},
        "1.0.0, as tus requires: without it, or with another version, 412 and Tus-Version",
    )
    upload_id = {
        "name": "upload_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "From the Location of POST",
    }
    state = {name: {"schema": {"type": "string"}} for name in ("Upload-Offset", "Upload-Expires")}

    def answers(ok: str, description: str, *codes: tuple[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {ok: {"description": description, "headers": dict(state)}}
        for code, why in (("412", "Tus-Resumable is not 1.0.0"), *codes):
            out[code] = {"description": why, "content": error}
        out["default"] = {"description": "An error, as a google.rpc.Status", "content": error}
        return out

    def operation(name: str, summary: str, **rest: Any) -> dict[str, Any]:
        return {"operationId": f"Tus_{name}", "tags": ["Tus"], "summary": summary, **rest}

    created = answers(
        "201",
        "Created: Location is the upload's URL",
        ("400", "A malformed header, or a conversion option out of range"),
        ("413", "Upload-Length over the limit"),
    )
    created["201"]["headers"]["Location"] = {"schema": {"type": "string"}}
    head = answers("200", "The upload: Upload-Offset is where to write next")
    head["200"]["headers"].update(
        {name: {"schema": {"type": "string"}} for name in ("Upload-Length", "Mp3mesh-Job-Id")}
    )
    patched = answers(
        "204",
        "Written; Mp3mesh-Job-Id once the last byte is in",
        ("409", "Upload-Offset is not the upload's offset"),
        ("413", "The bytes go past Upload-Length"),
        ("415", "Content-Type is not application/offset+octet-stream"),
        ("460", "Upload-Checksum does not match: nothing of the request was kept"),
    )
    patched["204"]["headers"]["Mp3mesh-Job-Id"] = {"schema": {"type": "string"}}
    return {
        "/files/": {
            "options": operation(
                "Options",
                "tus discovery (no token): Tus-Version, Tus-Extension, Tus-Max-Size",
                responses={"204": {"description": "What this server supports"}},
            ),
            "post": operation(
                "Create",
                "Start a resumable upload (tus creation)",
                parameters=[
                    tus,
                    header("Upload-Length", _DIGITS, "The video's size in bytes", True),
                    header(
                        "Upload-Metadata",
                        {"type": "string"},
                        "key base64value pairs: filename, filetype, the conversion options"
                        " by their query parameter names (bitrate_kbps, preset, ...; 400 for a"
                        " value out of range), others kept",
                    ),
                ],
                responses=created,
            ),
        },
        "/files/{upload_id}": {
            "head": operation(
                "Head",
                "The upload's offset (and job id once complete)",
                parameters=[upload_id, tus],
                responses=head,
            ),
            "patch": operation(
                "Patch",
                "Append bytes at Upload-Offset",
                parameters=[
                    upload_id,
                    tus,
                    header("Upload-Offset", _DIGITS, "Where these bytes go", True),
                    header("Upload-Checksum", {"type": "string"}, "sha1 <base64 digest>"),
                ],
                requestBody={
                    "required": True,
                    "content": {"application/offset+octet-stream": {"schema": _BINARY}},
                },
                responses=patched,
            ),
            "delete": operation(
                "Delete",
                "Remove the upload (tus termination)",
                parameters=[upload_id, tus],
                responses={
                    "204": {"description": "Removed"},
                    "default": {"description": "An error", "content": error},
                },
            ),
        },
    }


class _Components:
    """Collects a schema per message and enum type as operations reference them."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def ref(self, type_: Descriptor | EnumDescriptor) -> Schema:
        if type_.full_name not in self.schemas:
            self.schemas[type_.full_name] = {}  # placeholder: recursive types stop here
            self.schemas[type_.full_name] = self._define(type_)
        return {"$ref": f"#/components/schemas/{type_.full_name}"}

    def _define(self, type_: Descriptor | EnumDescriptor) -> Schema:
        if isinstance(type_, EnumDescriptor):
            return {"type": "string", "enum": [value.name for value in type_.values]}
        return {
            "type": "object",
            "properties": {field.json_name: self.field(field) for field in type_.fields},
        }

    def field(self, field: FieldDescriptor) -> Schema:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            return {
                "type": "object",
                "additionalProperties": self._single(message.fields_by_name["value"]),
            }
        single = self._single(field)
        return {"type": "array", "items": single} if field.is_repeated else single

    def _single(self, field: FieldDescriptor) -> Schema:
        if field.enum_type is not None:
            return self.ref(field.enum_type)
        message = field.message_type
        if message is None:
            return dict(_SCALARS[field.type])
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        if message.file.name == "google/protobuf/wrappers.proto":
            return self._single(message.fields_by_name["value"])
        return self.ref(message)


def _parameters(route: Route, components: _Components) -> list[dict[str, Any]]:
    message = route.method.input_type
    path_params = {
        variable.field_path: resolve_field_path(message, variable.field_path)
        for variable in route.template.variables
    }
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": components.field(fields[-1])}
        for name, fields in path_params.items()
    ]
    if route.body == "*":
        return parameters  # every field not in the path comes from the body
    taken = [*path_params.values(), route.body_fields]
    parameters += [
        {"name": name, "in": "query", "schema": components.field(fields[-1])}
        for name, fields in _leaf_fields(message)
        if not any(bound and fields[: len(bound)] == bound for bound in taken)
    ]
    if route.streams_request_body:
        parameters += [{**option, "in": "query"} for option in _option_fields(message, components)]
    return parameters


def _option_fields(message: Descriptor, components: _Components) -> list[dict[str, Any]]:
    """The conversion options by their REST names (``bitrate_kbps``), which an upload takes
    as query parameters and form fields beside ``metadata.options.*`` (docs/options.md)."""
    try:
        fields = resolve_field_path(message, options.QUERY_PREFIX.rstrip("."))
    except FieldPathError:
        return []
    conversion = fields[-1].message_type
    return [
        {
            "name": name,
            "schema": components.field(conversion.fields_by_name[name]),
            "description": f"The conversion option {options.QUERY_PREFIX}{name}",
        }
        for name in options.FIELDS
    ]


def _leaf_fields(
    message: Descriptor, prefix: str = "", outer: tuple[FieldDescriptor, ...] = ()
) -> Iterator[tuple[str, tuple[FieldDescriptor, ...]]]:
    """Every field a query parameter can set, as (dotted JSON name, field path).

    Nested messages are walked (``metadata.filename``); repeated messages, maps and
    recursive types cannot be set from a query string and are left out.
    """
    enclosing = {message.full_name, *(field.message_type.full_name for field in outer)}
    for field in message.fields:
        fields = (*outer, field)
        name = f"{prefix}{field.json_name}"
        nested = field.message_type
        if nested is None or nested.full_name in _WELL_KNOWN:
            yield name, fields
        elif not field.is_repeated and nested.full_name not in enclosing:
            yield from _leaf_fields(nested, f"{name}.", fields)


def _request_body(route: Route, components: _Components) -> dict[str, Any]:
    if route.streams_request_body:
        return {
            "required": True,
            "description": "The raw bytes, or one file in a multipart/form-data body",
            "content": {
                "application/octet-stream": {"schema": _BINARY},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        # The option fields come before the file.
                        "properties": {
                            **{
                                option["name"]: option["schema"]
                                for option in _option_fields(route.method.input_type, components)
                            },
                            "file": _BINARY,
                        },
                        "required": ["file"],
                    }
                },
            },
        }
    schema = (
        components.ref(route.method.input_type)
        if route.body == "*"
        else components.field(route.body_fields[-1])
    )
    return {"content": {"application/json": {"schema": schema}}}


def _success(route: Route, components: _Components) -> dict[str, Any]:
    if route.returns_http_body:
        return {
            "description": "The raw bytes, with their own content type",
            "content": {"*/*": {"schema": _BINARY}},
        }
    description = (
        "One JSON object per line (newline-delimited), as the stream goes on"
        if route.method.server_streaming
        else "OK"
    )
    schema = components.ref(route.method.output_type)
    return {"description": description, "content": {"application/json": {"schema": schema}}}
