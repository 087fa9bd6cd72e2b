"""`python -m mp3mesh.cli`: the mp3mesh CLI, as the `mp3mesh` console script runs it."""

from mp3mesh.cli import run

run()
