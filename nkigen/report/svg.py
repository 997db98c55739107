"""Stage: report (drawing). Figures -> inline SVG text: a log-log roofline and utilisation bars.

Input: plain numbers (no nkigen types). Output: ``<svg>`` elements as strings, deterministic
(fixed precision), self-contained (no fonts, scripts or links to load), every text escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

W, H = 640, 400                     # roofline canvas
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 50
COLOURS = {"tensor": "#4e79a7", "vector": "#f28e2b", "scalar": "#59a14f", "gpsimd": "#b07aa1",
           "dma": "#e15759"}


@dataclass(frozen=True)
class Point:
    label: str
    intensity: float        # FLOP per HBM byte
    flops_per_s: float      # attained (modeled)
    href: str               # in-page anchor of the kernel's section


@dataclass(frozen=True)
class Roof:
    label: str
    peak_flops_per_s: float
    bytes_per_s: float


def _f(x: float) -> str:
    return f"{x:.1f}"


def _log_range(values: Sequence[float], pad: float = 0.5) -> tuple[float, float]:
    logs = [math.log10(v) for v in values if v > 0]
    lo, hi = (min(logs), max(logs)) if logs else (0.0, 1.0)
    return math.floor(lo - pad), math.ceil(hi + pad)


def roofline(points: Sequence[Point], roofs: Sequence[Roof]) -> str:
    """A log-log roofline: x arithmetic intensity (FLOP/byte), y attained FLOP/s, one roof per
    target (memory slope up to the ridge, then flat compute peak), one dot per kernel."""
    xs = [p.intensity for p in points] + [r.peak_flops_per_s / r.bytes_per_s for r in roofs]
    ys = [p.flops_per_s for p in points] + [r.peak_flops_per_s for r in roofs]
    x0, x1 = _log_range(xs)
    y0, y1 = _log_range(ys)
    y1 = max(y1, y0 + 1)

    def sx(v: float) -> float:
        return LEFT + (math.log10(v) - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def sy(v: float) -> float:
        return H - BOTTOM - (math.log10(v) - y0) / (y1 - y0) * (H - TOP - BOTTOM)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="roofline" width="{W}" '
             f'height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="roofline">',
             f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" '
             f'height="{H - TOP - BOTTOM}" fill="#fafafa" stroke="#999"/>']
    for e in range(int(x0), int(x1) + 1):
        x = sx(10.0 ** e)
        parts.append(f'<line x1="{_f(x)}" y1="{TOP}" x2="{_f(x)}" y2="{H - BOTTOM}" '
                     'stroke="#e4e4e4"/>')
        parts.append(f'<text x="{_f(x)}" y="{H - BOTTOM + 16}" font-size="11" '
                     f'text-anchor="middle">1e{e}</text>')
    for e in range(int(y0), int(y1) + 1):
        y = sy(10.0 ** e)
        parts.append(f'<line x1="{LEFT}" y1="{_f(y)}" x2="{W - RIGHT}" y2="{_f(y)}" '
                     'stroke="#e4e4e4"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{_f(y + 4)}" font-size="11" '
                     f'text-anchor="end">1e{e}</text>')
    parts.append(f'<text x="{(LEFT + W - RIGHT) // 2}" y="{H - 12}" font-size="12" '
                 'text-anchor="middle">arithmetic intensity (FLOP per HBM byte)</text>')
    parts.append(f'<text x="14" y="{(TOP + H - BOTTOM) // 2}" font-size="12" '
                 f'text-anchor="middle" transform="rotate(-90 14 {(TOP + H - BOTTOM) // 2})">'
                 'attained FLOP/s (modeled)</text>')
    for i, r in enumerate(roofs):
        ridge = r.peak_flops_per_s / r.bytes_per_s
        xa = 10.0 ** x0
        ya = r.bytes_per_s * xa
        pts = [(xa, ya), (ridge, r.peak_flops_per_s), (10.0 ** x1, r.peak_flops_per_s)]
        if ya < 10.0 ** y0:          # clip the slope at the bottom edge
            xa = 10.0 ** y0 / r.bytes_per_s
            pts[0] = (xa, 10.0 ** y0)
        path = " ".join(f"{_f(sx(a))},{_f(sy(b))}" for a, b in pts)
        dash = ' stroke-dasharray="6 3"' if i else ""
        parts.append(f'<polyline class="roof" points="{path}" fill="none" stroke="#333" '
                     f'stroke-width="1.5"{dash}><title>{escape(r.label)}</title></polyline>')
        ly = TOP + 16 + 14 * i          # legend, top left: the roofs never pass there
        parts.append(f'<line x1="{LEFT + 8}" y1="{ly - 4}" x2="{LEFT + 30}" y2="{ly - 4}" '
                     f'stroke="#333" stroke-width="1.5"{dash}/>')
        parts.append(f'<text x="{LEFT + 36}" y="{ly}" font-size="11">{escape(r.label)}</text>')
    for p in points:
        if p.intensity <= 0 or p.flops_per_s <= 0:
            continue
        parts.append(f'<a href="{escape(p.href)}"><circle class="kernel" '
                     f'cx="{_f(sx(p.intensity))}" cy="{_f(sy(p.flops_per_s))}" r="5" '
                     'fill="#4e79a7" fill-opacity="0.8">'
                     f'<title>{escape(p.label)}</title></circle></a>')
    parts.append("</svg>")
    return "\n".join(parts)


def bars(values: Sequence[tuple[str, float]], width: int = 320) -> str:
    """Horizontal bars of fractions in [0, 1] (engine utilisation), labelled with percents."""
    row = 18
    h = row * len(values) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" width="{width + 150}" '
             f'height="{h}" viewBox="0 0 {width + 150} {h}" role="img" '
             'aria-label="engine utilisation">']
    for i, (name, frac) in enumerate(values):
        f = min(max(frac, 0.0), 1.0)
        y = 2 + i * row
        parts.append(f'<text x="0" y="{y + 12}" font-size="12">{escape(name)}</text>')
        parts.append(f'<rect x="60" y="{y + 2}" width="{width}" height="12" fill="#eee"/>')
        parts.append(f'<rect class="bar" data-engine="{escape(name)}" x="60" y="{y + 2}" '
                     f'width="{_f(width * f)}" height="12" '
                     f'fill="{COLOURS.get(name, "#888")}"/>')
        parts.append(f'<text x="{width + 66}" y="{y + 12}" font-size="12">{100 * f:.1f} %</text>')
    parts.append("</svg>")
    return "\n".join(parts)
