"""Issue 3, acceptance 2: a consumer killed with SIGKILL after its effect, before its commit,
gets the event again on restart and the effect still happens once."""

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts.envelope import Envelope
from flywheel_contracts.runtime.publisher import Publisher
from flywheel_contracts.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).with_name("crash_consumer.py")
EFFECTS = "crash_effects"
START_TIMEOUT_S = 60


def _environment(settings: ServiceSettings) -> dict[str, str]:
    return {
        **os.environ,
        "FLYWHEEL_SERVICE_NAME": settings.service_name,
        "FLYWHEEL_HTTP_PORT": "0",
        "FLYWHEEL_LOG_FORMAT": "json",
        "FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "FLYWHEEL_KAFKA__SESSION_TIMEOUT_MS": str(settings.kafka.session_timeout_ms),
        "FLYWHEEL_MONGO__URL": settings.mongo.url.get_secret_value(),
        "FLYWHEEL_MONGO__DATABASE": settings.mongo.database,
    }


async def _spawn(settings: ServiceSettings, topic: str, kill_at: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        topic,
        kill_at,
        env=_environment(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _log_lines(process: asyncio.subprocess.Process) -> AsyncIterator[dict[str, Any]]:
    assert process.stdout is not None
    async for raw in process.stdout:
        try:
            yield json.loads(raw)
        except ValueError:
            continue


async def _summary_of(process: asyncio.subprocess.Process, event: Envelope[Any]) -> dict[str, Any]:
    """The process's `event.handled` line about `event`."""
    async with asyncio.timeout(START_TIMEOUT_S):
        async for line in _log_lines(process):
            if line.get("event") == "event.handled" and line.get("event_id") == str(event.event_id):
                return line
    raise AssertionError(f"process exited with {await process.wait()} before handling the event")


async def _terminate(process: asyncio.subprocess.Process) -> list[str]:
    """SIGTERM `process` and return what it logged until it exited."""
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(START_TIMEOUT_S):
        events = [str(line.get("event")) async for line in _log_lines(process)]
        # uvicorn re-raises the signal once its graceful shutdown is done.
        assert await process.wait() == -signal.SIGTERM
    return events


async def _publish(settings: ServiceSettings, topic: str, event: Envelope[Any]) -> None:
    publisher = Publisher(settings.kafka, client_id="crash-test")
    publisher.start()
    try:
        await publisher.publish(event, topic=topic)
    finally:
        await publisher.close()


@pytest.mark.parametrize(
    ("kill_at", "restart_outcome", "runs"),
    [
        # Marked processed, offset not committed: redelivered and skipped as a duplicate.
        ("after_mark", "duplicate", 1),
        # Effect done, not yet marked: redelivered and handled again by an idempotent handler.
        ("after_effect", "ok", 2),
    ],
)
async def test_a_consumer_killed_before_its_commit_gets_the_event_again_and_it_takes_effect_once(
    make_topic: Callable[[], str],
    settings_for: Callable[..., ServiceSettings],
    kit_db: AsyncDatabase[dict[str, Any]],
    make_event: Callable[..., Envelope[Any]],
    kill_at: str,
    restart_outcome: str,
    runs: int,
) -> None:
    topic, settings, event = make_topic(), settings_for(), make_event()
    await _publish(settings, topic, event)

    doomed = await _spawn(settings, topic, kill_at)
    async with asyncio.timeout(START_TIMEOUT_S):
        assert await doomed.wait() == -signal.SIGKILL

    restarted = await _spawn(settings, topic, "never")
    try:
        summary = await _summary_of(restarted, event)
    finally:
        shutdown_log = await _terminate(restarted)

    assert summary["outcome"] == restart_outcome
    assert "service.stopping_published" in shutdown_log
    assert "service.stopped" in shutdown_log
    effects = (
        await kit_db[EFFECTS].find({"_id": f"{settings.service_name}:{event.event_id}"}).to_list()
    )
    assert effects == [{"_id": f"{settings.service_name}:{event.event_id}", "runs": runs}]
