"""Wiring: the kit, the clients, the service, its subscriptions, loops and readiness checks."""

import logging
from datetime import timedelta

from fastapi import FastAPI

from flywheel_contracts.runtime import ServiceKit, create_service_app
from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_datasets.builder import DatasetBuilder
from flywheel_datasets.clients.elasticsearch import ElasticsearchRecords
from flywheel_datasets.clients.embeddings import EmbeddingsEndpoint
from flywheel_datasets.clients.nmp import NmpDatasets, NmpEmbeddings
from flywheel_datasets.config import DatasetsSettings
from flywheel_datasets.dedup_worker import process_deduplication
from flywheel_datasets.gc_tuning import collect_less_often
from flywheel_datasets.handlers import subscribe
from flywheel_datasets.repository import JobRepository
from flywheel_datasets.run_defaults import RunDefaults
from flywheel_datasets.service import DatasetService, ServiceOptions


def create_service(settings: DatasetsSettings) -> tuple[ServiceKit, DatasetService]:
    """The kit and the service, registered and ready to start (the app starts them)."""
    defaults = RunDefaults.load(settings.defaults_file)  # an invalid file stops startup here
    collect_less_often()
    # The client logs every request at INFO: a 100k-record build would log a hundred pages.
    logging.getLogger("elasticsearch").setLevel(logging.WARNING)
    kit = ServiceKit(settings)
    records = ElasticsearchRecords(settings.elasticsearch)
    nmp = NmpClient(settings.nmp)
    endpoint = EmbeddingsEndpoint.from_settings(settings)
    embeddings = NmpEmbeddings(
        endpoint, settings.build.embedding_model, settings.build.embedding_batch_size
    )
    window_days = settings.elasticsearch.window_days
    builder = DatasetBuilder(
        records,
        embeddings.embed,
        settings.build,
        process_deduplication,
        window=timedelta(days=window_days) if window_days else None,
    )
    service = DatasetService(
        JobRepository(kit.db),
        builder,
        NmpDatasets(nmp),
        defaults,
        new_event=kit.new_event,
        publish=kit.publisher.publish,
        options=ServiceOptions(
            owner=f"{settings.service_name}.{settings.instance_id}",
            lease=timedelta(seconds=settings.lease_s),
            reconcile_interval_s=settings.reconcile_interval_s,
            max_concurrent_builds=settings.max_concurrent_builds,
            max_build_attempts=settings.max_build_attempts,
        ),
    )
    subscribe(kit, service)
    kit.add_loop("reconciler", service.reconcile_forever)
    for close in (records.close, nmp.aclose, endpoint.aclose):
        kit.on_stop(close)  # after the reconciler stopped using them
    kit.add_readiness_check("elasticsearch", records.ping)

    async def nmp_ready() -> None:
        await nmp.nim.list_models()

    kit.add_readiness_check("nmp", nmp_ready)
    kit.report_in_flight_with(service.in_flight)
    return kit, service


def create_app(settings: DatasetsSettings) -> FastAPI:
    kit, _ = create_service(settings)
    return create_service_app(kit)
