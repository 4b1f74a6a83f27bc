"""Lines handed to the HTTP intake, put on the source topic as the log shipper would."""

import asyncio
from collections.abc import Sequence

from flywheel_contracts.runtime import Publisher


class RawTopicUnavailable(Exception):
    """Kafka did not acknowledge every line; some may have been written (ids dedupe a retry)."""


class KafkaRawTopic:
    def __init__(self, publisher: Publisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    async def put(self, lines: Sequence[bytes], key: bytes | None) -> None:
        """Publish every line (in order on one partition when keyed); wait for all the acks."""
        results = await asyncio.gather(
            *(self._publisher.send(self._topic, line, key, []) for line in lines),
            return_exceptions=True,
        )
        errors = [result for result in results if isinstance(result, Exception)]
        if errors:
            raise RawTopicUnavailable(
                f"{len(errors)} of {len(lines)} lines not acknowledged: {errors[0]}"
            ) from errors[0]
