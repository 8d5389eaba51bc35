"""A KPI's series as an inline SVG chart, drawn on the server: the daily mean as a line with a
marker per point, each point's range (min to max) as a vertical bar, and the KPI's baseline and
target as labelled horizontal lines, with both axes labelled. No script, no colour alone carries
meaning (dashes differ, the lines are labelled in text), and it prints. `role="img"` with a title
and description for screen readers; the numbers are also given as a table and CSV beside it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from html import escape

from kokeilu.contracts.results import KpiPoint, ResultKpi

from .i18n import Translator

WIDTH, HEIGHT = 600, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 124, 16, 48
# Colours with at least 4.5:1 contrast on white (text and lines alike).
INK, GRID, MEAN, RANGE, BASELINE, TARGET = "#1b1b1b", "#d5d9df", "#0a4f9e", "#5c7fae", "#5a4a00", "#1d6b33"


@dataclass(frozen=True)
class Chart:
    svg: str
    title: str
    description: str


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering low..high."""
    if high <= low:
        low, high = low - 1, high + 1
    raw = (high - low) / (count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    value = step * math.floor(low / step)
    ticks = [value]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(ticks[-1] + step)
    return [round(v, 10) for v in ticks]


def _mid(p: KpiPoint) -> date:
    return p.start + (p.end - p.start) / 2


def render(kpi: ResultKpi, chart_id: str, t: Translator) -> Chart | None:
    points = kpi.series or []
    if not points:
        return None
    values = [v for p in points for v in (p.min, p.max)] + [kpi.baseline, kpi.target]
    ticks = _nice_ticks(min(values), max(values))
    y_low, y_high = ticks[0], ticks[-1]
    first, last = points[0].start, points[-1].end
    span = max((last - first).days, 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(d: date) -> float:
        return LEFT + plot_w * ((d - first).days / span if len(points) > 1 or last != first else 0.5)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - y_low) / (y_high - y_low))

    n = sum(p.count for p in points)
    title = t("chart_title", kpi=kpi.name)
    description = t(
        "chart_desc",
        n=n,
        start=t.date(first),
        end=t.date(last),
        low=t.number(min(p.mean for p in points)),
        high=t.number(max(p.mean for p in points)),
        unit=kpi.unit,
        last=t.number(points[-1].last),
        baseline=t.number(kpi.baseline),
        target=t.number(kpi.target),
    )
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="14">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        '<g aria-hidden="true">',
    ]
    for v in ticks:  # horizontal grid and y labels
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="{GRID}"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="{INK}">{escape(t.number(v))}</text>'
        )
    out.append(
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" transform="rotate(-90 14 {TOP + plot_h / 2:.1f})" '
        f'text-anchor="middle" fill="{INK}">{escape(kpi.unit)}</text>'
    )
    # x axis: first and last day, and the middle one when there is room
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="{INK}"/>')
    x_labels = [(first, "start")] + ([(last, "end")] if last != first else [])
    for d, anchor in x_labels:
        out.append(
            f'<text x="{x(d):.1f}" y="{TOP + plot_h + 18}" text-anchor="{anchor}" fill="{INK}">'
            f"{escape(t.date(d))}</text>"
        )
    out.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" fill="{INK}">'
        f"{escape(t('period'))}</text>"
    )
    # baseline and target, labelled at the right (apart when they are close)
    label_y = {"baseline": y(kpi.baseline) + 4, "target": y(kpi.target) + 4}
    if abs(label_y["baseline"] - label_y["target"]) < 15:
        upper, lower = ("target", "baseline") if kpi.target >= kpi.baseline else ("baseline", "target")
        middle = (label_y["baseline"] + label_y["target"]) / 2
        label_y[upper], label_y[lower] = middle - 8, middle + 8
    for key, value, colour, dash in (
        ("baseline", kpi.baseline, BASELINE, "2 4"),
        ("target", kpi.target, TARGET, "8 4"),
    ):
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="{dash}"/>'
        )
        out.append(
            f'<text x="{WIDTH - RIGHT + 6}" y="{label_y[key]:.1f}" fill="{colour}">'
            f"{escape(t(key))} {escape(t.number(value))}</text>"
        )
    # each point's range, then the mean line and its markers
    for p in points:
        if p.max > p.min:
            out.append(
                f'<line x1="{x(_mid(p)):.1f}" x2="{x(_mid(p)):.1f}" y1="{y(p.min):.1f}" y2="{y(p.max):.1f}" '
                f'stroke="{RANGE}" stroke-width="3" stroke-linecap="round"/>'
            )
    path = " ".join(f"{x(_mid(p)):.1f},{y(p.mean):.1f}" for p in points)
    out.append(f'<polyline points="{path}" fill="none" stroke="{MEAN}" stroke-width="2.5"/>')
    for p in points:
        out.append(
            f'<circle cx="{x(_mid(p)):.1f}" cy="{y(p.mean):.1f}" r="4" fill="#fff" stroke="{MEAN}" stroke-width="2"/>'
        )
    out.append("</g></svg>")
    return Chart("".join(out), title, description)
