"""In-context examples for the ICL evaluation dataset, chosen and injected as the blueprint does.

Examples come from the training split only, which the split already keeps clear of every
evaluation query. A seeded sample of at most `icl_pool_size` training records, taken round-robin
across tools so rare tools are present, is the candidate pool.

- `uniform_distribution`: the pool grouped by first tool, each group shortest first, cut to its
  share of `max_examples` (the first `max_examples % tools` tools get one more); for generic
  workloads the `max_examples` shortest examples. The same examples serve every record.
- `semantic_similarity`: the last user message of the pool and of each evaluation record is
  embedded by the NIM embeddings endpoint; the `k` nearest examples are candidates
  (`k = 5 * max_examples` for tool calling), of which `relevance_ratio` of `max_examples` are the
  most similar and the rest cover tools not yet shown (blueprint relevance/coverage selection).
  When the endpoint cannot embed (`EmbeddingUnavailable`: refused, 401, unreachable after the
  client's retries), the build does not fail: the same nearest-`k` and relevance/coverage rule
  runs on lexical similarity instead (cosine of the last user messages' character 4-gram sets,
  `similarity.lexical_similarities`), with one warning line giving the reason. `IclResult.selection`
  says which of `uniform_distribution`, `semantic_similarity` or `lexical_similarity` was used.

Every ICL record carries `icl_example_ids`: the log-store document ids of the training records
shown to it, in prompt order (an empty list when none fitted), so a reviewer can find them.

Fitting: a record's budget is `max_context_length - reserved_tokens - tokens(record)`; examples
are taken round-robin across tools while they fit. Unlike the blueprint, which stops at the
first example that overflows, a too-long example is skipped and shorter ones may still fit.
Injection: a system message gets the header and the examples in front of its content, or a new
system message is inserted first.
"""

import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson
import structlog

from flywheel_contracts.run_config import ExampleSelection, IclConfig, WorkloadType
from flywheel_datasets.errors import EmbeddingUnavailable
from flywheel_datasets.records import Record, content_text, response_message, user_turns
from flywheel_datasets.selection import Candidate
from flywheel_datasets.similarity import lexical_similarities
from flywheel_datasets.tokens import estimate_tokens

ICL_HEADER = (
    "You are a helpful assistant that completes the user's request, calling a tool when one "
    "fits.\nHere are some examples of how you should respond to the user."
)
_SEPARATOR = "\n\n"
_SEMANTIC_CANDIDATES_PER_EXAMPLE = 5
EXAMPLE_IDS = "icl_example_ids"
"""The key of an ICL record that lists the document ids of the examples in its prompt."""
LEXICAL_SIMILARITY = "lexical_similarity"
"""The selection used when semantic selection cannot embed (not a `ExampleSelection`: it is
never asked for, only fallen back to)."""

_log = structlog.get_logger("flywheel.datasets.icl")

Embed = Callable[[Sequence[str]], Awaitable[list[list[float]]]]


@dataclass(frozen=True, slots=True)
class Example:
    label: str
    text: str
    tokens: int
    query: str
    doc_id: str = ""
    """The training record's document id in the log store."""


@dataclass(frozen=True)
class IclResult:
    records: list[Record]
    examples: int
    short_of_minimum: int
    """Records that got fewer than `min_examples` examples (their budget was too small)."""
    selection: str = ExampleSelection.UNIFORM_DISTRIBUTION.value
    """The selection used: an `ExampleSelection` value, or `LEXICAL_SIMILARITY` (fallback)."""
    fallback_reason: str | None = None
    """Why semantic selection fell back to lexical similarity."""


def example_text(record: Record) -> str:
    """The blueprint's example block (system messages left out: the record has its own)."""
    parts = ["For example, if the conversation looks like this:\n"]
    for message in record["request"]["messages"]:
        if message.get("role") != "system":
            parts.append(f"{message['role']}: {content_text(message.get('content'))}\n\n")
    answer = response_message(record)
    parts.append("\nThen you'll respond with:\n")
    parts.append(f"{answer.get('role', 'assistant')}: {content_text(answer.get('content'))}")
    if answer.get("tool_calls"):
        calls = orjson.dumps(answer["tool_calls"], option=orjson.OPT_INDENT_2).decode()
        parts.append("\nTool calls:\n" + calls)
    return "".join(parts)


def example_pool(
    train: Sequence[Candidate],
    size: int,
    seed: int,
    prepare: Callable[[Record], Record] = lambda record: record,
) -> list[Example]:
    """At most `size` training records as examples, round-robin over tools, seeded; `prepare`
    is applied to each record first (PII scrubbing)."""
    rng = random.Random(seed)
    by_label: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in train:
        by_label[candidate.label].append(candidate)
    queues = []
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        queues.append(members)
    picked: list[Candidate] = []
    depth = 0
    while len(picked) < size and any(depth < len(q) for q in queues):
        picked.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return [
        _example(prepare(candidate.record()), candidate.label, candidate.doc_id)
        for candidate in picked[:size]
    ]


def uniform_bins(total: int, bins: int) -> list[int]:
    """`total` spread over `bins`: the first `total % bins` get one more."""
    base, extra = divmod(total, bins)
    return [base + (1 if i < extra else 0) for i in range(bins)]


def uniform_groups(
    pool: Sequence[Example], max_examples: int, workload: WorkloadType
) -> list[list[Example]]:
    if workload is WorkloadType.GENERIC:
        return [sorted(pool, key=lambda e: e.tokens)[:max_examples]]
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in pool:
        by_label[example.label].append(example)
    labels = sorted(by_label)
    return [
        sorted(by_label[label], key=lambda e: e.tokens)[:share]
        for label, share in zip(labels, uniform_bins(max_examples, len(labels)), strict=True)
        if share
    ]


def semantic_groups(
    ranked: Sequence[Example], config: IclConfig, workload: WorkloadType
) -> list[list[Example]]:
    """The blueprint's relevance/coverage choice among candidates ranked by similarity."""
    if workload is WorkloadType.GENERIC:
        return [list(ranked)]
    relevant = list(ranked[: int(config.max_examples * config.relevance_ratio)])
    covered = {e.label for e in relevant}
    remaining = list(ranked[len(relevant) :])
    room = config.max_examples - len(relevant)
    chosen = list(relevant)
    for example in remaining:
        if room == 0:
            break
        if example.label not in covered:
            chosen.append(example)
            covered.add(example.label)
            room -= 1
    for example in remaining:
        if room == 0:
            break
        if example not in chosen:
            chosen.append(example)
            room -= 1
    groups: dict[str, list[Example]] = {}
    for example in chosen:
        groups.setdefault(example.label, []).append(example)
    return list(groups.values())


def fit(groups: Sequence[Sequence[Example]], budget: int, max_examples: int) -> list[Example]:
    """Round-robin over the groups, taking each next example that still fits the budget."""
    taken: list[Example] = []
    queues = [list(group) for group in groups]
    while queues and len(taken) < max_examples:
        for queue in queues:
            if not queue or len(taken) >= max_examples:
                continue
            example = queue.pop(0)
            cost = example.tokens + estimate_tokens(_SEPARATOR)
            if cost <= budget:
                taken.append(example)
                budget -= cost
        queues = [queue for queue in queues if queue]
    return taken


def record_budget(record: Record, config: IclConfig) -> int:
    used = estimate_tokens(orjson.dumps(record).decode())
    return config.max_context_length - config.reserved_tokens - used


def inject(record: Record, examples: Sequence[Example]) -> Record:
    """A copy of `record` whose system message carries the header and the examples, and
    whose `icl_example_ids` lists their document ids."""
    if not examples:
        return {**record, EXAMPLE_IDS: []}
    block = ICL_HEADER + _SEPARATOR + _SEPARATOR.join(e.text for e in examples)
    messages = [dict(m) for m in record["request"]["messages"]]
    if messages[0].get("role") == "system":
        original = content_text(messages[0].get("content"))
        messages[0]["content"] = f"{block}{_SEPARATOR}{original}"
    else:
        messages.insert(0, {"role": "system", "content": block})
    return {
        **record,
        "request": {**record["request"], "messages": messages},
        EXAMPLE_IDS: [e.doc_id for e in examples],
    }


async def icl_records(
    evaluation: Sequence[Record],
    pool: Sequence[Example],
    config: IclConfig,
    workload: WorkloadType,
    embed: Embed,
) -> IclResult:
    selection = config.example_selection.value
    fallback: str | None = None
    if config.example_selection is ExampleSelection.SEMANTIC_SIMILARITY and pool:
        queries = [_last_user_text(record) for record in evaluation]
        try:
            scores = await _embedding_similarities(queries, pool, embed)
        except (EmbeddingUnavailable, ConnectionError) as exc:
            selection, fallback = LEXICAL_SIMILARITY, f"{type(exc).__name__}: {exc}"[:500]
            _log.warning("icl.embeddings_unavailable", fallback=LEXICAL_SIMILARITY, reason=fallback)
            scores = lexical_similarities(queries, [e.query for e in pool])
        per_record = nearest_groups(scores, pool, config, workload)
    else:
        groups = uniform_groups(pool, config.max_examples, workload)
        per_record = [groups] * len(evaluation)
    records: list[Record] = []
    used = short = 0
    for record, groups in zip(evaluation, per_record, strict=True):
        examples = fit(groups, record_budget(record, config), config.max_examples)
        used += len(examples)
        short += len(examples) < config.min_examples
        records.append(inject(record, examples))
    return IclResult(records, used, short, selection, fallback)


async def _embedding_similarities(
    queries: Sequence[str], pool: Sequence[Example], embed: Embed
) -> npt.NDArray[np.float32]:
    """Cosine similarity of each query's embedding with each example's (rows: queries)."""
    vectors = np.asarray(await embed([e.query for e in pool] + list(queries)), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.where(norms == 0, 1, norms)
    examples, targets = vectors[: len(pool)], vectors[len(pool) :]
    similarities: npt.NDArray[np.float32] = targets @ examples.T
    return similarities


def nearest_groups(
    similarities: npt.NDArray[np.float32],
    pool: Sequence[Example],
    config: IclConfig,
    workload: WorkloadType,
) -> list[list[list[Example]]]:
    """Per query (a row of `similarities` against `pool`): the `k` nearest examples, chosen
    among by the relevance/coverage rule."""
    k = config.max_examples * (
        _SEMANTIC_CANDIDATES_PER_EXAMPLE if workload is WorkloadType.TOOL_CALLING else 1
    )
    groups = []
    for scores in similarities:
        # Stable on ties, so equal scores keep pool order and the result is reproducible.
        nearest = np.argsort(-scores, kind="stable")[:k]
        groups.append(semantic_groups([pool[i] for i in nearest], config, workload))
    return groups


def _example(record: Record, label: str, doc_id: str) -> Example:
    text = example_text(record)
    return Example(label, text, estimate_tokens(text), _last_user_text(record), doc_id)


def _last_user_text(record: Record) -> str:
    turns = user_turns(record)
    return turns[-1] if turns else ""
