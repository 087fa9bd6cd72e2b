"""Protobuf messages as the exact JSON bytes Envoy's transcoder sends, so both edges agree.

proto3 JSON mapping (lowerCamelCase names, enums by name, int64 as strings) with the
fields without presence printed at their default values, and those with explicit presence
(proto3 ``optional``, messages) only when set: protobuf's
``always_print_fields_with_no_presence``, which Envoy's transcoder does under its older
name ``always_print_primitive_fields``. Python's printer differs from the C++ one Envoy
uses in four ways, undone here: it lists default fields after the set ones (C++: by field
number, which is not declaration order in Job), map entries as stored (C++: as they came
on the wire; the gateway sends them sorted by key, see mp3mesh/gateway/mesh_health.py, and
they are sorted here), prints integral doubles as ``4.0`` (C++: ``4``), and leaves ``<``,
``>`` and Unicode format characters unescaped.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

# Below this, C++ prints an integral double as plain digits; above it, in exponent form.
_PLAIN_DIGITS_LIMIT = 1e15
# What protobuf's C++ JSON writer escapes beyond what Python's json module does.
_CPP_ESCAPED = re.compile(
    "[<>\x7f-\x9f\xad\u0600-\u0603\u06dd\u070f\u17b4\u17b5\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)


def json_bytes(message: Message) -> bytes:
    as_dict = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    text = json.dumps(
        _integral_floats_as_ints(_in_number_order(descriptor_of(message), as_dict)),
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return _CPP_ESCAPED.sub(_escape, text).encode()


def descriptor_of(message: Message) -> Descriptor:
    # types-protobuf types DESCRIPTOR as the pure-Python or the upb class; both are one.
    return cast(Descriptor, message.DESCRIPTOR)


def _escape(found: re.Match[str]) -> str:
    encoded = found.group().encode("utf-16-be")  # astral characters become surrogate pairs
    return "".join(
        f"\\u{int.from_bytes(encoded[i : i + 2]):04x}" for i in range(0, len(encoded), 2)
    )


def _in_number_order(descriptor: Descriptor, js: dict[str, Any]) -> dict[str, Any]:
    if descriptor.file.package == "google.protobuf":
        return js  # well-known types have their own JSON forms
    fields = {field.json_name: field for field in descriptor.fields}
    # Names that are no field (none today) go last, in the order Python gave them.
    last = 1 << 29  # one past the highest field number protobuf allows
    ordered = sorted(js, key=lambda name: fields[name].number if name in fields else last)
    return {name: _field_value(fields.get(name), js[name]) for name in ordered}


def _field_value(field: FieldDescriptor | None, value: Any) -> Any:
    message = field.message_type if field is not None else None
    if message is None:
        return value
    if message.GetOptions().map_entry:
        # Keys sorted, as Envoy's (C++) printer sorts them: one order on both edges.
        value_field = message.fields_by_name["value"]
        return {key: _field_value(value_field, value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_in_number_order(message, item) for item in value]
    return _in_number_order(message, value) if isinstance(value, dict) else value


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < _PLAIN_DIGITS_LIMIT:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value
