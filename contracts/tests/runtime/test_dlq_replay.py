"""`flywheel dlq replay` on the real Kafka and database: a dead-lettered event goes back to its
topic and takes effect once, however often it is replayed."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result
from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts.catalog import dlq_topic
from flywheel_contracts.cli.main import cli
from flywheel_contracts.envelope import Envelope, encode
from flywheel_contracts.errors import PermanentError
from flywheel_contracts.events import RunCancelled
from flywheel_contracts.runtime.kit import ServiceKit
from flywheel_contracts.runtime.settings import ServiceSettings
from flywheel_contracts.runtime.testing import eventually, read_topic, running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class FlakyEffect:
    """Refuses every event while `broken`, as a handler before its bug was fixed; its effect is
    a document per handling (not idempotent by itself: the kit's processed ids make it so)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.effects = db[f"replay_effects_{id(self)}"]
        self.broken = True

    async def __call__(self, event: Envelope[RunCancelled]) -> None:
        if self.broken:
            raise PermanentError("not today")
        await self.effects.insert_one({"event_id": str(event.event_id)})

    async def count(self, event: Envelope[Any]) -> int:
        return await self.effects.count_documents({"event_id": str(event.event_id)})


def _consumed(topic: str, outcome: str) -> float:
    labels = {"topic": topic, "outcome": outcome}
    return REGISTRY.get_sample_value("flywheel_events_consumed_total", labels) or 0.0


async def _flywheel(bootstrap: str, *args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cli, ["--bootstrap", bootstrap, *args])


async def test_a_replayed_dead_letter_takes_effect_once(
    make_topic: Callable[[], str],
    settings_for: Callable[..., ServiceSettings],
    kit_db: AsyncDatabase[dict[str, Any]],
    make_event: Callable[..., Envelope[Any]],
) -> None:
    topic, handler, event = make_topic(), FlakyEffect(kit_db), make_event()
    kit = ServiceKit(settings_for())
    kit.subscribe(RunCancelled, handler, topic=topic)
    bootstrap = kit.settings.kafka.bootstrap_servers

    async with running(kit):
        await kit.publisher.publish(event, topic=topic)
        await eventually(lambda: _consumed(topic, "dead_lettered") == 1)
        listed = await _flywheel(bootstrap, "dlq", "list", topic)
        assert listed.exit_code == 0, listed.output
        assert listed.stdout.split()[:3] == ["0", f"{topic}[0]@0", "permanent_error/handler"]

        handler.broken = False  # the bug is fixed; now the event can be replayed
        replayed = await _flywheel(bootstrap, "dlq", "replay", dlq_topic(topic), "0")
        assert replayed.exit_code == 0, replayed.output
        await eventually(lambda: _consumed(topic, "ok") == 1)
        # A second replay of the same dead letter is a duplicate, not a second effect.
        again = await _flywheel(bootstrap, "dlq", "replay", topic, "0")
        assert again.exit_code == 0, again.output
        await eventually(lambda: _consumed(topic, "duplicate") == 1)

    assert await handler.count(event) == 1
    messages = await asyncio.to_thread(read_topic, bootstrap, topic, 3)
    assert [m.value() for m in messages] == [encode(event)] * 3
    replay = dict(messages[1].headers() or [])
    assert replay["replay.from"] == f"{dlq_topic(topic)}@0".encode()
    assert not any(name.startswith("dlq.") for name in replay)
    # Still just the one dead letter: the replays took effect or were skipped.
    assert len(await asyncio.to_thread(read_topic, bootstrap, dlq_topic(topic), 2, 2.0)) == 1
