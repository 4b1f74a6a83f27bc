"""Fakes of ingest's ports for the unit tests; settings of a real ingest process for the
integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flywheel_contracts.events.records import RecordsIngested, RejectedRecord
from flywheel_ingest.config import PiiSettings, RetrySettings
from flywheel_ingest.documents import Document, RawLine
from flywheel_ingest.errors import OutboxUnavailable, StoreUnavailable
from flywheel_ingest.pii import Redactor
from flywheel_ingest.ports import IndexResult, PartitionKey
from flywheel_ingest.service import IngestService
from flywheel_ingest.testing import PrivateIngest, PrivateIngestOf, private_ingest, unique
from flywheel_localstack.pytest_plugin import StackHandle

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class FakeStore:
    """Keeps documents by id; can be down for a while, or refuse or defer given ids."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.requests: list[list[str]] = []
        self.down_for = 0  # the next n requests fail as a whole
        self.defer_once: set[str] = set()
        self.refuse: set[str] = set()
        self.gate: asyncio.Event | None = None  # when set, requests wait for it

    async def index(self, documents: Sequence[Document]) -> IndexResult:
        self.requests.append([doc.id for doc in documents])
        if self.gate is not None:
            await self.gate.wait()
        if self.down_for:
            self.down_for -= 1
            raise StoreUnavailable("connection refused")
        result = IndexResult()
        for doc in documents:
            if doc.id in self.refuse:
                result.refused.append((doc, "mapper_parsing_exception: boom"))
            elif doc.id in self.defer_once:
                self.defer_once.discard(doc.id)
                result.retry.append(doc)
            elif doc.id in self.documents:
                result.duplicates.append(doc)
            else:
                self.documents[doc.id] = doc.body
                result.created.append(doc)
        return result


class FakeOutbox:
    def __init__(self) -> None:
        self.rejected: list[RejectedRecord] = []
        self.announced: list[RecordsIngested] = []
        self.reject_failures = 0  # the next n calls acknowledge only the first record
        self.announce_failures = 0

    async def reject(self, records: Sequence[RejectedRecord]) -> None:
        if self.reject_failures and len(records) > 1:
            self.reject_failures -= 1
            self.rejected.append(records[0])
            raise OutboxUnavailable("timed out", pending=records[1:])
        self.rejected.extend(records)

    async def announce(self, batch: RecordsIngested) -> None:
        if self.announce_failures:
            self.announce_failures -= 1
            raise OutboxUnavailable("timed out")
        self.announced.append(batch)


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class FakeSource:
    """Hands out queued lines; records commits and pauses."""

    def __init__(self, lines: Sequence[RawLine] = ()) -> None:
        self.queue: list[RawLine] = list(lines)
        self.commits: list[dict[PartitionKey, int]] = []
        self.events: list[str] = []
        self.paused = False
        self.fetch_sizes: list[int] = []

    async def fetch(self, max_lines: int, timeout_s: float) -> list[RawLine]:
        if self.paused:
            raise AssertionError("fetch while paused")
        taken, self.queue = self.queue[:max_lines], self.queue[max_lines:]
        self.fetch_sizes.append(len(taken))
        await asyncio.sleep(0 if taken else min(timeout_s, 0.01))
        return taken

    async def pause(self) -> None:
        self.paused = True
        self.events.append("pause")

    async def keep_alive(self) -> None:
        self.events.append("keep_alive")
        await asyncio.sleep(0.01)

    async def resume(self) -> None:
        self.paused = False
        self.events.append("resume")

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        self.commits.append(dict(offsets))
        self.events.append("commit")


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def outbox() -> FakeOutbox:
    return FakeOutbox()


@pytest.fixture
def make_source() -> Callable[[Sequence[RawLine]], FakeSource]:
    return FakeSource


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def service(store: FakeStore, outbox: FakeOutbox, sleep: FakeSleep) -> IngestService:
    return IngestService(
        store,
        outbox,
        Redactor(PiiSettings()),
        max_line_bytes=262_144,
        retry=RetrySettings(backoff_initial_s=0.2, backoff_max_s=1.0),
        clock=lambda: NOW,
        sleep=sleep,
    )


LinesOf = Callable[..., list[RawLine]]


def _lines_of(texts: Sequence[str | bytes], partition: int = 0, start: int = 0) -> list[RawLine]:
    return [
        RawLine(text.encode() if isinstance(text, str) else text, "logs.raw", partition, start + i)
        for i, text in enumerate(texts)
    ]


@pytest.fixture
def lines_of() -> LinesOf:
    """Texts as lines of one partition at consecutive offsets."""
    return _lines_of


@pytest.fixture(scope="session")
def ingest_settings(stack: StackHandle) -> Callable[..., dict[str, str]]:
    """`FLYWHEEL_INGEST_*` settings of an ingest process on this test's stack."""

    def settings(*, index: str, group: str, **extra: str) -> dict[str, str]:
        return {
            "FLYWHEEL_INGEST_KAFKA__BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "FLYWHEEL_INGEST_MONGO__URL": stack.mongo_url,
            "FLYWHEEL_INGEST_ELASTICSEARCH__URL": stack.elasticsearch_url,
            "FLYWHEEL_INGEST_ELASTICSEARCH__INDEX": index,
            "FLYWHEEL_INGEST_GROUP_ID": group,
            **{f"FLYWHEEL_INGEST_{name.upper()}": value for name, value in extra.items()},
        }

    return settings


@pytest.fixture(scope="session")
def private_ingest_of(
    stack: StackHandle, ingest_settings: Callable[..., dict[str, str]]
) -> PrivateIngestOf:
    """`private_ingest_of(prefix, log_dir, **settings)`: an ingest of its own on this stack
    (see `PrivateIngest`), `settings` as for `ingest_settings`."""

    def start(prefix: str, log_dir: Path, **extra: str) -> AbstractContextManager[PrivateIngest]:
        tag = unique(prefix)
        settings = ingest_settings(index=tag, group=tag, source_topic=tag, **extra)
        return private_ingest(
            stack.kafka_bootstrap, stack.elasticsearch_url, tag, settings, log_dir / "ingest.log"
        )

    return start
