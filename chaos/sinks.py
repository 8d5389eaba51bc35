"""Receivers a run points the notifications service at: a webhook endpoint and an SMTP server.

Both record everything they get, in memory, and answer success at once (they play well-behaved
subscribers, so every retry or duplicate the audit sees comes from the platform, not from them).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A subscriber's e-mail subject, in every language: "Kokeilu: <short type>[ – <title>]".
SUBSCRIBER_PREFIX = "Kokeilu: "


@dataclass(frozen=True)
class Webhook:
    """One POST received: which subscription (the path), the delivery and event it carries."""

    subscription: str  # the last path segment, /hook/<name>
    delivery_id: str | None  # Kokeilu-Delivery-Id
    idempotency_key: str | None
    event_id: str | None  # Kokeilu-Event-Id
    event_type: str | None
    proposal_id: str | None  # data.proposal_id, else the CloudEvent subject
    signature_ok: bool | None  # None when the sink does not know the subscription's secret
    received_at: float


@dataclass(frozen=True)
class Mail:
    """One message taken by the SMTP sink."""

    recipients: tuple[str, ...]
    subject: str
    message_id: str | None
    event: str | None  # a subscriber e-mail's event type ("Kokeilu: result.published – ..."); None for a proposer's
    proposal_id: str | None  # the first UUID in the body (the proposal id line, in any of the three languages)
    received_at: float


def signature_valid(secret: str, header: str | None, body: bytes) -> bool:
    """Check `Kokeilu-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` as a receiver would."""
    if not header:
        return False
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = parts["t"]
    except (ValueError, KeyError):
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookSink:
    """HTTP server on 127.0.0.1 (a free port); POST /hook/<subscription> is recorded and answered 204."""

    def __init__(self):
        self.received: list[Webhook] = []
        self.secrets: dict[str, str] = {}
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the sender reuses its connections

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink._record(self.path, self.headers, body)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet: the audit is the record
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)

    def url(self, subscription: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{subscription}"

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, path: str, headers, body: bytes) -> None:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        try:
            event = json.loads(body)
            data = event.get("data") or {}
            event_type, proposal_id = event.get("type"), data.get("proposal_id") or event.get("subject")
        except (ValueError, AttributeError):
            event_type = proposal_id = None
        secret = self.secrets.get(name)
        receipt = Webhook(
            name,
            headers.get("Kokeilu-Delivery-Id"),
            headers.get("Idempotency-Key"),
            headers.get("Kokeilu-Event-Id"),
            event_type,
            proposal_id,
            None if secret is None else signature_valid(secret, headers.get("Kokeilu-Signature"), body),
            time.monotonic(),
        )
        with self._lock:
            self.received.append(receipt)

    def snapshot(self) -> list[Webhook]:
        with self._lock:
            return list(self.received)


class SmtpSink:
    """SMTP server (aiosmtpd) on 127.0.0.1; every message is recorded and answered 250."""

    def __init__(self, port: int):
        self.received: list[Mail] = []
        self._lock = threading.Lock()
        self.port = port
        self._controller = Controller(self, hostname="127.0.0.1", port=port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        subject = str(message.get("Subject", ""))
        event = None
        if subject.startswith(SUBSCRIBER_PREFIX):
            event = subject.removeprefix(SUBSCRIBER_PREFIX).split(" ", 1)[0].strip()
        found = UUID.search(text)
        mail = Mail(
            tuple(envelope.rcpt_tos),
            subject,
            message.get("Message-ID"),
            event,
            found.group(0) if found else None,
            time.monotonic(),
        )
        with self._lock:
            self.received.append(mail)
        return "250 OK"

    def snapshot(self) -> list[Mail]:
        with self._lock:
            return list(self.received)
