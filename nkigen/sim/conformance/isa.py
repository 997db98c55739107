"""Conformance rows for instruction-level rules (``nki.isa``); see the package docstring."""

from __future__ import annotations

from nkigen.sim.conformance import Api, Rule, Status

__all__ = ["RULES", "Api", "Rule", "Status"]

RULES: tuple[Rule, ...] = ()
