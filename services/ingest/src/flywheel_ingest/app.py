"""`create_app`: the kit, the ingest pipeline as a kit loop, the store and the HTTP intake."""

import logging

import structlog
from fastapi import FastAPI

from flywheel_contracts.runtime import ServiceKit, create_service_app
from flywheel_ingest.auth import IntakeGate
from flywheel_ingest.clients.kafka_source import KafkaSource
from flywheel_ingest.clients.outbox import KafkaOutbox
from flywheel_ingest.clients.raw_topic import KafkaRawTopic
from flywheel_ingest.config import IngestSettings
from flywheel_ingest.endpoints import bulk, otlp, relay
from flywheel_ingest.handlers import intake_router
from flywheel_ingest.indexer import ElasticsearchStore
from flywheel_ingest.intake import LogIntake
from flywheel_ingest.pii import Redactor
from flywheel_ingest.pipeline import Pipeline
from flywheel_ingest.service import IngestService

_log = structlog.get_logger("flywheel.ingest")


def create_app(settings: IngestSettings) -> FastAPI:
    # The client logs every request, and every failed one with a traceback; the service logs
    # one line per batch outcome instead.
    logging.getLogger("elasticsearch").setLevel(logging.ERROR)
    # An intake open to the network was refused when the settings were read; an open one on
    # loopback is a developer's convenience, said once so that it is not a surprise.
    warning = settings.intake_warning()
    if warning is not None:
        _log.warning("intake.open", detail=warning)
    kit = ServiceKit(settings)
    consumer = kit.track_consumer()
    store = ElasticsearchStore(settings.elasticsearch)
    service = IngestService(
        store,
        KafkaOutbox(kit, group=settings.consumer_group),
        Redactor(settings.pii),
        max_line_bytes=settings.max_line_bytes,
        retry=settings.retry,
        producers=settings.producers,
        tokens=settings.intake.tokens,
    )
    pipeline = Pipeline(
        lambda: KafkaSource(settings, health=consumer, stall=kit.stall_gate),
        service,
        settings.batch,
        settings.retry,
        drain_timeout_s=settings.shutdown_timeout_s,
    )
    kit.add_loop("ingest", pipeline.run)
    kit.add_readiness_check("elasticsearch", store.ping)
    kit.on_stop(store.close)  # after the pipeline loop stopped using it
    raw_topic = KafkaRawTopic(kit.publisher, settings.kafka.topic(settings.source_topic))
    intake = LogIntake(
        raw_topic,
        settings.intake,
        producers=settings.producers,
        max_record_bytes=settings.max_line_bytes,
    )
    gate = IntakeGate(settings.intake)
    app = create_service_app(
        kit,
        routers=[
            intake_router(intake, gate=gate),
            otlp.router(intake, gate=gate),
            relay.router(intake, gate=gate),
            # Last: its `/{index}/...` routes would catch any path of two segments.
            bulk.router(intake, gate=gate),
        ],
    )
    return app
