"""Golden examples: the committed wire bytes of one example per topic stay byte-stable."""

import shutil
from pathlib import Path

import pytest

from flywheel_contracts import TOPICS, decode, encode
from flywheel_contracts.events import RejectedRecord
from flywheel_contracts.examples import EXAMPLES, REJECTED_RECORD
from flywheel_contracts.export import CONTRACTS_DIR, golden_path, main

pytestmark = pytest.mark.unit

_EVENT_TOPICS = [spec.name for spec in TOPICS if spec.payload is not None]


def _golden(topic: str) -> bytes:
    return golden_path(CONTRACTS_DIR, topic).read_bytes()


def test_every_event_type_has_a_golden_example() -> None:
    missing = [t for t in _EVENT_TOPICS if not golden_path(CONTRACTS_DIR, t).exists()]
    assert missing == []
    assert sorted(EXAMPLES) == sorted(_EVENT_TOPICS)


@pytest.mark.parametrize("topic", _EVENT_TOPICS)
def test_committed_bytes_decode_and_reencode_identically(topic: str) -> None:
    raw = _golden(topic)
    decoded = decode(raw)
    assert encode(decoded) == raw
    assert decoded == EXAMPLES[topic]


@pytest.mark.parametrize("topic", _EVENT_TOPICS)
def test_example_encodes_to_the_committed_bytes(topic: str) -> None:
    example = EXAMPLES[topic]
    assert encode(example) == _golden(topic)
    assert decode(encode(example)) == example


def test_rejected_record_golden_round_trips() -> None:
    raw = _golden("logs.rejected")
    assert RejectedRecord.model_validate_json(raw).model_dump_json().encode() == raw
    assert REJECTED_RECORD.model_dump_json().encode() == raw


def test_committed_artifacts_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0, capsys.readouterr().err


def test_check_reports_a_stale_artifact(tmp_path: Path) -> None:
    # Older schema versions are history the export cannot regenerate: start from the committed ones.
    shutil.copytree(CONTRACTS_DIR / "schemas", tmp_path / "schemas")
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0
    golden_path(tmp_path, "nim.down").write_bytes(b"{}")
    assert main(["--check", "--root", str(tmp_path)]) == 1
