"""The schema snapshot guard: a payload changed without a version bump must fail."""

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import create_model

from flywheel_contracts import TOPICS, EventPayload, upcasters
from flywheel_contracts.events import NimDown
from flywheel_contracts.export import CONTRACTS_DIR
from flywheel_contracts.schemas import check_payload, payload_schema, render, shape, snapshot_path

pytestmark = pytest.mark.unit

_SCHEMA_DIR = CONTRACTS_DIR / "schemas"
_PAYLOADS = [spec.payload for spec in TOPICS if spec.payload is not None]


@pytest.mark.parametrize("payload", _PAYLOADS, ids=lambda cls: cls.EVENT_TYPE)
def test_payload_matches_its_committed_snapshot(payload: type[EventPayload]) -> None:
    assert check_payload(payload, _SCHEMA_DIR) == []
    committed = snapshot_path(_SCHEMA_DIR, payload.EVENT_TYPE, payload.SCHEMA_VERSION)
    assert json.loads(committed.read_text()) == payload_schema(payload)


@pytest.mark.parametrize("payload", _PAYLOADS, ids=lambda cls: cls.EVENT_TYPE)
def test_every_older_version_has_an_upcaster(payload: type[EventPayload]) -> None:
    missing = [
        v
        for v in range(1, payload.SCHEMA_VERSION)
        if not upcasters.has_upcaster(payload.EVENT_TYPE, v)
    ]
    assert missing == []


def test_an_added_field_without_a_bump_is_refused() -> None:
    edited = create_model("NimDown", __base__=NimDown, gpu_hours=(float, 0.0))
    problems = check_payload(edited, _SCHEMA_DIR)
    assert [p.fixable for p in problems] == [False]
    assert "without a schema_version bump" in problems[0].message


def test_a_tightened_constraint_without_a_bump_is_refused() -> None:
    edited = create_model("NimDown", __base__=NimDown, deployment_seconds=(int, ...))
    assert [p.fixable for p in check_payload(edited, _SCHEMA_DIR)] == [False]


def test_a_documentation_change_only_makes_the_snapshot_stale() -> None:
    edited = create_model("NimDown", __base__=NimDown, __doc__="Reworded documentation.")
    problems = check_payload(edited, _SCHEMA_DIR)
    assert [p.fixable for p in problems] == [True]
    assert "stale documentation" in problems[0].message


def _bumped() -> type[EventPayload]:
    class NimDownV2(NimDown):
        SCHEMA_VERSION: ClassVar[int] = 2
        gpu_hours: float = 0.0

    return NimDownV2


def test_a_bump_without_an_upcaster_is_refused(tmp_path: Path) -> None:
    v1 = snapshot_path(tmp_path, "nim.down", 1)
    v1.write_text(render(payload_schema(NimDown)))
    problems = check_payload(_bumped(), tmp_path)
    assert [str(p) for p in problems if not p.fixable] == ["nim.down: no upcaster from v1 to v2"]


def test_a_bump_with_an_upcaster_only_needs_its_new_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upcasters, "_REGISTRY", {})

    @upcasters.register("nim.down", from_version=1)
    def _add_gpu_hours(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "gpu_hours": 0.0}

    snapshot_path(tmp_path, "nim.down", 1).write_text(render(payload_schema(NimDown)))
    bumped = _bumped()
    assert [p.fixable for p in check_payload(bumped, tmp_path)] == [True]
    snapshot_path(tmp_path, "nim.down", 2).write_text(render(payload_schema(bumped)))
    assert check_payload(bumped, tmp_path) == []


def test_a_bump_must_keep_the_old_snapshot(tmp_path: Path) -> None:
    problems = check_payload(_bumped(), tmp_path)
    assert any("v1 snapshot is missing" in p.message for p in problems)


def test_shape_ignores_documentation_but_not_field_names() -> None:
    schema = {
        "title": "X",
        "description": "doc",
        "properties": {"title": {"type": "string", "description": "a field called title"}},
    }
    assert shape(schema) == {"properties": {"title": {"type": "string"}}}
