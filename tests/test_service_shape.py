"""Every service is built the same way: its `create_app` hands the kit (with the service's own
start and stop steps registered as `on_start` / `on_stop` hooks) to `create_service_app`, and
nothing replaces the app's lifespan behind the kit's back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
APPS = sorted(ROOT.glob("services/*/src/flywheel_*/app.py"))


def test_all_six_services_are_found() -> None:
    assert len(APPS) == 6, APPS


@pytest.mark.parametrize("app", APPS, ids=lambda path: path.parts[-4])
def test_a_service_app_uses_the_kits_hooks_and_never_patches_its_lifespan(app: Path) -> None:
    tree = ast.parse(app.read_text())
    patched = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Attribute) and target.attr == "lifespan_context"
    ]
    assert not patched, f"{app}: lifespan replaced at lines {patched}; use kit.on_start/on_stop"
    called = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert "create_service_app" in called, f"{app}: the app must come from create_service_app"
    assert "FastAPI" not in called, f"{app}: an app (and lifespan) of its own"
