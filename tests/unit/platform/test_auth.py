"""Bearer tokens with scopes: configured hashed, and an admin token with every scope."""

from __future__ import annotations

import hashlib
import json

import pytest

from kokeilu.auth import SCOPES, Forbidden, TokenRegistry, Unauthenticated, token_hash
from kokeilu.config import Settings

READER_SECRET = "reader-secret"
ADMIN_SECRET = "admin-secret"


def settings(tokens: list[dict] | None = None, admin: str | None = ADMIN_SECRET) -> Settings:
    if tokens is None:
        tokens = [
            {
                "name": "reader",
                "sha256": hashlib.sha256(READER_SECRET.encode()).hexdigest(),
                "scopes": ["proposals:read", "catalogue:read"],
            }
        ]
    return Settings(kokeilu_tokens=json.dumps(tokens), kokeilu_tokens_file=None, kokeilu_admin_token=admin)


@pytest.fixture
def registry() -> TokenRegistry:
    return TokenRegistry.from_settings(settings())


def test_a_configured_token_authenticates_by_its_hash(registry):
    principal = registry.authenticate(f"Bearer {READER_SECRET}")
    assert principal.name == "reader"
    assert principal.scopes == {"proposals:read", "catalogue:read"}


def test_the_scheme_is_case_insensitive_and_spaces_around_the_token_do_not_matter(registry):
    assert registry.authenticate(f"bearer   {READER_SECRET}  ").name == "reader"


@pytest.mark.parametrize("header", [None, ""])
def test_a_request_without_an_authorization_header_is_unauthenticated(registry, header):
    with pytest.raises(Unauthenticated, match="missing Authorization header"):
        registry.authorize(header, "proposals:read")


@pytest.mark.parametrize(
    "header", [f"Basic {READER_SECRET}", f"Token {READER_SECRET}", READER_SECRET, "Bearer", "Bearer    "]
)
def test_a_header_that_is_not_a_bearer_token_is_unauthenticated(registry, header):
    with pytest.raises(Unauthenticated, match="must be 'Bearer <token>'"):
        registry.authorize(header, "proposals:read")


@pytest.mark.parametrize("token", ["wrong-secret", READER_SECRET.upper(), token_hash(READER_SECRET)])
def test_an_unknown_token_is_unauthenticated(registry, token):
    with pytest.raises(Unauthenticated, match="unknown or revoked token"):
        registry.authorize(f"Bearer {token}", None)


def test_a_token_without_the_scope_is_forbidden_naming_the_scope(registry):
    with pytest.raises(Forbidden) as caught:
        registry.authorize(f"Bearer {READER_SECRET}", "proposals:write")
    assert caught.value.scope == "proposals:write"
    assert "proposals:write" in str(caught.value)


def test_a_token_with_the_scope_is_authorized(registry):
    assert registry.authorize(f"Bearer {READER_SECRET}", "catalogue:read").name == "reader"
    assert registry.authorize(f"Bearer {READER_SECRET}", None).name == "reader"


@pytest.mark.parametrize("scope", SCOPES)
def test_the_admin_token_has_every_scope(registry, scope):
    principal = registry.authorize(f"Bearer {ADMIN_SECRET}", scope)
    assert principal.name == "admin"
    assert principal.has(scope)


def test_a_token_with_the_admin_scope_has_every_scope():
    registry = TokenRegistry.from_settings(
        settings([{"name": "ops", "sha256": token_hash("ops-secret"), "scopes": ["admin"]}], admin=None)
    )
    for scope in SCOPES:
        assert registry.authorize("Bearer ops-secret", scope).name == "ops"


def test_without_an_admin_token_configured_no_secret_has_admin_rights():
    registry = TokenRegistry.from_settings(settings(admin=None))
    with pytest.raises(Unauthenticated):
        registry.authorize(f"Bearer {ADMIN_SECRET}", None)
    with pytest.raises(Forbidden):
        registry.authorize(f"Bearer {READER_SECRET}", "admin")


def test_a_hash_configured_in_upper_case_still_matches():
    registry = TokenRegistry.from_settings(
        settings([{"name": "writer", "sha256": token_hash("w").upper(), "scopes": ["proposals:write"]}])
    )
    assert registry.authorize("Bearer w", "proposals:write").name == "writer"


def test_a_configured_unknown_scope_is_refused_at_start_naming_it():
    with pytest.raises(ValueError, match="proposals:delete"):
        TokenRegistry.from_settings(
            settings([{"name": "bad", "sha256": token_hash("b"), "scopes": ["proposals:read", "proposals:delete"]}])
        )


def test_tokens_are_configured_by_hash_never_by_secret():
    # A secret put where its hash belongs does not become a working token.
    registry = TokenRegistry.from_settings(
        settings([{"name": "oops", "sha256": "plain", "scopes": ["admin"]}], admin=None)
    )
    with pytest.raises(Unauthenticated):
        registry.authorize("Bearer plain", None)
