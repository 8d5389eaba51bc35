"""The web server under every service: nameko's eventlet.wsgi server with limits a public API needs.

- a request's line and headers must arrive within `KOKEILU_HTTP_HEADER_TIMEOUT_SECONDS` of the
  connection opening (or of its first byte, on a kept-alive connection), else the connection is closed;
- a kept-alive connection idle for `KOKEILU_HTTP_IDLE_TIMEOUT_SECONDS` is closed;
- a body must arrive within `KOKEILU_HTTP_BODY_TIMEOUT_SECONDS` (408 otherwise; see entrypoint.py);
- no more than `KOKEILU_HTTP_MAX_CONNECTIONS` connections are served at once: one more gets a fast
  503 with `Retry-After` (but `GET /health/live`, which is still answered);
- a request with more than one `Content-Length`, or a malformed one, or one beside
  `Transfer-Encoding`, gets 400; every error the server itself writes is JSON in the API's shape;
- the request line is checked as the stdlib checks it (400 JSON saying what is wrong, and
  HTTP/2 or later refused), and the headers are the message http.client would make of them:
  plain `Name: value` lines read directly, anything else by the stdlib's email parser.
"""

from __future__ import annotations

import email.parser
import http.client
import json
import logging
import re
import socket
from collections.abc import Callable
from functools import lru_cache, partial
from http import HTTPStatus
from typing import Any

import eventlet
from eventlet import wsgi
from nameko.web.server import HttpOnlyProtocol, WebServer
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

LIVE_PATH = "/health/live"
# eventlet's server logs a line per request here at INFO (and its own errors, above INFO).
ACCESS_LOG = "nameko.web.server"
# Connections past the limit that still get an answer (503, or the live probe's 200), each
# for at most a second: a greenthread and a socket each, no worker.
OVERFLOW_FACTOR = 4
LINGER_SECONDS = 1
LINGER_BYTES = 2 * 1024 * 1024


class HttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOKEILU_HTTP_", extra="ignore")

    header_timeout_seconds: float = 10
    body_timeout_seconds: float = 20
    idle_timeout_seconds: float = 30
    # Also the timeout of any one read or write on a connection (a client that stops reading).
    socket_timeout_seconds: float = 30
    max_connections: int = 256


@lru_cache
def http_settings() -> HttpSettings:
    return HttpSettings()


class HeaderTimeout(socket.timeout):
    """The request line and headers did not arrive in time (a slow-header client)."""


def raw_error(
    status: int,
    reason: str,
    code: str,
    message: str,
    fields: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> bytes:
    """A whole HTTP/1.1 error response with the API's JSON body, closing the connection."""
    body = json.dumps({"error": {"code": code, "message": message, "fields": fields or {}}}).encode()
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def linger_close(sock: socket.socket, seconds: float = LINGER_SECONDS) -> None:
    """Half-close, read and drop what the client still sends (bounded in time and bytes), close."""
    try:
        sock.shutdown(socket.SHUT_WR)
        drained = 0
        with eventlet.Timeout(seconds, False):
            while drained < LINGER_BYTES:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
    except OSError:
        pass
    finally:
        sock.close()


# A header line the fast path reads itself: a field name (printable ASCII, no colon, no space:
# what the email parser takes for a name too) and a value on one line. Anything else (a folded
# line, a line that is not a header) goes to the stdlib's email parser, as before.
_SIMPLE_HEADER = re.compile(rb"[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r?\n")


def parse_header_lines(lines: list[bytes], message_class: type[http.client.HTTPMessage]) -> http.client.HTTPMessage:
    """The headers that http.client.parse_headers makes of `lines` (each with its line end, the
    empty line that ends them last): the same message, made directly when every line is a
    simple `Name: value` (a request's headers nearly always are), else by the email parser, as
    http.client does (the email parser was about 5 % of the CPU a submission took)."""
    fields = lines[:-1] if lines and lines[-1] in (b"\r\n", b"\n", b"") else lines
    if all(_SIMPLE_HEADER.fullmatch(line) for line in fields):
        message = message_class()
        for line in fields:
            name, _, value = line.decode("iso-8859-1").partition(":")
            message.set_raw(name, value.lstrip(" \t").rstrip("\r\n"))  # what compat32 parses it to
        message.set_payload("")
        return message
    return email.parser.Parser(_class=message_class).parsestr(b"".join(lines).decode("iso-8859-1"))


def read_header_lines(rfile: Any) -> list[bytes]:
    """What http.client reads as a request's header lines (its limits: a line of 65,536 bytes,
    100 lines), the empty line that ends them included."""
    lines: list[bytes] = []
    while True:
        line = rfile.readline(65537)
        if len(line) > 65536:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > 100:
            raise http.client.HTTPException("got more than 100 headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def live_body(service: str) -> bytes:
    return json.dumps({"status": "live", "service": service}).encode()


class HardenedProtocol(HttpOnlyProtocol):
    """eventlet's HttpProtocol with a header deadline, an idle timeout, strict framing headers and
    JSON errors."""

    requests_seen = 0
    _header_timer: eventlet.Timeout | None = None

    def _read_request_line(self) -> str:
        settings: HttpSettings = self.server.kokeilu_settings
        if self.requests_seen:
            # A kept-alive connection: wait (idle) for the next request's first byte.
            try:
                self.connection.settimeout(settings.idle_timeout_seconds)
                if not self.rfile.peek(1):
                    return ""
            except OSError:
                return ""
            finally:
                self.connection.settimeout(self.server.socket_timeout)
        self.requests_seen += 1
        self._header_timer = eventlet.Timeout(settings.header_timeout_seconds, HeaderTimeout)
        line: str = super()._read_request_line()  # eventlet's (untyped)
        if len(line) >= self.server.url_length_limit:
            self._cancel_header_timer()
            self.wfile.write(
                raw_error(
                    414,
                    "URI Too Long",
                    "uri_too_long",
                    f"request line longer than {self.server.url_length_limit} bytes",
                )
            )
            self.wfile.flush()
            return ""
        return line

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            self._cancel_header_timer()

    def parse_request(self) -> bool:
        try:
            if not self._parse_request_line_and_headers():
                return False
        except (wsgi.HeaderLineTooLong, wsgi.HeadersTooLarge):
            self._refuse(431, "Request Header Fields Too Large", "headers_too_large", "request headers too large")
            return False
        finally:
            self._cancel_header_timer()
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1:
            self._refuse(
                400,
                "Bad Request",
                "bad_request",
                "more than one Content-Length header",
                {"Content-Length": "duplicated"},
            )
            return False
        if lengths and not (lengths[0].strip().isdigit() and lengths[0].strip().isascii()):
            self._refuse(
                400,
                "Bad Request",
                "bad_request",
                "Content-Length is not a non-negative integer",
                {"Content-Length": "malformed"},
            )
            return False
        encodings = self.headers.get_all("Transfer-Encoding") or []
        if encodings and (lengths or len(encodings) > 1 or encodings[0].strip().lower() != "chunked"):
            self._refuse(
                400,
                "Bad Request",
                "bad_request",
                "Transfer-Encoding must be a single 'chunked', without Content-Length",
                {"Transfer-Encoding": "not supported here"},
            )
            return False
        return True

    def _parse_request_line_and_headers(self) -> bool:
        """The stdlib's BaseHTTPRequestHandler.parse_request (Python 3.11), step for step, with
        the headers read by read_header_lines and made by parse_header_lines: the same request
        line checks and answers, the same headers, without the email parser for plain ones."""
        self.command = None
        self.request_version = version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = requestline
        words = requestline.split()
        if len(words) == 0:
            return False
        if len(words) >= 3:
            version = words[-1]
            try:
                if not version.startswith("HTTP/"):
                    raise ValueError
                base_version_number = version.split("/", 1)[1]
                parts = base_version_number.split(".")
                if len(parts) != 2:
                    raise ValueError
                if any(not part.isdigit() for part in parts):
                    raise ValueError("non digit in http version")
                if any(len(part) > 10 for part in parts):
                    raise ValueError("unreasonable length http version")
                version_number = int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                return False
            if version_number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if version_number >= (2, 0):
                self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({base_version_number})")
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, path
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        try:
            self.headers = parse_header_lines(read_header_lines(self.rfile), self.MessageClass)
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        conntype = self.headers.get("Connection", "")
        if conntype.lower() == "close":
            self.close_connection = True
        elif conntype.lower() == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = self.headers.get("Expect", "")
        if (
            expect.lower() == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
        ):
            return bool(self.handle_expect_100())
        return True

    def _refuse(self, status: int, reason: str, code: str, message: str, fields: dict[str, Any] | None = None) -> None:
        self.close_connection = True
        self.wfile.write(raw_error(status, reason, code, message, fields))
        self.wfile.flush()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's refusals (bad request line, bad version, too many headers) as JSON errors."""
        self.close_connection = True
        if code >= 500:  # 505 HTTP Version Not Supported: the client's doing, so a 4xx here
            code, message = 400, f"unsupported HTTP version: {message or code}"
        reason = self.responses.get(code, ("Error",))[0]
        text = message or reason
        try:
            self.wfile.write(
                raw_error(code, reason, "bad_request" if code == 400 else reason.lower().replace(" ", "_"), str(text))
            )
            self.wfile.flush()
        except OSError:
            pass

    def finish(self) -> None:
        """Flush, then a lingering close: the response is not lost to a reset when input is left
        unread (a refused or unread body), as it would be on a plain close."""
        try:
            wsgi.BaseHTTPServer.BaseHTTPRequestHandler.finish(self)
        except OSError:
            pass
        linger_close(self.connection)

    def get_environ(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_environ()  # eventlet's (untyped)
        env["kokeilu.close_connection"] = self._close_after_response
        return env

    def _close_after_response(self) -> None:
        self.close_connection = True


class HardenedWebServer(WebServer):
    """nameko's WebServer with the limits above. Subclasses give the WSGI app (`get_wsgi_app`)."""

    def __init__(self) -> None:
        super().__init__()
        self.open_connections = 0
        self.overflow_connections = 0

    def get_wsgi_server(
        self,
        sock: socket.socket,
        wsgi_app: Callable[..., Any],
        protocol: type[HardenedProtocol] = HardenedProtocol,
        debug: bool = False,
    ) -> wsgi.Server:
        settings = http_settings()
        access_log = logging.getLogger(ACCESS_LOG)
        server = wsgi.Server(
            sock,
            sock.getsockname(),
            wsgi_app,
            protocol=protocol,
            debug=debug,
            log=access_log,
            keepalive=settings.idle_timeout_seconds,
            socket_timeout=settings.socket_timeout_seconds,
        )
        # eventlet formats each request's access line (time, client, request line, status, size)
        # before handing it to the logger, which may drop it: it is only made when the logger
        # writes INFO (KOKEILU_ACCESS_LOG_LEVEL in a service's config.yaml). The server's errors
        # still go to the same logger either way.
        server.log_output = access_log.isEnabledFor(logging.INFO)
        server.kokeilu_settings = settings
        return server

    def run(self) -> None:
        settings: HttpSettings = self._serv.kokeilu_settings
        while self._is_accepting:
            try:
                sock, addr = self._sock.accept()
            except OSError as exc:  # e.g. out of file descriptors: wait, never end the accept loop
                if not self._is_accepting:
                    break
                log.warning("accept failed: %s", exc)
                eventlet.sleep(0.1)
                continue
            sock.settimeout(self._serv.socket_timeout)
            if self.open_connections < settings.max_connections:
                self.open_connections += 1
                self.container.spawn_managed_thread(partial(self._serve, sock, addr))
            elif self.overflow_connections < OVERFLOW_FACTOR * settings.max_connections:
                self.overflow_connections += 1
                eventlet.spawn_n(self._overloaded, sock)
            else:
                sock.close()  # far past the limit: not even a 503

    def _serve(self, sock: socket.socket, addr: Any) -> None:
        try:
            self.process_request(sock, addr)
        except Exception as exc:  # a client's misbehaviour must never reach the container (it would kill it)
            log.debug("connection from %s ended: %r", addr, exc)
            try:
                sock.close()
            except OSError:
                pass
        finally:
            self.open_connections -= 1

    def _overloaded(self, sock: socket.socket) -> None:
        """One connection past the limit: answer `GET /health/live` (from a reserved, cheap path) and
        anything else with 503 and Retry-After, reading no more than the request head for one second."""
        try:
            head = b""
            with eventlet.Timeout(1, False):
                while b"\r\n\r\n" not in head and len(head) < 16384:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    head += chunk
            if head.startswith(b"GET " + LIVE_PATH.encode() + b" ") or head.startswith(
                b"GET " + LIVE_PATH.encode() + b"?"
            ):
                body = live_body(self.container.service_name)
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            else:
                sock.sendall(
                    raw_error(
                        503,
                        "Service Unavailable",
                        "overloaded",
                        "too many open connections; try again shortly",
                        headers={"Retry-After": "1"},
                    )
                )
        except OSError:
            pass
        finally:
            linger_close(sock, 0.5)
            self.overflow_connections -= 1
