"""Where a secret must never be: the places a leak check searches after a run (every service's
log, `/metrics` and `/asyncapi`, every message of the flywheel's topics, the run's report, the dataset files)."""

from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from flywheel_contracts.cli.bus import Record
from flywheel_contracts.cli.kafka import KafkaBus
from flywheel_contracts.cli.runs import read_run_events
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.report import build_report
from flywheel_localstack.services import SERVICES, Flywheel, FlywheelSetup
from tests.support.runs import kafka


def places_of(
    setup: FlywheelSetup, flywheel: Flywheel, logs: Path, run_id: UUID, files: dict[str, bytes]
) -> dict[str, bytes]:
    """Every place to search, by a name that says where it is."""
    places = {
        **{f"log {name}": (logs / f"{name}.log").read_bytes() for name in SERVICES},
        **{f"/metrics {name}": served(flywheel, name, "/metrics") for name in SERVICES},
        **{f"/asyncapi {name}": served(flywheel, name, "/asyncapi") for name in SERVICES},
        **topic_messages(setup),
        "report": build_report(run_id, run_events(setup, run_id)).encode(),
        **files,
    }
    assert any(name.startswith("topic ") for name in places)
    return places


def leaks(secret: str, places: dict[str, bytes]) -> list[str]:
    """The places holding `secret`."""
    return [name for name, content in places.items() if secret.encode() in content]


def served(flywheel: Flywheel, name: str, path: str) -> bytes:
    response = httpx.get(f"{flywheel[name].url}{path}", timeout=10)
    response.raise_for_status()
    return response.content


def topic_messages(setup: FlywheelSetup) -> dict[str, bytes]:
    """Every message of every topic under the flywheel's prefix (dead-letter topics too): value,
    key and headers, joined per topic."""
    consumer = Consumer(
        {
            **setup.servers.kafka().client_config(),
            "group.id": f"{setup.name}-leak-check",
            "enable.auto.commit": False,
        }
    )
    found: dict[str, bytes] = {}
    try:
        topics = consumer.list_topics(timeout=10).topics
        for topic, metadata in topics.items():
            if topic.startswith(setup.topic_prefix):
                found[f"topic {topic}"] = _read_all(consumer, topic, list(metadata.partitions))
    finally:
        consumer.close()
    return found


def _read_all(consumer: Consumer, topic: str, partitions: list[int]) -> bytes:
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in partitions
    }
    left = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in left])
    chunks: list[bytes] = []
    while left:
        message = consumer.poll(10)
        assert message is not None, f"{topic}: no message while {sorted(left)} not read to the end"
        if message.error():
            continue
        chunks += [message.value() or b"", message.key() or b""]
        # Names and values as their repr: a urlsafe key shows in it as itself.
        chunks.append(repr(message.headers()).encode())
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        if offset + 1 >= ends[partition]:
            left.discard(partition)
    consumer.unassign()
    return b"\n".join(chunks)


def run_events(setup: FlywheelSetup, run_id: UUID) -> list[Any]:
    def refuse(_record: Record, problem: InvalidEvent) -> None:
        raise AssertionError(f"an invalid event on the run's topics: {problem}")

    return list(read_run_events(KafkaBus(kafka(setup)), run_id, refuse))


def dataset_files(nmp_folder: Path) -> dict[str, bytes]:
    """The files the datasets service uploaded, as the emulator's Data Store keeps them."""
    data = nmp_folder / "state.data"
    return {f"file {p.relative_to(data)}": p.read_bytes() for p in data.rglob("*") if p.is_file()}
