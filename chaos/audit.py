"""The audit: what the clients were told, what the stores hold, what went over every topic and what
the subscribers received, compared proposal by proposal.

Definitions (docs/operations.md, "Chaos runs", explains them for operators):

- A *fact* is one thing that happened once: proposal P was submitted, P was screened, P's result
  was published, P moved to in_evaluation, delivery D ended. Its key is in FACT_KEYS.
- A *double effect* is one fact carried by two events with different ids: a consumer applied a
  record twice, or a producer made the same change twice. (The same event id twice on a topic is
  a *re-send*: a relay that crashed before marking its rows sent publishes them again; the
  consumers' inbox drops it, so it is counted but not a failure.) A title stored as two
  proposals is a double effect of the HTTP API.
- A webhook duplicate is a second delivery id for one (subscription, event type, proposal); the
  same delivery id again is a redelivery, which a receiver drops by its Idempotency-Key. An
  e-mail duplicate is a second message (another Message-ID) to one address about one fact.
- A loss is an accepted proposal (201) missing at any stage: the proposals store, the
  `proposal.submitted` event, screening, the catalogue, `result.published`, or an expected
  webhook or e-mail; a proposal the client never got its 201 for; a dead letter.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable

from kafka import KafkaConsumer, TopicPartition

PREFIX = "fi.espoo.kokeilu."
TOPICS = (
    "kokeilu.proposals.v1",
    "kokeilu.evaluations.v1",
    "kokeilu.results.v1",
    "kokeilu.notifications.v1",
    "kokeilu.deadletter.v1",
    "kokeilu.intake.v1",
)


def _proposal(event: dict):
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    return data.get("proposal_id") or event.get("subject")


def _data(event: dict, name: str):
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    return data.get(name)


# The fact an event records, by short type; any other type: (subject, the event it was caused by).
FACT_KEYS = {
    "proposal.submitted": _proposal,
    "proposal.contact-recorded": _proposal,
    "proposal.status-changed": lambda e: (_proposal(e), _data(e, "from_status"), _data(e, "to_status")),
    "screening.completed": _proposal,
    "evaluation.opened": _proposal,
    "result.published": _proposal,
    "result.withdrawn": _proposal,
    "delivery.succeeded": lambda e: _data(e, "delivery_id"),
    "delivery.failed": lambda e: _data(e, "delivery_id"),
}


def fact_of(event: dict):
    short = str(event.get("type", "")).removeprefix(PREFIX)
    key = FACT_KEYS.get(short)
    return short, (key(event) if key else (event.get("subject"), event.get("causationid")))


def read_topics(bootstrap: str, topics: Iterable[str], timeout: float = 300) -> dict[str, list]:
    """Every record on `topics` from the beginning to the end offsets of when it starts: per topic,
    a list of (partition, offset, key, headers, parsed event or None when it is not JSON)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        partitions = []
        for topic in topics:
            found = consumer.partitions_for_topic(topic) or set()
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        out: dict[str, list] = {topic: [] for topic in topics}
        if not partitions:
            return out
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {sorted(map(str, remaining))} to their end in {timeout:.0f}s")
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for r in records:
                    if r.offset >= end[tp]:
                        continue
                    try:
                        event = json.loads(r.value) if r.value is not None else None
                        event = event if isinstance(event, dict) else None
                    except ValueError:
                        event = None
                    out[tp.topic].append((tp.partition, r.offset, r.key, r.headers, event))
            for tp in list(remaining):
                if consumer.position(tp) >= end[tp]:  # compaction may leave gaps before the end
                    remaining.discard(tp)
        return out
    finally:
        consumer.close()


def audit(
    *,
    proposals,
    load_stats,
    stored: list[dict],
    catalogue_ids: set[str],
    topic_records: dict[str, list],
    subscriptions: list[dict],
    webhooks,
    mails,
    dead_lettered_deliveries: list[dict],
    faults: list[dict],
    drain_seconds: float | None,
    drained: bool,
) -> dict:
    """Every figure of the run and the list of failures (losses and double effects)."""
    failures: list[str] = []
    accepted = {p.id: p for p in proposals if p.outcome == "accepted"}
    by_title = {p.title: p for p in proposals}
    not_accepted = [p for p in proposals if p.outcome != "accepted"]
    if not_accepted:
        failures.append(
            f"{len(not_accepted)} proposals never got their 201 "
            f"(e.g. #{not_accepted[0].index}: {not_accepted[0].outcome}, {not_accepted[0].last_error})"
        )

    # -- the proposals store ---------------------------------------------------------------------
    ids_by_title: dict[str, list[str]] = defaultdict(list)
    status_of = {}
    for item in stored:
        ids_by_title[item["title"]].append(item["id"])
        status_of[item["id"]] = item["status"]
    stored_twice = {t: ids for t, ids in ids_by_title.items() if len(ids) > 1}
    [i for i in accepted if i not in status_of]
    strangers = [i for t, ids in ids_by_title.items() for i in ids if t not in by_title]
    orphans = [ids[0] for t, ids in ids_by_title.items() if t in by_title and by_title[t].outcome != "accepted"]
    in_evaluation = sum(1 for i in accepted if status_of.get(i) == "in_evaluation")

    # -- the topics ------------------------------------------------------------------------------
    unparseable = 0
    ids_per_fact: dict[tuple, set] = defaultdict(set)
    seen_ids: Counter = Counter()
    count_by_type: Counter = Counter()
    for topic, records in topic_records.items():
        if topic.endswith("kokeilu.deadletter.v1"):
            continue
        for _, _, _, _, event in records:
            if event is None or "id" not in event:
                unparseable += 1
                continue
            short, fact = fact_of(event)
            count_by_type[short] += 1
            ids_per_fact[(short, json.dumps(fact, default=str))].add(event["id"])
            seen_ids[(short, event["id"])] += 1
    doubles_by_type = Counter(short for (short, _), ids in ids_per_fact.items() if len(ids) > 1)
    resent_by_type = Counter(short for (short, _), n in seen_ids.items() if n > 1)
    facts_of = defaultdict(set)  # short type -> proposal ids it happened to (for proposal-keyed facts)
    screened_passed, screened_failed = set(), set()
    moved_to: dict[str, set] = defaultdict(set)
    for topic, records in topic_records.items():
        for _, _, _, _, event in records:
            if event is None or topic.endswith("kokeilu.deadletter.v1"):
                continue
            short = str(event.get("type", "")).removeprefix(PREFIX)
            facts_of[short].add(_proposal(event))
            if short == "screening.completed":
                (screened_passed if _data(event, "passed") else screened_failed).add(_proposal(event))
            elif short == "proposal.status-changed":
                moved_to[_data(event, "to_status")].add(_proposal(event))
    dead_letters = topic_records.get("kokeilu.deadletter.v1", [])
    dead_letter_reasons = Counter()
    for _, _, _, headers, _ in dead_letters:
        h = {k: (v.decode(errors="replace") if isinstance(v, bytes) else v) for k, v in (headers or [])}
        dead_letter_reasons[
            f"{h.get('kokeilu.service', '?')}: {h.get('kokeilu.reason', '?')} ({h.get('kokeilu.error', '')[:120]})"
        ] += 1

    def missing(ids: set) -> list[str]:
        return [i for i in accepted if i not in ids]

    stages = {
        "stored (proposals store)": missing(set(status_of)),
        "proposal.submitted": missing(facts_of["proposal.submitted"]),
        "screened, passed (screening.completed)": missing(screened_passed),
        "evaluation.opened": missing(facts_of["evaluation.opened"]),
        "in_evaluation (status-changed on the topic)": missing(moved_to["in_evaluation"]),
        "in_evaluation (proposals store)": [i for i in accepted if status_of.get(i) != "in_evaluation"],
        "in the catalogue (GET /v1/results)": missing(catalogue_ids),
        "result.published": missing(facts_of["result.published"]),
    }

    # -- subscribers -----------------------------------------------------------------------------
    deliveries = []
    for sub in subscriptions:
        if sub["channel"] == "webhook":
            got = [w for w in webhooks if w.subscription == sub["name"]]
            keys = lambda w: (w.proposal_id, w.event_type)  # noqa: E731
            ident = lambda w: w.delivery_id  # noqa: E731
            bad_signatures = sum(1 for w in got if w.signature_ok is False)
        else:
            got = [m for m in mails if sub["address"] in m.recipients]
            keys = lambda m: (m.proposal_id, m.event)  # noqa: E731
            ident = lambda m: m.message_id  # noqa: E731
            bad_signatures = 0
        deliveries.append(
            _mailbox(
                sub["name"],
                sub["channel"],
                got,
                keys,
                ident,
                accepted,
                {PREFIX + t for t in sub["types"]} if sub["channel"] == "webhook" else {t for t in sub["types"]},
                bad_signatures,
            )
        )
    # Proposers: each accepted proposal's own address gets one e-mail, about in_evaluation.
    proposer_mail = defaultdict(list)
    address_of = {p.contact_email: p for p in proposals}
    for m in mails:
        for rcpt in m.recipients:
            if rcpt in address_of:
                proposer_mail[rcpt].append(m)
    got = [m for p in accepted.values() for m in proposer_mail.get(p.contact_email, [])]
    deliveries.append(
        _mailbox(
            "proposers",
            "email",
            got,
            lambda m: (m.recipients, m.proposal_id, m.subject),
            lambda m: m.message_id,
            accepted,
            None,
            0,
            expected_key=lambda p: p.id,
            key_proposal=lambda k: k[1],
        )
    )

    # -- verdict ---------------------------------------------------------------------------------
    for name, ids in stages.items():
        if ids:
            failures.append(f"{len(ids)} accepted proposals missing at: {name} (e.g. {ids[0]})")
    if stored_twice:
        title, ids = next(iter(stored_twice.items()))
        failures.append(f"{len(stored_twice)} titles stored as more than one proposal (e.g. {title!r}: {ids})")
    if orphans:
        failures.append(f"{len(orphans)} proposals stored although the client never got their 201 (e.g. {orphans[0]})")
    if strangers:
        failures.append(f"{len(strangers)} stored proposals the load never sent (e.g. {strangers[0]})")
    for short, n in sorted(doubles_by_type.items()):
        failures.append(f"{n} double effects: {short} (two event ids for one fact)")
    if unparseable:
        failures.append(f"{unparseable} records on the platform's topics are not CloudEvents")
    if dead_letters:
        failures.append(f"{len(dead_letters)} dead letters: {dict(dead_letter_reasons)}")
    if dead_lettered_deliveries:
        failures.append(f"{len(dead_lettered_deliveries)} deliveries dead-lettered by notifications")
    for d in deliveries:
        if d["missing"]:
            failures.append(f"{d['missing']} {d['channel']} misses for {d['name']} (e.g. {d['missing_example']})")
        if d["duplicates"]:
            failures.append(
                f"{d['duplicates']} {d['channel']} duplicates for {d['name']} (another "
                f"{'delivery id' if d['channel'] == 'webhook' else 'Message-ID'} for one fact, "
                f"e.g. {d['duplicate_examples'][0]})"
            )
        if d["bad_signatures"]:
            failures.append(f"{d['bad_signatures']} webhooks to {d['name']} with a bad signature")
    if not drained:
        failures.append("the pipeline did not drain before the deadline")
    aimed = [f for f in faults if f["kind"] == "aimed"]
    for f in aimed:
        if not f.get("crashed"):
            failures.append(f"aimed kill {f['service']} {f['point']}@{f['nth']} was never triggered")

    return {
        "ok": not failures,
        "failures": failures,
        "load": {
            "proposals": len(proposals),
            "accepted": len(accepted),
            "not_accepted": len(not_accepted),
            "not_accepted_outcomes": dict(Counter(p.outcome for p in not_accepted)),
            "replayed_201": sum(1 for p in accepted.values() if p.replayed),
            "tries": sum(p.tries for p in proposals),
            "retries": load_stats.retries,
            "http_statuses": {str(k): v for k, v in sorted(load_stats.statuses.items())},
            "server_errors_5xx": load_stats.server_errors,
            "connection_errors": load_stats.connection_errors,
            "timeouts": load_stats.timeouts,
            "slowest_accept_seconds": round(max((p.seconds for p in accepted.values()), default=0), 2),
        },
        "stages": {"accepted": len(accepted), **{name: len(accepted) - len(ids) for name, ids in stages.items()}},
        "store": {
            "stored": len(status_of),
            "by_status": dict(Counter(status_of.values())),
            "titles_stored_twice": len(stored_twice),
            "stored_without_201": len(orphans),
            "in_evaluation_of_accepted": in_evaluation,
        },
        "screening_failed": len(screened_failed & set(accepted)),
        "events_by_type": dict(sorted(count_by_type.items())),
        "double_effects": {
            "proposal stored twice (same title)": len(stored_twice),
            **{short: doubles_by_type.get(short, 0) for short in sorted(count_by_type)},
        },
        "resent_same_id": dict(sorted(resent_by_type.items())),
        "unparseable_records": unparseable,
        "dead_letters": len(dead_letters),
        "dead_letter_reasons": dict(dead_letter_reasons),
        "dead_lettered_deliveries": len(dead_lettered_deliveries),
        "deliveries": deliveries,
        "faults": faults,
        "drained": drained,
        "drain_seconds": None if drain_seconds is None else round(drain_seconds, 1),
    }


def _mailbox(
    name, channel, got, key, ident, accepted, types, bad_signatures, expected_key=None, key_proposal=lambda k: k[0]
) -> dict:
    """Per receiver: received, expected, misses (an accepted proposal with nothing), duplicates
    (more than one distinct delivery id / Message-ID for one fact), redeliveries (the same one again)."""
    ids_per_fact: dict = defaultdict(set)
    repeats = Counter()
    for item in got:
        if types is not None and (item.event_type if channel == "webhook" else item.event) not in types:
            continue
        k = key(item)
        ids_per_fact[k].add(ident(item))
        repeats[(k, ident(item))] += 1
    covered = {key_proposal(k) for k in ids_per_fact}
    missing = [i for i in accepted if i not in covered]
    return {
        "name": name,
        "channel": channel,
        "received": len(got),
        "expected": len(accepted),
        "facts": len(ids_per_fact),
        "missing": len(missing),
        "missing_example": missing[0] if missing else None,
        "duplicates": sum(len(ids) - 1 for ids in ids_per_fact.values()),
        "duplicate_examples": [str(k) for k, ids in ids_per_fact.items() if len(ids) > 1][:5],
        "redelivered_same_id": sum(n - 1 for n in repeats.values()),
        "bad_signatures": bad_signatures,
    }


def render(report: dict) -> str:
    """The audit as a table for people."""
    lines = []
    add = lines.append
    rule = "-" * 78

    def row(label, value, note=""):
        add(f"  {label:<52} {value!s:>10}  {note}".rstrip())

    load, stages = report["load"], report["stages"]
    add(rule)
    add(f"CHAOS AUDIT  {'PASS' if report['ok'] else 'FAIL'}   run {report.get('run', '')}")
    add(rule)
    add("Load (what the clients saw)")
    row("proposals sent", load["proposals"])
    row("accepted (201)", load["accepted"], f"{load['replayed_201']} of them replays of a stored answer")
    row(
        "never accepted (refused or deadline passed)",
        load["not_accepted"],
        ", ".join(f"{k} {v}" for k, v in load["not_accepted_outcomes"].items()),
    )
    row("retries (same Idempotency-Key)", load["retries"])
    row(
        "5xx seen",
        load["server_errors_5xx"],
        ", ".join(f"{k}: {v}" for k, v in load["http_statuses"].items() if k != "201"),
    )
    row("connection errors / timeouts", f"{load['connection_errors']} / {load['timeouts']}")
    add("Pipeline (of the accepted proposals, how many reached each stage)")
    for name, n in stages.items():
        row(name, n, "" if n == stages["accepted"] else f"MISSING {stages['accepted'] - n}")
    row("screening failed", report["screening_failed"])
    row(
        "stored proposals (all)",
        report["store"]["stored"],
        ", ".join(f"{k} {v}" for k, v in report["store"]["by_status"].items()),
    )
    add("Double effects (two event ids for one fact; must all be 0)")
    for name, n in report["double_effects"].items():
        row(name, n, "" if not n else "DOUBLE")
    if report["resent_same_id"]:
        row(
            "re-sent with the same event id (dropped by inboxes)",
            sum(report["resent_same_id"].values()),
            ", ".join(f"{k} {v}" for k, v in report["resent_same_id"].items()),
        )
    add("Subscribers")
    for d in report["deliveries"]:
        row(
            f"{d['channel']} {d['name']}: received / facts / expected",
            f"{d['received']}/{d['facts']}/{d['expected']}",
            f"misses {d['missing']}, duplicates {d['duplicates']}, redelivered same id {d['redelivered_same_id']}"
            + (f", bad signatures {d['bad_signatures']}" if d["bad_signatures"] else ""),
        )
    add("Dead letters")
    row("records on kokeilu.deadletter.v1", report["dead_letters"])
    for reason, n in report["dead_letter_reasons"].items():
        row(f"  {reason[:50]}", n)
    row("deliveries dead-lettered (GET /v1/deliveries)", report["dead_lettered_deliveries"])
    row("records that are not CloudEvents", report["unparseable_records"])
    add("Faults (time to ready = restart of the process -> its first 200 on /health/ready)")
    for f in report["faults"]:
        ready = f"{f['ready_seconds']:.1f}s" if f.get("ready_seconds") is not None else "-"
        add(f"  {f['at']:>7.1f}s  {f['label']:<45} ready {ready:>7}  {f.get('note', '')}".rstrip())
    add("Drain")
    row(
        "time to drain (load and faults over -> nothing in flight)",
        f"{report['drain_seconds']}s" if report["drain_seconds"] is not None else "-",
        "" if report["drained"] else "DID NOT DRAIN",
    )
    add(rule)
    if report["failures"]:
        add("FAILURES")
        for f in report["failures"]:
            add(f"  - {f}")
    else:
        add("No loss, no double effect.")
    add(rule)
    return "\n".join(lines)
