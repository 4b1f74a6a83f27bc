"""The state document plus its blobs, written atomically on every change."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import orjson

from flywheel_nmp_emulator.state.blobs import BlobStore, DirectoryBlobs, MemoryBlobs, atomic_write
from flywheel_nmp_emulator.state.records import EmulatorState, TimelineEvent, TimelineKind

log = logging.getLogger(__name__)

# The timeline is for tests and demos; bound it so a long-running emulator does not grow forever.
MAX_TIMELINE_EVENTS = 10_000


class StateStore:
    def __init__(
        self,
        state_file: Path | None,
        data_dir: Path | None,
        clock: Callable[[], float],
    ) -> None:
        self._file = state_file
        self.clock = clock
        self.blobs: BlobStore = DirectoryBlobs(data_dir) if data_dir else MemoryBlobs()
        self.state = self._load()

    def _load(self) -> EmulatorState:
        if self._file is None or not self._file.exists():
            return EmulatorState()
        state = EmulatorState.model_validate_json(self._file.read_bytes())
        log.info("restored emulator state from %s", self._file)
        return state

    def commit(self) -> None:
        """Persist the current state (call after every mutation)."""
        if self._file is None:
            return
        self._file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self._file, orjson.dumps(self.state.model_dump(mode="json")))

    def record(self, kind: TimelineKind, ident: str, event: str, detail: str = "") -> None:
        timeline = self.state.timeline
        timeline.append(
            TimelineEvent(at=self.clock(), kind=kind, id=ident, event=event, detail=detail)
        )
        if len(timeline) > MAX_TIMELINE_EVENTS:
            del timeline[: len(timeline) - MAX_TIMELINE_EVENTS]

    def reset(self) -> None:
        self.blobs.delete_prefix("datasets")
        self.blobs.delete_prefix("adapters")
        self.state = EmulatorState()
        self.commit()
