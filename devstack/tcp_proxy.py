"""A TCP proxy the test owns, for cutting a service off from a shared server.

PostgreSQL and RabbitMQ on this machine are shared with other engineers' test runs and
CI, so a test must never stop them. Instead the services under test reach the server
through this proxy, and the test cuts it: every open connection is dropped and new ones
are refused (accepted and closed at once) until :meth:`TcpProxy.restore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

CHUNK = 64 * 1024


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` from a thread;
    connecting from ``source_host`` if given (e.g. 127.0.0.7: the target then sees a
    client of that address)."""

    def __init__(self, target_host: str, target_port: int, source_host: str | None = None) -> None:
        self.target = (target_host, target_port)
        self.source = (source_host, 0) if source_host else None
        self.port = 0
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        """Drop every connection through the proxy and refuse new ones."""
        self._cut = True
        self._call(self._close_all)

    def restore(self) -> None:
        self._cut = False

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def _call(self, fn: object) -> None:
        done = threading.Event()

        def run() -> None:
            fn()  # type: ignore[operator]
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()
        server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                *self.target, local_addr=self.source
            )
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )
        for w in (writer, upstream_writer):
            self._writers.discard(w)
            w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
