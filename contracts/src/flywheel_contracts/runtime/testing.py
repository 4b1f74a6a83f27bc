"""Helpers for services' integration tests against the real Kafka (no fakes here)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from confluent_kafka import Consumer, Message

from flywheel_contracts.runtime.kit import ServiceKit


@asynccontextmanager
async def running(kit: ServiceKit) -> AsyncIterator[ServiceKit]:
    """`kit` started for the duration of the block, then stopped as on SIGTERM."""
    await kit.start()
    try:
        yield kit
    finally:
        await kit.stop()


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 20.0
) -> None:
    """Wait until `condition()` is true; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.05)


def read_topic(
    bootstrap_servers: str, topic: str, count: int, timeout_s: float = 20.0
) -> list[Message]:
    """Up to `count` messages of `topic` from its beginning, read by a throwaway group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"flywheel.test-reader.{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages
