"""`make demo`: the local stack up, a day of generated agent traffic shipped into Kafka.

Later stages of the flywheel (ingest, datasets, deployments, evaluations) join this demo as
their services land; today it shows the real infrastructure path from a log file to logs.raw.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from flywheel_contracts.traffic import generate_to_file
from flywheel_localstack.cli import format_status
from flywheel_localstack.components import RAW_LOGS_TOPIC
from flywheel_localstack.supervisor import Stack

DEMO_RECORDS = 5_000
DEMO_SEED = 2026
SHIP_TIMEOUT_S = 120.0


def raw_log_count(bootstrap: str) -> int:
    """Messages in logs.raw (sum of end offsets: the topic is never compacted)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "flywheel.demo.probe"})
    try:
        metadata = consumer.list_topics(RAW_LOGS_TOPIC, timeout=10)
        return sum(
            consumer.get_watermark_offsets(TopicPartition(RAW_LOGS_TOPIC, p), timeout=10)[1]
            for p in metadata.topics[RAW_LOGS_TOPIC].partitions
        )
    finally:
        consumer.close()


def ship(stack: Stack, records: int, seed: int) -> tuple[Path, float]:
    """Write generated traffic into the shipper's folder and wait until Kafka has all of it."""
    folder = stack.settings.shipper_folder
    before = raw_log_count(stack.settings.kafka_bootstrap)
    staging = folder / f"demo-{seed}-{int(time.time())}.partial"
    summary = generate_to_file(staging, records=records, seed=seed)
    started = time.monotonic()
    # The shipper watches *.jsonl: the rename makes the complete file appear at once.
    target = staging.rename(staging.with_suffix(".jsonl"))
    print(f"wrote {summary.records} records {summary.workloads} to {target}")
    while raw_log_count(stack.settings.kafka_bootstrap) - before < records:
        if time.monotonic() - started > SHIP_TIMEOUT_S:
            raise TimeoutError(f"logs.raw did not receive {records} records in {SHIP_TIMEOUT_S}s")
        time.sleep(0.2)
    return target, time.monotonic() - started


def main() -> int:
    stack = Stack()
    started = stack.up()
    print(f"stack ready ({'started ' + ', '.join(started) if started else 'already running'})")
    print(format_status(stack.status()))
    target, seconds = ship(stack, DEMO_RECORDS, DEMO_SEED)
    print(
        f"\nshipped {DEMO_RECORDS} log lines from {target.name} into {RAW_LOGS_TOPIC} "
        f"in {seconds:.1f}s ({DEMO_RECORDS / seconds:,.0f} lines/s)"
    )
    print("the stack keeps running; `make stack-status` shows it, `make stack-down` stops it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
