"""One eval record through the candidate and, where a metric needs it, the judge.

A failed request is a failed record (excluded from the scores). Two failures end the whole
evaluation instead, because every record would fail alike and the scores would describe the
server, not the model: a request rate limited past its bound (`rate_limited`, the candidate's
or the judge's), and tool schemas the candidate's server refuses (`schema_refused`).
"""

from collections.abc import Callable
from typing import Any

from flywheel_contracts.events import EvalErrorKind
from flywheel_contracts.run_config import ToolChoice, WorkloadType
from flywheel_evaluator.clients.chat import ChatEndpoint, ChatResult
from flywheel_evaluator.clients.refusals import schema_refused_message
from flywheel_evaluator.dataset import EvalItem
from flywheel_evaluator.dialects import read_answer
from flywheel_evaluator.errors import (
    ChatFailed,
    EvaluationFailed,
    RateLimited,
    SchemaRefused,
    Unreachable,
)
from flywheel_evaluator.judging import (
    SIMILARITY_MAX,
    SIMILARITY_MIN,
    parse_rating,
    parse_similarity,
    similarity_prompt,
    tool_call_prompt,
)
from flywheel_evaluator.models import RecordResult
from flywheel_evaluator.schema_compat import compat_tools
from flywheel_evaluator.scoring import (
    CORRECTNESS,
    FUNCTION_NAME,
    FUNCTION_NAME_AND_ARGS,
    FUNCTION_NAME_AND_ARGS_LENIENT,
    FUNCTION_NAME_LENIENT,
    METRICS,
    SIMILARITY,
    SIMILARITY_SCALE,
)
from flywheel_evaluator.toolcalls import ToolCall, calls_match, names_match, parse_tool_calls

_ERROR_CHARS = 500
_REPLY_CHARS = 1000


class RecordScorer:
    """Scores records of one evaluation: the candidate, the judge and the workload's metrics."""

    def __init__(
        self,
        *,
        candidate: ChatEndpoint,
        target_model: str,
        judge: ChatEndpoint,
        judge_model: str,
        workload: WorkloadType,
        max_tokens: int | None = None,
        decide_exact_cases: bool = True,
        tool_schema_compat: bool = False,
        tool_choice: ToolChoice = ToolChoice.REQUIRED,
    ) -> None:
        self._candidate = candidate
        self._target = target_model
        self._judge = judge
        self._judge_model = judge_model
        self._workload = workload
        self._max_tokens = max_tokens
        self._decide_exact = decide_exact_cases
        self._compat = tool_schema_compat
        self._tool_choice = tool_choice.value

    @property
    def concurrency(self) -> int:
        """Records in flight per evaluation: the candidate endpoint's."""
        return self._candidate.concurrency

    async def ask(self, item: EvalItem) -> ChatResult:
        """The candidate's ChatResult for `item`: ChatFailed when it does not answer,
        EvaluationFailed when its answer ends the evaluation."""
        options: dict[str, object] = {}
        if self._workload is WorkloadType.TOOL_CALLING and item.tools:
            tools = compat_tools(item.tools) if self._compat else item.tools
            options = {"tools": tools, "tool_choice": self._tool_choice}
        if self._max_tokens is not None:
            options["max_tokens"] = self._max_tokens
        try:
            return await self._candidate.complete(self._target, item.messages, **options)
        except RateLimited as exc:
            raise EvaluationFailed(
                EvalErrorKind.RATE_LIMITED, f"the candidate {self._target}: {exc}"
            ) from exc
        except Unreachable as exc:
            raise EvaluationFailed(
                EvalErrorKind.JOB_FAILED, f"the candidate {self._target} is unreachable: {exc}"
            ) from exc
        except SchemaRefused as exc:
            message = schema_refused_message(exc.server_text, compat_on=self._compat)
            raise EvaluationFailed(EvalErrorKind.SCHEMA_REFUSED, message) from exc

    async def score(self, item: EvalItem) -> RecordResult:
        try:
            answer = await self.ask(item)
        except ChatFailed as exc:
            return RecordResult(
                index=item.index,
                ok=False,
                attempts=exc.attempts,
                rate_limited=exc.rate_limited,
                error=str(exc)[:_ERROR_CHARS],
                scores=dict.fromkeys(METRICS[self._workload]),
                icl_example_ids=item.example_ids,
            )
        message = answer.completion.choices[0].message
        judged = (
            await self._tool_calls(item, message.content, message.tool_calls)
            if self._workload is WorkloadType.TOOL_CALLING
            else await self._similarity(item, message.content)
        )
        return RecordResult(
            index=item.index,
            ok=True,
            attempts=answer.attempts,
            rate_limited=answer.rate_limited,
            latency_ms=answer.latency_ms,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            prediction={"content": message.content, "tool_calls": message.tool_calls},
            icl_example_ids=item.example_ids,
            **judged,
        )

    async def _tool_calls(
        self, item: EvalItem, content: str | None, raw_calls: list[Any] | None
    ) -> dict[str, Any]:
        reference = parse_tool_calls(item.reference_calls)
        predicted = parse_tool_calls(raw_calls)
        answer = read_answer(content, raw_calls)
        names, exact = names_match(reference, predicted), calls_match(reference, predicted)
        scores: dict[str, float | None] = {
            FUNCTION_NAME: float(names),
            FUNCTION_NAME_AND_ARGS: float(exact),
            **_lenient(reference, parse_tool_calls(answer.calls)),
        }
        found: dict[str, Any] = {"dialect": answer.dialect}
        if not predicted:
            # The rubric's first rule: no call is rated 0; no need to ask.
            return {**found, "scores": {**scores, CORRECTNESS: 0.0}}
        if self._decide_exact and (exact or not names):
            # Identical calls satisfy every rule of the rubric; a different name breaks one.
            return {**found, "scores": {**scores, CORRECTNESS: float(exact)}}
        prompt = tool_call_prompt(item.reference_calls, raw_calls or [])
        rating, detail = await self._judge_rating(prompt, parse_rating)
        return {**found, **detail, "scores": {**scores, CORRECTNESS: rating}}

    async def _similarity(self, item: EvalItem, content: str | None) -> dict[str, Any]:
        if not content or not content.strip():
            # The rubric rates an empty answer 1; no need to ask.
            return {"scores": {SIMILARITY: SIMILARITY_MIN / SIMILARITY_SCALE}}
        if self._decide_exact and content.strip() == item.reference_text.strip():
            return {"scores": {SIMILARITY: SIMILARITY_MAX / SIMILARITY_SCALE}}
        prompt = similarity_prompt(item.messages, item.reference_text, content)
        rating, detail = await self._judge_rating(prompt, parse_similarity)
        scaled = None if rating is None else rating / SIMILARITY_SCALE
        return {**detail, "scores": {SIMILARITY: scaled}}

    async def _judge_rating(
        self, prompt: list[dict[str, str]], parse: Callable[[str | None], int | None]
    ) -> tuple[float | None, dict[str, Any]]:
        """The judge's parsed rating (None when it failed or said nothing usable) and the
        detail kept with the record."""
        try:
            answer = await self._judge.complete(self._judge_model, prompt)
        except RateLimited as exc:
            raise EvaluationFailed(
                EvalErrorKind.RATE_LIMITED, f"the judge {self._judge_model}: {exc}"
            ) from exc
        except Unreachable as exc:
            raise EvaluationFailed(
                EvalErrorKind.JOB_FAILED, f"the judge {self._judge_model} is unreachable: {exc}"
            ) from exc
        except ChatFailed as exc:
            return None, {"judge_error": str(exc)[:_ERROR_CHARS]}
        reply = (answer.completion.choices[0].message.content or "")[:_REPLY_CHARS]
        rating = parse(reply)
        if rating is None:
            return None, {"judge_reply": reply, "judge_error": "no rating in the judge's reply"}
        return float(rating), {"judge_reply": reply}


def _lenient(reference: list[ToolCall], predicted: list[ToolCall]) -> dict[str, float | None]:
    """The lenient metrics: the strict ones over the calls of either dialect."""
    return {
        FUNCTION_NAME_LENIENT: float(names_match(reference, predicted)),
        FUNCTION_NAME_AND_ARGS_LENIENT: float(calls_match(reference, predicted)),
    }
