"""Stage: library (reporting). Unit results -> a progress line and a summary table.

Input: build events and :class:`nkigen.library.unit.UnitResult` s. Output: a one-line ``\\r``
progress bar on stderr (only when stderr is a terminal) and a plain-text summary table.
"""

from __future__ import annotations

import sys
from typing import TextIO

from nkigen.library import bound
from nkigen.library.readme import largest_case
from nkigen.library.unit import UnitResult


class Progress:
    """``[####......] 3/10 matmul``: redrawn in place; silent when ``stream`` is not a tty."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.done = 0
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._width = 0

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled or self.total == 0:
            return
        n = 24
        fill = n * self.done // self.total
        line = f"[{'#' * fill}{'.' * (n - fill)}] {self.done}/{self.total} {label}"
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def summary(results: list[UnitResult]) -> str:
    """A table: kernel, status, modeled latency of its largest case, its bound resource and
    that resource's utilisation, build time, spec; then one warning per kernel whose bound
    resource is under 50 % utilised, naming the spec line to look at
    (:mod:`nkigen.library.bound`)."""
    rows = [("kernel", "status", "latency (largest case)", "bound", "time", "spec")]
    warnings: list[str] = []
    for r in results:
        lat = bnd = "-"
        if r.entry is not None:
            big = largest_case(r.entry)
            lat = f"{big['latency_us']:.3f} us {big['name']}"
            if "bound" in big:
                bnd = f"{big['bound']} {bound.pct(big['bound_util'])}"
            w = bound.warning(r.entry["name"], big)
            if w is not None:
                warnings.append(w)
        time = "-" if r.status == "cached" else f"{r.seconds:.2f} s"
        spec = r.spec if r.spec.isprintable() else repr(r.spec)[1:-1]  # one line, no escapes
        rows.append((r.name or "?", r.status, lat, bnd, time, spec))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    counts = {s: sum(r.status == s for r in results) for s in ("built", "cached", "failed")}
    lines.append(f"{counts['built']} built, {counts['cached']} cached, {counts['failed']} failed "
                 "(latency and bound: nkigen cost model; bound % = HFU for tensor, MBU for "
                 "dma, busy share for the other engines)")
    lines.extend(warnings)
    return "\n".join(lines)
