"""HTTP requests into protobuf requests, the way grpc-gateway and Envoy fill them.

The JSON body first (``body: "*"`` or one field), then query parameters, then path
variables, so the path has the last word. Query and path values are read by the proto3
JSON parser, so both edges accept the same spellings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from google.protobuf import descriptor_pb2, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from mp3mesh.core import options
from mp3mesh.shim.errors import invalid
from mp3mesh.shim.jsonpb import descriptor_of
from mp3mesh.shim.rules import FieldPathError, Route, resolve_field_path

FieldPath = tuple[FieldDescriptor, ...]


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def build_request(
    route: Route,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes = b"",
) -> Message:
    """The gRPC request for an HTTP request: body, then query parameters, then path."""
    message_type = route.method.input_type
    request = message_class(message_type)()
    if route.body and body.strip():
        _merge_json_body(request, route, body)
    for fields, values in _query_fields(message_type, query):
        set_field(request, fields, values)
    for path, value in path_params.items():
        set_field(request, resolve_field_path(message_type, path), [value])
    return request


def _query_fields(
    message_type: Descriptor, query: Iterable[tuple[str, str]]
) -> Iterable[tuple[FieldPath, list[str]]]:
    """Query values grouped by the field they name, whichever spelling named it."""
    grouped: dict[str, tuple[FieldPath, list[str]]] = {}
    for name, value in query:
        try:
            fields = resolve_field_path(message_type, name)
        except FieldPathError as exc:
            raise invalid(str(exc)) from exc
        key = ".".join(field.name for field in fields)
        grouped.setdefault(key, (fields, []))[1].append(value)
    return grouped.values()


def set_field(message: Message, fields: FieldPath, values: Sequence[str]) -> None:
    """Set the field a query parameter or path variable names, from its text form(s).

    The text goes through the proto3 JSON parser, which already knows how to read int64
    from strings, enums by name or number, bytes as base64, and Timestamps as RFC 3339.
    A singular field given several values takes the last, as Envoy does.
    """
    leaf = fields[-1]
    as_json = [_json_value(leaf, value) for value in values]
    try:
        json_format.ParseDict(
            {leaf.name: as_json if leaf.is_repeated else as_json[-1]},
            submessage(message, fields[:-1]),
        )
    except json_format.ParseError as exc:
        # Envoy's words, naming the field, the value and the type.
        name = ".".join(field.name for field in fields)
        value = ",".join(values) if leaf.is_repeated else values[-1]
        raise invalid(f'{name}: invalid value "{value}" for type {_type_name(leaf)}') from exc


def set_option(message: Message, name: str, value: str) -> None:
    """Set the conversion option a REST name (``bitrate_kbps``) names, as its query
    parameter does (query parameters, form fields and tus metadata read alike).
    FieldPathError if ``message`` has no options."""
    fields = resolve_field_path(descriptor_of(message), options.query_name(name))
    set_field(message, fields, [value])


def _json_value(field: FieldDescriptor, text: str) -> str | bool:
    """Text as the JSON value the parser expects: only booleans are not strings there."""
    if field.type == FieldDescriptor.TYPE_BOOL and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _type_name(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return f"type.googleapis.com/{field.message_type.full_name}"
    if field.enum_type is not None:
        return f"type.googleapis.com/{field.enum_type.full_name}"
    return descriptor_pb2.FieldDescriptorProto.Type.Name(field.type)  # e.g. TYPE_INT32


def submessage(message: Message, fields: FieldPath) -> Message:
    for field in fields:
        message = getattr(message, field.name)
    return message


def _merge_json_body(request: Message, route: Route, body: bytes) -> None:
    # Unknown JSON fields are ignored: Envoy's transcoder cannot reject them, and both
    # edges must answer alike.
    try:
        if route.body == "*":
            json_format.Parse(body, request, ignore_unknown_fields=True)
        else:
            leaf = route.body_fields[-1]
            json_format.ParseDict(
                {leaf.name: json.loads(body)},
                submessage(request, route.body_fields[:-1]),
                ignore_unknown_fields=True,
            )
    except (json_format.ParseError, ValueError) as exc:
        raise invalid(
            f"the request body is not valid JSON for {route.method.input_type.full_name}: {exc}"
        ) from exc
