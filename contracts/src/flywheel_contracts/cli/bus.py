"""What the commands need from Kafka, as a protocol, and the plain data it returns.

`kafka.KafkaBus` implements it on the broker; unit tests use an in-memory one.
"""

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flywheel_contracts.catalog import TOPICS, dlq_topic
from flywheel_contracts.envelope import Envelope

GROUP_PREFIX = "flywheel."
"""Consumer groups of the flywheel's services (`<topic prefix>flywheel.<service>`), whose lag
`topics` shows."""

Partition = tuple[str, int]
"""(topic, partition)."""


@dataclass(frozen=True)
class Record:
    """One Kafka message, undecoded: raw topics carry no envelope."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    """The value; empty for a tombstone too (then `tombstone` is set)."""
    headers: tuple[tuple[str, bytes], ...] = ()
    tombstone: bool = False


@dataclass(frozen=True)
class Batch:
    """What one poll of the topics returned."""

    records: list[Record]
    caught_up: bool
    """Every partition has been read to its end at least once: the history is behind."""


@dataclass(frozen=True)
class Offsets:
    """A snapshot of the broker's topics and of the flywheel groups' committed offsets."""

    partitions: Mapping[str, int]
    """Partition count per existing topic."""
    end: Mapping[Partition, int]
    """Next offset to be written, per partition."""
    committed: Mapping[str, Mapping[Partition, int]] = field(default_factory=dict)
    """Per consumer group, its committed offset (next to read) per partition."""


@dataclass(frozen=True)
class TopicStats:
    """One row of `flywheel topics`."""

    name: str
    exists: bool
    in_catalog: bool
    end_offsets: tuple[int, ...]
    """Per partition, in partition order."""
    lag: Mapping[str, int]
    """Per consumer group that committed offsets on this topic: messages not yet consumed."""


class Bus(Protocol):
    def publish(self, envelope: Envelope[Any]) -> None:
        """Publish to the event's topic; returns once the broker acknowledged it."""
        ...

    def read(
        self,
        topics: tuple[str, ...],
        *,
        from_beginning: bool,
        follow: bool,
        key: bytes | None = None,
    ) -> Generator[Batch, None, None]:
        """Messages of `topics` (only those with `key`, when given), one batch per poll.

        Batches may be empty, so a follower's caller can keep time; a reader that does not
        follow stops once caught up.
        """
        ...

    def offsets(self) -> Offsets: ...

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        """Publish raw bytes (None: a tombstone) to `topic`; returns once acknowledged."""
        ...


def topic_stats(offsets: Offsets) -> list[TopicStats]:
    """Rows for every broker topic (internal ones aside) and every catalog topic, by name."""
    catalog = {spec.name for spec in TOPICS} | {dlq_topic(spec.name) for spec in TOPICS if spec.dlq}
    names = {name for name in offsets.partitions if not name.startswith("__")} | catalog
    rows = []
    for name in sorted(names):
        count = offsets.partitions.get(name, 0)
        ends = tuple(offsets.end.get((name, p), 0) for p in range(count))
        lag = {
            group: sum(
                max(ends[partition] - offset, 0)
                for (topic, partition), offset in committed.items()
                if topic == name and partition < count
            )
            for group, committed in sorted(offsets.committed.items())
            if any(topic == name for topic, _ in committed)
        }
        rows.append(
            TopicStats(
                name=name,
                exists=name in offsets.partitions,
                in_catalog=name in catalog,
                end_offsets=ends,
                lag=lag,
            )
        )
    return rows
