"""The load driver: a steady stream of proposals over HTTP, each with an Idempotency-Key of its own.

A proposal is submitted at its scheduled moment (index / rate after the start) by one of a few
worker threads. The client does what a careful integrator does: on a connection error, a
timeout, 409 (the same key still in progress), 429 or any 5xx, it retries the *same* request
with the *same* key, with exponential backoff (honouring Retry-After), until it gets its 201 or
its deadline passes. So a crash between the proposal's commit and the answer must still end in
one proposal: the audit checks that no title is stored twice.

Titles are six words drawn (seeded) from a list of 121, plus the index: far apart enough that
screening's near-duplicate rule (difflib ratio >= 0.9 on titles) never fires between two of
them. Budgets stay under every focus area's cap and no proposal uses the `school` environment,
so every proposal passes screening and reaches the catalogue.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests

WORDS = """amber anchor aspen badger baltic birch bison bramble breeze canyon cedar cinder clover cobalt comet
coral crane crystal cypress dahlia delta dune eagle ember falcon fern fjord flint forest fossil garnet geyser
glacier granite gravel harbor hazel heron horizon husky indigo iris island jasper juniper kestrel lagoon larch
lava lichen lily linden lotus lynx magma maple marble meadow mesa meteor mink moss nebula nectar nickel oak oasis
obsidian onyx opal orchid osprey otter pebble pepper pine plume polar poplar prairie quartz quill raven reef
ridge river robin ruby saffron sage salmon sapphire sequoia shadow sierra silver slate sparrow spruce squall
stork summit swallow talon thistle thunder tide timber topaz tulip tundra umber valley velvet violet walnut
willow wren yarrow zephyr zinc""".split()
FOCUS = ("smart_mobility", "learning", "sustainable_development")
ENVIRONMENTS = ("west_metro", "kera", "waterfront_walkway", "citywide")
LANGUAGES = ("fi", "sv", "en")
RETRYABLE = {409, 429}


@dataclass
class Proposal:
    """One proposal of the run, from its first try to its 201."""

    index: int
    key: str  # Idempotency-Key, the same on every try
    title: str
    contact_email: str
    body: dict
    id: str | None = None
    tries: int = 0
    replayed: bool = False  # the 201 was a replay of the stored answer (Idempotent-Replayed)
    outcome: str = "pending"  # accepted | refused (a 4xx that is not retried) | unconfirmed (deadline passed)
    last_error: str | None = None
    seconds: float = 0.0  # first try -> 201


def make_proposals(n: int, seed: int, run_tag: str) -> list[Proposal]:
    rng = random.Random(f"{seed}-proposals")
    proposals = []
    for i in range(n):
        title = " ".join(rng.choice(WORDS) for _ in range(6)) + f" pilot {i}"
        focus = rng.choice(FOCUS)
        email = f"proposer-{i}@{run_tag}.chaos.example"
        body = {
            "title": title,
            "summary": f"A chaos-run pilot ({title}) that exists to be counted from intake to the catalogue.",
            "focus_area": focus,
            "environment": rng.choice(ENVIRONMENTS),
            "proposer": {"organisation": f"Chaos Pilot {i} Oy", "kind": "company", "contact_email": email},
            "hypothesis": "Every accepted proposal reaches the catalogue exactly once, whatever is killed.",
            "kpis": [{"name": "results published", "unit": "results", "baseline": 0, "target": 1}],
            "budget_eur": rng.randrange(5_000, 95_000, 500),
            "duration_weeks": rng.randint(4, 52),
            "partners": [],
            "language": rng.choice(LANGUAGES),
        }
        proposals.append(Proposal(i, f"chaos-{run_tag}-{i}-{uuid.UUID(int=rng.getrandbits(128))}", title, email, body))
    return proposals


@dataclass
class LoadStats:
    """What the clients saw, across every try."""

    statuses: Counter = field(default_factory=Counter)  # HTTP status of every answer, by code
    connection_errors: int = 0
    timeouts: int = 0
    retries: int = 0

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)


class LoadDriver:
    """Submits `proposals` at `rate` per second from `concurrency` threads."""

    def __init__(
        self,
        url: str | list[str],
        token: str,
        proposals: list[Proposal],
        rate: float,
        concurrency: int = 4,
        deadline_seconds: float = 360,
        request_timeout: float = 10,
    ):
        # Several instances: proposal i goes to instance i, and each retry to the next one, as a
        # load balancer would send it (a killed instance's clients retry on the survivor).
        self.urls = [url] if isinstance(url, str) else list(url)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.proposals = proposals
        self.rate = rate
        self.concurrency = concurrency
        self.deadline_seconds = deadline_seconds
        self.request_timeout = request_timeout
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._next = itertools.count()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.started_at: float | None = None
        self.finished_at: float | None = None

    def start(self) -> LoadDriver:
        self.started_at = time.monotonic()
        self._threads = [
            threading.Thread(target=self._work, name=f"load-{i}", daemon=True) for i in range(self.concurrency)
        ]
        for t in self._threads:
            t.start()
        return self

    def done(self) -> bool:
        return all(not t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stopping.set()
        for t in self._threads:
            t.join(timeout=self.request_timeout + 5)

    def settled(self) -> int:
        """Proposals whose outcome is known (accepted, refused or unconfirmed)."""
        return sum(1 for p in self.proposals if p.outcome != "pending")

    def accepted(self) -> int:
        return sum(1 for p in self.proposals if p.outcome == "accepted")

    def _work(self) -> None:
        session = requests.Session()
        try:
            while not self._stopping.is_set():
                i = next(self._next)
                if i >= len(self.proposals):
                    break
                due = self.started_at + i / self.rate
                if (wait := due - time.monotonic()) > 0 and self._stopping.wait(
                    wait
                ):  # pacing, not waiting on a result
                    break
                self._submit(session, self.proposals[i], i)
        finally:
            session.close()
            with self._lock:  # the last worker to finish sets it last
                self.finished_at = time.monotonic()

    def _count(self, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                if name == "status":
                    self.stats.statuses[value] += 1
                else:
                    setattr(self.stats, name, getattr(self.stats, name) + value)

    def _submit(self, session: requests.Session, p: Proposal, index: int = 0) -> None:
        started = time.monotonic()
        deadline = started + self.deadline_seconds
        delay = 0.2
        headers = {**self.auth, "Idempotency-Key": p.key}
        while not self._stopping.is_set():
            p.tries += 1
            retry_after = None
            try:
                url = self.urls[(index + p.tries) % len(self.urls)]
                response = session.post(
                    f"{url}/v1/proposals", json=p.body, headers=headers, timeout=self.request_timeout
                )
            except requests.Timeout as exc:
                self._count(timeouts=1)
                p.last_error = f"timeout: {exc.__class__.__name__}"
                session.close()  # a half-read connection is not reused
            except requests.ConnectionError as exc:
                self._count(connection_errors=1)
                p.last_error = f"connection error: {exc.__class__.__name__}"
                session.close()
            else:
                self._count(status=response.status_code)
                if response.status_code == 201:
                    p.id = response.json()["id"]
                    p.replayed = response.headers.get("Idempotent-Replayed") == "true"
                    p.outcome, p.seconds = "accepted", time.monotonic() - started
                    return
                p.last_error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRYABLE and response.status_code < 500:
                    p.outcome = "refused"
                    return
                retry_after = response.headers.get("Retry-After")
            if time.monotonic() >= deadline:
                p.outcome = "unconfirmed"
                return
            self._count(retries=1)
            pause = delay * random.uniform(0.5, 1.0)
            if retry_after and retry_after.isdigit():
                pause = max(pause, min(float(retry_after), 10.0))
            self._stopping.wait(min(pause, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)
        if p.outcome == "pending":
            p.outcome = "unconfirmed"
