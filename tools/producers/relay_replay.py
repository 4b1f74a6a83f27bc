"""Production traffic replayed through NeMo Relay: every logged call of a JSONL file of Flywheel
records becomes one agent run under Relay (an agent scope named after the record's workload,
carrying its client id) whose one LLM call is made through `nemo_relay.llm.execute` with the
logged request, its provider answering the logged response. The flywheel-relay subscriber ships
what Relay emitted to a Flywheel intake, so the workload reaches Flywheel through Relay only.

Runs in the producers' venv (`flywheel_localstack.producers`), with `integrations/nemo-relay/src`
on `sys.path` (flywheel-relay is not installed there).

    relay_replay.py --records FILE --url URL [--token T]   prints counts as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "integrations" / "nemo-relay" / "src"))

import nemo_relay  # noqa: E402
from nemo_relay import LLMRequest, ScopeType  # noqa: E402

from flywheel_relay import (  # noqa: E402
    CLIENT_ID_KEY,
    FlywheelSubscriber,
    SubscriberSettings,
)


async def replay(records: list[dict[str, Any]]) -> None:
    for record in records:
        request, response = record["request"], record["response"]

        async def provider(_: LLMRequest, answer: dict[str, Any] = response) -> dict[str, Any]:
            return answer

        metadata = {CLIENT_ID_KEY: record["client_id"]}
        with nemo_relay.scope.scope(record["workload_id"], ScopeType.Agent, metadata=metadata):
            await nemo_relay.llm.execute(
                "nim", LLMRequest({}, request), provider, model_name=request.get("model", "")
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.records.read_text().splitlines() if line.strip()]
    subscriber = FlywheelSubscriber(
        SubscriberSettings(url=args.url, token=args.token, source="relay-replay", linger_s=0.05)
    ).register()
    try:
        asyncio.run(replay(records))
    finally:
        subscriber.close()
    stats = subscriber.stats
    print(
        json.dumps(
            {
                "replayed": len(records),
                "calls": stats.calls,
                "shipped": stats.shipped,
                "failed": stats.failed,
                "dropped": stats.dropped,
                "skipped": dict(stats.skipped),
            }
        )
    )


if __name__ == "__main__":
    main()
