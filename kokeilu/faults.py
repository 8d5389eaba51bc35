"""Crash points: let a chaos run kill a process at an exact boundary, not only at random.

Off unless `KOKEILU_CRASH_AT` is set (it never is in production). It names one or more points,
comma-separated, each optionally with the hit on which to crash (default: the first):

    KOKEILU_CRASH_AT=uow.committed@5          # SIGKILL itself right after its 5th commit
    KOKEILU_CRASH_AT=relay.published,consumer.applied@20

The points, each placed where a crash is most likely to expose a gap between two effects:

- `uow.committed`     a unit of work has committed; its caller has not seen the result yet
                      (no HTTP response sent, no offset committed, no metric counted)
- `relay.published`   the broker acknowledged a relay batch; the rows are not yet marked sent
- `consumer.applied`  a consumed record was applied inside its batch's transaction, which has
                      not committed yet (a kill here is a kill in the middle of a batch)
- `consumer.committed` a batch's transaction committed; its offsets are not committed yet

The process kills itself with SIGKILL, exactly as `kill -9` would: no finally blocks, no flush.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

POINTS = ("uow.committed", "relay.published", "consumer.applied", "consumer.committed")


def _parse(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, nth = part.partition("@")
        if name not in POINTS:
            raise ValueError(f"KOKEILU_CRASH_AT: unknown crash point {name!r}; known: {', '.join(POINTS)}")
        armed[name] = int(nth) if nth else 1
    return armed


_ARMED = _parse(os.environ.get("KOKEILU_CRASH_AT", ""))
_HITS: dict[str, int] = {}
_LOCK = threading.Lock()


def crash_point(name: str) -> None:
    """Kill this process here if the point is armed and this is the hit it is armed for."""
    if not _ARMED or name not in _ARMED:
        return
    with _LOCK:
        _HITS[name] = _HITS.get(name, 0) + 1
        if _HITS[name] != _ARMED[name]:
            return
    sys.stderr.write(f"kokeilu: crash point {name} hit {_ARMED[name]}: SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
