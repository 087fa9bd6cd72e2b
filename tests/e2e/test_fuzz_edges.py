"""Fuzzing both REST edges with schemathesis, from the shim's /openapi.json: every
operation, with a valid and an invalid bearer token, valid and invalid inputs. No answer
may be a 5xx, and every answer's status, content type and body must be what the document
says (an error is a google.rpc.Status). Bounded: a fixed number of cases per operation.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from devstack import PASSWORD, Stack

# Cases per operation, edge, token and mode: about 1,000 requests in all, ~1 min here.
EXAMPLES = 6
# positive_data_acceptance is left out: proto3 declares no field required, so the
# document cannot say that Register needs an email; the server's 400 says so instead.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@schemathesis.serializer("application/offset+octet-stream")
def _tus_body(ctx: Any, value: Any) -> bytes:
    """A tus PATCH body (/files/<id>) is raw bytes, as application/octet-stream."""
    return value if isinstance(value, bytes) else str(value).encode()


@dataclass
class Report:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)


def _fuzz(schema: Any, base_url: str, headers: dict[str, str]) -> Report:
    report = Report()
    operations = [result.ok() for result in schema.get_all_operations()]
    # Logout revokes the token: last, so the other operations are fuzzed with it valid.
    operations.sort(key=lambda operation: "_Logout" in operation.definition.raw["operationId"])
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, base_url, headers, report)
    return report


def _fuzz_operation(
    operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str], report: Report
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        report.cases += 1
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        report.statuses[response.status_code] += 1
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code >= 500:
            report.server_errors.append(f"{where}: {case.as_curl_command()}")
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as exc:
            report.nonconforming.append(f"{where}: {exc}"[:800])

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid: an operation without input
        assert mode == GenerationMode.NEGATIVE


@pytest.fixture(scope="module")
def schema(stack: Stack) -> Any:
    document = httpx.get(f"{stack.shim_url}/openapi.json", timeout=30).json()
    return schemathesis.openapi.from_dict(document)


@pytest.fixture
def token(stack: Stack) -> str:
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=stack.shim_url, timeout=60) as http:
        http.post("/v1/users", json={"email": email, "password": PASSWORD}).raise_for_status()
        reply = http.post("/login", auth=(email, PASSWORD))
    reply.raise_for_status()
    return str(reply.json()["token"])


@pytest.mark.e2e
@pytest.mark.parametrize("edge", ["envoy", "shim"])
@pytest.mark.parametrize("credentials", ["valid-token", "invalid-token"])
def test_fuzzed_requests_get_no_5xx_and_documented_answers(
    stack: Stack, schema: Any, token: str, edge: str, credentials: str
) -> None:
    url = stack.envoy_url if edge == "envoy" else stack.shim_url
    bearer = token if credentials == "valid-token" else "eyJhbGciOiJIUzI1NiJ9.e30.forged"
    report = _fuzz(schema, url, {"Authorization": f"Bearer {bearer}"})
    print(
        f"\nfuzz {edge} {credentials}: {report.cases} cases, statuses {dict(report.statuses)},"
        f" {len(report.server_errors)} 5xx, {len(report.nonconforming)} nonconforming"
    )
    assert report.cases >= EXAMPLES * len(list(schema.get_all_operations()))
    assert not report.server_errors, "\n".join(report.server_errors[:10])
    assert not report.nonconforming, "\n".join(report.nonconforming[:10])
