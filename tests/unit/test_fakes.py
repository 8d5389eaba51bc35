"""The fakes keep the transaction semantics the handler tests rely on."""
import pytest

from kokeilu.contracts import catalog as types
from services.proposals.domain import Proposal

from tests.unit.examples import WHEN, a_proposal_submitted, a_submission, an_event
from tests.unit.fakes import FakeProposalsUnitOfWork


def test_work_left_without_commit_is_rolled_back():
    uow = FakeProposalsUnitOfWork()
    event = an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted())
    with uow:
        uow.proposals.add(Proposal.submit("p-1", a_submission(), WHEN, "http"))
        uow.publish(event)
        assert uow.first_time("c", event)
    assert uow.proposals.get("p-1") is None
    assert uow.published == []
    with uow:
        assert uow.first_time("c", event), "the inbox record was rolled back too"


def test_work_is_rolled_back_when_the_block_raises():
    uow = FakeProposalsUnitOfWork()
    with pytest.raises(RuntimeError), uow:
        uow.proposals.add(Proposal.submit("p-1", a_submission(), WHEN, "http"))
        uow.commit()
        raise RuntimeError("boom")
    assert uow.proposals.get("p-1") is None


def test_committed_work_stays_and_the_inbox_remembers_source_and_id():
    uow = FakeProposalsUnitOfWork()
    event = an_event(types.PROPOSAL_SUBMITTED, a_proposal_submitted(), source="a", event_id="1")
    with uow:
        uow.proposals.add(Proposal.submit("p-1", a_submission(), WHEN, "http"))
        uow.publish(event)
        assert uow.first_time("c", event)
        uow.commit()
    assert uow.proposals.get("p-1") is not None
    assert [p.topic for p in uow.outbox] == [types.PROPOSAL_SUBMITTED.topic]
    assert uow.outbox[0].key == event.subject
    with uow:
        assert not uow.first_time("c", event)
        assert uow.first_time("other-consumer", event)
        assert uow.first_time("c", event.model_copy(update={"source": "b"}))
