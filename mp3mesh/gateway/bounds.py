"""Per-client bounds on the gateway: how many uploads and watches one user may hold open,
and how an upload stream must move (idle and total deadlines, few messages without bytes).
Each refusal says which bound was hit and what to do."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import grpc

from mp3mesh.files.v1 import files_pb2
from mp3mesh.gateway.upload import UploadRefused


class TooMany(Exception):
    """A user already holds as many calls of one kind as allowed."""


class PerUserLimit:
    """At most ``limit`` calls of one kind (``what``: "uploads") open per user, in this
    gateway process."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self._open: Counter[str] = Counter()

    @contextmanager
    def slot(self, user_id: str) -> Iterator[None]:
        if self._open[user_id] >= self.limit:
            raise TooMany(
                f"you already have {self.limit} {self.what} open; wait for one to finish"
                " or cancel it, then try again"
            )
        self._open[user_id] += 1
        try:
            yield
        finally:
            self._open[user_id] -= 1
            if not self._open[user_id]:
                del self._open[user_id]


async def paced(
    requests: AsyncIterator[files_pb2.UploadRequest],
    *,
    idle_seconds: float,
    total_seconds: float,
    max_empty: int,
) -> AsyncIterator[files_pb2.UploadRequest]:
    """The upload's messages, refused (UploadRefused) when none comes for ``idle_seconds``,
    when the whole upload takes over ``total_seconds``, or when more than ``max_empty``
    messages carry no bytes (the first, with the metadata, counts too)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_seconds
    empty = 0
    while True:
        left = deadline - loop.time()
        try:
            request = await asyncio.wait_for(anext(requests, None), min(idle_seconds, left))
        except TimeoutError:
            if loop.time() >= deadline:
                raise UploadRefused(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"upload took longer than {total_seconds:g} s; send it again on a faster"
                    " link, or a smaller file",
                ) from None
            raise UploadRefused(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"upload sent nothing for {idle_seconds:g} s; send it again",
            ) from None
        if request is None:
            return
        if not (request.chunk or request.http_body.data):
            empty += 1
            if empty > max_empty:
                raise UploadRefused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"more than {max_empty} upload messages carried no bytes; put the"
                    " video's bytes in every message after the first",
                )
        yield request


class ClientBounds:
    """The gateway's per-client bounds, from its settings."""

    def __init__(
        self,
        *,
        uploads_per_user: int,
        watches_per_user: int,
        upload_idle_seconds: float,
        upload_total_seconds: float,
        max_empty_upload_messages: int,
    ) -> None:
        self.uploads = PerUserLimit(uploads_per_user, "uploads")
        self.watches = PerUserLimit(watches_per_user, "watches")
        self.idle_seconds = upload_idle_seconds
        self.total_seconds = upload_total_seconds
        self.max_empty = max_empty_upload_messages

    def pace(
        self, requests: AsyncIterator[files_pb2.UploadRequest]
    ) -> AsyncIterator[files_pb2.UploadRequest]:
        return paced(
            requests,
            idle_seconds=self.idle_seconds,
            total_seconds=self.total_seconds,
            max_empty=self.max_empty,
        )
