"""Creates the platform's topics at start; idempotent, so every service may call it."""
from __future__ import annotations

import logging
import time

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from kokeilu.config import Settings
from kokeilu.contracts import topics

log = logging.getLogger(__name__)


def topic_specs(settings: Settings) -> dict[str, dict]:
    specs = {}
    for name in topics.ALL:
        configs = {"cleanup.policy": "compact"} if name in topics.COMPACTED else {}
        specs[settings.physical_topic(name)] = {
            "num_partitions": settings.kokeilu_topic_partitions,
            "replication_factor": settings.kokeilu_topic_replication,
            "configs": configs,
        }
    return specs


def ensure_topics(settings: Settings, names: dict[str, dict] | None = None, deadline_seconds: float = 120) -> None:
    """Create missing topics, waiting for the broker up to `deadline_seconds`."""
    specs = names if names is not None else topic_specs(settings)
    deadline = time.monotonic() + deadline_seconds
    delay = 0.2
    while True:
        try:
            admin = KafkaAdminClient(**settings.kafka_client_options(), client_id="kokeilu-admin")
            try:
                existing = set(admin.list_topics())
                missing = {n: s for n, s in specs.items() if n not in existing}
                if missing:
                    try:
                        admin.create_topics(missing, wait_for_metadata=True)
                        log.info("created topics %s", sorted(missing))
                    except TopicAlreadyExistsError:
                        pass  # another service created them at the same moment
                return
            finally:
                admin.close()
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("Kafka not reachable yet (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5)
