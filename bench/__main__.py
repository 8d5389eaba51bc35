"""`python -m bench`: the ceiling, each stage and the end-to-end run, in one run, as one table.

    python -m bench                                     # every stage, N=1000
    python -m bench --stages ceiling,consume,intake,e2e -n 5000
    python -m bench --stages ceiling,consume:evaluation -n 500

Stages (comma-separated): `ceiling` (bench/ceiling.py), `consume` (every service's consume
path, bench/consume.py) or `consume:<service>` for one, `intake` (measurement intake through
proposals), `e2e` (bench/e2e.py). Each consume and intake stage runs `--stage-repeats` times, in rounds
over the stages, and its median run counts, as the ceiling's median does. Every figure is given as a ratio to the tuned kafka-python
loop measured in the same run (and to the confluent-kafka loop). The ceiling's rounds are split
around the other stages (half before, half after), so a machine that got busier or quieter
during the run shows as a spread in its runs. The exit status is 1 when a stage failed (events
dead-lettered, not all consumed in time, results missing).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from tests.support import ROOT

from . import ceiling, consume, e2e
from .common import clean_up_on_sigterm, git_revision, machine, write_json

SERVICES = tuple(consume.STAGES)
INTAKE_TARGET = 0.5  # issue 9: measurement intake at half the bare loop or better


def parse_stages(text: str) -> list[str]:
    out: list[str] = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        if item == "consume":
            out += [f"consume:{s}" for s in SERVICES]
        elif item in ("ceiling", "intake", "e2e") or (item.startswith("consume:") and item[8:] in SERVICES):
            out.append(item)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown stage {item!r}: use ceiling, consume, consume:<{'|'.join(SERVICES)}>, intake, e2e"
            )
    return list(dict.fromkeys(out))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--stages",
        type=parse_stages,
        default=parse_stages("ceiling,consume,intake,e2e"),
        help="comma-separated (default ceiling,consume,intake,e2e)",
    )
    p.add_argument("-n", "--events", type=int, default=1000, help="events per consume and intake stage (default 1000)")
    p.add_argument(
        "--ceiling-messages",
        type=int,
        default=10000,
        help="messages per ceiling run (default 10000: a few seconds each)",
    )
    p.add_argument("--repeats", type=int, default=3, help="ceiling runs per loop; the median counts (default 3)")
    p.add_argument(
        "--stage-repeats",
        type=int,
        default=3,
        help="runs of each consume and intake stage, in rounds over the stages; the median counts (default 3)",
    )
    p.add_argument("--e2e-proposals", type=int, default=200, help="proposals of the e2e stage (default 200)")
    p.add_argument("--concurrency", "-c", type=int, default=4, help="submitting threads of the e2e stage (default 4)")
    p.add_argument("--deadline", type=float, default=300, help="seconds each stage may take (default 300)")
    args = p.parse_args(argv)
    if args.events < 1 or args.e2e_proposals < 1 or args.repeats < 1 or args.stage_repeats < 1:
        p.error("-n, --e2e-proposals, --repeats and --stage-repeats must be at least 1")
    return args


# -- running --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    started = datetime.now(UTC)
    report: dict = {
        "run": {
            "started_at": started.isoformat(timespec="seconds"),
            "git": git_revision(),
            **machine(),
            "stages": args.stages,
            "events": args.events,
            "ceiling_messages": args.ceiling_messages,
            "e2e_proposals": args.e2e_proposals,
            "concurrency": args.concurrency,
        },
        "stages": {},
    }
    runs: dict = {}
    runs_of: dict[str, list[dict]] = {}  # each consume and intake stage's runs, in order
    with_ceiling = "ceiling" in args.stages
    others = [s for s in args.stages if s != "ceiling"]
    before = (args.repeats + 1) // 2 if others else args.repeats
    if with_ceiling:
        ceiling.ceiling_runs(args.ceiling_messages, before, runs)
    consumed = [s for s in others if s != "e2e"]
    for round_ in range(args.stage_repeats):
        for stage in consumed:
            print(f"stage {stage} (run {round_ + 1} of {args.stage_repeats}) ...", file=sys.stderr)
            definition = consume.INTAKE_STAGE if stage == "intake" else consume.STAGES[stage.split(":", 1)[1]]
            runs_of.setdefault(stage, []).append(consume.run_stage(definition, args.events, args.deadline))
    for stage in others:
        if stage != "e2e":
            report["stages"][stage] = median_run(runs_of[stage])
            continue
        print(f"stage {stage} ...", file=sys.stderr)
        out = e2e.run_platform(args.e2e_proposals, args.concurrency, args.deadline, sample=20)
        p = out.get("platform", {})
        out.update(
            stage="e2e",
            service="proposals -> evaluation -> catalogue",
            events=args.e2e_proposals,
            throughput_per_s=p.get("throughput_per_s"),
        )
        if not out["ok"]:
            out["failure"] = f"{p.get('arrived')} of {args.e2e_proposals} results arrived"
        report["stages"][stage] = out
    if with_ceiling and args.repeats - before > 0:
        ceiling.ceiling_runs(args.ceiling_messages, args.repeats - before, runs)
    report["run"]["loadavg_end"] = machine()["loadavg"]
    if with_ceiling:
        report["ceiling"] = ceiling.summarise(runs)
        ref, conf = report["ceiling"]["reference"], report["ceiling"].get("confluent")
        for result in report["stages"].values():
            if result.get("throughput_per_s"):
                result["ratio"] = result["throughput_per_s"] / ref
                if conf:
                    result["ratio_confluent"] = result["throughput_per_s"] / conf
        if "intake" in report["stages"] and "ratio" in report["stages"]["intake"]:
            report["stages"]["intake"]["target_ratio"] = INTAKE_TARGET
            report["stages"]["intake"]["target_met"] = report["stages"]["intake"]["ratio"] >= INTAKE_TARGET
    report["ok"] = all(r.get("ok") for r in report["stages"].values())
    return report


def median_run(results: list[dict]) -> dict:
    """The run that counts of a stage run several times: a failed one if any failed, else the
    median by throughput (the slower of the two middle runs for an even count), with every
    run's throughput beside it (`runs_per_s`, in the order run), as the ceiling gives its runs."""
    failed = [r for r in results if not r.get("ok")]
    if failed:
        chosen = failed[0]
    else:
        chosen = sorted(results, key=lambda r: r.get("throughput_per_s") or 0)[(len(results) - 1) // 2]
    return {**chosen, "runs_per_s": [round(r.get("throughput_per_s") or 0, 1) for r in results]}


# -- the table ------------------------------------------------------------------------------


def fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def print_table(report: dict) -> None:
    meta = report["run"]
    print(
        f"Kokeilu benchmarks  {meta['started_at']}  commit {meta['git']}  {meta['cpus']} CPUs  "
        f"load {'/'.join(str(x) for x in meta['loadavg'])} at start, "
        f"{'/'.join(str(x) for x in meta['loadavg_end'])} at end"
    )
    print(
        f"python {meta['python']}, kafka-python {meta['kafka_python']} (CRC32C: {meta['kafka_python_crc32c']}), "
        f"confluent-kafka {meta.get('confluent_kafka')} (librdkafka {meta.get('librdkafka')}), broker {meta['bootstrap']}"
    )
    c = report.get("ceiling")
    conf = c.get("confluent") if c else None
    ref = c["reference"] if c else None
    print()
    head = f"{'stage':<26}{'events':>7}{'per s':>10}{'x kafka-py':>11}{'x confl.':>9}{'RSS MiB':>9}{'cpu ms/ev':>10}{'ms/ev':>7}{'stall s':>8}  outcomes"
    print(head)
    print("-" * len(head))
    if c:
        for name, loop in c["loops"].items():
            label = {
                "kafka-python, tuned": "ceiling kafka-python*",
                "kafka-python, services' settings": "ceiling kp services' opts",
                "confluent-kafka": "ceiling confluent-kafka",
            }.get(name, name)
            print(
                f"{label:<26}{loop['messages']:>7}{loop['throughput_per_s']:>10.0f}{loop['throughput_per_s'] / ref:>11.3f}"
                f"{fmt(loop['throughput_per_s'] / conf if conf else None, '.3f'):>9}{'':>9}{'':>10}{'':>7}{'':>8}  "
                f"runs {loop['runs_per_s']}"
            )
    for name, r in report["stages"].items():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r.get("by_outcome", {}).items()))
        if r.get("settled_seconds") is not None:
            outcomes += (
                f"; all delivered after {r['settled_seconds']:.1f} s, "
                f"cpu {fmt(r.get('cpu_ms_per_event_settled'), '.2f')} ms/ev with the deliveries"
            )
        if len(r.get("runs_per_s", [])) > 1:
            outcomes += f"; runs {r['runs_per_s']}"
        if r.get("retries_by_stage"):
            outcomes += "; retries " + ", ".join(f"{k} {v}" for k, v in sorted(r["retries_by_stage"].items()))
        if name == "e2e" and r.get("metrics"):
            outcomes = "; ".join(
                f"{s} " + (", ".join(f"{k} {v}" for k, v in sorted(m.get("by_outcome", {}).items())) or "nothing yet")
                for s, m in r["metrics"].items()
            )
        unit = "proposals" if name == "e2e" else ""
        line = (
            f"{name:<26}{r.get('events', '-'):>7}{fmt(r.get('throughput_per_s'), '.1f'):>10}"
            f"{fmt(r.get('ratio'), '.4f'):>11}{fmt(r.get('ratio_confluent'), '.4f'):>9}"
            f"{fmt(r.get('rss_mib'), '.0f'):>9}{fmt(r.get('cpu_ms_per_event'), '.1f'):>10}"
            f"{fmt(r.get('mean_processing_ms'), '.1f'):>7}{fmt(r.get('longest_stall_seconds'), '.2f'):>8}  {outcomes}"
        )
        print(line + (f" ({unit})" if unit else ""))
        if not r.get("ok"):
            print(f"{'':<26}FAILED: {r.get('failure')}" + (f" (logs: {r['logs']})" if r.get("logs") else ""))
    print()
    if c:
        print(
            "* the reference: every ratio is to the tuned kafka-python loop of this run "
            f"({ref:.0f} msg/s); 'x confl.' to the confluent-kafka loop" + (f" ({conf:.0f} msg/s)" if conf else "")
        )
    else:
        print("no ceiling stage: no ratios (add `ceiling` to --stages)")
    if "intake" in report["stages"] and "target_met" in report["stages"]["intake"]:
        r = report["stages"]["intake"]
        print(
            f"intake target (issue 9): >= {r['target_ratio']:.2f} of the bare loop: "
            f"{'met' if r['target_met'] else 'NOT met'} ({r['ratio']:.4f})"
        )
    print(
        "per s: events consumed per second (e2e: proposals submitted -> result published per second); "
        "cpu ms/ev: the service's CPU time per event while consuming; ms/ev: its own mean "
        "kokeilu_event_processing_seconds; stall s: the longest time without a committed offset moving"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clean_up_on_sigterm()
    report = run(args)
    print_table(report)
    stamp = report["run"]["started_at"].replace("-", "").replace(":", "").replace("+0000", "Z")
    path = write_json(report, f"bench-{stamp}.json")
    print(f"\nfigures written to {path.relative_to(ROOT)}")
    if not report["ok"]:
        failed = [name for name, r in report["stages"].items() if not r.get("ok")]
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
