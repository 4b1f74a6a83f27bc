"""The emulator's own admin API (not part of NMP): inspect state and the GPU timeline, change
faults and timings at runtime, reset everything. Tests and demos drive the emulator here."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from flywheel_nmp_emulator.api.deps import FreshEmulator, SchedulerDep
from flywheel_nmp_emulator.config import Faults, Timings
from flywheel_nmp_emulator.journal import RequestJournal

router = APIRouter(prefix="/emulator", tags=["emulator admin"])


@router.get("/state")
async def state(emu: FreshEmulator) -> dict[str, Any]:
    return {
        **emu.state.model_dump(mode="json", exclude={"timeline", "gpu"}),
        "gpus": emu.gpus.snapshot(),
        "served_models": emu.catalog.served_ids(),
        "timings": emu.timings.model_dump(),
        "faults": emu.faults.faults.model_dump(),
        # Only with the real backend on, so the default answer is unchanged.
        **({"real_servers": emu.real.snapshot()} if emu.real is not None else {}),
        **({"real_training": emu.training.snapshot()} if emu.training is not None else {}),
    }


@router.get("/requests")
async def requests(request: Request) -> dict[str, Any]:
    """The JSON bodies clients sent to NMP routes (with NMP_EMULATOR_RECORD_REQUESTS=true)."""
    journal: RequestJournal | None = getattr(request.app.state, "journal", None)
    if journal is None:
        raise HTTPException(status_code=409, detail="start with NMP_EMULATOR_RECORD_REQUESTS=true")
    return {"requests": list(journal.entries)}


@router.get("/usage")
async def usage(emu: FreshEmulator) -> dict[str, Any]:
    """The process's CPU time and the chat completions it answered, so that a benchmark can
    tell the emulator's own cost per request from its client's."""
    return {"cpu_seconds": time.process_time(), "chat_completions": dict(emu.chat_completions)}


@router.get("/timeline")
async def timeline(emu: FreshEmulator, kind: str | None = None) -> dict[str, Any]:
    events = [e.model_dump() for e in emu.state.timeline if kind is None or e.kind == kind]
    return {"events": events}


@router.get("/faults")
async def get_faults(emu: FreshEmulator) -> dict[str, Any]:
    return emu.faults.faults.model_dump()


@router.put("/faults")
async def put_faults(body: Faults, emu: FreshEmulator) -> dict[str, Any]:
    emu.faults.configure(body)
    return body.model_dump()


@router.get("/timings")
async def get_timings(emu: FreshEmulator) -> dict[str, Any]:
    return emu.timings.model_dump()


@router.put("/timings")
async def put_timings(body: Timings, emu: FreshEmulator) -> dict[str, Any]:
    # New values apply to transitions scheduled from now on (running jobs keep their plan).
    emu.timings = body
    return body.model_dump()


@router.post("/reset")
async def reset(emu: FreshEmulator, scheduler: SchedulerDep) -> dict[str, Any]:
    await scheduler.evaluations.close()
    emu.store.reset()
    return {"message": "emulator state cleared"}
