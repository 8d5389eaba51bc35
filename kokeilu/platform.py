"""nameko dependency providers that give a service its units of work and its health.

A service declares `uow = Store(MyUnitOfWork)` and gets, in every worker, a factory of units of
work; the outbox relay that publishes what they record starts and stops with the service.
"""
from __future__ import annotations

import socket

from nameko.extensions import DependencyProvider

from kokeilu.config import get_settings
from kokeilu.extensions import StoreExtension
from kokeilu.kafka.relay import OutboxRelay
from kokeilu.metrics import metrics_for
from kokeilu.store import UnitOfWork


class Store(DependencyProvider):
    store = StoreExtension()
    relay = OutboxRelay()

    def __init__(self, uow_class: type[UnitOfWork] = UnitOfWork, **kwargs):
        self.uow_class = uow_class
        super().__init__(**kwargs)

    def get_dependency(self, worker_ctx):
        database, relay, uow_class = self.store.database, self.relay, self.uow_class
        return lambda: uow_class(database, on_commit=relay.wake)


def kafka_reachable(bootstrap: list[str], timeout: float = 1.0) -> bool:
    for server in bootstrap:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


class Health(DependencyProvider):
    """`ready()` is True when the store answers and a Kafka bootstrap server accepts connections."""

    store = StoreExtension()

    def get_dependency(self, worker_ctx):
        store, service = self.store, self.container.service_name

        class Checker:
            @staticmethod
            def ready() -> dict[str, str]:
                checks = {}
                try:
                    store.database.ping()
                    checks["store"] = "ok"
                except Exception as exc:
                    checks["store"] = f"unavailable: {exc.__class__.__name__}"
                checks["kafka"] = "ok" if kafka_reachable(get_settings().bootstrap_servers) else "unavailable"
                metrics_for(service).ready.labels(service=service).set(
                    1 if all(v == "ok" for v in checks.values()) else 0)
                return checks

        return Checker()
