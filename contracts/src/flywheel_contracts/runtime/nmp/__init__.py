"""Async client for the NeMo Microservices Platform HTTP API (shared/reference/nmp-contract.md)."""

from .client import NmpClient
from .errors import (
    NmpConflict,
    NmpError,
    NmpNotFound,
    NmpProtocolError,
    NmpRequestRejected,
    NmpRetryableError,
    NmpUnauthorized,
)
from .models import (
    AlreadyExists,
    ChatCompletion,
    CommitInfo,
    Created,
    CustomizationJob,
    CustomizationStatus,
    DatasetEntity,
    Deployment,
    EvaluationJob,
    EvaluationResults,
    EvaluationStatus,
    ModelEntity,
    ModelList,
    NmpObject,
)
from .settings import NmpSettings
from .specs import CustomizationConfigSpec, Hyperparameters, LoraParams, NimDeploymentSpec

__all__ = [
    "AlreadyExists",
    "ChatCompletion",
    "CommitInfo",
    "Created",
    "CustomizationConfigSpec",
    "CustomizationJob",
    "CustomizationStatus",
    "DatasetEntity",
    "Deployment",
    "EvaluationJob",
    "EvaluationResults",
    "EvaluationStatus",
    "Hyperparameters",
    "LoraParams",
    "ModelEntity",
    "ModelList",
    "NimDeploymentSpec",
    "NmpClient",
    "NmpConflict",
    "NmpError",
    "NmpNotFound",
    "NmpObject",
    "NmpProtocolError",
    "NmpRequestRejected",
    "NmpRetryableError",
    "NmpSettings",
    "NmpUnauthorized",
]
