"""What the client reads back from NMP.

Only the fields callers rely on are declared; everything else NMP sends is kept (extra="allow")
so a newer NMP with more fields still parses, and a missing declared field fails loudly.
"""

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class NmpModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class NmpObject(NmpModel):
    """A JSON object nobody reads field by field (e.g. a deletion receipt); extras hold it all."""


@dataclass(frozen=True)
class Created:
    """A create call succeeded and its body is not needed."""

    status_code: int


@dataclass(frozen=True)
class AlreadyExists:
    """A create call found the resource already there: success for an idempotent caller."""

    status_code: int
    detail: str


# --- Entity Store ---------------------------------------------------------------------------


class DatasetEntity(NmpModel):
    name: str | None = None
    namespace: str | None = None
    files_url: str


class ModelEntity(NmpModel):
    name: str | None = None
    namespace: str | None = None


# --- Data Store (HF-compatible) -------------------------------------------------------------


class PreuploadFile(NmpModel):
    path: str
    upload_mode: str = Field(alias="uploadMode")
    should_ignore: bool = Field(False, alias="shouldIgnore")


class PreuploadResponse(NmpModel):
    files: list[PreuploadFile]


class CommitInfo(NmpModel):
    # NMP's Data Store answers an empty commitUrl (it has no web UI to link to).
    commit_url: str = Field("", alias="commitUrl")
    commit_oid: str = Field(alias="commitOid")


# --- Customizer -----------------------------------------------------------------------------


class CustomizationJob(NmpModel):
    """NMP's job object. It has no ``name``: the SDK's type has none and NMP does not echo it,
    so a job is recognised by what it does echo (``custom_fields``, ``namespace``)."""

    id: str
    output_model: str | None = Field(
        None,
        description="The customized model id (``...@cust-<id>``); NMP omits it for a job "
        "created without one (only artifact files are written).",
    )
    namespace: str | None = None
    status: str | None = None
    custom_fields: dict[str, object] | None = None


class StatusLog(NmpModel):
    detail: str | None = None
    message: str | None = None


class CustomizationStatus(NmpModel):
    status: str
    percentage_done: float | None = None
    epochs_completed: int | None = None
    steps_completed: int | None = None
    status_logs: list[StatusLog] = Field(default_factory=list)

    @property
    def error_detail(self) -> str | None:
        """The last non-empty log detail: NMP's explanation of a failed job."""
        return next((log.detail for log in reversed(self.status_logs) if log.detail), None)

    @property
    def waiting_for_resources(self) -> bool:
        """True when the last log says the cluster has no GPUs for this job yet."""
        return bool(self.status_logs) and self.status_logs[-1].message == "NotEnoughResources"


# --- Evaluator ------------------------------------------------------------------------------


class EvaluationJob(NmpModel):
    id: str
    namespace: str | None = None
    status: str | None = None
    custom_fields: dict[str, object] | None = None


class EvaluationStatusDetails(NmpModel):
    progress: float | None = None


class EvaluationStatus(NmpModel):
    status: str
    status_details: EvaluationStatusDetails | None = None

    @property
    def progress(self) -> float:
        """0-100; NMP reports null before the first sample is scored."""
        details = self.status_details
        return details.progress if details and details.progress is not None else 0.0


class Score(NmpModel):
    value: float


class MetricResult(NmpModel):
    scores: dict[str, Score] = Field(default_factory=dict)


class TaskResult(NmpModel):
    metrics: dict[str, MetricResult] = Field(default_factory=dict)


class EvaluationResults(NmpModel):
    tasks: dict[str, TaskResult]

    def score(self, task: str, metric: str, score: str) -> float:
        """``tasks[task].metrics[metric].scores[score].value``; KeyError names what is missing."""
        try:
            return self.tasks[task].metrics[metric].scores[score].value
        except KeyError as exc:
            raise KeyError(f"no score {task}/{metric}/{score} in the results") from exc


# --- Deployment Management ------------------------------------------------------------------


class DeploymentStatusDetails(NmpModel):
    status: str


class Deployment(NmpModel):
    name: str | None = None
    namespace: str | None = None
    status_details: DeploymentStatusDetails

    @property
    def status(self) -> str:
        return self.status_details.status


# --- NIM proxy ------------------------------------------------------------------------------


class ModelCard(NmpModel):
    id: str


class ModelList(NmpModel):
    data: list[ModelCard]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(card.id for card in self.data)


class Embedding(NmpModel):
    embedding: list[float]


class EmbeddingList(NmpModel):
    data: list[Embedding]


class ChatMessage(NmpModel):
    role: str
    content: str | None = None
    tool_calls: list[dict[str, object]] | None = None


class ChatChoice(NmpModel):
    message: ChatMessage


class Usage(NmpModel):
    """Token counts. OpenAI-compatible servers add objects such as ``prompt_tokens_details``
    (or null); those are kept as extras, never refused."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ChatCompletion(NmpModel):
    choices: list[ChatChoice]
    usage: Usage | None = None
