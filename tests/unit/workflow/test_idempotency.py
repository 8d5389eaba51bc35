"""Idempotency-Key: replay, refusal of reuse on another route, and no double work under a race."""
from types import SimpleNamespace

import pytest

from kokeilu.http import Conflict, Unprocessable
from services.proposals.idempotency import IN_PROGRESS, idempotent
from tests.unit.fakes import FakeProposalsUnitOfWork


def request(key="k-1", path="/v1/proposals", method="POST"):
    return SimpleNamespace(headers={"Idempotency-Key": key} if key else {}, method=method, path=path,
                           principal=SimpleNamespace(name="portal"))


@pytest.fixture
def uow():
    shared = FakeProposalsUnitOfWork()
    return lambda: shared


def test_a_repeated_key_replays_the_answer_without_doing_the_work_again(uow):
    calls = []
    work = lambda: calls.append(1) or (201, {"id": "p-1"})  # noqa: E731
    assert idempotent(request(), uow, work) == (201, {"id": "p-1"})
    replay = idempotent(request(), uow, work)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert calls == [1]


def test_a_key_reused_on_another_route_is_refused(uow):
    idempotent(request(), uow, lambda: (201, {"id": "p-1"}))
    with pytest.raises(Unprocessable):
        idempotent(request(path="/v1/proposals/p-1/withdraw"), uow, lambda: (200, {}))


def test_a_second_request_while_the_first_runs_is_told_to_wait(uow):
    def first():
        with pytest.raises(Conflict):
            idempotent(request(), uow, lambda: pytest.fail("the work must not run twice"))
        return 201, {"id": "p-1"}
    assert idempotent(request(), uow, first) == (201, {"id": "p-1"})
    assert uow().idempotency.get("portal", "k-1").status == 201


def test_a_refused_request_releases_its_key(uow):
    with pytest.raises(Unprocessable):
        idempotent(request(), uow, lambda: (_ for _ in ()).throw(Unprocessable("bad", {})))
    assert uow().idempotency.get("portal", "k-1") is None
    assert idempotent(request(), uow, lambda: (201, {"id": "p-2"})) == (201, {"id": "p-2"})


def test_a_claim_left_by_a_crash_is_taken_over_when_stale(uow):
    from datetime import timedelta

    from kokeilu.contracts import utcnow
    with uow() as u:
        u.idempotency.add("portal", "k-1", "POST /v1/proposals", IN_PROGRESS, None, utcnow() - timedelta(hours=1))
        u.commit()
    assert idempotent(request(), uow, lambda: (201, {"id": "p-3"})) == (201, {"id": "p-3"})
