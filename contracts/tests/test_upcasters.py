"""Upcasters, shown on a test-only event type that went through two breaking changes."""

from typing import Any, ClassVar

import pytest

from flywheel_contracts import InvalidEvent, catalog, decode, upcasters
from flywheel_contracts.payload import EventPayload

pytestmark = pytest.mark.unit


class ToyRenamed(EventPayload):
    """v1 had `name`; v2 renamed it to `label`; v3 added `size`."""

    EVENT_TYPE: ClassVar[str] = "toy.renamed"
    SCHEMA_VERSION: ClassVar[int] = 3

    label: str
    size: int


_V1 = (
    b'{"event_id":"00000000-0000-4000-8000-000000000001","event_type":"toy.renamed",'
    b'"schema_version":1,"occurred_at":"2025-06-01T12:00:00Z",'
    b'"run_id":"00000000-0000-4000-8000-000000000002",'
    b'"correlation_id":"00000000-0000-4000-8000-000000000001","causation_id":null,'
    b'"producer":"toy","payload":{"name":"widget"}}'
)


@pytest.fixture
def toy_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(catalog._PAYLOADS, ToyRenamed.EVENT_TYPE, ToyRenamed)
    monkeypatch.setattr(upcasters, "_REGISTRY", {})


def _register_rename() -> None:
    @upcasters.register("toy.renamed", from_version=1)
    def _rename(payload: dict[str, Any]) -> dict[str, Any]:
        rest = {k: v for k, v in payload.items() if k != "name"}
        return {**rest, "label": payload["name"]}


def _register_size() -> None:
    @upcasters.register("toy.renamed", from_version=2)
    def _add_size(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "size": 0}


@pytest.mark.usefixtures("toy_registry")
def test_decode_chains_upcasters_to_the_current_version() -> None:
    _register_rename()
    _register_size()
    event = decode(_V1)
    assert event.payload == ToyRenamed(label="widget", size=0)
    assert event.schema_version == 3


@pytest.mark.usefixtures("toy_registry")
def test_a_gap_in_the_chain_is_an_invalid_event() -> None:
    _register_rename()
    with pytest.raises(InvalidEvent, match=r"no upcaster for toy\.renamed v2"):
        decode(_V1)


@pytest.mark.usefixtures("toy_registry")
def test_an_upcaster_failing_on_bad_input_is_an_invalid_event() -> None:
    _register_rename()
    _register_size()
    with pytest.raises(InvalidEvent, match="cannot be upcast"):
        decode(_V1.replace(b'"name"', b'"nome"'))


@pytest.mark.usefixtures("toy_registry")
def test_an_upcaster_is_registered_once() -> None:
    _register_rename()
    with pytest.raises(ValueError, match="already has an upcaster"):
        _register_rename()
