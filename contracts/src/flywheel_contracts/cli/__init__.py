"""The `flywheel` command line: start, cancel, watch and report runs; inspect the topics.

The click commands in `main` are thin; building events (`requests`), reducing a run's events to
its progress (`progress`, `runs`) and rendering (`render`) are plain functions over a `Bus`
(`bus`), which `kafka` implements on the real broker.
"""
