"""Where a webhook may be sent, and sending it there: the SSRF guard.

A webhook URL is the user's to choose, and the notification service sits inside the
mesh, so a URL naming the cloud's metadata service (169.254.169.254), a pod or the
service's own loopback would have the mesh make requests for the user where the user
cannot reach. Each delivery therefore resolves the host once, refuses unless every
address it resolved to is public (or inside a network WEBHOOK_ALLOWED_NETWORKS names), and
connects to that very address: the Host header and, for https, the TLS server name and
certificate check stay the URL's host, so a name that resolves differently a moment later
(DNS rebinding) changes nothing. Redirects are not followed (a 3xx is a failed try) and
proxies from the environment are not used, since either would connect elsewhere.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# What a receiver's answer may cost: read this much of its body at most, then hang up.
MAX_RESPONSE_BYTES = 64 * 1024


class TargetRefused(Exception):
    """The URL points where webhooks may not go; no retry can change that."""


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo), if any."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
    return None


def is_public(ip: IPAddress) -> bool:
    """A global unicast address: not loopback, private, link-local (the metadata
    service), shared (CGNAT, 100.64/10), multicast, reserved or unspecified."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_public(embedded)
    return ip.is_global and not ip.is_multicast


def check_address(ip: IPAddress, allowed: Sequence[Network]) -> None:
    embedded = _embedded_ipv4(ip) or ip
    if any(embedded in network or ip in network for network in allowed):
        return
    if not is_public(ip):
        raise TargetRefused(
            f"webhook target address {ip} is not a public address (loopback, private,"
            " link-local, shared or multicast); deliveries there are not allowed"
        )


def parse_networks(values: str | Sequence[str]) -> list[Network]:
    """CIDRs, as a sequence or comma-separated (WEBHOOK_ALLOWED_NETWORKS)."""
    items = values.split(",") if isinstance(values, str) else values
    return [ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip()]


@dataclass(frozen=True)
class Target:
    """One delivery's destination: the URL rewritten to the resolved address, and the
    names the request must still carry."""

    url: httpx.URL
    address: IPAddress
    host_header: str
    server_name: str


def resolve(url: str, allowed: Sequence[Network]) -> Target:
    """Resolve the URL's host once and pick the address to connect to. Refused if any
    resolved address is not allowed (a name with one private record among public ones
    is refused, not raced). ``OSError`` (socket.gaierror) if the name does not resolve:
    a passing failure, tried again later."""
    parsed = httpx.URL(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    for ip in addresses:
        check_address(ip, allowed)
    address = addresses[0]
    default_port = parsed.port is None
    host_header = parsed.netloc.decode("ascii").rsplit("@", 1)[-1]
    return Target(
        url=parsed.copy_with(host=str(address), port=None if default_port else port),
        address=address,
        host_header=host_header,
        server_name=host,
    )


def post(client: httpx.Client, target: Target, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` to the resolved address; the answer's status. Reads at most
    MAX_RESPONSE_BYTES of the answer's body; raises httpx.HTTPError for no answer."""
    request = client.build_request(
        "POST",
        target.url,
        content=body,
        headers={**headers, "host": target.host_header},
        extensions={"sni_hostname": target.server_name},
    )
    response = client.send(request, stream=True, follow_redirects=False)
    try:
        read = 0
        for chunk in response.iter_raw():
            read += len(chunk)
            if read >= MAX_RESPONSE_BYTES:
                break
        return response.status_code
    finally:
        response.close()


class InterruptibleBackend(httpcore.SyncBackend):
    """httpcore's own network backend, keeping the sockets it opened so that
    :meth:`interrupt` can end the tries in flight at once (a stopping service does not
    wait out a receiver that does not answer), as the mailer does with its SMTP socket."""

    def __init__(self) -> None:
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._interrupted = False

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        sock = stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets = {s for s in self._sockets if s.fileno() != -1} | {sock}
                interrupted = self._interrupted
            if interrupted:  # connected while being interrupted: cut off at once
                _shutdown(sock)
        return stream

    def interrupt(self) -> None:
        """Cut off every try in flight, and any that connects from now on. shutdown()
        wakes a thread blocked on the socket."""
        with self._lock:
            self._interrupted = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def http_client(timeout: float, backend: InterruptibleBackend | None = None) -> httpx.Client:
    """A client for deliveries: certificates verified against the URL's host, no proxies
    from the environment, every phase (connect, each read and write) bounded; its sockets
    opened through ``backend``."""
    transport = httpx.HTTPTransport(verify=True, trust_env=False)
    if backend is not None:
        # httpx takes no backend of its own; its pool (httpcore's) does.
        transport._pool._network_backend = backend
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        trust_env=False,
        follow_redirects=False,
        headers={"user-agent": "mp3mesh-webhooks/1"},
    )
