"""Every relative link in README.md and docs/ leads somewhere: the file exists and, for a
`#fragment`, the page has that heading (GitHub's anchors). Pages move and headings get
renamed; a dead link is found here rather than by a reader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", page.read_text())
    headings = re.findall(r"^#{1,6} (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    dead = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            dead.append(target)
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            dead.append(target)
    assert not dead, f"{page.relative_to(ROOT)}: dead links {dead}"


# Named by the docs but made by a command, not committed (`make descriptor`,
# `make k8s-dev-secrets`).
GENERATED = {"envoy/descriptor.binpb", "k8s/overlays/dev/secrets.env"}
TOP_LEVEL = {p.name for p in ROOT.iterdir()} - {"var", ".venv", "node_modules"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_files_a_page_names_exist(page: Path) -> None:
    """A path in backticks that starts at a top-level folder of the repo
    (`mp3mesh/gateway/relay.py`, `k8s/base/auth.yaml`) is one a reader will look for: it
    must be there."""
    missing = []
    for quoted in re.findall(r"`([^`\s]+)`", page.read_text()):
        path = re.split(r"[#:]", quoted.rstrip(".,;"))[0]
        if "/" not in path or path.split("/")[0] not in TOP_LEVEL or re.search(r"[{}*<]", path):
            continue
        if path not in GENERATED and not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"
