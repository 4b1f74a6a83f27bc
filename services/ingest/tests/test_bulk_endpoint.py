"""The Elasticsearch-compatible endpoints: the bulk protocol's parsing and answers, and the
endpoints through FastAPI with a fake source topic."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import httpx
import orjson
import pytest

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.traffic import generate_lines
from flywheel_ingest.config import IntakeSettings
from flywheel_ingest.documents import canonical_json, document_id
from flywheel_ingest.endpoints import bulk
from flywheel_ingest.intake import LogIntake
from flywheel_ingest.producers import Format, es_bulk
from flywheel_ingest.producers.es_bulk import Action, BulkError
from flywheel_ingest.producers.translate import verdict
from flywheel_ingest.testing import FakeRawTopic, intake_client
from flywheel_ingest.validation import LogRecord, Refusal

pytestmark = pytest.mark.unit

NAT_BULK = Path(__file__).parent / "fixtures" / "producers" / "nat" / "bulk-1.ndjson"
RECORDS = [line.encode() for line in generate_lines(3, seed=11)]
COMPATIBLE = "application/vnd.elasticsearch+json; compatible-with=8"
NDJSON_8 = "application/vnd.elasticsearch+x-ndjson; compatible-with=8"


def ndjson(*lines: object) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
    )


def stored_id(line: bytes) -> str:
    outcome = verdict(
        line, Format.NAT, LogIntake(FakeRawTopic(), IntakeSettings()).producers, 10**6
    )
    assert isinstance(outcome, LogRecord), outcome
    return document_id(canonical_json(outcome.fields))


# -- the protocol, pure -----------------------------------------------------------------------


def test_actions_keep_their_verb_index_id_and_document_line_as_sent() -> None:
    body = ndjson(
        {"index": {"_index": "logs", "_id": "a"}},
        RECORDS[0],
        {"create": {}},
        b'{"not": "checked here"}',
        {"delete": {"_id": 7}},
        {"update": {"_index": "x", "_id": "u"}},
        {"doc": {}},
    )
    assert es_bulk.parse_bulk(body, "from-path") == [
        Action("index", "logs", "a", RECORDS[0]),
        Action("create", "from-path", None, b'{"not": "checked here"}'),
        Action("delete", "from-path", "7", None),
        Action("update", "x", "u", b'{"doc":{}}'),
    ]


def test_without_an_index_anywhere_flywheels_is_named() -> None:
    (action,) = es_bulk.parse_bulk(ndjson({"index": {}}, RECORDS[0]), None)
    assert action.index == es_bulk.DEFAULT_INDEX == "flywheel"


def test_blank_lines_and_crlf_are_tolerated_and_no_final_newline_is_needed() -> None:
    body = b'\r\n{"index":{}}\r\n\r\n' + RECORDS[0] + b"\r\n\n" + b'{"create":{}}\n' + RECORDS[1]
    actions = es_bulk.parse_bulk(body, None)
    assert [a.source for a in actions] == [RECORDS[0], RECORDS[1]]


@pytest.mark.parametrize(
    ("body", "error_type", "reason"),
    [
        (
            b'{"index": {}}\n{}\n{"index": \n',
            "x_content_parse_exception",
            "Malformed action/metadata line [3]: not JSON",
        ),
        (
            b'{"upsert": {}}\n{}\n',
            "illegal_argument_exception",
            "Malformed action/metadata line [1], expected one of [create, delete, index, update] "
            "but found [upsert]",
        ),
        (
            b'{"index": {}, "create": {}}\n{}\n',
            "illegal_argument_exception",
            "Malformed action/metadata line [1], expected one of [create, delete, index, update] "
            "as its only key",
        ),
        (
            b'{"index": "logs"}\n{}\n',
            "illegal_argument_exception",
            "the index action's metadata must be an object",
        ),
        (
            b'{"index": {}}\n{}\n{"create": {}}\n',
            "illegal_argument_exception",
            "The bulk request's create action on line [3] has no document line",
        ),
        (
            b"\n \n",
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        ),
    ],
)
def test_a_malformed_action_line_fails_the_whole_request(
    body: bytes, error_type: str, reason: str
) -> None:
    with pytest.raises(BulkError) as failed:
        es_bulk.parse_bulk(body, None)
    assert failed.value.status == 400
    assert failed.value.error_type == error_type
    assert reason in failed.value.reason
    assert failed.value.body() == {
        "error": {
            "root_cause": [{"type": error_type, "reason": failed.value.reason}],
            "type": error_type,
            "reason": failed.value.reason,
        },
        "status": 400,
    }


def test_the_answer_has_one_item_per_action_in_order_with_the_stored_id() -> None:
    actions = es_bulk.parse_bulk(
        ndjson(
            {"index": {"_index": "a"}}, RECORDS[0], {"delete": {"_id": "d"}}, {"create": {}}, b"{"
        ),
        "p",
    )
    accepted = verdict(
        RECORDS[0], Format.NAT, LogIntake(FakeRawTopic(), IntakeSettings()).producers, 10**6
    )
    assert isinstance(accepted, LogRecord)
    refused = Refusal(RejectReason.INVALID_JSON, "not valid JSON: unexpected end")
    answer = es_bulk.bulk_answer(actions, [accepted, refused], took_ms=3)
    assert answer == {
        "took": 3,
        "errors": True,
        "items": [
            {
                "index": {
                    "_index": "a",
                    "_id": document_id(canonical_json(accepted.fields)),
                    "_version": 1,
                    "result": "created",
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": 0,
                    "_primary_term": 1,
                    "status": 201,
                }
            },
            {
                "delete": {
                    "_index": "p",
                    "_id": "d",
                    "status": 400,
                    "error": {
                        "type": "illegal_argument_exception",
                        "reason": "delete is not supported: Flywheel keeps every record it is "
                        "sent and changes none (index or create only)",
                    },
                }
            },
            {
                "create": {
                    "_index": "p",
                    "_id": None,
                    "status": 400,
                    "error": {
                        "type": "flywheel_rejection",
                        "reason": "invalid_json: not valid JSON: unexpected end",
                    },
                }
            },
        ],
    }


def test_an_answer_without_refusals_says_no_errors() -> None:
    actions = es_bulk.parse_bulk(ndjson({"index": {}}, RECORDS[0]), None)
    accepted = verdict(
        RECORDS[0], Format.NAT, LogIntake(FakeRawTopic(), IntakeSettings()).producers, 10**6
    )
    assert es_bulk.bulk_answer(actions, [accepted], took_ms=0)["errors"] is False


def test_gzip_bodies_are_decompressed_members_and_all() -> None:
    body = gzip.compress(b"first\n") + gzip.compress(b"second\n")
    assert es_bulk.decode_body(body, "gzip", 1024) == b"first\nsecond\n"
    assert es_bulk.decode_body(b"plain", None, 1024) == b"plain"


@pytest.mark.parametrize(
    ("body", "encoding", "status", "reason"),
    [
        (gzip.compress(b"x" * 5000), "gzip", 413, "the decompressed body exceeds 4096 bytes"),
        (b"y" * 4097, None, 413, "the body exceeds 4096 bytes"),
        (gzip.compress(b"{}")[:-6], "gzip", 400, "the gzip body is truncated"),
        (b"not gzip", "gzip", 400, "the gzip body cannot be decompressed"),
        (b"{}", "br", 415, "Content-Encoding 'br' is not read here"),
    ],
)
def test_bodies_are_bounded_before_and_after_decompression(
    body: bytes, encoding: str | None, status: int, reason: str
) -> None:
    with pytest.raises(BulkError) as failed:
        es_bulk.decode_body(body, encoding, 4096)
    assert failed.value.status == status
    assert failed.value.reason.startswith(reason)


def test_elasticsearch_media_types_are_read_and_others_refused() -> None:
    for kind in (None, "application/x-ndjson", "application/vnd.elasticsearch+x-ndjson"):
        es_bulk.check_media_type(kind)
    with pytest.raises(BulkError) as failed:
        es_bulk.check_media_type("text/csv")
    assert (failed.value.status, failed.value.error_type) == (415, "media_type_header_exception")


def test_the_answer_is_compatible_json_when_the_client_asks_for_it() -> None:
    assert es_bulk.answer_type(COMPATIBLE) == COMPATIBLE
    assert es_bulk.answer_type("application/json") == "application/json"
    assert es_bulk.answer_type(None) == "application/json"


def test_the_cluster_announces_an_elasticsearch_8_version() -> None:
    info = es_bulk.cluster_info()
    assert info["version"]["number"].startswith("8.")
    assert info["tagline"] == "You Know, for Search"


# -- the endpoints, through FastAPI ---------------------------------------------------------


def client(topic: FakeRawTopic, token: str | None = None) -> httpx.AsyncClient:
    return intake_client(
        bulk.router, topic, max_body_bytes=65536, max_line_bytes=16384, token=token
    )


def assert_elasticsearch(response: httpx.Response) -> None:
    assert response.headers["x-elastic-product"] == "Elasticsearch"
    assert response.headers["content-type"].startswith(("application/json", COMPATIBLE))


async def test_a_bulk_request_is_answered_per_item_and_every_document_forwarded() -> None:
    topic = FakeRawTopic()
    nat_document = NAT_BULK.read_bytes().split(b"\n")[1]
    body = ndjson(
        {"index": {"_index": "flywheel"}},
        RECORDS[0],
        {"create": {"_index": "flywheel", "_id": "mine"}},
        nat_document,
        {"index": {}},
        b'{"workload_id": "w"',
        {"delete": {"_id": "x"}},
    )
    async with client(topic) as http:
        response = await http.post(
            "/_bulk?routing=app-1",
            content=body,
            headers={"content-type": NDJSON_8, "accept": COMPATIBLE},
        )
    assert response.status_code == 200
    assert_elasticsearch(response)
    assert response.headers["content-type"] == COMPATIBLE
    answer = response.json()
    assert answer["errors"] is True
    items = [
        (verb, item["status"], item["_id"])
        for entry in answer["items"]
        for verb, item in entry.items()
    ]
    assert items == [
        ("index", 201, stored_id(RECORDS[0])),
        ("create", *_nat_status(nat_document)),
        ("index", 400, None),
        ("delete", 400, "x"),
    ]
    assert answer["items"][2]["index"]["error"]["reason"].startswith("invalid_json: not valid JSON")
    assert topic.sent == [
        ([RECORDS[0], nat_document, b'{"workload_id": "w"'], b"app-1", Format.NAT)
    ]


def _nat_status(document: bytes) -> tuple[int, str | None]:
    outcome = verdict(
        document, Format.NAT, LogIntake(FakeRawTopic(), IntakeSettings()).producers, 10**6
    )
    if isinstance(outcome, LogRecord):
        return 201, document_id(canonical_json(outcome.fields))
    return 400, "mine"


async def test_an_index_in_the_path_is_echoed_and_put_works_like_post() -> None:
    topic = FakeRawTopic()
    async with client(topic) as http:
        response = await http.put("/nat-logs/_bulk", content=ndjson({"index": {}}, RECORDS[1]))
    assert response.status_code == 200
    (item,) = response.json()["items"]
    assert item["index"]["_index"] == "nat-logs"
    assert item["index"]["status"] == 201
    assert response.headers["content-type"] == "application/json"


async def test_a_malformed_action_line_answers_400_and_forwards_nothing() -> None:
    topic = FakeRawTopic()
    async with client(topic) as http:
        response = await http.post(
            "/_bulk", content=ndjson({"index": {}}, RECORDS[0]) + b"oops\n{}\n"
        )
    assert response.status_code == 400
    assert_elasticsearch(response)
    assert response.json()["error"]["type"] == "x_content_parse_exception"
    assert response.json()["status"] == 400
    assert topic.sent == []


async def test_a_single_document_is_created_under_its_content_id() -> None:
    topic = FakeRawTopic()
    async with client(topic) as http:
        posted = await http.post(
            "/flywheel/_doc", content=RECORDS[2], headers={"content-type": COMPATIBLE}
        )
        put = await http.put("/flywheel/_create/my-id", content=RECORDS[2])
        with_id = await http.put("/flywheel/_doc/my-id", content=RECORDS[2])
    for response in (posted, put, with_id):
        assert response.status_code == 201
        assert_elasticsearch(response)
        assert response.json() == {
            "_index": "flywheel",
            "_id": stored_id(RECORDS[2]),
            "_version": 1,
            "result": "created",
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "_seq_no": 0,
            "_primary_term": 1,
        }
    assert [sent for sent, _, _ in topic.sent] == [[RECORDS[2]]] * 3


async def test_a_refused_single_document_answers_400_with_the_reject_reason() -> None:
    topic = FakeRawTopic()
    record = json.loads(RECORDS[0])
    del record["response"]
    async with client(topic) as http:
        response = await http.post("/flywheel/_doc", content=orjson.dumps(record))
        empty = await http.post("/flywheel/_doc", content=b"  ")
    assert response.status_code == 400
    assert_elasticsearch(response)
    assert response.json()["error"]["type"] == "flywheel_rejection"
    assert (
        response.json()["error"]["reason"] == "missing_field: missing required field(s): response"
    )
    assert len(topic.sent) == 1  # refused, yet kept for logs.rejected
    assert empty.status_code == 400
    assert empty.json()["error"]["reason"] == "request body is required"


async def test_the_cluster_is_described_on_get_and_head() -> None:
    async with client(FakeRawTopic()) as http:
        got = await http.get("/")
        head = await http.head("/")
    assert got.status_code == head.status_code == 200
    assert_elasticsearch(got)
    assert head.headers["x-elastic-product"] == "Elasticsearch"
    assert got.json()["version"]["number"].startswith("8.")
    assert head.content == b""


async def test_a_token_is_required_in_any_form_elasticsearch_clients_send_it() -> None:
    topic = FakeRawTopic()
    basic = base64.b64encode(b"elastic:s3cret").decode()
    body = ndjson({"index": {}}, RECORDS[0])
    async with client(topic, token="s3cret") as http:
        missing = await http.post("/_bulk", content=body)
        wrong = await http.get("/", headers={"authorization": "ApiKey nope"})
        by_basic = await http.post(
            "/_bulk", content=body, headers={"authorization": f"Basic {basic}"}
        )
        by_key = await http.get("/", headers={"authorization": "ApiKey s3cret"})
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert_elasticsearch(refused)
        assert refused.json()["error"]["type"] == "security_exception"
        assert "WWW-Authenticate" in refused.headers
    assert (by_basic.status_code, by_key.status_code) == (200, 200)
    assert len(topic.sent) == 1


async def test_other_media_types_are_refused_with_415() -> None:
    topic = FakeRawTopic()
    async with client(topic) as http:
        response = await http.post("/_bulk", content=b"a,b\n", headers={"content-type": "text/csv"})
    assert response.status_code == 415
    assert_elasticsearch(response)
    assert response.json()["error"]["reason"].startswith("Content-Type header [text/csv]")
    assert topic.sent == []


async def test_gzip_bodies_are_read_and_bounded_by_the_intakes_body_limit() -> None:
    topic = FakeRawTopic()
    gzip_headers = {"content-encoding": "gzip", "content-type": "application/x-ndjson"}
    async with client(topic) as http:
        small = await http.post(
            "/_bulk", content=gzip.compress(ndjson({"index": {}}, RECORDS[0])), headers=gzip_headers
        )
        bomb = await http.post(
            "/_bulk", content=gzip.compress(b"\n" * 70_000), headers=gzip_headers
        )
    assert small.status_code == 200
    assert small.json()["items"][0]["index"]["status"] == 201
    assert bomb.status_code == 413
    assert_elasticsearch(bomb)
    assert bomb.json()["error"]["reason"] == "the decompressed body exceeds 65536 bytes"
    assert len(topic.sent) == 1


async def test_a_document_over_the_line_limit_fails_the_request_with_413() -> None:
    topic = FakeRawTopic()
    async with client(topic) as http:
        response = await http.post(
            "/_bulk", content=ndjson({"index": {}}, b'"' + b"x" * 17_000 + b'"')
        )
    assert response.status_code == 413
    assert_elasticsearch(response)
    assert "over 16384 bytes" in response.json()["error"]["reason"]
    assert topic.sent == []


async def test_kafka_unavailable_answers_503_which_clients_retry() -> None:
    topic = FakeRawTopic()
    topic.down = True
    async with client(topic) as http:
        response = await http.post("/_bulk", content=ndjson({"index": {}}, RECORDS[0]))
    assert response.status_code == 503
    assert_elasticsearch(response)
    assert "retrying the request is safe" in response.json()["error"]["reason"]
