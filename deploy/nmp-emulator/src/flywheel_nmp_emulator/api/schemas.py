"""Request pieces shared by the NMP routers, shaped after the official SDK's TypedDict params
(nemo-microservices 1.5.0, ``types/**/*_params.py``)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict

from flywheel_nmp_emulator.ids import iso

# The SDK: "namespace ... can be missing ... in deployments that don't use namespaces";
# NMP then files the entity under "default" (not under any configured namespace).
DEFAULT_NAMESPACE = "default"


class StrictBody(BaseModel):
    """A request body: NMP (FastAPI, extra="forbid") refuses fields it does not know with 422."""

    model_config = ConfigDict(extra="forbid")


class Ownership(StrictBody):
    """SDK ``shared_params.Ownership``."""

    access_policies: dict[str, str] | None = None
    created_by: str | None = None
    updated_by: str | None = None


class WandBIntegration(StrictBody):
    """SDK ``customization.WandBIntegrationParam`` (its inner data is passed through)."""

    type: Literal["wandb"] = "wandb"
    wandb: dict[str, Any]


def split_ref(ref: str, what: str) -> tuple[str, str]:
    """'ns/name' -> (ns, name); anything else is a malformed reference (422)."""
    namespace, slash, name = ref.partition("/")
    if not slash or not namespace or not name:
        raise HTTPException(
            status_code=422, detail=f"{what} must be a 'namespace/name' reference, got {ref!r}"
        )
    return namespace, name


def delete_response(ident: str, now: float, what: str) -> dict[str, Any]:
    """SDK ``shared.DeleteResponse``: id, deleted_at, message."""
    return {"id": ident, "deleted_at": iso(now), "message": f"{what} deleted"}


def dump_optional(body: BaseModel, fields: tuple[str, ...]) -> dict[str, Any]:
    """The optional fields the request set, as JSON values, for views to echo back."""
    return {
        name: body.model_dump(mode="json", include={name})[name]
        for name in fields
        if getattr(body, name) is not None
    }
