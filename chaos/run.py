"""One chaos run: start everything, load it, break it on a seeded schedule, drain, audit.

Exit status: 0 when the audit finds no loss and no double effect, 1 when it finds any, 2 when
the harness could not do its part (the platform did not start, a restart failed ...).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import requests

from . import audit as auditing
from .load import LoadDriver, make_proposals
from .platform import ROOT, SERVICES, Broker, Cluster, HarnessError, Services, Stores, free_port, wait_for
from .sinks import SmtpSink, WebhookSink

POINTS = ("uow.committed", "relay.published", "consumer.applied", "consumer.committed")
# Where an aimed kill lands: uow.committed on proposals, so that a client's retry meets a crash
# between a proposal's commit and its answer; the others on a service picked by the seed.
AIMED_TARGETS = {
    "uow.committed": ("proposals",),
    "relay.published": ("proposals", "evaluation", "catalogue", "notifications"),
    "consumer.applied": ("evaluation", "catalogue", "notifications", "proposals"),
    "consumer.committed": ("evaluation", "catalogue", "notifications", "proposals"),
}
# The subscribers every run creates; each expects exactly one message per accepted proposal.
# Every proposer also gets one e-mail (its proposal is being evaluated), checked as "proposers".
SUBSCRIPTIONS = (
    {"name": "results-webhook", "channel": "webhook", "types": ["result.published"]},
    {"name": "screening-webhook", "channel": "webhook", "types": ["screening.completed"]},
    {"name": "results-mail", "channel": "email", "types": ["result.published"]},
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--proposals", type=int, default=2000, help="proposals to submit (default 2000)")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the titles and of the fault schedule "
        "(default: from the clock; printed, so a run can be repeated)",
    )
    p.add_argument("--rate", type=float, default=10.0, help="proposals per second (default 10)")
    p.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    p.add_argument("--kills-per-service", type=int, default=2, help="kill -9 of each service (default 2)")
    p.add_argument("--broker-kills", type=int, default=1, help="kill -9 of the broker (default 1)")
    p.add_argument("--broker-freezes", type=int, default=1, help="SIGSTOP ... SIGCONT of the broker (default 1)")
    p.add_argument("--freeze-seconds", type=float, default=30.0, help="how long a freeze lasts (default 30)")
    p.add_argument(
        "--aimed",
        default=",".join(POINTS),
        help="crash points to aim one kill at each, comma-separated, from "
        f"{', '.join(POINTS)} (default: all; '' for none)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the pipeline to drain after the load and the last fault (default 600)",
    )
    p.add_argument(
        "--request-deadline",
        type=float,
        default=360.0,
        help="seconds a client keeps retrying one proposal before it counts as not accepted (default 360)",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="where logs, stores, the broker and audit.json go (default .local/chaos/<time>-s<seed>)",
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="three Kafka nodes, two instances of every service on PostgreSQL (--postgres); a broker "
        "fault hits one node, a kill one instance",
    )
    p.add_argument(
        "--postgres",
        default=os.environ.get("KOKEILU_TEST_POSTGRES_URL"),
        help="with --cluster: the PostgreSQL server the run makes its databases in "
        "(default $KOKEILU_TEST_POSTGRES_URL; `deploy/postgres.sh url`)",
    )
    p.add_argument(
        "--outage-seconds",
        type=float,
        default=10.0,
        help="with --cluster: how long a killed Kafka node stays down, the load going on (default 10)",
    )
    p.add_argument(
        "--kafka-libs",
        type=Path,
        default=Path(os.environ.get("KAFKA_LIBS_DIR", ROOT / ".local/kafka/libs")),
        help="the broker's jars (default $KAFKA_LIBS_DIR or .local/kafka/libs)",
    )
    args = p.parse_args(argv)
    args.aimed = [a.strip() for a in args.aimed.split(",") if a.strip()]
    unknown = [a for a in args.aimed if a not in POINTS]
    if unknown:
        p.error(f"--aimed: unknown crash points {unknown}; known: {', '.join(POINTS)}")
    if args.proposals < 1 or args.rate <= 0:
        p.error("--proposals and --rate must be positive")
    if args.cluster and not args.postgres:
        p.error("--cluster needs --postgres URL (or KOKEILU_TEST_POSTGRES_URL): `deploy/postgres.sh url`")
    if args.seed is None:
        args.seed = int(time.time()) % 1_000_000
    return args


def plan_faults(args, rng: random.Random) -> list[dict]:
    """The faults of the run, in order, each with the accepted count at which it is due.

    The load from 5% to 85% of the proposals is cut into one slot per fault and each fault falls
    at a random moment of its slot, so faults are spread over the load rather than bunched.
    Aimed kills get slots in the first three quarters, so there is still traffic to reach their
    crash point."""
    plain = [{"kind": "kill", "service": s} for s in SERVICES for _ in range(args.kills_per_service)]
    plain += [{"kind": "broker-kill"} for _ in range(args.broker_kills)]
    plain += [{"kind": "broker-freeze"} for _ in range(args.broker_freezes)]
    rng.shuffle(plain)
    aimed = [
        {
            "kind": "aimed",
            "service": rng.choice(AIMED_TARGETS[point]),
            "point": point,
            "nth": rng.randint(2, 8) if not point.startswith("consumer.") else rng.randint(3, 30),
        }
        for point in args.aimed
    ]
    total = len(plain) + len(aimed)
    aimed_slots = set(rng.sample(range(max(len(aimed), int(total * 0.75))), len(aimed)))
    faults, others, ours = [], iter(plain), iter(aimed)
    for slot in range(total):
        fault = next(ours) if slot in aimed_slots else next(others)
        low = 0.05 + 0.8 * slot / total
        fault["after_accepted"] = max(1, int(rng.uniform(low, low + 0.8 / total) * args.proposals))
        faults.append(fault)
    return faults


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_dir: Path = (args.run_dir or ROOT / ".local" / "chaos" / f"{stamp}-s{args.seed}").resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.tag = f"r{args.seed}"
        self.token = secrets.token_urlsafe(24)
        self.t0 = time.monotonic()
        self.faults_done: list[dict] = []
        self.warnings: list[str] = []
        self.activity = "starting"
        self._ticker_stop = threading.Event()
        self.broker: Broker | Cluster | None = None
        self.stores: Stores | None = None
        self.services: Services | None = None
        self.webhooks: WebhookSink | None = None
        self.smtp: SmtpSink | None = None
        self.driver: LoadDriver | None = None

    # -- output ----------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {message}", flush=True)

    def _ticker(self) -> None:
        while not self._ticker_stop.wait(10):
            d = self.driver
            load = (
                (
                    f"accepted {d.accepted()}/{len(d.proposals)}, retries {d.stats.retries}, "
                    f"5xx {d.stats.server_errors}, conn errors {d.stats.connection_errors}"
                )
                if d
                else "no load yet"
            )
            self.say(
                f"{self.activity}: {load}; webhooks {len(self.webhooks.received)}, e-mails {len(self.smtp.received)}"
            )

    # -- the run ---------------------------------------------------------------------------------
    def execute(self) -> dict:
        args = self.args
        self.say(f"chaos run in {self.run_dir} (seed {args.seed}): {args.proposals} proposals at {args.rate}/s")
        if not (args.kafka_libs / ".complete").exists():
            raise HarnessError(
                f"no Kafka jars in {args.kafka_libs}: run `deploy/kafka.sh fetch` once (make chaos does), or set KAFKA_LIBS_DIR"
            )
        threading.Thread(target=self._ticker, name="ticker", daemon=True).start()
        self.webhooks = WebhookSink().start()
        self.smtp = SmtpSink(free_port()).start()
        extra_env, database_urls = {"KOKEILU_SMTP_HOST": "127.0.0.1", "KOKEILU_SMTP_PORT": str(self.smtp.port)}, {}
        if args.cluster:
            self.broker = Cluster(self.run_dir, args.kafka_libs)
            self.stores = Stores(args.postgres, self.tag)
            database_urls = self.stores.create()
            extra_env["KOKEILU_TOPIC_REPLICATION"] = "3"
            self.say(
                f"cluster: three Kafka nodes on {self.broker.bootstrap}; PostgreSQL databases "
                f"{', '.join(self.stores.names.values())}"
            )
        else:
            self.broker = Broker(self.run_dir, args.kafka_libs)
        self.say(f"broker: starting on {self.broker.bootstrap}")
        self.broker.start()
        self.services = Services(
            self.run_dir,
            self.broker.bootstrap,
            self.token,
            extra_env,
            instances=2 if args.cluster else 1,
            database_urls=database_urls,
        )
        for instance in self.services.all:
            self.services.start(instance)
        for instance in self.services.all:
            seconds = self.services.wait_ready(instance, timeout=180)
            self.say(f"{instance}: ready on port {self.services.ports[instance]} after {seconds:.1f}s")
        self._subscribe()

        faults = plan_faults(args, self.rng)
        self.say("fault plan: " + "; ".join(f"{self._label(f)} after {f['after_accepted']} accepted" for f in faults))
        proposals = make_proposals(args.proposals, args.seed, self.tag)
        self.driver = LoadDriver(
            [self.services.url(i) for i in self.services.instances["proposals"]],
            self.token,
            proposals,
            args.rate,
            args.concurrency,
            deadline_seconds=args.request_deadline,
        ).start()
        self.activity = "load"
        load_started = time.monotonic()
        for fault in faults:
            self.activity = f"waiting for {fault['after_accepted']} accepted"
            wait_for(
                lambda: self.driver.accepted() >= fault["after_accepted"] or self.driver.done(),
                timeout=args.request_deadline + args.proposals / args.rate + 600,
                what=f"{fault['after_accepted']} proposals accepted",
                interval=0.2,
            )
            self._watchdog()
            self._inject(fault)
        self.activity = "load (faults done)"
        wait_for(
            self.driver.done,
            timeout=args.request_deadline + args.proposals / args.rate + 600,
            what="the load to finish",
            interval=0.5,
        )
        self._watchdog()
        self.say(
            f"load: done in {self.driver.finished_at - load_started:.1f}s; "
            f"{self.driver.accepted()} of {args.proposals} accepted"
        )

        self.activity = "draining"
        drain_started = time.monotonic()
        drained = self._wait_drained(args.drain_timeout)
        drain_seconds = time.monotonic() - drain_started
        self.say(f"drain: {'drained' if drained else 'NOT drained'} after {drain_seconds:.1f}s")

        self.activity = "auditing"
        self.say("audit: reading the stores, the catalogue and every topic from the beginning")
        report = auditing.audit(
            proposals=proposals,
            load_stats=self.driver.stats,
            stored=self._stored_proposals(),
            catalogue_ids=self._catalogue_ids(),
            topic_records=auditing.read_topics(self.broker.bootstrap, auditing.TOPICS),
            subscriptions=[dict(s, address=self._address(s)) for s in SUBSCRIPTIONS],
            webhooks=self.webhooks.snapshot(),
            mails=self.smtp.snapshot(),
            dead_lettered_deliveries=self._get("notifications", "/v1/deliveries?status=dead_lettered&limit=500")[
                "items"
            ],
            faults=self.faults_done,
            drain_seconds=drain_seconds if drained else None,
            drained=drained,
        )
        if args.cluster:
            # The cluster takes writes with a node down: proposals were accepted during each outage.
            for fault in self.faults_done:
                if fault["kind"] == "broker-kill" and fault["during_load"] and not fault.get("accepted_while_down"):
                    report["failures"].append(
                        f"no proposal accepted while {fault['label']} was down ({fault.get('down_seconds')}s)"
                    )
                    report["ok"] = False
        report.update(
            run=str(self.run_dir),
            seed=args.seed,
            warnings=self.warnings,
            options={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            elapsed_seconds=round(self.elapsed(), 1),
        )
        report["not_accepted_examples"] = [asdict(p) | {"body": None} for p in proposals if p.outcome != "accepted"][
            :20
        ]
        return report

    def close(self) -> None:
        self._ticker_stop.set()
        if self.driver:
            self.driver.stop()
        if self.services:
            self.services.stop_all()
        if self.broker:
            try:
                self.broker.stop()
            except Exception as exc:  # keep going: the sinks still need stopping
                print(f"chaos: could not stop the broker: {exc}", file=sys.stderr)
        if self.stores:
            try:
                self.stores.drop()
            except Exception as exc:  # the run's databases stay; say so
                print(
                    f"chaos: could not drop the run's databases {list(self.stores.names.values())}: {exc}",
                    file=sys.stderr,
                )
        for sink in (self.webhooks, self.smtp):
            if sink:
                sink.stop()

    # -- faults ----------------------------------------------------------------------------------
    @staticmethod
    def _label(f: dict) -> str:
        if f["kind"] == "kill":
            return f"kill -9 {f.get('instance', f['service'])}"
        if f.get("node"):
            return {"broker-kill": "kill -9 Kafka node", "broker-freeze": "freeze Kafka node"}[
                f["kind"]
            ] + f" {f['node']}"
        if f["kind"] == "aimed":
            return f"aimed kill {f['service']} at {f['point']}@{f['nth']}"
        return {"broker-kill": "kill -9 broker", "broker-freeze": "freeze broker"}[f["kind"]]

    def _inject(self, fault: dict) -> None:
        if fault["kind"] == "kill":  # one of the service's instances
            fault["instance"] = self.rng.choice(self.services.instances[fault["service"]])
        if fault["kind"].startswith("broker-") and isinstance(self.broker, Cluster):
            fault["node"] = self.rng.randint(1, len(self.broker.nodes))
        record = dict(
            fault,
            label=self._label(fault),
            at=round(self.elapsed(), 1),
            accepted_before=self.driver.accepted(),
            during_load=not self.driver.done(),
        )
        self.activity = record["label"]
        self.say(f"fault: {record['label']} (accepted so far {record['accepted_before']})")
        kind = fault["kind"]
        if kind == "kill":
            self.services.kill(fault["instance"])
            self.services.start(fault["instance"])
            record["ready_seconds"] = self.services.wait_ready(fault["instance"])
        elif kind == "broker-kill" and "node" in fault:
            node = self.broker.nodes[fault["node"] - 1]
            node.kill()
            down_at, accepted_at = time.monotonic(), self.driver.accepted()
            self._ticker_stop.wait(self.args.outage_seconds)  # the load goes on against two nodes
            record["broker_ready_seconds"] = node.start()
            # Down from the kill until the restarted node serves again.
            record["accepted_while_down"] = self.driver.accepted() - accepted_at
            record["down_seconds"] = round(time.monotonic() - down_at, 1)
            restarted = time.monotonic()
            self._wait_all_ready()
            record["ready_seconds"] = time.monotonic() - restarted
            record["note"] = (
                f"down {record['down_seconds']}s, {record['accepted_while_down']} proposals accepted "
                f"meanwhile; node ready {record['broker_ready_seconds']:.1f}s after restart"
            )
        elif kind == "broker-freeze" and "node" in fault:
            node = self.broker.nodes[fault["node"] - 1]
            node.freeze()
            self._ticker_stop.wait(self.args.freeze_seconds)
            node.thaw()
            thawed = time.monotonic()
            self._wait_all_ready()
            record["ready_seconds"] = time.monotonic() - thawed
            record["note"] = f"node frozen {self.args.freeze_seconds:.0f}s; ready counted from SIGCONT"
        elif kind == "broker-kill":
            self.broker.kill()
            record["broker_ready_seconds"] = self.broker.start()
            restarted = time.monotonic() - record["broker_ready_seconds"]
            self._wait_all_ready()
            record["ready_seconds"] = time.monotonic() - restarted
            record["note"] = f"broker ready {record['broker_ready_seconds']:.1f}s, then every service ready"
        elif kind == "broker-freeze":
            self.broker.freeze()
            self._ticker_stop.wait(self.args.freeze_seconds)  # the fault is a freeze of this length
            self.broker.thaw()
            thawed = time.monotonic()
            self._wait_all_ready()
            record["ready_seconds"] = time.monotonic() - thawed
            record["note"] = f"frozen {self.args.freeze_seconds:.0f}s; ready counted from SIGCONT"
        elif kind == "aimed":
            self._aimed(fault, record)
        self._wait_all_ready()
        self.faults_done.append(record)
        self.say(
            f"fault: {record['label']} -> ready after {record.get('ready_seconds', 0):.1f}s"
            + (f" ({record['note']})" if record.get("note") else "")
        )

    def _aimed(self, fault: dict, record: dict) -> None:
        """Restart the service with its crash point armed, wait for it to kill itself, restart it."""
        service, spec = fault["service"], f"{fault['point']}@{fault['nth']}"
        self.services.terminate(service)
        self.services.start(service, crash_at=spec)
        armed_at = time.monotonic()
        try:
            self.services.wait_ready(service)
        except HarnessError:
            if self.services.running(service):
                raise  # not ready and not dead: a real failure to start
        code = self.services.wait_exit(service, timeout=180)
        record["crashed"] = code == -9
        record["seconds_to_crash"] = round(time.monotonic() - armed_at, 1)
        if code is None:
            record["note"] = f"crash point {spec} not reached in 180s; stopped"
            self.services.terminate(service)
        elif code != -9:
            record["note"] = f"exited with {code}, not by its crash point"
        else:
            record["note"] = f"crashed at {spec} {record['seconds_to_crash']}s after it was armed"
        self.services.start(service)
        record["ready_seconds"] = self.services.wait_ready(service)

    def _wait_all_ready(self, timeout: float = 240) -> None:
        for service in self.services.all:
            wait_for(
                lambda: self.services.is_ready(service) or self._exited(service),
                timeout,
                f"{service} to be ready again",
                interval=0.2,
            )
            self._watchdog()

    def _exited(self, service: str) -> bool:
        return not self.services.running(service)

    def _watchdog(self) -> None:
        """A service that died without being killed is restarted, and the run says so."""
        for service in self.services.all:
            if not self.services.running(service):
                code = self.services.procs[service].returncode
                self.warnings.append(f"{service} exited by itself ({code}) at {self.elapsed():.1f}s; restarted")
                self.say(f"WARNING: {self.warnings[-1]}")
                self.services.start(service)
                self.services.wait_ready(service)

    # -- subscribers, drain, reads ---------------------------------------------------------------
    def _address(self, sub: dict) -> str | None:
        return f"{sub['name']}@{self.tag}.chaos.example" if sub["channel"] == "email" else None

    def _subscribe(self) -> None:
        for sub in SUBSCRIPTIONS:
            body = {
                "subscriber": f"chaos {sub['name']}",
                "channel": sub["channel"],
                "filter": {"types": [auditing.PREFIX + t for t in sub["types"]]},
            }
            if sub["channel"] == "webhook":
                body["url"] = self.webhooks.url(sub["name"])
            else:
                body["email"] = self._address(sub)
            response = requests.post(
                self.services.url("notifications", "/v1/subscriptions"), json=body, headers=self._auth(), timeout=10
            )
            if response.status_code != 201:
                raise HarnessError(f"could not subscribe {sub['name']}: {response.status_code} {response.text[:500]}")
            if response.json().get("secret"):
                self.webhooks.secrets[sub["name"]] = response.json()["secret"]
        self.say(f"subscribers: {', '.join(s['name'] for s in SUBSCRIPTIONS)} and every proposer by e-mail")

    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def _get(self, service: str, path: str) -> dict:
        response = requests.get(self.services.url(service, path), headers=self._auth(), timeout=30)
        response.raise_for_status()
        return response.json()

    def _missing(self) -> str | None:
        """Which expected messages or results have not arrived yet, or None when all have."""
        accepted = {p.id: p for p in self.driver.proposals if p.outcome == "accepted"}
        hooks: dict[str, set] = {}
        for w in self.webhooks.snapshot():
            hooks.setdefault(w.subscription, set()).add(w.proposal_id)
        mails: dict[str, set] = {}
        for m in self.smtp.snapshot():
            for rcpt in m.recipients:
                mails.setdefault(rcpt, set()).add(m.proposal_id)
        for sub in SUBSCRIPTIONS:
            got = hooks.get(sub["name"], set()) if sub["channel"] == "webhook" else mails.get(self._address(sub), set())
            if missing := sum(1 for i in accepted if i not in got):
                return f"{missing} {sub['name']} messages"
        if missing := sum(1 for i, p in accepted.items() if i not in mails.get(p.contact_email, ())):
            return f"{missing} proposer e-mails"
        total = self._get("catalogue", "/v1/results?limit=1")["total"]
        if total < len(accepted):
            return f"{len(accepted) - total} catalogue results"
        return None

    def _busy(self) -> str | None:
        """What the platform says it still has in hand (pending deliveries, outbox rows, consumer
        lag), or None when it has nothing."""
        if pending := self._get("notifications", "/v1/deliveries?status=pending&limit=500")["items"]:
            return f"{len(pending)} pending deliveries"
        for service in self.services.all:
            text = requests.get(self.services.url(service, "/metrics"), timeout=10).text
            for line in text.splitlines():
                if (
                    line.startswith(("kokeilu_outbox_backlog{", "kokeilu_consumer_lag{"))
                    and float(line.split()[-1]) > 0
                ):
                    return f"{service}: {line}"
        return None

    def _wait_drained(self, timeout: float, quiet_seconds: float = 60) -> bool:
        """Drained: every expected message and result arrived and the platform has nothing in hand.
        When something never arrives (a loss), the wait ends once the platform has had nothing in
        hand and nothing new has reached the receivers for `quiet_seconds`: no more is coming, and
        the audit says what is missing. False when neither happened before `timeout`."""
        deadline = time.monotonic() + timeout
        quiet_since, received = None, -1
        while time.monotonic() < deadline:
            self._watchdog()
            try:
                missing, busy = self._missing(), self._busy()
            except (requests.RequestException, KeyError, ValueError) as exc:
                missing, busy = f"cannot tell yet ({exc.__class__.__name__})", "?"
            if missing is None and busy is None:
                return True
            now_received = len(self.webhooks.received) + len(self.smtp.received)
            if busy is None and now_received == received:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= quiet_seconds:
                    self.say(
                        f"drain: the platform is idle and nothing has arrived for {quiet_seconds:.0f}s, "
                        f"but {missing} never came"
                    )
                    return True
            else:
                quiet_since = None
            received = now_received
            self.activity = f"draining ({missing or busy} in flight)"
            time.sleep(1)  # polling interval of a condition with a deadline
        return False

    def _stored_proposals(self) -> list[dict]:
        items, cursor = [], None
        while True:
            page = self._get("proposals", "/v1/proposals?limit=200" + (f"&cursor={cursor}" if cursor else ""))
            items += [{"id": p["id"], "title": p["title"], "status": p["status"]} for p in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    def _catalogue_ids(self) -> set[str]:
        ids, cursor = set(), None
        while True:
            page = self._get("catalogue", "/v1/results?limit=200" + (f"&cursor={cursor}" if cursor else ""))
            ids |= {r["proposal_id"] for r in page["items"]}
            cursor = page.get("next_cursor")
            if not cursor:
                return ids


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")  # so that the finally below stops the services and the broker


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    run = Run(args)
    report = None
    try:
        report = run.execute()
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001  (the run could not be done: exit 2)
        run.say(f"HARNESS ERROR: {exc}")
        traceback.print_exc()
        (run.run_dir / "error.txt").write_text(traceback.format_exc())
    finally:
        run.say("stopping the services, the broker and the sinks")
        run.close()
    if report is None:
        print(f"chaos: the run could not be completed; logs in {run.run_dir}", file=sys.stderr)
        return 2
    (run.run_dir / "audit.json").write_text(json.dumps(report, indent=2, default=str))
    print(auditing.render(report))
    if report["warnings"]:
        print("Warnings:\n" + "\n".join(f"  - {w}" for w in report["warnings"]))
    print(f"audit.json and logs: {run.run_dir}")
    return 0 if report["ok"] else 1
