"""Stage analyze (helper): build a :class:`Diagnostic` whose ``got`` is always text."""

from __future__ import annotations

from nkigen.diagnostics import Diagnostic, Loc


def diag(loc: Loc | None, field: str, rule: str, got: object = None,
         fix: str | None = None) -> Diagnostic:
    return Diagnostic(loc, field, rule, None if got is None else str(got), fix)
