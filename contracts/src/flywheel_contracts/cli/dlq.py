"""`flywheel dlq`: inspect a topic's dead letters and replay chosen ones to their origin topic.

A dead letter is the failed message as it was consumed (value, key, headers) plus the kit's
`dlq.*` headers saying where it came from and why it failed. Replaying re-publishes the value,
key and original headers to the origin topic with `replay.from` (`<topic>.dlq@<offset>`) and
`replay.at` added; the services' idempotency (processed event ids) makes a replayed event take
effect once, however often it is replayed.
"""

import json
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime

from flywheel_contracts.catalog import dlq_topic
from flywheel_contracts.cli.bus import Bus, Record
from flywheel_contracts.cli.errors import CliError
from flywheel_contracts.runtime.delivery import (
    DLQ_ERROR,
    DLQ_EXCEPTION,
    DLQ_KIND,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_TOPIC,
    DLQ_ORIGINAL_SIZE,
    DLQ_PREFIX,
    DLQ_REASON,
    DLQ_TRUNCATED,
    REPLAY_AT,
    REPLAY_FROM,
    ErrorKind,
)

_DLQ_SUFFIX = dlq_topic("")


def topics_of(topic: str) -> tuple[str, str]:
    """(origin topic, dead-letter topic) for either name."""
    origin = topic.removesuffix(_DLQ_SUFFIX)
    if not origin:
        raise CliError(f"{topic!r} names no topic")
    return origin, dlq_topic(origin)


@dataclass(frozen=True)
class DeadLetter:
    record: Record

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.record.headers if key == name]
        return values[-1].decode(errors="replace") if values else None

    @property
    def truncated(self) -> bool:
        return self.header(DLQ_TRUNCATED) == "true"

    def summary(self) -> dict[str, object]:
        """One row of `dlq list`."""
        return {
            "offset": self.record.offset,
            "origin": (
                f"{self.header(DLQ_ORIGIN_TOPIC)}[{self.header(DLQ_ORIGIN_PARTITION)}]"
                f"@{self.header(DLQ_ORIGIN_OFFSET)}"
            ),
            "reason": self.header(DLQ_REASON),
            "kind": self.header(DLQ_KIND),
            "error": self.header(DLQ_ERROR) or self.header(DLQ_EXCEPTION),
            "bytes": int(self.header(DLQ_ORIGINAL_SIZE) or len(self.record.value)),
            "truncated": self.truncated,
            "replayed_from": self.header(REPLAY_FROM),
        }


def read_dead_letters(bus: Bus, topic: str) -> list[DeadLetter]:
    """Every dead letter of `topic` (origin or `.dlq` name), oldest first."""
    _, dead = topics_of(topic)
    batches = bus.read((dead,), from_beginning=True, follow=False)
    with closing(batches):
        return [DeadLetter(record) for batch in batches for record in batch.records]


def pick(letters: Iterable[DeadLetter], offsets: Sequence[int], topic: str) -> list[DeadLetter]:
    """The dead letters at `offsets`, in that order; CliError naming any that is missing."""
    by_offset = {letter.record.offset: letter for letter in letters}
    missing = [str(offset) for offset in offsets if offset not in by_offset]
    if missing:
        raise CliError(f"no dead letter at offset {', '.join(missing)} of {topics_of(topic)[1]}")
    return [by_offset[offset] for offset in offsets]


def list_lines(letters: Sequence[DeadLetter], as_json: bool) -> list[str]:
    rows = [letter.summary() for letter in letters]
    if as_json:
        return [json.dumps(rows)]
    if not rows:
        return ["no dead letters"]
    lines = []
    for row in rows:
        flags = " (truncated)" if row["truncated"] else ""
        flags += f" (replay of {row['replayed_from']})" if row["replayed_from"] else ""
        error = " ".join(str(row["error"]).split())[:160]
        lines.append(
            f"{row['offset']:>6}  {row['origin']}  {row['reason']}/{row['kind']}  "
            f"{row['bytes']} B{flags}  {error}"
        )
    return lines


def show_text(letter: DeadLetter) -> str:
    record = letter.record
    lines = [f"offset: {record.offset}", f"key: {(record.key or b'').decode(errors='replace')}"]
    lines += [f"{name}: {value.decode(errors='replace')}" for name, value in record.headers]
    lines.append("")
    if record.tombstone:
        lines.append("(no value: a tombstone)")
    else:
        lines.append(record.value.decode(errors="replace"))
    return "\n".join(lines)


def replay(bus: Bus, topic: str, letters: Sequence[DeadLetter]) -> list[str]:
    """Re-publish `letters` to the origin topic; one line per replayed message.

    A truncated dead letter is refused: its value is not the message that failed.
    """
    origin, dead = topics_of(topic)
    truncated = [str(letter.record.offset) for letter in letters if letter.truncated]
    if truncated:
        raise CliError(
            f"dead letter {', '.join(truncated)} of {dead} was truncated to fit the broker; "
            "its value is not the original message and cannot be replayed"
        )
    now = datetime.now(UTC).isoformat()
    done = []
    for letter in letters:
        record = letter.record
        headers = [(name, value) for name, value in record.headers if not _replay_header(name)]
        headers += [(REPLAY_FROM, f"{dead}@{record.offset}".encode()), (REPLAY_AT, now.encode())]
        tombstone = record.tombstone or letter.header(DLQ_KIND) == ErrorKind.TOMBSTONE
        bus.send(origin, None if tombstone else record.value, record.key, headers)
        done.append(f"replayed {dead}@{record.offset} to {origin}")
    return done


def _replay_header(name: str) -> bool:
    return name.startswith(DLQ_PREFIX) or name in (REPLAY_FROM, REPLAY_AT)
