"""What every Kokeilu service has: health endpoints and /metrics."""
from __future__ import annotations

import logging

from werkzeug.wrappers import Response

from kokeilu.http import api, json_response
from kokeilu.metrics import CONTENT_TYPE_LATEST, metrics_for
from kokeilu.platform import Health

log = logging.getLogger(__name__)


class PlatformService:
    """Base class of the four nameko services (`name` is set by each)."""

    name = "kokeilu"
    health = Health()

    @api("GET", "/health/live", public=True)
    def health_live(self, request):
        # GET is answered by kokeilu.http's WSGI app before any worker is taken; this serves HEAD.
        return {"status": "live", "service": self.name}

    @api("GET", "/health/ready", public=True)
    def health_ready(self, request):
        checks = self.health.ready()
        ready = checks["store"] == "ok"
        return json_response({"status": "ready" if ready else "not_ready", "service": self.name, "checks": checks},
                             200 if ready else 503)

    @api("GET", "/metrics", public=True)
    def metrics(self, request):
        try:
            self.health.refresh_gauges()
            self.refresh_metrics()
        except Exception as exc:  # a store outage must not hide the other metrics; readiness reports it
            log.warning("metrics refresh failed: %s", exc)
        return Response(metrics_for(self.name).latest(), mimetype=CONTENT_TYPE_LATEST)

    def refresh_metrics(self) -> None:
        """Extension point: update gauges read from the store just before a scrape."""
