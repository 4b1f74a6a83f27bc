"""Scoped intake tokens: any configured token admits a request; a scoped token's lines carry
its name (never its secret) to ingest, which refuses the records of other clients as
`client_not_allowed` while the request's other lines go through."""

from __future__ import annotations

import json
from typing import Any, cast

import orjson
import pytest
from confluent_kafka import Message
from prometheus_client import REGISTRY
from pydantic import SecretStr
from structlog.testing import capture_logs

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.traffic import TrafficConfig, generate_lines
from flywheel_ingest.auth import Grant, authenticate
from flywheel_ingest.clients.kafka_source import _line
from flywheel_ingest.clients.raw_topic import KafkaRawTopic
from flywheel_ingest.config import IntakeSettings, PiiSettings, RetrySettings, ScopedToken
from flywheel_ingest.documents import RawLine
from flywheel_ingest.endpoints import bulk
from flywheel_ingest.handlers import intake_router
from flywheel_ingest.pii import Redactor
from flywheel_ingest.producers import Format
from flywheel_ingest.scope import TOKEN_HEADER, scope_refusal
from flywheel_ingest.service import IngestService
from flywheel_ingest.testing import FakeRawTopic, intake_client

pytestmark = pytest.mark.unit

GLOBAL_SECRET = "global-s3cret-0123"
ACME_SECRET = "acme-s3cret-4567"
ANY_SECRET = "any-s3cret-89ab"
TOKENS = {
    "acme": ScopedToken(token=SecretStr(ACME_SECRET), clients=frozenset({"acme", "acme-eu"})),
    "ops": ScopedToken(token=SecretStr(ANY_SECRET), clients=frozenset({"*"})),
}
SETTINGS = IntakeSettings(token=SecretStr(GLOBAL_SECRET), tokens=TOKENS)
SECRETS = (GLOBAL_SECRET, ACME_SECRET, ANY_SECRET)


def _records(*clients: str) -> list[bytes]:
    """One valid record per client, each otherwise different (distinct ids)."""
    lines = generate_lines(len(clients), 3, TrafficConfig(workloads=("order-tools",)))
    return [
        orjson.dumps({**json.loads(line), "client_id": client})
        for line, client in zip(lines, clients, strict=True)
    ]


def _bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


# -- the decision -----------------------------------------------------------------------------


def test_lines_without_a_token_name_are_trusted_as_before() -> None:
    assert scope_refusal("anyone", None, TOKENS) is None


def test_a_scoped_token_may_write_its_clients_only() -> None:
    assert scope_refusal("acme-eu", "acme", TOKENS) is None
    refusal = scope_refusal("globex", "acme", TOKENS)
    assert refusal is not None and refusal.reason is RejectReason.CLIENT_NOT_ALLOWED
    assert refusal.message == "client_id 'globex' is outside the clients of intake token 'acme'"


def test_a_token_scoped_to_star_may_write_every_client() -> None:
    assert scope_refusal("globex", "ops", TOKENS) is None


def test_a_token_no_longer_configured_may_write_nothing() -> None:
    refusal = scope_refusal("acme", "retired", TOKENS)
    assert refusal is not None and refusal.reason is RejectReason.CLIENT_NOT_ALLOWED


@pytest.mark.parametrize(
    ("secret", "grant"),
    [(GLOBAL_SECRET, Grant()), (ACME_SECRET, Grant("acme")), (ANY_SECRET, Grant("ops"))],
)
def test_any_configured_token_authenticates_with_its_own_scope(secret: str, grant: Grant) -> None:
    assert authenticate(f"Bearer {secret}", SETTINGS) == grant
    assert authenticate(f"ApiKey {secret}", SETTINGS) == grant


@pytest.mark.parametrize("header", [None, "", "Bearer ", "Bearer acme", f"Bearer {ACME_SECRET}x"])
def test_a_request_without_a_configured_token_is_not_authenticated(header: str | None) -> None:
    assert authenticate(header, SETTINGS) is None


def test_scoped_tokens_alone_close_the_intake() -> None:
    scoped_only = IntakeSettings(tokens=TOKENS)
    assert authenticate(None, scoped_only) is None
    assert authenticate(f"Bearer {ACME_SECRET}", scoped_only) == Grant("acme")
    assert authenticate(None, IntakeSettings()) == Grant()  # nothing configured: open


# -- the intake: the name goes with the lines --------------------------------------------------


async def test_v1_logs_lines_carry_the_scoped_tokens_name_and_the_global_token_none() -> None:
    topic = FakeRawTopic()
    async with intake_client(intake_router, topic, token=GLOBAL_SECRET, tokens=TOKENS) as http:
        scoped = await http.post("/v1/logs", content=b"{}\n{}", headers=_bearer(ACME_SECRET))
        unscoped = await http.post("/v1/logs", content=b"{}", headers=_bearer(GLOBAL_SECRET))
    assert (scoped.status_code, unscoped.status_code) == (202, 202)
    assert topic.tokens == ["acme", None]


async def test_bulk_documents_of_other_clients_are_refused_per_item_and_still_forwarded() -> None:
    topic = FakeRawTopic()
    acme, globex = _records("acme", "globex")
    body = b'{"index":{}}\n' + acme + b'\n{"index":{}}\n' + globex + b"\n"
    async with intake_client(
        bulk.router, topic, max_body_bytes=65536, max_line_bytes=16384, tokens=TOKENS
    ) as http:
        response = await http.post(
            "/_bulk",
            content=body,
            headers={**_bearer(ACME_SECRET), "content-type": "application/x-ndjson"},
        )
    items = [item["index"] for item in response.json()["items"]]
    assert [item["status"] for item in items] == [201, 400]
    assert items[1]["error"]["reason"].startswith("client_not_allowed: client_id 'globex'")
    # Forwarded all the same, so that logs.rejected keeps the refused one with its reason.
    assert topic.sent == [([acme, globex], None, Format.NAT)]
    assert topic.tokens == ["acme"]
    assert not any(secret in response.text for secret in SECRETS)


async def test_kafka_lines_name_the_token_in_a_header_and_never_carry_a_secret() -> None:
    sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []

    class Publisher:
        async def send(
            self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
        ) -> None:
            sent.append((topic, value, key, headers))

    raw_topic = KafkaRawTopic(cast(Any, Publisher()), "logs.raw")
    await raw_topic.put([b"{}"], None, Format.OTLP_SPAN, token="acme")
    await raw_topic.put([b"{}"], None)
    assert [headers for *_, headers in sent] == [
        [("flywheel.format", b"otlp-span"), (TOKEN_HEADER, b"acme")],
        [],
    ]


class _Message:
    """The few methods of a confluent_kafka Message that the source reads."""

    def __init__(self, headers: list[tuple[str, bytes]] | None) -> None:
        self._headers = headers

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "logs.raw"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7

    def value(self) -> bytes:
        return b"{}"

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


def test_the_source_reads_the_token_name_and_the_format_from_the_headers() -> None:
    line = _line(cast(Message, _Message([("flywheel.format", b"nat"), (TOKEN_HEADER, b"acme")])))
    assert line is not None and (line.format, line.token) == ("nat", "acme")
    shipped = _line(cast(Message, _Message(None)))
    assert shipped is not None and (shipped.format, shipped.token) == ("record", None)


# -- ingest: the record's client is checked when the line is read ------------------------------


def _service(store: Any, outbox: Any, sleep: Any) -> IngestService:
    return IngestService(
        store,
        outbox,
        Redactor(PiiSettings()),
        max_line_bytes=262_144,
        retry=RetrySettings(backoff_initial_s=0.2, backoff_max_s=1.0),
        tokens=TOKENS,
        sleep=sleep,
    )


async def test_records_outside_the_tokens_clients_end_on_logs_rejected_the_others_stored(
    store: Any, outbox: Any, sleep: Any
) -> None:
    acme, globex, acme_eu = _records("acme", "globex", "acme-eu")
    lines = [
        RawLine(acme, "logs.raw", 0, 0, token="acme"),
        RawLine(globex, "logs.raw", 0, 1, token="acme"),
        RawLine(acme_eu, "logs.raw", 0, 2, token="acme"),
        RawLine(globex, "logs.raw", 0, 3, token="ops"),
        RawLine(globex, "logs.raw", 0, 4),  # the shipper's: no header, trusted
    ]
    before = REGISTRY.get_sample_value(
        "flywheel_ingest_rejected_total", {"reason": "client_not_allowed"}
    )
    service = _service(store, outbox, sleep)
    with capture_logs() as logs:
        delivered = await service.deliver(service.prepare(lines))
    (rejection,) = outbox.rejected
    assert rejection.reason is RejectReason.CLIENT_NOT_ALLOWED
    assert rejection.source.offset == 1
    assert (delivered.created + delivered.duplicates, delivered.rejected) == (4, 1)
    after = REGISTRY.get_sample_value(
        "flywheel_ingest_rejected_total", {"reason": "client_not_allowed"}
    )
    assert (after or 0) - (before or 0) == 1
    written = rejection.model_dump_json() + repr(logs)
    assert not any(secret in written for secret in SECRETS)


async def test_producer_items_outside_the_scope_are_refused_in_the_answer_too() -> None:
    topic = FakeRawTopic()
    (globex,) = _records("globex")
    async with intake_client(
        bulk.router, topic, max_body_bytes=65536, max_line_bytes=16384, tokens=TOKENS
    ) as http:
        response = await http.post("/flywheel/_doc", content=globex, headers=_bearer(ACME_SECRET))
    assert response.status_code == 400
    assert response.json()["error"]["reason"].startswith("client_not_allowed: client_id 'globex'")


async def test_secrets_appear_in_no_answer_header_or_log() -> None:
    topic = FakeRawTopic()
    with capture_logs() as logs:
        async with intake_client(intake_router, topic, tokens=TOKENS) as http:
            answers = [
                await http.post("/v1/logs", content=b"{}", headers=_bearer(ACME_SECRET)),
                await http.post("/v1/logs", content=b"{}", headers=_bearer(ACME_SECRET + "x")),
            ]
    assert [answer.status_code for answer in answers] == [202, 401]
    shown = repr(logs) + repr(topic.sent) + repr(topic.tokens) + repr(SETTINGS)
    shown += "".join(answer.text + repr(answer.headers) for answer in answers)
    assert not any(secret in shown for secret in SECRETS)
