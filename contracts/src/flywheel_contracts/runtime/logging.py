"""Structured logs: one JSON (or console) line per record, with the event being handled bound.

Everything goes through the standard library's root handler, so uvicorn, librdkafka and pymongo
records come out in the same format as the service's own.
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import structlog
from structlog.typing import Processor

from flywheel_contracts.envelope import Envelope

LogFormat = Literal["json", "console"]

_SHARED_PROCESSORS: tuple[Processor, ...] = (
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)

# Libraries that log every poll or connection at INFO would drown the one line per event.
_QUIET_LOGGERS = ("pymongo", "uvicorn.access", "httpx")


def configure_logging(log_format: LogFormat = "json", level: str = "INFO") -> None:
    """Route structlog and the standard library to stdout in `log_format` at `level`."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    exceptions: tuple[Processor, ...] = (
        (structlog.processors.dict_tracebacks,) if log_format == "json" else ()
    )
    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=list(_SHARED_PROCESSORS),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *exceptions,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def event_fields(envelope: Envelope[Any]) -> dict[str, str]:
    """The ids every log line about `envelope` carries."""
    return {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "correlation_id": str(envelope.correlation_id),
        "run_id": str(envelope.run_id) if envelope.run_id is not None else "",
    }


@contextmanager
def bound_fields(**fields: object) -> Iterator[None]:
    """Bind `fields` to every log line written in this context (task-local, so concurrent
    handlers do not see each other's ids)."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield
