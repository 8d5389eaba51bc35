"""Shared by the workflow integration tests: tokens of a panel and a manager, and reading a topic to its end."""

from __future__ import annotations

import hashlib
import json

from kafka import KafkaConsumer, TopicPartition

from tests.support import BOOTSTRAP

EVALUATORS = ["aino", "eero", "liisa", "matti"]  # the default smart_mobility panel


def _token(name: str, scopes: list[str]) -> dict:
    return {"name": name, "scopes": scopes, "sha256": hashlib.sha256(f"{name}-token".encode()).hexdigest()}


TOKENS = json.dumps(
    [_token(n, ["evaluation:read", "evaluation:write"]) for n in EVALUATORS + ["outsider"]]
    + [
        _token("manager", ["evaluation:read", "evaluation:manage", "proposals:read", "proposals:write"]),
        _token("reader", ["proposals:read", "evaluation:read"]),
    ]
)


def auth(name: str) -> dict:
    return {"Authorization": f"Bearer {name}-token"}


def drain(topic: str, predicate=lambda e: True) -> list[dict]:
    """Every event on `topic` (read up to its current end) that `predicate` accepts, in order."""
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        found = []
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    try:
                        event = json.loads(r.value)
                    except (TypeError, ValueError):
                        continue
                    if isinstance(event, dict) and predicate(event):
                        found.append(event)
        return found
    finally:
        consumer.close()
