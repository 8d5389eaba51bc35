"""Signed unsubscribe links: every e-mail carries one (List-Unsubscribe, RFC 8058 one-click, and
in its footer), and the link itself is the authority to stop that mail: no token, no login.

A link is `<base URL>/v1/unsubscribe/<token>`, the token `<payload>.<signature>`, both base64url
without padding: the payload names what the mail came from (`s:<subscription id>` for an
immediate e-mail, `d:<delivery id>` for a digest, which may gather several subscriptions,
`p:<proposal id>` for a proposer's e-mail about their own proposal), the signature is the
HMAC-SHA256 of the payload under the service's key. Links do not expire (an old e-mail's link
still works); changing the key invalidates every link sent before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)

KINDS = {"s": "subscription", "d": "digest", "p": "proposer"}
MIN_SECRET_LENGTH = 32
_DOMAIN = b"kokeilu-unsubscribe-v1:"  # what a signature is over: nothing else signed with the key matches
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_B64 = re.compile(r"[A-Za-z0-9_-]+")


class InvalidToken(ValueError):
    """The token is not one this service made: `problem` says what is wrong with it."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Target:
    kind: str  # subscription, digest or proposer
    id: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise InvalidToken("malformed: not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed: not base64url") from None


class Links:
    """Makes and checks unsubscribe links with one key."""

    def __init__(self, key: bytes, base_url: str):
        if len(key) < MIN_SECRET_LENGTH:
            raise ValueError(f"an unsubscribe key has at least {MIN_SECRET_LENGTH} bytes")
        self._key = key
        self.base_url = base_url.rstrip("/")

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _DOMAIN + payload, hashlib.sha256).digest()

    def token(self, kind: str, ident: str) -> str:
        if kind not in KINDS or not _ID.fullmatch(ident):
            raise ValueError(f"cannot make an unsubscribe token for {kind}:{ident!r}")
        payload = f"{kind}:{ident}".encode("ascii")
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def url(self, kind: str, ident: str) -> str:
        return f"{self.base_url}/v1/unsubscribe/{self.token(kind, ident)}"

    def verify(self, token: str) -> Target:
        """What the token names; InvalidToken when it is malformed or its signature does not match."""
        encoded, dot, signature = token.partition(".")
        if not dot or not encoded or not signature:
            raise InvalidToken("malformed: expected <payload>.<signature>")
        payload, mac = _unb64(encoded), _unb64(signature)
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidToken("signature does not match (a link altered, cut short, or made with another key)")
        kind, _, ident = payload.decode("ascii", "replace").partition(":")
        if kind not in KINDS or not _ID.fullmatch(ident):  # signed by us, so never; but never trusted blindly
            raise InvalidToken("malformed: unknown target")
        return Target(KINDS[kind], ident)


def key_from(secret: str | None, admin_token: str | None) -> bytes:
    """The signing key: KOKEILU_UNSUBSCRIBE_SECRET; without it, one derived from the admin token
    (so that a local `make run` works with no configuration; every instance with the same admin
    token derives the same key), with a warning; without either, a random key, with a louder one
    (links then stop working when the process restarts)."""
    if secret:
        return secret.encode("utf-8")
    if admin_token:
        log.warning(
            "KOKEILU_UNSUBSCRIBE_SECRET is not set: unsubscribe links are signed with a key derived "
            "from the admin token (set a secret of its own, at least %d characters, in production)",
            MIN_SECRET_LENGTH,
        )
        return hmac.new(admin_token.encode("utf-8"), b"kokeilu-unsubscribe-key", hashlib.sha256).digest()
    log.error(
        "neither KOKEILU_UNSUBSCRIBE_SECRET nor KOKEILU_ADMIN_TOKEN is set: unsubscribe links are "
        "signed with a random key and stop working when this process restarts"
    )
    return secrets.token_bytes(32)


class UnsubscribeLinks(DependencyProvider):
    """Gives workers the service's `Links` (the key is made once, when the service starts)."""

    def __init__(self, secret: str | None, base_url: str, **kwargs: Any) -> None:
        self.secret, self.base_url = secret, base_url
        super().__init__(**kwargs)

    def setup(self) -> None:
        from kokeilu.config import get_settings

        self.links = Links(key_from(self.secret, get_settings().kokeilu_admin_token), self.base_url)

    def get_dependency(self, worker_ctx: WorkerContext) -> Links:
        return self.links
