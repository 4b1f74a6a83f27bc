"""``python -m flywheel_contracts.traffic``: write generated traffic to a JSONL file."""

import argparse
import datetime as dt
from collections.abc import Sequence

from flywheel_contracts.traffic.files import generate_to_file
from flywheel_contracts.traffic.malformed import DEFAULT_MAX_LINE_BYTES
from flywheel_contracts.traffic.records import (
    DEFAULT_CLIENT_ID,
    DEFAULT_MODEL,
    DEFAULT_START,
    TIMESTAMP_FORMATS,
    TrafficConfig,
)
from flywheel_contracts.traffic.workloads import WORKLOAD_IDS


def parse_start(text: str) -> dt.datetime:
    """Epoch seconds or ISO 8601; a time without offset is UTC."""
    try:
        return dt.datetime.fromtimestamp(float(text), dt.UTC)
    except ValueError:
        pass
    start = dt.datetime.fromisoformat(text)  # 3.11 reads a trailing "Z" too
    return start if start.tzinfo else start.replace(tzinfo=dt.UTC)


def _start(text: str) -> dt.datetime:
    try:
        return parse_start(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not epoch seconds or ISO 8601: {text!r}") from error


def _workloads(text: str) -> tuple[str, ...]:
    chosen = tuple(w.strip() for w in text.split(",") if w.strip())
    unknown = sorted(set(chosen) - set(WORKLOAD_IDS))
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown workloads {unknown}; choose from {', '.join(WORKLOAD_IDS)}"
        )
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flywheel_contracts.traffic",
        description="Write deterministic customer-service traffic as JSONL log records.",
    )
    parser.add_argument("--records", type=int, required=True, help="valid records to write")
    parser.add_argument(
        "--seed", type=int, default=0, help="same seed and options, same bytes (default 0)"
    )
    parser.add_argument("--out", required=True, help="output file; overwritten")
    parser.add_argument(
        "--workloads",
        type=_workloads,
        default=WORKLOAD_IDS,
        help=f"comma-separated subset of {','.join(WORKLOAD_IDS)} (default all)",
    )
    parser.add_argument(
        "--client-id",
        action="append",
        dest="client_ids",
        help=f"client id; repeat to spread conversations over several (default {DEFAULT_CLIENT_ID})",
    )
    parser.add_argument(
        "--start",
        type=_start,
        default=DEFAULT_START,
        help=f"first timestamp, epoch seconds or ISO 8601 (default {DEFAULT_START.isoformat()})",
    )
    parser.add_argument(
        "--timestamp-format",
        choices=TIMESTAMP_FORMATS,
        default="s",
        help="epoch seconds, epoch ms, ISO 8601, or all three in turn (default s)",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"production model (default {DEFAULT_MODEL})"
    )
    parser.add_argument("--no-metadata", action="store_true", help="omit the metadata object")
    parser.add_argument(
        "--malformed", type=int, default=0, help="broken lines to mix in (default 0)"
    )
    parser.add_argument(
        "--max-line-bytes",
        type=int,
        default=DEFAULT_MAX_LINE_BYTES,
        help=f"ingest's line limit, for oversize lines (default {DEFAULT_MAX_LINE_BYTES})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = TrafficConfig(
            workloads=args.workloads,
            client_ids=tuple(args.client_ids or (DEFAULT_CLIENT_ID,)),
            start=args.start,
            timestamp_format=args.timestamp_format,
            model=args.model,
            metadata=not args.no_metadata,
        )
        summary = generate_to_file(
            args.out,
            args.records,
            args.seed,
            config,
            malformed=args.malformed,
            max_line_bytes=args.max_line_bytes,
        )
    except ValueError as error:
        parser.error(str(error))
    broken = sum(summary.malformed.values())
    print(
        f"wrote {summary.records} records and {broken} malformed lines to {summary.path} "
        f"({summary.bytes / 1e6:.1f} MB, {summary.lines_per_second:,.0f} lines/s)"
    )
    for workload, count in summary.workloads.items():
        print(f"  {workload}: {count}")
    for reason, count in summary.malformed.items():
        print(f"  malformed {reason}: {count}")
    return 0
