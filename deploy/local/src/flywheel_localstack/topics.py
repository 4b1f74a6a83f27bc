"""Create the catalog's topics, each consumed one with its `<topic>.dlq` twin, idempotently.

The services do the same at start through the kit; the stack does it up front so the log
shipper and the CLI find their topics before any service runs.
"""

from __future__ import annotations

import asyncio

from flywheel_contracts.catalog import TOPICS
from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_contracts.runtime.topics import ensure_topics, new_topics


def ensure_catalog_topics(kafka: KafkaSettings) -> tuple[list[str], list[str]]:
    """Returns (every topic of the catalog with its DLQs, the ones this call created)."""
    planned = new_topics(TOPICS)
    created = asyncio.run(ensure_topics(kafka, planned))
    return [topic.topic for topic in planned], created
