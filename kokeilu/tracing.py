"""Following one proposal across the services: correlation ids, W3C trace context, spans.

Every event carries two things that join it to the work that caused it:

- `correlationid` (a CloudEvents extension): the same for every event caused, directly or not,
  by one submission or one intake event. Every event about a proposal carries the proposal's:
  services that act on a proposal outside an event (an evaluator's score over HTTP, a timer)
  look it up in their store's `flows` table (kokeilu.store.unit_of_work), where it was kept
  when they first published about the proposal.
- `traceparent` (the CloudEvents distributed-tracing extension, W3C Trace Context): the span
  that produced it. A consumer's span for a record is a child of it, so one proposal is one
  trace from the submission to the published result, whichever service did the work.

Spans are made with OpenTelemetry: for HTTP requests (a `traceparent` request header is
honoured, and every answer carries the request's), for each consumed record (a child of the
producing span), for each unit of work's transaction and each relay send. They are exported
with OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
is set. When it is not, no span is recorded: ids are still made and carried (a request or
an event without a trace starts one; a consumed event's trace goes on in what it causes), so
correlation and traces in events and logs work without a collector, at next to no cost. The OTel SDK's own environment variables apply (`OTEL_SERVICE_NAME`,
`OTEL_TRACES_SAMPLER`, ...).

What the work in hand belongs to is kept in context variables, which eventlet keeps per green
thread: the consumer sets them around each record, the HTTP entrypoint around each request
(`Tracing`, a nameko dependency every service has), and kokeilu.logs puts them in log lines.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

    from kokeilu.contracts import CloudEvent

_propagator = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_provider_lock = threading.Lock()
MAX_CORRELATION = 200


@dataclass(frozen=True)
class Flow:
    """What the work in hand belongs to, for events and logs."""

    correlation_id: str
    event_id: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


_flow: ContextVar[Flow | None] = ContextVar("kokeilu_flow", default=None)

# What `attach` returns and `detach` takes: the context's token and the flow's.
Attached = tuple[Token[otel_context.Context], Token[Flow | None]]


def configure(service: str) -> None:
    """Once per process. With an OTLP endpoint set: the SDK's tracer provider, exporting in
    batches. Without one: no span is recorded at all, and ids are only made where a flow needs
    new ones (a request without a traceparent, a span in another trace): nothing would read the
    spans, and recording them cost a fifth of a consumer's time per record (bench/README.md)."""
    global _provider, _tracer
    with _provider_lock:
        if _tracer is not None:
            return
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            resource = Resource.create(
                {
                    "service.name": os.environ.get("OTEL_SERVICE_NAME") or f"kokeilu-{service}",
                    "service.namespace": "kokeilu",
                }
            )
            _provider = TracerProvider(resource=resource)
            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _tracer = _provider.get_tracer("kokeilu")
        else:
            _tracer = trace.NoOpTracer()


def exporting() -> bool:
    return _provider is not None


def shutdown() -> None:
    """Export what is buffered (at a graceful stop)."""
    if _provider is not None:
        _provider.force_flush(5000)


def tracer() -> trace.Tracer:
    if _tracer is None:
        configure("kokeilu")
    assert _tracer is not None
    return _tracer


def _new_span(trace_id: int | None) -> NonRecordingSpan:
    """A span that is only ids (nothing records it): in trace `trace_id`, or in a new trace."""
    return NonRecordingSpan(
        SpanContext(
            trace_id=trace_id or random.getrandbits(128),
            span_id=random.getrandbits(64),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )


def current_flow() -> Flow | None:
    return _flow.get()


def traceparent_of(span_context: trace.SpanContext) -> str | None:
    if not span_context.is_valid:
        return None
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def current_traceparent() -> str | None:
    return traceparent_of(trace.get_current_span().get_span_context())


def trace_id_of(traceparent: str | None) -> str | None:
    parent = _parent(traceparent)
    return None if parent is None else f"{parent.trace_id:032x}"


@lru_cache(maxsize=4096)  # a consumer's events carry their cause's: parsed once, not per event
def _parent(traceparent: str | None) -> trace.SpanContext | None:
    if not traceparent:
        return None
    context = _propagator.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def valid_correlation(value: str | None) -> str | None:
    """A caller's correlation id when it is printable text of sensible length, else None."""
    if value and len(value) <= MAX_CORRELATION and value.isprintable() and value.strip() == value:
        return value
    return None


@contextmanager
def _within(
    span_name: str,
    kind: SpanKind,
    parent: trace.SpanContext | None,
    flow: Flow,
    attributes: dict[str, AttributeValue],
    own_ids: bool = False,
) -> Iterator[trace.Span]:
    """`own_ids`: when nothing records spans, still give this one ids of its own (a request's
    answer names its span; a request without a traceparent starts a trace)."""
    if parent is not None:
        context = trace.set_span_in_context(NonRecordingSpan(parent))
    else:
        context = otel_context.Context()
    if own_ids and not exporting():
        context = trace.set_span_in_context(_new_span(parent.trace_id if parent is not None else None))
    token = _flow.set(flow)
    try:
        made = tracer()
        if exporting():
            with made.start_as_current_span(span_name, context=context, kind=kind, attributes=attributes) as span:
                yield span
        else:
            # What the no-op tracer's start_as_current_span does, without its machinery (per
            # request and per consumed record): the span `context` holds is made current.
            span = trace.get_current_span(context)
            attached = otel_context.attach(trace.set_span_in_context(span))
            try:
                yield span
            finally:
                otel_context.detach(attached)
    finally:
        _flow.reset(token)


def consuming(
    event: CloudEvent, topic: str, partition: int, offset: int, group: str
) -> AbstractContextManager[trace.Span]:
    """Around applying one consumed event: a CONSUMER span, child of the span that produced it."""
    flow = Flow(
        correlation_id=event.correlationid or event.id,
        event_id=event.id,
        topic=topic,
        partition=partition,
        offset=offset,
    )
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
        "messaging.kafka.offset": offset,
        "messaging.destination.partition.id": str(partition),
        "messaging.message.id": event.id,
        "cloudevents.event_type": event.type,
        "cloudevents.event_source": event.source,
    }
    if event.subject:
        attributes["cloudevents.event_subject"] = event.subject
    parent = _parent(getattr(event, "traceparent", None))
    return _within(f"process {topic}", SpanKind.CONSUMER, parent, flow, attributes, own_ids=parent is None)


def span_of(event: CloudEvent) -> str | None:
    """The traceparent of the span `consuming` applies `event` in, for work done for it outside
    that span (a run of events applied together): when nothing records spans, the ids
    `consuming` makes current (the event's own span, or a new trace when it has none); else a
    span recorded as a child of the event's."""
    parent = _parent(getattr(event, "traceparent", None))
    if not exporting():
        return traceparent_of(parent if parent is not None else _new_span(None).get_span_context())
    context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else otel_context.Context()
    started = tracer().start_span(f"process {event.type}", context=context, kind=SpanKind.CONSUMER)
    started.end()
    return traceparent_of(started.get_span_context())


def serving(method: str, route: str, headers: Headers) -> AbstractContextManager[trace.Span]:
    """Around one HTTP request: a SERVER span, child of the caller's `traceparent` when it sent
    one; the correlation id is the caller's `X-Correlation-Id` when valid, else a new one."""
    correlation = valid_correlation(headers.get("X-Correlation-Id")) or str(uuid.uuid4())
    return _within(
        f"{method} {route}",
        SpanKind.SERVER,
        _parent(headers.get("traceparent")),
        Flow(correlation_id=correlation),
        {"http.request.method": method, "http.route": route},
        own_ids=True,
    )


def attach(span: trace.Span, flow: Flow) -> Attached:
    """Make `span` and `flow` current in this green thread (an HTTP worker runs in another green
    thread than the one that began the request's span); returns what `detach` takes."""
    return otel_context.attach(trace.set_span_in_context(span)), _flow.set(flow)


def detach(tokens: Attached) -> None:
    span_token, flow_token = tokens
    _flow.reset(flow_token)
    otel_context.detach(span_token)


@contextmanager
def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[trace.Span]:
    """A child span of the current one (a store transaction, a consumer's batch); nothing when
    no span is current: a timer's routine work (claiming due deliveries twice a second) would
    otherwise start a trace of its own each time."""
    current = trace.get_current_span()
    if not current.get_span_context().is_valid:
        yield trace.INVALID_SPAN
        return
    if not exporting():
        # Nothing records spans: the no-op tracer's child would be the current span's ids again,
        # made and attached for nothing (every store transaction of a request asked for one).
        yield current
        return
    with tracer().start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


def producer_span(name: str, traceparent: str | None, **attributes: AttributeValue) -> None:
    """A PRODUCER span for one record sent, child of the span that produced the event (the
    relay sends later, in another green thread: the event says where it belongs)."""
    if not exporting():
        return
    parent = _parent(traceparent)
    context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else otel_context.Context()
    tracer().start_span(name, context=context, kind=SpanKind.PRODUCER, attributes=attributes).end()


def continuing(traceparent: str | None) -> str | None:
    """The traceparent for an event about an aggregate whose flow began in `traceparent`: the
    current span's when it is in that trace already; otherwise a new span in that trace (a child
    of where the flow began, linked to the current span), so the aggregate stays one trace even
    when an evaluator's request or a timer, in traces of their own, acts on it."""
    here = trace.get_current_span().get_span_context()
    mine = traceparent_of(here)
    if traceparent is not None and traceparent == mine:
        return mine  # the flow began in the current span (a request's new proposal): nothing to parse
    parent = _parent(traceparent)
    if parent is None:
        return mine
    if here.is_valid and here.trace_id == parent.trace_id:
        return mine
    if not exporting():
        return traceparent_of(_new_span(parent.trace_id).get_span_context())
    links = [Link(here)] if here.is_valid else None
    started = tracer().start_span(
        "continue flow", context=trace.set_span_in_context(NonRecordingSpan(parent)), links=links
    )
    started.end()
    return traceparent_of(started.get_span_context())
