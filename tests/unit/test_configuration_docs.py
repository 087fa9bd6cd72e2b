"""docs/configuration.md is what scripts/gen_config_docs.py makes of the settings classes:
a setting added, removed, renamed or given another default or comment fails this until
`make docs` is run, so the reference page cannot drift from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_page_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.gen_config_docs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
