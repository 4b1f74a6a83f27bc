"""Subscriptions: each handler decodes nothing itself (the kit hands it a typed envelope) and
only records work through the service; evaluations run in the worker loop."""

from flywheel_contracts.events import CustomizationDone, NimUp, RunCancelled
from flywheel_contracts.runtime import ServiceKit
from flywheel_evaluator.service import EvaluatorService


def subscribe(kit: ServiceKit, service: EvaluatorService) -> None:
    kit.subscribe(NimUp, service.on_nim_up)
    kit.subscribe(CustomizationDone, service.on_customization_done)
    kit.subscribe(RunCancelled, service.on_run_cancelled)
