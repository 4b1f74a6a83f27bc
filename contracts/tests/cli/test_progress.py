"""The RunProgress reducer over the golden run: order-proof, duplicate-proof, monotonic."""

from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel_contracts import events as ev
from flywheel_contracts.cli.progress import RunProgress, Status
from flywheel_contracts.cli.render import outcome_line
from flywheel_contracts.envelope import Envelope, new_event
from flywheel_contracts.examples import EXAMPLES, RUN_ID
from flywheel_contracts.run_config import EvalType

pytestmark = pytest.mark.unit

SMALL = "meta/llama-3.2-1b-instruct"
LARGE = "meta/llama-3.1-8b-instruct"
# The golden examples hold both endings of the run; the successful story leaves out the failures.
_ENDINGS_OF_A_FAILED_RUN = ("dataset.failed", "run.failed")
STORY = [e for t, e in EXAMPLES.items() if e.run_id == RUN_ID and t not in _ENDINGS_OF_A_FAILED_RUN]


def reduce(envelopes: list[Envelope[Any]]) -> RunProgress:
    progress = RunProgress(RUN_ID)
    for envelope in envelopes:
        progress.apply(envelope)
    return progress


def eval_progress(percent: float) -> Envelope[Any]:
    payload = ev.EvalProgress(
        candidate_model=SMALL, eval_type=EvalType.BASE, job_id="eval-1", percent=percent
    )
    return new_event(payload, producer="evaluator", run_id=RUN_ID)


def test_the_golden_run_reduces_to_its_story() -> None:
    progress = reduce(STORY)
    assert progress.requested == EXAMPLES["run.requested"].payload
    assert progress.dataset.status is Status.DONE
    assert "train 432" in progress.dataset.detail
    small, large = progress.candidates[SMALL], progress.candidates[LARGE]
    assert small.deployment.status is Status.DONE
    assert small.customization is not None
    assert small.customization.status is Status.DONE
    assert small.evaluations[EvalType.BASE].status is Status.DONE
    assert "function_name_accuracy 0.90" in small.evaluations[EvalType.BASE].detail
    # Planned from the resolved config before any of their events: icl and customized pending.
    assert small.evaluations[EvalType.ICL].status is Status.PENDING
    assert small.evaluations[EvalType.CUSTOMIZED].status is Status.PENDING
    assert large.deployment.status is Status.FAILED
    assert "insufficient_gpus" in large.deployment.detail
    assert large.customization is None
    assert EvalType.CUSTOMIZED not in large.evaluations
    assert progress.cancelled == EXAMPLES["run.cancelled"].payload
    assert progress.reclaimed == 2
    assert progress.finished
    assert progress.completed == EXAMPLES["run.completed"].payload
    assert progress.failed is None


@settings(max_examples=50, deadline=None)
@given(st.permutations(STORY))
def test_arrival_order_does_not_matter(order: list[Envelope[Any]]) -> None:
    assert reduce(order) == reduce(STORY)


def test_a_redelivered_event_is_applied_once() -> None:
    progress = RunProgress(RUN_ID)
    assert progress.apply(EXAMPLES["resources.reclaimed"])
    assert not progress.apply(EXAMPLES["resources.reclaimed"])
    assert progress.reclaimed == 2


def test_a_stale_progress_report_does_not_move_a_bar_back() -> None:
    progress = reduce([EXAMPLES["eval.started"], eval_progress(60.0)])
    assert not progress.apply(eval_progress(20.0))
    step = progress.candidates[SMALL].evaluations[EvalType.BASE]
    assert (step.status, step.percent) == (Status.RUNNING, 60.0)


def test_a_finished_step_stays_finished() -> None:
    progress = reduce([EXAMPLES["eval.done"]])
    assert not progress.apply(eval_progress(40.0))
    step = progress.candidates[SMALL].evaluations[EvalType.BASE]
    assert (step.status, step.percent) == (Status.DONE, 100.0)


def nim_down(model: str) -> Envelope[Any]:
    payload = ev.NimDown(
        candidate_model=model,
        deployment_name="d",
        reason=ev.NimDownReason.FINISHED,
        deployment_seconds=1.0,
    )
    return new_event(payload, producer="nim-manager", run_id=RUN_ID)


@pytest.mark.parametrize("failure_first", [True, False])
def test_a_failed_deployment_stays_failed_once_removed(failure_first: bool) -> None:
    events = [EXAMPLES["nim.failed"], nim_down(LARGE)]
    progress = reduce(events if failure_first else events[::-1])
    assert progress.candidates[LARGE].deployment.status is Status.FAILED


def test_a_failed_run() -> None:
    progress = reduce(
        [EXAMPLES["run.requested"], EXAMPLES["dataset.failed"], EXAMPLES["run.failed"]]
    )
    assert progress.dataset.status is Status.FAILED
    assert "not_enough_records" in progress.dataset.detail
    assert progress.failed == EXAMPLES["run.failed"].payload
    assert progress.completed is None
    line = outcome_line(progress)
    assert "failed at datasets (dataset_failed)" in line
    assert "need at least 50" in line


def test_the_first_ending_wins() -> None:
    progress = reduce([EXAMPLES["run.completed"]])
    assert not progress.apply(EXAMPLES["run.failed"])
    assert progress.completed is not None


def test_other_runs_are_ignored() -> None:
    progress = RunProgress(uuid4())
    assert not progress.apply(EXAMPLES["run.completed"])
    assert not progress.finished
    assert outcome_line(progress) == ""
