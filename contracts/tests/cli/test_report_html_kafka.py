"""`flywheel report RUN --html` on the real local Kafka: the run's events are gathered from every
topic of a namespaced flywheel."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import AdminClient

from flywheel_contracts.catalog import TOPICS
from flywheel_contracts.cli.kafka import KafkaBus
from flywheel_contracts.cli.main import cli
from flywheel_contracts.report.sample import CANDIDATES, sample_run
from flywheel_contracts.runtime.settings import KafkaSettings
from flywheel_contracts.runtime.topics import ensure_topics, new_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def kafka(kafka_bootstrap: str) -> Iterator[KafkaSettings]:
    """A flywheel namespace of its own on the shared broker, its topics deleted afterwards."""
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"report{uuid4().hex[:8]}."
    )
    created = asyncio.run(ensure_topics(settings, new_topics(TOPICS, settings.topic_prefix)))
    yield settings
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_topics(created, operation_timeout=10).values():
        future.result(timeout=15)


def test_html_report_from_the_topics_of_a_run(kafka: KafkaSettings, tmp_path: Path) -> None:
    run_id = uuid4()
    events = sample_run(run_id)
    bus = KafkaBus(kafka)
    for envelope in events:
        bus.publish(envelope)
    target = tmp_path / "run.html"

    result = CliRunner().invoke(
        cli,
        ["--bootstrap", kafka.bootstrap_servers, "report", str(run_id), "--html", str(target)],
        env={"FLYWHEEL_KAFKA__TOPIC_PREFIX": kafka.topic_prefix},
    )

    assert result.exit_code == 0, result.output
    page = target.read_text()
    assert f"Built from {len(events)} events of run {run_id}" in page
    for candidate in CANDIDATES:
        assert f'data-lane="{candidate.model_name} deployment"' in page
