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
    )


if __name__ == "__main__":
    main()
