"""The shared service kit (the `[runtime]` extra): settings, logging, Kafka delivery with
retries, dead-lettering and idempotency, health, metrics, and the service app and runner.

A service is a thin layer on it::

    class DatasetsSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="FLYWHEEL_DATASETS_")
        service_name: str = "datasets"

    def create_app(settings: DatasetsSettings) -> FastAPI:
        kit = ServiceKit(settings)
        service = DatasetService(Repository(kit.db), kit)      # publishes with kit.publisher
        kit.subscribe(RunRequested, service.on_run_requested)  # Envelope[RunRequested] -> None
        kit.add_loop("reconciler", service.reconcile_forever)
        kit.add_readiness_check("nmp", nmp.ping)
        kit.report_in_flight_with(service.in_flight)
        return create_service_app(kit)

    # __main__.py
    run_service(create_app, DatasetsSettings())

A handler raises RetryableError (or a connection/timeout error) to be retried with backoff,
PermanentError to dead-letter its input at once; it awaits the events it publishes, so they are
acknowledged before its input's offset is committed. An outage is waited out: once a message's
retries are spent it is redelivered, with a delay doubling up to a minute, for as long as the
outage lasts (`/health/ready` names the waiting message); it is never dead-lettered for it.

Poison never stalls and never vanishes: every message that fails for good ends in
`<topic>.dlq`, value, key and headers as consumed, plus `dlq.reason` (invalid_event,
permanent_error, unexpected_error; older dead letters may say retries_exhausted), `dlq.kind` (tombstone, not_utf8, not_json, too_deep, not_an_envelope,
unknown_event_type, wrong_event_type, newer_schema_version, unsupported_schema_version,
invalid_event, or handler), `dlq.error`, `dlq.exception`, `dlq.origin.topic|partition|offset`,
`dlq.service`, `dlq.attempts`. Producers send records up to `KAFKA__MESSAGE_MAX_BYTES` (default
4 MiB, the local broker's `message.max.bytes`); a dead letter over it keeps its first bytes and
says so (`dlq.truncated: true`, `dlq.original.size`). A dead letter the broker still refuses is
not committed: the message is delivered again after the redelivery delay, the error is
logged (`event.dead_letter_failed`) and `/health/ready` fails its `dead_letters` check until a
dead letter is written. `flywheel dlq list|show|replay` inspects and replays them.

Health follows the consumer (`consumer_health`): librdkafka's statistics arrive only from inside
a poll, so `/health/ready` fails its `consumer` check after `HEALTH__READY_AFTER_S` without one
(or out of its group past `HEALTH__SETTLE_GRACE_S`) and `/health/live` answers 503 after
`HEALTH__LIVE_AFTER_S`. A service with a consumer of its own declares it with
`kit.track_consumer()`. `TESTING__STALL_HOOK` (tests only) adds `/testing/stall|resume`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flywheel_contracts.runtime.app import create_service_app
    from flywheel_contracts.runtime.delivery import Outcome, Reason, RetryPolicy
    from flywheel_contracts.runtime.dispatcher import Handler
    from flywheel_contracts.runtime.elasticsearch import ElasticsearchConnection
    from flywheel_contracts.runtime.emitting import Emit, NewEvent, Publish
    from flywheel_contracts.runtime.health import ReadinessCheck
    from flywheel_contracts.runtime.kit import InFlightReporter, LoopFactory, ServiceKit
    from flywheel_contracts.runtime.logging import configure_logging
    from flywheel_contracts.runtime.publisher import Publisher
    from flywheel_contracts.runtime.runner import run_service
    from flywheel_contracts.runtime.settings import (
        DeliverySettings,
        IdempotencySettings,
        KafkaSettings,
        MongoSettings,
        ServiceSettings,
    )

# Imported on first use: the service app pulls in FastAPI and the kit, which the CLI and the
# test helpers (that only need settings or a publisher) should not pay for at start-up.
_HOMES = {
    "create_service_app": "app",
    "Outcome": "delivery",
    "Reason": "delivery",
    "RetryPolicy": "delivery",
    "Handler": "dispatcher",
    "ElasticsearchConnection": "elasticsearch",
    "Emit": "emitting",
    "NewEvent": "emitting",
    "Publish": "emitting",
    "ReadinessCheck": "health",
    "InFlightReporter": "kit",
    "LoopFactory": "kit",
    "ServiceKit": "kit",
    "configure_logging": "logging",
    "Publisher": "publisher",
    "run_service": "runner",
    "DeliverySettings": "settings",
    "IdempotencySettings": "settings",
    "KafkaSettings": "settings",
    "MongoSettings": "settings",
    "ServiceSettings": "settings",
}


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any name from here

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return getattr(import_module(f"{__name__}.{home}"), name)


__all__ = [
    "DeliverySettings",
    "ElasticsearchConnection",
    "Emit",
    "Handler",
    "IdempotencySettings",
    "InFlightReporter",
    "KafkaSettings",
    "LoopFactory",
    "MongoSettings",
    "NewEvent",
    "Outcome",
    "Publish",
    "Publisher",
    "ReadinessCheck",
    "Reason",
    "RetryPolicy",
    "ServiceKit",
    "ServiceSettings",
    "configure_logging",
    "create_service_app",
    "run_service",
]
