"""The supervisor: a private Kafka broker and the four services, each a real process it can kill.

The broker is `deploy/kafka.sh` on free ports with a data directory inside the run directory
(its jars from KAFKA_LIBS_DIR, so nothing is fetched again). Each service is `nameko run` in a
session of its own, with its own log file, SQLite stores in the run directory and free ports,
so a run never touches `make run` (8001-8004) or the test broker (9092).
"""

from __future__ import annotations

import base64
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
import sqlalchemy as sa
from kafka import KafkaConsumer

from services import SERVICES, nameko_target

ROOT = Path(__file__).resolve().parent.parent


class HarnessError(RuntimeError):
    """The harness could not do its part (start the platform, restart a process); exit status 2."""


# Listening ports are chosen below Linux's ephemeral range (32768-60999 by default), where the
# kernel picks the local ports of outgoing connections: a port chosen there (bind to port 0) can
# be taken by any client's connection in the seconds before a broker or service binds it.
LISTEN_PORTS = range(20000, 32768)


# Every port handed out by this process: never handed out twice. Checking that a port is free
# does not reserve it, and the services listen with SO_REUSEPORT (eventlet's default), so two
# instances given the same port both bind it and the kernel splits connections between them
# (seen once: a proposals instance's requests answered 404 by an evaluation instance).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, outside the ephemeral range, and that
    this process has not handed out before."""
    for _ in range(200):
        port = random.choice(LISTEN_PORTS)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise HarnessError(f"no free port in {LISTEN_PORTS.start}-{LISTEN_PORTS.stop - 1} after 200 tries")


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll `condition` until it returns something truthy; HarnessError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except HarnessError:
            raise
        except Exception as exc:  # what we wait for may not answer yet
            last_error = exc
        if time.monotonic() >= deadline:
            raise HarnessError(
                f"timed out after {timeout:.0f}s waiting for {what}"
                + (f" (last error: {last_error!r})" if last_error else "")
            )
        time.sleep(interval)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, which no init may ever reap in a container, counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Broker:
    """A KRaft node (broker and controller) of this run only, driven through deploy/kafka.sh: alone,
    or node `node_id` of a cluster (`cluster`: the quorum's voters and the cluster id it shares)."""

    def __init__(self, run_dir: Path, libs_dir: Path, node_id: int = 1, cluster: dict[str, str] | None = None):
        self.port, self.controller_port = free_port(), free_port()
        self.node_id = node_id
        self.data_dir = run_dir / ("kafka" if cluster is None else f"kafka-{node_id}")
        self.libs_dir = libs_dir
        self.cluster = cluster or {}
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _script(self, action: str, timeout: float = 240) -> None:
        env = dict(
            os.environ,
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_DATA_DIR=str(self.data_dir),
            KAFKA_LIBS_DIR=str(self.libs_dir),
            KAFKA_NODE_ID=str(self.node_id),
            **self.cluster,
        )
        done = subprocess.run(
            [str(ROOT / "deploy" / "kafka.sh"), action], env=env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise HarnessError(f"deploy/kafka.sh {action} failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self) -> float:
        """Start (or restart after a kill) and wait until it serves; the seconds that took."""
        started = time.monotonic()
        self._script("start")
        # kafka.sh returns when the port is open and its log (appended across restarts) says
        # started; a metadata answer says this broker really serves.
        wait_for(self.serves, 120, f"the broker on {self.bootstrap} to answer a metadata request", interval=0.5)
        return time.monotonic() - started

    def serves(self) -> bool:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, request_timeout_ms=5000, connections_max_idle_ms=10000
        )
        try:
            consumer.topics()
            return True
        finally:
            consumer.close()

    @property
    def pid(self) -> int:
        return int((self.data_dir / "broker.pid").read_text().strip())

    def kill(self) -> None:
        """kill -9, and wait until the process is gone."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        # The leader thread turns zombie before the other threads are gone and the ports closed.
        wait_for(
            lambda: not _alive(pid) and not _listening(self.port) and not _listening(self.controller_port),
            60,
            f"broker pid {pid} to die and close its ports",
        )
        # The dead broker may stay a zombie (its parent, init here, need not reap it at once), which
        # `kill -0` in deploy/kafka.sh takes for a running broker: drop the stale pid file.
        (self.data_dir / "broker.pid").unlink(missing_ok=True)

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        try:
            self.thaw()  # a frozen broker ignores SIGTERM until it runs again
        except (OSError, ValueError):
            pass
        self._script("stop", timeout=90)


class Cluster:
    """Three KRaft nodes of this run, each a broker and a controller: topics replicated three times
    with min.insync.replicas 2, so one node may be killed under load."""

    def __init__(self, run_dir: Path, libs_dir: Path, nodes: int = 3):
        controller_ports = [free_port() for _ in range(nodes)]
        settings = {
            "KAFKA_QUORUM_VOTERS": ",".join(f"{i + 1}@127.0.0.1:{port}" for i, port in enumerate(controller_ports)),
            "KAFKA_CLUSTER_ID": base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="),
            "KAFKA_REPLICATION": str(nodes),
            "KAFKA_MIN_ISR": str(nodes - 1),
        }
        self.nodes = [Broker(run_dir, libs_dir, node_id=i + 1, cluster=settings) for i in range(nodes)]
        for node, port in zip(self.nodes, controller_ports, strict=False):
            node.controller_port = port
        self.bootstrap = ",".join(n.bootstrap for n in self.nodes)

    def start(self) -> float:
        """All nodes at once (a node is ready only with its quorum); the seconds that took."""
        started = time.monotonic()
        errors: list[BaseException] = []

        def start(node):
            try:
                node.start()
            except BaseException as exc:  # reported below, from the harness's thread
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(n,)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return time.monotonic() - started

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Stores:
    """A PostgreSQL database per service for this run, in the server `url` names; dropped at the end."""

    def __init__(self, url: str, tag: str):
        self.url = url
        self.names = {service: f"chaos_{tag}_{service}".lower() for service in SERVICES}
        self.admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")

    def create(self) -> dict[str, str]:
        with self.admin.connect() as conn:
            for name in self.names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        base = self.url.rsplit("/", 1)[0]
        return {service: f"{base}/{name}" for service, name in self.names.items()}

    def drop(self) -> None:
        with self.admin.connect() as conn:
            for name in self.names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def service_of(instance: str) -> str:
    """`evaluation@2` is an instance of evaluation."""
    return instance.split("@")[0]


class Services:
    """The services' instances as `nameko run` processes, started, killed and restarted on the same
    ports: one per service, or `instances` of each (`service`, `service@2`, ...) sharing a store."""

    def __init__(
        self,
        run_dir: Path,
        bootstrap: str,
        token: str,
        extra_env: dict[str, str],
        instances: int = 1,
        database_urls: dict[str, str] | None = None,
    ):
        self.run_dir = run_dir
        self.bootstrap = bootstrap
        self.token = token
        self.extra_env = extra_env
        self.database_urls = database_urls or {}
        self.instances = {
            service: [service] + [f"{service}@{n}" for n in range(2, instances + 1)] for service in SERVICES
        }
        self.all = [i for service in SERVICES for i in self.instances[service]]
        self.ports = {name: free_port() for name in self.all}
        self.procs: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def log(self, service: str) -> Path:
        return self.run_dir / "logs" / f"{service}.log"

    def env(self, instance: str, crash_at: str | None = None) -> dict[str, str]:
        service = service_of(instance)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KOKEILU_CRASH_AT")}
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "KOKEILU_DATA_DIR": str(self.run_dir / "data"),
                "KOKEILU_ADMIN_TOKEN": self.token,
                "WEB_SERVER_ADDRESS": f"127.0.0.1:{self.ports[instance]}",
                "PYTHONPATH": str(ROOT),
                "KOKEILU_TOPIC_PARTITIONS": "3",
                # Webhooks go to the harness's own receiver on loopback, which an SSRF guard refuses
                # unless it is allowed.
                "KOKEILU_WEBHOOK_ALLOWLIST": "127.0.0.0/8,::1",
            }
        )
        env.update(self.extra_env)
        if service in self.database_urls:
            env["DATABASE_URL"] = self.database_urls[service]
        if crash_at:
            env["KOKEILU_CRASH_AT"] = crash_at
        return env

    def start(self, service: str, crash_at: str | None = None) -> None:
        log = open(self.log(service), "ab")
        log.write(
            f"\n=== chaos: starting {service}{' with KOKEILU_CRASH_AT=' + crash_at if crash_at else ''} "
            f"at {time.strftime('%H:%M:%S')} ===\n".encode()
        )
        log.flush()
        self.procs[service] = subprocess.Popen(
            [
                sys.executable,
                "-W",
                "ignore::DeprecationWarning",
                "-m",
                "nameko",
                "run",
                "--config",
                f"services/{service_of(service)}/config.yaml",
                nameko_target(service_of(service)),
            ],
            cwd=ROOT,
            env=self.env(service, crash_at),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # a Ctrl-C reaches the harness, which stops the services itself
        log.close()
        self.started_at[service] = time.monotonic()

    def is_ready(self, service: str) -> bool:
        try:
            return requests.get(self.url(service, "/health/ready"), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, service: str, timeout: float = 120) -> float:
        """Wait for the first 200 on /health/ready; the seconds since the process was started."""
        proc = self.procs[service]

        def ready():
            if proc.poll() is not None:
                raise HarnessError(f"{service} exited ({proc.returncode}) before it was ready; see {self.log(service)}")
            return self.is_ready(service)

        wait_for(ready, timeout, f"{service} to be ready (log: {self.log(service)})", interval=0.1)
        return time.monotonic() - self.started_at[service]

    def kill(self, service: str) -> None:
        """kill -9 and reap."""
        proc = self.procs[service]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def wait_exit(self, service: str, timeout: float) -> int | None:
        """Wait for the process to exit by itself (an armed crash point); its status, or None."""
        try:
            return self.procs[service].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, service: str, timeout: float = 60) -> int:
        """Graceful stop (SIGTERM: the batch in hand is finished and committed); SIGKILL after `timeout`."""
        proc = self.procs[service]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait()

    def running(self, service: str) -> bool:
        proc = self.procs.get(service)
        return proc is not None and proc.poll() is None

    def stop_all(self) -> None:
        for service in list(self.procs):
            if self.running(service):
                self.procs[service].send_signal(signal.SIGTERM)
        for service in list(self.procs):
            self.terminate(service, timeout=30)
