"""docs/configuration.md is what scripts/gen_config_docs.py makes of the settings classes:
a setting added, removed, renamed or given another default or comment fails this until
`make docs` is run, so the reference page cannot drift from the code."""

from __future__ import annotations

import difflib
import importlib


def test_the_configuration_page_is_current() -> None:
    generator = importlib.import_module("scripts.gen_config_docs")
    written = generator.OUTPUT.read_text() if generator.OUTPUT.exists() else ""
    wanted = generator.render()
    diff = "".join(difflib.unified_diff(written.splitlines(True), wanted.splitlines(True)))
    assert written == wanted, f"docs/configuration.md is stale: run `make docs`\n{diff[:3000]}"
