"""Regenerate the committed contract artifacts, or check that they are current.

    python -m flywheel_contracts.export          # write what changed
    python -m flywheel_contracts.export --check  # exit 1 when anything is stale

Artifacts, under the contracts/ directory: schemas/<event_type>.v<N>.json (payload schema
snapshots; old versions are kept as history), golden/<topic>.json (the exact wire bytes of each
example) and asyncapi.yaml. A payload whose shape changed without a version bump is refused.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from flywheel_contracts.asyncapi import asyncapi_document
from flywheel_contracts.catalog import TOPICS
from flywheel_contracts.envelope import encode
from flywheel_contracts.examples import EXAMPLES, REJECTED_RECORD
from flywheel_contracts.schemas import check_payload, payload_schema, render, snapshot_path

CONTRACTS_DIR = Path(__file__).resolve().parents[2]


def golden_path(root: Path, topic: str) -> Path:
    return root / "golden" / f"{topic}.json"


def expected_artifacts(root: Path) -> dict[Path, bytes]:
    """Every generated file under `root` and the bytes it must hold."""
    files: dict[Path, bytes] = {}
    for spec in TOPICS:
        if spec.payload is None:
            continue
        path = snapshot_path(root / "schemas", spec.name, spec.payload.SCHEMA_VERSION)
        files[path] = render(payload_schema(spec.payload)).encode()
        files[golden_path(root, spec.name)] = encode(EXAMPLES[spec.name])
    files[golden_path(root, "logs.rejected")] = REJECTED_RECORD.model_dump_json().encode()
    document = yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=100)
    files[root / "asyncapi.yaml"] = document.encode()
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel_contracts.export")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=CONTRACTS_DIR, help="the contracts/ dir")
    args = parser.parse_args(argv)
    root: Path = args.root

    blocking = [
        problem
        for spec in TOPICS
        if spec.payload is not None
        for problem in check_payload(spec.payload, root / "schemas")
        if not problem.fixable
    ]
    for problem in blocking:
        print(f"error: {problem}", file=sys.stderr)
    if blocking:
        return 1

    stale = {
        path: content
        for path, content in expected_artifacts(root).items()
        if not path.exists() or path.read_bytes() != content
    }
    for path, content in stale.items():
        if args.check:
            print(f"stale: {path.relative_to(root)}", file=sys.stderr)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            print(f"wrote {path.relative_to(root)}")
    if args.check and stale:
        print("run: uv run python -m flywheel_contracts.export", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
