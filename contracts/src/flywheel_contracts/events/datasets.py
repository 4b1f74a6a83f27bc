"""Dataset preparation outcomes."""

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from flywheel_contracts.events.baseline import ProductionBaseline
from flywheel_contracts.payload import EventPayload, Part
from flywheel_contracts.primitives import Count, FilesUrl, Identifier, Message
from flywheel_contracts.run_config import RunConfig, WorkloadType
from flywheel_contracts.upcasters import RawPayload, register


class DatasetRef(Part):
    """A dataset registered in NMP's entity store."""

    namespace: Identifier
    name: Identifier
    files_url: FilesUrl = Field(
        description="Where NMP serves the files, `hf://datasets/{ns}/{name}`."
    )


class DatasetRefs(Part):
    """The run's three datasets; the train dataset holds both the train and validation files."""

    eval: DatasetRef = Field(description="Held-out records, for base and customized evaluation.")
    icl: DatasetRef = Field(description="The eval records with in-context examples injected.")
    train: DatasetRef = Field(description="Training and validation files for customization.")


class SplitCounts(Part):
    eval: Count
    icl: Count
    train: Count
    val: Count


class FilterStats(Part):
    """How the logged records were whittled down to the run's sample."""

    fetched: Count = Field(description="Records read from the log store.")
    invalid_format: Count = Field(description="Dropped: not an OpenAI chat completion.")
    unparsable_arguments: Count = Field(description="Dropped: tool-call arguments not JSON.")
    duplicates: Count = Field(description="Dropped: same user messages as an earlier record.")
    selected: Count = Field(description="Kept and split.")
    near_duplicates: Count = Field(
        default=0, description="Dropped: user messages nearly the same as a kept record's."
    )
    no_tool_calls: Count = Field(
        default=0, description="Dropped (tool-calling workloads): no function tool call."
    )
    leaked: Count = Field(
        default=0,
        description="Kept out of train/val/ICL: same conversation as an evaluation record, or "
        "an evaluation query (nearly) among its user messages.",
    )
    pii_redactions: Count = Field(default=0, description="Personal data replaced in the files.")
    rules: dict[str, Count] = Field(
        default_factory=dict,
        description="Records dropped per rule (each counted once, under the first rule it broke).",
    )


class DatasetContext(Part):
    """What a stage needs to work on a run's data; carried by every event that starts work."""

    datasets: DatasetRefs
    workload_type: WorkloadType
    config: RunConfig = Field(description="The run's resolved configuration.")


class DatasetReady(EventPayload):
    """The run's datasets are uploaded and registered in NMP."""

    EVENT_TYPE: ClassVar[str] = "dataset.ready"
    SCHEMA_VERSION: ClassVar[int] = 4

    context: DatasetContext
    counts: SplitCounts
    stats: FilterStats
    baseline: ProductionBaseline | None = Field(
        default=None,
        description="The production model's tokens, latency and volume on the selected records.",
    )


class DatasetFailureReason(StrEnum):
    NOT_ENOUGH_RECORDS = "not_enough_records"
    INVALID_CONFIG = "invalid_config"
    LOG_STORE_UNAVAILABLE = "log_store_unavailable"
    UPLOAD_FAILED = "upload_failed"
    CANCELLED = "cancelled"
    INTERNAL_ERROR = "internal_error"


class DatasetFailed(EventPayload):
    """No dataset could be built for the run."""

    EVENT_TYPE: ClassVar[str] = "dataset.failed"
    SCHEMA_VERSION: ClassVar[int] = 2

    reason: DatasetFailureReason
    message: Message
    stats: FilterStats | None = Field(default=None, description="Filtering so far, if it ran.")


# v2 added optional statistics to FilterStats (near duplicates, per-rule counts, ...): a v1
# payload is a valid v2 one whose new counts take their defaults.
@register(DatasetReady.EVENT_TYPE, from_version=1)
def _dataset_ready_v1_to_v2(payload: RawPayload) -> RawPayload:
    return payload


# v3 added the production baseline: a v2 payload has none.
@register(DatasetReady.EVENT_TYPE, from_version=2)
def _dataset_ready_v2_to_v3(payload: RawPayload) -> RawPayload:
    return payload


@register(DatasetFailed.EVENT_TYPE, from_version=1)
def _dataset_failed_v1_to_v2(payload: RawPayload) -> RawPayload:
    return payload


# v4: external endpoints, split input/output prices and `evaluation.tool_schema_compat` in the run configuration, all optional.
@register(DatasetReady.EVENT_TYPE, from_version=3)
def _dataset_ready_v3_to_v4(payload: RawPayload) -> RawPayload:
    return payload
