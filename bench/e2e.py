"""End-to-end benchmark: proposals submitted over HTTP until their results are published.

Method
------
1. Start proposals, evaluation and catalogue as real `nameko run` processes
   (`tests.support.Platform`) on topics of their own (a random prefix), SQLite stores in a
   temporary directory, on the local broker. Notifications is not on the measured path
   (submitted -> screened -> result published) and is not started.
2. A watcher thread reads the prefixed `kokeilu.results.v1` from the beginning with a plain
   KafkaConsumer (every partition assigned, no group) and stamps, with time.perf_counter, the
   arrival of each `fi.espoo.kokeilu.result.published` event by its `data.proposal_id`.
3. Warm-up: one proposal goes end to end before the clock starts and is not counted, so the
   consumer groups own their partitions and the producers know their topics.
4. N proposals are submitted with `POST /v1/proposals` from C worker threads, each stamped just
   before its POST; or, with `--rate R`, at R proposals a second (open loop: proposal i is due
   i/R seconds after the first, stamped when it was due, so a submitter that falls behind
   shows as latency, not as a slower offered rate). The wait for their results is bounded by --deadline (from the first submit).
5. End-to-end latency = result event observed - submit stamp. Wall time = first submit -> last
   result observed; throughput = N / wall time.
6. `GET /v1/results/{id}` must answer 200 for a sample of ids; each service's /metrics is
   scraped once at the end.
7. Baseline, same broker, same run, after the services have stopped: the bare kafka-python
   consume -> transform -> produce loop of bench/ceiling.py (acks=all, idempotent; flush the
   batch, then commit its offsets), by default with its tuned options (the reference of
   `python -m bench`), or with the services' own (`--bare-settings services`, what this
   benchmark measured before bench/ceiling.py existed). Its throughput is the ceiling of what
   Python and this broker do on this machine at that moment; platform / bare is the figure to
   compare between runs and machines.

`python -m bench --stages e2e` runs the same measurement next to the other stages.
Figures are printed as a table and written to .local/bench/e2e-<timestamp>.json. The exit
status is 1 when not every result arrived in time or the catalogue sample did not all answer 200.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from kokeilu.contracts.catalog import RESULT_PUBLISHED
from kokeilu.contracts.topics import RESULTS
from tests.builders import submission
from tests.support import AUTH, BOOTSTRAP, ROOT, Platform, wait_until

from . import ceiling
from .common import (
    PARTITIONS,
    clean_up_on_sigterm,
    cpu_seconds,
    delete_prefixed_topics,
    git_revision,
    machine,
    percentile,
    scrape_or_error,
    write_json,
)

SERVICES = ("proposals", "evaluation", "catalogue")


# -- measuring the platform ------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    proposal_id: str
    submitted_at: float  # perf_counter just before the POST
    answered_at: float  # perf_counter when the 201 came back


class ResultWatcher:
    """Stamps the arrival of each result.published event on one topic, in a thread of its own."""

    def __init__(self, topic: str):
        self.topic = topic
        self.arrivals: dict[str, float] = {}
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="result-watcher", daemon=True)

    def start(self, timeout: float = 60) -> ResultWatcher:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"result watcher not assigned to {self.topic} after {timeout}s")
        if self.error:
            raise RuntimeError(f"result watcher failed: {self.error!r}")
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def wait_for(self, ids: list[str], timeout: float) -> int:
        """Wait until every id has arrived, or `timeout` seconds; return how many have."""
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                arrived = sum(1 for i in ids if i in self.arrivals)
                left = end - time.monotonic()
                if arrived == len(ids) or left <= 0 or self.error:
                    return arrived
                self._changed.wait(min(1.0, left))

    def snapshot(self) -> dict[str, float]:
        with self._changed:
            return dict(self.arrivals)

    def _run(self) -> None:
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
            )
            try:
                self._assign(consumer)
                self._ready.set()
                while not self._stopping.is_set():
                    batch = consumer.poll(timeout_ms=200)
                    self._note(batch.values(), time.perf_counter())
            finally:
                consumer.close()
        except BaseException as exc:  # reported by start() and wait_for()
            self.error = exc
            self._ready.set()
            with self._changed:
                self._changed.notify_all()

    def _assign(self, consumer: KafkaConsumer) -> None:
        partitions = wait_until(
            lambda: consumer.partitions_for_topic(self.topic), timeout=60, what=f"partitions of {self.topic}"
        )
        assignment = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)

    def _note(self, batches, now: float) -> None:
        seen = []
        for records in batches:
            for record in records:
                try:
                    event = json.loads(record.value)
                    if event.get("type") == RESULT_PUBLISHED.name:
                        seen.append(event["data"]["proposal_id"])
                except (TypeError, ValueError, KeyError):
                    continue  # not ours to judge; the benchmark only counts results
        if seen:
            with self._changed:
                for proposal_id in seen:
                    self.arrivals.setdefault(proposal_id, now)
                self._changed.notify_all()


_connections = threading.local()


def submit_one(platform: Platform, title: str) -> Submitted:
    """One POST, on the submitting thread's own keep-alive connection (as a city system's HTTP
    client pools its connections, and as oha does in bench/http_submit.py). http.client, not
    requests: on 2 cores the submitters share the CPUs with the services they measure, and
    requests costs about twice as much CPU per call."""
    body = json.dumps(submission(title=title)).encode()
    headers = {**AUTH, "Content-Type": "application/json"}
    started = time.perf_counter()
    for attempt in (1, 2):
        conn = getattr(_connections, "conn", None)
        reused = conn is not None
        if conn is None:
            conn = _connections.conn = http.client.HTTPConnection("127.0.0.1", platform.ports["proposals"], timeout=10)
        try:
            conn.request("POST", "/v1/proposals", body, headers)
            response = conn.getresponse()
            answer = response.read()
            break
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            conn.close()
            _connections.conn = None
            if not reused or attempt == 2:
                raise
            # The server closed the kept connection while it was idle, before reading this
            # request (what an HTTP client's pool retries too): once more on a new one.
    answered = time.perf_counter()
    if response.status != 201:
        raise RuntimeError(f"POST /v1/proposals answered {response.status}: {answer[:500]!r}")
    return Submitted(json.loads(answer)["id"], started, answered)


def submit_all(platform: Platform, n: int, concurrency: int) -> list[Submitted]:
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="submit") as pool:
        # Titles must differ: screening fails near-identical titles as duplicates.
        return list(pool.map(lambda i: submit_one(platform, f"bench {i} {uuid.uuid4().hex}"), range(n)))


def submit_at_rate(platform: Platform, n: int, concurrency: int, rate: float) -> list[Submitted]:
    """Proposal i submitted i/rate seconds after the first (by whichever of the threads is free),
    its latency counted from then."""
    start = time.perf_counter() + 0.05

    def one(i: int) -> Submitted:
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        s = submit_one(platform, f"bench {i} {uuid.uuid4().hex}")
        return Submitted(s.proposal_id, min(due, s.submitted_at), s.answered_at)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="submit") as pool:
        return list(pool.map(one, range(n)))


def _processes(platform: Platform) -> dict[str, int]:
    """The pids whose CPU a run uses: the services, the broker (a local one) and this process."""
    out = {service: platform.procs[service].pid for service in SERVICES}
    broker = subprocess.run(["pgrep", "-f", "kafka.Kafka"], capture_output=True, text=True).stdout.split()
    if len(broker) == 1:
        out["broker"] = int(broker[0])
    out["benchmark"] = os.getpid()
    return out


def warm_up(platform: Platform, watcher: ResultWatcher, timeout: float = 120) -> None:
    first = submit_one(platform, "bench warm-up")
    if watcher.wait_for([first.proposal_id], timeout) != 1:
        raise RuntimeError(f"warm-up proposal {first.proposal_id} not published within {timeout}s")


def check_catalogue(platform: Platform, ids: list[str], sample: int) -> dict:
    chosen = random.sample(ids, min(sample, len(ids)))
    answers = [platform.get("catalogue", f"/v1/results/{i}").status_code for i in chosen]
    return {
        "checked": len(chosen),
        "ok": answers.count(200),
        "failed": [i for i, code in zip(chosen, answers, strict=False) if code != 200],
    }


def distribution_ms(seconds: list[float]) -> dict:
    ordered = sorted(s * 1000 for s in seconds)
    if not ordered:
        return {}
    return {
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def platform_figures(submitted: list[Submitted], arrivals: dict[str, float]) -> dict:
    done = [s for s in submitted if s.proposal_id in arrivals]
    figures = {
        "proposals": len(submitted),
        "arrived": len(done),
        "latency_ms": distribution_ms([arrivals[s.proposal_id] - s.submitted_at for s in done]),
        "submit_http_ms": distribution_ms([s.answered_at - s.submitted_at for s in submitted]),
    }
    if len(done) == len(submitted):
        wall = max(arrivals[s.proposal_id] for s in done) - min(s.submitted_at for s in submitted)
        figures.update(wall_seconds=wall, throughput_per_s=len(submitted) / wall)
    return figures


def measure_platform(
    platform: Platform, n: int, concurrency: int, deadline: float, sample: int, rate: float | None = None
) -> dict:
    platform.start(*SERVICES)
    watcher = ResultWatcher(platform.topic(RESULTS)).start()
    try:
        warm_up(platform, watcher)
        processes = _processes(platform)
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        first_submit = time.monotonic()
        submitted = (
            submit_all(platform, n, concurrency) if rate is None else submit_at_rate(platform, n, concurrency, rate)
        )
        ids = [s.proposal_id for s in submitted]
        watcher.wait_for(ids, deadline - (time.monotonic() - first_submit))
        if watcher.error:
            raise RuntimeError(f"result watcher failed: {watcher.error!r}")
        arrivals = watcher.snapshot()
        cpu_after = {name: cpu_seconds(pid) for name, pid in processes.items()}
    finally:
        watcher.stop()
    figures = platform_figures(submitted, arrivals)
    # Where a proposal's CPU goes, per process (the broker and this benchmark's submitters and
    # watcher included: on 2 cores they all share the same CPUs as the services).
    figures["cpu_ms_per_proposal"] = {
        name: round(1000 * (cpu_after[name] - before) / n, 2)
        for name, before in cpu_before.items()
        if before is not None and cpu_after.get(name) is not None
    }
    figures["concurrency"] = concurrency
    figures["rate"] = rate
    figures["deadline_seconds"] = deadline
    figures["catalogue_sample"] = check_catalogue(platform, [i for i in ids if i in arrivals], sample)
    return figures


# -- report ---------------------------------------------------------------------------------


def ms(d: dict, key: str) -> str:
    return f"{d[key]:.0f}" if key in d else "-"


def print_report(report: dict) -> None:
    p, bare, meta = report["platform"], report.get("bare_loop"), report["run"]
    lat, http = p["latency_ms"], p["submit_http_ms"]
    rows = [
        (
            "Kokeilu end-to-end benchmark",
            f"{meta['started_at']}, {meta['git']}, {meta['cpus']} CPUs, broker {meta['bootstrap']}",
        ),
        ("", ""),
        ("platform", "proposals -> evaluation -> catalogue (notifications not started)"),
        (
            "  proposals (concurrency)",
            f"{p['proposals']} ({p['concurrency']})" + (f", offered at {p['rate']:g}/s" if p.get("rate") else ""),
        ),
        ("  results arrived", f"{p['arrived']} / {p['proposals']}"),
        ("  wall time", f"{p['wall_seconds']:.2f} s, first submit -> last result" if "wall_seconds" in p else "-"),
        ("  throughput", f"{p['throughput_per_s']:.1f} proposals/s" if "throughput_per_s" in p else "-"),
        ("  latency p50/p95/p99/max", "/".join(ms(lat, k) for k in ("p50", "p95", "p99", "max")) + " ms"),
        ("  POST p50/p95/max", "/".join(ms(http, k) for k in ("p50", "p95", "max")) + " ms"),
        ("  catalogue GET sample", f"{p['catalogue_sample']['ok']} / {p['catalogue_sample']['checked']} answered 200"),
    ]
    if p.get("cpu_ms_per_proposal"):
        cpu = p["cpu_ms_per_proposal"]
        rows.append(
            (
                "  CPU ms per proposal",
                ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()) + f"; total {sum(cpu.values()):.2f}",
            )
        )
    if bare:
        rows += [
            ("", ""),
            (
                "bare loop (ceiling)",
                f"{bare.get('loop', '')}: consume -> transform -> produce, acks=all, idempotent, commit per batch",
            ),
            ("  messages", f"{bare['messages']} x {bare['message_bytes']} B"),
            ("  time", f"{bare['seconds']:.3f} s"),
            ("  throughput", f"{bare['throughput_per_s']:.0f} msg/s (median of {bare.get('runs_per_s')})"),
            ("", ""),
            ("platform / bare loop", f"{report['ratio']:.4f}" if "ratio" in report else "-"),
        ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        print(f"{label:<{width}}{value}".rstrip())
    print_metrics(report["metrics"])


def print_metrics(metrics: dict) -> None:
    print("\nservices' own view (/metrics at the end)")
    print(f"  {'service':<12}{'consumed':>10}  {'by outcome':<44}{'outbox backlog':>14}{'ms/record':>11}")
    for service, m in metrics.items():
        if "error" in m:
            print(f"  {service:<12}{'scrape failed: ' + m['error']}")
            continue
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(m["by_outcome"].items()))
        backlog = "-" if m["outbox_backlog"] is None else m["outbox_backlog"]
        mean = "-" if m.get("mean_processing_ms") is None else f"{m['mean_processing_ms']:.1f}"
        print(f"  {service:<12}{m['events_consumed_total']:>10}  {outcomes:<44}{backlog:>14}{mean:>11}")


def succeeded(report: dict) -> bool:
    p = report["platform"]
    sample = p["catalogue_sample"]
    return p["arrived"] == p["proposals"] and sample["ok"] == sample["checked"]


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("--proposals", "-n", type=int, default=200, help="proposals to submit (default 200)")
    parser.add_argument("--concurrency", "-c", type=int, default=4, help="submitting threads (default 4)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=300,
        help="seconds from the first submit to wait for every result (default 300)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="submit at this many proposals a second (open loop; latency from when each was due) "
        "instead of as fast as the threads can",
    )
    parser.add_argument("--sample", type=int, default=20, help="ids checked on the catalogue API (default 20)")
    parser.add_argument(
        "--bare-messages",
        type=int,
        default=5000,
        help="messages per bare-loop run (default 5000: a few seconds, like the platform run, "
        "so both see the same kind of machine)",
    )
    parser.add_argument("--bare-repeats", type=int, default=3, help="bare-loop runs; the median counts (default 3)")
    parser.add_argument(
        "--bare-settings",
        choices=("tuned", "services"),
        default="tuned",
        help="the bare loop's client options: bench/ceiling.py's tuned ones (default), or the "
        "services' own (what this benchmark used before; its ratios are comparable with older runs)",
    )
    args = parser.parse_args(argv)
    if args.proposals < 1 or args.concurrency < 1:
        parser.error("--proposals and --concurrency must be at least 1")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be above 0")
    return args


def run_metadata(args: argparse.Namespace, started: datetime) -> dict:
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "git": git_revision(),
        **machine(),
        "proposals": args.proposals,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "partitions": PARTITIONS,
    }


def run_platform(n: int, concurrency: int, deadline: float, sample: int, rate: float | None = None) -> dict:
    """The platform part: {"platform": figures, "metrics": each service's /metrics, "ok": bool}.
    The services are stopped and their topics deleted before it returns."""
    tmp = Path(tempfile.mkdtemp(prefix="kokeilu-bench-"))
    platform = Platform(tmp)
    out: dict = {"ok": False}
    try:
        print(f"starting {', '.join(SERVICES)} (prefix {platform.prefix}) ...", file=sys.stderr)
        out["platform"] = measure_platform(platform, n, concurrency, deadline, sample, rate)
        out["metrics"] = {s: scrape_or_error(platform, s) for s in SERVICES}
        out["ok"] = succeeded(out)
    finally:
        platform.stop()
        delete_prefixed_topics(platform.prefix)
        if out["ok"]:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            out["logs"] = str(tmp)
            print(f"service logs kept in {tmp}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clean_up_on_sigterm()
    started = datetime.now(UTC)
    report: dict = {"run": run_metadata(args, started)}
    measured = run_platform(args.proposals, args.concurrency, args.deadline, args.sample, args.rate)
    ok = measured.pop("ok")
    report.update(measured)
    if ok:
        loop = ceiling.TUNED_LOOP if args.bare_settings == "tuned" else ceiling.SERVICES_LOOP
        print(f"running the bare loop baseline ({loop.name}) ...", file=sys.stderr)
        report["bare_loop"] = ceiling.measure(
            loop, max(args.proposals, args.bare_messages), args.bare_repeats, timeout=args.deadline
        )
        report["ratio"] = report["platform"]["throughput_per_s"] / report["bare_loop"]["throughput_per_s"]
    print_report(report)
    path = write_json(report, f"e2e-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    print(f"\nfigures written to {path.relative_to(ROOT)}")
    if not ok:
        p = report["platform"]
        print(
            f"FAILED: {p['arrived']} of {p['proposals']} results arrived within the {args.deadline:g} s deadline; "
            f"catalogue sample {p['catalogue_sample']['ok']}/{p['catalogue_sample']['checked']}",
            file=sys.stderr,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
