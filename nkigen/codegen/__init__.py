"""Code generation: plan (Spec + Analysis -> KernelPlan) and render (KernelPlan -> source).

Public interface::

    plan_kernel(spec, analysis, target, schedule=None, dialect="nki") -> KernelPlan
    render(plan, dialect="nki") -> str
    generate(spec, target=None, dialect="nki", schedule=None) -> str
    format_plan(plan) -> str
    API_VERSION: dict[dialect, str]
"""

from __future__ import annotations

from nkigen.codegen.explain import format_plan
from nkigen.codegen.plan import KernelPlan
from nkigen.codegen.planner import plan_kernel
from nkigen.codegen.render import API_VERSION, render
from nkigen.ir import Schedule, Spec

__all__ = ["API_VERSION", "KernelPlan", "format_plan", "generate", "plan_kernel", "render"]


def _analyze(spec: Spec):
    try:
        from nkigen.analysis import analyze
    except ImportError:     # analysis stage not installed: the planner derives extents itself
        return None
    return analyze(spec)


def generate(spec: Spec, target: str | None = None, dialect: str = "nki",
             schedule: Schedule | None = None) -> str:
    """analyze + plan + render: NKI kernel source for ``spec``."""
    return render(plan_kernel(spec, _analyze(spec), target, schedule, dialect), dialect)
