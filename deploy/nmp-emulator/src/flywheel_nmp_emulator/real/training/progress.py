"""The trainer's progress file, read as it grows (pure but for reading the file).

train_lora.py writes one JSON object a line: `plan` once the model is loaded, `step` after each
optimizer step, `saved` when the adapter is on disk. A line still being written (no newline yet)
is left for the next read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Step:
    step: int
    epoch: float
    loss: float
    seconds: float


@dataclass
class Progress:
    """Everything read so far."""

    steps: list[Step] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    saved: bool = False


def parse_line(line: str, progress: Progress) -> None:
    """Apply one line; a line that is not a known record is ignored (a library's stray print)."""
    try:
        record = json.loads(line)
    except ValueError:
        return
    if not isinstance(record, dict):
        return
    kind = record.get("kind")
    if kind == "plan":
        progress.plan = record
    elif kind == "step":
        try:
            progress.steps.append(
                Step(
                    step=int(record["step"]),
                    epoch=float(record["epoch"]),
                    loss=float(record["loss"]),
                    seconds=float(record["seconds"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            return
    elif kind == "saved":
        progress.saved = True


class ProgressReader:
    """Reads only what was appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.progress = Progress()
        self._offset = 0

    def read(self) -> list[Step]:
        """The steps that appeared since the last read."""
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return []
        complete = data.rfind(b"\n") + 1
        self._offset += complete
        before = len(self.progress.steps)
        for line in data[:complete].decode(errors="replace").splitlines():
            parse_line(line, self.progress)
        return self.progress.steps[before:]
