"""The chaos audit itself: it must see a double effect, a duplicate, a miss and a loss when there is
one, and must not call a redelivery with the same id a duplicate. Pure data, no processes."""

import itertools
import uuid

from chaos.audit import PREFIX, audit
from chaos.load import LoadStats, Proposal
from chaos.sinks import Mail, Webhook

SUBSCRIPTIONS = [
    {"name": "hook", "channel": "webhook", "types": ["result.published"], "address": None},
    {"name": "mail", "channel": "email", "types": ["result.published"], "address": "box@x.example"},
]
_offsets = itertools.count()


def event(type_, proposal_id, event_id=None, **data):
    return (
        0,
        next(_offsets),
        None,
        [],
        {
            "id": event_id or str(uuid.uuid4()),
            "type": PREFIX + type_,
            "subject": proposal_id,
            "data": {"proposal_id": proposal_id, **data},
        },
    )


def healthy(n=3):
    """n proposals that went everywhere exactly once."""
    proposals, stored, records, hooks, mails = (
        [],
        [],
        {
            "kokeilu.proposals.v1": [],
            "kokeilu.evaluations.v1": [],
            "kokeilu.results.v1": [],
            "kokeilu.deadletter.v1": [],
        },
        [],
        [],
    )
    for i in range(n):
        pid = str(uuid.uuid4())
        p = Proposal(i, f"k{i}", f"title {i}", f"p{i}@x.example", {}, id=pid, outcome="accepted")
        proposals.append(p)
        stored.append({"id": pid, "title": p.title, "status": "in_evaluation"})
        records["kokeilu.proposals.v1"] += [
            event("proposal.submitted", pid),
            event("proposal.status-changed", pid, from_status="screening", to_status="in_evaluation"),
        ]
        records["kokeilu.evaluations.v1"] += [
            event("screening.completed", pid, passed=True),
            event("evaluation.opened", pid),
        ]
        records["kokeilu.results.v1"].append(event("result.published", pid))
        hooks.append(Webhook("hook", f"d{i}", f"d{i}", f"e{i}", PREFIX + "result.published", pid, True, 0))
        mails.append(Mail(("box@x.example",), "Kokeilu: result.published – t", f"<m{i}>", "result.published", pid, 0))
        mails.append(Mail((p.contact_email,), "Your proposal is being evaluated", f"<q{i}>", None, pid, 0))
    return dict(
        proposals=proposals,
        load_stats=LoadStats(),
        stored=stored,
        catalogue_ids={p.id for p in proposals},
        topic_records=records,
        subscriptions=SUBSCRIPTIONS,
        webhooks=hooks,
        mails=mails,
        dead_lettered_deliveries=[],
        faults=[],
        drain_seconds=1.0,
        drained=True,
    )


def test_a_clean_run_passes():
    report = audit(**healthy())
    assert report["ok"], report["failures"]
    assert set(report["stages"].values()) == {3}
    assert set(report["double_effects"].values()) == {0}


def test_two_event_ids_for_one_fact_is_a_double_effect_and_the_same_id_again_is_not():
    run = healthy()
    pid = run["proposals"][0].id
    first = run["topic_records"]["kokeilu.evaluations.v1"][0]
    run["topic_records"]["kokeilu.evaluations.v1"] += [first, event("screening.completed", pid, passed=True)]
    report = audit(**run)
    assert report["double_effects"]["screening.completed"] == 1
    assert report["resent_same_id"] == {"screening.completed": 1}
    assert not report["ok"]


def test_a_redelivered_webhook_is_not_a_duplicate_but_another_delivery_id_is():
    run = healthy()
    again = run["webhooks"][0]
    run["webhooks"].append(again)
    hook = next(d for d in audit(**run)["deliveries"] if d["name"] == "hook")
    assert (hook["duplicates"], hook["redelivered_same_id"]) == (0, 1)

    run["webhooks"].append(
        Webhook("hook", "other", "other", again.event_id, again.event_type, again.proposal_id, True, 0)
    )
    report = audit(**run)
    hook = next(d for d in report["deliveries"] if d["name"] == "hook")
    assert hook["duplicates"] == 1 and not report["ok"]


def test_a_second_email_with_another_message_id_is_a_duplicate():
    run = healthy()
    m = run["mails"][0]
    run["mails"].append(Mail(m.recipients, m.subject, "<another>", m.event, m.proposal_id, 0))
    report = audit(**run)
    assert next(d for d in report["deliveries"] if d["name"] == "mail")["duplicates"] == 1
    assert not report["ok"]


def test_losses_and_a_title_stored_twice_are_found():
    run = healthy()
    lost = run["proposals"][1].id
    run["topic_records"]["kokeilu.results.v1"] = [
        r for r in run["topic_records"]["kokeilu.results.v1"] if r[4]["subject"] != lost
    ]
    run["webhooks"] = [w for w in run["webhooks"] if w.proposal_id != lost]
    run["stored"].append({"id": str(uuid.uuid4()), "title": run["proposals"][2].title, "status": "screening_failed"})
    report = audit(**run)
    assert report["stages"]["result.published"] == 2
    assert next(d for d in report["deliveries"] if d["name"] == "hook")["missing"] == 1
    assert report["store"]["titles_stored_twice"] == 1
    assert not report["ok"] and len(report["failures"]) == 3, report["failures"]
