"""A split that cannot leak: evaluation records, then train and validation from what is left.

1. Evaluation takes `eval_size` records, at most one per conversation, stratified by the first
   tool called when the classes allow it: labels seen once are pooled as `others` (as the
   blueprint does), and stratification needs more than one class and at least one evaluation
   record per class (`eval_size >= classes`). Classes get shares in proportion to their size
   (largest remainder), at least one each. A class whose conversations are used up hands its
   share to the others.
   Otherwise (one class, or more classes than evaluation records) the fallback is a seeded
   random choice. Unlike the blueprint, a class of one never breaks the split.
2. The other records of an evaluation record's conversation are dropped, and so is any record
   whose user turns start with (a near copy of) an evaluation record's user turns: such a record
   holds the evaluation question and, in its history, the answer.
3. Validation takes whole conversations, in seeded random order, until it holds `val_ratio` of
   what is left (at least one record); training gets the rest, so ICL examples drawn from it are
   safe too.

Everything random draws from one `random.Random(seed)` in a fixed order: same records, same seed,
same split.
"""

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flywheel_datasets.errors import NotEnoughRecords
from flywheel_datasets.selection import Candidate
from flywheel_datasets.similarity import NearDuplicateIndex, normalize, sketches

OTHERS = "others"
SAME_CONVERSATION = "same_conversation_as_eval"
EVAL_QUERY_OVERLAP = "eval_query_overlap"
_SKETCH_BATCH = 1000
_LEAK_MARGIN = 0.4


@dataclass(frozen=True)
class Split:
    eval: list[Candidate]
    train: list[Candidate]
    val: list[Candidate]
    stratified: bool
    leaked: Counter[str]


def split_records(
    candidates: Sequence[Candidate],
    *,
    eval_size: int,
    val_ratio: float,
    seed: int,
    near_threshold: float,
) -> Split:
    rng = random.Random(seed)
    labels = stratification_labels(candidates)
    stratified = is_stratifiable(labels, eval_size)
    chosen = (
        _stratified_eval(candidates, labels, eval_size, rng)
        if stratified
        else _random_eval(candidates, eval_size, rng, taken=set(), used_groups=set())
    )
    if len(chosen) < eval_size:
        conversations = len({c.group for c in candidates})
        raise NotEnoughRecords(
            f"{len(candidates)} usable records in {conversations} conversations: "
            f"evaluation needs {eval_size} conversations, plus some for training and validation"
        )
    eval_groups = {candidates[i].group for i in chosen}
    eval_set = set(chosen)
    leaked: Counter[str] = Counter()
    rest: list[Candidate] = []
    for position, candidate in enumerate(candidates):
        if position in eval_set:
            continue
        if candidate.group in eval_groups:
            leaked[SAME_CONVERSATION] += 1
        else:
            rest.append(candidate)
    evaluation = [candidates[i] for i in sorted(chosen)]
    overlapping = eval_overlaps(evaluation, rest, near_threshold)
    leaked[EVAL_QUERY_OVERLAP] += len(overlapping)
    rest = [c for i, c in enumerate(rest) if i not in overlapping]
    train, val = _train_val(rest, val_ratio, rng)
    return Split(evaluation, train, val, stratified, +leaked)


def stratification_labels(candidates: Sequence[Candidate]) -> list[str]:
    """Each record's first tool name; names seen only once become `others`."""
    counts = Counter(c.label for c in candidates)
    return [c.label if counts[c.label] > 1 else OTHERS for c in candidates]


def is_stratifiable(labels: Sequence[str], eval_size: int) -> bool:
    classes = len(set(labels))
    return classes > 1 and eval_size >= classes


def class_quotas(counts: Counter[str], total: int) -> dict[str, int]:
    """`total` shared in proportion to the class sizes (largest remainder), then topped up so
    every class has one, taken from the largest quotas. Needs `total >= len(counts)`."""
    classes = sorted(counts)
    records = sum(counts.values())
    shares = {label: total * counts[label] / records for label in classes}
    quotas = {label: int(shares[label]) for label in classes}
    by_remainder = sorted(classes, key=lambda label: (quotas[label] - shares[label], label))
    for label in by_remainder[: total - sum(quotas.values())]:
        quotas[label] += 1
    for label in classes:
        if quotas[label] == 0:
            largest = max(classes, key=lambda other: (quotas[other], other))
            quotas[largest] -= 1
            quotas[label] = 1
    return quotas


def eval_overlaps(
    evaluation: Sequence[Candidate], others: Sequence[Candidate], threshold: float
) -> set[int]:
    """Positions in `others` whose user turns begin with an evaluation record's turns, exactly
    or nearly (every prefix of their turns is compared with the evaluation records' turns)."""
    # Few evaluation records: a wide prefilter margin costs little and misses nothing.
    index = NearDuplicateIndex(threshold, margin=_LEAK_MARGIN)
    for sketch in sketches([normalize("\n".join(c.turns)) for c in evaluation]):
        index.add(sketch)
    prefixes: list[tuple[int, str]] = []
    for position, candidate in enumerate(others):
        turns = [normalize(turn) for turn in candidate.turns]
        # normalize() maps the turn separator to a space, so joining normalized turns with
        # one gives the normalized prefix.
        prefixes.extend(
            (position, " ".join(t for t in turns[:end] if t)) for end in range(1, len(turns) + 1)
        )
    found: set[int] = set()
    for start in range(0, len(prefixes), _SKETCH_BATCH):
        batch = prefixes[start : start + _SKETCH_BATCH]
        matches = index.find_many([text for _, text in batch])
        found.update(
            position
            for (position, _), match in zip(batch, matches, strict=True)
            if match is not None
        )
    return found


def _stratified_eval(
    candidates: Sequence[Candidate], labels: Sequence[str], eval_size: int, rng: random.Random
) -> list[int]:
    members: dict[str, list[int]] = defaultdict(list)
    for position, label in enumerate(labels):
        members[label].append(position)
    quotas = class_quotas(Counter(labels), eval_size)
    taken: set[int] = set()
    used_groups: set[str] = set()
    for label in sorted(members):
        pool = members[label]
        rng.shuffle(pool)
        _take(candidates, pool, quotas[label], taken, used_groups)
    # Classes short of free conversations leave a gap; fill it from any class.
    return _random_eval(candidates, eval_size, rng, taken, used_groups)


def _random_eval(
    candidates: Sequence[Candidate],
    eval_size: int,
    rng: random.Random,
    taken: set[int],
    used_groups: set[str],
) -> list[int]:
    pool = [position for position in range(len(candidates)) if position not in taken]
    rng.shuffle(pool)
    _take(candidates, pool, eval_size - len(taken), taken, used_groups)
    return sorted(taken)


def _take(
    candidates: Sequence[Candidate],
    pool: Iterable[int],
    wanted: int,
    taken: set[int],
    used_groups: set[str],
) -> None:
    """Move up to `wanted` positions from `pool` into `taken`, one per conversation."""
    for position in pool:
        if wanted <= 0:
            return
        group = candidates[position].group
        if group in used_groups:
            continue
        used_groups.add(group)
        taken.add(position)
        wanted -= 1


def _train_val(
    rest: Sequence[Candidate], val_ratio: float, rng: random.Random
) -> tuple[list[Candidate], list[Candidate]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for position, candidate in enumerate(rest):
        groups[candidate.group].append(position)
    if len(groups) < 2:
        raise NotEnoughRecords(
            f"{len(rest)} records in {len(groups)} conversation(s) remain after evaluation: "
            "training and validation need two conversations at least"
        )
    order = sorted(groups)
    rng.shuffle(order)
    wanted = max(1, round(val_ratio * len(rest)))
    val_positions: set[int] = set()
    for group in order[:-1]:  # the last conversation always trains
        if len(val_positions) >= wanted:
            break
        val_positions.update(groups[group])
    train = [c for i, c in enumerate(rest) if i not in val_positions]
    val = [c for i, c in enumerate(rest) if i in val_positions]
    return train, val
