"""Test support: one message of every poison class for a topic, and the `dlq.kind` each must be
dead-lettered with. What a buggy or hostile producer can write: too big, too deep, not UTF-8,
a tombstone, another topic's event, a schema from the future, a payload that fails validation.
"""

import json
from typing import Any

from flywheel_contracts.envelope import encode
from flywheel_contracts.examples import EXAMPLES

MB = 1024 * 1024

KINDS: dict[str, str] = {
    "over_1_mb": "invalid_event",
    "deeply_nested_json": "too_deep",
    "not_utf8": "not_utf8",
    "tombstone": "tombstone",
    "wrong_event_type": "wrong_event_type",
    "newer_schema_version": "newer_schema_version",
    "payload_failing_validation": "invalid_event",
}
"""Each poison class, and the `dlq.kind` header its dead letter carries."""


def poison_for(event_type: str) -> dict[str, bytes | None]:
    """One message of each class in `KINDS` for the topic of `event_type` (values; None is a
    tombstone). The over-1-MB one is the topic's example padded with a field of its own: over
    librdkafka's default message size, under the broker's 4 MiB."""
    example = json.loads(encode(EXAMPLES[event_type]))
    other = "run.requested" if event_type != "run.requested" else "run.cancelled"

    def changed(**changes: Any) -> bytes:
        data = json.loads(json.dumps(example))
        data.update(changes)
        return json.dumps(data).encode()

    return {
        "over_1_mb": changed(padding="x" * (3 * MB // 2)),
        "deeply_nested_json": b"[" * 100_000 + b"]" * 100_000,
        "not_utf8": b'{"event_type": "' + event_type.encode() + b'\xff"}',
        "tombstone": None,
        "wrong_event_type": encode(EXAMPLES[other]),
        "newer_schema_version": changed(schema_version=example["schema_version"] + 1),
        "payload_failing_validation": changed(payload={"surprise": True}),
    }
