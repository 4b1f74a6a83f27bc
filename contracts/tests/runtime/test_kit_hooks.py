"""A service's own start and stop steps run at the right moments of the kit's lifecycle."""

from __future__ import annotations

import pytest

from flywheel_contracts.runtime.kit import ServiceKit
from flywheel_contracts.runtime.settings import ServiceSettings

pytestmark = pytest.mark.unit


class _Settings(ServiceSettings):
    service_name: str = "janitor"


def test_hooks_are_registered_before_start_only() -> None:
    kit = ServiceKit(_Settings())
    calls: list[str] = []

    async def hook() -> None:
        calls.append("ran")

    kit.on_start(hook)
    kit.on_stop(hook)
    kit._started = True  # as `start` leaves it
    with pytest.raises(RuntimeError):
        kit.on_start(hook)
    with pytest.raises(RuntimeError):
        kit.on_stop(hook)
    assert calls == []


async def test_every_stop_hook_runs_even_when_stopping_the_kit_or_another_hook_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kit = ServiceKit(_Settings())
    closed: list[str] = []

    async def failing() -> None:
        closed.append("failing")
        raise OSError("already closed")

    async def closing() -> None:
        closed.append("closing")

    async def broken_consumer_stop() -> None:
        raise RuntimeError("consumer stop failed")

    kit.on_stop(failing)
    kit.on_stop(closing)
    monkeypatch.setattr(kit, "_stop_consuming", broken_consumer_stop)
    with pytest.raises(RuntimeError, match="consumer stop failed"):
        await kit.stop()
    assert closed == ["failing", "closing"]
