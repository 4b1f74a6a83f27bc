"""`flywheel-stack`: install, start, inspect, stop and wipe the local stack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from flywheel_localstack.installers import InstallError
from flywheel_localstack.supervisor import ComponentStatus, Stack, StackError
from flywheel_localstack.topics import ensure_catalog_topics


def format_status(rows: Sequence[ComponentStatus]) -> str:
    header = f"{'component':<14}{'port':<12}{'pid':>8}  {'health':<8}{'memory':>9}  detail"
    lines = [header, "-" * len(header)]
    for row in rows:
        ports = ",".join(map(str, row.ports)) or "-"
        health = "healthy" if row.health.ok else ("DOWN" if row.pid is None else "unready")
        memory = f"{row.rss_bytes / 2**20:.0f} MiB" if row.pid else "-"
        lines.append(
            f"{row.name:<14}{ports:<12}{row.pid or '-':>8}  {health:<8}{memory:>9}  "
            f"{row.health.detail}"
        )
    total = sum(r.rss_bytes for r in rows)
    lines.append(f"{'total':<14}{'':<12}{'':>8}  {'':<8}{total / 2**20:>5.0f} MiB")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flywheel-stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("up", "start what is not running and wait until usable"),
        ("down", "stop what this stack started"),
        ("install", "download and build without starting"),
    ]:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("components", nargs="*", help="default: all")
    commands.add_parser("status", help="component, port, pid, health and memory")
    commands.add_parser("reset", help="stop everything and wipe data (keeps downloads)")
    topics = commands.add_parser("topics", help="create the catalog's topics and their DLQs")
    topics.add_argument("--bootstrap", help="default: the local stack's broker")
    args = parser.parse_args(argv)

    stack = Stack()
    names = getattr(args, "components", None) or None
    try:
        if args.command == "up":
            stack.up(names)
            print(format_status(stack.status()))
        elif args.command == "down":
            stack.down(names)
        elif args.command == "install":
            stack.install(names)
        elif args.command == "status":
            rows = stack.status()
            print(format_status(rows))
            return 0 if all(r.health.ok for r in rows) else 1
        elif args.command == "reset":
            stack.reset()
        elif args.command == "topics":
            kafka = stack.settings.kafka_operator()
            if args.bootstrap:
                kafka = kafka.model_copy(update={"bootstrap_servers": args.bootstrap})
            planned, created = ensure_catalog_topics(kafka)
            for topic in planned:
                print(f"{topic:<32} {'created' if topic in created else 'exists'}")
    except (StackError, InstallError) as exc:
        print(f"flywheel-stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
