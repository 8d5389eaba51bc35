"""E-mails go over SMTP connections kept open between messages (emails.SmtpConnections): one
connection for a run of messages, a new one when the server closed the kept one (and the message
sent on it), none kept after a failed send or for longer than the idle time."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import threading
from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.notifications import emails
from services.notifications.emails import Rendered, SmtpConnections, send_composed
from services.notifications.settings import MailSettings

DOMAIN = "kokeilu.espoo.fi"
WORDS = Rendered("Tila muuttui: ääni", "Hei,\nFrom here.\n", "<p>Hei</p>\n", "fi")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """An SMTP server that records each message with the connection (peer) it came on; MAIL
    answers `mail_reply` when one is set (e.g. a 421 for a connection it no longer serves)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.received: list[tuple[tuple[str, int], str, list[str], bytes]] = []
        self.connections = 0
        self.mail_reply: str | None = None
        self.delay = 0.0  # seconds DATA takes
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> Server:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        if self.mail_reply:
            reply, self.mail_reply = self.mail_reply, None
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        await asyncio.sleep(self.delay)
        with self.lock:
            self.received.append((session.peer, envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"

    def peers(self) -> set[tuple[str, int]]:
        return {peer for peer, *_ in self.received}


def settings(port: int) -> MailSettings:
    return MailSettings(host="127.0.0.1", port=port, sender="Kokeilu <kokeilu@espoo.example>", timeout_seconds=5)


def send(connections: SmtpConnections, to: str = "a@espoo.example", message_id: str = "d-1"):
    return send_composed(connections, connections.settings.sender, to, WORDS, domain=DOMAIN, message_id=message_id)


def test_a_run_of_messages_goes_over_one_connection_as_send_message_would_send_them():
    with Server() as server:
        connections = SmtpConnections(settings(server.port))
        assert [send(connections, f"r{i}@espoo.example", f"d-{i}") for i in range(5)] == [(250, None)] * 5
        connections.close()
    assert server.connections == 1 and len(server.peers()) == 1
    assert [(mail_from, to) for _peer, mail_from, to, _data in server.received] == [
        ("kokeilu@espoo.example", [f"r{i}@espoo.example"]) for i in range(5)
    ]
    parsed = BytesParser(policy=policy.default).parsebytes(server.received[0][3])
    assert parsed["Message-ID"] == "<d-0@kokeilu.espoo.fi>" and parsed["Subject"] == WORDS.subject
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hei,\n>From here.\n"


def test_an_address_the_direct_writer_does_not_take_goes_through_send_message_on_the_same_connection():
    with Server() as server:
        connections = SmtpConnections(settings(server.port))
        assert send(connections, "plain@espoo.example") == (250, None)
        assert send(connections, '"two words"@espoo.example') == (250, None)
        connections.close()
    assert server.connections == 1
    assert [to for _peer, _from, to, _data in server.received] == [
        ["plain@espoo.example"],
        ['"two words"@espoo.example'],
    ]


def test_when_the_server_closed_the_kept_connection_the_message_goes_on_a_new_one():
    port = free_port()
    connections = SmtpConnections(settings(port))
    with Server(port) as first:
        assert send(connections, message_id="d-1") == (250, None)
    with Server(port) as second:  # the server restarted: the kept connection is gone
        assert send(connections, message_id="d-2") == (250, None)
        assert send(connections, message_id="d-3") == (250, None)
        connections.close()
    assert len(first.received) == 1
    assert [b"d-2@" in data for *_rest, data in second.received] == [True, False]
    assert second.connections == 1, "one new connection, kept again"


def test_a_421_on_a_kept_connection_is_answered_with_a_new_connection():
    with Server() as server:
        connections = SmtpConnections(settings(server.port))
        assert send(connections) == (250, None)
        server.mail_reply = "421 4.7.0 too many messages on this connection"
        assert send(connections) == (250, None)
        connections.close()
    assert server.connections == 2 and len(server.received) == 2


def test_a_421_on_a_new_connection_is_the_attempts_outcome():
    with Server() as server:
        connections = SmtpConnections(settings(server.port))
        server.mail_reply = "421 4.3.2 shutting down"
        assert send(connections) == (421, "SMTP 421")
        assert server.received == []


def test_a_refused_message_is_reported_and_its_connection_not_kept():
    with Server() as server:
        connections = SmtpConnections(settings(server.port))
        server.mail_reply = "550 5.7.1 sender refused by relay-7.internal (policy v2)"
        assert send(connections) == (550, "SMTP 550")
        assert connections._idle == []
        assert send(connections) == (250, None)
        connections.close()
    assert server.connections == 2


def test_a_connection_idle_for_too_long_is_closed_not_used():
    now = [0.0]
    with Server() as server:
        connections = SmtpConnections(settings(server.port), idle_seconds=30, clock=lambda: now[0])
        assert send(connections) == (250, None)
        now[0] = 29
        assert send(connections) == (250, None)
        now[0] = 60
        assert send(connections) == (250, None)
        connections.close()
    assert server.connections == 2 and len(server.peers()) == 2


def test_concurrent_sends_each_have_a_connection_and_then_share_them():
    with Server() as server:
        server.delay = 0.3
        connections = SmtpConnections(settings(server.port))
        results: list[object] = []
        threads = [threading.Thread(target=lambda: results.append(send(connections))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        server.delay = 0
        assert results == [(250, None)] * 3 and server.connections == 3
        assert [send(connections) for _ in range(6)] == [(250, None)] * 6
        connections.close()
    assert server.connections == 3 and len(server.peers()) == 3


def test_no_server_is_a_connection_refused_without_a_second_try():
    tried = []

    def connect(s: MailSettings) -> smtplib.SMTP:
        tried.append(s.port)
        return emails._connect(s)

    connections = SmtpConnections(settings(free_port()), connect=connect)
    assert send(connections) == (None, "connection refused")
    assert len(tried) == 1


def test_closing_says_quit_to_every_kept_connection():
    with Server() as server:
        connections = SmtpConnections(settings(server.port))
        assert send(connections) == (250, None)
        ((smtp, _since),) = connections._idle
        connections.close()
        assert connections._idle == [] and smtp.sock is None


@pytest.mark.parametrize("error", [smtplib.SMTPRecipientsRefused({"a@b.fi": (550, b"no")})])
def test_what_is_not_the_server_going_away_is_not_tried_again(error):
    calls = []

    class Refusing:
        def sendmail(self, *args):
            calls.append(args)
            raise error

        def close(self):
            pass

    connections: Any = SmtpConnections(settings(1), connect=lambda s: Refusing())
    connections._give_back(Refusing())
    assert send(connections) == (550, "recipient refused: SMTP 550")
    assert len(calls) == 1


def test_closing_without_a_word_just_closes_the_sockets():
    with Server() as server:
        connections = SmtpConnections(settings(server.port))
        assert send(connections) == (250, None)
        ((smtp, _since),) = connections._idle
        smtp.quit = None  # not called
        connections.close(polite=False)
        assert connections._idle == [] and smtp.sock is None
