"""The generated AsyncAPI document: complete, self-consistent, filterable per service."""

from collections.abc import Iterator
from typing import Any

import pytest

from flywheel_contracts import TOPICS, decode
from flywheel_contracts.asyncapi import asyncapi_document
from flywheel_contracts.catalog import SERVICES, consumed_by, produced_by
from flywheel_contracts.envelope import encode
from flywheel_contracts.examples import EXAMPLES

pytestmark = pytest.mark.unit


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.mark.parametrize("service", [None, *SERVICES])
def test_every_reference_resolves(service: str | None) -> None:
    document = asyncapi_document(service)
    refs = set(_refs(document))
    assert refs
    for ref in refs:
        assert _resolve(document, ref) is not None


def test_the_whole_bus_is_described() -> None:
    document = asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    assert list(document["channels"]) == [spec.name for spec in TOPICS]
    actions = {op["action"] for op in document["operations"].values()}
    assert actions == {"send", "receive"}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_document_holds_exactly_its_topics(service: str) -> None:
    document = asyncapi_document(service)
    expected = {spec.name for spec in (*produced_by(service), *consumed_by(service))}
    assert set(document["channels"]) == expected
    assert all(op_id.startswith(f"{service}.") for op_id in document["operations"])


def test_message_examples_are_valid_events() -> None:
    messages = asyncapi_document()["components"]["messages"]
    for event_type, envelope in EXAMPLES.items():
        (example,) = messages[event_type.replace(".", "_")]["examples"]
        assert decode(encode(envelope)).model_dump(mode="json") == example["payload"]
