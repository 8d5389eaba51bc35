"""Each service's consume path alone, and measurement intake through proposals.

For one service: create the platform's topics under a random prefix, pre-fill the service's
input topic(s) with N realistic events (bench/events.py), THEN start that one service as a
real `nameko run` process (tests.support.Platform) and watch it (see Watcher):

- start   = the last scrape of its /metrics (every 0.1 s from the moment its HTTP port
            answers) at which it had consumed nothing from the input topics (so the time
            measured includes, rather than misses, the first batch);
- end     = the moment its consumer group's committed offsets reach the input topics' end
            offsets (read from the broker every 0.05 s); then kokeilu_events_consumed_total over
            the input topics (every outcome) must be N;
- events/s = N / (end - start); RSS (VmRSS) and CPU seconds of the process at the end.

Stages that need state first (running pilots for measurements; subscriptions for
notifications) start the service once, seed it through events and its API, stop it (SIGTERM:
it commits and flushes), fill the topic, and start it again on the same store and topics.

A stage fails (and `python -m bench` exits 1) when any event was dead-lettered, when not all N
were consumed before the deadline, or when the service exited.
"""

from __future__ import annotations

import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from kafka import KafkaConsumer, TopicPartition

from chaos.sinks import SmtpSink, WebhookSink
from kokeilu.contracts import topics
from tests.support import BOOTSTRAP, Platform, free_port, wait_until

from . import events
from .common import (
    admin_client,
    clean_up_on_sigterm,
    cpu_seconds,
    create_platform_topics,
    delete_prefixed_topics,
    fill,
    parse_metrics,
    rss_kib,
)

SCRAPE_INTERVAL = 0.1
OFFSETS_INTERVAL = 0.05
PILOTS = 20  # running pilots that the measurements are for
INTAKE_MEASUREMENT_SHARE = 0.2  # of the proposals stage's intake events


class StageFailed(RuntimeError):
    pass


@dataclass
class Stage:
    name: str
    service: str
    topics: tuple[str, ...]  # logical input topics
    build: Callable[[int, dict], list]  # (n, context from seed) -> [events.Record]
    seed: Callable[[Platform, dict], None] | None = None
    extra_env: Callable[[dict], dict] = lambda ctx: {}
    describe: str = ""
    setup: Callable[[dict], None] | None = None  # before any start (e.g. sinks)
    # Work the service does after it has consumed (notifications' deliveries): True once done.
    settled: Callable[[Platform], bool] | None = None
    # Whether what the consumed events cause is published through the outbox (the stage then
    # ends when it is); notifications' consume path publishes nothing (its deliveries' outcomes
    # are events, which `settled` waits for with the deliveries).
    publishes: bool = True
    teardown: Callable[[dict], None] | None = None


# -- watching a service ---------------------------------------------------------------------


class Watcher:
    """Watches a service consume its pre-filled input, costing it as little as possible.

    Until the first event is consumed it scrapes the service's /metrics every SCRAPE_INTERVAL
    (from when its port answers): the last scrape with nothing consumed is the start. Then it
    stops scraping (each scrape refreshes gauges from the service's store: at 10 Hz that took
    7-14 % of the service's samples in a profile) and reads the consumer group's committed
    offsets from the broker instead, every OFFSETS_INTERVAL: the end is when they reach the
    input topics' end offsets (a service commits a record's offset only after applying or
    dead-lettering it). run_stage then checks /metrics once: every outcome must add up to N."""

    def __init__(self, platform: Platform, service: str, input_topics: tuple[str, ...], n: int, end_offsets: dict):
        self.platform, self.service, self.topics, self.n = platform, service, input_topics, n
        self.end_offsets = end_offsets  # {TopicPartition: offset} of the physical input topics
        self.group = f"{platform.prefix}kokeilu.{service}"
        self.last_zero: float | None = None
        self.first_seen: float | None = None
        self.done_at: float | None = None
        self.consumed = 0
        self.cpu_at_start: float | None = None
        self.progress: list[tuple[float, int]] = []  # (perf_counter, events committed), when it changed
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{service}", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait(self, timeout: float) -> bool:
        return self._finished.wait(timeout)

    def _count(self, m: dict) -> int:
        return sum(sum(m["by_topic"].get(t, {}).values()) for t in self.topics)

    def _alive(self):
        proc = self.platform.procs.get(self.service)
        if proc is not None and proc.poll() is not None:
            raise StageFailed(f"{self.service} exited with {proc.returncode}")
        return proc

    def _run(self) -> None:
        try:
            self._until_first_consumed()
            self._until_committed()
        except BaseException as exc:
            self.error = exc
        finally:
            self._finished.set()

    def _until_first_consumed(self) -> None:
        while not self._stop.is_set() and self.service not in self.platform.ports:
            time.sleep(0.01)
        url = self.platform.url(self.service, "/metrics")
        session = requests.Session()
        while not self._stop.is_set():
            proc = self._alive()
            at = time.perf_counter()
            try:
                count = self._count(parse_metrics(session.get(url, timeout=5).text))
            except requests.RequestException:
                time.sleep(SCRAPE_INTERVAL)
                continue
            if count:
                self.first_seen, self.consumed = at, count
                return
            self.last_zero = at
            if proc is not None:
                self.cpu_at_start = cpu_seconds(proc.pid)
            time.sleep(max(0.0, SCRAPE_INTERVAL - (time.perf_counter() - at)))

    def _until_committed(self) -> None:
        admin = admin_client()
        try:
            target = sum(self.end_offsets.values())
            while not self._stop.is_set():
                self._alive()
                committed = admin.list_group_offsets({self.group: list(self.end_offsets)}).get(self.group, {})
                done = sum(
                    min(committed[tp].offset, end)
                    if tp in committed and committed[tp] is not None and committed[tp].offset >= 0
                    else 0
                    for tp, end in self.end_offsets.items()
                )
                if done >= target:
                    self.done_at = time.perf_counter()
                    self.consumed = done
                    return
                if not self.progress or self.progress[-1][1] != done:
                    self.progress.append((time.perf_counter(), done))
                self.consumed = max(self.consumed, done)
                time.sleep(OFFSETS_INTERVAL)
        finally:
            admin.close()


def wait_published(store: Path, timeout: float) -> float | None:
    """perf_counter time at which the service's outbox (its SQLite store) had nothing unsent,
    polled every 50 ms from a read-only connection (no load on the service); None after `timeout`."""
    deadline = time.monotonic() + timeout
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        while time.monotonic() < deadline:
            if conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0] == 0:
                return time.perf_counter()
            time.sleep(0.05)
        return None
    finally:
        conn.close()


def end_offsets(names: list[str]) -> dict:
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
        return consumer.end_offsets(parts)
    finally:
        consumer.close()


def start_profiler(pid: int, out: Path) -> subprocess.Popen:
    """py-spy sampling the service (diagnostic only: it takes CPU from the service it watches),
    the thread holding the GIL only (--gil): where the process's CPU goes, not its idle waits."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise StageFailed(f"--py-spy needs {spy} (pip install py-spy)")
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--nonblocking",
            "--gil",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def profile_summary(raw: Path, top: int = 30) -> list[tuple[str, float]]:
    """Share of samples in which each function is on the stack (inclusive), largest first."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            name = re.sub(r" \(/[^)]*?/(site-packages|lib/python3\.\d+|wt-[^/]+)/", " (", frame)
            name = re.sub(r":\d+\)$", ")", name)
            inclusive[name] = inclusive.get(name, 0) + int(count)
    return (
        [(name, count / total) for name, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]]
        if total
        else []
    )


def run_stage(stage: Stage, n: int, deadline: float, keep_logs: bool = False, profile_dir: Path | None = None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"kokeilu-bench-{stage.name}-"))
    ctx: dict = {}
    ok = False
    platform = None
    try:
        if stage.setup:
            stage.setup(ctx)
        platform = Platform(tmp, extra_env=stage.extra_env(ctx))
        create_platform_topics(platform.prefix)
        if stage.seed:
            print(f"  {stage.name}: seeding {stage.service} ...", file=sys.stderr)
            platform.start(stage.service)
            stage.seed(platform, ctx)
            code = platform.stop(stage.service).get(stage.service)
            if code not in (0, None):
                raise StageFailed(f"{stage.service} exited with {code} when stopped after seeding")
            platform.ports.pop(stage.service, None)  # the restart listens elsewhere; the watcher waits for it
        records = stage.build(n, ctx)
        print(f"  {stage.name}: filling {len(records)} events ...", file=sys.stderr)
        fill((platform.topic(r.topic), r.key, r.value) for r in records)
        ends = end_offsets([platform.topic(t) for t in stage.topics])
        if sum(ends.values()) != len(records):
            raise StageFailed(f"{sum(ends.values())} records on the input topics, {len(records)} filled")
        watcher = Watcher(platform, stage.service, stage.topics, len(records), ends).start()
        print(f"  {stage.name}: starting {stage.service} ...", file=sys.stderr)
        launched = time.perf_counter()
        try:
            platform.start(stage.service)
            ready = time.perf_counter()
            if profile_dir is not None:
                profile_dir.mkdir(parents=True, exist_ok=True)
                ctx["profile"] = profile_dir / f"{stage.name.replace(':', '-')}.raw"
                ctx["profiler"] = start_profiler(platform.procs[stage.service].pid, ctx["profile"])
            finished = watcher.wait(deadline)
        finally:
            watcher.stop()
            if "profiler" in ctx:
                ctx["profiler"].send_signal(signal.SIGINT)
                ctx["profiler"].wait(timeout=60)
        proc = platform.procs[stage.service]
        # Drained is not done: what the events caused must be published too (the bare loop's
        # produce and flush are inside its time). The store's outbox, read beside the service.
        published_at = (
            (wait_published(tmp / "data" / f"{stage.service}.db", deadline) if stage.publishes else watcher.done_at)
            if finished
            else None
        )
        rss = rss_kib(proc.pid)
        cpu_end = cpu_seconds(proc.pid)
        final = parse_metrics(platform.get(stage.service, "/metrics").text)
        result = {
            "stage": stage.name,
            "service": stage.service,
            "describe": stage.describe,
            "events": len(records),
            "mix": events.mix(records),
            "input_topics": list(stage.topics),
            "consumed": watcher.consumed,
            "consumed_per_metrics": sum(sum(final["by_topic"].get(t, {}).values()) for t in stage.topics),
            "by_outcome": {},
            "by_type": final["by_type"],
            "dead_lettered_by_reason": final["dead_lettered_by_reason"],
            "retries_by_stage": final["retries_by_stage"],
            "mean_processing_ms": final["mean_processing_ms"],
            "outbox_backlog": final["outbox_backlog"],
            "rss_mib": round(rss / 1024, 1) if rss else None,
            "ready_seconds": ready - launched,
        }
        for t in stage.topics:
            for outcome, count in final["by_topic"].get(t, {}).items():
                result["by_outcome"][outcome] = result["by_outcome"].get(outcome, 0) + count
        if watcher.error:
            raise StageFailed(f"{stage.name}: {watcher.error!r}")
        if not finished or watcher.done_at is None:
            raise StageFailed(
                f"{stage.name}: {watcher.consumed} of {len(records)} events consumed within {deadline:g} s"
            )
        start = watcher.last_zero if watcher.last_zero is not None else launched
        result["start_from"] = (
            "last scrape with nothing consumed"
            if watcher.last_zero is not None
            else "process launch (consumption had begun before the first scrape)"
        )
        result["drained_seconds"] = watcher.done_at - start
        if published_at is None:
            raise StageFailed(f"{stage.name}: what the events caused was not all published within {deadline:g} s")
        result["seconds"] = max(watcher.done_at, published_at) - start
        # Committed events over time (s from start), so that a stall (a group rebalance, a
        # store lock) shows; the longest time without progress is the figure to look at.
        points = (
            [(0.0, 0)]
            + [(round(t - start, 2), c) for t, c in watcher.progress]
            + [(round(result["drained_seconds"], 2), len(records))]
        )
        result["progress"] = points
        result["longest_stall_seconds"] = round(max(b[0] - a[0] for a, b in zip(points, points[1:], strict=False)), 2)
        result["throughput_per_s"] = len(records) / result["seconds"]
        if cpu_end is not None and watcher.cpu_at_start is not None:
            result["cpu_seconds"] = cpu_end - watcher.cpu_at_start
            result["cpu_ms_per_event"] = 1000 * result["cpu_seconds"] / len(records)
        if stage.settled is not None:
            # The consume path is done; what it queued (deliveries) is counted apart, until done.
            settle_by = time.monotonic() + deadline
            while not stage.settled(platform):
                if time.monotonic() > settle_by:
                    raise StageFailed(f"{stage.name}: what the events queued was not done within {deadline:g} s")
                time.sleep(0.2)
            result["settled_seconds"] = time.perf_counter() - start
            cpu_settled = cpu_seconds(proc.pid)
            if cpu_settled is not None and watcher.cpu_at_start is not None:
                result["cpu_ms_per_event_settled"] = 1000 * (cpu_settled - watcher.cpu_at_start) / len(records)
        dead = result["by_outcome"].get("dead_lettered", 0)
        result["ok"] = dead == 0 and result["consumed_per_metrics"] >= len(records)
        if dead:
            result["failure"] = f"{dead} events dead-lettered ({final['dead_lettered_by_reason']})"
        elif not result["ok"]:
            result["failure"] = (
                f"offsets committed to the end, but /metrics counts {result['consumed_per_metrics']} "
                f"of {len(records)} events consumed"
            )
        if ctx.get("profile") and ctx["profile"].exists():
            result["profile"] = {"raw": str(ctx["profile"]), "inclusive": profile_summary(ctx["profile"])}
        ok = result["ok"]
        return result
    except Exception as exc:
        return {
            "stage": stage.name,
            "service": stage.service,
            "ok": False,
            "failure": f"{exc.__class__.__name__}: {exc}",
            "logs": str(tmp),
        }
    finally:
        if platform is not None:
            platform.stop()
            delete_prefixed_topics(platform.prefix)
        if stage.teardown:
            stage.teardown(ctx)
        if ok and not keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"  {stage.name}: service logs kept in {tmp}", file=sys.stderr)


# -- seeding --------------------------------------------------------------------------------


def seed_running_pilots(platform: Platform, ctx: dict, count: int = PILOTS) -> None:
    """`count` proposals submitted over HTTP, screened and approved through evaluation's events
    (as the evaluation service would publish them), and started with POST /pilot/start."""
    rng = random.Random(7)
    ids = []
    for i in range(count):
        body = events.submission(rng, 100_000 + i).model_dump(mode="json")
        response = platform.post("proposals", "/v1/proposals", body)
        if response.status_code != 201:
            raise StageFailed(f"seeding: POST /v1/proposals answered {response.status_code}: {response.text[:300]}")
        ids.append(response.json()["id"])
    outcomes = [record for pid in ids for record in events.approval(pid)]
    fill((platform.topic(r.topic), r.key, r.value) for r in outcomes)

    def approved():
        return all(platform.get("proposals", f"/v1/proposals/{pid}").json()["status"] == "approved" for pid in ids)

    wait_until(approved, timeout=120, interval=0.5, what=f"{count} seeded proposals to be approved")
    for pid in ids:
        response = platform.post("proposals", f"/v1/proposals/{pid}/pilot/start", {})
        if response.status_code != 200:
            raise StageFailed(f"seeding: pilot/start answered {response.status_code}: {response.text[:300]}")
    ctx["pilots"] = ids


SUBSCRIPTIONS = (  # what a few departments might have set up
    {"subscriber": "Mobility unit", "channel": "webhook", "filter": {"focus_areas": ["smart_mobility"]}},
    {"subscriber": "Results hub", "channel": "webhook", "filter": {"types": ["fi.espoo.kokeilu.result.published"]}},
    {
        "subscriber": "Education department",
        "channel": "email",
        "email": "education@bench.example",
        "filter": {"focus_areas": ["learning"]},
    },
    {
        "subscriber": "Programme office",
        "channel": "email",
        "email": "office@bench.example",
        "mode": "daily_digest",
        "filter": {},
    },
)


def notification_sinks(ctx: dict) -> None:
    ctx["webhooks"] = WebhookSink().start()
    ctx["smtp"] = SmtpSink(free_port()).start()


def stop_sinks(ctx: dict) -> None:
    for name in ("webhooks", "smtp"):
        if name in ctx:
            ctx[name].stop()


def deliveries_done(platform: Platform) -> bool:
    """No delivery (webhook, e-mail) is waiting to be sent (digests wait for their hour: not counted)."""
    answer = platform.get("notifications", "/v1/deliveries?status=pending&limit=1")
    if answer.status_code != 200:
        raise StageFailed(f"GET /v1/deliveries answered {answer.status_code}: {answer.text[:300]}")
    return not answer.json()["items"]


def seed_subscriptions(platform: Platform, ctx: dict) -> None:
    for i, sub in enumerate(SUBSCRIPTIONS):
        body = dict(sub)
        if body["channel"] == "webhook":
            body["url"] = ctx["webhooks"].url(f"sub{i}")
        response = platform.post("notifications", "/v1/subscriptions", body)
        if response.status_code != 201:
            raise StageFailed(f"seeding: POST /v1/subscriptions answered {response.status_code}: {response.text[:300]}")


# -- the stages -----------------------------------------------------------------------------

WORKFLOW = {topics.PROPOSALS, topics.EVALUATIONS}

STAGES = {
    "proposals": Stage(
        "consume:proposals",
        "proposals",
        (topics.INTAKE,),
        lambda n, ctx: events.intake_stream(n, ctx["pilots"], INTAKE_MEASUREMENT_SHARE),
        seed=seed_running_pilots,
        describe=f"intake: {100 - 100 * INTAKE_MEASUREMENT_SHARE:.0f}% intake.proposal (distinct titles), "
        f"{100 * INTAKE_MEASUREMENT_SHARE:.0f}% intake.measurement for {PILOTS} running pilots",
    ),
    "evaluation": Stage(
        "consume:evaluation",
        "evaluation",
        (topics.PROPOSALS,),
        lambda n, ctx: events.workflow_stream({topics.PROPOSALS}, n),
        describe="kokeilu.proposals.v1: whole proposal histories (submitted, status changes, pilots, ...)",
    ),
    "catalogue": Stage(
        "consume:catalogue",
        "catalogue",
        (topics.PROPOSALS, topics.EVALUATIONS),
        lambda n, ctx: events.workflow_stream(WORKFLOW, n),
        describe="kokeilu.proposals.v1 + kokeilu.evaluations.v1: whole proposal histories",
    ),
    "notifications": Stage(
        "consume:notifications",
        "notifications",
        (topics.PROPOSALS, topics.EVALUATIONS),
        lambda n, ctx: events.workflow_stream(WORKFLOW, n),
        seed=seed_subscriptions,
        settled=deliveries_done,
        publishes=False,
        setup=notification_sinks,
        teardown=stop_sinks,
        extra_env=lambda ctx: {"KOKEILU_SMTP_HOST": "127.0.0.1", "KOKEILU_SMTP_PORT": str(ctx["smtp"].port)},
        describe=f"proposals + evaluations histories; {len(SUBSCRIPTIONS)} subscriptions (webhook, e-mail, "
        "digest) and proposer e-mails to local sinks",
    ),
}

INTAKE_STAGE = Stage(
    "intake",
    "proposals",
    (topics.INTAKE,),
    lambda n, ctx: [events.intake_measurement(ctx["pilots"][i % len(ctx["pilots"])], float(i)) for i in range(n)],
    seed=seed_running_pilots,
    describe=f"intake.measurement only, for {PILOTS} running pilots",
)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.consume", description=__doc__.split("\n\n")[0])
    parser.add_argument("services", nargs="*", default=list(STAGES) + ["intake"])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--deadline", type=float, default=300)
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="sample each service with py-spy while it consumes (raw profile to DIR) and print the "
        "functions most often on the stack; slows the service down, so its figures do not count",
    )
    args = parser.parse_args(argv)
    clean_up_on_sigterm()
    failed = False
    for name in args.services:
        result = run_stage(
            INTAKE_STAGE if name == "intake" else STAGES[name], args.n, args.deadline, profile_dir=args.py_spy
        )
        profile = result.pop("profile", None)
        print(json.dumps({k: v for k, v in result.items() if k != "by_type"}, indent=1))
        if profile:
            print(f"{result['stage']}: share of samples with the function on the stack ({profile['raw']})")
            for fn, share in profile["inclusive"]:
                print(f"  {100 * share:5.1f}%  {fn}")
        failed |= not result["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
