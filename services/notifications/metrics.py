"""The notifications service's domain figures, on the service's registry."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from kokeilu.metrics import metrics_for

_registry = metrics_for("notifications").registry
_S = "notifications"

DELIVERIES = Counter(
    "kokeilu_deliveries",
    "Delivery attempts by channel and outcome (succeeded, retrying, dead_lettered).",
    ["service", "channel", "outcome"],
    registry=_registry,
)
DELIVERY_LATENCY = Histogram(
    "kokeilu_delivery_latency_seconds", "Time one delivery attempt took.", ["service", "channel"], registry=_registry
)
RETRIES = Counter(
    "kokeilu_delivery_retries",
    "Delivery attempts that failed and were scheduled again.",
    ["service", "channel"],
    registry=_registry,
)
DEAD_LETTERED = Counter(
    "kokeilu_deliveries_dead_lettered",
    "Deliveries given up after their last attempt (listed by GET /v1/deliveries?status=dead_lettered).",
    ["service", "channel"],
    registry=_registry,
)
DIGEST_SIZE = Histogram(
    "kokeilu_digest_size_events",
    "Events grouped into one digest e-mail.",
    ["service"],
    registry=_registry,
    buckets=(1, 2, 5, 10, 20, 50, 100, 250, 1000),
)
# Exported at 0 from the start, so that increase() (the alerts) and rate() (the dashboard) see the
# first one too, and "deliveries by outcome" shows every outcome, 0 while it does not happen.
for _channel in ("webhook", "email"):
    DEAD_LETTERED.labels(service=_S, channel=_channel)
    RETRIES.labels(service=_S, channel=_channel)
    DELIVERY_LATENCY.labels(service=_S, channel=_channel)
    for _outcome in ("succeeded", "retrying", "dead_lettered"):
        DELIVERIES.labels(service=_S, channel=_channel, outcome=_outcome)
DIGEST_SIZE.labels(service=_S)


def observe_delivery(channel: str, outcome: str, latency: float) -> None:
    """One delivery attempt, recorded: `outcome` succeeded, retrying or dead_lettered."""
    DELIVERIES.labels(service=_S, channel=channel, outcome=outcome).inc()
    DELIVERY_LATENCY.labels(service=_S, channel=channel).observe(latency)
    if outcome == "retrying":
        RETRIES.labels(service=_S, channel=channel).inc()
    elif outcome == "dead_lettered":
        DEAD_LETTERED.labels(service=_S, channel=channel).inc()


def observe_digest(size: int) -> None:
    DIGEST_SIZE.labels(service=_S).observe(size)
