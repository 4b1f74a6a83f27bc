"""Request-scoped access to the emulator, advanced to "now" before a handler reads state."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Request, Response

from flywheel_nmp_emulator.runtime import Emulator
from flywheel_nmp_emulator.scheduler import Scheduler


# Dependencies are async on purpose: FastAPI runs sync ones in a worker thread, and the state
# must only ever be touched from the event loop's thread.
async def _scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


def fresh_emulator(request: Request) -> Emulator:
    """The emulator, advanced to now. Hot handlers call it directly: resolving a dependency
    costs FastAPI more than the tick itself."""
    scheduler: Scheduler = request.app.state.scheduler
    # Due transitions happen before the read, so zero timings mean "immediately visible".
    scheduler.tick()
    return scheduler.emu


async def _fresh_emulator(request: Request) -> Emulator:
    return fresh_emulator(request)


FreshEmulator = Annotated[Emulator, Depends(_fresh_emulator)]
SchedulerDep = Annotated[Scheduler, Depends(_scheduler)]


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"{what} not found")


def conflict(what: str) -> HTTPException:
    return HTTPException(status_code=409, detail=f"{what} already exists")


def parse_json(raw: bytes) -> Any:
    """A body as JSON (orjson: faster than FastAPI's model parsing on the hot paths)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(status_code=422, detail=f"invalid JSON body: {exc}") from exc


async def json_body(request: Request) -> Any:
    return parse_json(await request.body())
