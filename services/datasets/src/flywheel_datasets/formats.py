"""The dataset files, in the blueprint's formats and paths.

- Evaluation (and ICL) records: the logged record, with tool-call arguments in the conversation
  history turned back into JSON strings (the OpenAI request format the candidate is sent); the
  expected answer's arguments stay objects for the tool-calling metric.
- Training and validation records: the request messages plus the logged answer, assistant
  content never null; for tool calling the answer's content is "" and the tools are attached.
- JSONL with `\\n` between records and none after the last, as the blueprint writes them.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from flywheel_contracts.run_config import WorkloadType
from flywheel_datasets.records import Record, response_message

EVAL_FILE = "eval_data.jsonl"
TRAIN_FILE = "training/train_data.jsonl"
VAL_FILE = "validation/val_data.jsonl"
_WRITE_BUFFER = 2**20


def evaluation_record(record: Record) -> Record:
    messages = [_stringified_history(m) for m in record["request"]["messages"]]
    return {**record, "request": {**record["request"], "messages": messages}}


def training_record(record: Record, workload: WorkloadType) -> Record:
    answer = dict(response_message(record))
    if workload is WorkloadType.TOOL_CALLING or answer.get("content") is None:
        answer["content"] = ""
    messages = [_non_null_assistant(m) for m in record["request"]["messages"]]
    formatted: Record = {"messages": [*messages, answer]}
    tools = record["request"].get("tools")
    if workload is WorkloadType.TOOL_CALLING and tools:
        formatted["tools"] = tools
    return formatted


def write_jsonl(path: Path, records: Iterable[Record]) -> None:
    """`records` as JSONL at `path` (its folder must exist), written as they come."""
    with path.open("wb", buffering=_WRITE_BUFFER) as file:
        for number, record in enumerate(records):
            if number:
                file.write(b"\n")
            file.write(orjson.dumps(record))


def _stringified_history(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls")
    if not calls:
        return message
    return {**message, "tool_calls": [_stringified_call(call) for call in calls]}


def _stringified_call(call: Any) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), dict | list):
        return call
    arguments = orjson.dumps(function["arguments"]).decode()
    return {**call, "function": {**function, "arguments": arguments}}


def _non_null_assistant(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("role") == "assistant" and message.get("content") is None:
        return {**message, "content": ""}
    return message
