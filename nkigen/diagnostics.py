"""Diagnostics shared by every stage: a located message worded as rule + actual value + fix.

Every user-facing error in nkigen is a :class:`NkigenError` carrying one or more
:class:`Diagnostic` s. The CLI prints them one per line as

    FILE:LINE:COL: field.path: rule (got X); fix

and exits non-zero; it never shows a Python traceback for a user error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A place in a source file; line and col are 1-based."""

    path: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.path
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where, which field, which rule, what we got, how to fix it."""

    loc: Loc | None
    field: str
    rule: str
    got: str | None = None
    fix: str | None = None

    def __str__(self) -> str:
        head = f"{self.loc}: " if self.loc is not None else ""
        fld = f"{self.field}: " if self.field else ""
        got = f" (got {self.got})" if self.got is not None else ""
        fix = f"; {self.fix}" if self.fix else ""
        return one_line(f"{head}{fld}{self.rule}{got}{fix}")


def one_line(text: str) -> str:
    """``text`` with its control and line-separator characters escaped (``\\n``, ``\\x1b``,
    ``\\u2028``): a diagnostic is exactly one line, whatever a file name or a value holds, so
    a hostile name cannot forge a second message or move the terminal's cursor."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else
                   c.encode("unicode_escape").decode("ascii") for c in text)


class NkigenError(Exception):
    """A user-facing error: one or more diagnostics. Never a bug in nkigen itself."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = (diagnostics,)
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


def unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics without repeats (same printed line), first occurrence kept, in order."""
    seen: set[str] = set()
    out = []
    for d in diagnostics:
        if str(d) not in seen:
            seen.add(str(d))
            out.append(d)
    return out


def by_position(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by line and column (stable; unlocated ones first)."""
    return sorted(diagnostics, key=lambda d: (d.loc.line, d.loc.col) if d.loc else (0, 0))


def error(
    loc: Loc | None, field: str, rule: str, got: object = None, fix: str | None = None
) -> NkigenError:
    """A single-diagnostic error, e.g. ``raise error(loc, "schedule.tiles.k", rule, 256, fix)``."""
    return NkigenError(Diagnostic(loc, field, rule, None if got is None else str(got), fix))
