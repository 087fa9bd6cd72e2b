"""Properties of the shim's HTTP-to-gRPC mapping (hypothesis): whatever a path segment or
a query value holds, it reaches the right field unchanged, or the request is refused
with INVALID_ARGUMENT; nothing else (no 500) comes out of the mapping."""

from __future__ import annotations

from urllib.parse import quote

import grpc
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mp3mesh.auth.v1 import auth_pb2
from mp3mesh.files.v1 import files_pb2
from mp3mesh.shim.errors import HttpError
from mp3mesh.shim.request import build_request
from mp3mesh.shim.rules import MethodNotAllowed, NoRoute, PathTemplate, Router, routes_for

ROUTER = Router(
    [
        *routes_for(auth_pb2.DESCRIPTOR.services_by_name["AuthService"]),
        *routes_for(files_pb2.DESCRIPTOR.services_by_name["FileService"]),
    ]
)
INT32 = (-(2**31), 2**31 - 1)
# Any text a client could put in a segment: unicode, slashes, colons, percent signs.
SEGMENT = st.text(min_size=1, max_size=40)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=SEGMENT)
@example(value="a/b:watch")
@example(value="%2F")
def test_a_path_variable_arrives_as_sent(value: str) -> None:
    encoded = quote(value, safe="")
    for path, method in (
        (f"/v1/jobs/{encoded}", "GetJob"),
        (f"/v1/jobs/{encoded}:watch", "WatchJob"),
    ):
        match = ROUTER.match("GET", path)
        assert match.route.method.name == method
        request = build_request(match.route, match.path_params, [])
        assert request.job_id == value  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(segments=st.lists(SEGMENT, min_size=1, max_size=5))
def test_a_multi_segment_variable_keeps_its_slashes_apart(segments: list[str]) -> None:
    """{name=shelves/**}: the path's own slashes separate segments; an encoded one (%2F)
    inside a segment stays encoded, as http.proto says."""
    template = PathTemplate.parse("/v1/{name=shelves/**}:read")
    path = "/v1/shelves/" + "/".join(quote(s, safe="") for s in segments) + ":read"
    found = template.match(path)
    assert found == {"name": "shelves/" + "/".join(s.replace("/", "%2F") for s in segments)}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(name=st.sampled_from(["pageSize", "page_size"]), value=st.integers(*INT32))
def test_an_int32_query_value_sets_the_field(name: str, value: int) -> None:
    match = ROUTER.match("GET", "/v1/jobs")
    request = build_request(match.route, match.path_params, [(name, str(value))])
    assert request.page_size == value  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    value=st.one_of(
        st.integers().filter(lambda n: not INT32[0] <= n <= INT32[1]).map(str),
        st.text(max_size=12),
    )
)
def test_any_other_query_value_is_a_number_or_a_400_naming_the_field(value: str) -> None:
    match = ROUTER.match("GET", "/v1/jobs")
    try:
        request = build_request(match.route, match.path_params, [("pageSize", value)])
    except HttpError as exc:
        assert exc.code == grpc.StatusCode.INVALID_ARGUMENT
        assert exc.message.startswith(f'page_size: invalid value "{value}"')
        return
    assert request.page_size == int(value)  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.text(min_size=1, max_size=20), value=st.text(max_size=20))
def test_an_unknown_query_parameter_is_a_400(name: str, value: str) -> None:
    match = ROUTER.match("GET", "/v1/jobs")
    known = {"pageSize", "page_size", "pageToken", "page_token"}
    if name in known:
        return
    with pytest.raises(HttpError) as exc:
        build_request(match.route, match.path_params, [(name, value)])
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT


@settings(max_examples=500, deadline=None, derandomize=True)
@given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]), path=st.text(max_size=60))
def test_any_path_routes_or_is_refused_cleanly(method: str, path: str) -> None:
    try:
        match = ROUTER.match(method, path)
    except (NoRoute, MethodNotAllowed):
        return
    try:
        build_request(match.route, match.path_params, [])
    except HttpError as exc:
        assert exc.code == grpc.StatusCode.INVALID_ARGUMENT
