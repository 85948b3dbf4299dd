"""Inline SVG charts written by our code (no library, no network, no script): a line chart of a dated series and
a bar chart of counts. Every point carries a <title> with its date (or name) and value, so a reader hovering a
chart sees the number and a test can read the data back; the line is a polyline through the same points."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

WIDTH, HEIGHT = 600, 240
LEFT, RIGHT, TOP, BOTTOM = 78, 12, 34, 28
MARKED_POINTS = 500
"""Series longer than this are drawn as the line only (the titles would outweigh the page)."""


def _fmt(value: float) -> str:
    return f"{value:,.2f}"


def axis_label(value: float) -> str:
    """A compact axis number: 1.25M, 402.3k, 12.5, 0.0139 (the points' titles carry the full figures)."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:,.3f}M"
    if size >= 1e4:
        return f"{value / 1e3:,.1f}k"
    if size >= 10 or value == 0:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def _head(title: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text class="caption" x="{LEFT}" y="20" font-weight="bold">{escape(title)}</text>'
    )


def _range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high - low < 1e-12:
        pad = abs(high) * 0.05 or 1.0
        return low - pad, high + pad
    return low, high


def line_chart(
    title: str,
    points: Sequence[tuple[str, float]],
    *,
    colour: str = "#1f6fb2",
    fmt: Callable[[float], str] = _fmt,
    axis: Callable[[float], str] = axis_label,
) -> str:
    """An SVG line chart of (label, value) points in order; a note instead of axes when there are none."""
    finite = [(label, v) for label, v in points if math.isfinite(v)]
    head = _head(title)
    if not finite:
        return head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data yet</text></svg>'
    low, high = _range([v for _, v in finite])
    span_x = max(len(finite) - 1, 1)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(i: int, v: float) -> tuple[float, float]:
        x = LEFT + inner_w * (i / span_x if len(finite) > 1 else 0.5)
        return round(x, 2), round(TOP + inner_h * (1 - (v - low) / (high - low)), 2)

    coords = [xy(i, v) for i, (_, v) in enumerate(finite)]
    parts = [head, f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="#fafafa" stroke="#ddd"/>']
    for value in (high, (high + low) / 2, low):
        _, y = xy(0, value)
        parts.append(f'<text class="axis" x="{LEFT - 4}" y="{y + 4}" text-anchor="end">{escape(axis(value))}</text>')
    parts.append(f'<text class="axis" x="{LEFT}" y="{HEIGHT - 8}">{escape(finite[0][0])}</text>')
    parts.append(
        f'<text class="axis" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{escape(finite[-1][0])}</text>'
    )
    line = " ".join(f"{x},{y}" for x, y in coords)
    parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}"/>')
    if len(finite) <= MARKED_POINTS:
        for (label, v), (x, y) in zip(finite, coords, strict=True):
            tip = f"{escape(label)}: {escape(fmt(v))}"
            parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"><title>{tip}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, counts: Sequence[tuple[str, float]], *, colour: str = "#4c8c4a") -> str:
    """An SVG bar chart of (name, count) pairs, one bar each, in order."""
    head = _head(title)
    if not counts:
        return head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">none in this period</text></svg>'
    top = max(max(v for _, v in counts), 1e-12)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = inner_w / len(counts)
    parts = [head]
    for i, (name, v) in enumerate(counts):
        h = round(inner_h * max(v, 0.0) / top, 2)
        x = round(LEFT + i * slot + slot * 0.15, 2)
        y = round(TOP + inner_h - h, 2)
        w = round(slot * 0.7, 2)
        parts.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour}">'
            f"<title>{escape(name)}: {v:g}</title></rect>"
        )
        parts.append(
            f'<text class="axis" x="{round(x + w / 2, 2)}" y="{HEIGHT - 8}" text-anchor="middle">{escape(name)}</text>'
        )
        parts.append(f'<text class="axis" x="{round(x + w / 2, 2)}" y="{y - 3}" text-anchor="middle">{v:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["axis_label", "bar_chart", "line_chart"]
