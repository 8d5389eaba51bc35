"""Log lines that can be joined to the work they are about.

`KOKEILU_LOG_FORMAT` picks the format, in each service's config.yaml: `text` (the default, for
`make run` and a terminal) or `json` (one JSON object per line, what the container image, the
compose stack and the Kubernetes manifests set). Both carry, when the line was written while
the service handled an event or a request: the correlation id, the trace id and span id, and
for an event its id, topic, partition and offset (`ContextFilter`, from kokeilu/tracing.py).
"""

from __future__ import annotations

import logging
import threading

from opentelemetry import trace

from kokeilu import tracing

FIELDS = ("correlation_id", "trace_id", "span_id", "event_id", "topic", "partition", "offset")


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception that ends a thread, as one record in the service's format (the default hook
    prints a raw traceback to stderr, which breaks one-JSON-object-per-line). kafka-python's IO
    threads end so when a client is closed while they wait on its sockets (eventlet's IOClosed):
    expected at shutdown, so a warning; anything else is an error."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    closed = args.exc_type.__name__ == "IOClosed"
    logging.getLogger("kokeilu.threads").log(
        logging.WARNING if closed else logging.ERROR,
        "thread %s ended: %s: %s",
        name,
        args.exc_type.__name__,
        args.exc_value,
        exc_info=None if closed or args.exc_value is None else args.exc_value,
    )


class ContextFilter(logging.Filter):
    """Adds the work in hand to every record: the FIELDS above (None when not known). Every
    service's logging configuration makes one at start; it also routes exceptions that end a
    thread into the log (_log_thread_exception)."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        threading.excepthook = _log_thread_exception

    def filter(self, record: logging.LogRecord) -> bool:
        flow = tracing.current_flow()
        span = trace.get_current_span().get_span_context()
        values = {
            "correlation_id": flow.correlation_id if flow else None,
            "trace_id": f"{span.trace_id:032x}" if span.is_valid else None,
            "span_id": f"{span.span_id:016x}" if span.is_valid else None,
            "event_id": flow.event_id if flow else None,
            "topic": flow.topic if flow else None,
            "partition": flow.partition if flow else None,
            "offset": flow.offset if flow else None,
        }
        for name, value in values.items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with the work in hand in brackets after the message when there is any."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        parts = [
            f"{name}={value}"
            for name in ("correlation_id", "event_id", "topic", "partition", "offset", "trace_id")
            if (value := getattr(record, name, None)) is not None
        ]
        if not parts:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{' '.join(parts)}]{newline}{rest}"
