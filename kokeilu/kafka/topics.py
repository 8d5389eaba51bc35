"""Creates the platform's topics at start; idempotent, so every service may call it.

In a secured cluster (docs/operations.md, "Kafka security") the services may not create topics:
the admin step (`python -m kokeilu.kafka.acls apply`) creates them, and a service that is refused
here logs it and carries on; it sees, and needs, only the topics its ACLs let it describe."""

from __future__ import annotations

import logging
import time
from typing import Any

import eventlet
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    NoError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

from kokeilu.config import Settings
from kokeilu.contracts import topics

log = logging.getLogger(__name__)


def partitions_of(consumer: KafkaConsumer, topic: str, seconds: float = 10) -> set[int]:
    """`consumer.partitions_for_topic(topic)` (empty when the topic is not known), waiting at most
    `seconds` for the brokers; TimeoutError after that. kafka-python 3.0 waits for that metadata
    answer without a timeout, and an answer that never came held a consumer in its start for
    good: it consumed nothing, and said nothing. (The wait is a green thread's, which
    eventlet.Timeout interrupts; outside eventlet it is not bounded.)"""
    with eventlet.Timeout(seconds, TimeoutError(f"no metadata for {topic} after {seconds:g} s")):
        return set(consumer.partitions_for_topic(topic) or ())


def topic_specs(settings: Settings) -> dict[str, dict[str, Any]]:
    specs = {}
    for name in topics.ALL + topics.OPERATIONS:
        configs = {"cleanup.policy": "compact"} if name in topics.COMPACTED else {}
        if settings.kokeilu_topic_replication > 1:
            # With acks=all a write needs this many replicas in sync: one replica may be lost (a
            # broker down) and writes still go on, while no acknowledged write rests on one copy.
            configs["min.insync.replicas"] = str(min(2, settings.kokeilu_topic_replication - 1))
        specs[settings.physical_topic(name)] = {
            "num_partitions": settings.kokeilu_topic_partitions,
            "replication_factor": settings.kokeilu_topic_replication,
            "configs": configs,
        }
    return specs


def ensure_topics(
    settings: Settings, names: dict[str, dict[str, Any]] | None = None, deadline_seconds: float = 120
) -> None:
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
                    _create(admin, missing)
                return
            finally:
                admin.close()
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("Kafka not reachable yet (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5)


def _create(admin: KafkaAdminClient, missing: dict[str, dict[str, Any]]) -> None:
    result = admin.create_topics(missing, raise_errors=False)
    created, refused = [], []
    for topic in result["topics"]:
        error = for_code(topic["error_code"])
        if error is NoError:
            created.append(topic["name"])
        elif error is TopicAlreadyExistsError:
            continue  # another service created it at the same moment
        elif error in (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
            refused.append(topic["name"])
        else:
            raise error(f"creating topic {topic['name']}: {topic.get('error_message')}")
    if created:
        admin.wait_for_topics(created)
        log.info("created topics %s", sorted(created))
    if refused:
        # Not allowed to create (or even see) them: in a secured cluster the admin step creates
        # the topics, and the ACLs decide which of them this principal may use.
        log.info(
            "not authorised to create topics %s; leaving them to the admin step (python -m kokeilu.kafka.acls apply)",
            sorted(refused),
        )
