"""JSON Schema snapshots of the payloads, and the guard that makes version bumps mandatory.

A committed snapshot `schemas/<event_type>.v<N>.json` freezes version N of a payload. Changing
a payload's shape (fields, types, constraints, defaults) without bumping `SCHEMA_VERSION` is
refused; changing only its documentation merely makes the snapshot stale, and re-exporting
refreshes it.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel_contracts.payload import EventPayload
from flywheel_contracts.upcasters import has_upcaster

_DOC_KEYWORDS = frozenset({"title", "description", "examples"})
_SCHEMA_MAPS = frozenset({"properties", "$defs", "patternProperties"})


def payload_schema(cls: type[EventPayload]) -> dict[str, Any]:
    """The JSON Schema a consumer validates `cls` against."""
    return cls.model_json_schema(mode="validation")


def render(document: Any) -> str:
    """Stable, reviewable JSON text for committed files."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def snapshot_path(schema_dir: Path, event_type: str, version: int) -> Path:
    return schema_dir / f"{event_type}.v{version}.json"


def shape(schema: Any) -> Any:
    """`schema` without its documentation keywords: what decides compatibility."""
    if isinstance(schema, list):
        return [shape(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: {name: shape(sub) for name, sub in value.items()}
        if key in _SCHEMA_MAPS and isinstance(value, dict)
        else shape(value)
        for key, value in schema.items()
        if key not in _DOC_KEYWORDS
    }


@dataclass(frozen=True)
class Problem:
    """Something wrong with a payload's snapshots; `fixable` ones the export repairs itself."""

    event_type: str
    message: str
    fixable: bool

    def __str__(self) -> str:
        return f"{self.event_type}: {self.message}"


def check_payload(cls: type[EventPayload], schema_dir: Path) -> list[Problem]:
    """Problems with `cls` against the committed snapshots; empty when all is in order."""
    event_type, version = cls.EVENT_TYPE, cls.SCHEMA_VERSION
    problems = [
        Problem(event_type, f"no upcaster from v{old} to v{old + 1}", fixable=False)
        for old in range(1, version)
        if not has_upcaster(event_type, old)
    ]
    problems += [
        Problem(event_type, f"the v{old} snapshot is missing (old ones are history)", fixable=False)
        for old in range(1, version)
        if not snapshot_path(schema_dir, event_type, old).exists()
    ]
    path = snapshot_path(schema_dir, event_type, version)
    if not path.exists():
        return [*problems, Problem(event_type, f"{path.name} is missing", fixable=True)]
    committed, current = json.loads(path.read_text()), payload_schema(cls)
    if shape(committed) != shape(current):
        message = (
            f"payload shape changed without a schema_version bump (v{version} is frozen in "
            f"{path.name}); bump SCHEMA_VERSION and register an upcaster"
        )
        problems.append(Problem(event_type, message, fixable=False))
    elif committed != current:
        problems.append(Problem(event_type, f"{path.name} has stale documentation", fixable=True))
    return problems
