"""One proposal through all four services, each a separate process, on the real broker."""

import pytest

from kokeilu.contracts import topics
from tests.builders import submission
from tests.support import Mailbox, Receiver, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

PUBLISHED = "fi.espoo.kokeilu.result.published"


def test_a_submitted_proposal_reaches_the_catalogue_the_subscriber_and_the_proposer(platform, probe):
    receiver, mailbox = Receiver(), Mailbox()
    try:
        platform.extra_env.update(KOKEILU_SMTP_HOST="127.0.0.1", KOKEILU_SMTP_PORT=str(mailbox.port))
        platform.start("proposals", "evaluation", "notifications", "catalogue")
        sub = platform.post(
            "notifications",
            "/v1/subscriptions",
            {
                "subscriber": "Mobility department",
                "channel": "webhook",
                "url": receiver.url,
                "filter": {"types": [PUBLISHED], "focus_areas": ["smart_mobility"]},
            },
        )
        assert sub.status_code == 201, sub.text

        created = platform.post("proposals", "/v1/proposals", submission())
        assert created.status_code == 201, created.text
        pid = created.json()["id"]

        result = wait_until(
            lambda: (
                platform.get("catalogue", f"/v1/results/{pid}").json().get("result_id")
                and platform.get("catalogue", f"/v1/results/{pid}").json()
            ),
            timeout=60,
            what="the catalogue to show the proposal",
        )
        assert result["title"] == submission()["title"] and "contact_email" not in str(result)

        status = wait_until(
            lambda: platform.get("proposals", f"/v1/proposals/{pid}").json()["status"] == "in_evaluation",
            timeout=60,
            what="proposals to record the screening",
        )
        assert status

        _, event = wait_until(
            lambda: next((r for r in receiver.received if r[1]["subject"] == pid), None),
            timeout=60,
            what="the webhook receiver to get the notification",
        )
        assert event["type"] == PUBLISHED
        assert "pilot@example.com" not in str(event)

        # The proposer hears about their own proposal without subscribing, in its language.
        [mail, *_] = wait_until(lambda: mailbox.to("pilot@example.com"), timeout=60, what="the proposer's e-mail")
        assert submission()["title"] in mail["Subject"]

        [published] = probe.events(platform.topic(topics.RESULTS), PUBLISHED, where=lambda e: e["subject"] == pid)
        assert published["correlationid"]  # one correlation id follows the proposal through the services

        codes = platform.stop()
        assert codes == {"proposals": 0, "evaluation": 0, "notifications": 0, "catalogue": 0}  # graceful SIGTERM
    finally:
        receiver.close()
        mailbox.close()
