"""Configuration from the environment, with working local defaults."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class TokenConfig(BaseModel):
    """One API token, configured by the SHA-256 of its secret, never the secret itself."""

    name: str
    sha256: str
    scopes: list[str]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # How the services authenticate to the brokers: PLAINTEXT locally; SASL_SSL (SCRAM) in production.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    # Check that the broker's certificate names the host connected to; off only for a test broker.
    kafka_ssl_check_hostname: bool = True
    # The longest a Kafka client waits before it tries a broker it lost again (kafka-python's
    # default is 30 s, backing off from 50 ms): after a broker restart, a consumer rejoins its
    # group at most this long after the broker is back. Measured: bench/rejoin.py.
    kafka_reconnect_backoff_max_ms: int = 1000
    # Partitions for the platform's topics when it creates them; replication for a real cluster.
    kokeilu_topic_partitions: int = 6
    kokeilu_topic_replication: int = 1
    # Prepended to every topic name and consumer group: lets tests (or two environments sharing
    # one cluster) keep to topics of their own. Empty in production.
    kokeilu_topic_prefix: str = ""
    kokeilu_data_dir: Path = REPO_ROOT / ".local" / "data"
    # DATABASE_URL is per service process; default is a SQLite file per service.
    database_url: str | None = None
    # How long a SQLite write waits for another writer before it counts as a transient failure.
    kokeilu_sqlite_busy_timeout_seconds: float = 10
    kokeilu_admin_token: str | None = None
    # JSON list of {"name", "sha256", "scopes"}; or a file with the same content.
    kokeilu_tokens: str | None = None
    kokeilu_tokens_file: Path | None = None
    # Outbox relay: how often to look for rows when not woken by a commit in this process.
    kokeilu_relay_interval_seconds: float = 0.5
    # Woken by a commit, the relay waits this long before reading, so that the commits of the
    # next few milliseconds go out in the same batch: one read, one flush, one mark for many
    # requests instead of a relay round per request (which cost more CPU than the request).
    kokeilu_relay_linger_seconds: float = 0.01
    # Records per poll (kafka-python max_poll_records), all applied in one transaction.
    kokeilu_consumer_max_records: int = 500
    # A batch's transaction commits after at most this long (on SQLite it holds the write lock,
    # which HTTP requests wait for); the rest of the poll goes into the next transaction.
    kokeilu_consumer_batch_seconds: float = 0.1
    # A consumer that has been joining its group this long without being given partitions
    # starts over as a new member (kafka-python 3.0 was seen waiting on a rejoin for good).
    kokeilu_consumer_rejoin_seconds: float = 30

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _strip(cls, value: str) -> str:
        return ",".join(part.strip() for part in value.split(",") if part.strip())

    @property
    def bootstrap_servers(self) -> list[str]:
        return self.kafka_bootstrap_servers.split(",")

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options for every Kafka client a service makes (consumer, producer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
            "reconnect_backoff_max_ms": self.kafka_reconnect_backoff_max_ms,
        }
        if self.kafka_sasl_mechanism:
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self.kafka_sasl_password,
            )
        if self.kafka_ssl_cafile:
            options["ssl_cafile"] = self.kafka_ssl_cafile
        if self.kafka_security_protocol.upper().endswith("SSL"):
            options["ssl_check_hostname"] = self.kafka_ssl_check_hostname
        return options

    def physical_topic(self, logical: str) -> str:
        return self.kokeilu_topic_prefix + logical

    def logical_topic(self, physical: str) -> str:
        return physical.removeprefix(self.kokeilu_topic_prefix)

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        self.kokeilu_data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.kokeilu_data_dir / service}.db"

    def tokens(self) -> list[TokenConfig]:
        raw = self.kokeilu_tokens
        if self.kokeilu_tokens_file:
            raw = self.kokeilu_tokens_file.read_text()
        if not raw:
            return []
        return [TokenConfig(**item) for item in json.loads(raw)]


@lru_cache
def get_settings() -> Settings:
    return Settings()
