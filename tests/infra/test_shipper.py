"""rsyslog ships every line of the watched *.jsonl files into logs.raw, once and in order."""

from __future__ import annotations

import time
import uuid

import pytest

from flywheel_localstack.pytest_plugin import StackHandle
from tests.infra.shipping import append, end_offsets, shipped, shipper_folder

pytestmark = pytest.mark.integration


def test_every_line_is_shipped_in_order_across_appends_and_rotation(stack: StackHandle) -> None:
    start = end_offsets(stack.kafka_bootstrap)
    path = shipper_folder(stack) / f"app-{uuid.uuid4().hex[:8]}.jsonl"

    append(path, range(0, 1500))
    append(path, [1500], pad=50_000)  # far beyond rsyslog's 8 KB default line limit
    time.sleep(1)
    append(path, range(1501, 2500))  # appended later
    path.rename(path.with_name(path.name + ".1"))  # rotated: the old name no longer matches
    append(path, range(2500, 3500))  # the application reopens the same name

    records = shipped(stack.kafka_bootstrap, start, path, expected=3500)

    seqs = [int(str(r["seq"])) for r in records]
    assert sorted(seqs) == list(range(3500)), "every line exactly once"
    before_rotation = [s for s in seqs if s < 2500]
    after_rotation = [s for s in seqs if s >= 2500]
    assert before_rotation == sorted(before_rotation), "order kept within the first file"
    assert after_rotation == sorted(after_rotation), "order kept within the second file"
    assert len(str(next(r for r in records if r["seq"] == 1500)["pad"])) == 50_000


def test_file_positions_survive_a_shipper_restart(stack: StackHandle) -> None:
    start = end_offsets(stack.kafka_bootstrap)
    path = shipper_folder(stack) / f"restart-{uuid.uuid4().hex[:8]}.jsonl"

    append(path, range(0, 700))
    assert len(shipped(stack.kafka_bootstrap, start, path, expected=700)) == 700
    stack.restart("rsyslog")
    append(path, range(700, 1000))

    seqs = [int(str(r["seq"])) for r in shipped(stack.kafka_bootstrap, start, path, expected=1000)]
    assert seqs == list(range(1000)), "nothing re-sent, nothing lost"
