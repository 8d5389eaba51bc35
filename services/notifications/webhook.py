"""The HTTP client that POSTs webhooks (a nameko DependencyProvider around a requests Session).

Every connection goes through the address guard (kokeilu.netguard): the host is resolved and
checked right before connecting, and the connection goes to an address that was checked. What a
failed attempt records is a short category, never the peer's banner or body (the delivery log is
shown to subscribers); the detail goes to this service's log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider
from urllib3.exceptions import NameResolutionError, ProtocolError

from kokeilu.netguard import AddressPolicy, AddressRefused, GuardedAdapter

from .domain import ADDRESS_REFUSED

log = logging.getLogger(__name__)


def guarded_session(policy: AddressPolicy, **adapter_kwargs: Any) -> requests.Session:
    """A session that sends only where `policy` allows: no proxies, no .netrc, no redirects followed."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(policy, **adapter_kwargs)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _caused_by(exc: BaseException, kind: type) -> bool:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException) and _caused_by(arg, kind):
                return True
        reason = getattr(current, "reason", None)  # urllib3 errors keep their cause there (or a str)
        current = reason if isinstance(reason, BaseException) else (current.__cause__ or current.__context__)
    return False


def error_category(exc: BaseException) -> str:
    """A short, neutral description of why an attempt failed."""
    if _caused_by(exc, AddressRefused):
        return ADDRESS_REFUSED
    if isinstance(exc, requests.Timeout) or _caused_by(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls error"
    if _caused_by(exc, NameResolutionError):
        return "name not resolved"
    if _caused_by(exc, ConnectionRefusedError):
        return "connection refused"
    if _caused_by(exc, ConnectionResetError):
        return "connection reset"
    if _caused_by(exc, ProtocolError):
        return "invalid response"
    if isinstance(exc, requests.ConnectionError):
        return "connection error"
    return "request failed"


def post(
    session: requests.Session, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int | None, str | None]:
    """(status code, None), or (None, a category) when no HTTP answer came."""
    try:
        # stream: the body is never read (nothing of it is stored or shown, and it may be huge)
        response = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True)
        _release(response)
        return response.status_code, None
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the attempt is recorded, not lost
        try:
            category = error_category(exc)
        except Exception:  # noqa: BLE001
            category = "request failed"
        log.warning("webhook delivery to %s failed: %s (%s: %s)", _host_of(url), category, exc.__class__.__name__, exc)
        return None, category


def _release(response: requests.Response) -> None:
    """Done with `response`. An answer without a body (204, 304, Content-Length: 0) is read to its
    end (nothing to wait for), which gives its connection back to the session's pool for the next
    POST to that host; closing an unread answer would close the connection. One with a body is
    closed unread, as before (it may be huge, or slow)."""
    try:
        if response.status_code in (204, 304) or response.headers.get("Content-Length") == "0":
            response.raw.read()  # b"": the connection goes back to the pool
    except Exception:  # noqa: BLE001 - the answer's status is what counts; the connection is closed below
        pass
    response.close()


def _host_of(url: str) -> str:
    return urlsplit(url).hostname or "?"


class WebhookSender(DependencyProvider):
    """Gives workers `send(url, body, headers) -> (status_code | None, error | None)`."""

    def __init__(self, timeout_seconds: float = 10.0, policy: AddressPolicy | None = None, **kwargs: Any) -> None:
        self.timeout = timeout_seconds
        self.policy = policy
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.session = guarded_session(self.policy or AddressPolicy())

    def stop(self) -> None:
        self.session.close()

    def get_dependency(
        self, worker_ctx: WorkerContext
    ) -> Callable[[str, bytes, dict[str, str]], tuple[int | None, str | None]]:
        session, timeout = self.session, self.timeout

        def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
            return post(session, url, body, headers, timeout)

        return send
