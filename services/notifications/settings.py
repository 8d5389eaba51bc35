"""The notifications service's own settings (the platform's are in kokeilu.config), each read
once through its cached accessor."""

from __future__ import annotations

import os
import re
from functools import lru_cache

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kokeilu.netguard import AddressPolicy

from .domain import RetryPolicy, check_domain
from .unsubscribe import MIN_SECRET_LENGTH


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOKEILU_", extra="ignore")
    digest_window_seconds: float = 86400  # one digest a day
    delivery_max_attempts: int = 6
    delivery_retry_base_seconds: float = 1.0
    delivery_retry_cap_seconds: float = 300.0
    # Webhook destinations allowed although they are not public (local development, tests):
    # comma-separated CIDRs, addresses or host names, e.g. "127.0.0.0/8,::1". Empty: public only.
    webhook_allowlist: str = ""
    # The domain of every e-mail's Message-ID (<delivery id@domain>): a full domain name of the city's.
    mail_domain: str = "kokeilu.espoo.fi"
    # The key that signs unsubscribe links (at least 32 characters). Unset: derived from the admin
    # token, with a warning in the log (services/notifications/unsubscribe.py).
    unsubscribe_secret: SecretStr | None = None
    # Where this service's /v1/unsubscribe/<token> is reached from the readers' mail programs.
    # Unset: this process's own address (WEB_SERVER_ADDRESS), right for a local run only.
    unsubscribe_base_url: str | None = None

    @field_validator("mail_domain")
    @classmethod
    def _full_domain(cls, value: str) -> str:
        return check_domain(value)

    @field_validator("unsubscribe_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"KOKEILU_UNSUBSCRIBE_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("unsubscribe_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?", value):
            raise ValueError(
                "KOKEILU_UNSUBSCRIBE_BASE_URL is an http(s) URL with no query, e.g. "
                "https://kokeilu.espoo.fi/notifications"
            )
        return value.rstrip("/") if value else value

    def unsubscribe_base(self) -> str:
        if self.unsubscribe_base_url:
            return self.unsubscribe_base_url
        host, _, port = os.environ.get("WEB_SERVER_ADDRESS", "127.0.0.1:8003").rpartition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host
        return f"http://{host}:{port}"

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.delivery_max_attempts, self.delivery_retry_base_seconds, self.delivery_retry_cap_seconds
        )

    def unsubscribe_key(self) -> str | None:
        return self.unsubscribe_secret.get_secret_value() if self.unsubscribe_secret else None


class MailSettings(BaseSettings):
    """The mail server every e-mail goes through (KOKEILU_SMTP_*)."""

    model_config = SettingsConfigDict(env_prefix="KOKEILU_SMTP_", extra="ignore")
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "kokeilu@espoo.example"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 10


@lru_cache
def settings() -> NotificationSettings:
    return NotificationSettings()


@lru_cache
def mail_settings() -> MailSettings:
    return MailSettings()


@lru_cache
def address_policy() -> AddressPolicy:
    """Where webhooks may go: public addresses, and what KOKEILU_WEBHOOK_ALLOWLIST adds."""
    return AddressPolicy.parse(settings().webhook_allowlist)
