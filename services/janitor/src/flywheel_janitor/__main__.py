"""`python -m flywheel_janitor`: serve until SIGTERM/SIGINT."""

from flywheel_contracts.runtime import run_service
from flywheel_janitor.app import create_app
from flywheel_janitor.config import JanitorSettings

if __name__ == "__main__":
    run_service(create_app, JanitorSettings())
