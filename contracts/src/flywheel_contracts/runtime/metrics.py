"""Prometheus metrics of event delivery, per topic.

One service runs per process, so the metrics live in the default registry and carry no service
label: the scraper's job/instance labels say which service they belong to.
"""

from prometheus_client import Counter, Histogram

EVENTS_CONSUMED = Counter(
    "flywheel_events_consumed_total",
    "Messages taken off a topic, by how their handling ended.",
    ["topic", "outcome"],
)
EVENTS_PRODUCED = Counter(
    "flywheel_events_produced_total",
    "Messages the broker acknowledged, by destination topic.",
    ["topic"],
)
HANDLER_RETRIES = Counter(
    "flywheel_handler_retries_total",
    "Handler attempts that failed with a retryable error and were tried again.",
    ["topic"],
)
EVENTS_DEAD_LETTERED = Counter(
    "flywheel_events_dead_lettered_total",
    "Messages sent to the topic's dead-letter queue, by reason.",
    ["topic", "reason"],
)
DUPLICATES_SKIPPED = Counter(
    "flywheel_duplicates_skipped_total",
    "Events skipped because this consumer had already processed their id.",
    ["topic"],
)
HANDLER_SECONDS = Histogram(
    "flywheel_handler_duration_seconds",
    "Time from taking a message off the topic to its outcome (retries and dead-lettering included).",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
