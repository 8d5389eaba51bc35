"""The HTTP entrypoint every service route uses: bearer-token auth with scopes, JSON bodies and
errors, and request metrics. Service methods stay a few lines long.

    @api("POST", "/v1/proposals", scope="proposals:write", body=Submission)
    def submit(self, request, body: Submission): ...
"""
from __future__ import annotations

import json
import logging
import time

from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from kokeilu.auth import Forbidden, TokenRegistry, Unauthenticated
from kokeilu.config import get_settings
from kokeilu.metrics import metrics_for

from .errors import ApiError, error_response, json_response, validation_fields

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024


class JsonWsgiApp(WsgiApp):
    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            rv = provider.handle_request(request)
        except HTTPException as exc:
            rv = error_response(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)
        return rv(environ, start_response)


class JsonWebServer(WebServer):
    def get_wsgi_app(self):
        return JsonWsgiApp(self)


class Api(HttpRequestHandler):
    server = JsonWebServer()

    def __init__(self, method: str, url: str, scope: str | None = None, public: bool = False,
                 body: type[BaseModel] | None = None, **kwargs):
        self.scope = scope
        self.public = public
        self.body_model = body
        kwargs.setdefault("expected_exceptions", (ApiError, ValidationError))
        super().__init__(method, url, **kwargs)

    def setup(self):
        super().setup()
        self.tokens = TokenRegistry.from_settings(get_settings())
        self.metrics = metrics_for(self.container.service_name)

    def get_entrypoint_parameters(self, request):
        args, kwargs = super().get_entrypoint_parameters(request)
        if self.body_model is not None:
            kwargs = dict(kwargs, body=self._parse_body(request))
        return args, kwargs

    def _parse_body(self, request) -> BaseModel:
        if request.content_length and request.content_length > MAX_BODY_BYTES:
            raise ApiError(f"request body larger than {MAX_BODY_BYTES} bytes")
        raw = request.get_data(cache=True)
        try:
            payload = json.loads(raw or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(f"request body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise ApiError("request body must be a JSON object")
        return self.body_model.model_validate(payload)

    def handle_request(self, request):
        started = time.perf_counter()
        response = self._authorized_response(request)
        labels = dict(service=self.container.service_name, route=self.url, method=request.method)
        self.metrics.http_duration.labels(**labels).observe(time.perf_counter() - started)
        self.metrics.http_requests.labels(status=str(response.status_code), **labels).inc()
        return response

    def _authorized_response(self, request):
        if not self.public:
            try:
                request.principal = self.tokens.authorize(request.headers.get("Authorization"), self.scope)
            except Unauthenticated as exc:
                response = error_response(401, "unauthenticated", str(exc))
                response.headers["WWW-Authenticate"] = 'Bearer realm="kokeilu"'
                return response
            except Forbidden as exc:
                return error_response(403, "forbidden", str(exc), required_scope=exc.scope)
        else:
            request.principal = None
        return super().handle_request(request)

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        if isinstance(result, tuple):
            status, body = result
            return Response(status=status) if body is None else json_response(body, status)
        return json_response(result)

    def response_from_exception(self, exc):
        if isinstance(exc, ApiError):
            return error_response(exc.status, exc.code, exc.message, exc.fields, **exc.extra)
        if isinstance(exc, ValidationError):
            fields = validation_fields(exc)
            return error_response(422, "validation_failed",
                                  "the request is not valid: " + ", ".join(sorted(fields)), fields)
        log.error("unhandled error in %s %s", self.method, self.url, exc_info=exc)
        return error_response(500, "internal_error", "internal error; it has been logged")


api = Api.decorator
