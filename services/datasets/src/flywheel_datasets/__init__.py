"""Flywheel datasets: on `run.requested`, a workload's logged traffic becomes validated,
deduplicated, leakage-safe evaluation, ICL, training and validation datasets in NMP, announced
by `dataset.ready` (or `dataset.failed` with the reason)."""
