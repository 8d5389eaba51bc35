"""The proposals service's settings: it has none beyond the platform's (kokeilu.config), which it
reads, as every service does, through the cached accessor."""

from __future__ import annotations

from kokeilu.config import Settings
from kokeilu.config import get_settings as settings

__all__ = ["Settings", "settings"]
