"""The kit's package exports resolve on first use, each to the object its own module defines."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import flywheel_contracts.runtime as runtime

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", runtime.__all__)
def test_every_export_resolves(name: str) -> None:
    exported = getattr(runtime, name)
    # Type aliases (Handler, LoopFactory, ReadinessCheck) carry no module of their own.
    home = getattr(exported, "__module__", "")
    if home.startswith(runtime.__name__):
        assert getattr(importlib.import_module(home), name) is exported


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = runtime.no_such_thing  # type: ignore[attr-defined]


def test_settings_alone_do_not_load_the_service_app() -> None:
    probe = (
        "import sys\n"
        "from flywheel_contracts.runtime import KafkaSettings\n"
        "assert 'fastapi' not in sys.modules, 'the settings pulled in FastAPI'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
