"""The one shape of a dead letter on `kokeilu.deadletter.v1`, whoever sets the record aside
(kokeilu/contracts/deadletter.py is its contract: every header and what it says).

A dead letter keeps the original value (so it can be read and redriven) and says in headers
where it came from and why. It must itself always be storable and publishable, whatever the
original was: header texts are made valid UTF-8 without NUL characters (PostgreSQL refuses
both), and a value larger than the platform's event limit is cut to its first 64 KiB, with
`kokeilu.value.truncated` giving the original size: the whole record stays on its source topic
at the partition and offset the headers name, for as long as that topic keeps it.

The original record's headers go along unchanged, beside the `kokeilu.*` ones (the contract
says which are left out, and why), so the value still reads as what it was (a CloudEvent in
structured mode says so in `content-type`) and a redrive can restore them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kokeilu.contracts import deadletter as contract
from kokeilu.contracts import topics
from kokeilu.contracts.deadletter import (
    KEEP_BYTES,
    MAX_ERROR,
    MAX_HEADER,
    MAX_KEY,
    MAX_ORIGINAL_HEADER_BYTES,
    MAX_ORIGINAL_HEADERS,
    NAMESPACE,
    OMITTED,
    REDRIVE_OF,
)
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


def _text(raw: bytes | str | None) -> str | None:
    """`raw` as UTF-8 text without NUL, or None when it is not that (it cannot be kept as it is)."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if "\x00" in raw:
        return None
    try:
        raw.encode("utf-8")  # a lone surrogate, say, is no UTF-8
    except UnicodeEncodeError:
        return None
    return raw


# A record's headers as a consumer reads them ([(name, bytes)]), or an outbox row's ({name: text}).
Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, str] | None


def original_headers(headers: Headers) -> tuple[dict[str, str], list[str]]:
    """The headers a dead letter keeps of the original record's, and the names it leaves out.

    `headers`: a consumer record's [(name, bytes)], or an outbox row's {name: text}."""
    items: list[tuple[str, bytes | str | None]] = (
        list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    )
    kept: dict[str, str] = {}
    omitted: list[str] = []
    size = 0
    for name, raw in items:
        text_name, value = _text(name), _text(raw)
        fits = (
            text_name is not None
            and value is not None
            and len(value) <= MAX_HEADER
            and len(kept) < MAX_ORIGINAL_HEADERS
            and size + len(text_name.encode()) + len(value.encode()) <= MAX_ORIGINAL_HEADER_BYTES
        )
        if not fits or text_name is None or value is None or text_name.startswith(NAMESPACE) or text_name in kept:
            omitted.append(clean(name if isinstance(name, str) else name.decode("utf-8", "replace"), 100))
            continue
        kept[text_name] = value
        size += len(text_name.encode()) + len(value.encode())
    return kept, omitted


def redrive_of(headers: Iterable[tuple[str, bytes | str]] | None) -> str | None:
    """The dead letter a consumed record was redriven from (`partition:offset`), if it was."""
    for name, raw in headers or ():
        if name == REDRIVE_OF:
            return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return None


def dead_letter(
    value: bytes | None,
    key: bytes | str | None,
    reason: str,
    error: str,
    service: str,
    original: Headers = None,
    **source: str | int,
) -> DeadLetter:
    """`source` names where the record was: topic, partition, offset, consumer_group, outbox_id.
    `original`: the original record's headers, kept as the contract says."""
    assert reason in REASONS, reason
    headers, omitted = original_headers(original)
    if omitted:
        headers[OMITTED] = clean(",".join(omitted), MAX_HEADER)
    headers |= {
        f"kokeilu.source.{name.replace('_', '.')}"
        if name in ("topic", "partition", "offset")
        else f"kokeilu.{name.replace('_', '.')}": clean(str(v), MAX_HEADER)
        for name, v in source.items()
    }
    headers.update({"kokeilu.service": service, "kokeilu.reason": reason, "kokeilu.error": clean(error, MAX_ERROR)})
    if value is not None and len(value) > MAX_EVENT_BYTES:
        headers["kokeilu.value.truncated"] = str(len(value))
        value = value[:KEEP_BYTES]
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    return DeadLetter(None if key is None else clean(key, MAX_KEY), value, headers)
