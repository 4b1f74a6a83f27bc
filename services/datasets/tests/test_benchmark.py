"""Acceptance 4: time from `run.requested` to `dataset.ready` over 100,000 indexed records, and
the service's peak memory. Target: 30 s.

Each figure comes with the machine's load average and the stages the service logged (wall and
CPU seconds of read, split, ICL, files, the CPU including the deduplication process's; then the
upload, and the deduplication process's peak RSS), so a slow run can be told apart from a busy
machine.

The records are the router workload's (twelve tools, ~7.5 KB each, the heaviest of the generated
traffic). Two runs over the same index, each by a fresh `python -m flywheel_datasets` process so
its peak resident set (VmHWM) is its own, against a private emulator (the uploads are large):
- `limit 100000`: every record is read, checked, deduplicated, split and uploaded;
- `default config`: the packaged defaults (limit 10,000 newest usable records).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from flywheel_contracts.events import DatasetReady
from flywheel_contracts.traffic import ROUTER, TrafficConfig, generate_records
from flywheel_datasets.config import DatasetsSettings
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_nmp_emulator.testing import emulator_process, free_port
from services.datasets.tests.stack_helpers import (
    Outcomes,
    delete_index,
    index_records,
    run_requested,
    settings_for,
    started_publisher,
    unique,
)

pytestmark = [pytest.mark.benchmark, pytest.mark.asyncio(loop_scope="session")]

RECORDS = int(os.environ.get("FLYWHEEL_DATASETS_BENCH_RECORDS", "100000"))
TARGET_S = 30.0
SCENARIOS: tuple[tuple[str, dict[str, Any]], ...] = (
    (f"limit {RECORDS}", {"limit": RECORDS, "eval_size": 100}),
    ("default config", {}),
)


def _environment(settings: DatasetsSettings, port: int) -> dict[str, str]:
    prefix = "FLYWHEEL_DATASETS_"
    return {
        **os.environ,
        f"{prefix}HTTP_PORT": str(port),
        f"{prefix}LOG_LEVEL": "INFO",
        f"{prefix}KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        f"{prefix}KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        f"{prefix}MONGO__URL": settings.mongo.url.get_secret_value(),
        f"{prefix}MONGO__DATABASE": settings.mongo.database,
        f"{prefix}ELASTICSEARCH__URL": settings.elasticsearch.url.get_secret_value(),
        f"{prefix}ELASTICSEARCH__INDEX": settings.elasticsearch.index,
        f"{prefix}NMP__NEMO_BASE_URL": settings.nmp.nemo_base_url,
        f"{prefix}NMP__NIM_BASE_URL": settings.nmp.nim_base_url,
        f"{prefix}NMP__DATASTORE_BASE_URL": settings.nmp.datastore_base_url,
        f"{prefix}NMP__NAMESPACE": settings.nmp.namespace,
        f"{prefix}RECONCILE_INTERVAL_S": "0.2",
    }


@contextmanager
def _service_process(environment: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flywheel_datasets"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the datasets service exited"
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the datasets service did not become ready")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _stages(log: Path, offset: int) -> str:
    """The build's stages, from the service's JSON log lines written after `offset`."""
    with log.open("rb") as lines:
        lines.seek(offset)
        events = {}
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") in (
                "dataset.built",
                "dataset.uploaded",
            ):
                events[entry["event"]] = entry
    built, uploaded = events.get("dataset.built", {}), events.get("dataset.uploaded", {})
    wall, cpu = built.get("seconds", {}), built.get("cpu_seconds", {})
    parts = [f"{stage} {wall[stage]:.1f}s (cpu {cpu.get(stage, 0):.1f}s)" for stage in wall]
    if uploaded:
        parts.append(f"upload {uploaded['seconds']:.1f}s ({uploaded['megabytes']:.0f} MB)")
    if built.get("deduplication_peak_rss_mib"):  # 0: the read deduplicated in the service
        parts.append(f"deduplication process peak RSS {built['deduplication_peak_rss_mib']} MiB")
    return ", ".join(parts) or "no stage log found"


def _load() -> str:
    return "load average " + " ".join(f"{value:.1f}" for value in os.getloadavg())


async def _measure(
    settings: DatasetsSettings, log: Path, overrides: dict[str, Any]
) -> tuple[float, float, DatasetReady]:
    port = free_port()
    with _service_process(_environment(settings, port), log) as process:
        await asyncio.to_thread(_wait_ready, f"http://127.0.0.1:{port}", process)
        publisher = await started_publisher(settings.kafka)
        outcomes = Outcomes(settings.kafka)
        run_id = uuid.uuid4()
        try:
            requested = time.perf_counter()
            await publisher.publish(
                run_requested(ROUTER, "acme-support", run_id=run_id, **overrides)
            )
            envelope = await outcomes.of(run_id, timeout_s=900)
            elapsed = time.perf_counter() - requested
            peak = _peak_rss_mib(process.pid)
        finally:
            outcomes.close()
            await publisher.close()
    assert isinstance(envelope.payload, DatasetReady), envelope.payload
    return elapsed, peak, envelope.payload


async def test_run_requested_to_dataset_ready_for_100k_records(
    stack: StackHandle, tmp_path: Path
) -> None:
    index = unique("t-datasets-bench-")
    database = unique("datasets_bench_")
    port = free_port()
    try:
        started = time.perf_counter()
        traffic = generate_records(
            RECORDS, 1, TrafficConfig(workloads=(ROUTER,), timestamp_format="iso")
        )
        indexed = await index_records(stack.elasticsearch_url, index, traffic)
        print(
            f"\ndatasets benchmark: {indexed} {ROUTER} records indexed in "
            f"{time.perf_counter() - started:.1f}s ({_load()})"
        )
        with emulator_process(tmp_path / "nmp.json", port):
            nmp_url = f"http://127.0.0.1:{port}"
            settings = settings_for(
                kafka_bootstrap=stack.kafka_bootstrap,
                mongo_url=stack.mongo_url,
                elasticsearch_url=stack.elasticsearch_url,
                nmp_url=nmp_url,
                index=index,
                prefix=unique("t") + ".",
                database=database,
                namespace="bench",
            )
            log = tmp_path / "datasets.log"
            for name, overrides in SCENARIOS:
                offset = log.stat().st_size if log.exists() else 0
                elapsed, peak, ready = await _measure(settings, log, overrides)
                verdict = "met" if elapsed <= TARGET_S else "MISSED"
                print(
                    f"datasets benchmark [{name}]: run.requested -> dataset.ready {elapsed:.1f}s "
                    f"(target {TARGET_S:.0f}s: {verdict}); fetched {ready.stats.fetched}, "
                    f"selected {ready.stats.selected} (eval {ready.counts.eval}, "
                    f"train {ready.counts.train}, val {ready.counts.val}); "
                    f"service peak RSS {peak:.0f} MiB; {_load()}\n"
                    f"  stages: {_stages(log, offset)}"
                )
    finally:
        await delete_index(stack.elasticsearch_url, index)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url)
        await mongo.drop_database(database)
        await mongo.close()
