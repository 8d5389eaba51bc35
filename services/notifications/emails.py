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

import logging
import re
import smtplib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
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
    return Environment(
        autoescape=autoescape, loader=_loader, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
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
        if not re.fullmatch(r"https?://[!-~]+", unsubscribe_url) or any(c in unsubscribe_url for c in "<>"):
            raise ValueError("an unsubscribe URL is an http(s) URL of printable ASCII without < or >")
        message.set_raw("List-Unsubscribe", f"<{unsubscribe_url}>")
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    # Quoted-printable: 7-bit clean for any server, whether it offers 8BITMIME or not.
    message.set_content(mail.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(mail.html, subtype="html", charset="utf-8", cte="quoted-printable")
    message["Content-Language"] = mail.language  # after the content: set_content drops Content-* headers
    return message


def send_mail(settings: MailSettings, message: EmailMessage) -> tuple[int | None, str | None]:
    """Send one message. (250, None) when the server took it; the server's code and a short reason
    when it refused (4xx transient, 5xx final); (None, a category) when it could not be reached.
    Errors never carry the address nor the server's own words (they end up in the delivery log,
    shown to subscribers, and on kokeilu.notifications.v1); the detail goes to this service's log."""
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(message)
        return 250, None
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        return code, _logged(f"recipient refused: SMTP {code}", f"{code} {reply!r}")
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code, _logged(f"SMTP {exc.smtp_code}", repr(exc.smtp_error))
    except TimeoutError as exc:
        return None, _logged("timeout", str(exc))
    except ConnectionRefusedError as exc:
        return None, _logged("connection refused", str(exc))
    except (smtplib.SMTPException, OSError) as exc:
        return None, _logged("connection error", f"{exc.__class__.__name__}: {exc}")


def _logged(category: str, detail: str) -> str:
    log.warning("e-mail delivery failed: %s (%s)", category, _clean(detail))
    return category


def _clean(error: str) -> str:
    return _ADDRESS.sub("<address>", error)[:500]


class MailSender(DependencyProvider):
    """Gives workers `render(kind, payload, language, unsubscribe_url) -> Rendered` and
    `send(to, rendered, message_id, unsubscribe_url) -> (code | None, error | None)`."""

    def __init__(self, domain: str, **kwargs: Any) -> None:
        self.domain = check_domain(domain)
        super().__init__(**kwargs)

    def setup(self) -> None:
        self.settings = mail_settings()

    def get_dependency(self, worker_ctx: WorkerContext) -> Any:
        settings, domain = self.settings, self.domain

        class Mail:
            render = staticmethod(render)

            @staticmethod
            def send(
                to: str, mail: Rendered, message_id: str | None = None, unsubscribe_url: str | None = None
            ) -> tuple[int | None, str | None]:
                message = compose(
                    settings.sender, to, mail, domain=domain, message_id=message_id, unsubscribe_url=unsubscribe_url
                )
                return send_mail(settings, message)

        return Mail()


def unsubscribe_page(kind: str, done: bool) -> str:
    """The HTML page of an unsubscribe link: a button (GET) or the confirmation (POST)."""
    return _html_env.get_template("unsubscribe.j2").render(kind=kind, done=done)
