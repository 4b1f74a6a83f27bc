"""`python -m flywheel_customizer` as a child process, for crash tests and end-to-end suites."""

from collections.abc import Mapping
from pathlib import Path

from flywheel_contracts.runtime.testing import ServiceProcess


def customizer_process(env: Mapping[str, str], log_path: Path) -> ServiceProcess:
    """The customizer with `env` (FLYWHEEL_CUSTOMIZER_* variables), its output in `log_path`."""
    return ServiceProcess("flywheel_customizer", "FLYWHEEL_CUSTOMIZER_", env, log_path)
