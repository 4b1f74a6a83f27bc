"""Poison never stalls and never vanishes, on a live janitor and the real stack: every class of
bad message on `run.cancelled` ends in `run.cancelled.dlq` with its reason, the janitor stays
ready, and a cancellation published after them still takes effect."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from pymongo import AsyncMongoClient

from flywheel_contracts.envelope import decode, encode, new_event
from flywheel_contracts.events import ResourcesReclaimed, RunCancelled
from flywheel_contracts.runtime import DeliverySettings, KafkaSettings, MongoSettings
from flywheel_contracts.runtime.nmp import NmpSettings
from flywheel_contracts.runtime.poison import KINDS, poison_for
from flywheel_contracts.runtime.testing import eventually, read_topic
from flywheel_janitor.app import create_app
from flywheel_janitor.config import JanitorSettings, SweepSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MB = 1024 * 1024
POISON = poison_for(RunCancelled.EVENT_TYPE)


@pytest.fixture
async def janitor(
    kafka_bootstrap: str, mongo_url: str, nmp_url: str
) -> AsyncIterator[tuple[JanitorSettings, httpx.AsyncClient]]:
    prefix = f"tpoison{uuid.uuid4().hex[:8]}."
    database = f"janitor_poison_{uuid.uuid4().hex[:8]}"
    settings = JanitorSettings(
        instance_id=f"janitor-{prefix}",
        group_id=f"flywheel.janitor.{prefix}",
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, session_timeout_ms=6000
        ),
        mongo=MongoSettings(url=mongo_url, database=database),
        delivery=DeliverySettings(max_attempts=2, backoff_base_s=0.05, backoff_max_s=0.2),
        shutdown_timeout_s=5.0,
        nmp=NmpSettings(nemo_base_url=nmp_url, nim_base_url=nmp_url, datastore_base_url=nmp_url),
        sweeps=SweepSettings(orphans_enabled=False),
    )
    app = create_app(settings)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://janitor") as c,
        ):
            yield settings, c
    finally:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        await mongo.drop_database(database)
        await mongo.close()
        await asyncio.to_thread(_delete_topics, kafka_bootstrap, prefix)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=10).values():
            future.result(timeout=15)


def _produce(bootstrap: str, topic: str, messages: list[tuple[str, bytes | None]]) -> None:
    """Raw records as any client could write them (the broker takes up to 4 MiB)."""
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 4 * MB})
    errors: list[object] = []
    for name, value in messages:
        producer.produce(
            topic,
            value=value,
            key=name.encode(),
            headers=[("poison", name.encode())],
            on_delivery=lambda error, _m: errors.append(error) if error else None,
        )
    assert producer.flush(30) == 0
    assert errors == []


async def test_every_poison_class_is_dead_lettered_and_the_janitor_goes_on(
    janitor: tuple[JanitorSettings, httpx.AsyncClient], kafka_bootstrap: str
) -> None:
    settings, http = janitor
    topic = settings.kafka.topic(RunCancelled.EVENT_TYPE)
    good = new_event(
        RunCancelled(reason="after the poison"), producer="client", run_id=uuid.uuid4()
    )
    # One partition for all of them (same key), so the good event queues behind the poison.
    records = [(name, value) for name, value in POISON.items()]
    await asyncio.to_thread(_produce, kafka_bootstrap, topic, records)
    await asyncio.to_thread(_produce, kafka_bootstrap, topic, [("good", encode(good))])

    reclaimed = settings.kafka.topic(ResourcesReclaimed.EVENT_TYPE)
    reports: list[Any] = []

    async def reported() -> bool:
        messages = await asyncio.to_thread(read_topic, kafka_bootstrap, reclaimed, 1, 1.0)
        reports[:] = [decode(m.value() or b"") for m in messages]
        return bool(reports)

    await eventually(reported, timeout_s=60)
    assert reports[0].run_id == good.run_id

    dead = await asyncio.to_thread(
        read_topic, kafka_bootstrap, f"{topic}.dlq", len(POISON) + 1, 10.0
    )
    by_name = {(m.key() or b"").decode(): m for m in dead}
    assert sorted(by_name) == sorted(POISON)
    for name, message in by_name.items():
        headers = dict(message.headers() or [])
        assert headers["dlq.kind"] == KINDS[name].encode(), name
        assert headers["dlq.reason"] == b"invalid_event", name
        assert headers["dlq.origin.topic"] == topic.encode(), name
        assert headers["dlq.error"], name
        assert headers["poison"] == name.encode(), name
        assert message.value() == POISON[name], name  # whole, the 1.5 MB one too
    ready = await http.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["dead_letters"]["ok"] is True
