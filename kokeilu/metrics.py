"""The metrics every service exposes, declared once, on a registry of the service's own.

Names are prefixed `kokeilu_`, in base units; labels are of low cardinality (never an id).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kokeilu.contracts.catalog import BY_NAME

__all__ = ["ServiceMetrics", "metrics_for", "CONTENT_TYPE_LATEST", "known_type", "BoundedValues"]


M = TypeVar("M", Counter, Gauge, Histogram)
_CHILDREN: dict[tuple[object, tuple[tuple[str, str], ...]], Any] = {}


def child(metric: M, **labels: str) -> M:
    """`metric.labels(**labels)`, looked up once per process: labels() checks and hashes its
    values on every call, which costs more than the count itself on a per-record or per-request
    path. The label values must come from bounded sets (BoundedValues for outside ones)."""
    key = (metric, tuple(labels.items()))
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(**labels)
    return cast(M, found)


def known_type(event_type: str) -> str:
    """An event type as a label value: a type of the contract, `unknown` when the record did not
    parse that far, else `other` (a record's type comes from outside: no unbounded series)."""
    return event_type if event_type in BY_NAME or event_type == "unknown" else "other"


class BoundedValues:
    """Label values that come from outside with no closed list (e.g. intake sources): the first
    `limit` distinct values are kept as they are, every later one is counted as `other`."""

    def __init__(self, limit: int = 50, max_length: int = 100):
        self.limit, self.max_length = limit, max_length
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        value = value[: self.max_length]
        if value in self._seen:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        return "other"


class ServiceMetrics:
    def __init__(self, service: str):
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "kokeilu_events_consumed",
            "Records consumed, by topic, event type and outcome (applied, duplicate, ignored, dead_lettered).",
            ["service", "topic", "type", "outcome"],
            registry=r,
        )
        self.events_published = Counter(
            "kokeilu_events_published",
            "Records published from the outbox, by topic and event type.",
            ["service", "topic", "type"],
            registry=r,
        )
        self.processing = Histogram(
            "kokeilu_event_processing_seconds",
            "Time to apply one consumed event, retries included.",
            ["service", "topic"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.dead_lettered = Counter(
            "kokeilu_dead_lettered",
            "Records sent to the dead-letter topic, by source topic and reason "
            "(unparseable, invalid, failed, unpublishable).",
            ["service", "topic", "reason"],
            registry=r,
        )
        self.redriven = Counter(
            "kokeilu_redriven_records",
            "Records an operator redrove from the dead-letter topic (header "
            "kokeilu.redrive.of) that this service consumed, by topic and outcome (applied; duplicate: the inbox "
            "had applied the event already; ignored; dead_lettered: it failed again).",
            ["service", "topic", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "kokeilu_transient_retries",
            "Transient failures retried with backoff, by where they happened.",
            ["service", "stage"],
            registry=r,
        )
        self.outbox_backlog = Gauge("kokeilu_outbox_backlog", "Outbox rows not yet published.", ["service"], registry=r)
        self.consumer_lag = Gauge(
            "kokeilu_consumer_lag",
            "Records behind the end of the topic, summed over partitions, by consumer group "
            "(its name without the deployment's topic prefix) and topic.",
            ["service", "group", "topic"],
            registry=r,
        )
        self.ready = Gauge(
            "kokeilu_ready", "1 when the service can take work: its store answers.", ["service"], registry=r
        )
        self.kafka_connected = Gauge(
            "kokeilu_kafka_connected",
            "1 when the brokers answered the service's last probe in time (every 5 s).",
            ["service"],
            registry=r,
        )
        self.http_requests = Counter(
            "kokeilu_http_requests",
            "HTTP requests by route, method and status.",
            ["service", "route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "kokeilu_http_request_duration_seconds",
            "HTTP request duration by route and method.",
            ["service", "route", "method"],
            registry=r,
        )
        self.consumer_partitions = Gauge(
            "kokeilu_consumer_assigned_partitions",
            "Partitions this instance's consumer of a group holds now (0 while it is connecting or joining the group).",
            ["service", "group"],
            registry=r,
        )
        self.consumer_assignments = Counter(
            "kokeilu_consumer_assignments",
            "Times this instance's consumer of a group was given its partitions "
            "(each join and rejoin of the group: after a start, a rebalance, a broker's return).",
            ["service", "group"],
            registry=r,
        )
        self.consumer_joined = Gauge(
            "kokeilu_consumer_joined",
            "1 when this instance's consumer of a group has joined it and holds its "
            "assignment (which may be no partitions, with more instances than partitions), 0 while connecting or "
            "rejoining.",
            ["service", "group"],
            registry=r,
        )

    def latest(self) -> bytes:
        return generate_latest(self.registry)


_BY_SERVICE: dict[str, ServiceMetrics] = {}


def metrics_for(service: str) -> ServiceMetrics:
    """The one ServiceMetrics of a service in this process (several containers may share it in tests)."""
    if service not in _BY_SERVICE:
        _BY_SERVICE[service] = ServiceMetrics(service)
    return _BY_SERVICE[service]
