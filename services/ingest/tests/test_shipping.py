"""Acceptance 1 and 2 on the real stack: a generated log file in the shipper's folder, through
rsyslog, logs.raw and a real `python -m flywheel_ingest`, ends as exactly one document per valid
record and one rejection (with the right reason) per malformed line; also when ingest is killed
mid-stream, and when Elasticsearch is down for 30 s mid-stream.

Isolation on the shared stack: each test has its own index, consumer group (pinned at the current
end of logs.raw) and client id, counts only its client's documents and only the rejections
its group published.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from flywheel_contracts.events.records import RAW_LIMIT, RejectedRecord, RejectReason
from flywheel_contracts.traffic import GenerationSummary, TrafficConfig, generate_to_file
from flywheel_contracts.traffic import malformed_lines as malformed_traffic
from flywheel_ingest.clients.outbox import REJECTED_TOPIC
from flywheel_ingest.testing import (
    IngestProcess,
    count_documents,
    delete_index,
    end_offsets,
    metric_value,
    occurrences,
    pin_group,
    read_rejected,
    unique,
    workload_counts,
)
from flywheel_localstack.pytest_plugin import StackHandle

pytestmark = pytest.mark.integration

RECORDS = 50_000
MALFORMED = 1_000
DISRUPT_AT = 15_000
SEED = 2025
DEADLINE_S = 240.0


@dataclass
class ShippedFile:
    """One generated log file on its way through the shipper, and what it must become."""

    stack: StackHandle
    tag: str
    path: Path
    summary: GenerationSummary
    malformed: list[tuple[str, RejectReason]]
    raw_start: dict[int, int]
    rejected_start: dict[int, int]
    shipped_at: float = field(default=0.0)

    @property
    def index(self) -> str:
        return self.tag

    @property
    def group(self) -> str:
        return self.tag

    def ship(self) -> None:
        """Give the file its *.jsonl name: rsyslog starts shipping it."""
        shipped = self.path.with_suffix("")
        self.path.rename(shipped)
        self.path = shipped
        self.shipped_at = time.monotonic()

    def documents(self) -> int:
        return count_documents(self.stack.elasticsearch_url, self.index, client_id=self.tag)

    def wait_for_documents(self, at_least: int) -> int:
        """Wait, through Elasticsearch restarts, until the client has `at_least` documents."""
        deadline = self.shipped_at + DEADLINE_S
        count = 0
        while True:
            try:
                count = self.documents()
            except httpx.HTTPError:
                count = 0  # Elasticsearch (re)starting
            if count >= at_least:
                return count
            assert time.monotonic() < deadline, f"{count} of {at_least} documents in time"
            time.sleep(0.5)

    def rejections(self) -> list[RejectedRecord]:
        return read_rejected(
            self.stack.kafka_bootstrap,
            group=self.group,
            start=self.rejected_start,
            expected=MALFORMED,
            timeout_s=max(30.0, self.shipped_at + DEADLINE_S - time.monotonic()),
        )

    def expected_rejections(self) -> Counter[tuple[str, RejectReason]]:
        """Each malformed line with its reason, as many times as it was shipped: the shipper
        repeats a few lines when Kafka restarts, and a repeated broken line is refused again."""
        reasons = {line.encode(): reason for line, reason in self.malformed}
        shipped = occurrences(
            self.stack.kafka_bootstrap,
            "logs.raw",
            start=self.raw_start,
            key=str(self.path).encode(),
            wanted=set(reasons),
        )
        assert set(shipped) == set(reasons), "some malformed lines never reached logs.raw"
        return Counter(
            {(line.decode()[:RAW_LIMIT], reasons[line]): times for line, times in shipped.items()}
        )

    def assert_everything_arrived_once(self, *, rejections_exactly_once: bool) -> None:
        self.wait_for_documents(RECORDS)
        time.sleep(2.0)  # a duplicate or a late extra would show up now
        assert (
            count_documents(
                self.stack.elasticsearch_url, self.index, client_id=self.tag, refresh=True
            )
            == RECORDS
        )
        assert (
            workload_counts(self.stack.elasticsearch_url, self.index, client_id=self.tag)
            == self.summary.workloads
        )
        found = Counter((record.raw, record.reason) for record in self.rejections())
        expected = self.expected_rejections()
        if rejections_exactly_once:
            assert found == expected
        else:  # a batch refused before a crash may be refused again after it
            assert set(found) == set(expected)
            assert all(found[line] >= times for line, times in expected.items())


@pytest.fixture
def shipped_file(stack: StackHandle) -> Iterator[ShippedFile]:
    if stack.shipper_dir is None:
        pytest.skip("this stack has no log shipper folder")
    tag = unique("ingest-it")
    config = TrafficConfig(client_ids=(tag,), timestamp_format="mixed")
    raw_start = end_offsets(stack.kafka_bootstrap, "logs.raw")
    rejected_start = end_offsets(stack.kafka_bootstrap, REJECTED_TOPIC)
    pin_group(stack.kafka_bootstrap, tag, "logs.raw", raw_start)
    # Not yet *.jsonl: the shipper must not read a half-written file.
    path = stack.shipper_dir / f"{tag}.jsonl.part"
    run = ShippedFile(
        stack=stack,
        tag=tag,
        path=path,
        summary=generate_to_file(path, RECORDS, SEED, config, malformed=MALFORMED),
        malformed=list(malformed_traffic(MALFORMED, SEED, config=config)),
        raw_start=raw_start,
        rejected_start=rejected_start,
    )
    try:
        yield run
    finally:
        run.path.unlink(missing_ok=True)
        delete_index(stack.elasticsearch_url, run.index)


def test_every_line_becomes_one_document_or_one_rejection(
    shipped_file: ShippedFile,
    ingest_settings: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    assert sum(shipped_file.summary.malformed.values()) == MALFORMED
    settings = ingest_settings(index=shipped_file.index, group=shipped_file.group)
    with IngestProcess(settings, tmp_path / "ingest.log") as ingest:
        shipped_file.ship()
        shipped_file.assert_everything_arrived_once(rejections_exactly_once=True)
        metrics = ingest.metrics()
    # At least: other writers may put lines on logs.raw meanwhile, and this group reads them too.
    for reason, count in shipped_file.summary.malformed.items():
        assert (
            metric_value(metrics, f'flywheel_ingest_rejected_total{{reason="{reason}"}}') >= count
        )
    assert metric_value(metrics, 'flywheel_ingest_records_total{outcome="indexed"}') >= RECORDS


def test_nothing_is_lost_or_duplicated_when_ingest_is_killed_mid_stream(
    shipped_file: ShippedFile,
    ingest_settings: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    settings = ingest_settings(index=shipped_file.index, group=shipped_file.group)
    first = IngestProcess(settings, tmp_path / "ingest.log")
    first.start()
    try:
        shipped_file.ship()
        killed_at = shipped_file.wait_for_documents(DISRUPT_AT)
        first.kill()
    finally:
        first.stop()
    assert killed_at < RECORDS, "the kill came too late to test anything"
    with IngestProcess(settings, tmp_path / "ingest.log") as restarted:
        shipped_file.assert_everything_arrived_once(rejections_exactly_once=False)
        assert restarted.alive


def test_nothing_is_lost_while_elasticsearch_is_down_for_30_seconds(
    stack: StackHandle,
    shipped_file: ShippedFile,
    ingest_settings: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    settings = ingest_settings(index=shipped_file.index, group=shipped_file.group)
    with IngestProcess(settings, tmp_path / "ingest.log") as ingest:
        shipped_file.ship()
        stopped_at_count = shipped_file.wait_for_documents(DISRUPT_AT)
        stack.stop("elasticsearch")
        stopped = time.monotonic()
        try:
            _wait_until_paused(ingest, timeout_s=25.0)
            assert ingest.alive
            time.sleep(max(0.0, 30.0 - (time.monotonic() - stopped)))
        finally:
            stack.start("elasticsearch")
        assert stopped_at_count < RECORDS, "the outage came too late to test anything"
        shipped_file.assert_everything_arrived_once(rejections_exactly_once=True)
        assert ingest.alive
        assert metric_value(ingest.metrics(), "flywheel_ingest_consumption_paused") == 0.0


def _wait_until_paused(ingest: IngestProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if metric_value(ingest.metrics(), "flywheel_ingest_consumption_paused") == 1.0:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"ingest did not pause consumption within {timeout_s}s")
