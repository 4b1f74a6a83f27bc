"""The HTTP intake's logic: an NDJSON body becomes lines on the source topic, exactly as the
log shipper would put them there, so the same validation applies downstream. A producer's items
(see `producers`) go the same way, tagged with their format."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from flywheel_ingest import metrics
from flywheel_ingest.auth import Grant
from flywheel_ingest.config import IntakeSettings, ProducerSettings
from flywheel_ingest.duplicates import SeenCalls
from flywheel_ingest.errors import IntakeRefused
from flywheel_ingest.producers import Format
from flywheel_ingest.producers.translate import verdict
from flywheel_ingest.scope import scope_refusal
from flywheel_ingest.validation import LogRecord, Refusal

_PAYLOAD_TOO_LARGE = 413
_SHOWN_LINES = 10
_EVERY_CLIENT = Grant()


class RawTopic(Protocol):
    async def put(
        self,
        lines: Sequence[bytes],
        key: bytes | None,
        fmt: Format = Format.RECORD,
        *,
        token: str | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Accepted:
    lines: int
    blank: int


class LogIntake:
    def __init__(
        self,
        topic: RawTopic,
        settings: IntakeSettings,
        *,
        producers: ProducerSettings | None = None,
        max_record_bytes: int | None = None,
    ) -> None:
        self._topic = topic
        self._settings = settings
        self._producers = producers or ProducerSettings()
        self._max_record_bytes = max_record_bytes or settings.max_line_bytes

    @property
    def max_body_bytes(self) -> int:
        return self._settings.max_body_bytes

    @property
    def body_timeout_s(self) -> float:
        return self._settings.body_timeout_s

    @property
    def producers(self) -> ProducerSettings:
        return self._producers

    async def accept(
        self, body: bytes, *, source: str | None, grant: Grant = _EVERY_CLIENT
    ) -> Accepted:
        """Forward every non-blank line; all or nothing is refused before anything is sent.

        `source` keys the lines, keeping one source's lines in order (the shipper keys by file).
        A scoped `grant`'s token name goes with the lines: ingest checks each record's client
        against it when it reads them (the intake does not parse the lines).
        """
        self.refuse_oversize(len(body))
        lines: list[bytes] = []
        too_long: list[int] = []
        blank = 0
        pieces = body.split(b"\n")
        if pieces[-1] == b"":
            pieces.pop()  # the newline ending the last line
        for number, line in enumerate(pieces, start=1):
            line = line.removesuffix(b"\r")
            if not line.strip():
                blank += 1  # NDJSON allows blank lines; they carry no record
                continue
            if len(line) > self._settings.max_line_bytes:
                too_long.append(number)
            lines.append(line)
        self.refuse_too_many(len(lines))
        self._refuse_too_long(too_long)
        await self._forward(lines, source, Format.RECORD, grant)
        return Accepted(len(lines), blank)

    async def accept_items(
        self,
        items: Sequence[bytes],
        fmt: Format,
        *,
        source: str | None,
        grant: Grant = _EVERY_CLIENT,
    ) -> list[LogRecord | Refusal]:
        """Forward a producer's items, refused ones too (so `logs.rejected` keeps them with
        their reason), and say what ingest will make of each: the same pure `verdict` and
        `scope_refusal` it applies when it reads them, so an answer given here holds."""
        self.refuse_oversize(sum(len(item) for item in items))
        self.refuse_too_many(len(items))
        self._refuse_too_long(
            [
                number
                for number, item in enumerate(items, start=1)
                if len(item) > self._settings.max_line_bytes
            ]
        )
        verdicts = [
            self._in_scope(verdict(item, fmt, self._producers, self._max_record_bytes), grant)
            for item in items
        ]
        await self._forward(items, source, fmt, grant)
        return verdicts

    def _in_scope(self, outcome: LogRecord | Refusal, grant: Grant) -> LogRecord | Refusal:
        if isinstance(outcome, Refusal):
            return outcome
        return scope_refusal(outcome.client_id, grant.token, self._settings.tokens) or outcome

    def refuse_too_many(self, count: int) -> None:
        """IntakeRefused (413) for more lines (or items) than one request may carry."""
        if count > self._settings.max_lines:
            raise IntakeRefused(
                f"the request carries {count} lines; the limit is {self._settings.max_lines} "
                "per request (FLYWHEEL_INGEST_INTAKE__MAX_LINES): split it; nothing was sent",
                status_code=_PAYLOAD_TOO_LARGE,
            )

    def refuse_oversize(self, size: int) -> None:
        """IntakeRefused (413) for a body of `size` bytes over the limit."""
        if size > self._settings.max_body_bytes:
            raise IntakeRefused(
                f"the body exceeds {self._settings.max_body_bytes} bytes",
                status_code=_PAYLOAD_TOO_LARGE,
            )

    def _refuse_too_long(self, too_long: Sequence[int]) -> None:
        if too_long:
            shown = ", ".join(map(str, too_long[:_SHOWN_LINES]))
            raise IntakeRefused(
                f"{len(too_long)} line(s) over {self._settings.max_line_bytes} bytes "
                f"(line {shown}{', ...' if len(too_long) > _SHOWN_LINES else ''}); nothing was sent",
                status_code=_PAYLOAD_TOO_LARGE,
            )

    async def _forward(
        self, lines: Sequence[bytes], source: str | None, fmt: Format, grant: Grant
    ) -> None:
        if lines:
            key = source.encode() if source else None
            await self._topic.put(lines, key, fmt, token=grant.token)
            metrics.INTAKE_LINES.inc(len(lines))


def _unless_seen(outcome: LogRecord | Refusal, seen: SeenCalls) -> LogRecord | Refusal:
    """The request's second export of a call is refused, as the reader will refuse it when the
    two arrive in one batch (they are sent together, so they usually do)."""
    if isinstance(outcome, Refusal):
        return outcome
    return seen.refusal(outcome) or outcome
