"""A shared sample of generated traffic: large enough to hold every feature, quick to make."""

import json
from typing import Any

import pytest

from flywheel_contracts.traffic import generate_lines

SAMPLE_SEED = 20250106
SAMPLE_SIZE = 6000


@pytest.fixture(scope="session")
def sample_lines() -> list[str]:
    return list(generate_lines(SAMPLE_SIZE, SAMPLE_SEED))


@pytest.fixture(scope="session")
def sample(sample_lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sample_lines]
