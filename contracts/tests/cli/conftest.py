"""An in-memory bus and a runner, so the commands are tested without Kafka."""

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import pytest
from click.testing import CliRunner, Result

from flywheel_contracts.cli.bus import Batch, Offsets, Record
from flywheel_contracts.cli.main import Session, cli
from flywheel_contracts.envelope import Envelope, encode
from flywheel_contracts.examples import EXAMPLES

# The idle pause of a following read, standing in for the broker's poll timeout.
_IDLE_S = 0.01


@dataclass
class FakeBus:
    published: list[Envelope[Any]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    snapshot: Offsets = field(default_factory=lambda: Offsets(partitions={}, end={}))
    reads: list[tuple[str, ...]] = field(default_factory=list)
    sent: list[Record] = field(default_factory=list)

    def publish(self, envelope: Envelope[Any]) -> None:
        self.published.append(envelope)

    def add(self, *envelopes: Envelope[Any]) -> None:
        for envelope in envelopes:
            self.add_raw(envelope.event_type, encode(envelope), envelope.key())

    def add_raw(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Record:
        """Appends a message; offsets count per topic, as on a one-partition topic."""
        offset = sum(1 for r in self.records if r.topic == topic)
        record = Record(topic, 0, offset, key, value or b"", tuple(headers), value is None)
        self.records.append(record)
        return record

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        self.sent.append(self.add_raw(topic, value, key, headers))

    def read(
        self,
        topics: tuple[str, ...],
        *,
        from_beginning: bool,
        follow: bool,
        key: bytes | None = None,
    ) -> Generator[Batch, None, None]:
        self.reads.append(topics)
        start = 0 if from_beginning else len(self.records)
        while True:
            batch = [
                r
                for r in self.records[start:]
                if r.topic in topics and (key is None or r.key == key)
            ]
            start = len(self.records)
            yield Batch(batch, caught_up=True)
            if not follow:
                return
            time.sleep(_IDLE_S)

    def offsets(self) -> Offsets:
        return self.snapshot


def for_run(envelope: Envelope[Any], run_id: UUID) -> Envelope[Any]:
    """A golden example re-addressed to `run_id`, with an id of its own."""
    return envelope.model_copy(update={"run_id": run_id, "event_id": uuid4()})


def golden(event_type: str, run_id: UUID) -> Envelope[Any]:
    return for_run(EXAMPLES[event_type], run_id)


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


Invoke = Callable[..., Result]


@pytest.fixture
def invoke(bus: FakeBus) -> Invoke:
    """Runs `flywheel ARGS` on the fake bus; stdout and stderr kept apart."""

    def run(*args: str, input: str | None = None) -> Result:
        session = Session(make_bus=lambda _kafka: bus)
        return CliRunner().invoke(cli, list(args), obj=session, input=input)

    return run
