"""Constrained field types shared by the payloads: bounded strings, counts, UTC timestamps."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""A timezone-aware timestamp, normalised to UTC; naive datetimes are refused."""

Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0)]
Percent = Annotated[float, Field(ge=0, le=100)]

_NMP_TEXT = StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.:@/+-]+$")

Identifier = Annotated[str, _NMP_TEXT]
"""An id or name from applications or NMP: workload_id, client_id, job ids, namespaces,
deployment and dataset names."""

ModelName = Annotated[str, _NMP_TEXT]
"""A model name as NMP knows it, e.g. `meta/llama-3.2-1b-instruct` or a customized model id."""

ServiceName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
]
"""A participant name, e.g. `nim-manager` or `cli`."""

Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""A short free-text label (instance name, stage)."""

MESSAGE_MAX = 4000
Message = Annotated[str, StringConstraints(min_length=1, max_length=MESSAGE_MAX)]
"""A human-readable explanation (error or reason)."""

HttpUrl = Annotated[
    str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$")
]
"""An http(s) URL kept as text, so it serialises byte-for-byte as given."""

FilesUrl = Annotated[
    str, StringConstraints(min_length=1, max_length=2048, pattern=r"^[a-z][a-z0-9+.-]*://[^\s]+$")
]
"""A data location such as NMP's `hf://datasets/{namespace}/{name}`."""
