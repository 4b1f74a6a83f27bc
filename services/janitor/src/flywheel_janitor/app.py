"""`create_app`: the kit, the ledger's subscriptions, the reclaimer and sweep loops, NMP
readiness and the ledger's HTTP view."""

import httpx
from fastapi import FastAPI

from flywheel_contracts.runtime import ServiceKit, create_service_app
from flywheel_janitor.api import ledger_router
from flywheel_janitor.clients.inventory import NmpInventory
from flywheel_janitor.clients.nmp import NmpResources
from flywheel_janitor.config import JanitorSettings
from flywheel_janitor.handlers import subscribe
from flywheel_janitor.reclaimer import Reclaimer
from flywheel_janitor.repository import MongoLedger
from flywheel_janitor.service import JanitorService
from flywheel_janitor.sweeps import Sweeper


def create_app(
    settings: JanitorSettings, *, nmp_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """`nmp_transport` replaces the network to NMP (tests)."""
    kit = ServiceKit(settings)
    ledger = MongoLedger(kit.db)
    resources = NmpResources(settings.nmp, settings.reclaim, transport=nmp_transport)
    inventory = NmpInventory(settings.nmp, transport=nmp_transport)
    reclaimer = Reclaimer(ledger, resources, kit.new_event, kit.publisher.publish, settings.reclaim)
    sweeper = Sweeper(ledger, inventory, settings.sweeps, wake=reclaimer.wake)
    subscribe(kit, JanitorService(ledger, wake=reclaimer.wake))
    kit.add_loop("reclaimer", reclaimer.run_forever)
    kit.add_loop("stale_runs", sweeper.stale_forever)
    if settings.sweeps.orphans_enabled:
        kit.add_loop("orphans", sweeper.orphans_forever)
    kit.add_readiness_check("nmp", inventory.ping)
    kit.report_in_flight_with(reclaimer.in_flight)
    # Indexes before the first handler writes; NMP clients closed after the loops stopped.
    kit.on_start(ledger.ensure_indexes)
    kit.on_stop(resources.aclose)
    kit.on_stop(inventory.aclose)
    return create_service_app(kit, routers=[ledger_router(ledger)])
