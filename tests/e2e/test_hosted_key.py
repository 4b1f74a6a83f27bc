"""A judge and an embedding model behind an API key, as blueprint users run them (a hosted
OpenAI-compatible endpoint): a flywheel of its own whose private emulator wants a random key for
its hosted models (NMP_EMULATOR_HOSTED_API_KEY), the evaluator and datasets configured with it
from their environment. A tool-calling run with semantic ICL selection (embeddings) and the judge
asked for every record completes with scores; then the key is looked for everywhere it must not
be: every service's log, every message (value, key, headers) of every topic under the run's
prefix, each service's `/metrics`, the run's HTML report and the dataset files. It is nowhere.

The run cannot pass without the key: the emulator refuses the judge and the embeddings without
it (checked here), so semantic ICL would fail the dataset and correctness would have no score.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from flywheel_contracts.cli.bus import Record
from flywheel_contracts.cli.kafka import KafkaBus
from flywheel_contracts.cli.runs import read_run_events
from flywheel_contracts.errors import InvalidEvent
from flywheel_contracts.report import build_report
from flywheel_contracts.run_config import DEMO_CANDIDATES, ExampleSelection, RunOverrides
from flywheel_contracts.traffic import ROUTER
from flywheel_localstack.pytest_plugin import StackHandle
from flywheel_localstack.services import SERVICES, Flywheel, FlywheelSetup
from flywheel_nim_manager.testing.process import EventTap
from tests.support.runs import assert_scored, completed, expected_entries, kafka, start_run
from tests.support.world import (
    PrivateFlywheel,
    private_flywheel,
)

pytestmark = pytest.mark.e2e

KEY = secrets.token_urlsafe(24)
JUDGE = "meta/llama-3.3-70b-instruct"
EMBEDDER = "nvidia/llama-3.2-nv-embedqa-1b-v2"
RECORDS = 200
SEED = 5
# One candidate, customized: base, ICL (semantic, so embeddings) and customized evaluations.
CANDIDATES = DEMO_CANDIDATES[:1]
OVERRIDES = RunOverrides(
    candidates=CANDIDATES,
    random_seed=7,
    epochs=1,
    eval_size=8,
    icl_max_examples=2,
    example_selection=ExampleSelection.SEMANTIC_SIMILARITY,
)
# The services' settings carrying the key, from their environment as in production.
KEYED: dict[str, dict[str, object]] = {
    "evaluator": {"judge__api_key": KEY, "judge__decide_exact_cases": "false"},
    "datasets": {"build__embedding_api_key": KEY},
}


@pytest.fixture(scope="module")
def world(
    stack: StackHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateFlywheel]:
    with private_flywheel(
        stack,
        tmp_path_factory.mktemp("keyed"),
        "e2e-key",
        records=RECORDS,
        seed=SEED,
        emulator_env={"NMP_EMULATOR_HOSTED_API_KEY": KEY},
        settings=KEYED,
    ) as world:
        yield world


def test_the_hosted_models_refuse_a_request_without_the_key(world: PrivateFlywheel) -> None:
    emulator = world.emulator
    chat = {"model": JUDGE, "messages": [{"role": "user", "content": "RATING?"}]}
    embed = {"model": EMBEDDER, "input": ["x"]}
    for path, body in (("/v1/chat/completions", chat), ("/v1/embeddings", embed)):
        assert emulator.post(path, json=body).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        assert emulator.post(path, json=body, headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {KEY}"}
        assert emulator.post(path, json=body, headers=right).status_code == 200


async def test_a_run_with_a_keyed_judge_completes_and_the_key_is_nowhere(
    world: PrivateFlywheel, world_tap: EventTap
) -> None:
    setup, flywheel, emulator, logs = world.setup, world.flywheel, world.emulator, world.logs
    run_id = await start_run(setup, ROUTER, world.client_id, OVERRIDES)
    # The dataset files, read from the emulator's Data Store folder while they exist.
    await world_tap.wait_for("dataset.ready", run_id, timeout_s=90)
    files = _dataset_files(world.nmp_folder)
    result = await completed(world_tap, run_id)
    # The judge rated records (it is asked for every one): its key was accepted.
    assert_scored(result, expected_entries(CANDIDATES), "tool_calling_correctness")
    answered = _chat_completions(emulator)
    print(f"chat completions answered by the emulator: {answered}")
    assert answered.get(JUDGE, 0) > 0

    places = {
        **{f"log {name}": (logs / f"{name}.log").read_bytes() for name in SERVICES},
        **{f"/metrics {name}": _metrics(flywheel, name) for name in SERVICES},
        **_topic_messages(setup),
        "report": build_report(run_id, _run_events(setup, run_id)).encode(),
        **files,
    }
    assert any(name.startswith("topic ") for name in places)
    assert any(name.startswith("file ") for name in places), "no dataset file found"
    leaked = [name for name, content in places.items() if KEY.encode() in content]
    assert not leaked, f"the key appears in {leaked}"
    print(f"the key is in none of {len(places)} places")


def _chat_completions(emulator: httpx.Client) -> dict[str, int]:
    """Chat completions the emulator answered, per model."""
    response = emulator.get("/emulator/usage")
    response.raise_for_status()
    answered: dict[str, int] = response.json()["chat_completions"]
    return answered


def _metrics(flywheel: Flywheel, name: str) -> bytes:
    response = httpx.get(f"{flywheel[name].url}/metrics", timeout=10)
    response.raise_for_status()
    return response.content


def _topic_messages(setup: FlywheelSetup) -> dict[str, bytes]:
    """Every message of every topic under the flywheel's prefix (dead-letter topics too): value,
    key and headers, joined per topic."""
    consumer = Consumer(
        {
            "bootstrap.servers": setup.servers.kafka_bootstrap,
            "group.id": f"{setup.name}-leak-check",
            "enable.auto.commit": False,
        }
    )
    found: dict[str, bytes] = {}
    try:
        topics = consumer.list_topics(timeout=10).topics
        for topic, metadata in topics.items():
            if topic.startswith(setup.topic_prefix):
                found[f"topic {topic}"] = _read_all(consumer, topic, list(metadata.partitions))
    finally:
        consumer.close()
    return found


def _read_all(consumer: Consumer, topic: str, partitions: list[int]) -> bytes:
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in partitions
    }
    left = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in left])
    chunks: list[bytes] = []
    while left:
        message = consumer.poll(10)
        assert message is not None, f"{topic}: no message while {sorted(left)} not read to the end"
        if message.error():
            continue
        chunks += [message.value() or b"", message.key() or b""]
        # Names and values as their repr: a urlsafe key shows in it as itself.
        chunks.append(repr(message.headers()).encode())
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        if offset + 1 >= ends[partition]:
            left.discard(partition)
    consumer.unassign()
    return b"\n".join(chunks)


def _run_events(setup: FlywheelSetup, run_id: UUID) -> list[Any]:
    def refuse(_record: Record, problem: InvalidEvent) -> None:
        raise AssertionError(f"an invalid event on the run's topics: {problem}")

    return list(read_run_events(KafkaBus(kafka(setup)), run_id, refuse))


def _dataset_files(nmp_folder: Path) -> dict[str, bytes]:
    """The files the datasets service uploaded, as the emulator's Data Store keeps them."""
    data = nmp_folder / "state.data"
    return {f"file {p.relative_to(data)}": p.read_bytes() for p in data.rglob("*") if p.is_file()}
