"""E-mail: rendering from Jinja2 templates in fi, sv and en, composing the message, and sending it
over SMTP.

One template per kind and language, `templates/<language>/<kind>.j2` (kind: `event`, a
subscriber's immediate e-mail; `proposer`, a proposer hears of their own proposal's status;
`digest`), extending `templates/_layout.j2`. It is rendered three times: the subject, the
text/plain part and the autoescaped text/html part, so that the wording lives in one place.

The message is multipart/alternative (text, then HTML), with `Auto-Submitted: auto-generated`,
`Content-Language`, a `Date` in UTC (+0000), a `Message-ID` of the delivery at the configured mail
domain, and `List-Unsubscribe` + `List-Unsubscribe-Post` (RFC 8058 one-click) when there is an
unsubscribe link. The subject is encoded here (RFC 2047), not by the email package's folder,
which in CPython 3.11 loses the space between adjacent encoded words; see `encode_subject`.
"""

from __future__ import annotations

import io
import logging
import random
import re
import smtplib
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email import quoprimime
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider

from .domain import check_domain
from .settings import MailSettings, mail_settings

LANGUAGES = ("fi", "sv", "en")
_loader = FileSystemLoader(Path(__file__).parent / "templates")


def _environment(autoescape: bool) -> Environment:
    # auto_reload=False: the templates are the package's files, which do not change while it
    # runs; each is compiled once per process and not looked at on disk again (a stat per use).
    return Environment(
        autoescape=autoescape,
        loader=_loader,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


_text_env = _environment(autoescape=False)  # the subject and the text/plain part
_html_env = _environment(autoescape=True)  # the text/html part: every value escaped
_ADDRESS = re.compile(r"\S*@\S*")
log = logging.getLogger(__name__)

# Headers this module writes itself (already folded, ASCII only) are stored as they are
# (Message.set_raw) and written as they are: refold_source="none". The default policy would
# otherwise refold them with its folder, which loses spaces between encoded words and would
# encode a long List-Unsubscribe URL as if it were text.
POLICY = email_policy.default.clone(refold_source="none")
MAX_LINE = 78  # RFC 5322's recommended line length, which the folding keeps to
MAX_ENCODED_WORD = 75  # RFC 2047
_Q_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


@dataclass(frozen=True)
class Rendered:
    """An e-mail's words: one subject line, the text/plain and the text/html part, and the language."""

    subject: str
    text: str
    html: str
    language: str


def short_type(event_type: str) -> str:
    return event_type.removeprefix("fi.espoo.kokeilu.")


def clean_subject(subject: str) -> str:
    """One line: control characters and every run of white space become one space; no lone surrogates."""
    subject = "".join(
        " " if unicodedata.category(c) == "Cc" else "\ufffd" if unicodedata.category(c) == "Cs" else c for c in subject
    )
    return " ".join(subject.split())


def _clean_text(text: str) -> str:
    # Trailing white space goes, but for the signature separator "-- ".
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


def compile_templates() -> int:
    """Compile every template now (both environments), rather than on the first e-mail that
    needs each; how many. The service does it as it starts."""
    names = _loader.list_templates()
    for env in (_text_env, _html_env):
        for name in names:
            env.get_template(name)
    return len(names)


def render(kind: str, payload: dict[str, Any], language: str, unsubscribe_url: str | None = None) -> Rendered:
    """The e-mail of `kind` in `language` (fi when the language is unknown), with the link to
    unsubscribe (or, for a proposer, to opt out) when there is one."""
    language = language if language in LANGUAGES else "fi"
    name = f"{language}/{kind}.j2"
    values = dict(payload, short_type=short_type, language=language, unsubscribe_url=unsubscribe_url)
    subject = _text_env.get_template(name).render(values, part="subject", html=False)
    text = _text_env.get_template(name).render(values, part="text", html=False)
    html = _html_env.get_template(name).render(values, part="html", html=True)
    return Rendered(clean_subject(subject), _clean_text(text), html.strip() + "\n", language)


def encode_subject(subject: str, name: str = "Subject") -> str:
    """`subject` as a header value folded to lines of at most 78 characters (continuation lines
    start with a space), which any decoder turns back into exactly `clean_subject(subject)`.

    ASCII text is left as it is and folded at its spaces (unfolding gives the spaces back).
    Anything else, an ASCII word too long for a line, or text that looks like an encoded word, is
    written as UTF-8 encoded words (Q encoding) of whole characters. Every space goes inside an
    encoded word: a decoder drops the white space *between* two encoded words (RFC 2047 6.2),
    which is how CPython 3.11's own folder loses the space between two words (gh-144156)."""
    subject = clean_subject(subject)
    first = MAX_LINE - len(name) - 2  # "Subject: " starts the first line
    plain = _fold_plain(subject, first)
    return plain if plain is not None else _encoded_words(subject, first)


def _fold_plain(subject: str, first: int) -> str | None:
    if not subject:
        return ""
    if not all(" " <= c <= "~" for c in subject) or "=?" in subject:
        return None
    lines, line, room = [], "", first
    for word in subject.split(" "):
        if len(word) > MAX_LINE - 1:
            return None
        if line and len(line) + 1 + len(word) > room:
            lines.append(line)
            line, room = word, MAX_LINE - 1
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    if len(lines[0]) > first:
        return None
    return "\n ".join(lines)


def _q(char: str) -> str:
    return "".join("_" if b == 0x20 else chr(b) if b in _Q_LITERAL else f"={b:02X}" for b in char.encode("utf-8"))


def _encoded_words(subject: str, first: int) -> str:
    prefix, suffix = "=?utf-8?q?", "?="
    words, chunk = [], ""
    room = min(first, MAX_ENCODED_WORD) - len(prefix) - len(suffix)
    for char in subject:
        encoded = _q(char)
        if chunk and len(chunk) + len(encoded) > room:
            words.append(prefix + chunk + suffix)
            chunk, room = "", MAX_ENCODED_WORD - len(prefix) - len(suffix)
        chunk += encoded
    words.append(prefix + chunk + suffix)
    return "\n ".join(words)


def _check_unsubscribe_url(unsubscribe_url: str) -> None:
    if not re.fullmatch(r"https?://[!-~]+", unsubscribe_url) or any(c in unsubscribe_url for c in "<>"):
        raise ValueError("an unsubscribe URL is an http(s) URL of printable ASCII without < or >")


def compose(
    sender: str,
    to: str,
    mail: Rendered,
    *,
    domain: str,
    message_id: str | None = None,
    unsubscribe_url: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The message as it is sent: multipart/alternative (text/plain, then text/html), headers as
    the module's docstring says. One Message-ID per delivery, the same on every attempt: a
    message sent again after a crash (the server took it, the attempt was not recorded) is the
    same message, which mail systems and readers drop as a duplicate, as webhook receivers do
    by Idempotency-Key."""
    message = EmailMessage(policy=POLICY)
    message["From"], message["To"] = sender, to
    message.set_raw("Subject", encode_subject(mail.subject))
    message["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    message.set_raw("Message-ID", f"<{message_id}@{domain}>" if message_id else make_msgid(domain=domain))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to it
    if unsubscribe_url:
        _check_unsubscribe_url(unsubscribe_url)
        message.set_raw("List-Unsubscribe", f"<{unsubscribe_url}>")
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    # Quoted-printable: 7-bit clean for any server, whether it offers 8BITMIME or not.
    message.set_content(mail.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(mail.html, subtype="html", charset="utf-8", cte="quoted-printable")
    message["Content-Language"] = mail.language  # after the content: set_content drops Content-* headers
    return message


def wire(message: EmailMessage) -> bytes:
    """`message` as smtplib.SMTP.send_message writes it (CRLF line ends, "From " lines mangled)."""
    out = io.BytesIO()
    BytesGenerator(out).flatten(message, linesep="\r\n")
    return out.getvalue()


# -- the same message, written directly ---------------------------------------------------------
# compose() builds the message with the email package, whose header registry parses every header
# it is given and whose content manager and generator walk the message again to write it: about a
# millisecond a message, more than the rest of a delivery. wire_message() writes the very bytes
# wire(compose(...)) writes (tests/unit/notifications/test_email.py compares them), with the
# email package's own functions for what varies (encoded headers, quoted-printable bodies) and
# its output, computed once, for the headers that are the same in every message.
_WIRE = POLICY.clone(linesep="\r\n")
# An address that is written as it is (no display name, nothing to quote or encode); another one
# goes through the email package (compose, send_message).
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_FROM_LINE = re.compile(r"^From ", re.MULTILINE)  # what the generator mangles (mangle_from_)
_NEWLINE = re.compile(r"\r\n|\r|\n")
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))  # the generator's boundaries: "=" * 15, digits, "=="
_TEXT_PART = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
# add_alternative gives the second part a MIME-Version header of its own: kept, byte for byte.
_HTML_PART = (
    b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
    b"MIME-Version: 1.0\r\n\r\n"
)


@lru_cache(maxsize=64)
def _header(name: str, value: str) -> bytes:
    """The header line(s) the generator writes for `message[name] = value`, for values that
    repeat (the sender, the languages, constants)."""
    return _WIRE.fold_binary(name, _WIRE.header_store_parse(name, value)[1])


@lru_cache(maxsize=8)
def envelope_sender(sender: str) -> str | None:
    """The envelope sender send_message takes from the From header, when it is plain ASCII."""
    address = getaddresses([str(_WIRE.header_store_parse("From", sender)[1])])[0][1]
    return address if address and address.isascii() else None


def plain_address(to: str) -> bool:
    """Whether `to` is an address that wire_message writes itself and sends to as it is."""
    return len(to) <= MAX_LINE - len("To: ") and _PLAIN_ADDRESS.fullmatch(to) is not None


def _quoted_printable(text: str) -> bytes:
    # As email.contentmanager's set_text_content with cte="quoted-printable" encodes the text, and
    # the generator writes it (From lines mangled, CRLF line ends).
    body = b"\n".join(text.encode("utf-8").splitlines()) + b"\n"
    payload = _FROM_LINE.sub(">From ", quoprimime.body_encode(body.decode("latin-1"), MAX_LINE))
    return "\r\n".join(_NEWLINE.split(payload)).encode("ascii")


def wire_message(
    sender: str,
    to: str,
    mail: Rendered,
    *,
    domain: str,
    message_id: str | None = None,
    unsubscribe_url: str | None = None,
    now: datetime | None = None,
    boundary: str | None = None,
) -> bytes:
    """wire(compose(...)) with the same arguments, for a plain `to` (plain_address), written
    directly; `boundary` is the generator's random one unless given."""
    if not plain_address(to):
        raise ValueError("wire_message writes only plain addresses; compose the message instead")
    if unsubscribe_url:
        _check_unsubscribe_url(unsubscribe_url)
    ident = f"<{message_id}@{domain}>" if message_id else make_msgid(domain=domain)
    date = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    boundary = boundary or "=" * 15 + f"{random.randrange(sys.maxsize):0{_BOUNDARY_DIGITS}d}" + "=="
    lines = [
        _header("From", sender),
        f"To: {to}\r\n".encode("ascii"),
        _raw_header("Subject", encode_subject(mail.subject)),
        f"Date: {date}\r\n".encode("ascii"),
        _raw_header("Message-ID", ident),
        _header("Auto-Submitted", "auto-generated"),
    ]
    if unsubscribe_url:
        lines.append(_raw_header("List-Unsubscribe", f"<{unsubscribe_url}>"))
        lines.append(_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    lines.append(f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'.encode())
    lines.append(_header("Content-Language", mail.language))
    mark = f"--{boundary}".encode("ascii")
    return b"".join(
        [
            *lines,
            b"\r\n",
            mark,
            b"\r\n",
            _TEXT_PART,
            _quoted_printable(mail.text),
            b"\r\n",
            mark,
            b"\r\n",
            _HTML_PART,
            _quoted_printable(mail.html),
            b"\r\n",
            mark,
            b"--\r\n",
        ]
    )


def _raw_header(name: str, value: str) -> bytes:
    # A header set with Message.set_raw and written as it is (refold_source="none").
    return (name + ": " + "\r\n".join(value.splitlines()) + "\r\n").encode("ascii", "surrogateescape")


def send_mail(settings: MailSettings, message: EmailMessage) -> tuple[int | None, str | None]:
    """Send one message. (250, None) when the server took it; the server's code and a short reason
    when it refused (4xx transient, 5xx final); (None, a category) when it could not be reached.
    Errors never carry the address nor the server's own words (they end up in the delivery log,
    shown to subscribers, and on kokeilu.notifications.v1); the detail goes to this service's log."""
    try:
        with _connect(settings) as smtp:
            smtp.send_message(message)
        return 250, None
    except Exception as exc:
        return _failure(exc)


def _connect(settings: MailSettings) -> smtplib.SMTP:
    smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
    try:
        if settings.starttls:
            smtp.starttls()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _failure(exc: Exception) -> tuple[int | None, str]:
    """What an attempt that raised `exc` records (send_mail's docstring): a code, a category."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()))
        return code, _logged(f"recipient refused: SMTP {code}", f"{code} {reply!r}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code, _logged(f"SMTP {exc.smtp_code}", repr(exc.smtp_error))
    if isinstance(exc, TimeoutError):
        return None, _logged("timeout", str(exc))
    if isinstance(exc, ConnectionRefusedError):
        return None, _logged("connection refused", str(exc))
    if isinstance(exc, (smtplib.SMTPException, OSError)):
        return None, _logged("connection error", f"{exc.__class__.__name__}: {exc}")
    raise exc


def _gone(exc: Exception) -> bool:
    """Whether `exc`, on a connection used before, says the server closed it (idle too long, or a
    limit of messages per connection): worth one more try on a new connection."""
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code == 421  # "service not available, closing transmission channel"
    return isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError))


class SmtpConnections:
    """Connections to the mail server, kept open between messages: a run of deliveries goes
    through a few connections instead of a connect, EHLO (STARTTLS, login) and QUIT each.

    Each send takes an idle connection (or opens one), so concurrent sends (the green pool of
    deliver) each have their own. A connection idle for longer than `idle_seconds` is closed
    rather than used; one the server closed meanwhile (SMTPServerDisconnected, a 421, a reset)
    is replaced by a new one and the message sent once more on it. A connection whose send
    failed otherwise is closed, not reused. What a send returns is what send_mail returns."""

    def __init__(
        self,
        settings: MailSettings,
        idle_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        connect: Callable[[MailSettings], smtplib.SMTP] = _connect,
    ) -> None:
        self.settings, self.idle_seconds, self.clock, self.connect = settings, idle_seconds, clock, connect
        self._idle: list[tuple[smtplib.SMTP, float]] = []  # with when each was last used
        self._lock = threading.Lock()

    def send(self, send: Callable[[smtplib.SMTP], object]) -> tuple[int | None, str | None]:
        """Run `send(connection)` (e.g. its sendmail) on a connection: (250, None) when it returned."""
        while True:
            smtp, reused = self._take()
            try:
                if smtp is None:
                    smtp = self.connect(self.settings)
                send(smtp)
            except Exception as exc:
                if smtp is not None:
                    _close(smtp)
                if reused and _gone(exc):
                    log.info("the mail server closed a kept connection (%s); sending on a new one", _clean(repr(exc)))
                    continue
                return _failure(exc)
            self._give_back(smtp)
            return 250, None

    def _take(self) -> tuple[smtplib.SMTP | None, bool]:
        stale: list[smtplib.SMTP] = []
        taken: smtplib.SMTP | None = None
        with self._lock:
            now = self.clock()
            while self._idle:
                smtp, since = self._idle.pop()
                if now - since > self.idle_seconds:
                    stale.append(smtp)
                else:
                    taken = smtp
                    break
        for smtp in stale:
            _quit(smtp)
        return taken, taken is not None

    def _give_back(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append((smtp, self.clock()))

    def close(self, polite: bool = True) -> None:
        """Close every idle connection: with QUIT, or (not `polite`) without a word."""
        with self._lock:
            idle, self._idle = self._idle, []
        for smtp, _since in idle:
            if polite:
                _quit(smtp)
            else:
                _close(smtp)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except Exception:  # noqa: BLE001 - a connection that cannot say goodbye is closed all the same
        _close(smtp)


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except Exception:  # noqa: BLE001
        pass


def _logged(category: str, detail: str) -> str:
    log.warning("e-mail delivery failed: %s (%s)", category, _clean(detail))
    return category


def _clean(error: str) -> str:
    return _ADDRESS.sub("<address>", error)[:500]


class MailSender(DependencyProvider):
    """Gives workers `render(kind, payload, language, unsubscribe_url) -> Rendered` and
    `send(to, rendered, message_id, unsubscribe_url) -> (code | None, error | None)`, which sends
    over connections kept open between messages (SmtpConnections)."""

    def __init__(self, domain: str, **kwargs: Any) -> None:
        self.domain = check_domain(domain)
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.settings = mail_settings()
        self.connections = SmtpConnections(self.settings)
        compile_templates()  # once, as the service starts: not in the first deliveries' time

    def stop(self) -> None:
        self.connections.close()

    def kill(self) -> None:
        self.connections.close(polite=False)  # no waiting on the relay's answer to QUIT

    def get_dependency(self, worker_ctx: WorkerContext) -> Any:
        settings, domain, connections = self.settings, self.domain, self.connections

        class Mail:
            render = staticmethod(render)

            @staticmethod
            def send(
                to: str, mail: Rendered, message_id: str | None = None, unsubscribe_url: str | None = None
            ) -> tuple[int | None, str | None]:
                return send_composed(
                    connections,
                    settings.sender,
                    to,
                    mail,
                    domain=domain,
                    message_id=message_id,
                    unsubscribe_url=unsubscribe_url,
                )

        return Mail()


def send_composed(
    connections: SmtpConnections,
    sender: str,
    to: str,
    mail: Rendered,
    *,
    domain: str,
    message_id: str | None = None,
    unsubscribe_url: str | None = None,
) -> tuple[int | None, str | None]:
    """Compose the e-mail and send it as send_message would (the same bytes, envelope sender and
    recipient): written directly (wire_message) for a plain sender and recipient, else composed
    with the email package and sent with send_message."""
    from_address = envelope_sender(sender)
    if from_address is not None and plain_address(to):
        data = wire_message(sender, to, mail, domain=domain, message_id=message_id, unsubscribe_url=unsubscribe_url)
        return connections.send(lambda smtp: smtp.sendmail(from_address, [to], data))
    message = compose(sender, to, mail, domain=domain, message_id=message_id, unsubscribe_url=unsubscribe_url)
    return connections.send(lambda smtp: smtp.send_message(message))


def unsubscribe_page(kind: str, done: bool) -> str:
    """The HTML page of an unsubscribe link: a button (GET) or the confirmation (POST)."""
    return _html_env.get_template("unsubscribe.j2").render(kind=kind, done=done)
