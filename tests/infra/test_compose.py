"""docker-compose.yml names every component and holds together, checked without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "kafka",
    "kafka-ui",
    "elasticsearch",
    "mongo",
    "fluent-bit",
    "topic-init",
    "nmp-emulator",
}
ONE_SHOT = {"topic-init"}
# The distroless Fluent Bit image has no shell or HTTP client to run a health probe with.
NO_PROBE_TOOLS = {"fluent-bit"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def test_every_component_is_a_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= REQUIRED


def test_services_have_an_image_and_long_running_ones_a_health_check(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        if name not in ONE_SHOT | NO_PROBE_TOOLS:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_dependencies_volumes_and_mounts_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared_volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                if source != "./logs":  # the folder the user writes logs into
                    assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name} uses undeclared volume {source}"
    assert declared_volumes, "data lives in named volumes"


def test_published_ports_stay_on_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", str(port)), f"{name} publishes {port}"


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_compose_accepts_the_file() -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin")
    result = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
