"""CPU cost of the envelope codec, which every publish and every consume pays."""

import time
from collections.abc import Callable

import pytest

from flywheel_contracts import decode, encode, new_event
from flywheel_contracts.examples import EXAMPLES

pytestmark = pytest.mark.benchmark

_ROUNDS = 3000
# Floors well under the measured rates; the kit's produce target is 20,000 events/s end to end.
_FLOORS = {"encode": 20_000, "decode": 5_000, "new_event": 20_000}


def _rate(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(_ROUNDS):
        step()
    return _ROUNDS / (time.perf_counter() - started)


@pytest.mark.parametrize("event_type", ["nim.down", "nim.up", "run.completed"])
def test_codec_throughput(event_type: str) -> None:
    envelope = EXAMPLES[event_type]
    raw = encode(envelope)
    rates = {
        "encode": _rate(lambda: encode(envelope)),
        "decode": _rate(lambda: decode(raw)),
        "new_event": _rate(
            lambda: new_event(
                envelope.payload, producer="bench", run_id=envelope.run_id, cause=envelope
            )
        ),
    }
    print(
        f"\n{event_type} ({len(raw)} bytes): "
        + ", ".join(f"{name} {rate:,.0f}/s" for name, rate in rates.items())
    )
    slow = {name: rate for name, rate in rates.items() if rate < _FLOORS[name]}
    assert slow == {}
