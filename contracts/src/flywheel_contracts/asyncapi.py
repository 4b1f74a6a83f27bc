"""The AsyncAPI 3.0 document of the event bus, generated from the topic catalog."""

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from flywheel_contracts.catalog import EVERY_SERVICE, SERVICES, TOPICS, TopicSpec
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import RejectedRecord
from flywheel_contracts.events.records import RAW_FORMAT_HEADER, RawFormat
from flywheel_contracts.examples import EXAMPLES, REJECTED_RECORD
from flywheel_contracts.payload import EventPayload

ASYNCAPI_VERSION = "3.0.0"
_KAFKA_BINDING = "0.5.0"
_SCHEMA_REF = "#/components/schemas/{model}"
_ENVELOPE_FIELDS = tuple(name for name in Envelope.model_fields if name != "payload")

# Raw topics carry no envelope; logs.raw has no model at all, it is whatever applications log.
_RAW_MODELS: dict[str, type[BaseModel]] = {"logs.rejected": RejectedRecord}
_RAW_EXAMPLES: dict[str, BaseModel] = {"logs.rejected": REJECTED_RECORD}
_RAW_LOG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One logged chat completion as the application wrote it. A message with a "
    "`flywheel.format` header holds a real producer's item instead, as ingest's intake received "
    "it (`nat`: a NeMo Agent Toolkit Data Flywheel document; `otlp-span`: one OTLP/JSON span "
    "with its resource and scope; `relay-call`: a NeMo Relay LLM start/end pair), which ingest "
    "turns into such a record when it reads it.",
    "properties": {
        "workload_id": {"type": "string"},
        "client_id": {"type": "string"},
        "timestamp": {"description": "Epoch seconds or ISO 8601."},
        "request": {"type": "object", "description": "The OpenAI chat.completions request."},
        "response": {"type": "object", "description": "The OpenAI chat.completion response."},
    },
}
_RAW_LOG_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        RAW_FORMAT_HEADER: {
            "type": "string",
            "enum": [f.value for f in RawFormat if f is not RawFormat.RECORD],
            "description": "Absent on records; names a producer's item format otherwise.",
        }
    },
}
_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Mirror of the envelope fields; the body is authoritative.",
    "properties": {name: {"type": "string"} for name in _ENVELOPE_FIELDS},
}


def _envelope_model(payload: type[EventPayload]) -> type[BaseModel]:
    # A runtime parametrisation, which mypy cannot follow.
    return Envelope[payload]  # type: ignore[valid-type]


def _message_model(spec: TopicSpec) -> type[BaseModel] | None:
    return _envelope_model(spec.payload) if spec.payload else _RAW_MODELS.get(spec.name)


def _example(spec: TopicSpec) -> BaseModel | None:
    return EXAMPLES[spec.name] if spec.payload else _RAW_EXAMPLES.get(spec.name)


def _summary(spec: TopicSpec) -> str:
    model = spec.payload or _RAW_MODELS.get(spec.name)
    doc = model.__doc__ if model else None
    return doc.strip().splitlines()[0] if doc else "One raw log record per message."


def _participates(spec: TopicSpec, service: str) -> bool:
    return service in spec.consumers or spec.producer in (service, EVERY_SERVICE)


def _message_id(spec: TopicSpec) -> str:
    return spec.name.replace(".", "_")


def _message(spec: TopicSpec, schema: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": spec.name,
        "summary": _summary(spec),
        "contentType": "application/json",
        "payload": schema,
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"Kafka key: {spec.key}"},
                "bindingVersion": _KAFKA_BINDING,
            }
        },
    }
    if spec.payload:
        message["headers"] = _HEADERS_SCHEMA
    elif spec.name == "logs.raw":
        message["headers"] = _RAW_LOG_HEADERS
    example = _example(spec)
    if example is not None:
        message["examples"] = [{"name": "golden", "payload": example.model_dump(mode="json")}]
    return message


def _channel(spec: TopicSpec) -> dict[str, Any]:
    consumers = ", ".join(spec.consumers) or "nobody yet"
    dlq = f" Messages that keep failing go to {spec.name}.dlq." if spec.dlq else ""
    return {
        "address": spec.name,
        "description": f"Produced by {spec.producer}; consumed by {consumers}.{dlq}",
        "messages": {_message_id(spec): {"$ref": f"#/components/messages/{_message_id(spec)}"}},
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "topicConfiguration": {"retention.ms": spec.retention_ms},
                "bindingVersion": _KAFKA_BINDING,
            }
        },
    }


def _operations(spec: TopicSpec, service: str | None) -> dict[str, Any]:
    producers = SERVICES if spec.producer == EVERY_SERVICE else (spec.producer,)
    roles = [(p, "send") for p in producers] + [(c, "receive") for c in spec.consumers]
    return {
        f"{participant}.{action}.{spec.name}": {
            "action": action,
            "channel": {"$ref": f"#/channels/{spec.name}"},
            "messages": [{"$ref": f"#/channels/{spec.name}/messages/{_message_id(spec)}"}],
        }
        for participant, action in roles
        if service is None or participant == service
    }


def asyncapi_document(service: str | None = None) -> dict[str, Any]:
    """The AsyncAPI document of the whole bus, or of the part `service` produces or consumes."""
    specs = [spec for spec in TOPICS if service is None or _participates(spec, service)]
    models = {spec.name: model for spec in specs if (model := _message_model(spec))}
    refs, shared = models_json_schema(
        [(model, "validation") for model in models.values()], ref_template=_SCHEMA_REF
    )
    schemas = {name: refs[(model, "validation")] for name, model in models.items()}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Flywheel events" + (f" of {service}" if service else ""),
            "version": "1.0.0",
            "description": "Generated from flywheel_contracts.catalog. Topic name == event "
            "type; events are JSON envelopes keyed by run_id (the producer outside runs).",
        },
        "defaultContentType": "application/json",
        "channels": {spec.name: _channel(spec) for spec in specs},
        "operations": {
            op_id: op for spec in specs for op_id, op in _operations(spec, service).items()
        },
        "components": {
            "messages": {
                _message_id(spec): _message(spec, schemas.get(spec.name, _RAW_LOG_SCHEMA))
                for spec in specs
            },
            "schemas": shared.get("$defs", {}),
        },
    }
