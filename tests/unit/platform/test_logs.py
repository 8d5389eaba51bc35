"""Log lines carry the work in hand (kokeilu/logs.py), in text and as JSON."""

import io
import json
import logging
import threading

from pythonjsonlogger.json import JsonFormatter

from kokeilu import tracing
from kokeilu.contracts import CloudEvent
from kokeilu.logs import ContextFilter, TextFormatter


def logger_with(formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    log = logging.getLogger(f"test-logs-{id(out)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return log, out


EVENT = CloudEvent(
    specversion="1.0",
    id="e-1",
    source="tests",
    type="fi.espoo.kokeilu.proposal.submitted",
    time="2026-11-29T10:00:00Z",
    subject="p-1",
    correlationid="c-1",
)


def test_a_json_line_names_the_event_its_place_and_its_trace():
    log, out = logger_with(JsonFormatter("%(levelname)s %(name)s %(message)s", static_fields={"service": "svc"}))
    with tracing.consuming(EVENT, "kokeilu.proposals.v1", 2, 41, "kokeilu.svc") as span:
        log.warning("applied %s", "it")
    log.info("outside")
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert inside["message"] == "applied it" and inside["service"] == "svc"
    assert (inside["correlation_id"], inside["event_id"], inside["topic"], inside["partition"], inside["offset"]) == (
        "c-1",
        "e-1",
        "kokeilu.proposals.v1",
        2,
        41,
    )
    assert inside["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert outside["correlation_id"] is None and outside["trace_id"] is None


def test_a_text_line_has_the_context_after_the_message_and_keeps_a_traceback_below():
    log, out = logger_with(TextFormatter("%(levelname)s %(message)s"))
    with tracing.serving("GET", "/x", {"X-Correlation-Id": "case 9"}):
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    first, *rest = out.getvalue().splitlines()
    assert first.startswith("ERROR failed [correlation_id=case 9 trace_id=") and first.endswith("]")
    assert rest[-1] == "ValueError: boom"


def test_a_caller_correlation_id_is_taken_only_when_it_is_sensible_text():
    assert tracing.valid_correlation("case-1") == "case-1"
    assert tracing.valid_correlation("x" * 201) is None
    assert tracing.valid_correlation("bad\nline") is None
    with tracing.serving("GET", "/x", {"X-Correlation-Id": "bad\nline"}):
        assert tracing.current_flow().correlation_id != "bad\nline"


class IOClosed(OSError):
    """Named as eventlet's: what a kafka-python IO thread ends with when its client is closed."""


def test_an_exception_that_ends_a_thread_is_logged_as_a_record_not_printed(caplog):
    ContextFilter()  # a service's logging configuration makes one at start

    def fail(exc):
        def run():
            raise exc

        thread = threading.Thread(target=run, name="kafka-io-test")
        thread.start()
        thread.join()

    with caplog.at_level(logging.WARNING, logger="kokeilu.threads"):
        fail(RuntimeError("selector broke"))
        fail(IOClosed(107, "Operation on closed file"))
    [error, closed] = [r for r in caplog.records if r.name == "kokeilu.threads"]
    assert (error.levelno, error.getMessage()) == (
        logging.ERROR,
        "thread kafka-io-test ended: RuntimeError: selector broke",
    )
    assert error.exc_info is not None and error.exc_info[1].args == ("selector broke",)
    assert (closed.levelno, closed.exc_info) == (logging.WARNING, None)
    assert closed.getMessage().startswith("thread kafka-io-test ended: IOClosed")
