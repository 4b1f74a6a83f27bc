"""Running a service process: `run_service(create_app, Settings())` in its `__main__`."""

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from flywheel_contracts.runtime.logging import configure_logging
from flywheel_contracts.runtime.server import server_config
from flywheel_contracts.runtime.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def run_service(app_factory: Callable[[S], FastAPI], settings: S) -> None:
    """Configure logging, build the app and serve it until SIGTERM/SIGINT.

    uvicorn turns the signal into the app's lifespan shutdown, which stops consuming, lets
    in-flight handlers finish and publishes `service.stopping`.
    """
    configure_logging(settings.log_format, settings.log_level)
    uvicorn.Server(server_config(app_factory(settings), settings)).run()
