"""On the real stack: a generic Elasticsearch log shipper, configured as for Elasticsearch and
pointed at ingest instead, delivers every line: each becomes a document or an explained
rejection, and the shipper itself learns of the rejections from the bulk answer.

The shipper is rsyslog's Elasticsearch output (Debian's `rsyslog-elasticsearch`, installed on
first use like the stack's own rsyslog), tailing a JSONL file and posting `_bulk` requests with
basic auth, as Filebeat, Fluent Bit or Logstash would.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.traffic import generate_lines
from flywheel_ingest.testing import PrivateIngest, PrivateIngestOf, unique
from flywheel_localstack.installers import ensure_debian_packages

pytestmark = pytest.mark.integration

TOKEN = "shipper-s3cret"
OMELASTICSEARCH = "/usr/lib/x86_64-linux-gnu/rsyslog/omelasticsearch.so"

CONF = """
global(maxMessageSize="1m" workDirectory="{work}")
module(load="imfile" mode="inotify")
module(load="omelasticsearch")
template(name="line" type="string" string="%rawmsg%")
input(type="imfile" File="{folder}/*.jsonl" Tag="app" ruleset="to_es")
ruleset(name="to_es") {{
  action(type="omelasticsearch" server="127.0.0.1" serverport="{port}" usehttps="off"
         searchIndex="app-logs" template="line" esVersion.major="8"
         bulkmode="on" maxbytes="1m" uid="flywheel" pwd="{token}"
         errorfile="{work}/es-errors.json"
         queue.type="LinkedList" queue.dequeueBatchSize="50"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
"""


@pytest.fixture
def shipper_ingest(private_ingest_of: PrivateIngestOf, tmp_path: Path) -> Iterator[PrivateIngest]:
    with private_ingest_of("ingest-shipper", tmp_path, intake__token=TOKEN) as ingest:
        yield ingest


@pytest.fixture
def rsyslog(shipper_ingest: PrivateIngest, tmp_path: Path) -> Iterator[Path]:
    """rsyslogd with the Elasticsearch output aimed at ingest; yields the folder it tails."""
    ensure_debian_packages({"rsyslogd": "rsyslog"}, {OMELASTICSEARCH: "rsyslog-elasticsearch"})
    folder, work = tmp_path / "logs", tmp_path / "work"
    folder.mkdir()
    work.mkdir()
    conf = tmp_path / "rsyslog.conf"
    port = shipper_ingest.url.rsplit(":", 1)[1]
    conf.write_text(CONF.format(work=work, folder=folder, port=port, token=TOKEN))
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    shipper = subprocess.Popen(
        [rsyslogd, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "rsyslog.err").open("w"),
    )
    try:
        time.sleep(1.0)  # imfile sets up its inotify watch
        assert shipper.poll() is None, (tmp_path / "rsyslog.err").read_text()
        yield folder
    finally:
        shipper.terminate()
        shipper.wait(timeout=30)


def test_an_elasticsearch_shipper_delivers_every_line_and_reads_the_rejections(
    shipper_ingest: PrivateIngest, rsyslog: Path, tmp_path: Path
) -> None:
    client = unique("shipped-app")
    valid = []
    for line in generate_lines(120, seed=33):
        record = json.loads(line)
        record["client_id"] = client
        valid.append(json.dumps(record))
    broken = json.loads(valid[0])
    no_response = {key: value for key, value in broken.items() if key != "response"}
    empty = json.loads(valid[1])
    empty["response"]["choices"][0]["message"] = {"role": "assistant", "content": ""}
    empty["response"]["choices"][0]["finish_reason"] = "stop"
    refused = {
        json.dumps(no_response): RejectReason.MISSING_FIELD,
        json.dumps(empty): RejectReason.EMPTY_RESPONSE,
    }
    since = shipper_ingest.rejected_offsets()

    (rsyslog / "app.jsonl").write_text("\n".join([*valid, *refused]) + "\n")

    documents, rejected = shipper_ingest.outcomes(
        client, calls=len(valid) + len(refused), since=since
    )
    assert documents == len(valid)
    assert Counter((r.raw, r.reason) for r in rejected) == Counter(refused.items())
    # The shipper read the per-item answer: it wrote the refused items to its error file.
    errors = tmp_path / "work" / "es-errors.json"
    deadline = time.monotonic() + 30
    while not errors.exists() or errors.read_text().count("flywheel_rejection") < len(refused):
        assert time.monotonic() < deadline, "rsyslog did not report the refused items"
        time.sleep(0.5)


def test_the_shipper_without_the_token_is_refused_with_401(
    shipper_ingest: PrivateIngest,
) -> None:
    wrong = base64.b64encode(b"flywheel:wrong").decode()
    answer = httpx.post(
        f"{shipper_ingest.url}/_bulk",
        content=b'{"index":{}}\n{}\n',
        headers={"authorization": f"Basic {wrong}", "content-type": "application/x-ndjson"},
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.headers["x-elastic-product"] == "Elasticsearch"
