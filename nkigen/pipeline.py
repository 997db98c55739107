"""The whole nkigen pipeline, one stage per line.

    specs/*.yaml
      -> load      nkigen.frontend.loader.load_document   YAML with positions + JSON Schema
      -> parse     nkigen.frontend.parser.parse_spec      statements -> frozen Spec IR (nkigen.ir)
      -> analyze   nkigen.analysis.analyze                sympy: extents, maps, bounds proofs
      -> tune      nkigen.tune.tune                       `schedule: auto` -> best legal Schedule
      -> plan      nkigen.codegen.plan_kernel             tiling, placement, engines -> KernelPlan
      -> render    nkigen.codegen.render                  Jinja per dialect -> NKI source
      -> verify    nkigen.sim.run + nkigen.reference      simulator vs float64 reference, cost
      -> library   nkigen.library.build.build             kernels, goldens, tests, manifest

Each stage is one function with a typed input and output; the helpers below chain them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nkigen.analysis import Analysis
    from nkigen.ir import Spec


def load_spec(path: str | Path) -> Spec:
    """load + parse: a spec file to validated IR (raises NkigenError with located diagnostics)."""
    from nkigen.frontend import load_spec as _load

    return _load(path)


def analyze(spec: Spec) -> Analysis:
    """analyze: sympy index analysis and proofs (raises NkigenError)."""
    from nkigen.analysis import analyze as _analyze

    return _analyze(spec)


def check(path: str | Path) -> tuple[Spec, Analysis]:
    """load + parse + analyze: everything `nkigen check` verifies."""
    spec = load_spec(path)
    return spec, analyze(spec)


def generate(spec: Spec, target: str | None = None, dialect: str = "nki") -> str:
    """analyze + plan + render: a spec to NKI kernel source."""
    from nkigen.codegen import generate as _generate

    return _generate(spec, target=target, dialect=dialect)
