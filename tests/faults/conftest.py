"""The fault suite (``pytest -m faults``): the real mesh, one process per service, with
faults injected for real. One stack for the whole suite; every test leaves it running.

Every job a test submits is tallied; at the end the suite prints how many were submitted,
succeeded, lost (not in the state the test expected) or duplicated (more than one MP3),
and how many mails were sent and duplicated.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack import AMQP_URL, ServiceStack, service_stack
from devstack.tcp_proxy import TcpProxy
from tests.faults.broker_node import BrokerNode, broker_node
from tests.faults.helpers import Tally, proxy_to

TALLY_KEY = pytest.StashKey["Tally"]()


@pytest.fixture(scope="session")
def mesh(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServiceStack]:
    tally = request.config.stash.setdefault(TALLY_KEY, Tally())
    with service_stack(tmp_path_factory.mktemp("faults")) as stack:
        yield stack
        request.config.stash[COUNTS_KEY] = tally.count(stack)


COUNTS_KEY = pytest.StashKey[dict[str, int]]()


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest) -> Tally:
    return request.config.stash.setdefault(TALLY_KEY, Tally())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = terminalreporter.config.stash.get(COUNTS_KEY, None)
    if not counts:
        return
    terminalreporter.section("fault suite: jobs and mails")
    width = max(map(len, counts))
    for what, n in counts.items():
        terminalreporter.write_line(f"{what:<{width}}  {n}")


@pytest.fixture
def broker_proxy() -> Iterator[TcpProxy]:
    """A proxy to the shared broker that the test can cut: services run behind it (see
    ``behind``) lose their connections, and nobody else's."""
    proxy = proxy_to(AMQP_URL)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerNode]:
    """A RabbitMQ node of the suite's own (tests/faults/broker_node.py), started once,
    for faults that act on a whole broker: alarms, every connection closed."""
    with broker_node(tmp_path_factory.mktemp("rabbitmq")) as node:
        yield node
