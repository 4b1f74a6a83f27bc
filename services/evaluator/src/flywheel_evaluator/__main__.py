"""`python -m flywheel_evaluator`: serve until SIGTERM/SIGINT."""

from flywheel_contracts.runtime import run_service
from flywheel_evaluator.app import create_app
from flywheel_evaluator.config import EvaluatorSettings

if __name__ == "__main__":
    run_service(create_app, EvaluatorSettings())
