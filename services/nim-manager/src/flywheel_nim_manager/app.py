"""`create_app`: the kit, the handlers, the scheduler loop and its adapters."""

from datetime import timedelta

from fastapi import FastAPI

from flywheel_contracts.runtime import ServiceKit, create_service_app
from flywheel_contracts.runtime.clock import utc_now
from flywheel_contracts.runtime.lease import MongoLease
from flywheel_contracts.runtime.nmp import NmpClient
from flywheel_nim_manager.clients.deployer import NmpDeployer
from flywheel_nim_manager.config import NimManagerSettings
from flywheel_nim_manager.handlers import scheduler_router, subscribe
from flywheel_nim_manager.reconciler import Policy, Reconciler
from flywheel_nim_manager.repository import MongoRepository
from flywheel_nim_manager.service import NimManagerService

LEASES = "nim_manager_leases"
SCHEDULER_LEASE = "scheduler"


def create_app(settings: NimManagerSettings) -> FastAPI:
    kit = ServiceKit(settings)
    nmp = NmpClient(settings.nmp)
    repository = MongoRepository(kit.db)
    deployer = NmpDeployer(
        nmp, default_image_tag=settings.default_image_tag, pvc_size=settings.pvc_size
    )
    lease = MongoLease(
        kit.db,
        collection=LEASES,
        name=SCHEDULER_LEASE,
        holder_id=settings.instance_id,
        ttl=timedelta(seconds=settings.lease_ttl_s),
        clock=utc_now,
    )
    reconciler = Reconciler(
        repository,
        deployer,
        kit.emit,
        lease,
        Policy(
            budget=settings.gpu_budget,
            deploy_timeout=timedelta(seconds=settings.deploy_timeout_s),
            work_timeout=timedelta(seconds=settings.work_timeout_s),
            namespace=settings.nmp.namespace,
            nim_url=settings.nmp.nim_base_url,
            judgement=settings.judgement(),
        ),
        utc_now,
    )
    service = NimManagerService(
        repository,
        reconciler,
        lease,
        utc_now,
        budget=settings.gpu_budget,
        tick_interval_s=settings.tick_interval_s,
        judge=settings.local_judge.candidate(),
    )
    subscribe(kit, service)
    kit.add_loop("scheduler", service.run_forever)
    kit.add_readiness_check("nmp", deployer.ping)
    kit.report_in_flight_with(service.in_flight)
    # Indexes before the first event is handled; the NMP client closed after the kit stopped
    # (its loop uses it).
    kit.on_start(repository.ensure_indexes)
    kit.on_stop(nmp.aclose)
    return create_service_app(kit, routers=[scheduler_router(service)])
