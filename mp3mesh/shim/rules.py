"""From ``google.api.http`` annotations to routes: path templates, routing, field paths.

The routes are read from the service descriptors at start-up, so a new or changed
annotation in ``protos/`` changes the shim without touching it (grpc-gateway style).
The template grammar is the one documented in ``google/api/http.proto``::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

HTTP_BODY = "google.api.HttpBody"
_SINGLE_SEGMENT = "[^/]+"
_ANY_SEGMENTS = ".*"
_LITERAL_STOP = "/:{}=*"


class TemplateError(ValueError):
    """A path template that does not follow the ``google.api.http`` grammar."""


class FieldPathError(LookupError):
    """A field path naming no field of the message (a typo'd query parameter, say).

    The messages are worded as Envoy's transcoder words them, so both edges agree.
    """


class NoRoute(LookupError):
    """No rule has a template matching the path: 404."""


class MethodNotAllowed(LookupError):
    """Some rule matches the path, but for other HTTP methods (answered as 404, like Envoy)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = tuple(sorted(set(allowed)))
        super().__init__(f"allowed methods: {', '.join(self.allowed)}")


@dataclass(frozen=True)
class Variable:
    field_path: str  # dotted, as written in the template: "job_id", "metadata.filename"
    multi_segment: bool  # spans several segments ("{name=shelves/**}"): %2F stays encoded


@dataclass(frozen=True)
class PathTemplate:
    text: str
    variables: tuple[Variable, ...]
    verb: str
    literal_count: int  # how specific the template is, to try specific templates first
    pattern: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        return _TemplateParser(text).parse()

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The variables' decoded values if the percent-encoded path matches, else None."""
        found = self.pattern.fullmatch(raw_path)
        if found is None:
            return None
        return {
            variable.field_path: _decode(found.group(f"v{i}"), variable.multi_segment)
            for i, variable in enumerate(self.variables)
        }

    def openapi_path(self) -> str:
        """The template with each variable as ``{field.path}`` (OpenAPI path syntax)."""
        return re.sub(r"\{([^}=]+)(=[^}]*)?\}", r"{\1}", self.text)


def _decode(value: str, multi_segment: bool) -> str:
    """Undo percent-encoding; a multi-segment variable keeps %2F, as http.proto requires."""
    if not multi_segment:
        return unquote(value)
    return "%2F".join(unquote(part) for part in re.split("%2[fF]", value))


class _TemplateParser:
    """Recursive descent over the grammar in the module docstring, emitting a regex."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.variables: list[Variable] = []
        self.literal_count = 0

    def parse(self) -> PathTemplate:
        self._expect("/")
        regex = "/" + self._segments(in_variable=False)
        verb = ""
        if self._peek() == ":":
            self.pos += 1
            verb = self._literal()
            regex += ":" + re.escape(verb)
        if self.pos != len(self.text):
            self._fail(f"unexpected {self.text[self.pos]!r}")
        return PathTemplate(
            text=self.text,
            variables=tuple(self.variables),
            verb=verb,
            literal_count=self.literal_count,
            pattern=re.compile(regex),
        )

    def _segments(self, in_variable: bool) -> str:
        pieces = [self._segment(in_variable)]
        while self._peek() == "/":
            if pieces[-1] == _ANY_SEGMENTS:
                self._fail("'**' must be the last segment")
            self.pos += 1
            pieces.append(self._segment(in_variable))
        return "/".join(pieces)

    def _segment(self, in_variable: bool) -> str:
        if self.text.startswith("**", self.pos):
            self.pos += 2
            return _ANY_SEGMENTS
        if self._peek() == "*":
            self.pos += 1
            return _SINGLE_SEGMENT
        if self._peek() == "{":
            if in_variable:
                self._fail("variables cannot nest")
            return self._variable()
        self.literal_count += 1
        return re.escape(self._literal())

    def _variable(self) -> str:
        self._expect("{")
        start = self.pos
        while self._peek() not in ("=", "}", ""):
            self.pos += 1
        field_path = self.text[start : self.pos]
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", field_path):
            self._fail(f"bad field path {field_path!r}")
        inner = _SINGLE_SEGMENT
        if self._peek() == "=":
            self.pos += 1
            inner = self._segments(in_variable=True)
        self._expect("}")
        self.variables.append(Variable(field_path, multi_segment=inner != _SINGLE_SEGMENT))
        return f"(?P<v{len(self.variables) - 1}>{inner})"

    def _literal(self) -> str:
        start = self.pos
        while self._peek() and self._peek() not in _LITERAL_STOP:
            self.pos += 1
        if self.pos == start:
            self._fail("empty segment")
        return self.text[start : self.pos]

    def _peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            self._fail(f"expected {char!r}")
        self.pos += 1

    def _fail(self, why: str) -> None:
        raise TemplateError(f"path template {self.text!r} at {self.pos}: {why}")


def resolve_field_path(message: Descriptor, path: str) -> tuple[FieldDescriptor, ...]:
    """The fields a dotted path walks through; each name may be the proto or the JSON name.

    ``metadata.filename`` and ``pageSize``/``page_size`` are how query parameters and
    path variables name fields, so both spellings are accepted, as grpc-gateway and
    Envoy accept them.
    """
    fields: list[FieldDescriptor] = []
    current = message
    for name in path.split("."):
        if fields and (fields[-1].message_type is None or fields[-1].is_repeated):
            raise FieldPathError(
                f'Encountered a non-leaf field "{fields[-1].name}" that is not a message'
                " while parsing a field path"
            )
        field = current.fields_by_name.get(name) or next(
            (f for f in current.fields if f.json_name == name), None
        )
        if field is None:
            raise FieldPathError(
                f'Could not find field "{name}" in the type "{current.full_name}".'
            )
        fields.append(field)
        current = field.message_type
    return tuple(fields)


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one gRPC method."""

    http_method: str  # "GET", "POST", ...
    template: PathTemplate
    body: str  # "" (no body), "*" (the whole request), or the field path the body fills
    body_fields: tuple[FieldDescriptor, ...]  # what that field path walks through
    method: MethodDescriptor

    @property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def streams_request_body(self) -> bool:
        """The HTTP body is streamed, as ``google.api.HttpBody`` chunks, into a client stream."""
        body_type = self.body_fields[-1].message_type if self.body_fields else None
        return body_type is not None and body_type.full_name == HTTP_BODY

    @property
    def returns_http_body(self) -> bool:
        """The response is raw bytes with their own content type, not JSON."""
        return self.method.output_type.full_name == HTTP_BODY


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_params: dict[str, str]  # field path -> decoded value


def routes_for(service: ServiceDescriptor) -> Iterator[Route]:
    """A route per binding (the rule and its additional_bindings) of each annotated method."""
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule = options.Extensions[annotations_pb2.http]
        for binding in (rule, *rule.additional_bindings):
            yield _route(binding, method)


def _route(binding: http_pb2.HttpRule, method: MethodDescriptor) -> Route:
    pattern = binding.WhichOneof("pattern")
    if pattern is None:
        raise ValueError(f"{method.full_name}: an http rule without a method and path")
    if pattern == "custom":
        http_method, path = binding.custom.kind.upper(), binding.custom.path
    else:
        http_method, path = pattern.upper(), getattr(binding, pattern)
    if binding.response_body:
        raise ValueError(f"{method.full_name}: response_body is not supported by the shim")
    body_fields = (
        () if binding.body in ("", "*") else resolve_field_path(method.input_type, binding.body)
    )
    route = Route(http_method, PathTemplate.parse(path), binding.body, body_fields, method)
    for variable in route.template.variables:
        resolve_field_path(method.input_type, variable.field_path)
    if method.client_streaming != route.streams_request_body:
        raise ValueError(
            f"{method.full_name}: the shim maps client streams to an HttpBody body field,"
            " and only those"
        )
    if method.client_streaming and method.server_streaming:
        raise ValueError(f"{method.full_name}: bidirectional streams are not supported")
    return route


class Router:
    """Finds the route for a method and a raw (percent-encoded) path."""

    def __init__(self, routes: Iterable[Route]) -> None:
        # A template with a verb or more literals wins: "/v1/jobs/{id}:watch" is tried
        # before "/v1/jobs/{id}", which would also match "abc:watch" as the id.
        self.routes = sorted(
            routes,
            key=lambda r: (bool(r.template.verb), r.template.literal_count),
            reverse=True,
        )

    def match(self, http_method: str, raw_path: str) -> RouteMatch:
        allowed: list[str] = []
        for route in self.routes:
            path_params = route.template.match(raw_path)
            if path_params is None:
                continue
            if route.http_method == http_method:
                return RouteMatch(route, path_params)
            allowed.append(route.http_method)
        if allowed:
            raise MethodNotAllowed(allowed)
        raise NoRoute(raw_path)
