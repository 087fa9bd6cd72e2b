"""`python -m cli`: the mp3mesh CLI, as the `mp3mesh` console script runs it."""

from cli.main import main

main()
