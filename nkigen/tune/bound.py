"""Tuner stage 2b (bound): a candidate's plan -> a provable lower bound on its modeled latency.

Computed from the plan alone, without simulating, so the search can skip candidates that cannot
win (branch and bound, :mod:`nkigen.tune.search`). The bound is the TensorE time the main
contraction needs; 0.0 (no information) for every other kind of kernel.

Why it is a lower bound of the cost model's latency (:mod:`nkigen.sim.cost`):

1. TensorE runs its instructions one at a time in program order, each occupying it for
   ``instr_cycles + issue_cycles`` (``cost.schedule``), and the latency is the end of the last
   instruction, so latency >= the sum of the occupancies of any set of TensorE instructions.
2. An ``nc_matmul`` of ``kp`` contraction rows (x2 with ``double_row``: S29 trainium2_arch
   "Double FP8 Matmul Performance"), ``ns`` stationary and ``nm`` moving columns computes at most
   ``kp * ns * nm`` multiply-adds and costs at least ``max(min(64, ns), nm) >= nm`` cycles
   (S25 nki.isa.nc_matmul cost; fp32 costs 2-4x that, more only helps) plus ``issue_cycles``.
3. The main statement of a ``matmul``-strategy plan is computed by the plan's ``Matmul`` nodes:
   every one of its ``prod(extents)`` products is done by some ``nc_matmul`` (an instruction the
   model elides as a recomputation repeats the products of one it keeps). With ``cap`` the
   largest ``kp * ns * nm`` and ``row`` the largest ``kp * ns`` over the plan's ``Matmul`` nodes
   (each size bounded by its tile size in the plan, else by the hardware maximum), those
   instructions number at least ``macs / cap`` and their moving columns sum to at least
   ``macs / row``: TensorE time >= ``issue_cycles * macs / cap + macs / row`` cycles.

The result is lowered by a margin of 0.001 us so it also bounds the latency as reported
(rounded to 0.001 us, :func:`nkigen.tune.measure.simulate_source`). tests/test_tune_bound.py
checks bound <= simulated latency for every candidate of several specs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import sympy

from nkigen import hw

if TYPE_CHECKING:
    from nkigen.analysis import Analysis
    from nkigen.codegen.plan import KernelPlan, Matmul

REPORT_ROUNDING_US = 0.001     # simulate_source reports latencies rounded to 0.001 us
_INF = math.inf


def _upper(expr, env: Mapping[str, object], sizes: Mapping[str, int], depth: int = 0) -> float:
    """An upper bound of ``expr`` (an IntExpr over sizes and ``Let`` names), or inf. Read off
    the expression tree (numbers, names, Min, Max), never rebuilt: sympy's Min simplification
    costs more than the whole bound."""
    e = expr if isinstance(expr, sympy.Basic) else sympy.sympify(expr)
    if e.is_Number:
        return float(e)
    if e.is_Symbol:
        name = str(e)
        if name in sizes:
            return float(sizes[name])
        if name in env and depth < 32:
            return _upper(env[name], env, sizes, depth + 1)
        return _INF
    if isinstance(e, sympy.Min):
        return min(_upper(a, env, sizes, depth + 1) for a in e.args)
    if isinstance(e, sympy.Max):
        return max(_upper(a, env, sizes, depth + 1) for a in e.args)
    return _INF


def _matmuls(nodes, env: dict) -> Iterator[tuple[Matmul, dict]]:
    """Every ``Matmul`` node with the ``Let`` values in scope where it stands."""
    from nkigen.codegen.plan import If, Let, Loop, Matmul

    env = dict(env)
    for n in nodes:
        if isinstance(n, Let):
            env[n.name] = n.value
        elif isinstance(n, Matmul):
            yield n, env
        elif isinstance(n, Loop):
            yield from _matmuls(n.body, env)
        elif isinstance(n, If):
            yield from _matmuls(n.then, env)
            yield from _matmuls(n.orelse, env)
        else:
            for f in ("body", "then", "orelse"):
                sub = getattr(n, f, None)
                if isinstance(sub, tuple):
                    yield from _matmuls(sub, env)


def _size(dim, env, sizes) -> float:
    from nkigen.codegen.plan import Index

    return 1.0 if isinstance(dim, Index) else _upper(dim.size, env, sizes)


def tensor_bound_cycles(analysis: Analysis, plan: KernelPlan,
                        sizes: Mapping[str, int]) -> float:
    """The TensorE cycles (occupancy, issue included) the main statement needs at ``sizes``
    (see the module docstring); 0.0 when the plan is not a ``matmul`` strategy for it."""
    from nkigen.analysis.sizes import eval_size_expr
    from nkigen.sim.cost_rules import DEFAULT_PARAMS

    main = analysis.main_statement
    if not any(main in st.statements and st.strategy == "matmul" for st in plan.stages):
        return 0.0
    subs = {k: int(v) for k, v in sizes.items()}
    cap = row = 0.0
    for mm, env in _matmuls(plan.body, {}):
        kp = min(_size(mm.stationary.dims[0], env, subs) if mm.stationary.dims else _INF,
                 float(hw.PMAX))
        rows = mm.dst.dims[0] if mm.dst.dims else None
        ns = min(_size(rows, env, subs) if rows is not None else _INF,
                 float(hw.GEMM_STATIONARY_FMAX))
        nm = 1.0
        for d in mm.dst.dims[1:]:
            nm *= _size(d, env, subs)
        nm = min(nm, float(hw.GEMM_MOVING_FMAX)) if mm.dst.dims[1:] else \
            float(hw.GEMM_MOVING_FMAX)
        kp *= 2 if mm.double_row else 1
        cap, row = max(cap, kp * ns * nm), max(row, kp * ns)
    if cap == 0.0:
        return 0.0
    macs = 1
    for li in analysis.main.loop_indices:
        ext = dict(analysis.extents).get(li.name)
        v = eval_size_expr(ext, sizes) if ext is not None else None
        if v is None:
            return 0.0
        macs *= int(v)
    return DEFAULT_PARAMS.issue_cycles * macs / cap + macs / row


def latency_bound_us(analysis: Analysis, plan: KernelPlan | None, sizes: Mapping[str, int],
                     target: str) -> float:
    """A lower bound (us) on the latency a cost-only simulation of ``plan``'s kernel reports at
    ``sizes`` on ``target``; 0.0 when nothing is known."""
    if plan is None:
        return 0.0
    cycles = tensor_bound_cycles(analysis, plan, sizes)
    if cycles <= 0.0:
        return 0.0
    us = cycles / hw.target(target).clock_ghz(hw.Engine.TENSOR) / 1000.0
    return max(0.0, us - REPORT_ROUNDING_US)
