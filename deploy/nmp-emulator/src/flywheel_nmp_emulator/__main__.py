"""python -m flywheel_nmp_emulator: serve the emulator with uvicorn, settings from NMP_EMULATOR_*."""

from __future__ import annotations

import logging

import uvicorn

from flywheel_nmp_emulator.app import create_app
from flywheel_nmp_emulator.config import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # A chat request proxied to a real server may run for minutes; a stop waits this long
        # for requests in flight, then cancels them, so the shutdown stops the servers and
        # trainers it owns instead of waiting on them.
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )


if __name__ == "__main__":
    main()
