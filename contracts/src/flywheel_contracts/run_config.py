"""The resolved configuration of one run.

The datasets service resolves it (deployment defaults + the overrides of `run.requested`) and
ships it on `dataset.ready`; every later stage reads it from the events instead of its own
settings, so all services agree on what the run is. Defaults follow the reference blueprint.
"""

from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from flywheel_contracts.payload import Part
from flywheel_contracts.primitives import HttpUrl, Identifier, ModelName


class WorkloadType(StrEnum):
    """How a workload's answers are judged: tool-call metrics or LLM-judge similarity."""

    TOOL_CALLING = "tool_calling"
    GENERIC = "generic"


class EvalType(StrEnum):
    """The three ways each candidate is evaluated."""

    BASE = "base"
    ICL = "icl"
    CUSTOMIZED = "customized"


class ExampleSelection(StrEnum):
    """How in-context examples are chosen from the training split."""

    UNIFORM_DISTRIBUTION = "uniform_distribution"
    SEMANTIC_SIMILARITY = "semantic_similarity"


class TrainingType(StrEnum):
    SFT = "sft"


class FinetuningType(StrEnum):
    LORA = "lora"


class ToolChoice(StrEnum):
    """The `tool_choice` of a tool-calling evaluation request."""

    REQUIRED = "required"
    AUTO = "auto"


SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "x-goog-api-key"}
)
"""Headers that carry credentials: an endpoint's key is named (`api_key`), never sent in events."""


class ExternalEndpoint(Part):
    """An OpenAI-compatible endpoint that already serves a model (a hosted provider, vLLM,
    Ollama, llama.cpp's server, TGI): called as it is, never deployed through NMP.

    Run configurations travel in events, so the endpoint's key is only named here: the evaluator
    reads it from its own environment (`FLYWHEEL_EVALUATOR_ENDPOINT_KEYS__<NAME>__KEY`, or
    `..._KEY_FILE` for a mounted secret) and sends it only to the base URL registered with it.
    """

    base_url: HttpUrl = Field(
        description="OpenAI-compatible base URL (the part before `/chat/completions`)."
    )
    model: ModelName | None = Field(
        default=None,
        description="Model id sent in requests; None sends the candidate's `model_name`.",
    )
    api_key: Identifier | None = Field(
        default=None,
        description="Name of a key the evaluator holds for this base URL; None: no key.",
    )
    headers: dict[
        Annotated[str, Field(min_length=1, max_length=128)],
        Annotated[str, Field(max_length=1024)],
    ] = Field(
        default_factory=dict,
        max_length=16,
        description="Extra, non-secret request headers (e.g. a provider's `HTTP-Referer`).",
    )
    tool_choice: ToolChoice = Field(
        default=ToolChoice.REQUIRED,
        description="What tool-calling requests ask for. `required`, as every NMP candidate is "
        "asked, suits servers that parse the model's calls; `auto` suits a server that enforces "
        "`required` with a grammar the model does not follow (llama.cpp with a model that writes "
        "bare JSON), whose answers then run to their token cap.",
    )
    concurrency: int = Field(default=4, ge=1, le=256, description="Requests in flight at most.")
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="One request's deadline."
    )

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, url: str) -> str:
        authority = url.split("://", 1)[1].split("/", 1)[0]
        if "@" in authority:
            raise ValueError("base_url must not carry credentials: name a key in `api_key`")
        return url

    @field_validator("headers")
    @classmethod
    def _no_secrets_in_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in headers if name.lower() in SECRET_HEADERS)
        if secret:
            raise ValueError(
                f"header(s) {', '.join(secret)} carry credentials: name a key in `api_key` "
                "instead, so it stays out of events"
            )
        return headers


class CandidateConfig(Part):
    """A smaller model to evaluate as a replacement for the production model: deployed through
    NMP, or reached at an external OpenAI-compatible `endpoint`."""

    model_name: ModelName = Field(description="NMP model name, `org/model`.")
    tag: Annotated[str, Field(max_length=128)] | None = Field(
        default=None, description="NIM image tag; None lets NMP choose."
    )
    gpus: int = Field(default=1, ge=1, le=64, description="GPUs the deployment needs.")
    context_length: int = Field(default=8192, ge=1, description="Model context window in tokens.")
    customization_enabled: bool = Field(
        default=False, description="Whether a LoRA adapter is trained and evaluated."
    )
    customization_target: ModelName | None = Field(
        default=None, description="NMP customization target, e.g. `meta/llama-3.2-1b-instruct@2.0`."
    )
    customization_gpus: int = Field(default=1, ge=1, le=64, description="GPUs for training.")
    price_per_1k_tokens: float = Field(
        default=0.0, ge=0, description="Serving price in USD per 1,000 tokens, for the cost report."
    )
    price_per_1k_input_tokens: float = Field(
        default=0.0,
        ge=0,
        description="USD per 1,000 prompt tokens; with the output price, replaces "
        "`price_per_1k_tokens` (providers price the two apart).",
    )
    price_per_1k_output_tokens: float = Field(
        default=0.0, ge=0, description="USD per 1,000 completion tokens."
    )
    endpoint: ExternalEndpoint | None = Field(
        default=None,
        description="Reach the model here instead of deploying it: it holds no GPUs, is never "
        "sent to NMP, and is evaluated base and ICL only.",
    )

    @model_validator(mode="after")
    def _customization_needs_target(self) -> Self:
        if self.customization_enabled and self.customization_target is None:
            raise ValueError("customization_enabled requires customization_target")
        if self.customization_enabled and self.endpoint is not None:
            raise ValueError("an external endpoint cannot be customized: NMP trains only its own")
        return self

    @property
    def external(self) -> bool:
        return self.endpoint is not None

    @property
    def served_model(self) -> str:
        """The model id requests name."""
        if self.endpoint is not None and self.endpoint.model is not None:
            return self.endpoint.model
        return self.model_name


class SplitConfig(Part):
    """How logged records become the eval, train and validation splits."""

    eval_size: int = Field(default=20, ge=1, description="Records held out for evaluation.")
    val_ratio: float = Field(
        default=0.1, gt=0, lt=1, description="Share of the remaining records used for validation."
    )
    min_total_records: int = Field(
        default=50, ge=1, description="Fewer usable records than this fails the run."
    )
    limit: int = Field(default=10_000, ge=1, description="Most records sampled for one run.")
    random_seed: int | None = Field(default=None, description="Seed for sampling and splitting.")
    parse_function_arguments: bool = Field(
        default=True, description="Parse tool-call arguments given as JSON strings."
    )

    @model_validator(mode="after")
    def _sizes_fit(self) -> Self:
        if self.limit < self.min_total_records:
            raise ValueError("limit must be at least min_total_records")
        if self.eval_size >= self.limit:
            raise ValueError("eval_size must be below limit")
        return self


class IclConfig(Part):
    """In-context-learning examples injected into the ICL evaluation dataset."""

    max_context_length: int = Field(default=8192, ge=1, description="Token budget per record.")
    reserved_tokens: int = Field(default=2048, ge=0, description="Tokens kept for the answer.")
    max_examples: int = Field(default=3, ge=1, description="Most examples per record.")
    min_examples: int = Field(default=1, ge=0, description="Fewest examples per record.")
    example_selection: ExampleSelection = Field(default=ExampleSelection.UNIFORM_DISTRIBUTION)
    relevance_ratio: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="Semantic selection: share of examples picked by similarity, the rest by tool.",
    )

    @model_validator(mode="after")
    def _budget_fits(self) -> Self:
        if self.reserved_tokens >= self.max_context_length:
            raise ValueError("reserved_tokens must be below max_context_length")
        if self.min_examples > self.max_examples:
            raise ValueError("min_examples must not exceed max_examples")
        return self


class LoraConfig(Part):
    adapter_dim: int = Field(default=32, ge=1, description="LoRA rank.")
    adapter_dropout: float = Field(default=0.1, ge=0, lt=1)


class TrainingConfig(Part):
    """Hyperparameters of the LoRA customization job."""

    training_type: TrainingType = TrainingType.SFT
    finetuning_type: FinetuningType = FinetuningType.LORA
    epochs: int = Field(default=2, ge=1)
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float = Field(default=0.0001, gt=0, lt=1)
    max_seq_length: int = Field(default=4096, ge=1)
    lora: LoraConfig = LoraConfig()


class EvaluationConfig(Part):
    """What each evaluation runs and how long it may take."""

    eval_types: tuple[EvalType, ...] = Field(
        default=(EvalType.BASE, EvalType.ICL, EvalType.CUSTOMIZED),
        min_length=1,
        description="Evaluations run per candidate; `customized` only where customization is on.",
    )
    judge_model: ModelName | None = Field(
        default=None, description="LLM judge for generic workloads; None uses NMP's default."
    )
    tool_schema_compat: bool = Field(
        default=False,
        description="Rewrite the tool schemas' regex shorthands (`\\d`, `\\w`, `\\s`) in `pattern` "
        "into explicit classes before sending them, for every candidate alike: servers that "
        "compile schemas into grammars (llama.cpp) refuse the shorthands.",
    )
    timeout_seconds: int = Field(default=3600, ge=1, description="An evaluation job's deadline.")
    min_score_to_recommend: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="A candidate qualifies for recommendation when its primary metric "
        "(function_name_and_args_accuracy for tool calling, similarity for generic) reaches this.",
    )

    @model_validator(mode="after")
    def _distinct_types(self) -> Self:
        if len(set(self.eval_types)) != len(self.eval_types):
            raise ValueError("eval_types must not repeat")
        return self


class RunConfig(Part):
    """Everything a run needs to know, resolved once by the datasets service."""

    workload_id: Identifier = Field(description="The logged workload the run studies.")
    client_id: Identifier = Field(description="The client whose traffic is used.")
    candidates: tuple[CandidateConfig, ...] = Field(
        min_length=1, description="Models to deploy and evaluate, in scheduling order."
    )
    split: SplitConfig = SplitConfig()
    icl: IclConfig = IclConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [c.model_name for c in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError("candidate model names must be unique")
        if self.icl.max_examples > self.split.eval_size:
            raise ValueError("icl.max_examples must not exceed split.eval_size")
        return self

    def candidate(self, model_name: str) -> CandidateConfig:
        """The candidate called `model_name`; KeyError when the run has none."""
        for candidate in self.candidates:
            if candidate.model_name == model_name:
                return candidate
        raise KeyError(model_name)

    def with_overrides(self, overrides: "RunOverrides") -> "RunConfig":
        """This configuration with the fields set in `overrides` replaced (and revalidated)."""
        merged = self.model_dump()
        for field, value in overrides.model_dump(exclude_none=True).items():
            *parents, leaf = _OVERRIDE_PATHS[field].split(".")
            target = merged
            for parent in parents:
                target = target[parent]
            target[leaf] = value
        return RunConfig.model_validate(merged)


_DEMO_SMALL = "meta/llama-3.2-1b-instruct"
DEMO_CANDIDATES: tuple[CandidateConfig, ...] = (
    CandidateConfig(
        model_name=_DEMO_SMALL,
        customization_enabled=True,
        customization_target=f"{_DEMO_SMALL}@2.0",
        price_per_1k_tokens=0.0001,
    ),
    CandidateConfig(model_name="meta/llama-3.2-3b-instruct", price_per_1k_tokens=0.00015),
    CandidateConfig(model_name="meta/llama-3.1-8b-instruct", price_per_1k_tokens=0.0002),
)
"""The demo's candidates (also the sample run's and the test suites'): three one-GPU models, the
smallest also LoRA-customized, which fit a budget of four GPUs at once with the training job."""


MAX_CANDIDATES = 16
MAX_LIMIT = 1_000_000
MAX_EVAL_SIZE = 10_000
MAX_ICL_EXAMPLES = 64
MAX_EPOCHS = 100
MAX_BATCH_SIZE = 4096
MAX_ADAPTER_DIM = 512
MAX_RANDOM_SEED = 2**32 - 1


class RunOverrides(Part):
    """The knobs a client may turn per run; unset fields keep the deployment's defaults.

    Every number has an upper bound, so one request cannot ask for a run no deployment could
    serve (a 10^12-record read, forty 64-GPU candidates). A request outside them fails its run
    with `dataset.failed` (`invalid_config`) naming the field and the bound.
    """

    candidates: tuple[CandidateConfig, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CANDIDATES,
        description=f"Replaces the whole candidate list; at most {MAX_CANDIDATES}: each one is a "
        "NIM deployment and up to three evaluations, and the blueprint compares a handful.",
    )
    eval_size: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EVAL_SIZE,
        description=f"Records held out for evaluation; at most {MAX_EVAL_SIZE:,}: every record is "
        "an inference (and a judge call) per candidate and evaluation, and a few hundred already "
        "give tight intervals.",
    )
    val_ratio: float | None = Field(
        default=None, gt=0, lt=1, description="Share of the non-eval records used for validation."
    )
    min_total_records: int | None = Field(
        default=None,
        ge=1,
        le=MAX_LIMIT,
        description=f"Fewer usable records fail the run; at most {MAX_LIMIT:,} (it cannot "
        "exceed `limit`).",
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        le=MAX_LIMIT,
        description=f"Most records sampled for one run; at most {MAX_LIMIT:,}: the build holds "
        "the sample in memory and reads up to four times as many from Elasticsearch.",
    )
    random_seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_RANDOM_SEED,
        description="Seed for sampling and splitting; 0 to 2^32-1, the range of the seeds derived "
        "from run ids (Mongo and JSON consumers keep it exactly).",
    )
    icl_max_examples: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ICL_EXAMPLES,
        description=f"Most in-context examples per record; at most {MAX_ICL_EXAMPLES}: more never "
        "fit a context window after the record itself.",
    )
    example_selection: ExampleSelection | None = None
    epochs: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EPOCHS,
        description=f"LoRA training epochs; at most {MAX_EPOCHS}: a LoRA adapter overfits long "
        "before, and each epoch holds GPUs.",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=MAX_BATCH_SIZE,
        description=f"Training batch size; at most {MAX_BATCH_SIZE:,}, beyond any GPU's memory for "
        "the models a flywheel customizes.",
    )
    learning_rate: float | None = Field(
        default=None, gt=0, lt=1, description="Training learning rate."
    )
    adapter_dim: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ADAPTER_DIM,
        description=f"LoRA rank; at most {MAX_ADAPTER_DIM}: beyond that an adapter is no longer "
        "small (typical ranks are 8 to 64).",
    )
    eval_types: tuple[EvalType, ...] | None = Field(default=None, min_length=1)
    min_score_to_recommend: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The workload's threshold: the lower bound of a candidate's 95% interval on "
        "the primary metric must reach it.",
    )
    tool_schema_compat: bool | None = Field(
        default=None, description="See `evaluation.tool_schema_compat`."
    )


# Where each override lands in RunConfig, as a dotted path.
_OVERRIDE_PATHS: dict[str, str] = {
    "candidates": "candidates",
    "eval_size": "split.eval_size",
    "val_ratio": "split.val_ratio",
    "min_total_records": "split.min_total_records",
    "limit": "split.limit",
    "random_seed": "split.random_seed",
    "icl_max_examples": "icl.max_examples",
    "example_selection": "icl.example_selection",
    "epochs": "training.epochs",
    "batch_size": "training.batch_size",
    "learning_rate": "training.learning_rate",
    "adapter_dim": "training.lora.adapter_dim",
    "eval_types": "evaluation.eval_types",
    "min_score_to_recommend": "evaluation.min_score_to_recommend",
    "tool_schema_compat": "evaluation.tool_schema_compat",
}
