"""PII scrubbing of dataset records (the patterns are tested in contracts) and the file formats."""

from pathlib import Path

import orjson
import pytest

from flywheel_contracts.pii import PiiKind
from flywheel_contracts.run_config import WorkloadType
from flywheel_datasets.formats import evaluation_record, training_record, write_jsonl
from flywheel_datasets.pii import Scrubber
from services.datasets.tests.factories import TOOLS, record

pytestmark = pytest.mark.unit


def test_a_record_is_scrubbed_everywhere_but_ids_and_tool_schemas() -> None:
    source = record("Send it to bob@example.com", arguments={"email": "bob@example.com"})
    source["request"]["tools"] = [
        {"type": "function", "function": {"name": "x", "description": "a@b.io"}}
    ]
    scrubber = Scrubber()
    scrubbed = scrubber.record(source)
    assert scrubbed["request"]["messages"][-1]["content"] == "Send it to [REDACTED:email]"
    call = scrubbed["response"]["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] == {"email": "[REDACTED:email]"}
    assert scrubbed["request"]["tools"] == source["request"]["tools"]
    assert scrubbed["workload_id"] == source["workload_id"]
    assert scrubber.found == {PiiKind.EMAIL: 2}
    assert source["request"]["messages"][-1]["content"] == "Send it to bob@example.com"
    assert scrubber.found == {"email": 2}
    assert source["request"]["messages"][-1]["content"] == "Send it to bob@example.com"


def test_evaluation_records_stringify_history_arguments_only() -> None:
    source = record("Where is ORD-1?")
    source["request"]["messages"].insert(
        1,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
        },
    )
    formatted = evaluation_record(source)
    history = formatted["request"]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert history == '{"a":1}'
    answer = formatted["response"]["choices"][0]["message"]["tool_calls"][0]["function"]
    assert answer["arguments"] == {"order_id": "ORD-1"}
    assert source["request"]["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"a": 1}


def test_training_records_for_tool_calling_and_generic_workloads() -> None:
    tool_record = training_record(record(["Hi", "Where is ORD-1?"]), WorkloadType.TOOL_CALLING)
    assert tool_record["tools"] == TOOLS
    assert tool_record["messages"][-1]["content"] == ""
    assert tool_record["messages"][-1]["tool_calls"][0]["function"]["name"] == "get_order_status"
    assert [m["role"] for m in tool_record["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    generic = training_record(
        record("Opening hours?", tool=None, answer="9 to 5"), WorkloadType.GENERIC
    )
    assert "tools" not in generic
    assert generic["messages"][-1] == {"role": "assistant", "content": "9 to 5"}


def test_jsonl_has_no_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "train_data.jsonl"
    write_jsonl(path, iter([{"a": 1}, {"b": 2}]))
    data = path.read_bytes()
    assert data == b'{"a":1}\n{"b":2}'
    assert [orjson.loads(line) for line in data.split(b"\n")] == [{"a": 1}, {"b": 2}]
    write_jsonl(path, [])
    assert path.read_bytes() == b""
