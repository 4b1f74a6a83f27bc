"""Deterministic traffic of a customer-service agent, and broken lines, for demos and tests.

``generate_to_file`` writes a JSONL log file; ``generate_records`` / ``generate_lines`` stream
the same records; ``malformed_lines`` yields broken lines labelled with their ``RejectReason``.
"""

from flywheel_contracts.events.records import RejectReason
from flywheel_contracts.traffic.catalog import TOOL_NAMES, TOOLS
from flywheel_contracts.traffic.cli import main
from flywheel_contracts.traffic.files import GenerationSummary, generate_to_file
from flywheel_contracts.traffic.malformed import (
    DEFAULT_MAX_LINE_BYTES,
    LINE_REASONS,
    malformed_lines,
)
from flywheel_contracts.traffic.records import (
    DEFAULT_CLIENT_ID,
    DEFAULT_MODEL,
    DEFAULT_START,
    TimestampFormat,
    TrafficConfig,
    generate_lines,
    generate_records,
    labelled_lines,
)
from flywheel_contracts.traffic.workloads import CHAT, ORDER_TOOLS, ROUTER, WORKLOAD_IDS, WORKLOADS

__all__ = [
    "CHAT",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_MODEL",
    "DEFAULT_START",
    "LINE_REASONS",
    "ORDER_TOOLS",
    "ROUTER",
    "TOOLS",
    "TOOL_NAMES",
    "WORKLOADS",
    "WORKLOAD_IDS",
    "GenerationSummary",
    "RejectReason",
    "TimestampFormat",
    "TrafficConfig",
    "generate_lines",
    "generate_records",
    "generate_to_file",
    "labelled_lines",
    "main",
    "malformed_lines",
]
