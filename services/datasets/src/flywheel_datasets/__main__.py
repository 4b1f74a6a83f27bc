"""`python -m flywheel_datasets`: the datasets service, configured from FLYWHEEL_DATASETS_*."""

from flywheel_contracts.runtime import run_service
from flywheel_datasets.app import create_app
from flywheel_datasets.config import DatasetsSettings

if __name__ == "__main__":
    run_service(create_app, DatasetsSettings())
