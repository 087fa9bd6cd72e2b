"""Benchmarks: ``make bench`` (``python -m bench``) starts one private stack, runs every
module of this package that defines ``run(bench) -> Section`` (found by name, so nobody
lists them by hand), and writes ``bench/results.md``: the machine, date and commit, then
one section per module, each figure side by side with its baseline from the same run.

A module's ``ORDER`` (default 100) sorts the sections. ``python -m bench name ...`` runs
only the modules named; ``--quick`` asks modules for fewer repetitions and smaller sizes
(a smoke run, not figures to quote). Benchmarks report; nothing here fails on a timing.
"""
