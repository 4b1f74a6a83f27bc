"""Upcasters: functions that lift a raw payload dict from one schema version to the next.

Register one next to the payload whose `SCHEMA_VERSION` you bump:

    @register("nim.up", from_version=1)
    def _nim_up_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]: ...

`decode` chains them, so a v1 message reaches a v3 consumer through v1->v2->v3.
"""

from collections.abc import Callable
from typing import Any

from flywheel_contracts.errors import InvalidEvent

RawPayload = dict[str, Any]
Upcaster = Callable[[RawPayload], RawPayload]

_REGISTRY: dict[tuple[str, int], Upcaster] = {}


def register(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: `fn` turns a `from_version` payload of `event_type` into `from_version + 1`."""

    def decorate(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in _REGISTRY:
            raise ValueError(f"{event_type} v{from_version} already has an upcaster")
        _REGISTRY[key] = fn
        return fn

    return decorate


def has_upcaster(event_type: str, from_version: int) -> bool:
    return (event_type, from_version) in _REGISTRY


def upcast(event_type: str, payload: RawPayload, from_version: int, to_version: int) -> RawPayload:
    """`payload` lifted from `from_version` to `to_version`; InvalidEvent if a step is missing."""
    for version in range(from_version, to_version):
        step = _REGISTRY.get((event_type, version))
        if step is None:
            raise InvalidEvent(f"no upcaster for {event_type} v{version} -> v{version + 1}")
        try:
            payload = step(payload)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidEvent(f"{event_type} v{version} payload cannot be upcast: {exc}") from exc
    return payload
