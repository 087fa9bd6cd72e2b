"""The web page's audio player in a real browser (Debian's Chromium, as test_web.py):
seeking to the middle of a finished job's MP3 fetches from there (a 206 answer to a
Range request) and plays on from that point, through each edge."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, Response, expect

from devstack import make_video
from tests.e2e.test_web import browser, edge, page, sign_up

pytestmark = pytest.mark.e2e
__all__ = ["browser", "edge", "page"]  # fixtures of test_web, used here

SECONDS = 20


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("player") / "talk.mp4", SECONDS)


def test_the_player_seeks_to_the_middle_and_plays_from_there(page: Page, video: Path) -> None:
    answers: list[Response] = []
    page.on("response", lambda r: answers.append(r) if "/v1/mp3s/" in r.url else None)
    page.goto("/")
    sign_up(page)
    page.locator("#video").set_input_files(video)
    page.get_by_role("button", name="Convert to MP3").click()
    expect(page.locator("#current-status")).to_have_text("succeeded")

    page.locator("#jobs tbody tr").first.get_by_role("button", name="Play").click()
    expect(page.locator("#player-box")).to_be_visible()
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    duration = page.evaluate("() => document.getElementById('player').duration")
    assert abs(duration - SECONDS) <= 0.5
    middle = duration / 2
    fetched_before_seek = len(answers)
    page.evaluate(
        """(at) => { const p = document.getElementById('player');
                     p.currentTime = at; return p.play(); }""",
        middle,
    )
    # Playing from the seek point: time moves on past it, and never started over.
    page.wait_for_function(
        "(at) => { const p = document.getElementById('player');"
        " return !p.paused && p.currentTime > at + 1; }",
        arg=middle,
    )
    starts = page.evaluate(
        "() => { const r = document.getElementById('player').played;"
        " return Array.from({length: r.length}, (_, i) => r.start(i)); }"
    )
    assert all(start >= middle - 0.5 for start in starts), starts
    partial = [r for r in answers[fetched_before_seek:] if r.status == 206] or [
        r for r in answers if r.status == 206
    ]
    assert partial, [(r.url, r.status) for r in answers]
    ranges = [r.headers.get("content-range", "") for r in partial]
    assert all(value.startswith("bytes ") for value in ranges), ranges
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#player-box")).to_be_hidden()
