"""Deterministic event ids and resource names."""

import re
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flywheel_contracts import derive_event_id, deterministic_name

pytestmark = pytest.mark.unit

_CAUSE = UUID("5f0c6a52-8d1e-4c47-9a43-2b6e1f0d7a10")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def test_derived_id_is_a_stable_uuid5() -> None:
    first = derive_event_id(_CAUSE, "nim.up", "meta/llama-3.2-1b-instruct")
    assert first == derive_event_id(_CAUSE, "nim.up", "meta/llama-3.2-1b-instruct")
    assert first.version == 5
    # pinned: ids already stored (processed-events, resource ledgers) must not change
    assert first == UUID("818d26cf-a5cb-5623-93ac-256d35402e3d")


def test_derived_id_depends_on_cause_type_and_discriminator() -> None:
    base = derive_event_id(_CAUSE, "nim.up", "a")
    assert derive_event_id(_CAUSE, "nim.up", "b") != base
    assert derive_event_id(_CAUSE, "nim.down", "a") != base
    assert derive_event_id(UUID(int=1), "nim.up", "a") != base
    # the separator keeps type and discriminator apart
    assert derive_event_id(_CAUSE, "nim.up", "") != derive_event_id(_CAUSE, "nim.u", "p")


def test_short_names_are_sanitised_readably() -> None:
    assert deterministic_name("meta/llama-3.2-1b-instruct") == "meta-llama-3-2-1b-instruct"
    assert deterministic_name("Flywheel", "eval", "My_Workload") == "flywheel-eval-my-workload"


def test_long_names_are_cut_with_a_hash_suffix() -> None:
    long_a = deterministic_name("flywheel-train", "x" * 80, "a")
    long_b = deterministic_name("flywheel-train", "x" * 80, "b")
    assert len(long_a) == 63
    assert long_a != long_b
    assert long_a[:-9] == long_b[:-9]
    assert re.fullmatch(r"[0-9a-f]{8}", long_a[-8:])
    assert long_a == deterministic_name("flywheel-train", "x" * 80, "a")


def test_names_without_name_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="no name characters"):
        deterministic_name("///", "__")
    with pytest.raises(ValueError, match="max_len"):
        deterministic_name("a", max_len=8)


@given(parts=st.lists(st.text(max_size=90), min_size=1, max_size=4), max_len=st.integers(16, 80))
def test_any_name_is_safe_and_bounded(parts: list[str], max_len: int) -> None:
    try:
        name = deterministic_name(*parts, max_len=max_len)
    except ValueError:
        assert not re.search(r"[a-z0-9]", "".join(parts).lower())
        return
    assert _NAME.match(name)
    assert len(name) <= max_len
