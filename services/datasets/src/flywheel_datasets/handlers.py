"""Subscriptions: the kit decodes each event; the service records or cancels the run's job."""

from flywheel_contracts.events import RunCancelled, RunRequested
from flywheel_contracts.runtime import ServiceKit
from flywheel_datasets.service import DatasetService


def subscribe(kit: ServiceKit, service: DatasetService) -> None:
    # A request whose overrides fail validation is dead-lettered, and its run failed first.
    kit.subscribe(RunRequested, service.on_run_requested, on_invalid=service.on_invalid_run_request)
    kit.subscribe(RunCancelled, service.on_run_cancelled)
