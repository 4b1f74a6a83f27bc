"""Flywheel evaluator: turns deployed candidates into trustworthy scores, latency and cost."""
