"""`python -m cli`: the mp3mesh CLI, as the `mp3mesh` console script runs it."""

from cli import run

run()
