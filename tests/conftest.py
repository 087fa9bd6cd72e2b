"""Fixtures every tier may use: the real mesh under honcho (devstack.honcho_stack, started
once per session by the first test that asks for it), sample media, and the stack's log
on a failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import Stack, honcho_stack, make_long_audio_video, make_video


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with honcho_stack(tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On a failing test that used the stack, show the end of the stack's log."""
    report = yield
    if report.failed and call.when == "call" and "stack" in getattr(item, "fixturenames", ()):
        s: Stack = item.funcargs["stack"]  # type: ignore[attr-defined]
        report.sections.append(
            ("stack log (tail)", "\n".join(s.log.read_text().splitlines()[-60:]))
        )
    return report


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample inputs, made once with ffmpeg."""
    d = tmp_path_factory.mktemp("media")
    make_video(d / "clip.mp4", 12)
    make_video(d / "silent.mp4", 3, audio=False)
    (d / "notes.txt").write_text("This is a text file, not a video.\n" * 100)
    return d


@pytest.fixture(scope="session")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 minutes of audio that converts in about 10 s, so a test can hit the conversion
    mid-way without racing it."""
    return make_long_audio_video(tmp_path_factory.mktemp("long") / "long.avi", 2400)
