"""Flywheel local stack: real servers without Docker."""
