"""A call exported twice: the same request answered by the same completion (same response id),
arriving again with other details (a later timestamp, other metadata), as producers that export
one call from two hooks send it.

Only a producer's items are checked (the endpoints' formats), not the log records applications
and the shipper write, whose outcome must not depend on how lines fall into batches. An exact
repeat is not a duplicate call either: it has the same document id, and the store keeps one copy
(a redelivered or re-sent item must stay harmless). Only repeats that would be stored as a
second document are refused, and only within what one reader sees at once (one intake request,
whose items are sent together and so read in one batch): the datasets service drops
near-duplicates when it builds a set, so a repeat that arrives later costs storage, not accuracy.
"""

import hashlib

import orjson

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.documents import canonical_json, document_id
from flywheel_ingest.validation import LogRecord, Refusal


def call_key(record: LogRecord) -> str | None:
    """The call's identity: workload, client, request and completion id; None without an id."""
    response_id = record.fields["response"].get("id")
    if not isinstance(response_id, str) or not response_id:
        return None
    try:
        request = canonical_json(record.fields["request"])
    except orjson.JSONEncodeError:
        return None  # refused later as unstorable
    digest = hashlib.sha256(request)
    for part in (record.workload_id, record.client_id, response_id):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


class SeenCalls:
    """The calls met so far, each with the document id it was first met under."""

    def __init__(self) -> None:
        self._first: dict[str, str] = {}

    def refusal(self, record: LogRecord, document: str | None = None) -> Refusal | None:
        """A refusal when this call was met before under another document; `document` is the
        record's id when the caller has it (worked out here otherwise, and only for a call
        with a completion id)."""
        key = call_key(record)
        if key is None:
            return None
        if document is None:
            try:
                document = document_id(canonical_json(record.fields))
            except orjson.JSONEncodeError:
                return None  # refused later as unstorable
        first = self._first.setdefault(key, document)
        if first == document:
            return None
        return Refusal(
            RejectReason.DUPLICATE_CALL,
            f"completion {record.fields['response']['id']!r} for the same request was already "
            "received with other details (the producer exported the call twice)",
        )
