"""Deployments of the real model follow their servers: pending until the server answers its
health check, ready then, failed (with the end of its log) when it does not come up; a ready
deployment whose server is missing (after an emulator restart), died, or lacks a newly
registered adapter gets it started again. A server whose deployment is gone (deleted, reclaimed,
reset) is stopped. Runs in every scheduler tick, after the GPU grant.
"""

from __future__ import annotations

import logging

from flywheel_nmp_emulator.jobs.deployments import holder
from flywheel_nmp_emulator.real.adapters import adapters_for
from flywheel_nmp_emulator.real.servers import RealServers
from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.state.records import Deployment

log = logging.getLogger(__name__)


def reconcile(emu: Emulator, now: float) -> bool:
    """Bring servers and deployment statuses in line; True when a deployment changed."""
    servers = emu.real
    if servers is None:
        return False
    changed = False
    for key, dep in emu.state.deployments.items():
        if not servers.serves(dep.model):
            continue
        if dep.status == "pending" and dep.gpus_granted_at is not None:
            changed |= _starting(emu, servers, key, dep, now)
        elif dep.status == "ready":
            changed |= _serving(emu, servers, key, dep, now)
    for key in servers.deployments():
        owner = emu.state.deployments.get(key)
        if owner is None or owner.status == "failed":
            servers.stop(key)
    return changed


def _starting(emu: Emulator, servers: RealServers, key: str, dep: Deployment, now: float) -> bool:
    server = servers.get(key)
    if server is None:
        if emu.faults.job_fails("deployment", dep.model):
            _fail(emu, key, dep, now, "injected fault")
            return True
        server = servers.start(key, adapters_for(emu.state, dep.model))
        dep.description = f"starting llama-server for {dep.model} (pid {server.pid})"
        return True
    if server.failure is not None:
        servers.stop(key)
        _fail(emu, key, dep, now, server.failure)
        return True
    if server.ready:
        dep.status = "ready"
        dep.ready_at = now
        dep.description = f"NIM {dep.model} is ready (llama-server pid {server.pid})"
        emu.store.record("deployment", key, "ready", f"llama-server pid {server.pid}")
        return True
    return False


def _serving(emu: Emulator, servers: RealServers, key: str, dep: Deployment, now: float) -> bool:
    server = servers.get(key)
    if server is not None and server.failure is not None:
        # A restart that did not come up: the deployment no longer serves.
        servers.stop(key)
        _fail(emu, key, dep, now, server.failure)
        return True
    adapters = adapters_for(emu.state, dep.model)
    if server is None:
        reason = "no server (emulator restarted)"
    elif server.process.exit_code() is not None:
        reason = f"llama-server exited with {server.process.exit_code()}"
    elif server.adapters != tuple(model for model, _ in adapters):
        # llama-server loads adapters only at start; a new one needs a new process.
        reason = "its LoRA adapters changed"
    else:
        return False
    log.warning("restarting llama-server for %s: %s", key, reason)
    server = servers.start(key, adapters)
    # Still ready: requests wait for the new process (proxy.py), as behind a NIM's rolling restart.
    dep.description = (
        f"NIM {dep.model} is ready (llama-server pid {server.pid}, restarted: {reason})"
    )
    emu.store.record("deployment", key, "restarted", f"{reason}; pid {server.pid}")
    return True


def _fail(emu: Emulator, key: str, dep: Deployment, now: float, reason: str) -> None:
    dep.status = "failed"
    dep.ready_at = now
    dep.description = f"NIM {dep.model} failed to start: {reason}"
    emu.gpus.release(holder(dep))
    emu.store.record("deployment", key, "failed", reason)
