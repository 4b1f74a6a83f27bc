"""The janitor's subscriptions: every topic the catalog says it consumes, each to one method."""

from flywheel_contracts import events as ev
from flywheel_contracts.runtime import ServiceKit
from flywheel_janitor.service import JanitorService


def subscribe(kit: ServiceKit, service: JanitorService) -> None:
    kit.subscribe(ev.RunRequested, service.on_run_requested)
    kit.subscribe(ev.RunCancelled, service.on_run_cancelled)
    kit.subscribe(ev.DatasetReady, service.on_dataset_ready)
    kit.subscribe(ev.DatasetFailed, service.on_dataset_failed)
    kit.subscribe(ev.NimUp, service.on_nim_up)
    kit.subscribe(ev.NimFailed, service.on_nim_failed)
    kit.subscribe(ev.NimDown, service.on_nim_down)
    kit.subscribe(ev.CustomizationStarted, service.on_customization_started)
    kit.subscribe(ev.CustomizationProgress, service.on_customization_progress)
    kit.subscribe(ev.CustomizationDone, service.on_customization_done)
    kit.subscribe(ev.EvalStarted, service.on_eval_started)
    kit.subscribe(ev.EvalProgress, service.on_eval_progress)
    kit.subscribe(ev.EvalDone, service.on_eval_done)
    kit.subscribe(ev.RunCompleted, service.on_run_completed)
    kit.subscribe(ev.RunFailed, service.on_run_failed)
    kit.subscribe(ev.ServiceStopping, service.on_service_stopping)
    kit.subscribe(ev.SystemShutdown, service.on_system_shutdown)
