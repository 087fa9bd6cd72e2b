"""The web page's resumable upload in a real browser (Debian's Chromium, as test_web.py):
tus-js-client sends a video in 4 MiB PATCHes; after the first, the next one is held (as on
a link that went down) and the page is reloaded; choosing the same file again resumes the
upload at the server's offset instead of starting over, and the job converts. Through
each edge."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, Route, expect

from devstack import make_video
from tests.e2e.test_web import browser, edge, page, sign_up

pytestmark = pytest.mark.e2e
__all__ = ["browser", "edge", "page"]  # fixtures of test_web, used here

CHUNK = 4 * 1024 * 1024  # the page's tus chunk (UPLOAD_CHUNK_BYTES in app.js)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 10 MB: three of the page's PATCHes."""
    return make_video(tmp_path_factory.mktemp("web-tus") / "long.mp4", 16, bitrate="5M", noise=True)


def _upload_cut_after_the_first_patch(page: Page, video: Path) -> list[tuple[str, int]]:
    """Sign up, start converting ``video``, hold every PATCH after the first (the link is
    down), then reload the page with the link back; the (method, Upload-Offset) of each
    /files/ request, kept up to date."""
    sent: list[tuple[str, int]] = []  # (method, Upload-Offset) of each /files/ request

    def seen(request: Request) -> None:
        if "/files/" in request.url and request.method in ("POST", "PATCH"):
            sent.append((request.method, int(request.headers.get("upload-offset", "0"))))

    page.on("request", seen)
    held: list[Route] = []

    def hold_after_first_patch(route: Route) -> None:
        if route.request.method == "PATCH" and route.request.headers["upload-offset"] != "0":
            held.append(route)  # never answered: the link is down
        else:
            route.continue_()

    page.goto("/")
    sign_up(page)
    page.route("**/files/*", hold_after_first_patch)
    second = lambda r: r.method == "PATCH" and r.headers.get("upload-offset") == str(CHUNK)  # noqa: E731
    first_done = lambda r: r.request.method == "PATCH" and r.status == 204  # noqa: E731
    with page.expect_request(second), page.expect_response(first_done):
        page.locator("#video").set_input_files(video)
        page.get_by_role("button", name="Convert to MP3").click()
    assert [m for m, _ in sent] == ["POST", "PATCH", "PATCH"]

    page.reload()
    page.unroute_all(behavior="ignoreErrors")
    expect(page.locator("#signed-in")).to_be_visible()
    return sent


def test_the_page_resumes_an_upload_after_a_reload(page: Page, video: Path) -> None:
    sent = _upload_cut_after_the_first_patch(page, video)
    before_reload = len(sent)
    page.locator("#video").set_input_files(video)
    page.get_by_role("button", name="Convert to MP3").click()
    expect(page.locator("#current-status")).to_have_text("succeeded")
    expect(page.locator("#current-options")).to_be_hidden()  # none asked, none shown

    after = sent[before_reload:]
    print(f"web tus: {video.stat().st_size} bytes; after the reload: {after}")
    assert after and all(method == "PATCH" for method, _ in after), after  # no new upload
    assert after[0][1] == CHUNK  # resumed where the server was, not from 0


def test_other_options_after_a_reload_start_a_new_upload(page: Page, video: Path) -> None:
    """The options are the upload's (taken when it was created): the same file chosen
    again with another title is a new upload, and its job has that title."""
    sent = _upload_cut_after_the_first_patch(page, video)
    before_reload = len(sent)
    page.locator("#options summary").click()
    page.locator("input[name=title]").fill("Another Title")
    page.locator("#video").set_input_files(video)
    page.get_by_role("button", name="Convert to MP3").click()
    expect(page.locator("#current-status")).to_have_text("succeeded")
    expect(page.locator("#current-options")).to_contain_text("title=Another Title")

    after = sent[before_reload:]
    assert after[0] == ("POST", 0), after
    assert next(offset for method, offset in after if method == "PATCH") == 0
