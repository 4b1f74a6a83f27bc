"""NeMo Agent Toolkit's Data Flywheel record (its `DFWESRecord`) as a Flywheel record.

NAT's `data_flywheel_elasticsearch` exporter writes one document per LLM call to an
Elasticsearch index, in the blueprint's own shape (workload_id, client_id, timestamp, OpenAI
request and response) plus `contract_version` and `error_details`. What differs from a Flywheel
record, and what this mapping does about it:

- `workload_id` is the NAT function that made the call; calls of a workflow's top level get
  `<workflow>`, which is no valid identifier: it (and any id invalid only for its angle brackets)
  becomes `nat.workflow_workload_id`, the original kept in `metadata.nat_workload_id`.
- `contract_version` and `error_details` move into `metadata` (`producer: nat-data-flywheel`).
- Roles may be LangChain's (`human`, `ai`, `chain`): normalized as NAT's own ROLE_MAP does.
- `request.temperature` / `max_tokens` are always null (NAT's spans do not carry them): dropped.
- `response.usage` is NAT's (`token_usage` plus call counters): turned into OpenAI's counts.
- Tool calls are kept as NAT gave them (NAT's record has no tool-call ids; none are invented).

A document without `contract_version` or `error_details` is not NAT's: it is taken to be a
Flywheel record already (what a generic log shipper sends) and passes through unchanged.
"""

import re
from typing import Any

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import ProducerSettings
from flywheel_ingest.producers.formats import Untranslatable

PRODUCER = "nat-data-flywheel"
NAT_FIELDS = ("contract_version", "error_details")
"""Fields only NAT's record has; either one marks a document as NAT's."""

ROLE_MAP = {"human": "user", "ai": "assistant", "chain": "function"}
"""NAT's `openai_converter.ROLE_MAP`, less the roles that already are OpenAI's."""

_BRACKETED = re.compile(r"[<>]")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:@/+-]{1,256}")
_DROPPED_WHEN_NULL = ("temperature", "max_tokens", "tools")


def to_record(item: dict[str, Any], settings: ProducerSettings) -> dict[str, Any]:
    if not any(name in item for name in NAT_FIELDS):
        return item
    record = {key: value for key, value in item.items() if key not in NAT_FIELDS}
    request = _part(item, "request", "the LLM_START span's input messages")
    response = _part(item, "response", "the LLM_END span's chat responses")
    record["request"] = _request(request)
    record["response"] = _response(response)
    metadata: dict[str, Any] = {"producer": PRODUCER}
    metadata.update((name, item[name]) for name in NAT_FIELDS if item.get(name) is not None)
    workload = item.get("workload_id")
    if isinstance(workload, str) and _bracketed(workload):
        record["workload_id"] = settings.nat.workflow_workload_id
        metadata["nat_workload_id"] = workload
    record["metadata"] = metadata
    return record


def _part(item: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    if name not in item or item[name] is None:
        raise Untranslatable(
            RejectReason.INCOMPLETE_CALL,
            f"the NAT record has no {name} (NAT builds it from {source})",
        )
    part = item[name]
    if not isinstance(part, dict):
        raise Untranslatable(RejectReason.WRONG_TYPE, f"the NAT record's {name} must be an object")
    return part


def _request(request: dict[str, Any]) -> dict[str, Any]:
    messages = request.get("messages")
    if messages is None:
        raise Untranslatable(
            RejectReason.INCOMPLETE_CALL,
            "request.messages is missing: NAT exported the call without its prompt",
        )
    mapped = {
        key: value
        for key, value in request.items()
        if not (key in _DROPPED_WHEN_NULL and value is None)
    }
    if isinstance(messages, list):
        mapped["messages"] = [_message(message) for message in messages]
    return mapped


def _response(response: dict[str, Any]) -> dict[str, Any]:
    choices = response.get("choices")
    if choices is None:
        raise Untranslatable(
            RejectReason.INCOMPLETE_CALL,
            "response.choices is missing: NAT exported the call without its answer",
        )
    mapped = dict(response)
    if isinstance(choices, list):
        mapped["choices"] = [_choice(choice) for choice in choices]
    usage = _openai_usage(response.get("usage"))
    if usage is not None:
        mapped["usage"] = usage
    return mapped


def _choice(choice: object) -> object:
    if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
        return {**choice, "message": _message(choice["message"])}
    return choice


def _message(message: object) -> object:
    if isinstance(message, dict) and message.get("role") in ROLE_MAP:
        return {**message, "role": ROLE_MAP[message["role"]]}
    return message


def _openai_usage(usage: object) -> dict[str, Any] | None:
    """OpenAI's token counts from NAT's `UsageInfo` dump; None leaves `usage` as it is."""
    if not isinstance(usage, dict) or not isinstance(usage.get("token_usage"), dict):
        return None
    tokens = usage["token_usage"]
    counts = {
        name: tokens[name]
        for name in ("prompt_tokens", "completion_tokens", "total_tokens")
        if isinstance(tokens.get(name), int)
    }
    if isinstance(tokens.get("cached_tokens"), int) and tokens["cached_tokens"]:
        counts["prompt_tokens_details"] = {"cached_tokens": tokens["cached_tokens"]}
    if isinstance(tokens.get("reasoning_tokens"), int) and tokens["reasoning_tokens"]:
        counts["completion_tokens_details"] = {"reasoning_tokens": tokens["reasoning_tokens"]}
    return counts


def _bracketed(workload: str) -> bool:
    """`<workflow>`, or any id that only its angle brackets keep from being an identifier."""
    if not _BRACKETED.search(workload):
        return False
    return workload == "<workflow>" or bool(
        _IDENTIFIER.fullmatch(_BRACKETED.sub("", workload) or "<")
    )
