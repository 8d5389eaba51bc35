"""E-mail: rendering from Jinja2 templates in fi, sv and en, and sending over SMTP.

A template's first line is the subject, the rest the plain-text body. Templates live in
`templates/<language>/<kind>.txt.j2`, kind being `event` (a subscriber's immediate e-mail),
`proposer` (a proposer hears of their own proposal's status) or `digest`.
"""
from __future__ import annotations

import logging
import re
import smtplib
import socket
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from nameko.extensions import DependencyProvider
from pydantic_settings import BaseSettings, SettingsConfigDict

LANGUAGES = ("fi", "sv", "en")
_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=False,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
_ADDRESS = re.compile(r"\S*@\S*")
log = logging.getLogger(__name__)


class MailSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOKEILU_SMTP_", extra="ignore")
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "kokeilu@espoo.example"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 10


def short_type(event_type: str) -> str:
    return event_type.removeprefix("fi.espoo.kokeilu.")


def render(kind: str, payload: dict, language: str) -> tuple[str, str]:
    """(subject, body) of an e-mail of `kind` in `language` (fi when the language is unknown)."""
    language = language if language in LANGUAGES else "fi"
    text = _env.get_template(f"{language}/{kind}.txt.j2").render(short_type=short_type, **payload)
    subject, _, body = text.partition("\n")
    return subject.strip(), body.lstrip("\n")


def send_mail(settings: MailSettings, to: str, subject: str, body: str,
              message_id: str | None = None) -> tuple[int | None, str | None]:
    """Send one message. (250, None) when the server took it; the server's code and a short reason
    when it refused (4xx transient, 5xx final); (None, a category) when it could not be reached.
    Errors never carry the address nor the server's own words (they end up in the delivery log,
    shown to subscribers, and on kokeilu.notifications.v1); the detail goes to this service's log."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.sender, to, subject
    # One Message-ID per delivery, the same on every attempt: a message sent again after a crash
    # (the server took it, the attempt was not recorded) is the same message, which mail
    # systems and readers drop as a duplicate, as webhook receivers do by Idempotency-Key.
    domain = settings.sender.rpartition("@")[2] or "kokeilu"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{message_id}@{domain}>" if message_id else make_msgid(domain=domain)
    message.set_content(body)
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
    except (socket.timeout, TimeoutError) as exc:
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
    """Gives workers `mail(to, subject, body, message_id) -> (code | None, error | None)` and `render`."""

    def setup(self):
        self.settings = MailSettings()

    def get_dependency(self, worker_ctx):
        settings = self.settings

        class Mail:
            render = staticmethod(render)

            @staticmethod
            def send(to: str, subject: str, body: str, message_id: str | None = None):
                return send_mail(settings, to, subject, body, message_id)

        return Mail()
