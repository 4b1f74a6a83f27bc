"""Kafka subscribers, thin: each hands its event to the service."""

from flywheel_contracts.events import NimUp, RunCancelled
from flywheel_contracts.runtime import ServiceKit
from flywheel_customizer.service import CustomizerService


def subscribe(kit: ServiceKit, service: CustomizerService) -> None:
    kit.subscribe(NimUp, service.on_nim_up)
    kit.subscribe(RunCancelled, service.on_run_cancelled)
