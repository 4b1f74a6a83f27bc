"""The leaderboard's money, ratios and verdicts as text, the same on the terminal and in the HTML
report. An unknown figure reads "unknown", never 0."""

from flywheel_contracts import events as ev

UNKNOWN = "unknown"


def usd(value: float | None, digits: int = 2) -> str:
    """`$1,234.50`; "unknown" for None."""
    if value is None:
        return UNKNOWN
    return f"-${-value:,.{digits}f}" if value < 0 else f"${value:,.{digits}f}"


def signed_saving(value: float | None) -> str:
    """A monthly saving with its sign: `+$160.20` saves, `-$12.00` costs that much more."""
    if value is None:
        return UNKNOWN
    return f"-${-value:,.2f}" if value < 0 else f"+${value:,.2f}"


def saving_phrase(value: float | None) -> str:
    """`saves $160.20 a month`, `costs $12.00 more a month`, or that the saving is unknown."""
    if value is None:
        return "monthly saving unknown"
    if value < 0:
        return f"costs ${-value:,.2f} more a month"
    return f"saves ${value:,.2f} a month"


def ratio(value: float | None) -> str:
    """Candidate over production: `0.11x`; "unknown" for None."""
    return UNKNOWN if value is None else f"{value:.2f}x"


def shortfall(value: ev.Shortfall | None) -> str:
    return "" if value is None else str(value).replace("_", " ")


def production_models(baseline: ev.ProductionBaseline) -> str:
    """The production model, and how many others served some of the records."""
    if not baseline.models:
        return UNKNOWN
    model, others = baseline.models[0].model, len(baseline.models) - 1
    if not others:
        return model
    return f"{model} (+{others} other{'s' if others > 1 else ''})"


def production_summary(row: ev.ProductionRow) -> str:
    """One sentence: who served the logged traffic, its volume and what it costs."""
    baseline = row.baseline
    served = ", ".join(
        f"{m.model} served {m.records:,}" if i == 0 else f"{m.model} {m.records:,}"
        for i, m in enumerate(baseline.models)
    )
    volume = UNKNOWN if baseline.requests_per_day is None else f"{baseline.requests_per_day:,.0f}"
    price = UNKNOWN if row.price_per_1k_tokens is None else f"${row.price_per_1k_tokens:g}"
    return (
        f"Production: {served or 'no model named'} of the {baseline.records:,} logged records; "
        f"{volume} requests a day, {usd(row.cost_per_1k_requests_usd, 4)} per 1,000 requests, "
        f"{usd(row.monthly_cost_usd)} a month (30 days) at {price} per 1k tokens."
    )


def records_needed(recommendation: ev.Recommendation) -> str | None:
    """What more evaluation records would allow, when the decision says so."""
    if recommendation.records_needed is None:
        return None
    threshold = "" if recommendation.threshold is None else f" clear {recommendation.threshold:.2f}"
    return (
        f"Records needed: about {recommendation.records_needed:,} evaluation records for the "
        f"best score's interval to{threshold or ' clear the threshold'}."
    )


def pick_line(recommendation: ev.Recommendation) -> str:
    """`Recommended: MODEL (EVAL), promote ID (base BASE)`; the headline says why."""
    if recommendation.candidate_model is None:
        return "No recommendation."
    line = f"Recommended: {recommendation.candidate_model} ({recommendation.eval_type})"
    # A customized candidate is promoted by its own model id, not the base model's.
    if recommendation.model_id not in (None, recommendation.candidate_model):
        line += f", promote {recommendation.model_id}"
        base = recommendation.base_model
        if base is not None and base != recommendation.model_id:
            line += f" (base {base})"
    return line


def other_verdicts(recommendation: ev.Recommendation) -> list[ev.Verdict]:
    """The verdicts of every candidate and evaluation type but the recommended one."""
    pick = (recommendation.candidate_model, recommendation.eval_type)
    return [v for v in recommendation.verdicts if (v.candidate_model, v.eval_type) != pick]


def verdict_reason(verdict: ev.Verdict) -> str:
    """`below threshold: 0.55 (95% CI 0.34-0.74) is below 0.60`."""
    why = shortfall(verdict.shortfall) or ("qualified" if verdict.qualified else "not qualified")
    return f"{why}: {verdict.detail}"


def verdict_line(verdict: ev.Verdict) -> str:
    return f"{verdict.candidate_model} {verdict.eval_type}: {verdict_reason(verdict)}"
