"""`python -m flywheel_ingest`: serve until SIGTERM/SIGINT."""

from flywheel_contracts.runtime import run_service
from flywheel_ingest.app import create_app
from flywheel_ingest.config import IngestSettings

if __name__ == "__main__":
    run_service(create_app, IngestSettings())
