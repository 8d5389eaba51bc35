"""The CloudEvents `source` of the events the platform publishes: one absolute URI per service.

    <KOKEILU_EVENT_SOURCE_BASE>services/<service>    e.g. https://kokeilu.espoo.fi/services/proposals

CloudEvents recommends an absolute URI for `source`; `source` + `id` is what makes an event
unique (the inboxes are keyed by it). Set KOKEILU_EVENT_SOURCE_BASE to the platform's own URI in
each environment (it need not resolve; it names the producer). Every service of one platform
must use the same base. Consumers accept any non-empty `source` (city systems name their own,
and events published before the base existed say `kokeilu/<service>`), and never route on it.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

SOURCE_BASE_VARIABLE = "KOKEILU_EVENT_SOURCE_BASE"
DEFAULT_SOURCE_BASE = "https://kokeilu.espoo.fi/"
MAX_BASE = 400  # a source is at most 500 characters (envelope.CloudEvent)


def source_base(base: str | None = None) -> str:
    """The base (from the environment unless given): an absolute URI, ending in `/`."""
    base = (os.environ.get(SOURCE_BASE_VARIABLE) or DEFAULT_SOURCE_BASE) if base is None else base
    base = base.strip()
    parts = urlsplit(base)
    if (
        not parts.scheme
        or not (parts.netloc or parts.path)
        or parts.query
        or parts.fragment
        or len(base) > MAX_BASE
        or any(c.isspace() for c in base)
    ):
        raise ValueError(
            f"{SOURCE_BASE_VARIABLE}={base!r}: an absolute URI (no query, fragment or spaces, at most "
            f"{MAX_BASE} characters) is needed, "
            f"e.g. {DEFAULT_SOURCE_BASE}"
        )
    return base if base.endswith("/") else base + "/"


def service_source(service: str, base: str | None = None) -> str:
    """The `source` of the events `service` publishes: `<base>services/<service>`."""
    return f"{source_base(base)}services/{service}"
