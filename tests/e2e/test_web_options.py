"""The web page's conversion options in a real browser (Chromium via playwright), through
each edge: presets listed from /v1/presets, options chosen in the form reach the job and
the MP3 (ffprobe), and an out-of-range value is refused with the gateway's words."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from devstack import make_video
from tests.e2e.test_options import probe
from tests.e2e.test_web import ARTIFACTS, WAIT_MS, browser, edge, page, sign_up

pytestmark = pytest.mark.e2e
__all__ = ["browser", "edge", "page"]  # fixtures of test_web, used here


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """A loaded machine registers and converts slowly: expect() waits as long as the
    page's actions do (WAIT_MS) rather than its 5 s default, for this module's tests."""
    expect.set_options(timeout=WAIT_MS)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("web-options") / "talk.mp4", 5)


def test_options_from_the_page_shape_the_mp3(
    page: Page, edge: tuple[str, str], video: Path, tmp_path: Path
) -> None:
    page.goto("/")
    sign_up(page)
    page.locator("#options summary").click()
    preset = page.locator("select[name=preset]")
    expect(preset.locator("option")).to_contain_text(
        ["(none)", "default", "music-320", "podcast-mono-64", "voice-normalized"]
    )
    preset.select_option("podcast-mono-64")
    page.locator("select[name=bitrate_kbps]").select_option("96")
    page.locator("select[name=sample_rate_hz]").select_option("32000")
    page.locator("input[name=start]").fill("1")
    page.locator("input[name=end]").fill("0:03.5")
    page.locator("input[name=title]").fill("Page Title")
    page.locator("input[name=cover_at]").fill("2")
    shots = ARTIFACTS / "options" / edge[0]
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=shots / "01-options.png", full_page=True)

    page.locator("#video").set_input_files(video)
    page.get_by_role("button", name="Convert to MP3").click()
    expect(page.locator("#current-status")).to_have_text("succeeded")
    expect(page.locator("#current-options")).to_contain_text("preset=podcast-mono-64")
    expect(page.locator("#current-options")).to_contain_text("bitrateKbps=96")
    page.screenshot(path=shots / "02-converted.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download MP3").click()
    mp3 = tmp_path / "talk.mp3"
    download.value.save_as(mp3)
    seen = probe(mp3)
    assert (seen["bitrate"], seen["channels"], seen["rate"]) == (96000, 1, 32000)
    assert abs(seen["duration"] - 2.5) <= 0.1
    assert seen["tags"]["title"] == "Page Title" and len(seen["pictures"]) == 1

    page.locator("input[name=loudness_lufs]").evaluate("(e) => { e.min = ''; e.max = ''; }")
    page.locator("input[name=loudness_lufs]").fill("-99")
    page.get_by_role("button", name="Convert to MP3").click()
    expect(page.locator("#notice")).to_contain_text("loudness_lufs: -99 is out of range")


def test_the_page_lists_lames_bitrates() -> None:
    """The page's bitrate and VBR lists are the gateway's (mp3mesh/core/options.py)."""
    from mp3mesh.core import options

    script = (Path(__file__).parents[2] / "mp3mesh/shim/web/app.js").read_text()
    bitrates = ", ".join(map(str, options.CBR_BITRATES_KBPS))
    assert f"const BITRATES = [{bitrates}];" in script
    names = ", ".join(f'"{n}"' for n in options.FIELDS)
    flat = " ".join(script.split())
    assert f"const OPTION_NAMES = [{names}];" in flat
    assert (
        subprocess.run(
            ["node", "--check", "mp3mesh/shim/web/app.js"], cwd=Path(__file__).parents[2]
        ).returncode
        == 0
    )
