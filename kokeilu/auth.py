"""Bearer tokens with scopes. Tokens are configured by their SHA-256, never in plain text; the
token in KOKEILU_ADMIN_TOKEN has every scope (bootstrapping and local use)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from kokeilu.config import Settings

SCOPES = (
    "proposals:read",
    "proposals:write",
    "evaluation:read",
    "evaluation:write",
    "evaluation:manage",
    "subscriptions:write",
    # Webhooks and e-mails to the token's subscriptions carry residents' personal data unredacted.
    "personal-data:read",
    "catalogue:read",
    "admin",
)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


class Unauthenticated(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, scope: str):
        super().__init__(f"this token lacks the scope {scope!r}")
        self.scope = scope


class TokenRegistry:
    def __init__(self, by_hash: dict[str, Principal]):
        self._by_hash = by_hash

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenRegistry:
        by_hash = {t.sha256.lower(): Principal(t.name, frozenset(t.scopes)) for t in settings.tokens()}
        for principal in by_hash.values():
            unknown = principal.scopes - set(SCOPES)
            if unknown:
                raise ValueError(f"token {principal.name!r} has unknown scopes {sorted(unknown)}")
        if settings.kokeilu_admin_token:
            by_hash[token_hash(settings.kokeilu_admin_token)] = Principal("admin", frozenset(SCOPES))
        return cls(by_hash)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        principal = self._by_hash.get(token_hash(token.strip()))
        if principal is None:
            raise Unauthenticated("unknown or revoked token")
        return principal

    def authorize(self, authorization: str | None, scope: str | None) -> Principal:
        principal = self.authenticate(authorization)
        if scope is not None and not principal.has(scope):
            raise Forbidden(scope)
        return principal
