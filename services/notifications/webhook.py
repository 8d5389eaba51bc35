"""The HTTP client that POSTs webhooks (a nameko DependencyProvider around a requests Session)."""
from __future__ import annotations

import requests
from nameko.extensions import DependencyProvider


class WebhookSender(DependencyProvider):
    """Gives workers `send(url, body, headers) -> (status_code | None, error | None)`."""

    def __init__(self, timeout_seconds: float = 10.0, **kwargs):
        self.timeout = timeout_seconds
        super().__init__(**kwargs)

    def setup(self):
        self.session = requests.Session()

    def stop(self):
        self.session.close()

    def get_dependency(self, worker_ctx):
        session, timeout = self.session, self.timeout

        def send(url: str, body: bytes, headers: dict):
            try:
                response = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
                return response.status_code, None
            except requests.Timeout:
                return None, f"timed out after {timeout}s"
            except requests.RequestException as exc:
                return None, f"{exc.__class__.__name__}: {exc}"[:500]

        return send
