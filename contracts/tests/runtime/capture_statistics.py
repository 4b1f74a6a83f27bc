"""Regenerates the librdkafka statistics fixtures of `test_consumer_health.py` from real clients.

    .venv/bin/python contracts/tests/runtime/capture_statistics.py [--bootstrap 127.0.0.1:9092]

Needs a running Kafka (`make stack-up`). On a fresh topic of three partitions it puts 4, 3 and 3
records, lets one consumer of a new group read all of them and commits 4, 3 and 1 (so partition
2 lags by 2), then writes what librdkafka reports through `stats_cb`:

- `fixtures/librdkafka/consumer.json`: the consumer in its group, all three partitions held,
  the commits visible (total lag 2);
- `fixtures/librdkafka/consumer_joining.json`: its first report, before the group assigned it
  anything (join state not yet `steady`);
- `fixtures/librdkafka/producer.json`: the producer's, which shares the service's configuration
  and has to be ignored.

Names, hosts and counters change with each run; the group state, assignment and lag do not.
"""

import argparse
import json
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

FIXTURES = Path(__file__).with_name("fixtures") / "librdkafka"
RECORDS = {0: 4, 1: 3, 2: 3}
COMMITTED = {0: 4, 1: 3, 2: 1}
TIMEOUT_S = 60.0


def _partition_lags(document: dict[str, object], topic: str) -> dict[int, int]:
    topics = document.get("topics")
    assert isinstance(topics, dict)
    partitions = topics.get(topic, {}).get("partitions", {})
    return {
        int(p["partition"]): int(p["consumer_lag"])
        for p in partitions.values()
        if int(p["partition"]) >= 0
    }


def capture(bootstrap: str) -> None:
    topic = f"stats-fixture-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=3)]).values():
        future.result(timeout=10)
    try:
        _capture(bootstrap, topic)
    finally:
        for future in admin.delete_topics([topic]).values():
            future.result(timeout=10)


def _capture(bootstrap: str, topic: str) -> None:
    producer_reports: list[str] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "fixture.producer",
            "enable.idempotence": True,
            "statistics.interval.ms": 500,
            "stats_cb": producer_reports.append,
        }
    )
    for partition, count in RECORDS.items():
        for n in range(count):
            producer.produce(topic, value=f"record {n}".encode(), partition=partition)
    producer.flush(10)
    deadline = time.monotonic() + TIMEOUT_S
    while not producer_reports and time.monotonic() < deadline:
        producer.poll(0.1)

    consumer_reports: list[str] = []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fixture.{topic}",
            "client.id": "fixture.consumer",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Often enough to catch it before the group assigned it its partitions.
            "statistics.interval.ms": 50,
            "stats_cb": consumer_reports.append,
        }
    )
    consumer.subscribe([topic])
    read = 0
    deadline = time.monotonic() + TIMEOUT_S
    while read < sum(RECORDS.values()) and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            read += 1
    consumer.commit(
        offsets=[TopicPartition(topic, p, offset) for p, offset in COMMITTED.items()],
        asynchronous=False,
    )
    wanted = {p: RECORDS[p] - offset for p, offset in COMMITTED.items()}
    settled: str | None = None
    seen = 0
    while settled is None and time.monotonic() < deadline:
        consumer.poll(0.2)
        for raw in consumer_reports[seen:]:
            if _partition_lags(json.loads(raw), topic) == wanted:
                settled = raw
        seen = len(consumer_reports)
    consumer.close()
    if settled is None or not producer_reports:
        raise SystemExit("no settled consumer statistics within the timeout")
    joining = [raw for raw in consumer_reports if json.loads(raw)["cgrp"]["join_state"] != "steady"]
    if not joining:
        raise SystemExit("the consumer reported nothing before it joined its group")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, raw in {
        "consumer.json": settled,
        "consumer_joining.json": joining[0],
        "producer.json": producer_reports[-1],
    }.items():
        # Written as librdkafka made it: the test parses these exact bytes.
        (FIXTURES / name).write_text(raw)
        print(f"{FIXTURES / name}: {len(raw)} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    capture(parser.parse_args().bootstrap)
