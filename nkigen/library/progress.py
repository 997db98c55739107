"""Stage: library (reporting). Unit results -> table rows as they finish, progress, a summary.

Input: build events and :class:`nkigen.library.unit.UnitResult` s. Output on the streams given:

- :class:`Progress`: a one-line ``\\r`` progress bar, only when its stream is a terminal;
- :class:`LiveTable`: the build table printed row by row as each spec finishes (flushed, so a
  pipe such as ``nkigen build ... | tee log`` sees every row at once), and a progress line
  ``nkigen build: 3/28 specs done (1 failed), 4.2 s`` on a stream that is not a terminal
  (at most one every :data:`LINE_EVERY` seconds, and the last one), the ``\\r`` bar on a terminal;
- :func:`summary`: the whole table at once, and :func:`totals` its last line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from nkigen.library.unit import UnitResult

HEADER = ("kernel", "status", "latency (largest case)", "bound", "time", "spec")
LINE_EVERY = 2.0   # seconds between two progress lines on a stream that is not a terminal


class Progress:
    """``[####......] 3/10 matmul``: redrawn in place; silent when ``stream`` is not a tty."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.done = 0
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._width = 0
        self._label = ""

    def step(self, label: str) -> None:
        self.done += 1
        self._label = label
        self.redraw()

    def redraw(self) -> None:
        if not self.enabled or self.total == 0 or self.done == 0:
            return
        n = 24
        fill = n * self.done // self.total
        line = f"[{'#' * fill}{'.' * (n - fill)}] {self.done}/{self.total} {self._label}"
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def row(r: UnitResult) -> tuple[str, str, str, str, str, str]:
    """The table row of one result: kernel, status, latency of its largest case, its bound
    resource and that resource's utilisation (:mod:`nkigen.library.bound`), time, spec."""
    lat = bnd = "-"
    if r.entry is not None:
        from nkigen.library import bound
        from nkigen.library.readme import largest_case
        from nkigen.sim.calibration import format_latency

        big = largest_case(r.entry)
        lat = f"{format_latency(big['latency_us'])} {big['name']}"
        if "bound" in big:
            bnd = f"{big['bound']} {bound.pct(big['bound_util'])}"
            if bound.under(big) and r.entry.get("bound_note"):
                bnd += " (noted)"       # the spec states why (bound_note): no warning
    secs = "-" if r.status == "cached" else f"{r.seconds:.2f} s"
    spec = r.spec if r.spec.isprintable() else repr(r.spec)[1:-1]  # one line, no escapes
    return (r.name or "?", r.status, lat, bnd, secs, spec)


def warnings(results: Sequence[UnitResult]) -> list[str]:
    """One line per kernel whose bound resource is under 50 % utilised, naming the spec lines
    to look at (:func:`nkigen.library.bound.warning`); a kernel whose spec states the reason
    (``bound_note``) gets none. A kernel whose TensorE transposes are inexact for NaN/Inf
    (NeuronCore-v2; the manifest's ``schedule.nonfinite_note``) gets a ``note:`` line, and a
    kernel whose hints the cost model puts more than 4x behind the planner's defaults its
    located ``warning:`` line (``schedule.hint_slowdown``, :mod:`nkigen.library.hints`)."""
    from nkigen.library import bound
    from nkigen.library.readme import largest_case

    out = []
    for r in results:
        if r.entry is not None:
            w = bound.warning(r.entry["name"], largest_case(r.entry),
                              r.entry.get("bound_note", ""))
            if w is not None:
                out.append(w)
            slow = (r.entry.get("schedule") or {}).get("hint_slowdown")
            if slow:    # nkigen.library.hints: hints modelled far slower than the defaults
                out.append(slow["warning"])
            note = (r.entry.get("schedule") or {}).get("nonfinite_note")
            if note:
                out.append(f"note: {r.entry['name']} ({r.entry.get('target', '?')}): {note}")
            out += branch_lines(r.entry)
    return out


def branch_lines(entry: dict) -> list[str]:
    """The build's word on a kernel's trace-time size branches (:mod:`nkigen.library.autocase`):
    ``note: layernorm: +1 case for the branch at kernels/layernorm.py:36 ...`` per derived
    case, ``warning: ...`` per branch side reachable only by a case too large to simulate."""
    name = entry["name"]
    out = []
    derived = [c for c in entry.get("cases", []) if "derived" in c]
    for c in derived:
        d = c["derived"]
        out.append(f"note: {name}: +1 case for the branch at {d['at']} ({d['outcome']} side of "
                   f"`{d['condition']}`): {c['name']}, verified")
    for b in entry.get("branches", []):
        for o in b["outcomes"]:
            if o["status"] == "unverified":
                shown = " ".join(f"{k}={v}" for k, v in o.get("sizes", {}).items())
                out.append(f"warning: {name}: the {o['outcome']} side of `{b['condition']}` at "
                           f"{b['at']} is NOT verified: {o.get('why', '')} ({shown}); add "
                           "that case (or a smaller one reaching it) to tests.cases to verify "
                           "it, at the cost of a longer simulation")
    return out


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()


def totals(results: Sequence[UnitResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("built", "cached", "failed")}
    entries = [r.entry for r in results if r.entry is not None]
    derived = sum("derived" in c for e in entries for c in e.get("cases", []))
    unverified = sum(o["status"] == "unverified" for e in entries
                     for b in e.get("branches", []) for o in b["outcomes"])
    extra = (f", +{derived} derived case{'s' if derived != 1 else ''} for kernel branches"
             if derived else "") + (
        f", {unverified} branch side{'s' if unverified != 1 else ''} NOT verified"
        if unverified else "")
    return (f"{counts['built']} built, {counts['cached']} cached, {counts['failed']} failed{extra} "
            "(latency and bound: nkigen cost model; bound % = HFU for tensor, MBU for dma, "
            "busy share for the other engines)")


def summary(results: list[UnitResult]) -> str:
    """A table: kernel, status, modeled latency of its largest case, build time, spec."""
    rows = [HEADER] + [row(r) for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join([_line(r, widths) for r in rows] + [totals(results)] + warnings(results))


class LiveTable:
    """The build table, one row per spec as it finishes, with progress on ``err``.

    ``names``: the expected kernel names (spec file stems), to size the columns up front; a
    longer cell simply widens its row.
    """

    def __init__(self, names: Sequence[str], out: TextIO | None = None,
                 err: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.total = len(names)
        self.results: list[UnitResult] = []
        self.widths = [max([len(HEADER[0]), *map(len, names)]), len("cached"), 40, 12, 8, 0]
        self.clock = clock
        self.start = clock()
        self._last_line = self.start
        self.tty = self.err.isatty()
        self.bar = Progress(self.total, self.err, enabled=self.tty)
        self._header = False

    def _print(self, text: str) -> None:
        self.bar.close()          # a row never lands in the middle of the bar
        print(text, file=self.out, flush=True)
        self.bar.redraw()

    def add(self, r: UnitResult) -> None:
        if not self._header:
            self._header = True
            self._print(_line(HEADER, self.widths))
        self.results.append(r)
        self._print(_line(row(r), self.widths))
        self.bar.step(r.name or r.spec)
        now = self.clock()
        if not self.tty and (now - self._last_line >= LINE_EVERY or len(self.results) ==
                             self.total):
            self._last_line = now
            failed = sum(x.status == "failed" for x in self.results)
            print(f"nkigen build: {len(self.results)}/{self.total} specs done"
                  f"{f' ({failed} failed)' if failed else ''}, {now - self.start:.1f} s",
                  file=self.err, flush=True)

    def close(self) -> None:
        self.bar.close()
        if not self._header:
            print(_line(HEADER, self.widths), file=self.out)
        print(totals(self.results), file=self.out, flush=True)
        for w in warnings(self.results):
            print(w, file=self.out, flush=True)
