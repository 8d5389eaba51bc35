"""How long after a broker restart a service consumes again.

    .venv/bin/python -m bench.rejoin [--outage 15] [--rounds 2] [--backoffs 30000,1000]

For each value of KAFKA_RECONNECT_BACKOFF_MAX_MS (kafka-python's default is 30000; the
platform's is 1000, kokeilu/config.py): a broker of this run only (chaos.platform.Broker, on
ports of its own) and the catalogue service; wait until its consumer has joined its group
(`/health/ready`, `consumer:<group>`), kill -9 the broker, keep it down for `--outage` seconds,
start it again, put one unreadable record on the topic the catalogue reads, and time, from the
moment the broker answers metadata requests, until the catalogue has consumed that record
(`kokeilu_events_consumed_total` moved: it dead-letters it). That covers reconnecting, finding
the coordinator, rejoining the group when the member was dropped, and fetching. Prints one line
per round and the median per setting. Needs the broker's jars (KAFKA_LIBS_DIR or
.local/kafka/libs: `make kafka` once).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from kafka import KafkaProducer

from chaos.platform import Broker, Services, wait_for
from kokeilu.contracts import topics

ROOT = Path(__file__).resolve().parents[1]


def joined(services: Services, service: str) -> bool:
    try:
        checks = requests.get(services.url(service, "/health/ready"), timeout=2).json()["checks"]
    except (requests.RequestException, ValueError, KeyError):
        return False
    groups = {k: v for k, v in checks.items() if k.startswith("consumer:")}
    return bool(groups) and all(v.endswith(" partitions") for v in groups.values())


def consumed(services: Services, service: str) -> float:
    text = requests.get(services.url(service, "/metrics"), timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("kokeilu_events_consumed_total{")
    )


def run(backoff_ms: int, outage: float, rounds: int, libs: Path) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="kokeilu-rejoin-") as tmp:
        run_dir = Path(tmp)
        broker = Broker(run_dir, libs)
        broker.start()
        services = Services(
            run_dir,
            broker.bootstrap,
            "rejoin-bench-token-0123456789abcdef",
            {"KAFKA_RECONNECT_BACKOFF_MAX_MS": str(backoff_ms)},
        )
        times = []
        try:
            services.start("catalogue")
            services.wait_ready("catalogue")
            wait_for(lambda: joined(services, "catalogue"), 120, "the consumers to join")
            for n in range(rounds):
                before = consumed(services, "catalogue")
                broker.kill()
                time.sleep(outage)  # the outage under test, not a wait for a condition
                broker.start()
                back = time.monotonic()
                producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
                producer.send(topics.PROPOSALS, b"not an event").get(timeout=30)
                producer.close()
                wait_for(
                    lambda: consumed(services, "catalogue") > before,
                    180,
                    "the catalogue to consume again",
                    interval=0.1,
                )
                times.append(time.monotonic() - back)
                print(
                    f"backoff max {backoff_ms:>6} ms, round {n + 1}: consuming again {times[-1]:.1f} s after the "
                    f"broker answered",
                    flush=True,
                )
        finally:
            services.stop_all()
            broker.stop()
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backoffs", default="30000,1000")
    args = parser.parse_args()
    libs = Path(os.environ.get("KAFKA_LIBS_DIR") or ROOT / ".local" / "kafka" / "libs")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(f"commit {commit}, load {os.getloadavg()[0]:.2f}, outage {args.outage:g} s")
    results = {int(b): run(int(b), args.outage, args.rounds, libs) for b in args.backoffs.split(",")}
    for backoff, times in results.items():
        print(
            f"KAFKA_RECONNECT_BACKOFF_MAX_MS={backoff}: median {statistics.median(times):.1f} s, "
            f"max {max(times):.1f} s over {len(times)} restarts"
        )


if __name__ == "__main__":
    main()
