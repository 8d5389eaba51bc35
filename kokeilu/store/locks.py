"""Named locks that several instances of a service take on their shared store.

On PostgreSQL a name is a transaction-level advisory lock: held from the moment it is taken
until the transaction ends (commit or rollback), so nothing can forget to release it, and a
second instance that asks for the same name waits until then. Locks are per database, so two
services never contend. SQLite needs none: a write transaction already holds the whole file,
and only one process writes a SQLite store (docs/operations.md, "Several instances").
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

_TAKE = sa.text("SELECT pg_advisory_xact_lock(:key)")


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (PostgreSQL's advisory lock space)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def hold(conn: sa.Connection, name: str) -> None:
    """Take `name` for the rest of `conn`'s transaction, waiting while another transaction holds it."""
    if conn.dialect.name == "postgresql":
        conn.execute(_TAKE, {"key": lock_key(name)})
