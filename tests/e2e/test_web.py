"""The web page in a real browser: Debian's Chromium, driven by playwright, against the
real stack through each edge (Envoy and the shim serve the page and the REST API on one
origin). A screenshot of every state of the page is kept in var/test-artifacts/web/<edge>/."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devstack import PASSWORD, ROOT, Stack, make_video
from tests.helpers import ffprobe

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# Its own browser download does not work here: the system Chromium, quiet and offline.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # test_web_player.py starts playback from a script, not a click.
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = ROOT / "var/test-artifacts/web"
WAIT_MS = 120_000  # a loaded machine converts slowly; nothing here waits on a fixed delay

# Installed before the page's own script: every percentage the conversion bar shows.
RECORD_CONVERSION_BAR = """
window.shownPercents = [];
document.addEventListener("DOMContentLoaded", () => {
  const figure = document.getElementById("convert-text");
  new MutationObserver(() => window.shownPercents.push(figure.textContent))
    .observe(figure, { childList: true, characterData: true, subtree: true });
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: scripts/bootstrap.sh --test installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module", params=["envoy", "shim"])
def edge(request: pytest.FixtureRequest, stack: Stack) -> tuple[str, str]:
    """(name, base URL) of the edge the page is loaded from."""
    return request.param, stack.envoy_url if request.param == "envoy" else stack.shim_url


@pytest.fixture
def page(browser: Browser, edge: tuple[str, str]) -> Iterator[Page]:
    context = browser.new_context(base_url=edge[1], viewport={"width": 1100, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.add_init_script(RECORD_CONVERSION_BAR)
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(edge: tuple[str, str]) -> Path:
    folder = ARTIFACTS / edge[0]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    print(f"\nscreenshots of the page through {edge[0]}: {folder}")
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("web") / "holiday.mp4", 20)


def snap(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=shots / f"{name}.png", full_page=True)


def sign_up(page: Page) -> str:
    email = f"web-{uuid.uuid4().hex[:12]}@example.com"
    form = page.locator("#signup-form")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Name").fill("Web Tester")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Create account").click()
    expect(page.locator("#who-email")).to_have_text(email)
    return email


def test_the_whole_flow(
    page: Page, shots: Path, video: Path, media: Path, tmp_path: Path, stack: Stack
) -> None:
    page.goto("/")
    expect(page.locator("#signed-out")).to_be_visible()
    snap(page, shots, "01-signed-out")
    sign_up(page)
    expect(page.locator("#no-jobs")).to_be_visible()
    snap(page, shots, "02-signed-in-no-jobs")

    with page.expect_response(lambda r: r.url.endswith(":watch")) as watch_reply:
        page.locator("#video").set_input_files(video)
        page.get_by_role("button", name="Convert to MP3").click()
        expect(page.locator("#upload-text")).to_have_text("100%")
    snap(page, shots, "03-converting")
    expect(page.locator("#current-status")).to_have_text("succeeded")
    expect(page.locator("#convert-text")).to_have_text("100%")
    streamed = [json.loads(line)["job"] for line in watch_reply.value.text().splitlines()]
    job_id = streamed[-1]["id"]
    shown = page.evaluate("window.shownPercents")
    real = {f"{job['progressPercent']}%" for job in streamed} | {"0%", "100%"}
    assert set(shown) <= real, f"the bar showed {shown}, the watch stream said {real}"
    assert [int(p[:-1]) for p in shown][-1] == 100

    with page.expect_download() as download:
        page.get_by_role("button", name="Download MP3").click()
    assert download.value.suggested_filename == "holiday.mp3"
    mp3 = tmp_path / "holiday.mp3"
    download.value.save_as(mp3)
    probe = ffprobe(mp3)
    assert [s["codec_name"] for s in probe["streams"]] == ["mp3"]
    assert abs(float(probe["format"]["duration"]) - 20.0) <= 0.2

    page.locator("#video").set_input_files(media / "notes.txt")
    page.get_by_role("button", name="Convert to MP3").click()
    expect(page.locator("#current-status")).to_have_text("failed")
    expect(page.locator("#current-error")).to_contain_text("not a video ffmpeg can read")
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_have_attribute("data-job", job_id)
    expect(rows.nth(1)).to_contain_text("succeeded")
    expect(rows.nth(0)).to_contain_text("not a video")
    snap(page, shots, "04-jobs-done-and-failed")

    with page.expect_download() as again:
        rows.nth(1).get_by_role("button", name="Download").click()
    again.value.save_as(tmp_path / "again.mp3")
    assert (tmp_path / "again.mp3").read_bytes() == mp3.read_bytes()

    token = page.evaluate("localStorage.getItem('mp3mesh.token')")
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#notice")).to_have_text("You are logged out.")
    expect(page.locator("#signed-out")).to_be_visible()
    assert page.evaluate("localStorage.getItem('mp3mesh.token')") is None
    # The server revoked the token: it no longer opens anything.
    me = page.request.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 401
    for password in page.locator("input[type=password]").all():
        expect(password).to_have_value("")  # nothing typed earlier stays on the page
    snap(page, shots, "05-logged-out")


def test_job_controls_and_the_details_panel(
    page: Page, shots: Path, video: Path, media: Path, stack: Stack
) -> None:
    """Cancel (the converter paused, so the job is still queued), Retry, Details (GetJob's
    full view) and Delete, from the jobs table."""
    page.goto("/")
    sign_up(page)
    page.on("dialog", lambda dialog: dialog.accept())  # Delete asks first
    rows = page.locator("#jobs tbody tr")
    converter = stack.service_process("converter")
    converter.suspend()
    try:
        page.locator("#video").set_input_files(video)
        page.get_by_role("button", name="Convert to MP3").click()
        expect(page.locator("#upload-text")).to_have_text("100%")
        expect(rows.nth(0).get_by_role("button", name="Cancel")).to_be_visible()
        rows.nth(0).get_by_role("button", name="Cancel").click()
        expect(rows.nth(0)).to_contain_text("cancelled")
        snap(page, shots, "06-cancelled")
    finally:
        converter.resume()
    rows.nth(0).get_by_role("button", name="Retry").click()
    expect(page.locator("#current-status")).to_have_text("succeeded")
    rows.nth(0).get_by_role("button", name="Details").click()
    details = page.locator("#details")
    expect(details).to_be_visible()
    expect(details).to_contain_text("mov,mp4")
    expect(details).to_contain_text("-i")
    expect(details).to_contain_text("Attempt 1")
    expect(details).to_contain_text("succeeded")
    snap(page, shots, "07-details")
    job_id = rows.nth(0).get_attribute("data-job")
    rows.nth(0).get_by_role("button", name="Delete").click()
    expect(rows).to_have_count(0)
    expect(details).to_be_hidden()
    token = page.evaluate("localStorage.getItem('mp3mesh.token')")
    gone = page.request.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    assert gone.status == 404 and "was deleted" in gone.json()["message"]


def test_a_wrong_password_is_said(page: Page, shots: Path) -> None:
    page.goto("/")
    email = sign_up(page)
    page.get_by_role("button", name="Log out").click()
    form = page.locator("#login-form")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill("not the password")
    form.get_by_role("button", name="Log in").click()
    expect(page.locator("#notice")).to_have_text("email or password is incorrect")
    expect(page.locator("#signed-in")).to_be_hidden()
    snap(page, shots, "06-wrong-password")

    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Log in").click()
    expect(page.locator("#who-email")).to_have_text(email)
    expect(page.locator("#notice")).to_be_hidden()


def test_an_expired_session_sends_the_user_to_log_in(page: Page, shots: Path, stack: Stack) -> None:
    page.goto("/")
    page.evaluate(
        "([key, token]) => localStorage.setItem(key, token)",
        ["mp3mesh.token", stack.expired_token()],
    )
    page.reload()
    expect(page.locator("#notice")).to_have_text("token has expired; log in again")
    expect(page.locator("#signed-out")).to_be_visible()
    assert page.evaluate("localStorage.getItem('mp3mesh.token')") is None
    snap(page, shots, "07-session-expired")


def test_the_page_is_served_whole_with_its_policy(page: Page, edge: tuple[str, str]) -> None:
    """The page and its files come from the edge itself, with a policy that lets nothing
    else in."""
    reply = page.request.get("/")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    for asset, media_type in (("/static/app.js", "javascript"), ("/static/style.css", "css")):
        got = page.request.get(asset)
        assert got.status == 200 and media_type in got.headers["content-type"], asset
    missing = page.request.get("/static/nothing.js")
    assert missing.status == 404
