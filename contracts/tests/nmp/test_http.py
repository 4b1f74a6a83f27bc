"""Retries, timeouts and error classification of the NMP client."""

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from flywheel_contracts.errors import PermanentError, RetryableError
from flywheel_contracts.runtime.nmp import (
    AlreadyExists,
    Hyperparameters,
    NimDeploymentSpec,
    NmpClient,
    NmpConflict,
    NmpError,
    NmpNotFound,
    NmpProtocolError,
    NmpRequestRejected,
    NmpRetryableError,
    NmpSettings,
)

pytestmark = pytest.mark.unit

Handler = Callable[[httpx.Request], httpx.Response]
MODELS = {"data": [{"id": "meta/llama-3.2-1b-instruct"}]}


class Harness:
    """An NmpClient over a scripted handler, counting requests and recording retry delays."""

    def __init__(self, handler: Handler, **settings: object) -> None:
        self.requests: list[httpx.Request] = []
        self.delays: list[float] = []

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        async def sleep(seconds: float) -> None:
            self.delays.append(seconds)

        self.client = NmpClient(
            NmpSettings.model_validate(settings),
            transport=httpx.MockTransport(record),
            sleep=sleep,
        )


def _script(*answers: httpx.Response | Exception) -> Handler:
    """Answer with each item in turn (raising exceptions), the last one repeating."""
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


async def test_5xx_is_retried_with_exponential_backoff_until_success() -> None:
    h = Harness(_script(httpx.Response(503), httpx.Response(502), httpx.Response(200, json=MODELS)))
    models = await h.client.nim.list_models()
    assert models.ids == {"meta/llama-3.2-1b-instruct"}
    assert len(h.requests) == 3
    assert h.delays == [0.5, 1.0]


async def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    h = Harness(_script(httpx.Response(500, text="boom")), retry_attempts=3)
    with pytest.raises(NmpRetryableError) as caught:
        await h.client.nim.list_models()
    assert len(h.requests) == 3
    assert caught.value.status_code == 500
    assert caught.value.method == "GET"
    assert caught.value.url == "http://nim.test/v1/models"
    assert "boom" in str(caught.value)


async def test_backoff_doubles_up_to_its_cap() -> None:
    h = Harness(
        _script(httpx.Response(500)), retry_attempts=6, retry_backoff_s=1, retry_backoff_max_s=3
    )
    with pytest.raises(NmpRetryableError):
        await h.client.nim.list_models()
    assert h.delays == [1, 2, 3, 3, 3]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, NmpRequestRejected),
        (401, NmpRequestRejected),
        (403, NmpRequestRejected),
        (422, NmpRequestRejected),
        (404, NmpNotFound),
        (409, NmpConflict),
        (302, NmpProtocolError),
    ],
)
async def test_permanent_answers_are_not_retried(status: int, error: type[NmpError]) -> None:
    h = Harness(_script(httpx.Response(status, headers={"Location": "http://elsewhere.test/"})))
    with pytest.raises(error) as caught:
        await h.client.deployments.get("meta/llama-3.2-1b-instruct")
    assert len(h.requests) == 1
    assert isinstance(caught.value, PermanentError)
    assert caught.value.status_code == status


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses(status: int) -> None:
    h = Harness(_script(httpx.Response(status)), retry_attempts=2)
    with pytest.raises(NmpRetryableError) as caught:
        await h.client.nim.list_models()
    assert isinstance(caught.value, RetryableError)
    assert len(h.requests) == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow answer"),
        httpx.RemoteProtocolError("peer closed"),
    ],
)
async def test_transport_failures_are_retryable(failure: Exception) -> None:
    h = Harness(_script(failure, httpx.Response(200, json=MODELS)))
    await h.client.nim.list_models()
    assert len(h.requests) == 2

    h = Harness(_script(failure), retry_attempts=2)
    with pytest.raises(NmpRetryableError) as caught:
        await h.client.nim.list_models()
    assert caught.value.status_code is None
    assert type(failure).__name__ in str(caught.value)
    assert caught.value.__cause__ is failure


async def test_an_undecodable_answer_is_permanent() -> None:
    h = Harness(_script(httpx.DecodingError("bad gzip")))
    with pytest.raises(NmpProtocolError, match="DecodingError"):
        await h.client.nim.list_models()
    assert len(h.requests) == 1


async def _create_job(client: NmpClient) -> object:
    return await client.customizer.create_job(
        workload_id="w", model_name="meta/m", dataset_name="d", hyperparameters=Hyperparameters()
    )


async def _launch_eval(client: NmpClient) -> object:
    return await client.evaluator.launch({"type": "custom", "tasks": {}}, "meta/m")


@pytest.mark.parametrize("create", [_create_job, _launch_eval])
@pytest.mark.parametrize("failure", [httpx.Response(500), httpx.ReadTimeout("no answer")])
async def test_job_creates_are_not_resent_when_nmp_may_have_acted(
    create: Callable[[NmpClient], Awaitable[object]], failure: httpx.Response | Exception
) -> None:
    h = Harness(_script(failure))
    with pytest.raises(NmpRetryableError):
        await create(h.client)
    assert len(h.requests) == 1


@pytest.mark.parametrize("create", [_create_job, _launch_eval])
async def test_job_creates_are_resent_when_the_request_never_left(
    create: Callable[[NmpClient], Awaitable[object]],
) -> None:
    created = httpx.Response(200, json={"id": "job-1", "output_model": "dfwbp/x@cust-1"})
    h = Harness(_script(httpx.ConnectError("refused"), created))
    await create(h.client)
    assert len(h.requests) == 2


async def test_deployment_already_exists_text_wins_over_any_status() -> None:
    for status in (500, 400, 200):
        answer = httpx.Response(status, json={"detail": "model deployment already exists"})
        h = Harness(_script(answer))
        outcome = await h.client.deployments.create("meta/m", NimDeploymentSpec(image_tag="1"))
        assert isinstance(outcome, AlreadyExists)
        assert outcome.status_code == status
        assert len(h.requests) == 1


async def test_each_attempt_carries_the_per_call_timeout() -> None:
    commit = {"commitUrl": "u", "commitOid": "o"}
    preupload = {"files": [{"path": "f.jsonl", "uploadMode": "regular"}]}
    h = Harness(
        lambda r: httpx.Response(
            200, json=commit if r.url.path.endswith("commit/main") else preupload
        ),
        connect_timeout_s=2,
        request_timeout_s=7,
        transfer_timeout_s=70,
    )
    await h.client.data_store.upload_file("repo", "f.jsonl", b"{}")
    ordinary, transfer = (r.extensions["timeout"] for r in h.requests)
    assert ordinary == {"connect": 2, "read": 7, "write": 7, "pool": 7}
    assert transfer == {"connect": 2, "read": 70, "write": 70, "pool": 70}


async def test_a_slow_server_times_out_into_a_retryable_error() -> None:
    """A real socket that accepts and never answers: httpx's read timeout must fire."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = NmpSettings(
        nim_base_url=f"http://127.0.0.1:{port}",
        request_timeout_s=0.2,
        retry_attempts=2,
        retry_backoff_s=0,
    )
    try:
        async with NmpClient(settings) as client:
            started = asyncio.get_running_loop().time()
            with pytest.raises(NmpRetryableError, match="ReadTimeout"):
                await client.nim.list_models()
            elapsed = asyncio.get_running_loop().time() - started
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert len(accepted) == 2
    assert 0.4 <= elapsed < 2


@pytest.mark.parametrize("status", [409, 422])
async def test_namespace_duplicates_are_already_exists(status: int) -> None:
    h = Harness(_script(httpx.Response(status, json={"detail": "exists"})))
    assert isinstance(await h.client.entity_store.create_namespace(), AlreadyExists)
    assert isinstance(await h.client.data_store.create_namespace(), AlreadyExists)


async def test_a_422_on_other_creates_is_an_error() -> None:
    h = Harness(_script(httpx.Response(422, json={"detail": "bad config"})))
    with pytest.raises(NmpRequestRejected):
        await h.client.data_store.create_repo("repo")


async def test_hf_token_goes_to_the_data_store_only() -> None:
    h = Harness(lambda r: httpx.Response(201, json=MODELS), hf_token="secret")
    await h.client.data_store.create_repo("repo")
    await h.client.entity_store.create_namespace()
    await h.client.nim.list_models()
    datastore, nemo, nim = h.requests
    assert datastore.headers["authorization"] == "Bearer secret"
    assert "authorization" not in nemo.headers
    assert "authorization" not in nim.headers


@pytest.mark.parametrize("body", [b"not json", b'{"data": [{"name": "no id"}]}', b'{"models": []}'])
async def test_a_body_off_the_contract_is_a_protocol_error(body: bytes) -> None:
    h = Harness(_script(httpx.Response(200, content=body)))
    with pytest.raises(NmpProtocolError) as caught:
        await h.client.nim.list_models()
    assert isinstance(caught.value, PermanentError)
    assert len(h.requests) == 1


async def test_deployment_delete_without_a_json_body_is_a_protocol_error() -> None:
    h = Harness(_script(httpx.Response(204)))
    with pytest.raises(NmpProtocolError):
        await h.client.deployments.delete("meta/m")


async def test_register_falls_back_to_update_when_a_create_races() -> None:
    entity = {"name": "d", "namespace": "dfwbp", "files_url": "hf://datasets/dfwbp/d"}
    h = Harness(
        _script(
            httpx.Response(404),
            httpx.Response(409, json={"detail": "exists"}),
            httpx.Response(200, json=entity),
        )
    )
    registered = await h.client.entity_store.register_dataset("d")
    assert [r.method for r in h.requests] == ["GET", "POST", "PATCH"]
    assert registered.files_url == "hf://datasets/dfwbp/d"


async def test_files_url_pointing_elsewhere_is_a_protocol_error() -> None:
    entity = {"files_url": "hf://datasets/other/d"}
    h = Harness(_script(httpx.Response(200, json=entity)))
    with pytest.raises(NmpProtocolError, match="files_url"):
        await h.client.entity_store.dataset_files_url("d")


@pytest.mark.parametrize(
    ("verdict", "error"),
    [
        ({"path": "f.jsonl", "uploadMode": "lfs", "shouldIgnore": False}, NmpProtocolError),
        ({"path": "f.jsonl", "uploadMode": "regular", "shouldIgnore": True}, NmpRequestRejected),
        ({"path": "other.jsonl", "uploadMode": "regular"}, NmpProtocolError),
    ],
)
async def test_preupload_verdicts_that_stop_an_upload(
    verdict: dict[str, object], error: type[NmpError]
) -> None:
    h = Harness(_script(httpx.Response(200, json={"files": [verdict]})))
    with pytest.raises(error):
        await h.client.data_store.upload_file("repo", "f.jsonl", b"{}")
    assert len(h.requests) == 1, "nothing may be committed"


def _upload_answers(*commit_statuses: int) -> Handler:
    """Preupload says "regular"; commits answer `commit_statuses` in turn, then 200."""
    statuses = list(commit_statuses)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/preupload/main"):
            path = json.loads(request.content)["files"][0]["path"]
            return httpx.Response(200, json={"files": [{"path": path, "uploadMode": "regular"}]})
        status = statuses.pop(0) if statuses else 200
        return httpx.Response(status, json={"commitUrl": "u", "commitOid": "o"})

    return handler


async def test_a_file_on_disk_is_committed_exactly_like_its_bytes(tmp_path: Path) -> None:
    # Over one read piece, and not a multiple of 3: the streamed base64 must still concatenate.
    content = bytes(range(256)) * 30_000 + b"tail"
    source = tmp_path / "train_data.jsonl"
    source.write_bytes(content)
    h = Harness(_upload_answers())
    await h.client.data_store.upload_file("repo", "training/train_data.jsonl", content)
    await h.client.data_store.upload_file("repo", "training/train_data.jsonl", source)
    from_bytes, from_file = h.requests[1], h.requests[3]
    assert from_file.content == from_bytes.content
    assert h.requests[2].content == h.requests[0].content  # the preupload: sample and size
    assert from_file.headers["content-length"] == str(len(from_file.content))
    header, file_line = (json.loads(line) for line in from_file.content.splitlines())
    assert header["key"] == "header"
    assert file_line == {
        "key": "file",
        "value": {
            "content": base64.b64encode(content).decode(),
            "path": "training/train_data.jsonl",
            "encoding": "base64",
        },
    }


async def test_a_retried_commit_sends_the_whole_file_again(tmp_path: Path) -> None:
    source = tmp_path / "eval_data.jsonl"
    source.write_bytes(b'{"n": 1}\n' * 1000)
    h = Harness(_upload_answers(503))
    await h.client.data_store.upload_file("repo", "eval_data.jsonl", source)
    first, second = h.requests[1:]
    assert first.content == second.content
    assert base64.b64encode(source.read_bytes()).decode() in second.content.decode()


async def test_embeddings_must_answer_one_vector_per_text() -> None:
    h = Harness(_script(httpx.Response(200, json={"data": [{"embedding": [0.1]}]})))
    with pytest.raises(NmpProtocolError):
        await h.client.nim.embeddings(["a", "b"])


async def test_odd_characters_in_ids_cannot_change_the_url() -> None:
    h = Harness(_script(httpx.Response(200, json={"status": "running"})))
    await h.client.customizer.job_status("a/b?c#d")
    assert h.requests[0].url.raw_path == b"/v1/customization/jobs/a%2Fb%3Fc%23d/status"
