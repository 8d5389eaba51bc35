"""Idempotency-Key: replay, refusal of reuse on another route, and the key written in the same
transaction as its work (no crash can leave one without the other)."""

from types import SimpleNamespace

import pytest

from kokeilu.http import Unprocessable
from services.proposals import handlers
from services.proposals.idempotency import idempotent
from tests.builders import a_submission
from tests.unit.fakes import FakeProposalsUnitOfWork


def request(key="k-1", path="/v1/proposals", method="POST"):
    return SimpleNamespace(
        headers={"Idempotency-Key": key} if key else {},
        method=method,
        path=path,
        principal=SimpleNamespace(name="portal"),
    )


@pytest.fixture
def shared():
    return FakeProposalsUnitOfWork()


@pytest.fixture
def uow(shared):
    return lambda: shared


def submit(uow):
    return 201, {"id": handlers.submit_proposal(a_submission(), uow).id}


def test_a_repeated_key_replays_the_answer_without_doing_the_work_again(uow, shared):
    first = idempotent(request(), uow, submit)
    replay = idempotent(request(), uow, submit)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first[1]
    assert len(shared.proposals.rows) == 1


def test_the_key_and_the_work_commit_together(uow, shared):
    idempotent(request(), uow, submit)
    # One commit holds both: the proposal, its events and the stored answer.
    assert shared.commits == 1
    stored = shared.idempotency.get("portal", "k-1")
    assert stored.status == 201 and stored.body["id"] in shared.proposals.rows
    assert shared.published_of("fi.espoo.kokeilu.proposal.submitted")


def test_a_crash_before_the_commit_leaves_nothing_and_the_retry_runs_at_once(uow, shared):
    class Crash(BaseException):
        pass

    def crashing(u):
        submit(u)
        raise Crash()  # the process dies after the work, before the commit

    with pytest.raises(Crash):
        idempotent(request(), uow, crashing)
    assert shared.proposals.rows == {} and shared.idempotency.get("portal", "k-1") is None and not shared.outbox
    status, body = idempotent(request(), uow, submit)
    assert status == 201 and list(shared.proposals.rows) == [body["id"]]


def test_a_key_reused_on_another_route_is_refused(uow):
    idempotent(request(), uow, submit)
    with pytest.raises(Unprocessable):
        idempotent(request(path="/v1/proposals/p-1/withdraw"), uow, lambda u: (200, {}))


def test_a_refused_request_keeps_no_key_and_changes_nothing(uow, shared):
    def refused(u):
        submit(u)
        raise Unprocessable("bad", {})

    with pytest.raises(Unprocessable):
        idempotent(request(), uow, refused)
    assert shared.idempotency.get("portal", "k-1") is None and shared.proposals.rows == {}
    assert idempotent(request(), uow, submit)[0] == 201


def test_without_a_key_the_work_runs_as_it_is(uow, shared):
    idempotent(request(key=None), uow, submit)
    idempotent(request(key=None), uow, submit)
    assert len(shared.proposals.rows) == 2 and shared.idempotency.rows == {}
