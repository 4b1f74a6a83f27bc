"""Running a service process: `run_service(create_app, Settings())` in its `__main__`."""

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from flywheel_contracts.runtime.logging import configure_logging
from flywheel_contracts.runtime.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def run_service(app_factory: Callable[[S], FastAPI], settings: S) -> None:
    """Configure logging, build the app and serve it until SIGTERM/SIGINT.

    uvicorn turns the signal into the app's lifespan shutdown, which stops consuming, lets
    in-flight handlers finish and publishes `service.stopping`.
    """
    configure_logging(settings.log_format, settings.log_level)
    config = uvicorn.Config(
        app_factory(settings),
        host=settings.http_host,
        port=settings.http_port,
        lifespan="on",
        log_config=None,  # keep the structlog handler configured above
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s) + 1,
    )
    uvicorn.Server(config).run()
