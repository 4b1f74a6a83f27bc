"""`create_app`: the kit, the two subscriptions, the reconciler loop and the NMP readiness check."""

from datetime import timedelta

from fastapi import FastAPI

from flywheel_contracts.runtime import ServiceKit, create_service_app
from flywheel_contracts.runtime.clock import utc_now
from flywheel_contracts.runtime.lease import MongoLease
from flywheel_customizer.clients.nmp import NmpTraining
from flywheel_customizer.config import CustomizerSettings
from flywheel_customizer.handlers import subscribe
from flywheel_customizer.reconciler import Reconciler
from flywheel_customizer.repository import MongoCustomizations
from flywheel_customizer.service import CustomizerService

LEASES = "customizer_leases"
LEASE_NAME = "reconciler"


def create_app(settings: CustomizerSettings) -> FastAPI:
    kit = ServiceKit(settings)
    store = MongoCustomizations(kit.db, utc_now)
    training = NmpTraining(settings.nmp)
    lease = MongoLease(
        kit.db,
        collection=LEASES,
        name=LEASE_NAME,
        holder_id=settings.instance_id,
        ttl=timedelta(seconds=settings.jobs.lease_ttl_s),
        clock=utc_now,
    )
    reconciler = Reconciler(store, training, kit.emit, lease, settings.jobs)
    service = CustomizerService(store, reconciler.wake)
    subscribe(kit, service)
    kit.add_loop("reconciler", reconciler.run_forever)
    kit.add_readiness_check("nmp", training.ping)
    kit.report_in_flight_with(service.in_flight)
    kit.on_start(store.ensure_indexes)  # before the first event
    kit.on_stop(training.aclose)  # after the reconciler stopped using it
    return create_service_app(kit)
