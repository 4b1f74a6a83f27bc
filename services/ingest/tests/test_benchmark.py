"""Acceptance 3: records/s from a shipped file to searchable documents, against a plain
`async_bulk` of the same records in the same run, and the file-to-searchable lag at a steady
1,000 records/s. Prints the figures (`make bench`); targets: >= 5,000/s, >= 70 %, p99 < 2 s.

"Searchable" means counted by a search, so Elasticsearch's refresh interval (1 s) is included.
A record counts as searchable once the index holds as many of the run's records as its position
in the file: lines of one file stay in order (one partition) and batches are stored in order.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

from flywheel_contracts.traffic import TrafficConfig, generate_lines, generate_to_file
from flywheel_ingest.config import ElasticsearchSettings
from flywheel_ingest.indexer import index_template
from flywheel_ingest.testing import (
    IngestProcess,
    count_documents,
    delete_index,
    end_offsets,
    pin_group,
    unique,
)
from flywheel_localstack.pytest_plugin import StackHandle

pytestmark = pytest.mark.benchmark

RECORDS = 50_000
STEADY_RATE = 1_000
STEADY_SECONDS = 20
TICK_S = 0.05
POLL_S = 0.05


def _wait_for_count(url: str, index: str, client: str, count: int, timeout_s: float) -> float:
    """The monotonic time at which the client's documents reached `count`."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = time.monotonic()
        try:
            if count_documents(url, index, client_id=client) >= count:
                return now
        except httpx.HTTPError:
            pass
        assert now < deadline, f"fewer than {count} documents after {timeout_s}s"
        time.sleep(POLL_S)


async def _plain_bulk(url: str, index: str, records: list[dict[str, Any]]) -> float:
    """Seconds for `async_bulk` with its defaults, then a refresh: searchable, as for ingest."""
    client = AsyncElasticsearch(url, request_timeout=120)
    try:
        template = index_template(ElasticsearchSettings(index=index))["template"]
        # The raw records carry epoch seconds, which ingest would have normalized.
        template["mappings"]["properties"]["timestamp"]["format"] = "epoch_second"
        await client.indices.create(
            index=index, settings=template["settings"], mappings=template["mappings"]
        )
        await client.cluster.health(index=index, wait_for_status="yellow", timeout="30s")
        started = time.monotonic()
        # Retrying 429s (a small heap's circuit breaker) as any real loader must.
        indexed, errors = await async_bulk(
            client, ({"_index": index, **r} for r in records), raise_on_error=False, max_retries=8
        )
        await client.indices.refresh(index=index)
        elapsed = time.monotonic() - started
        assert isinstance(errors, list)  # not a count: raise_on_error=False collects them
        assert (indexed, len(errors)) == (len(records), 0), errors[:1]
        return elapsed
    finally:
        await client.indices.delete(index=index, ignore_unavailable=True)
        await client.close()


class _CountPoller(threading.Thread):
    """Samples (time, count) of one client's documents until stopped."""

    def __init__(self, url: str, index: str, client: str) -> None:
        super().__init__(daemon=True)
        self._args = (url, index, client)
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        url, index, client = self._args
        while not self.stopped.is_set():
            with contextlib.suppress(httpx.HTTPError):  # Elasticsearch busy: sample again
                self.samples.append(
                    (time.monotonic(), count_documents(url, index, client_id=client))
                )
            time.sleep(POLL_S)


def _steady_lags(path: Path, lines: list[str], poller: _CountPoller) -> list[float]:
    """Append `lines` at STEADY_RATE; returns each line's file-to-searchable lag."""
    per_tick = int(STEADY_RATE * TICK_S)
    written_at: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = time.monotonic()
        for tick, first in enumerate(range(0, len(lines), per_tick)):
            time.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))
            chunk = lines[first : first + per_tick]
            os.write(fd, ("\n".join(chunk) + "\n").encode())
            written_at.extend([time.monotonic()] * len(chunk))
    finally:
        os.close(fd)
    while not poller.samples or poller.samples[-1][1] < len(lines):
        assert time.monotonic() < written_at[-1] + 60, "steady records not all searchable"
        time.sleep(POLL_S)
    poller.stopped.set()
    poller.join()
    times = [t for t, _ in poller.samples]
    counts = [c for _, c in poller.samples]
    lags = []
    for position, written in enumerate(written_at):
        seen = times[bisect.bisect_right(counts, position)]
        lags.append(max(0.0, seen - written))
    return lags


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_throughput_ratio_and_lag(
    stack: StackHandle, ingest_settings: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    if stack.shipper_dir is None:
        pytest.skip("this stack has no log shipper folder")
    tag = unique("ingest-bench")
    config = TrafficConfig(client_ids=(tag,))
    url = stack.elasticsearch_url
    pin_group(
        stack.kafka_bootstrap, tag, "logs.raw", end_offsets(stack.kafka_bootstrap, "logs.raw")
    )
    bulk_file = stack.shipper_dir / f"{tag}-bulk.jsonl.part"
    steady_file = stack.shipper_dir / f"{tag}-steady.jsonl"
    generate_to_file(bulk_file, RECORDS, 1, config)
    steady_lines = list(
        generate_lines(STEADY_RATE * STEADY_SECONDS, 2, TrafficConfig(client_ids=(f"{tag}-s",)))
    )
    print(
        f"\n[ingest benchmark] {RECORDS:,} records, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )
    try:
        with IngestProcess(ingest_settings(index=tag, group=tag), tmp_path / "ingest.log"):
            # Throughput: the whole file appears at once (a rename), and is read as fast as
            # the shipper, Kafka, ingest and Elasticsearch go together.
            shipped = bulk_file.with_suffix("")
            started = time.monotonic()
            bulk_file.rename(shipped)
            bulk_file = shipped
            done = _wait_for_count(url, tag, tag, RECORDS, timeout_s=300)
            ingest_rate = RECORDS / (done - started)
            print(f"  file -> searchable through ingest: {ingest_rate:,.0f} records/s (>= 5,000)")

            poller = _CountPoller(url, tag, f"{tag}-s")
            poller.start()
            lags = _steady_lags(steady_file, steady_lines, poller)
            print(
                f"  steady {STEADY_RATE:,}/s for {STEADY_SECONDS} s, file -> searchable lag: "
                f"p50 {_percentile(lags, 0.5):.2f} s, p99 {_percentile(lags, 0.99):.2f} s, "
                f"max {max(lags):.2f} s (p99 < 2 s)"
            )

        records = [json.loads(line) for line in bulk_file.read_text().splitlines()]
        plain_s = asyncio.run(_plain_bulk(url, f"{tag}-plain", records))
        plain_rate = RECORDS / plain_s
        print(f"  plain async_bulk of the same records: {plain_rate:,.0f} records/s")
        print(f"  ratio: {ingest_rate / plain_rate:.0%} (>= 70%)")
    finally:
        bulk_file.unlink(missing_ok=True)
        steady_file.unlink(missing_ok=True)
        delete_index(url, tag)

    assert len(lags) == STEADY_RATE * STEADY_SECONDS
