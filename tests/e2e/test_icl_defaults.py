"""ICL under the run defaults: the demo's tool-calling run with no `example_selection` and no
`eval_size` override (defaults.yaml: semantic selection, 100 evaluation records). Examples are
chosen per record, so ICL is not base with a longer prompt: it scores above base for at least
one candidate, and the evaluator's per-record detail shows that two evaluation records were
shown different examples (by the document ids of the training records in their prompts).

Under the blueprint's uniform selection every record gets the same examples and the second
check fails; `test_uniform_selection_shows_every_record_the_same_examples` runs that case and
checks exactly that, so the check is known to be able to fail.
"""

from __future__ import annotations

from uuid import UUID

import pytest

from flywheel_contracts.events import LeaderboardEntry, RunCompleted
from flywheel_contracts.run_config import (
    DEMO_CANDIDATES,
    EvalType,
    ExampleSelection,
    RunOverrides,
)
from flywheel_contracts.traffic import ROUTER
from flywheel_localstack.services import Flywheel, FlywheelSetup
from flywheel_nim_manager.testing.process import EventTap
from tests.e2e.conftest import Traffic
from tests.support.evaluations import record_details
from tests.support.runs import assert_scored, completed, expected_entries, start_run

pytestmark = pytest.mark.e2e

PRIMARY = "function_name_and_args_accuracy"
DEFAULT_EVAL_SIZE = 100
# Only what is not about ICL or the split: the demo's candidates, a seed, one epoch.
DEFAULTS = RunOverrides(candidates=DEMO_CANDIDATES, random_seed=7, epochs=1)
UNIFORM = RunOverrides(
    candidates=DEMO_CANDIDATES[:1],
    random_seed=7,
    epochs=1,
    eval_size=20,
    example_selection=ExampleSelection.UNIFORM_DISTRIBUTION,
    eval_types=(EvalType.ICL,),
)


def primary(entry: LeaderboardEntry) -> float:
    return next(score.value for score in entry.scores if score.name == PRIMARY)


def shown(setup: FlywheelSetup, run_id: UUID, candidate: str) -> list[tuple[str, ...]]:
    """Per ICL evaluation record, the ids of the examples in its prompt."""
    details = record_details(setup, run_id, candidate, EvalType.ICL)
    assert details, f"no per-record detail for the ICL evaluation of {candidate}"
    assert all(isinstance(d.get("icl_example_ids"), list) for d in details), details[0]
    return [tuple(d["icl_example_ids"]) for d in details]


async def run(
    setup: FlywheelSetup, tap: EventTap, client_id: str, overrides: RunOverrides
) -> tuple[UUID, RunCompleted]:
    run_id = await start_run(setup, ROUTER, client_id, overrides)
    return run_id, await completed(tap, run_id)


async def test_under_the_defaults_icl_beats_base_with_examples_chosen_per_record(
    setup: FlywheelSetup, flywheel: Flywheel, traffic: Traffic, tap: EventTap
) -> None:
    run_id, result = await run(setup, tap, traffic.client_id, DEFAULTS)
    entries = assert_scored(result, expected_entries(DEMO_CANDIDATES), PRIMARY)
    ready = tap.of("dataset.ready", run_id)
    assert ready, "no dataset.ready"
    assert ready[0].payload.context.config.icl.example_selection is (
        ExampleSelection.SEMANTIC_SIMILARITY
    )
    assert ready[0].payload.counts.eval == DEFAULT_EVAL_SIZE

    gains = {
        c.model_name: (
            primary(entries[c.model_name, EvalType.BASE]),
            primary(entries[c.model_name, EvalType.ICL]),
        )
        for c in DEMO_CANDIDATES
    }
    print(f"{PRIMARY} base -> icl: {gains}")
    assert any(icl > base for base, icl in gains.values()), gains

    for candidate in DEMO_CANDIDATES:
        examples = shown(setup, run_id, candidate.model_name)
        assert len(examples) == DEFAULT_EVAL_SIZE
        assert all(examples), "an evaluation record was shown no example"
        assert len(set(examples)) >= 2, f"every record of {candidate.model_name} saw {examples[0]}"


async def test_uniform_selection_shows_every_record_the_same_examples(
    setup: FlywheelSetup, flywheel: Flywheel, traffic: Traffic, tap: EventTap
) -> None:
    run_id, _ = await run(setup, tap, traffic.client_id, UNIFORM)
    examples = shown(setup, run_id, DEMO_CANDIDATES[0].model_name)
    assert len(examples) == UNIFORM.eval_size
    assert len(set(examples)) == 1, "uniform selection varied the examples"
