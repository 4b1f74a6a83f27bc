"""logs.rejected through the kit's publisher, records.ingested through its `emit` (both acks=all,
idempotent)."""

import asyncio
from collections.abc import Sequence

from confluent_kafka import KafkaException

from flywheel_contracts.events.records import RecordsIngested, RejectedRecord
from flywheel_contracts.runtime import ServiceKit
from flywheel_ingest.errors import OutboxUnavailable

REJECTED_TOPIC = "logs.rejected"
HEADER_REASON = "rejected.reason"
HEADER_BY = "rejected.by"
"""The consumer group that refused the line, so instances reading the same lines under
different groups (a test, a replay) can tell their rejections apart."""


class KafkaOutbox:
    def __init__(self, kit: ServiceKit, *, group: str) -> None:
        self._kit = kit
        self._group = group.encode()
        self._rejected_topic = kit.settings.kafka.topic(REJECTED_TOPIC)

    async def reject(self, records: Sequence[RejectedRecord]) -> None:
        results = await asyncio.gather(
            *(
                self._kit.publisher.send(
                    self._rejected_topic,
                    record.model_dump_json().encode(),
                    None,
                    [(HEADER_REASON, record.reason.value.encode()), (HEADER_BY, self._group)],
                )
                for record in records
            ),
            return_exceptions=True,
        )
        failed = [
            (record, result)
            for record, result in zip(records, results, strict=True)
            if isinstance(result, Exception)
        ]
        if failed:
            raise OutboxUnavailable(
                f"{len(failed)} of {len(records)} rejected records not acknowledged: {failed[0][1]}",
                pending=[record for record, _ in failed],
            )

    async def announce(self, batch: RecordsIngested) -> None:
        try:
            await self._kit.emit(batch)
        except KafkaException as exc:
            raise OutboxUnavailable(f"{batch.EVENT_TYPE} not acknowledged: {exc}") from exc
