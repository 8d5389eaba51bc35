"""nameko dependency providers that give a service its units of work and its health.

A service declares `uow = Store(MyUnitOfWork)` and gets, in every worker, a factory of units of
work; the outbox relay that publishes what they record starts and stops with the service.
"""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from kokeilu.extensions import StoreExtension
from kokeilu.kafka.monitor import KafkaMonitor
from kokeilu.kafka.relay import OutboxRelay
from kokeilu.metrics import metrics_for
from kokeilu.store import OutboxReader, UnitOfWork


class Store(DependencyProvider):
    store = StoreExtension()
    relay = OutboxRelay()

    def __init__(self, uow_class: type[UnitOfWork] = UnitOfWork, **kwargs):
        self.uow_class = uow_class
        super().__init__(**kwargs)

    def get_dependency(self, worker_ctx):
        database, relay, uow_class = self.store.database, self.relay, self.uow_class
        return lambda: uow_class(database, on_commit=relay.wake)


class Health(DependencyProvider):
    """Readiness and the platform's own gauges, read when asked (at a probe or a scrape).

    Ready means: this instance can do its work now, that is, its store answers. Kafka is not
    part of it: every write goes to the store with its events in the outbox, so a service
    without its broker still takes work correctly and publishes it when the broker returns;
    refusing work then would only move the failure to the caller. Kafka's state is reported
    beside it (`checks.kafka`, `kokeilu_kafka_connected`), from the monitor's last probe.
    """

    store = StoreExtension()
    monitor = KafkaMonitor()

    def setup(self):
        self._checker = None

    def get_dependency(self, worker_ctx):
        # One checker per container, made on first use (the store is set up by then): every worker
        # of every entrypoint is injected with it, so it must cost nothing per request.
        if self._checker is None:
            self._checker = self._make_checker()
        return self._checker

    def _make_checker(self):
        database, monitor, service = self.store.database, self.monitor, self.container.service_name
        metrics = metrics_for(service)

        class Checker:
            @staticmethod
            def ready() -> dict[str, str]:
                checks = {}
                try:
                    database.ping()
                    checks["store"] = "ok"
                except Exception as exc:
                    checks["store"] = f"unavailable: {exc.__class__.__name__}"
                checks["kafka"] = "ok" if monitor.connected else "unreachable"
                metrics.ready.labels(service=service).set(1 if checks["store"] == "ok" else 0)
                return checks

            @staticmethod
            def refresh_gauges() -> None:
                """Gauges read from the store at scrape time: they move even while Kafka is down."""
                metrics.outbox_backlog.labels(service=service).set(OutboxReader(database).backlog())

        return Checker()
