"""The topic catalog: who produces and consumes what, and how each topic is configured.

The single source for topic creation, the AsyncAPI document, the topology test and the payload
registry used by `decode`.
"""

from dataclasses import dataclass

from flywheel_contracts import events as ev
from flywheel_contracts.payload import EventPayload

SERVICES: tuple[str, ...] = (
    "ingest",
    "datasets",
    "nim-manager",
    "evaluator",
    "customizer",
    "janitor",
)
"""Flywheel's own services."""

EXTERNAL_PRODUCERS: tuple[str, ...] = ("log-shipper", "client", "operator")
"""Producers outside the services: the log shipper, clients (CLI, apps) and operators."""

EVERY_SERVICE = "*"
"""Producer of `service.stopping`: any service instance may publish it."""

KEY_RUN_ID = "run_id"
KEY_PRODUCER = "producer"
KEY_NONE = "none"

_DAY_MS = 24 * 60 * 60 * 1000
_HISTORY_MS = 30 * _DAY_MS  # the CLI's watch/report read run history back from the topics
_PROGRESS_MS = 3 * _DAY_MS
_RAW_LOGS_MS = 7 * _DAY_MS


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic. `payload` is None for the raw topics, which carry no envelope."""

    name: str
    event_type: str | None
    payload: type[EventPayload] | None
    key: str
    producer: str
    consumers: tuple[str, ...]
    partitions: int
    retention_ms: int
    dlq: bool


def _event(
    payload: type[EventPayload],
    producer: str,
    consumers: tuple[str, ...],
    retention_ms: int = _HISTORY_MS,
) -> TopicSpec:
    return TopicSpec(
        name=payload.EVENT_TYPE,
        event_type=payload.EVENT_TYPE,
        payload=payload,
        key=KEY_RUN_ID if payload.RUN_SCOPED else KEY_PRODUCER,
        producer=producer,
        consumers=consumers,
        partitions=3,
        retention_ms=retention_ms,
        # Every consumed event topic gets a dead-letter topic so a poison message never stalls it.
        dlq=bool(consumers),
    )


def _raw(name: str, producer: str, consumers: tuple[str, ...], partitions: int) -> TopicSpec:
    return TopicSpec(
        name=name,
        event_type=None,
        payload=None,
        key=KEY_NONE,
        producer=producer,
        consumers=consumers,
        partitions=partitions,
        retention_ms=_RAW_LOGS_MS,
        # Refused raw records are dead-lettered by ingest itself, into logs.rejected.
        dlq=False,
    )


# Ingest holds no per-run work, so it is the one service that ignores cancellations.
_RUN_WORKERS = tuple(service for service in SERVICES if service != "ingest")
_CUSTOMIZATION_CONSUMERS = ("evaluator", "nim-manager", "janitor")
_EVAL_CONSUMERS = ("nim-manager", "janitor")

TOPICS: tuple[TopicSpec, ...] = (
    _raw("logs.raw", "log-shipper", ("ingest",), partitions=6),
    _raw("logs.rejected", "ingest", ("operator",), partitions=3),
    _event(ev.RecordsIngested, "ingest", ()),
    _event(ev.RunRequested, "client", ("datasets", "janitor")),
    _event(ev.RunCancelled, "client", _RUN_WORKERS),
    _event(ev.DatasetReady, "datasets", ("nim-manager", "evaluator", "customizer", "janitor")),
    _event(ev.DatasetFailed, "datasets", ("nim-manager", "janitor")),
    _event(ev.NimUp, "nim-manager", ("evaluator", "customizer", "janitor")),
    _event(ev.NimFailed, "nim-manager", ("janitor",)),
    _event(ev.NimDown, "nim-manager", ("janitor",)),
    _event(ev.CustomizationStarted, "customizer", _CUSTOMIZATION_CONSUMERS),
    _event(
        ev.CustomizationProgress, "customizer", _CUSTOMIZATION_CONSUMERS, retention_ms=_PROGRESS_MS
    ),
    _event(ev.CustomizationDone, "customizer", _CUSTOMIZATION_CONSUMERS),
    _event(ev.EvalStarted, "evaluator", _EVAL_CONSUMERS),
    _event(ev.EvalProgress, "evaluator", _EVAL_CONSUMERS, retention_ms=_PROGRESS_MS),
    _event(ev.EvalDone, "evaluator", _EVAL_CONSUMERS),
    _event(ev.RunCompleted, "nim-manager", ("janitor", "client")),
    _event(ev.RunFailed, "nim-manager", ("janitor", "client")),
    _event(ev.ServiceStopping, EVERY_SERVICE, ("janitor",)),
    _event(ev.SystemShutdown, "operator", ("janitor",)),
    _event(ev.ResourcesReclaimed, "janitor", ("client",)),
)

_BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in TOPICS}
_PAYLOADS: dict[str, type[EventPayload]] = {
    spec.event_type: spec.payload
    for spec in TOPICS
    if spec.event_type is not None and spec.payload is not None
}


def topic(name: str) -> TopicSpec:
    """The spec of topic `name`; KeyError for a topic not in the catalog."""
    return _BY_NAME[name]


def payload_class(event_type: str) -> type[EventPayload]:
    """The current payload class of `event_type`; KeyError for an unknown type."""
    return _PAYLOADS[event_type]


def dlq_topic(name: str) -> str:
    """The dead-letter topic of `name`."""
    return f"{name}.dlq"


def produced_by(service: str) -> tuple[TopicSpec, ...]:
    """Topics `service` publishes (service.stopping included for every service)."""
    return tuple(
        spec
        for spec in TOPICS
        if spec.producer == service or (spec.producer == EVERY_SERVICE and service in SERVICES)
    )


def consumed_by(service: str) -> tuple[TopicSpec, ...]:
    """Topics `service` subscribes to."""
    return tuple(spec for spec in TOPICS if service in spec.consumers)
