"""Lines handed to the HTTP intake, put on the source topic as the log shipper would."""

import asyncio
from collections.abc import Sequence

from flywheel_contracts.runtime import Publisher
from flywheel_ingest.producers import FORMAT_HEADER, Format
from flywheel_ingest.scope import TOKEN_HEADER


class RawTopicUnavailable(Exception):
    """Kafka did not acknowledge every line; some may have been written (ids dedupe a retry)."""


class KafkaRawTopic:
    def __init__(self, publisher: Publisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    async def put(
        self,
        lines: Sequence[bytes],
        key: bytes | None,
        fmt: Format = Format.RECORD,
        *,
        token: str | None = None,
    ) -> None:
        """Publish every line (in order on one partition when keyed); wait for all the acks.
        A producer's items carry their format in a header; records carry none, as the shipper's.
        Lines sent with a scoped token carry its name (never its secret) in another."""
        headers = [] if fmt == Format.RECORD else [(FORMAT_HEADER, fmt.value.encode())]
        if token is not None:
            headers.append((TOKEN_HEADER, token.encode()))
        results = await asyncio.gather(
            *(self._publisher.send(self._topic, line, key, headers) for line in lines),
            return_exceptions=True,
        )
        errors = [result for result in results if isinstance(result, Exception)]
        if errors:
            raise RawTopicUnavailable(
                f"{len(errors)} of {len(lines)} lines not acknowledged: {errors[0]}"
            ) from errors[0]
