"""Helpers to write into the shipper's folder and read back what reached logs.raw."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from flywheel_localstack.pytest_plugin import StackHandle

TOPIC = "logs.raw"


def end_offsets(bootstrap: str) -> list[TopicPartition]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        partitions = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        return [
            TopicPartition(
                TOPIC, p, consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
            )
            for p in partitions
        ]
    finally:
        consumer.close()


def shipped(
    bootstrap: str, start: list[TopicPartition], path: Path, expected: int, timeout_s: float = 45
) -> list[dict[str, object]]:
    """The records shipped from `path` since `start`, waiting until `expected` arrived.

    The shipper keys every message by its file's path.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign(start)
    key = str(path).encode()
    found: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout_s
    linger_until: float | None = None
    try:
        while time.monotonic() < (linger_until or deadline):
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                value = message.value()
                if message.error() is None and message.key() == key and value is not None:
                    found.append(json.loads(value))
            if len(found) >= expected and linger_until is None:
                # Keep reading briefly: a duplicate would arrive right behind.
                linger_until = time.monotonic() + 1.5
    finally:
        consumer.close()
    return found


def append(path: Path, seqs: Iterable[int], pad: int = 0) -> None:
    with path.open("a") as handle:
        for seq in seqs:
            handle.write(json.dumps({"seq": seq, "file": path.name, "pad": "x" * pad}) + "\n")


def shipper_folder(stack: StackHandle) -> Path:
    if stack.shipper_dir is None:
        pytest.skip("this stack has no log shipper folder")
    return stack.shipper_dir


def shipper_delivers(stack: StackHandle, timeout_s: float = 30) -> bool:
    """Write one probe line and tell whether it reaches logs.raw in time.

    At least once: around a broker restart the shipper may deliver a line twice.
    """
    start = end_offsets(stack.kafka_bootstrap)
    probe = shipper_folder(stack) / f"probe-{uuid.uuid4().hex[:8]}.jsonl"
    append(probe, [0])
    return len(shipped(stack.kafka_bootstrap, start, probe, expected=1, timeout_s=timeout_s)) >= 1
