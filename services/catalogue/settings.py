"""The catalogue's own settings (the platform's are in kokeilu.config), read once through `settings()`."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class CatalogueSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOKEILU_", extra="ignore")
    # The contact shown on every public result.
    contact_unit: str = "City of Espoo, experimentation programme"
    # Where the public pages and exports are reached from outside; links in the open data use it.
    public_base_url: str = "http://127.0.0.1:8004"


@lru_cache
def settings() -> CatalogueSettings:
    return CatalogueSettings()
