"""The `Bus` on a real Kafka broker, with the services' client settings (security included).

Every broker failure becomes a one-line `CliError`; librdkafka's own connection chatter is
silenced because it would repeat on every retry.
"""

import logging
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ClusterMetadata, OffsetSpec

from flywheel_contracts.cli.bus import GROUP_PREFIX, Batch, Offsets, Partition, Record
from flywheel_contracts.cli.errors import CliError
from flywheel_contracts.cli.settings import ENV_PREFIX
from flywheel_contracts.envelope import Envelope, encode
from flywheel_contracts.runtime.kafka_access import (
    KafkaAccessRefused,
    check_access,
    env_names,
)
from flywheel_contracts.runtime.publisher import producer_config
from flywheel_contracts.runtime.settings import KafkaConfigValue, KafkaSettings

CLIENT_ID = "flywheel-cli"
# librdkafka wants a group id even for a consumer that only assigns partitions; this one never
# joins or commits, so it never shows up among the groups (and is outside `flywheel.*` anyway).
_READER_GROUP = "flywheel-cli.reader"
_DELIVERY_TIMEOUT_S = 10.0
_POLL_S = 0.2
_BATCH = 500

_LOG = logging.getLogger("flywheel.cli.kafka")
_LOG.propagate = False
_LOG.addHandler(logging.NullHandler())

ListTopics = Callable[..., ClusterMetadata]
"""A client's `list_topics`: producers, consumers and admin clients each have one."""


class KafkaBus:
    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka

    def publish(self, envelope: Envelope[Any]) -> None:
        self.send(envelope.event_type, encode(envelope), envelope.key(), envelope.headers())

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> None:
        # The broker-side name: FLYWHEEL_KAFKA__TOPIC_PREFIX reaches a namespaced flywheel.
        topic = self._kafka.topic(topic)
        config: dict[str, KafkaConfigValue] = {
            "message.timeout.ms": int(_DELIVERY_TIMEOUT_S * 1000),
            **producer_config(self._kafka, CLIENT_ID),
        }
        producer = Producer(config, logger=_LOG)
        self._require_topics(producer.list_topics, (topic,))
        failures: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                failures.append(error)

        with self._errors(f"publishing {topic}"):
            producer.produce(
                topic,
                value=value,
                key=key,
                headers=[*headers],
                on_delivery=on_delivery,
            )
            undelivered = producer.flush(_DELIVERY_TIMEOUT_S + 1)
        if failures:
            raise CliError(f"publishing {topic} failed: {failures[0].str()}")
        if undelivered:
            raise CliError(f"Kafka did not acknowledge {topic} within {_DELIVERY_TIMEOUT_S:.0f}s")

    def read(
        self,
        topics: tuple[str, ...],
        *,
        from_beginning: bool,
        follow: bool,
        key: bytes | None = None,
    ) -> Generator[Batch, None, None]:
        topics = tuple(self._kafka.topic(name) for name in topics)  # under the topic prefix
        broker_errors: list[KafkaError] = []
        consumer = Consumer(
            {
                **self._kafka.client_config(),
                "group.id": _READER_GROUP,
                "client.id": CLIENT_ID,
                "enable.auto.commit": False,
                # End-of-partition events tell a non-following reader it has caught up.
                "enable.partition.eof": True,
                "fetch.wait.max.ms": self._kafka.fetch_wait_max_ms,
            },
            logger=_LOG,
            error_cb=broker_errors.append,
        )
        try:
            metadata = self._require_topics(consumer.list_topics, topics)
            start = OFFSET_BEGINNING if from_beginning else OFFSET_END
            assignment = [
                TopicPartition(name, partition, start)
                for name in topics
                for partition in sorted(metadata.topics[name].partitions)
            ]
            consumer.assign(assignment)
            behind = {(tp.topic, tp.partition) for tp in assignment}
            while True:
                records: list[Record] = []
                for message in consumer.consume(_BATCH, _POLL_S):
                    topic, partition = message.topic() or "", message.partition() or 0
                    error = message.error()
                    if error is not None and error.code() == KafkaError._PARTITION_EOF:
                        behind.discard((topic, partition))
                    elif error is not None:
                        raise CliError(f"reading {topic}: {error.str()}")
                    elif key is None or message.key() == key:
                        records.append(
                            Record(
                                topic=topic,
                                partition=partition,
                                offset=message.offset() or 0,
                                key=message.key(),
                                value=message.value() or b"",
                                headers=_headers(message.headers()),
                                tombstone=message.value() is None,
                            )
                        )
                self._check(broker_errors, follow)
                yield Batch(records, caught_up=not behind)
                if not follow and not behind:
                    return
        finally:
            consumer.close()

    def offsets(self) -> Offsets:
        admin = AdminClient(self._kafka.client_config(), logger=_LOG)
        timeout = self._kafka.request_timeout_s
        metadata = self._metadata(admin.list_topics)
        partitions = {name: len(t.partitions) for name, t in metadata.topics.items()}
        latest = {
            TopicPartition(name, partition): OffsetSpec.latest()  # type: ignore[no-untyped-call]
            for name, t in metadata.topics.items()
            for partition in t.partitions
        }
        with self._errors("reading offsets"):
            end = {
                (tp.topic, tp.partition): future.result().offset
                for tp, future in admin.list_offsets(latest, request_timeout=timeout).items()
            }
            listing = admin.list_consumer_groups(request_timeout=timeout).result()
            ours = self._kafka.topic_prefix + GROUP_PREFIX
            groups = sorted(g.group_id for g in listing.valid if g.group_id.startswith(ours))
            committed = {group: self._committed(admin, group, timeout) for group in groups}
        return Offsets(partitions=partitions, end=end, committed=committed)

    @staticmethod
    def _committed(admin: AdminClient, group: str, timeout: float) -> dict[Partition, int]:
        # The call accepts one group per request.
        request = [ConsumerGroupTopicPartitions(group)]
        result = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group].result()
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions
            if tp.error is None and tp.offset >= 0  # negative: nothing committed there
        }

    def _metadata(self, list_topics: ListTopics) -> ClusterMetadata:
        try:
            return list_topics(timeout=self._kafka.request_timeout_s)
        except KafkaException as unreachable:
            # Down, or refusing our credentials? Only the second is the user's to fix.
            try:
                check_access(self._kafka, env_names(ENV_PREFIX))
            except KafkaAccessRefused as refused:
                raise CliError(str(refused)) from None
            with self._errors(f"cannot reach Kafka at {self._kafka.bootstrap_servers}"):
                raise unreachable from None

    def _require_topics(self, list_topics: Any, topics: tuple[str, ...]) -> ClusterMetadata:
        metadata = self._metadata(list_topics)
        for name in topics:
            found = metadata.topics.get(name)
            if found is None:
                raise CliError(f"topic {name} does not exist on {self._kafka.bootstrap_servers}")
            if found.error is not None:
                raise CliError(f"topic {name}: {found.error.str()}")
        return metadata

    @staticmethod
    @contextmanager
    def _errors(action: str) -> Iterator[None]:
        try:
            yield
        except KafkaException as exc:
            error = exc.args[0]
            detail = error.str() if isinstance(error, KafkaError) else str(error)
            raise CliError(f"{action}: {detail}") from None

    def _check(self, errors: list[KafkaError], follow: bool) -> None:
        """Fail on a fatal error; a follower waits out a broker outage, a one-off read does not."""
        for error in errors:
            if error.fatal() or (not follow and error.code() == KafkaError._ALL_BROKERS_DOWN):
                raise CliError(f"Kafka at {self._kafka.bootstrap_servers}: {error.str()}")
        errors.clear()


def _headers(
    headers: list[tuple[str, bytes | str | None]] | dict[str, bytes | str | None] | None,
) -> tuple[tuple[str, bytes], ...]:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    return tuple(
        (name, value if isinstance(value, bytes) else (value or "").encode())
        for name, value in items
    )
