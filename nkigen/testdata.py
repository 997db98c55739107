"""Golden-test data: generated inputs, size cases and tolerances (stage: verify).

Input: a :class:`nkigen.ir.Spec` and one assignment of its sizes. Output: deterministic input
arrays in their declared storage dtypes (:func:`make_inputs`), the ``(rtol, atol)`` a kernel's
outputs must meet against :mod:`nkigen.reference` (:func:`tolerance`), and the size assignments to
test (:func:`cases`). Both the library's generated test suite and ``nkigen verify`` use these, so
a kernel is always checked on the same data.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping

import numpy as np

from nkigen.dtypes import DType
from nkigen.ir import (
    Access,
    AssignOp,
    Call,
    Const,
    Dist,
    Func,
    InputDist,
    Neg,
    ParamRef,
    Reduce,
    ReduceKind,
    Scan,
    Spec,
    Where,
    accesses,
    walk,
)
from nkigen.reference import (
    evaluate,
    evaluate_all,
    fractional_integer_targets,
    index_extents,
    resolve_sizes,
    shape_of,
)

__all__ = ["FUNC_ERROR", "INTEGER_FLIP", "cases", "longest_reduction", "make_inputs",
           "finite_rms", "output_atol", "temp_sensitivity", "tolerance"]

# ---- inputs ------------------------------------------------------------------------------------

def _onehot(rng: np.random.Generator, d: InputDist, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape)
    hot = rng.integers(0, shape[-1], shape[:-1])
    np.put_along_axis(out, hot[..., None], 1.0, axis=-1)
    return out


def _causal(rng: np.random.Generator, d: InputDist, shape: tuple[int, ...]) -> np.ndarray:
    rows, cols = np.arange(shape[-2])[:, None], np.arange(shape[-1])[None, :]
    return np.broadcast_to((cols <= rows).astype(np.float64), shape).copy()


_SAMPLERS: dict[Dist, Callable[[np.random.Generator, InputDist, tuple[int, ...]], np.ndarray]] = {
    Dist.NORMAL: lambda rng, d, shape: rng.normal(d.a, d.b, shape),
    Dist.UNIFORM: lambda rng, d, shape: rng.uniform(d.a, d.b, shape),
    # spec language 1.1
    Dist.INTEGERS: lambda rng, d, shape: rng.integers(int(d.a), int(d.b), shape,
                                                      endpoint=True).astype(np.float64),
    Dist.POSITIVE: lambda rng, d, shape: rng.uniform(d.a, d.b, shape),
    Dist.ONEHOT: _onehot,
    Dist.ARANGE: lambda rng, d, shape: np.arange(math.prod(shape), dtype=np.float64)
    .reshape(shape),
    Dist.CAUSAL: _causal,
}

DOMAIN_FUNCS = (Func.LOG, Func.SQRT, Func.RSQRT, Func.RECIPROCAL)
"""Functions whose argument must stay positive: an input read inside one draws ``positive``
values by default."""


def _case_value(e: object, env: Mapping[str, int | float], default: float) -> float:
    if e is None:
        return default
    import sympy
    x = sympy.sympify(e)
    return float(x.xreplace({s: env[s.name] for s in x.free_symbols if s.name in env}))


def default_dist(spec: Spec, name: str) -> InputDist:
    """The distribution of input ``name`` when the spec declares none (spec language 1.1):
    integers in [-8, 8] ([0, 16] unsigned) for integer dtypes, so gathers and labels see small
    valid ids only when the spec says so; uniform [0.5, 2] for inputs read inside
    log/sqrt/rsqrt/reciprocal; else N(0, 1)."""
    t = spec.tensor(name)
    if t.dtype.is_integer:
        lo = 0.0 if t.dtype is DType.uint8 else -8.0
        return InputDist(Dist.INTEGERS, lo, lo + 16.0)
    for st in spec.statements:
        for x in walk(st.rhs):
            if isinstance(x, Call) and x.func in DOMAIN_FUNCS and any(
                    isinstance(a, Access) and a.tensor == name for a in walk(x.args[0])):
                return InputDist(Dist.POSITIVE, 0.5, 2.0)
    return InputDist()


def _stream(seed: int, name: str) -> np.random.Generator:
    """One independent, stable random stream per (seed, input name); never Python ``hash()``."""
    return np.random.default_rng([seed % 2**63, zlib.crc32(name.encode("utf-8"))])


def make_inputs(
    spec: Spec, sizes: Mapping[str, int], seed: int | None = None
) -> dict[str, np.ndarray]:
    """Deterministic inputs for one case, keyed by name in argument order.

    Each input is drawn from its ``tests.inputs`` distribution (default N(0, 1)) with the stream
    of ``(seed, input name)`` (``seed`` defaults to ``tests.seed``), so adding an input never
    changes the others' data. Values are clipped to the dtype's finite range and stored in the
    declared dtype (``ml_dtypes`` arrays for bfloat16 and float8).
    """
    seed = spec.tests.seed if seed is None else seed
    env = {**spec.param_values(), **resolve_sizes(spec, sizes)}
    out: dict[str, np.ndarray] = {}
    for t in spec.inputs:
        dist = spec.tests.declared(t.name) or default_dist(spec, t.name)
        if dist.a_expr is not None or dist.b_expr is not None:     # 1.1: size-expression bounds
            dist = InputDist(dist.dist, _case_value(dist.a_expr, env, dist.a),
                             _case_value(dist.b_expr, env, dist.b))
        values = _SAMPLERS[dist.dist](_stream(seed, t.name), dist, shape_of(t, env))
        lowest, finite = t.dtype.value_range
        out[t.name] = t.dtype.round(np.clip(values, lowest, finite)).astype(t.dtype.np)
    return out


# ---- tolerances ----------------------------------------------------------------------------------

ENGINE_EPS = DType.float32.eps
"""Engines compute in fp32 and PSUM accumulates in fp32 (design.md, the simulator)."""

STORE_FLIPS = 4.0
"""Storage roundings a result may differ by: the kernel and the reference round the same values
to the same dtypes, but fp32 engine math can land a value on the other side of a rounding
boundary; a flip in a temp, in a reduction of it and in the output compound to about 3 ulps."""

ACC_FACTOR = 8.0
"""Slack on the fp32 summation error, which grows like ``eps * sqrt(L)`` relative to the result
(random-walk rounding of L partial sums; tiled PSUM accumulation is no worse)."""

FUNC_ERROR: dict[Func, float] = {
    **{f: 2.0**-16 for f in (Func.EXP, Func.LOG, Func.TANH, Func.SIGMOID, Func.GELU,
                             Func.GELU_TANH, Func.SILU)},
    **{f: 2.0**-18 for f in (Func.SQRT, Func.RSQRT, Func.RECIPROCAL)},
    **{f: 0.0 for f in (Func.RELU, Func.SQUARE, Func.ABS, Func.MAXIMUM, Func.MINIMUM)},
}
"""Relative error budget per element-wise function: ScalarE evaluates transcendental functions
as piecewise polynomials (nki-reference.md 2.5), which the fp32 simulator does not model; a
real device must still pass. Exact functions (relu, abs, ...) get nothing."""


def longest_reduction(spec: Spec, sizes: Mapping[str, int]) -> int:
    """The largest number of terms summed into one value: the product of the extents of a
    ``+=`` statement's summed indices or of a ``sum``/``mean`` call's indices (at least 1)."""
    bound = resolve_sizes(spec, sizes)
    longest = 1
    for stmt in spec.statements:
        ext = index_extents(spec, stmt, bound)
        groups = [stmt.sum_indices] if stmt.op is AssignOp.ACCUMULATE else []
        groups += [
            r.indices for r in walk(stmt.rhs)
            if isinstance(r, Reduce) and r.op in (ReduceKind.SUM, ReduceKind.MEAN)
        ]
        groups += [(r.index,) for r in walk(stmt.rhs) if isinstance(r, Scan)]   # 1.1 scans
        for g in groups:
            longest = max(longest, math.prod(ext[i] for i in set(g)))
    return longest


def _func_error(spec: Spec) -> float:
    used = {c.func for st in spec.statements for c in walk(st.rhs) if isinstance(c, Call)}
    return max((FUNC_ERROR[f] for f in used), default=0.0)


def fills(spec: Spec, name: str) -> set[float]:
    """The number literals a statement writing ``name`` selects as a ``where`` arm: values the
    kernel stores as they are (a masked score's -30000), not computed."""
    found = {_literal(arm) for st in spec.statements if st.target == name
             for w in walk(st.rhs) if isinstance(w, Where) for arm in (w.a, w.b)}
    return {v for v in found if v is not None}


def _literal(e) -> float | None:
    """The value of a number literal, a param or a negated one; None for anything else."""
    if isinstance(e, (Const, ParamRef)):
        return float(e.value)
    if isinstance(e, Neg):
        v = _literal(e.operand)
        return None if v is None else -v
    return None


def computed(spec: Spec, name: str, values: np.ndarray) -> np.ndarray:
    """The elements of output ``name``'s reference that are not a :func:`fills` literal (all of
    them when every element is one): the magnitudes ``atol`` scales with. A fill carries no
    rounding error, and a large one (a mask's -30000 beside scores of order 1) would otherwise
    set an ``atol`` as large as the scores themselves: a truncated score passed."""
    lits = fills(spec, name)
    if not lits:
        return values
    a = np.asarray(values)
    keep = ~np.isin(a, np.array(sorted(lits), dtype=np.float64))
    return a[keep] if keep.any() else a


def finite_rms(values: object) -> float:
    """Root-mean-square of the finite elements (1.0 if none), without overflowing: outputs that
    overflow to +-inf or hold NaN must not make ``atol`` infinite (which would pass anything)."""
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return 1.0
    scale = float(np.max(np.abs(a)))
    if scale == 0.0:
        return 0.0
    return scale * float(np.sqrt(np.mean(np.square(a / scale))))


def tolerance(
    spec: Spec,
    sizes: Mapping[str, int],
    reference: Mapping[str, np.ndarray] | None = None,
) -> tuple[float, float]:
    """``(rtol, atol)`` for ``|kernel - reference| <= atol + rtol * |reference|``.

    ``tests.tolerance`` wins when given (a missing half is derived). Otherwise, with ``eps_s``
    the epsilon of the coarsest dtype among temps and outputs, ``eps_e`` the fp32 engine
    epsilon, ``L`` the longest reduction (:func:`longest_reduction`) and ``f`` the largest
    :data:`FUNC_ERROR` of the functions the spec calls:

    * ``rtol = 4 eps_s + 8 eps_e sqrt(L) + f``: a few storage-rounding flips (one ulp each,
      relative to the rounded value), the fp32 summation error relative to the sum, and the
      hardware's approximation of transcendental functions;
    * ``atol = rms * (4 eps_t + 8 eps_e sqrt(L) + f)``, with ``eps_t`` the epsilon of the
      coarsest temp (fp32 if none) and ``rms`` the largest root-mean-square of the reference
      outputs (``reference``, else computed from :func:`make_inputs` for this case): the same
      errors, for elements that cancel to near zero (a matmul output near a sign change,
      ``+ beta`` after a normalisation), are relative to the typical magnitude, not to the
      element; a ``where`` arm's literal (a mask fill) is stored, not computed, and does not
      count in ``rms`` (:func:`computed`). An output's own rounding is purely relative and
      stays out of ``atol``, unless another statement reads that output (then it is an
      intermediate like a temp and its epsilon counts in ``eps_t``).

    Input dtypes do not count: kernel and reference round the same stored inputs identically,
    so a bfloat16 or float8 input with fp32 accumulation and output gets an fp32 tolerance.
    For fp32 temps and output with L = 512 this is rtol ~ 2.2e-5; with a bfloat16 output
    ~ 3.1e-2 (atol then ~ 3e-5 x rms when the temps are fp32). A missing bias, a wrong
    transpose, a wrong scale or a dropped partial tile give errors of the order of the outputs
    themselves and fail.
    """
    given = (spec.tests.rtol, spec.tests.atol)
    if given[0] is not None and given[1] is not None:
        return float(given[0]), float(given[1])
    eps_s = max(t.dtype.eps for t in spec.outputs + spec.temps)
    length = longest_reduction(spec, sizes)
    engine = ACC_FACTOR * ENGINE_EPS * math.sqrt(length) + _func_error(spec)
    rtol = STORE_FLIPS * eps_s + engine
    if reference is None:
        reference = evaluate(spec, make_inputs(spec, sizes), sizes)
    rms = max((finite_rms(computed(spec, t.name, reference[t.name])) for t in spec.outputs
               if np.size(reference[t.name])), default=1.0)
    # an output a later statement reads is an intermediate too: its storage rounding (one
    # flip where kernel and reference round differently) reaches that statement's result,
    # where it can cancel to near zero (z[i] += y[i] with y bfloat16 and z float32)
    read = {a.tensor for st in spec.statements for a in accesses(st.rhs)}
    eps_t = max([t.dtype.eps for t in spec.temps] +
                [t.dtype.eps for t in spec.outputs if t.name in read], default=ENGINE_EPS)
    atol = (STORE_FLIPS * eps_t + engine) * max(rms, float(np.finfo(np.float32).tiny))
    return (
        float(given[0]) if given[0] is not None else rtol,
        float(given[1]) if given[1] is not None else atol,
    )


INTEGER_FLIP = 1.0
"""Absolute slack of an integer output whose value before rounding is fractional: the kernel
rounds its float32 result (the engines compute in fp32: SH nki/api/nki.api.shared.rst
"Supported Math Operators", nki 0.3), the reference its float64 one, and near a half-integer
the two land on neighbouring integers. One unit is the integer dtype's spacing: the same one
storage flip a float output is allowed, relative there, absolute here (an integer dtype's
``eps`` is 0, so ``rtol``/``atol`` alone allowed no flip: an int32 conv1d of float inputs
failed by exactly 1). It also covers the float-to-integer rounding mode, which the NKI pages
name nowhere (SH nki/api/nki.api.shared.rst, nki 0.3: data types and the float32 intermediate,
no rounding rule): round-half-even (the reference and the simulator), half-away or toward zero
differ from each other by at most one on a fractional value."""


def output_atol(spec: Spec, inputs: Mapping[str, np.ndarray], sizes: Mapping[str, int],
                atol: float) -> dict[str, float]:
    """The outputs whose ``atol`` differs from the case's: an integer output some statement
    gives a fractional value before rounding (:func:`nkigen.reference.fractional_integer_targets`)
    gets at least :data:`INTEGER_FLIP`; every other output keeps ``atol`` (an integer output
    computed from integers is compared as tightly as before)."""
    frac = fractional_integer_targets(spec, inputs, sizes)
    return {t.name: max(atol, INTEGER_FLIP) for t in spec.outputs
            if t.name in frac and atol < INTEGER_FLIP}


def temp_sensitivity(spec: Spec, sizes: Mapping[str, int],
                     inputs: Mapping[str, np.ndarray] | None = None) -> float:
    """How far the outputs move when every floating-point temp lands :data:`STORE_FLIPS` ulps
    off its rounded value (either way): the larger root-mean-square of the finite output
    changes of the two evaluations (:func:`nkigen.reference.evaluate_all` ``perturb_temps``)
    from the unperturbed one -- the measured counterpart of ``rms * 4 eps_t`` -- with the
    outputs unrounded on both sides (their own rounding is ``rtol``'s share), on ``inputs``
    (default: this case's :func:`make_inputs`).

    The default ``atol`` charges a temp's flips at the outputs' own scale (``rms * 4 eps_t``),
    which assumes the outputs are no more sensitive to a temp than to themselves. Where the
    data make a spec ill-conditioned -- a layernorm row whose mean is 1000 times its spread,
    or whose variance is far below ``eps``, so a one-ulp mean is amplified by ``rsqrt(eps)`` --
    the kernel's fp32 temps differ from the float64 reference's by exactly such flips, and the
    honest tolerance is the measured consequence, not the assumed one. The build widens a
    derived ``atol`` to this value when the kernel misses the formula's (three more reference
    evaluations: measured only then; for every spec in specs/ it is below the formula's)."""
    if inputs is None:
        inputs = make_inputs(spec, sizes)
    base = evaluate_all(spec, inputs, sizes, exact_outputs=True)
    worst = 0.0
    for sign in (1.0, -1.0):
        moved = evaluate_all(spec, inputs, sizes, perturb_temps=sign * STORE_FLIPS,
                             exact_outputs=True)
        for t in spec.outputs:
            with np.errstate(invalid="ignore", over="ignore"):
                d = moved[t.name] - base[t.name]
            worst = max(worst, finite_rms(d) if np.size(d) else 0.0)
    return worst


# ---- cases ---------------------------------------------------------------------------------------

def cases(spec: Spec) -> list[dict[str, int]]:
    """The size assignments to test (:func:`nkigen.analysis.cases.spec_cases`, which
    ``nkigen check`` reads without loading numpy)."""
    from nkigen.analysis.cases import spec_cases

    return spec_cases(spec)
