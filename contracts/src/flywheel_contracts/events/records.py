"""Ingestion: batch counts (an event) and refused records (raw topic `logs.rejected`)."""

from enum import StrEnum
from typing import ClassVar, Self

from pydantic import Field

from flywheel_contracts.payload import EventPayload, Part
from flywheel_contracts.primitives import (
    MESSAGE_MAX,
    Count,
    Identifier,
    Label,
    Message,
    UtcDatetime,
)


class WorkloadCount(Part):
    workload_id: Identifier
    client_id: Identifier
    records: Count


class RecordsIngested(EventPayload):
    """One ingested batch, counted per workload and client."""

    EVENT_TYPE: ClassVar[str] = "records.ingested"
    SCHEMA_VERSION: ClassVar[int] = 1
    RUN_SCOPED: ClassVar[bool] = False

    counts: tuple[WorkloadCount, ...]
    indexed: Count = Field(description="Records written to the log store.")
    rejected: Count = Field(description="Records sent to logs.rejected.")


RAW_LIMIT = 64 * 1024
"""Most characters of a refused record kept in `RejectedRecord.raw`."""


class RejectReason(StrEnum):
    """Why ingest refused a raw log line, in the order ingest checks (the first failure wins).

    - ``oversize``: the line (UTF-8, without its newline) is longer than the configured limit.
    - ``invalid_json``: the line does not parse as JSON (broken syntax, truncated, not UTF-8).
    - ``not_an_object``: valid JSON, but not an object.
    - ``missing_field``: one of ``workload_id``, ``client_id``, ``timestamp``, ``request``,
      ``response`` is absent.
    - ``wrong_type``: a required top-level field has the wrong JSON type.
    - ``invalid_timestamp``: not epoch seconds, epoch milliseconds or ISO 8601 (years 1970-9999).
    - ``empty_messages``: ``request.messages`` is an empty list.
    - ``empty_choices``: ``response.choices`` is an empty list.
    - ``not_openai_format``: any other departure from the chat-completions shape.
    - ``invalid_tool_arguments``: a tool call's ``function.arguments`` is neither a JSON object
      nor a string holding one.
    - ``tool_calls_missing``: a choice says ``finish_reason: tool_calls`` and carries no tool call.
    - ``empty_response``: a choice's message has neither content nor tool calls (an empty
      assistant turn: nothing to learn from or to score against).
    - ``duplicate_call``: the same call (same request and response, or the same completion id)
      arrived earlier in the batch, as producers that export a call twice send it.
    - ``incomplete_call``: a producer's item (a span, a Relay call) lacks what an OpenAI request
      and response need, such as the input messages or the output.
    - ``unpaired_event``: a NeMo Relay LLM start without its end, or an end without its start.
    - ``client_not_allowed``: the line came through the intake with a token scoped to other
      clients than the record's ``client_id`` (or with a token no longer configured).
    """

    OVERSIZE = "oversize"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_TIMESTAMP = "invalid_timestamp"
    EMPTY_MESSAGES = "empty_messages"
    EMPTY_CHOICES = "empty_choices"
    NOT_OPENAI_FORMAT = "not_openai_format"
    INVALID_TOOL_ARGUMENTS = "invalid_tool_arguments"
    TOOL_CALLS_MISSING = "tool_calls_missing"
    EMPTY_RESPONSE = "empty_response"
    DUPLICATE_CALL = "duplicate_call"
    INCOMPLETE_CALL = "incomplete_call"
    UNPAIRED_EVENT = "unpaired_event"
    CLIENT_NOT_ALLOWED = "client_not_allowed"


RAW_FORMAT_HEADER = "flywheel.format"
"""Header of a `logs.raw` message naming its format; a message without it holds a record."""


class RawFormat(StrEnum):
    """What a `logs.raw` message holds: a record, or a real producer's item that ingest turns
    into one when it reads it."""

    RECORD = "record"
    """Flywheel's (the blueprint's) log record, as applications and the log shipper write it."""
    NAT = "nat"
    """A document of NeMo Agent Toolkit's Data Flywheel exporter (its Elasticsearch record)."""
    OTLP_SPAN = "otlp-span"
    """One OpenTelemetry span with its resource and scope, as OTLP/JSON."""
    RELAY_CALL = "relay-call"
    """A NeMo Relay LLM call: its start and end events joined."""


class SourcePosition(Part):
    """Where the refused message was read."""

    topic: Label
    partition: Count
    offset: Count


class RejectedRecord(Part):
    """A message of `logs.rejected`: a refused raw record and why (no envelope, like logs.raw)."""

    reason: RejectReason
    message: Message
    raw: str = Field(max_length=RAW_LIMIT, description="The record as text, cut to RAW_LIMIT.")
    raw_size: Count = Field(description="Size in bytes of the original record.")
    truncated: bool = Field(description="Whether `raw` was cut.")
    source: SourcePosition
    rejected_at: UtcDatetime

    @classmethod
    def of(
        cls,
        raw: bytes,
        *,
        reason: RejectReason,
        message: str,
        source: SourcePosition,
        rejected_at: UtcDatetime,
    ) -> Self:
        """Wrap arbitrary bytes, whatever their encoding or size."""
        text = raw.decode("utf-8", errors="replace")
        return cls(
            reason=reason,
            message=message[:MESSAGE_MAX],
            raw=text[:RAW_LIMIT],
            raw_size=len(raw),
            truncated=len(text) > RAW_LIMIT,
            source=source,
            rejected_at=rejected_at,
        )
