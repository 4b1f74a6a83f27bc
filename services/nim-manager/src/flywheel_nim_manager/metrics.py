"""nim-manager's Prometheus metrics (default registry, next to the kit's delivery metrics)."""

from prometheus_client import Gauge

LEADER = Gauge(
    "flywheel_nim_manager_scheduler_leader", "1 while this instance holds the scheduler lease."
)
GPUS_IN_USE = Gauge(
    "flywheel_nim_manager_gpus_in_use",
    "GPUs held by candidate deployments at the last scheduler pass (leader only).",
)
QUEUED = Gauge(
    "flywheel_nim_manager_queued_candidates",
    "Candidates waiting for GPUs at the last scheduler pass (leader only).",
)
