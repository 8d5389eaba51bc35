"""What every Kokeilu service has: health endpoints and /metrics."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict
from werkzeug.wrappers import Response

from kokeilu.http import api, json_response
from kokeilu.http.entrypoint import ApiRequest
from kokeilu.http.openapi import served
from kokeilu.metrics import CONTENT_TYPE_LATEST, metrics_for
from kokeilu.platform import FrozenHeap, Health, Tracing

log = logging.getLogger(__name__)


class Live(BaseModel):
    model_config = ConfigDict(extra="forbid", title="Live")
    status: Literal["live"]
    service: str


class Ready(BaseModel):
    """`ready` when the store answers; Kafka is reported beside it but does not make a service unready."""

    model_config = ConfigDict(extra="forbid", title="Ready")
    status: Literal["ready", "not_ready"]
    service: str
    checks: dict[str, str]


class PlatformService:
    """Base class of the four nameko services (`name` is set by each)."""

    name = "kokeilu"
    health = Health()
    tracing = Tracing()
    heap = FrozenHeap()  # startup's objects out of full garbage collections (kokeilu/platform.py)

    @api("GET", "/health/live", public=True, response=Live)
    def health_live(self, request: ApiRequest) -> dict[str, str]:
        """Liveness: the process answers."""
        # GET is answered by kokeilu.http's WSGI app before any worker is taken; this serves HEAD.
        return {"status": "live", "service": self.name}

    @api("GET", "/health/ready", public=True, response=Ready, responses={503: Ready})
    def health_ready(self, request: ApiRequest) -> Response:
        """Readiness: 200 when the store answers, 503 when it does not."""
        checks = self.health.ready()
        ready = checks["store"] == "ok"
        return json_response(
            {"status": "ready" if ready else "not_ready", "service": self.name, "checks": checks}, 200 if ready else 503
        )

    @api("GET", "/metrics", public=True, media_type="text/plain")
    def metrics(self, request: ApiRequest) -> Response:
        """Prometheus metrics, in the text exposition format."""
        try:
            self.health.refresh_gauges()
            self.refresh_metrics()
        except Exception as exc:  # a store outage must not hide the other metrics; readiness reports it
            log.warning("metrics refresh failed: %s", exc)
        return Response(metrics_for(self.name).latest(), mimetype=CONTENT_TYPE_LATEST)

    @api("GET", "/openapi.json", public=True)
    def openapi(self, request: ApiRequest) -> Response:
        """This service's OpenAPI 3.1 document.

        Generated from the service's route table and models; also checked in as schemas/openapi/<service>.json."""
        # A plain `type`: mypy takes type[PlatformService] for unhashable (a false positive; a class is hashable).
        cls: type = type(self)
        return Response(served(cls, self.name), mimetype="application/json")

    def refresh_metrics(self) -> None:
        """Extension point: update gauges read from the store just before a scrape."""
