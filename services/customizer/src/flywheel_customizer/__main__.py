"""`python -m flywheel_customizer`: serve until SIGTERM/SIGINT."""

from flywheel_contracts.runtime import run_service
from flywheel_customizer.app import create_app
from flywheel_customizer.config import CustomizerSettings

if __name__ == "__main__":
    run_service(create_app, CustomizerSettings())
