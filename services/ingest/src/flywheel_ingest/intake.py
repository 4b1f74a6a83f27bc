"""The HTTP intake's logic: an NDJSON body becomes lines on the source topic, exactly as the
log shipper would put them there, so the same validation applies downstream."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from flywheel_ingest import metrics
from flywheel_ingest.config import IntakeSettings
from flywheel_ingest.errors import IntakeRefused

_PAYLOAD_TOO_LARGE = 413
_SHOWN_LINES = 10


class RawTopic(Protocol):
    async def put(self, lines: Sequence[bytes], key: bytes | None) -> None: ...


@dataclass(frozen=True, slots=True)
class Accepted:
    lines: int
    blank: int


class LogIntake:
    def __init__(self, topic: RawTopic, settings: IntakeSettings) -> None:
        self._topic = topic
        self._settings = settings

    @property
    def max_body_bytes(self) -> int:
        return self._settings.max_body_bytes

    async def accept(self, body: bytes, *, source: str | None) -> Accepted:
        """Forward every non-blank line; all or nothing is refused before anything is sent.

        `source` keys the lines, keeping one source's lines in order (the shipper keys by file).
        """
        if len(body) > self._settings.max_body_bytes:
            raise IntakeRefused(
                f"the body exceeds {self._settings.max_body_bytes} bytes",
                status_code=_PAYLOAD_TOO_LARGE,
            )
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
        if too_long:
            shown = ", ".join(map(str, too_long[:_SHOWN_LINES]))
            raise IntakeRefused(
                f"{len(too_long)} line(s) over {self._settings.max_line_bytes} bytes "
                f"(line {shown}{', ...' if len(too_long) > _SHOWN_LINES else ''}); nothing was sent",
                status_code=_PAYLOAD_TOO_LARGE,
            )
        if lines:
            await self._topic.put(lines, source.encode() if source else None)
            metrics.INTAKE_LINES.inc(len(lines))
        return Accepted(len(lines), blank)
