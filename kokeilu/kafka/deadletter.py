"""The one shape of a dead letter on `kokeilu.deadletter.v1`, whoever sets the record aside
(kokeilu/contracts/deadletter.py is its contract: every header and what it says).

A dead letter keeps the original value (so it can be read and redriven) and says in headers
where it came from and why. It must itself always be storable and publishable, whatever the
original was: header texts are made valid UTF-8 without NUL characters (PostgreSQL refuses
both), and a value larger than the platform's event limit is cut to its first 64 KiB, with
`kokeilu.value.truncated` giving the original size: the whole record stays on its source topic
at the partition and offset the headers name, for as long as that topic keeps it.
"""
from __future__ import annotations

from dataclasses import dataclass

from kokeilu.contracts import deadletter as contract, topics
from kokeilu.contracts.deadletter import KEEP_BYTES, MAX_ERROR, MAX_HEADER, MAX_KEY
from kokeilu.contracts.envelope import MAX_EVENT_BYTES

# Why a record was set aside (the contract says what each means, and names every header).
REASONS = tuple(contract.REASONS)


def clean(text: str, limit: int) -> str:
    """Valid UTF-8, no NUL, at most `limit` characters."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\\0")[:limit]


@dataclass(frozen=True)
class DeadLetter:
    key: str | None
    value: bytes | None
    headers: dict[str, str]
    topic: str = topics.DEADLETTER
    event_type: str = "deadletter"


def dead_letter(value: bytes | None, key: bytes | str | None, reason: str, error: str, service: str,
                **source: str | int) -> DeadLetter:
    """`source` names where the record was: topic, partition, offset, consumer_group, outbox_id."""
    assert reason in REASONS, reason
    headers = {f"kokeilu.source.{name.replace('_', '.')}" if name in ("topic", "partition", "offset")
               else f"kokeilu.{name.replace('_', '.')}": clean(str(v), MAX_HEADER) for name, v in source.items()}
    headers.update({"kokeilu.service": service, "kokeilu.reason": reason, "kokeilu.error": clean(error, MAX_ERROR)})
    if value is not None and len(value) > MAX_EVENT_BYTES:
        headers["kokeilu.value.truncated"] = str(len(value))
        value = value[:KEEP_BYTES]
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    return DeadLetter(None if key is None else clean(key, MAX_KEY), value, headers)
