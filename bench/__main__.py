"""``python -m bench [--quick] [module ...]``: one stack, every bench module, results.md."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import pkgutil
import platform
import subprocess
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

import psutil

import bench
from bench.core import Bench, Section
from devstack import SERVICES, service_stack
from mp3mesh.core import limits

RESULTS = Path(__file__).with_name("results.md")
ROOT = Path(__file__).resolve().parent.parent
# The bench stack runs the services' defaults, not the fault suite's short timeouts.
STACK_SETTINGS = {
    "MAX_UPLOAD_BYTES": str(limits.MAX_UPLOAD_BYTES),
    "MONGO_TIMEOUT_MS": "10000",
    "LEASE_SECONDS": "60",
    "PUBLISH_TIMEOUT_SECONDS": "10",
    "RELAY_INTERVAL_SECONDS": "5",
    "CONCURRENT_CONVERSIONS": "0",
    # One bench user submits 32 jobs at once and watches them all.
    "MAX_UPLOADS_PER_USER": "64",
    "MAX_WATCHES_PER_USER": "64",
    "LOG_LEVEL": "WARNING",
}


def modules(names: list[str]) -> list[ModuleType]:
    """Every module of the package with a ``run``, or those named; sorted by ORDER. A
    module with ``DEFAULT = False`` runs only when named."""
    found = []
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name.startswith("_") or info.name == "core" or (names and info.name not in names):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)) and (names or getattr(module, "DEFAULT", True)):
            found.append(module)
    return sorted(found, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def machine() -> list[str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(  # code changed since the commit (documents do not count)
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
         ".", ":(exclude)*.md"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return [
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- commit: `{commit[:100]}`" + (" (with uncommitted changes)" if dirty else ""),
        f"- machine: {cpu}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 1024**3:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
    ]


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="bench modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller runs")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    chosen = modules(args.names)
    header = ["# Benchmark results", "", *machine(), f"- load average (1, 5, 15 min): {load()}"]
    sections: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mp3mesh-bench-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        with service_stack(Path(tmp) / "stack", (*SERVICES, "envoy"), **STACK_SETTINGS) as stack:
            context = Bench(stack=stack, work=work, quick=args.quick)
            for module in chosen:
                name = module.__name__.removeprefix("bench.")
                print(f"bench: {name} ...", flush=True)
                t = time.monotonic()
                try:
                    section: Section = module.run(context)
                    text = section.markdown()
                except Exception:
                    text = f"## {name}\n\nFAILED:\n\n```\n{traceback.format_exc()}```\n"
                took = time.monotonic() - t
                print(text, f"({took:.0f} s)", flush=True)
                sections.append(text + f"\n_{name}: {took:.0f} s_\n")
    header += [
        f"- load average at the end: {load()}",
        f"- `python -m bench{' --quick' if args.quick else ''}` took "
        f"{time.monotonic() - started:.0f} s (stack start included)",
        "",
        "Each ratio compares two figures measured one after the other in this run, on the",
        "same stack and files. The MongoDB stand-in (nx-27017) and RabbitMQ run on the same",
        "machine as the mesh, so they share its cores.",
        "",
    ]
    args.output.write_text("\n".join(header) + "\n" + "\n".join(sections))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
