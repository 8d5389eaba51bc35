"""Shared nameko extensions: the service's database and its topics, one of each per container."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from nameko.extensions import SharedExtension

from kokeilu.config import get_settings
from kokeilu.kafka.topics import ensure_topics
from kokeilu.store import Database

log = logging.getLogger(__name__)


def migrations_dir(service_cls: type) -> Path:
    source = sys.modules[service_cls.__module__].__file__
    if source is None:
        raise RuntimeError(f"{service_cls.__module__} has no source file, and so no migrations beside it")
    return Path(source).resolve().parent / "migrations"


class StoreExtension(SharedExtension):
    """The service's Database, migrated to head before anything starts."""

    database: Database

    def setup(self) -> None:
        settings = get_settings()
        url = settings.database_url_for(self.container.service_name)
        if url.startswith("postgresql"):
            # psycopg2 would block the whole process under eventlet.
            from psycogreen.eventlet import patch_psycopg

            patch_psycopg()
        self.database = Database(
            url, migrations_dir(self.container.service_cls), settings.kokeilu_sqlite_busy_timeout_seconds
        )
        delay = 0.2
        deadline = time.monotonic() + 120
        while True:
            try:
                self.database.migrate()
                return
            except Exception as exc:  # the database may still be starting
                if time.monotonic() > deadline:
                    raise
                log.warning("store not ready (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5)

    def stop(self) -> None:
        self.database.dispose()


class TopicsExtension(SharedExtension):
    """Makes sure the platform's topics exist before the first consumer or producer uses them."""

    def setup(self) -> None:
        self._done = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        with self._lock:
            if not self._done:
                ensure_topics(get_settings())
                self._done = True
