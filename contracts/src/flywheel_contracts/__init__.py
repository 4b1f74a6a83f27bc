"""Flywheel's typed event contracts: envelope, payloads, topic catalog.

Everything services exchange over Kafka is defined here; see `catalog.TOPICS`.
"""

from flywheel_contracts.catalog import TOPICS, TopicSpec, dlq_topic, payload_class, topic
from flywheel_contracts.envelope import Envelope, decode, encode, new_event
from flywheel_contracts.errors import FlywheelError, InvalidEvent, PermanentError, RetryableError
from flywheel_contracts.ids import derive_event_id, deterministic_name
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.run_config import RunConfig, RunOverrides

__all__ = [
    "TOPICS",
    "Envelope",
    "EventPayload",
    "FlywheelError",
    "InvalidEvent",
    "PermanentError",
    "RetryableError",
    "RunConfig",
    "RunOverrides",
    "TopicSpec",
    "decode",
    "derive_event_id",
    "deterministic_name",
    "dlq_topic",
    "encode",
    "new_event",
    "payload_class",
    "topic",
]
