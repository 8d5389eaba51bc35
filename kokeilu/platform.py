"""nameko dependency providers that give a service its units of work, its figures and its health.

A service declares `uow = Store(MyUnitOfWork)` and gets, in every worker, a factory of units of
work; the outbox relay that publishes what they record starts and stops with the service.
`figures = Figures(metrics)` gives its use cases the service's domain metrics.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider
from nameko.timer import timer as nameko_timer

from kokeilu import tracing
from kokeilu.extensions import StoreExtension
from kokeilu.kafka.monitor import KafkaMonitor
from kokeilu.kafka.relay import OutboxRelay
from kokeilu.metrics import metrics_for
from kokeilu.store import OutboxReader, UnitOfWork

log = logging.getLogger(__name__)


class Store(DependencyProvider):
    store = StoreExtension()
    relay = OutboxRelay()

    def __init__(self, uow_class: type[UnitOfWork] = UnitOfWork, **kwargs: Any) -> None:
        self.uow_class = uow_class
        super().__init__(**kwargs)

    def get_dependency(self, worker_ctx: WorkerContext) -> Callable[[], UnitOfWork]:
        database, relay, uow_class = self.store.database, self.relay, self.uow_class
        # A worker that applies a consumed record works inside its poll batch's transaction
        # (kokeilu.kafka.consumer): its units of work are savepoints of that one transaction.
        batch = getattr(worker_ctx.entrypoint, "batch", None)
        if batch is not None:
            return lambda: uow_class.joining(database, batch.conn, batch.outbox, batch.record)
        return lambda: uow_class(database, on_commit=relay.wake)


class Figures(DependencyProvider):
    """A service's domain figures (its metrics module, which its use cases take as their
    `Figures` protocol). A worker that applies consumed records gets them deferred: each count
    is kept with the poll batch and made once the batch has committed (kokeilu.kafka.consumer),
    and dropped with a record undone in its savepoint, so a batch rolled back and retried is not
    counted twice. An HTTP worker counts at once (its use case counts after its commit)."""

    def __init__(self, figures: Any, **kwargs: Any):
        self.figures = figures
        super().__init__(**kwargs)

    def get_dependency(self, worker_ctx: Any) -> Any:
        batch = getattr(worker_ctx.entrypoint, "batch", None)
        return self.figures if batch is None else Deferred(self.figures, batch.counts)


class Deferred:
    """`figures` whose calls are kept in `counts` (to be made later) instead of made now."""

    def __init__(self, figures: Any, counts: list[Callable[[], object]]):
        self._figures, self._counts = figures, counts

    def __getattr__(self, name: str) -> Any:
        return partial(self._keep, getattr(self._figures, name))

    def _keep(self, count: Any, *args: Any, **kwargs: Any) -> None:
        self._counts.append(partial(count, *args, **kwargs))


class Health(DependencyProvider):
    """Readiness and the platform's own gauges, read when asked (at a probe or a scrape).

    Ready means: this instance can do its work now, that is, its store answers. Kafka is not
    part of it: every write goes to the store with its events in the outbox, so a service
    without its broker still takes work correctly and publishes it when the broker returns;
    refusing work then would only move the failure to the caller. Kafka's state is reported
    beside it (`checks.kafka`, `kokeilu_kafka_connected`), from the monitor's last probe.

    Nor is a consumer's place in its group, which is reported beside it too
    (`checks["consumer:<group>"]`: `connecting`, `joining`, or `N partitions`; the gauges
    `kokeilu_consumer_joined` and `kokeilu_consumer_assigned_partitions`). Readiness decides
    whether an instance gets HTTP requests; an instance that is rejoining its group after a
    broker restart answers those correctly, and an instance may hold no partitions for good
    (more instances than partitions) and still be the one to serve requests. Taking it out of
    the load balancer while the group rebalances would turn a consumer pause into refused
    requests. A group that does not rejoin shows as `kokeilu_consumer_joined` 0 and as lag that
    grows, which the KokeiluConsumerLag alert reports (docs/operations.md).
    """

    store = StoreExtension()
    monitor = KafkaMonitor()

    def setup(self) -> None:
        self.service = self.container.service_name
        self.metrics = metrics_for(self.service)

    def get_dependency(self, worker_ctx: WorkerContext) -> Health:
        return self  # every worker (each consumed record has one) shares it: it holds no state of its own

    def ready(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            self.store.database.ping()
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"unavailable: {exc.__class__.__name__}"
        checks["kafka"] = "ok" if self.monitor.connected else "unreachable"
        for group, state in self.monitor.membership.items():
            checks[f"consumer:{group}"] = state
        self.metrics.ready.labels(service=self.service).set(1 if checks["store"] == "ok" else 0)
        return checks

    def refresh_gauges(self) -> None:
        """Gauges read from the store at scrape time: they move even while Kafka is down."""
        self.metrics.outbox_backlog.labels(service=self.service).set(OutboxReader(self.store.database).backlog())


class Tracing(DependencyProvider):
    """Sets up tracing for the service (kokeilu/tracing.py), and makes an HTTP request's span and
    flow current in the green thread of the worker that answers it. (A consumer sets its
    record's itself: it runs the worker in its own green thread.)"""

    def setup(self) -> None:
        tracing.configure(self.container.service_name)
        self._attached: dict[WorkerContext, tracing.Attached] = {}

    def stop(self) -> None:
        tracing.shutdown()

    def get_dependency(self, worker_ctx: WorkerContext) -> None:
        return None

    def worker_setup(self, worker_ctx: WorkerContext) -> None:
        trace = getattr(worker_ctx.args[0], "kokeilu_trace", None) if worker_ctx.args else None
        if trace is not None:
            self._attached[worker_ctx] = tracing.attach(*trace)

    def worker_teardown(self, worker_ctx: WorkerContext) -> None:
        tokens = self._attached.pop(worker_ctx, None)
        if tokens is not None:
            tracing.detach(tokens)


class FrozenHeap(DependencyProvider):
    """Leaves what the service made to start (modules, models, tables, compiled statements: some
    150,000 objects) out of the garbage collector's full collections from then on.

    CPython's cyclic collector scans every tracked object in a full collection. A started
    service holds about 150,000 of them that live as long as the process, so each full
    collection took some 70 ms, in the one thread that serves every request (a pause that
    every request in flight waits out), and under load they came every few seconds (young
    objects surviving into the oldest generation trigger them). `gc.freeze()` once the
    container has set everything up moves those objects to a permanent generation that
    collections skip; what requests make is collected as before. The collection just before
    it frees the start's own garbage first, so nothing collectable is frozen."""

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        log.debug("%d objects left out of garbage collection", gc.get_freeze_count())

    def stop(self) -> None:
        gc.unfreeze()  # a process that goes on (tests run containers one after another) collects them again

    def get_dependency(self, worker_ctx: WorkerContext) -> None:
        return None


_Job = TypeVar("_Job", bound=Callable[..., Any])


def timer(interval: float) -> Callable[[_Job], _Job]:
    """`@timer(interval=seconds)`: nameko's timer entrypoint, typed (the method stays typed under it)."""
    decorate: Callable[[_Job], _Job] = nameko_timer(interval=interval)  # nameko's (untyped)
    return decorate
