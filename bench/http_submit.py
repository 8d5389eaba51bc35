"""HTTP submit benchmark: `POST /v1/proposals` and `POST /v1/proposals/{id}/measurements` on the
proposals service, driven by an established load generator (oha), not by a Python loop.

Method
------
1. Start the proposals service as real `nameko run` processes (`tests.support.Platform`: the
   test configuration, a SQLite store in a temporary directory, topics with a random prefix of
   their own on the local broker, outbox relay on): `--instances N` of them (default 1), on one
   port (each listens with SO_REUSEPORT, as eventlet does by default, and the kernel shares the
   connections out) and one store, as several instances on one host run. No other service is
   started.
2. Write N distinct request bodies, one JSON object a line (distinct titles; distinct values and
   times for measurements); oha sends a line chosen at random for each request (`-Z`).
3. Warm up (a short saturating run, not counted).
4. Saturation: `oha -c C -z D` (C connections, each sending its next request as soon as the
   previous one is answered): requests/s at max.
5. Fixed rate: `oha -q R --latency-correction -c C -z D` at 250 requests/s and at half the
   saturation rate: p50/p95/p99 measured from when each request was *due*, not from when it
   was sent, so a stalled server is not hidden by the generator waiting (coordinated omission).
6. The same for measurements, on a pilot that is running: a proposal is submitted, its
   screening and approval are injected as evaluation's events on the service's own topic,
   and the pilot is started over HTTP.
7. Optionally (`--wrk`, when Debian's wrk is installed) a saturating run in which every request
   carries a distinct Idempotency-Key (oha's headers are the same for every request, so the
   key path needs wrk's Lua: bench/http_submit.lua).

Every answer must be 2xx, and oha must report no transport errors: otherwise the exit status
is 1. Figures are printed and written to .local/bench/http-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import cpu_seconds, median_run
from kokeilu.contracts import topics
from kokeilu.contracts.sources import service_source
from tests.builders import cloudevent, submission
from tests.support import BOOTSTRAP, ROOT, TOKEN, Platform, Probe, wait_until

OHA_VERSION = "1.16.0"
OUT_DIR = ROOT / ".local" / "bench"
LUA = Path(__file__).with_name("http_submit.lua")
KPI = "daily riders"


def find_oha() -> str | None:
    for candidate in (os.environ.get("OHA"), str(ROOT / ".local" / "tools" / "bin" / "oha"), shutil.which("oha")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def oha_version(oha: str) -> str:
    out = subprocess.run([oha, "--version"], capture_output=True, text=True).stdout.strip()
    return out.split()[-1] if out else "?"


# -- bodies -----------------------------------------------------------------------------------


def submission_lines(count: int, run: str) -> list[str]:
    return [json.dumps(submission(title=f"HTTP bench {run} proposal {i}"), separators=(",", ":")) for i in range(count)]


def measurement_lines(count: int) -> list[str]:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    return [
        json.dumps(
            {
                "kpi": KPI,
                "value": float(i % 500),
                "measured_at": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            },
            separators=(",", ":"),
        )
        for i in range(count)
    ]


# -- oha --------------------------------------------------------------------------------------


def oha_cmd(
    oha: str, url: str, body_file: Path, duration: float, connections: int, rate: float | None = None
) -> list[str]:
    cmd = [
        oha,
        "--no-tui",
        "--output-format",
        "json",
        "-m",
        "POST",
        "-T",
        "application/json",
        "-H",
        f"Authorization: Bearer {TOKEN}",
        "-Z",
        str(body_file),
        "-c",
        str(connections),
        "-z",
        f"{duration:g}s",
        "--wait-ongoing-requests-after-deadline",
        "-t",
        "10s",
    ]
    if rate is not None:
        cmd += ["-q", f"{rate:g}", "--latency-correction"]
    return cmd + [url]


SERVICE_PIDS: list[int] = []


def service_cpu() -> float | None:
    """CPU seconds the proposals instances have used so far, together (None without one)."""
    used = [cpu_seconds(pid) for pid in SERVICE_PIDS]
    return None if not used or None in used else sum(u for u in used if u is not None)


def listening_pids(port: int) -> set[int]:
    """The processes with a socket listening on 127.0.0.1:`port` (from `ss`)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def start_instances(platform: Platform, count: int) -> list[int]:
    """`count` proposals instances on one port and one store; returns their process ids once
    each listens and the service answers ready."""
    names = ["proposals"] + [f"proposals@{n}" for n in range(2, count + 1)]
    port: int | None = None
    for name in names:
        proc = platform.launch(name, port)
        port = platform.ports[name]
        _wait_listening(proc, port, name)
        platform.wait_ready(name)  # raises if it exited; ready: the service (an instance of it) answers
    return [platform.procs[name].pid for name in names]


def _wait_listening(proc: subprocess.Popen, port: int, name: str) -> None:
    # /health/ready on the shared port may be answered by an instance already up: this one is
    # in the kernel's share of the connections once its own socket listens.
    wait_until(
        lambda: proc.pid in listening_pids(port) or proc.poll() is not None,
        timeout=90,
        what=f"{name} to listen on port {port}",
    )


def run_oha(cmd: list[str]) -> dict:
    cpu_before = service_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    cpu_after = service_cpu()
    if proc.returncode != 0:
        raise RuntimeError(f"oha failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    raw = json.loads(proc.stdout)
    codes = {str(k): int(v) for k, v in raw.get("statusCodeDistribution", {}).items()}
    errors = {str(k): int(v) for k, v in raw.get("errorDistribution", {}).items()}
    pct = raw.get("latencyPercentiles", {})
    answered = sum(codes.values())
    cpu_ms = (
        None
        if cpu_before is None or cpu_after is None or not answered
        else round((cpu_after - cpu_before) * 1000 / answered, 3)
    )
    return {
        "requests_per_s": raw["summary"]["requestsPerSec"],
        "service_cpu_ms_per_request": cpu_ms,
        "answered": sum(codes.values()),
        "status_codes": codes,
        "non_2xx": sum(n for code, n in codes.items() if not code.startswith("2")),
        "errors": errors,
        "error_count": sum(errors.values()),
        "latency_ms": {
            k: round(pct[k] * 1000, 2) for k in ("p50", "p90", "p95", "p99", "p99.9") if pct.get(k) is not None
        },
        "max_ms": round(raw["summary"]["slowest"] * 1000, 2) if raw["summary"].get("slowest") is not None else None,
        "command": " ".join(cmd),
    }


def drive(oha: str, url: str, body_file: Path, args, label: str) -> dict:
    """Saturation, then the fixed rates: 250/s and half of what saturation reached."""
    print(f"  {label}: warm-up {args.warmup:g} s", file=sys.stderr, flush=True)
    run_oha(oha_cmd(oha, url, body_file, args.warmup, args.connections))
    runs = []
    for i in range(args.repeats):
        print(
            f"  {label}: saturation {args.duration:g} s, {args.connections} connections (run {i + 1} of {args.repeats})",
            file=sys.stderr,
            flush=True,
        )
        runs.append(run_oha(oha_cmd(oha, url, body_file, args.duration, args.connections)))
    # The median run counts (the slower middle one of an even count), as bench's other figures.
    saturation = median_run(runs, "requests_per_s")
    saturation["runs_per_s"] = [round(r["requests_per_s"], 1) for r in runs]
    figures = {"saturation": saturation, "saturation_runs": runs, "fixed": {}}
    rates = sorted({float(r) for r in args.rates} | {round(saturation["requests_per_s"] / 2)})
    for rate in rates:
        if rate <= 0:
            continue
        print(f"  {label}: fixed {rate:g}/s for {args.duration:g} s", file=sys.stderr, flush=True)
        run = run_oha(oha_cmd(oha, url, body_file, args.duration, args.rate_connections, rate))
        run["rate"] = rate
        run["half_saturation"] = rate == round(saturation["requests_per_s"] / 2)
        figures["fixed"][f"{rate:g}"] = run
    return figures


def run_wrk(url: str, duration: float, connections: int) -> dict | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    cmd = [wrk, "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(LUA), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests_per_s": rps,
        "answered": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
        "command": " ".join(cmd),
    }


# -- a running pilot --------------------------------------------------------------------------


def running_pilot(platform: Platform) -> str:
    pid = platform.post("proposals", "/v1/proposals", submission(title="HTTP bench pilot")).json()["id"]
    probe = Probe()
    try:
        topic = platform.topic(topics.EVALUATIONS)
        probe.send(
            topic,
            cloudevent(
                "fi.espoo.kokeilu.screening.completed",
                {"proposal_id": pid, "passed": True, "failed_rules": [], "screened_at": "2026-11-28T10:00:00Z"},
                subject=pid,
                source=service_source("evaluation"),
            ),
            key=pid,
        )
        wait_until(
            lambda: platform.get("proposals", f"/v1/proposals/{pid}").json()["status"] == "in_evaluation",
            timeout=60,
            what="the bench proposal to pass screening",
        )
        probe.send(
            topic,
            cloudevent(
                "fi.espoo.kokeilu.evaluation.decided",
                {
                    "proposal_id": pid,
                    "decision": "approved",
                    "weighted_score": 4.1,
                    "threshold": 3.5,
                    "criterion_averages": {"strategy_fit": 4.2},
                    "rationale": "Benchmark pilot.",
                    "decided_at": "2026-11-28T10:05:00Z",
                },
                subject=pid,
                source=service_source("evaluation"),
            ),
            key=pid,
        )
        wait_until(
            lambda: platform.get("proposals", f"/v1/proposals/{pid}").json()["status"] == "approved",
            timeout=60,
            what="the bench proposal to be approved",
        )
    finally:
        probe.close()
    started = platform.post("proposals", f"/v1/proposals/{pid}/pilot/start", {})
    if started.status_code != 200:
        raise RuntimeError(f"pilot/start answered {started.status_code}: {started.text}")
    return pid


# -- the run ----------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(args) -> dict:
    """Runs the benchmark and returns its figures (a dict); raises when oha is missing."""
    oha = find_oha()
    if oha is None:
        raise RuntimeError(
            f"oha not found: run bench/http_install.sh (installs oha {OHA_VERSION} into "
            ".local/tools/bin), or point OHA at one"
        )
    tmp = Path(tempfile.mkdtemp(prefix="kokeilu-http-bench-"))
    platform = Platform(tmp, extra_env=dict(args.env))
    figures = {
        "benchmark": "http_submit",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "cpus": os.cpu_count(),
        "python": host.python_version(),
        "broker": BOOTSTRAP,
        "load_generator": f"oha {oha_version(oha)}",
        "instances": args.instances,
        "duration_s": args.duration,
        "connections": args.connections,
        "rate_connections": args.rate_connections,
    }
    ok = False
    try:
        SERVICE_PIDS[:] = start_instances(platform, args.instances)
        run_id = os.urandom(4).hex()
        bodies = tmp / "submissions.jsonl"
        bodies.write_text("\n".join(submission_lines(args.bodies, run_id)) + "\n")
        url = platform.url("proposals", "/v1/proposals")
        print("POST /v1/proposals", file=sys.stderr, flush=True)
        figures["submit"] = drive(oha, url, bodies, args, "submit")
        if args.wrk:
            print("  submit: wrk, a distinct Idempotency-Key on every request", file=sys.stderr, flush=True)
            figures["submit"]["idempotency_key_saturation"] = run_wrk(url, args.duration, args.connections)
        if args.measurements:
            pid = running_pilot(platform)
            mbodies = tmp / "measurements.jsonl"
            mbodies.write_text("\n".join(measurement_lines(args.bodies)) + "\n")
            print(f"POST /v1/proposals/{pid}/measurements", file=sys.stderr, flush=True)
            figures["measurements"] = drive(
                oha, platform.url("proposals", f"/v1/proposals/{pid}/measurements"), mbodies, args, "measurements"
            )
        metrics = platform.get("proposals", "/metrics").text
        backlog = re.search(r"^kokeilu_outbox_backlog\{[^}]*\} ([\d.e+]+)", metrics, re.M)
        figures["outbox_backlog_at_end"] = float(backlog.group(1)) if backlog else None
        ok = True
    finally:
        platform.stop()
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"service log kept in {tmp}", file=sys.stderr)
    figures["failures"] = failures(figures)
    return figures


def all_runs(figures: dict):
    for route in ("submit", "measurements"):
        if route in figures:
            for i, r in enumerate(figures[route].get("saturation_runs") or [figures[route]["saturation"]]):
                yield route, f"saturation run {i + 1}", r
            for rate, r in figures[route]["fixed"].items():
                yield route, f"{rate}/s", r
            wrk = figures[route].get("idempotency_key_saturation")
            if wrk:
                yield route, "wrk+key", wrk


def failures(figures: dict) -> list[str]:
    found = []
    for route, label, r in all_runs(figures):
        if r.get("non_2xx"):
            found.append(f"{route} {label}: {r['non_2xx']} answers not 2xx ({r.get('status_codes')})")
        if r.get("error_count"):
            found.append(f"{route} {label}: {r['error_count']} transport errors ({r.get('errors')})")
        if r.get("socket_errors"):
            found.append(f"{route} {label}: socket errors {r['socket_errors']}")
    return found


def report(figures: dict) -> str:
    lines = [
        f"Kokeilu HTTP submit benchmark  {figures['started']}, {figures['commit']}, {figures['cpus']} CPUs, "
        f"{figures['load_generator']}, broker {figures['broker']}, "
        f"{figures.get('instances', 1)} proposals instance(s) on one port and store",
        "",
    ]
    for route, title in (("submit", "POST /v1/proposals"), ("measurements", "POST /v1/proposals/{id}/measurements")):
        if route not in figures:
            continue
        f = figures[route]
        s = f["saturation"]
        lines.append(f"{title}")
        lines.append(
            f"  saturation ({figures['connections']} conn)   {s['requests_per_s']:8.1f} req/s   "
            f"p50/p99 {s['latency_ms'].get('p50')}/{s['latency_ms'].get('p99')} ms   "
            f"answered {s['answered']}, non-2xx {s['non_2xx']}, errors {s['error_count']}, "
            f"service CPU {s['service_cpu_ms_per_request']} ms/req"
            + (f"; median of runs {s['runs_per_s']}" if len(s.get("runs_per_s", [])) > 1 else "")
        )
        for rate, r in f["fixed"].items():
            tag = " (half saturation)" if r.get("half_saturation") else ""
            lat = r["latency_ms"]
            lines.append(
                f"  fixed {rate:>5}/s{tag:<18} {r['requests_per_s']:8.1f} req/s   "
                f"p50/p95/p99 {lat.get('p50')}/{lat.get('p95')}/{lat.get('p99')} ms   "
                f"non-2xx {r['non_2xx']}, errors {r['error_count']}, CPU {r['service_cpu_ms_per_request']} ms/req"
            )
        wrk = f.get("idempotency_key_saturation")
        if wrk:
            lines.append(
                f"  wrk, Idempotency-Key each    {wrk['requests_per_s']:8.1f} req/s   "
                f"answered {wrk['answered']}, non-2xx {wrk['non_2xx']}"
            )
        lines.append("")
    lines.append(f"outbox backlog at the end: {figures.get('outbox_backlog_at_end')}")
    lines.append("FAILED: " + "; ".join(figures["failures"]) if figures["failures"] else "all answers 2xx, no errors")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.http_submit", description=__doc__.split("\n")[0])
    p.add_argument("--duration", "-d", type=float, default=15, help="seconds per measured run (default 15)")
    p.add_argument("--warmup", type=float, default=5, help="seconds of the unmeasured warm-up (default 5)")
    p.add_argument("--connections", "-c", type=int, default=16, help="connections at saturation (default 16)")
    p.add_argument(
        "--rate-connections",
        type=int,
        default=64,
        help="connections available at a fixed rate (default 64; enough that the rate is kept)",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="saturation runs; the median counts, every run is listed (default 3)"
    )
    p.add_argument("--rates", type=float, nargs="*", default=[250], help="fixed rates besides half saturation")
    p.add_argument("--bodies", type=int, default=20000, help="distinct bodies oha picks from (default 20000)")
    p.add_argument("--no-measurements", dest="measurements", action="store_false", help="skip the measurements route")
    p.add_argument("--wrk", action="store_true", help="also a wrk run with a distinct Idempotency-Key per request")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        type=lambda s: tuple(s.split("=", 1)),
        metavar="NAME=VALUE",
        help="extra environment for the service (e.g. KOKEILU_RELAY_INTERVAL_SECONDS=0.5)",
    )
    p.add_argument(
        "--instances",
        type=int,
        default=1,
        help="proposals instances on one port and one SQLite store (default 1; service CPU is their sum)",
    )
    p.add_argument("--keep", action="store_true", help="keep the service's log and store")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.repeats < 1:
        parser().error("--repeats must be at least 1")
    if args.instances < 1:
        parser().error("--instances must be at least 1")
    try:
        figures = run(args)
    except RuntimeError as exc:
        print(f"http_submit: {exc}", file=sys.stderr)
        return 2
    print(report(figures))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"http-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {out.relative_to(ROOT)}")
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
