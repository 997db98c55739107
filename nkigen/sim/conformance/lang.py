"""Conformance rows for language, programming-model and nki.errors rules; see the package docstring."""

from __future__ import annotations

from nkigen.sim.conformance import Api, Rule, Status

__all__ = ["RULES", "Api", "Rule", "Status"]

RULES: tuple[Rule, ...] = ()
