"""The HTTP entrypoint every service route uses: bearer-token auth with scopes, JSON bodies and
errors, and request metrics. Service methods stay a few lines long. What is refused before a
service sees a request is in inputs.py; the server's own limits (timeouts, connections) in server.py.

    @api("POST", "/v1/proposals", scope="proposals:write", body=Submission,
         response=ProposalView, status=201, errors=(409,), idempotent=True, example={...})
    def submit(self, request, body: Submission): ...

A route raises the domain's own exceptions; the service's `errors` map ({exception class:
Refusal}) says how each is answered, and this entrypoint answers so (`response_from_exception`):

    errors = {UnknownProposal: Refusal(404, "not_found", fields={"proposal_id": "unknown"})}

The route table (method, path, scope, body model) is also what the OpenAPI document is generated
from (kokeilu/http/openapi.py); the arguments after `body` only describe the route there: the
success `status` and `response` model, a `query` model, the `errors` a route raises beyond those
every route of its kind can answer, `responses` of other statuses, whether it honours
`Idempotency-Key`, its `media_type` when it is not JSON, and a request body `example`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import eventlet
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WsgiApp
from opentelemetry.trace import Span
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from kokeilu import tracing
from kokeilu.auth import Forbidden, Principal, TokenRegistry, Unauthenticated
from kokeilu.config import get_settings
from kokeilu.errors import is_transient
from kokeilu.metrics import child, metrics_for

from .errors import ApiError, PayloadTooLarge, error_response, json_response, validation_fields
from .inputs import MAX_BODY_BYTES, check_event_size, check_request_text, parse_json_body
from .server import LIVE_PATH, HardenedWebServer, http_settings, live_body

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 1
# Probes and scrapes, many a minute: no span (a trace each would bury the ones that matter).
UNTRACED = ("/health/", "/metrics")


@dataclass(frozen=True)
class RouteDoc:
    """What the OpenAPI document says of a route beyond its method, path, scope and body."""

    response: type[BaseModel] | None = None
    status: int = 200
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    responses: dict[int, type[BaseModel]] = field(default_factory=dict)
    idempotent: bool = False
    media_type: str = "application/json"
    example: dict[str, Any] | None = None


@dataclass(frozen=True)
class Refusal:
    """How a domain exception is answered over HTTP (a service's `errors` map): `status` and
    `code`; the message is the exception's text unless `message` makes it; `fields` (a dict, or
    made from the exception) and `extra` (made from it) go into the error body beside them."""

    status: int
    code: str
    # The callables take the exception of the map's key (typed Any: each entry knows its own class).
    fields: dict[str, str] | Callable[[Any], dict[str, str]] | None = None
    message: Callable[[Any], str] = str
    extra: Callable[[Any], dict[str, Any]] | None = None

    def response(self, exc: BaseException) -> Response:
        fields = self.fields(exc) if callable(self.fields) else self.fields
        extra = self.extra(exc) if self.extra else {}
        return error_response(self.status, self.code, self.message(exc), fields, **extra)


class ApiRequest(Request):
    """A request as the routes get it: with the values of its path, the principal its token
    names (None on a public route), and, while traced, its span and flow."""

    path_values: dict[str, Any]
    principal: Principal | None
    kokeilu_trace: tuple[Span, tracing.Flow | None]


class BodyTimeout(ApiError):
    status, code = 408, "request_timeout"


class LengthRequired(ApiError):
    status, code = 411, "length_required"


def http_error(exc: HTTPException) -> Response:
    return error_response(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)


class JsonWsgiApp(WsgiApp):
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LIVE_PATH and environ.get("REQUEST_METHOD") == "GET":
            # Liveness is answered here, before routing, auth and nameko's worker pool: busy
            # workers must not make a live process look dead.
            rv = Response(live_body(self.server.container.service_name), mimetype="application/json")
            return rv(environ, start_response)
        request = ApiRequest(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            rv = provider.handle_request(request)
        except HTTPException as exc:
            rv = http_error(exc)
        except Exception:  # never eventlet's text/plain 500
            log.exception("unhandled error routing %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            rv = error_response(500, "internal_error", "internal error; it has been logged")
        _close_if_body_unread(environ)
        return rv(environ, start_response)


def _close_if_body_unread(environ: dict[str, Any]) -> None:
    """A body the route did not read is not read afterwards either (eventlet would, to reuse the
    connection, with no deadline): the connection closes after the answer instead."""
    body = environ.get("eventlet.input")
    if body is not None and (body.chunked_input or body.position < (body.content_length or 0)):
        environ.get("kokeilu.close_connection", lambda: None)()


class JsonWebServer(HardenedWebServer):
    def get_wsgi_app(self) -> JsonWsgiApp:
        return JsonWsgiApp(self)


class Api(HttpRequestHandler):
    server = JsonWebServer()

    def __init__(
        self,
        method: str,
        url: str,
        scope: str | None = None,
        public: bool = False,
        body: type[BaseModel] | None = None,
        *,
        response: type[BaseModel] | None = None,
        status: int = 200,
        query: type[BaseModel] | None = None,
        errors: tuple[int, ...] = (),
        responses: dict[int, type[BaseModel]] | None = None,
        idempotent: bool = False,
        media_type: str = "application/json",
        example: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.scope = scope
        self.public = public
        self.body_model = body
        # Only described in the OpenAPI document (kokeilu/http/openapi.py), not enforced here.
        self.doc = RouteDoc(
            response=response,
            status=status,
            query=query,
            errors=tuple(errors),
            responses=dict(responses or {}),
            idempotent=idempotent,
            media_type=media_type,
            example=example,
        )
        kwargs.setdefault("expected_exceptions", (ApiError, ValidationError))
        self.errors: dict[type[BaseException], Refusal] = {}  # the service's, from setup()
        super().__init__(method, url, **kwargs)

    expected_exceptions: type[BaseException] | tuple[type[BaseException], ...]  # nameko's, then the service's too

    def setup(self) -> None:
        super().setup()
        self.tokens = TokenRegistry.from_settings(get_settings())
        self.metrics = metrics_for(self.container.service_name)
        self._signatures_ok: set[tuple[int, tuple[str, ...]]] = set()
        # The service's domain exceptions and how each is answered (expected: logged as a warning).
        self.errors = dict(getattr(self.container.service_cls, "errors", None) or {})
        expected = self.expected_exceptions
        self.expected_exceptions = (expected if isinstance(expected, tuple) else (expected,)) + tuple(self.errors)

    def check_signature(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """nameko binds the arguments to the method on every request (inspect.getcallargs); whether
        they bind depends only on how many there are and the keywords' names, which a route fixes.
        So each shape is checked once; a shape that does not bind is refused every time."""
        shape = (len(args), tuple(kwargs))
        if shape not in self._signatures_ok:
            super().check_signature(args, kwargs)
            self._signatures_ok.add(shape)

    def get_entrypoint_parameters(self, request: ApiRequest) -> tuple[tuple[Any, ...], dict[str, Any]]:
        try:  # werkzeug decodes the query string as UTF-8 when it is first read, and raises otherwise
            request.query_string.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError("the query string is not UTF-8: percent-encode it", {"(query)": "not UTF-8"}) from None
        check_request_text(request.args, request.path_values)
        args, kwargs = super().get_entrypoint_parameters(request)
        if self.body_model is not None:
            kwargs = dict(kwargs, body=self._parse_body(request, self.body_model))
        return args, kwargs

    def _parse_body(self, request: ApiRequest, model: type[BaseModel]) -> BaseModel:
        close = request.environ.get("kokeilu.close_connection", lambda: None)
        if request.headers.get("Transfer-Encoding"):
            close()
            raise LengthRequired(
                "send the body with a Content-Length (chunked bodies are not read)", {"Content-Length": "required"}
            )
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            close()  # not worth reading what is left: the connection goes
            raise PayloadTooLarge(f"request body larger than {MAX_BODY_BYTES} bytes", {"(body)": "too large"})
        timeout = http_settings().body_timeout_seconds
        try:
            with eventlet.Timeout(timeout):
                raw = request.get_data(cache=True)
        except (eventlet.Timeout, OSError) as exc:
            close()
            if isinstance(exc, eventlet.Timeout):
                raise BodyTimeout(
                    f"the request body did not arrive within {timeout:g} seconds", {"(body)": "timed out"}
                ) from None
            raise BodyTimeout(f"the request body could not be read: {exc}", {"(body)": "not received"}) from None
        body = model.model_validate(parse_json_body(raw))
        check_event_size(body)
        return body

    def handle_request(self, request: ApiRequest) -> Response:
        if self.url.startswith(UNTRACED):
            return self._handle(request)
        with tracing.serving(request.method, self.url, request.headers) as span:
            # The worker runs in a green thread of its own: kokeilu.tracing.Tracing makes this
            # span and flow current there.
            request.kokeilu_trace = (span, tracing.current_flow())
            response = self._handle(request)
            span.set_attribute("http.response.status_code", response.status_code)
            traceparent = tracing.traceparent_of(span.get_span_context())
            if traceparent is not None:  # (serving gives the span ids of its own)
                response.headers["traceparent"] = traceparent
            return response

    def _handle(self, request: ApiRequest) -> Response:
        started = time.perf_counter()
        response = self._authorized_response(request)
        labels = dict(service=self.container.service_name, route=self.url, method=request.method)
        child(self.metrics.http_duration, **labels).observe(time.perf_counter() - started)
        child(self.metrics.http_requests, status=str(response.status_code), **labels).inc()
        return response

    def _authorized_response(self, request: ApiRequest) -> Response:
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
        return cast(Response, super().handle_request(request))  # nameko's (untyped): response_from_*

    def response_from_result(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        if isinstance(result, tuple):
            status, body = result
            return Response(status=status) if body is None else json_response(body, status)
        return json_response(result)

    def response_from_exception(self, exc: BaseException) -> Response:
        if isinstance(exc, ApiError):
            return error_response(exc.status, exc.code, exc.message, exc.fields, **exc.extra)
        if isinstance(exc, ValidationError):
            fields = validation_fields(exc)
            return error_response(
                422, "validation_failed", "the request is not valid: " + ", ".join(sorted(fields)), fields
            )
        refusal = self._refusal(exc)
        if refusal is not None:
            return refusal.response(exc)
        if isinstance(exc, HTTPException):  # werkzeug's: body too large, client gone mid-body ...
            return http_error(exc)
        if is_transient(exc):
            log.warning("transient failure in %s %s: %s", self.method, self.url, exc)
            response = error_response(503, "unavailable", "a dependency is briefly unavailable; try again shortly")
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        log.error("unhandled error in %s %s", self.method, self.url, exc_info=exc)
        return error_response(500, "internal_error", "internal error; it has been logged")

    def _refusal(self, exc: BaseException) -> Refusal | None:
        """The service's answer to `exc`, by its class or the nearest base class the map names."""
        if self.errors:
            for cls in type(exc).__mro__:
                refusal = self.errors.get(cls)
                if refusal is not None:
                    return refusal
        return None


_Route = TypeVar("_Route", bound=Callable[..., Any])


def api(method: str, url: str, **options: Any) -> Callable[[_Route], _Route]:
    """`@api("GET", "/v1/...", scope=..., ...)`: the method is an HTTP route (Api's arguments)."""
    decorate: Callable[[_Route], _Route] = Api.decorator(method, url, **options)  # nameko's (untyped)
    return decorate
