"""Feed Flywheel from NeMo Relay: each LLM call's start and end events joined into one log
record, shipped to Flywheel's intake or to the log shipper's folder.

`records` is the pure mapping (also what Flywheel's `/v1/relay/events` uses); `subscriber` is
the Relay subscriber.
"""

from flywheel_relay.records import (
    CLIENT_ID_KEY,
    PRODUCER,
    Call,
    CallContext,
    Paired,
    Pairing,
    Problem,
    RecordError,
    is_llm_event,
    pair,
    to_record,
    workload_for_agent,
)
from flywheel_relay.subscriber import (
    FileSink,
    FlywheelSubscriber,
    IntakeSink,
    SubscriberSettings,
    SubscriberStats,
)

__all__ = [
    "CLIENT_ID_KEY",
    "PRODUCER",
    "Call",
    "CallContext",
    "FileSink",
    "FlywheelSubscriber",
    "IntakeSink",
    "Paired",
    "Pairing",
    "Problem",
    "RecordError",
    "SubscriberSettings",
    "SubscriberStats",
    "is_llm_event",
    "pair",
    "to_record",
    "workload_for_agent",
]
