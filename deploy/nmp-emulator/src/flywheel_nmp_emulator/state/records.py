"""The persisted records. Times are wall-clock epoch seconds so they stay valid across restarts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

DeploymentStatus = Literal["pending", "ready", "failed"]
CustomizationStatus = Literal["created", "pending", "running", "completed", "failed", "cancelled"]
EvaluationStatus = Literal["created", "running", "completed", "failed", "cancelled"]
TimelineKind = Literal["deployment", "customization", "evaluation"]


class Namespace(BaseModel):
    id: str
    created_at: float
    # Entity Store metadata (SDK Namespace); the Data Store's namespaces leave them empty.
    description: str | None = None
    project: str | None = None
    custom_fields: dict[str, Any] | None = None
    ownership: dict[str, Any] | None = None


class RepoFile(BaseModel):
    size: int
    sha256: str


class Repo(BaseModel):
    """A Hugging Face style dataset repo in the Data Store. File bodies live in the blob store."""

    namespace: str
    name: str
    created_at: float
    files: dict[str, RepoFile] = Field(default_factory=dict)
    commits: int = 0


class Dataset(BaseModel):
    """An Entity Store dataset registration (points at a repo through files_url)."""

    # Empty in state written before ids existed; views then derive one from namespace/name.
    id: str = ""
    name: str
    namespace: str
    files_url: str = ""
    description: str = ""
    project: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    updated_at: float


class Deployment(BaseModel):
    name: str
    namespace: str
    model: str
    gpus: int
    config: dict[str, Any]
    status: DeploymentStatus = "pending"
    description: str = ""
    # What the request sent beside name/namespace/config (SDK fields echoed by every view).
    echo: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    gpus_granted_at: float | None = None
    ready_at: float | None = None


class CustomizationConfig(BaseModel):
    name: str
    namespace: str
    target: str
    body: dict[str, Any]
    created_at: float


class StatusLog(BaseModel):
    updated_at: float
    message: str
    detail: str = ""


class LossPoint(BaseModel):
    step: int
    epoch: float
    value: float
    at: float


class RealTraining(BaseModel):
    """A job trained for real (real/training/): its capped plan and what the trainer reported."""

    phase: Literal["training", "converting"] = "training"
    total_steps: int
    steps_per_epoch: int
    batch_size: int
    steps_done: int = 0
    losses: list[LossPoint] = Field(default_factory=list)
    seconds_per_step: float | None = None
    loaded: bool = False
    converting_since: float | None = None

    @property
    def epochs_done(self) -> float:
        return self.steps_done / self.steps_per_epoch if self.steps_per_epoch else 0.0


class CustomizationJob(BaseModel):
    id: str
    name: str
    namespace: str
    config: str
    base_model: str
    output_model: str
    dataset_namespace: str
    dataset_name: str
    hyperparameters: dict[str, Any]
    gpus: int
    epochs: int
    status: CustomizationStatus = "created"
    status_logs: list[StatusLog] = Field(default_factory=list)
    # The request's config and dataset as sent, plus its optional SDK fields, echoed in views.
    echo: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    # Known once training starts: it reads the training file to count records.
    train_records: int = 0
    steps_per_epoch: int = 0
    planned_seconds: float = 0.0
    # Set when the job trains for real; None = the heuristic trainer's timed progress.
    real: RealTraining | None = None


class CustomizedModel(BaseModel):
    """An Entity Store model produced by a customization job (a LoRA adapter on a base model)."""

    id: str
    namespace: str
    name: str
    base_model: str
    job_id: str
    created_at: float
    # Set when training completed; the NIM proxy lists the model once the sync delay has passed.
    adapter_key: str | None = None
    trained_at: float | None = None
    # A real LoRA adapter (GGUF) for the real backend, set by a real trainer through
    # real/adapters.py; None = the heuristic adapter answers for this model.
    lora_gguf: str | None = None


class EvaluationJob(BaseModel):
    id: str
    namespace: str
    config: dict[str, Any]
    target: dict[str, Any]
    status: EvaluationStatus = "created"
    progress: float = 0.0
    message: str = ""
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    records: int = 0
    results: dict[str, Any] | None = None
    result_id: str | None = None
    # Optional SDK fields of the request (description, project, ...), echoed in views.
    echo: dict[str, Any] = Field(default_factory=dict)


class GpuRequest(BaseModel):
    holder: str
    gpus: int
    since: float


class GpuLedger(BaseModel):
    """Who holds GPUs, and who waits for them in arrival order."""

    holders: dict[str, int] = Field(default_factory=dict)
    queue: list[GpuRequest] = Field(default_factory=list)


class TimelineEvent(BaseModel):
    at: float
    kind: TimelineKind
    id: str
    event: str
    detail: str = ""


class EmulatorState(BaseModel):
    namespaces: dict[str, Namespace] = Field(default_factory=dict)
    datastore_namespaces: dict[str, Namespace] = Field(default_factory=dict)
    repos: dict[str, Repo] = Field(default_factory=dict)
    datasets: dict[str, Dataset] = Field(default_factory=dict)
    deployments: dict[str, Deployment] = Field(default_factory=dict)
    customization_configs: dict[str, CustomizationConfig] = Field(default_factory=dict)
    customization_jobs: dict[str, CustomizationJob] = Field(default_factory=dict)
    models: dict[str, CustomizedModel] = Field(default_factory=dict)
    evaluation_jobs: dict[str, EvaluationJob] = Field(default_factory=dict)
    # Stored evaluation configs and targets ("ns/name" -> the entity as NMP answers it).
    evaluation_configs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    evaluation_targets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    gpu: GpuLedger = Field(default_factory=GpuLedger)
    timeline: list[TimelineEvent] = Field(default_factory=list)
