"""Generated agent traffic of one client, cut into parts that are shipped one at a time through
the real log shipper, so a fault can fall between two parts of the same batch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from flywheel_contracts.traffic import ROUTER, WORKLOAD_IDS, TrafficConfig, generate_to_file
from flywheel_localstack.services import FlywheelSetup, indexed, ship, wait_indexed

INDEX_TIMEOUT_S = 240.0
# After the last record is searchable: how long to keep counting, so a late duplicate would show.
LINGER_S = 3.0


@dataclass(frozen=True)
class Batch:
    client_id: str
    records: int
    router_records: int
    """Records of the tool-calling workload the runs use."""
    parts: tuple[Path, ...]
    """Staged files (not yet shipped), in shipping order."""
    part_records: tuple[int, ...]


def generate(
    folder: Path,
    client_id: str,
    records: int,
    seed: int,
    parts: int = 1,
    workloads: tuple[str, ...] = WORKLOAD_IDS,
) -> Batch:
    """`records` records of `client_id` over `workloads`, staged in `parts` files of
    consecutive lines."""
    whole = folder / f"{client_id}.all"
    config = TrafficConfig(workloads=workloads, client_ids=(client_id,))
    summary = generate_to_file(whole, records, seed, config)
    lines = whole.read_bytes().splitlines(keepends=True)
    whole.unlink()
    size = -(-len(lines) // parts)
    chunks = [lines[number * size : (number + 1) * size] for number in range(parts)]
    staged = [folder / f"{client_id}-{number}.partial" for number in range(parts)]
    for path, chunk in zip(staged, chunks, strict=True):
        path.write_bytes(b"".join(chunk))
    return Batch(
        client_id,
        records,
        summary.workloads.get(ROUTER, 0),
        tuple(staged),
        tuple(len(chunk) for chunk in chunks),
    )


class Shipments:
    """Parts shipped into the shipper's folder, removed once the scenario is over."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.shipped: list[Path] = []

    def ship(self, staged: Path) -> None:
        self.shipped.append(ship(self.folder, staged))

    def remove(self) -> None:
        for path in self.shipped:
            path.unlink(missing_ok=True)


def indexed_exactly(
    setup: FlywheelSetup, batch: Batch, timeout_s: float = INDEX_TIMEOUT_S
) -> float:
    """Wait until every record of `batch` is searchable and stays counted once; the seconds it
    took. AssertionError on a record lost or indexed twice."""
    url, index = setup.servers.elasticsearch_url, setup.index
    seconds = wait_indexed(url, index, batch.client_id, batch.records, timeout_s)
    time.sleep(LINGER_S)
    found = indexed(url, index, batch.client_id)
    assert found == batch.records, f"{found} records of {batch.client_id}, {batch.records} shipped"
    return seconds
