"""Shared test utilities: real service processes, a probe on the real broker, real mail and webhook
servers, the services' real stores on a file of the test's own, waiting on conditions. Test data is
built by tests/builders.py."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from chaos.platform import free_port  # noqa: F401  (the one way tests choose a port)
from kokeilu.contracts import CloudEvent
from kokeilu.store import INBOX, OUTBOX, Database
from services import SERVICES, nameko_target

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A token that may only read proposals: configured by its hash, as production tokens are.
READER = {"Authorization": "Bearer reader-token"}
READER_TOKENS = json.dumps(
    [
        {
            "name": "reader",
            "scopes": ["proposals:read", "catalogue:read"],
            "sha256": hashlib.sha256(b"reader-token").hexdigest(),
        }
    ]
)
SERVICE_CLASSES = SERVICES  # services/__init__.py: the one list of the services and their classes


def wait_until(condition: Callable[[], object], timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the thing waited for may not answer yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


class Platform:
    """Services of one test, each a real `nameko run` process, on topics of their own (prefix)."""

    # Every platform that launched a service; a failing test's report shows their logs (conftest).
    launched: weakref.WeakSet[Platform] = weakref.WeakSet()

    def __init__(
        self,
        tmp: Path,
        prefix: str | None = None,
        extra_env: dict | None = None,
        service_env: dict[str, dict] | None = None,
    ):
        """`extra_env` goes to every service; `service_env[name]` to that one (e.g. its Kafka principal)."""
        self.tmp = tmp
        self.prefix = prefix or f"t{uuid.uuid4().hex[:10]}."
        self.extra_env = extra_env or {}
        self.service_env = service_env or {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}

    def env(self, service: str, port: int) -> dict:
        env = dict(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
                "KOKEILU_TOPIC_PREFIX": self.prefix,
                "KOKEILU_DATA_DIR": str(self.tmp / "data"),
                "KOKEILU_ADMIN_TOKEN": TOKEN,
                "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "PYTHONPATH": str(ROOT),
                "KOKEILU_TOPIC_PARTITIONS": "3",
                "KOKEILU_RELAY_INTERVAL_SECONDS": "0.2",
                "KOKEILU_TOKENS": READER_TOKENS,
                "KOKEILU_SQLITE_BUSY_TIMEOUT_SECONDS": "1",
                # Test receivers listen on 127.0.0.1, which the webhook address guard refuses otherwise.
                "KOKEILU_WEBHOOK_ALLOWLIST": "127.0.0.0/8,::1",
            }
        )
        env.pop("DATABASE_URL", None)
        env.update(self.extra_env)
        env.update(self.service_env.get(service, {}))
        return env

    def start(self, *instances: str) -> Platform:
        """Start each of `instances`: a service's name, or `service@N` for another instance of it
        (same store and consumer group, a port of its own)."""
        for instance in instances:
            self.launch(instance)
        for instance in instances:
            self.wait_ready(instance)
        return self

    def launch(self, instance: str, port: int | None = None) -> subprocess.Popen:
        """Start `instance` without waiting for it to be ready (on `port`, or a free one)."""
        service = instance.split("@")[0]
        port = port or free_port()
        Platform.launched.add(self)
        log = open(self.tmp / f"{instance}.log", "ab")
        self.procs[instance] = subprocess.Popen(
            [
                sys.executable,
                "-W",
                "ignore::DeprecationWarning",
                "-m",
                "nameko",
                "run",
                "--config",
                f"services/{service}/config.yaml",
                nameko_target(service),
            ],
            cwd=ROOT,
            env=self.env(service, port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.ports[instance] = port
        return self.procs[instance]

    def wait_ready(self, instance: str, timeout: float = 90) -> None:
        wait_until(
            lambda: self._ready(instance), timeout=timeout, what=f"{instance} to be ready ({self.log(instance)})"
        )

    def wait_for_members(self, service: str, members: int, timeout: float = 60) -> None:
        """Wait until every consumer group of `service` is stable with `members` members (each
        instance has partitions: work sent now is shared between them)."""
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        name = f"{self.prefix}kokeilu.{service}"

        def stable():
            groups = [
                g["group_id"]
                for g in admin.list_groups()
                if g["group_id"] == name or g["group_id"].startswith(name + ".")
            ]
            described = admin.describe_groups(groups) if groups else {}
            return groups and all(
                d["group_state"] == "Stable" and len(d["members"]) == members for d in described.values()
            )

        try:
            wait_until(stable, timeout=timeout, what=f"{members} members in each consumer group of {service}")
        finally:
            admin.close()

    def _ready(self, service: str) -> bool:
        if self.procs[service].poll() is not None:
            raise AssertionError(f"{service} exited:\n{self.log_text(service)[-3000:]}")
        return requests.get(self.url(service, "/health/ready"), timeout=2).status_code == 200

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def get(self, service: str, path: str, **kw):
        return requests.get(
            self.url(service, path), headers=kw.pop("headers", AUTH), timeout=kw.pop("timeout", 10), **kw
        )

    def post(self, service: str, path: str, body=None, **kw):
        return requests.post(
            self.url(service, path), json=body, headers=kw.pop("headers", AUTH), timeout=kw.pop("timeout", 10), **kw
        )

    def delete(self, service: str, path: str, **kw):
        return requests.delete(
            self.url(service, path), headers=kw.pop("headers", AUTH), timeout=kw.pop("timeout", 10), **kw
        )

    def log(self, service: str) -> Path:
        return self.tmp / f"{service}.log"

    def log_text(self, service: str) -> str:
        return self.log(service).read_text(errors="replace")

    def _last_health(self, service: str) -> None:
        """Note beside the service's log what it said of itself (store, Kafka, each consumer group's
        state) just before it was stopped: a failing test's report shows it."""
        try:
            body = requests.get(self.url(service, "/health/ready"), timeout=2).text
        except requests.RequestException as exc:
            body = f"no answer ({exc.__class__.__name__})"
        with open(self.tmp / f"{service}.health", "a") as notes:
            notes.write(f"/health/ready before stopping: {body}\n")

    def wrote_since(self, when: float) -> bool:
        return any(path.stat().st_mtime >= when for path in self.tmp.glob("*.log"))

    def log_tails(self, lines: int = 40) -> str:
        """The last `lines` lines of each instance's log, for a failing test's report."""
        parts = []
        for path in sorted([*self.tmp.glob("*.log"), *self.tmp.glob("*.health")]):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path} (last {len(tail)} lines) ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def topic(self, logical: str) -> str:
        return self.prefix + logical

    def stop(self, *services: str, timeout: float = 30) -> dict[str, int]:
        codes = {}
        for service in services or list(self.procs):
            proc = self.procs.pop(service, None)
            if proc is None:
                continue
            self._last_health(service)
            proc.send_signal(signal.SIGTERM)
            try:
                codes[service] = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[service] = proc.wait()
        return codes


def deadletters(platform: Platform, *args: str) -> subprocess.CompletedProcess:
    """`python -m kokeilu.deadletters ARGS` as an operator runs it, on the platform's topics; it must succeed."""
    env = dict(
        os.environ, KAFKA_BOOTSTRAP_SERVERS=BOOTSTRAP, KOKEILU_TOPIC_PREFIX=platform.prefix, PYTHONPATH=str(ROOT)
    )
    done = subprocess.run(
        [sys.executable, "-m", "kokeilu.deadletters", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"deadletters {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def send_events(platform: Platform, probe: Probe, *events: dict) -> None:
    """Put workflow events on the platform's topics, each on its type's topic, keyed by its subject."""
    from kokeilu.contracts import BY_NAME

    for event in events:
        probe.send(platform.topic(BY_NAME[event["type"]].topic), event, key=event["subject"])


class Probe:
    """Reads and writes raw records on the real broker, outside any service."""

    def __init__(self, bootstrap: str = BOOTSTRAP):
        self.bootstrap = bootstrap
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")

    def send(self, topic: str, value: bytes | dict | None, key: str | None = None, headers=None) -> None:
        if isinstance(value, dict):
            value = json.dumps(value).encode()
        self.producer.send(topic, value=value, key=key.encode() if key else None, headers=headers or [])
        self.producer.flush(timeout=30)

    def records(self, topic: str, predicate: Callable = lambda r: True, count: int = 1, timeout: float = 30) -> list:
        """Wait until `count` records on `topic` satisfy `predicate`; they are returned in offset order."""
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=200,
        )
        found: list = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and len(found) < count:
                for batch in consumer.poll(timeout_ms=300).values():
                    found.extend(r for r in batch if predicate(r))
        finally:
            consumer.close()
        if len(found) < count:
            raise AssertionError(f"timed out after {timeout}s: {len(found)} of {count} records on {topic}")
        return found

    def events(
        self, topic: str, type_: str, count: int = 1, timeout: float = 30, where: Callable = lambda e: True
    ) -> list[dict]:
        def match(record):
            try:
                event = json.loads(record.value)
            except (TypeError, ValueError):
                return False
            return event.get("type") == type_ and where(event)

        return [json.loads(r.value) for r in self.records(topic, match, count, timeout)]

    def close(self):
        self.producer.close()


def headers_of(record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


class Mailbox:
    """A real SMTP server on 127.0.0.1 that keeps every message it accepts: parsed (policy=default)
    in `messages`, and the bytes as received in `raw`, in the same order."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.raw: list[bytes] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                mailbox.raw.append(envelope.content)
                mailbox.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]

    def raw_to(self, address: str) -> list[bytes]:
        """The bytes of each message to `address`, as the server received them."""
        return [raw for raw, m in zip(self.raw, self.messages, strict=False) if m["To"] == address]

    def close(self):
        self.controller.stop()


class Receiver:
    """A real webhook receiver on 127.0.0.1 that answers with the statuses it is told to."""

    def __init__(self, statuses=(204,)):
        self.statuses = list(statuses)
        self.received: list[tuple[dict, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.record(self.path, dict(self.headers), json.loads(body))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, path: str, headers: dict, body) -> None:
        """Keep one POST (a subclass keeps what it needs)."""
        self.received.append((headers, body))

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self):
        self.server.shutdown()


# The services' real stores ----------------------------------------------------------------------
def database(tmp_path: Path, service: str) -> Database:
    """`service`'s store on a SQLite file in `tmp_path`, migrated by its Alembic migrations."""
    db = Database(f"sqlite:///{tmp_path / service}.db", ROOT / "services" / service / "migrations")
    db.migrate()
    return db


def outbox_records(db: Database) -> list[tuple[str, str | None, CloudEvent]]:
    """What a store's units of work committed to publish, in order: (topic, key, event)."""
    with db.transaction() as conn:
        rows = list(conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id)))
    return [
        (r.topic, r.key, CloudEvent.model_validate(json.loads(r.value))) for r in rows if r.event_type != "deadletter"
    ]


def outbox(db: Database, type_: str | None = None) -> list[CloudEvent]:
    """The events a store's units of work recorded to publish (of `type_`, full or its last part)."""
    events = [event for _, _, event in outbox_records(db)]
    return [e for e in events if type_ is None or e.type == type_ or e.type.endswith("." + type_)]


def inbox_size(db: Database) -> int:
    with db.transaction() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(INBOX)).scalar_one()


class Store:
    """A service's store for its use-case tests, the in-memory fake (tests/unit/fakes.py) or the
    real one on a SQLite file: `uow()` is what a use case is handed, `records()` what was committed
    to publish, as (topic, key, event). `fake` is the fake unit of work, None on the real store."""

    def __init__(self, kind: str, tmp_path: Path, service: str, fake_class, real_class):
        self.kind = kind
        self.db: Database | None = None
        if kind == "fake":
            self.fake = fake_class()
            self.uow = lambda: self.fake
        else:
            self.fake = None
            self.db = database(tmp_path, service)
            self.uow = lambda: real_class(self.db)

    def records(self) -> list[tuple[str, str | None, CloudEvent]]:
        if self.fake is not None:
            return [(p.topic, p.key, p.event) for p in self.fake.outbox]
        return outbox_records(self.db)

    def published(self, type_: str | None = None) -> list[CloudEvent]:
        events = [event for _, _, event in self.records()]
        return [e for e in events if type_ is None or e.type == type_ or e.type.endswith("." + type_)]

    def inbox_size(self) -> int:
        return len(self.fake.inbox) if self.fake is not None else inbox_size(self.db)

    def read(self, query: Callable):
        """`query(uow)` in a transaction of its own."""
        with self.uow() as uow:
            return query(uow)

    def close(self) -> None:
        if self.db is not None:
            self.db.dispose()


@contextmanager
def stores_of(kind: str, tmp_path: Path, service: str, fake_class, real_class) -> Iterator[Callable[[str], Store]]:
    """`make(name)`: a new Store of `kind` for `service` in tmp_path/name (several to compare:
    the same events applied one way and another), each closed at the end."""
    made: list[Store] = []

    def make(name: str) -> Store:
        (tmp_path / name).mkdir(exist_ok=True)
        made.append(Store(kind, tmp_path / name, service, fake_class, real_class))
        return made[-1]

    try:
        yield make
    finally:
        for s in made:
            s.close()
