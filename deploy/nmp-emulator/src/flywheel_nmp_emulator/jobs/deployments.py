"""Deployment lifecycle: pending (waiting for GPUs, then starting) -> ready, or failed."""

from __future__ import annotations

from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import Deployment


def holder(deployment: Deployment) -> str:
    return f"deployment:{deployment_id(deployment)}"


def deployment_id(deployment: Deployment) -> str:
    return f"{deployment.namespace}/{deployment.name}"


def advance(emu: Emulator, now: float) -> bool:
    changed = False
    gpus = emu.gpus
    for dep in emu.state.deployments.values():
        if dep.status != "pending":
            continue
        key = holder(dep)
        if dep.gpus_granted_at is None:
            if gpus.holds(key):
                dep.gpus_granted_at = now
                # A real deployment is ready when its server is (real/lifecycle.py), not on time.
                real = emu.real is not None and emu.real.serves(dep.model)
                dep.ready_at = None if real else now + emu.timings.deploy_seconds
                dep.description = f"starting NIM {dep.model} on {dep.gpus} GPU(s)"
                emu.store.record("deployment", deployment_id(dep), "started", f"{dep.gpus} GPU(s)")
                changed = True
            else:
                message = gpus.waiting_message(key)
                if message != dep.description:
                    dep.description = message
                    changed = True
                continue
        if dep.ready_at is not None and now >= dep.ready_at:
            if emu.faults.job_fails("deployment", dep.model):
                dep.status = "failed"
                dep.description = f"NIM {dep.model} failed to start (injected fault)"
                gpus.release(key)
                emu.store.record("deployment", deployment_id(dep), "failed", dep.description)
            else:
                dep.status = "ready"
                dep.description = f"NIM {dep.model} is ready"
                emu.store.record("deployment", deployment_id(dep), "ready")
            changed = True
    return changed
