"""`python -m flywheel_nim_manager`: serve until SIGTERM/SIGINT."""

from flywheel_contracts.runtime import run_service
from flywheel_nim_manager.app import create_app
from flywheel_nim_manager.config import NimManagerSettings

if __name__ == "__main__":
    run_service(create_app, NimManagerSettings())
