"""Traffic written to a JSONL file, the way an application's log file looks to the shipper."""

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from random import Random

from flywheel_contracts.traffic.malformed import DEFAULT_MAX_LINE_BYTES, malformed_lines
from flywheel_contracts.traffic.records import TrafficConfig, labelled_lines

_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class GenerationSummary:
    """What a file holds: the counts a test or the demo checks ingest against."""

    path: Path
    records: int
    workloads: dict[str, int]
    malformed: dict[str, int]  # reject reason -> lines
    bytes: int
    seconds: float

    @property
    def lines_per_second(self) -> float:
        return (self.records + sum(self.malformed.values())) / max(self.seconds, 1e-9)


def generate_to_file(
    path: str | Path,
    records: int,
    seed: int,
    config: TrafficConfig | None = None,
    *,
    malformed: int = 0,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> GenerationSummary:
    """Write ``records`` valid records, with ``malformed`` broken lines mixed in, to ``path``.

    The valid records are the same with or without broken lines: those come from their own
    random streams, and so do their positions.
    """
    if malformed < 0:
        raise ValueError("malformed must be >= 0")
    path = Path(path)
    started = time.perf_counter()
    valid = labelled_lines(records, seed, config)
    broken = malformed_lines(malformed, seed, max_line_bytes=max_line_bytes, config=config)
    positions = Random(f"{seed}/malformed-positions")
    workloads: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    left_valid, left_broken = records, malformed
    with path.open("w", encoding="utf-8", newline="\n", buffering=_BUFFER_BYTES) as out:
        while left_valid or left_broken:
            # Selection sampling: every arrangement is equally likely and the counts are exact.
            if positions.randrange(left_valid + left_broken) < left_broken:
                line, reason = next(broken)
                reasons[reason] += 1
                left_broken -= 1
            else:
                workload, line = next(valid)
                workloads[workload] += 1
                left_valid -= 1
            out.write(line)
            out.write("\n")
    return GenerationSummary(
        path,
        records,
        dict(sorted(workloads.items())),
        dict(sorted(reasons.items())),
        path.stat().st_size,
        time.perf_counter() - started,
    )
