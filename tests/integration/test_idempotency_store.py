"""Idempotency-Key on the real stores (SQLite and PostgreSQL): two requests racing with one key
do the work once and get the same answer; the key is never committed without its work."""

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from kokeilu.store import Database
from services.proposals import handlers
from services.proposals.idempotency import idempotent
from services.proposals.store import ProposalsUnitOfWork
from tests.builders import a_submission

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def database(database_url):
    db = Database(database_url, ROOT / "services" / "proposals" / "migrations", busy_timeout_seconds=30)
    db.migrate()
    yield db
    db.dispose()


def request(key: str):
    return SimpleNamespace(
        headers={"Idempotency-Key": key}, method="POST", path="/v1/proposals", principal=SimpleNamespace(name="portal")
    )


def test_racing_requests_with_one_key_do_the_work_once(database):
    uow = lambda: ProposalsUnitOfWork(database)  # noqa: E731
    first_inside = threading.Event()
    release_first = threading.Event()
    runs, answers, errors = [], {}, []

    def work(u, name):
        runs.append(name)
        proposal = handlers.submit_proposal(a_submission(), u)
        if name == "first":
            first_inside.set()
            release_first.wait(timeout=30)  # hold the transaction open while the twin arrives
        return 201, {"id": proposal.id}

    def client(name):
        try:
            answers[name] = idempotent(request("race-1"), uow, lambda u: work(u, name))
        except Exception as exc:  # recorded, asserted below
            errors.append(exc)

    first = threading.Thread(target=client, args=("first",))
    first.start()
    assert first_inside.wait(timeout=30)
    second = threading.Thread(target=client, args=("second",))
    second.start()
    second.join(timeout=1)
    assert second.is_alive(), "the twin must wait for the first transaction, not run beside it"
    release_first.set()
    first.join(timeout=30)
    second.join(timeout=30)

    assert errors == [] and runs == ["first"]
    status, body = answers["first"]
    replay = answers["second"]
    assert status == 201 and replay.status_code == 201 and replay.get_json() == body
    with uow() as u:
        assert len(u.proposals.list(limit=10)) == 1
        assert u.idempotency.get("portal", "race-1").status == 201


def test_work_that_fails_leaves_neither_key_nor_work(database):
    uow = lambda: ProposalsUnitOfWork(database)  # noqa: E731

    def failing(u):
        handlers.submit_proposal(a_submission(), u)
        raise RuntimeError("the process dies here")

    with pytest.raises(RuntimeError):
        idempotent(request("fail-1"), uow, failing)
    with uow() as u:
        assert u.idempotency.get("portal", "fail-1") is None and u.proposals.list(limit=10) == []
        assert u.conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar_one() == 0
