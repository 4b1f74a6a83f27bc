"""The production baseline: what the model that served the logged traffic did, from the logs
themselves. Built by datasets over a run's selected records, carried by `dataset.ready`, and the
reference row of the leaderboard."""

from pydantic import Field

from flywheel_contracts.payload import Part
from flywheel_contracts.primitives import Count, Label


class ProductionModel(Part):
    """A model named by the logged responses (or requests), with how many records it served."""

    model: Label = Field(description="As logged: `response.model`, else `request.model`.")
    records: Count


class ProductionBaseline(Part):
    """The logged production traffic of a run's workload."""

    models: tuple[ProductionModel, ...] = Field(
        description="Production models seen in the selected records, most records first."
    )
    records: Count = Field(description="Selected records the figures describe.")
    records_with_usage: Count = Field(description="Of those, records whose `usage` had tokens.")
    prompt_tokens_per_request: float | None = Field(
        default=None, ge=0, description="Mean `usage.prompt_tokens`; None without usage."
    )
    completion_tokens_per_request: float | None = Field(
        default=None, ge=0, description="Mean `usage.completion_tokens`; None without usage."
    )
    records_with_latency: Count = Field(description="Records whose metadata had a latency.")
    latency_p50_ms: float | None = Field(default=None, ge=0)
    latency_p95_ms: float | None = Field(default=None, ge=0)
    requests_per_day: float | None = Field(
        default=None,
        ge=0,
        description="The workload's logged volume: records read over the days their timestamps "
        "span (at least one day); None when unknown.",
    )

    @property
    def model(self) -> str | None:
        """The production model (the one that served most records)."""
        return self.models[0].model if self.models else None

    @property
    def tokens_per_request(self) -> float | None:
        if self.prompt_tokens_per_request is None or self.completion_tokens_per_request is None:
            return None
        return self.prompt_tokens_per_request + self.completion_tokens_per_request
