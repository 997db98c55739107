"""The float64 reference oracle (stage: verify).

Input: a :class:`nkigen.ir.Spec`, its input arrays and (optionally) its sizes. Output: the
spec's outputs as float64 arrays holding dtype-rounded values, keyed by name in declaration
order. This is the "Meaning" section of the spec language, executed literally:

* each input is first rounded to its declared dtype;
* statements run in order; ``=`` defines the target at every point of its index space, ``+=``
  sums the right-hand side over ``Statement.sum_indices`` (the einsum rule) and adds the sum to
  the target's current value if an earlier statement wrote it, else starts from zero;
* reductions ``sum/max/min/mean(e, j, ...)`` reduce over the named indices only;
* each temp and output is rounded to its declared dtype when its statement completes.

The oracle is deliberately independent of ``nkigen.analysis`` and ``nkigen.codegen``: it derives
index extents itself (a direct use ``a[m, k]`` gives ``k`` the extent of that dimension, otherwise
``ranges``) and evaluates sizes and affine index expressions with plain sympy substitution.

Values are NumPy arrays with named axes (one name per index). Tensor accesses are gathers with
index arrays broadcast over the access's own indices, so the full index space of a statement is
only materialised when an element-wise expression really needs it. Sums of products (the usual
contraction ``acc[m, n] += a[m, k] * b[k, n]`` and ``sum(x[m, k] * w[k], k)``) go through
``np.einsum`` on the gathered factors.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Call,
    CmpOp,
    Compare,
    Const,
    Expr,
    Func,
    IndexValue,
    Neg,
    ParamRef,
    Reduce,
    ReduceKind,
    Scan,
    SizeRef,
    Spec,
    Statement,
    TensorDecl,
    Where,
    accesses,
    expr_indices,
    statement_indices,
    walk,
)

__all__ = [
    "FUNCS",
    "REDUCERS",
    "evaluate",
    "evaluate_all",
    "index_extents",
    "resolve_sizes",
    "shape_of",
]

# ---- element-wise functions (registry: one entry per Func) ---------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def _erf_f64(x: np.ndarray) -> np.ndarray:
    """Vectorised ``math.erf`` (libm accuracy; NumPy has no erf)."""
    x = np.asarray(x)
    return np.asarray(_erf(x.astype(np.float64)), dtype=np.float64).astype(x.dtype, copy=False)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + _erf_f64(x / np.sqrt(2.0).astype(x.dtype)))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    c = np.sqrt(2.0 / np.pi).astype(x.dtype)
    return 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x * x * x)))


FUNCS: dict[Func, Callable[..., np.ndarray]] = {
    Func.EXP: np.exp,
    Func.LOG: np.log,
    Func.SQRT: np.sqrt,
    Func.RSQRT: lambda x: 1 / np.sqrt(x),
    Func.RECIPROCAL: lambda x: 1 / x,
    Func.TANH: np.tanh,
    Func.SIGMOID: _sigmoid,
    Func.RELU: lambda x: np.maximum(x, 0),
    Func.GELU: _gelu,
    Func.GELU_TANH: _gelu_tanh,
    Func.SILU: lambda x: x * _sigmoid(x),
    Func.SQUARE: np.square,
    Func.ABS: np.abs,
    Func.MAXIMUM: np.maximum,
    Func.MINIMUM: np.minimum,
}

BINOPS: dict[BinOpKind, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    BinOpKind.ADD: np.add,
    BinOpKind.SUB: np.subtract,
    BinOpKind.MUL: np.multiply,
    BinOpKind.DIV: np.divide,
}

# Comparisons (spec language 1.1): 1.0 where the relation holds, else 0.0.
CMPS: dict[CmpOp, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    CmpOp.LT: np.less, CmpOp.LE: np.less_equal, CmpOp.EQ: np.equal,
    CmpOp.NE: np.not_equal, CmpOp.GE: np.greater_equal, CmpOp.GT: np.greater,
}

def _select(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``where(c, a, b)``: ``a`` where ``c`` is nonzero."""
    return np.asarray(np.where(np.not_equal(c, 0), a, b))


# Non-sum reductions: reduce an array over the given axis positions (sum/mean use einsum).
REDUCERS: dict[ReduceKind, Callable[[np.ndarray, tuple[int, ...]], np.ndarray]] = {
    ReduceKind.SUM: lambda x, ax: np.sum(x, axis=ax),
    ReduceKind.MEAN: lambda x, ax: np.mean(x, axis=ax),
    ReduceKind.MAX: lambda x, ax: np.max(x, axis=ax),
    ReduceKind.MIN: lambda x, ax: np.min(x, axis=ax),
    # spec language 1.1: the first index of the extreme (NumPy's argmax/argmin are first-hit)
    ReduceKind.ARGMAX: lambda x, ax: np.argmax(x, axis=ax[0]).astype(np.float64),
    ReduceKind.ARGMIN: lambda x, ax: np.argmin(x, axis=ax[0]).astype(np.float64),
}


# ---- sizes and extents ---------------------------------------------------------------------

def _num_env(spec: Spec, sizes: Mapping[str, int]) -> dict[str, int | float]:
    env: dict[str, int | float] = dict(spec.param_values())
    env.update(sizes)
    return env


def _subs(expr: object, env: Mapping[str, int | float]) -> sympy.Expr:
    """Substitute every free symbol named in ``env`` by its value (matched by name)."""
    e = sympy.sympify(expr)
    repl = {s: env[s.name] for s in e.free_symbols if s.name in env}
    return e.xreplace({k: sympy.Integer(v) if isinstance(v, int) else sympy.Float(v)
                       for k, v in repl.items()}) if repl else e


def _to_int(expr: object, env: Mapping[str, int | float], what: str) -> int:
    e = sympy.simplify(_subs(expr, env))
    if e.free_symbols or not e.is_number or not e.is_integer:
        raise ValueError(f"{what}: cannot evaluate {expr} to an integer with {dict(env)}")
    return int(e)


def resolve_sizes(
    spec: Spec,
    sizes: Mapping[str, int] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
) -> dict[str, int]:
    """All sizes of ``spec`` (free and derived) as integers, in declaration order.

    Free sizes come from ``sizes`` or, when missing there, from the input shapes: a dimension
    whose declared shape entry is a bare size name binds that size; a remaining size that is the
    only unknown of a shape expression (``"H * 2"``) is solved for. Derived sizes are computed
    from their ``value`` expressions; a derived size passed in ``sizes`` must agree.
    """
    given = dict(sizes or {})
    known: dict[str, int] = {s.name: int(given[s.name]) for s in spec.free_sizes if s.name in given}
    if inputs is not None:
        _bind_from_inputs(spec, inputs, known)
    derived = [s for s in spec.sizes if s.derived]
    params = spec.param_values()
    for _ in range(len(derived) + 1):   # derived sizes may depend on each other
        for s in derived:
            if s.name in known:
                continue
            e = _subs(s.value, {**params, **known})
            if not e.free_symbols:
                known[s.name] = _to_int(e, {}, f"sizes.{s.name}.value")
    missing = [s.name for s in spec.sizes if s.name not in known]
    if missing:
        raise ValueError(f"{spec.name}: cannot bind sizes {missing}; pass them in `sizes`")
    for s in derived:
        if s.name in given and int(given[s.name]) != known[s.name]:
            raise ValueError(
                f"{spec.name}: derived size {s.name} = {s.value} is {known[s.name]}, "
                f"but {given[s.name]} was passed"
            )
    return {s.name: known[s.name] for s in spec.sizes}


def _bind_from_inputs(spec: Spec, inputs: Mapping[str, np.ndarray], known: dict[str, int]) -> None:
    pending: list[tuple[sympy.Expr, int]] = []
    free = {s.name for s in spec.free_sizes}
    for t in spec.inputs:
        if t.name not in inputs:
            continue
        actual = np.shape(inputs[t.name])
        if len(actual) != t.rank:
            raise ValueError(f"input {t.name}: rank {len(actual)}, declared {t.rank}")
        for entry, n in zip(t.shape, actual):
            e = sympy.sympify(entry)
            if isinstance(e, sympy.Symbol) and e.name in free and e.name not in known:
                known[e.name] = int(n)
            elif e.free_symbols:
                pending.append((e, int(n)))
    for e, n in pending:   # solve single-unknown shape expressions such as "H * 2"
        unknown = [s for s in e.free_symbols if s.name not in known]
        if len(unknown) == 1 and unknown[0].name in free:
            sol = sympy.solve(sympy.Eq(_subs(e, known), n), unknown[0])
            ints = [int(v) for v in sol if v.is_integer and v > 0]
            if len(ints) == 1:
                known[unknown[0].name] = ints[0]


def shape_of(t: TensorDecl, env: Mapping[str, int | float]) -> tuple[int, ...]:
    """The concrete shape of tensor ``t`` for the given sizes (and params)."""
    return tuple(_to_int(d, env, f"{t.name}.shape") for d in t.shape)


def index_extents(
    spec: Spec, stmt: Statement, sizes: Mapping[str, int]
) -> dict[str, int]:
    """Extent of every index of ``stmt``: left-hand dims, then direct uses, then ``ranges``."""
    env = _num_env(spec, sizes)
    ext: dict[str, int] = {}
    target_shape = shape_of(spec.tensor(stmt.target), env)
    for name, n in zip(stmt.lhs, target_shape):
        ext[name] = n
    for acc in accesses(stmt.rhs):
        shape = shape_of(spec.tensor(acc.tensor), env)
        for dim, e in enumerate(acc.indices):
            e = sympy.sympify(e)
            if isinstance(e, sympy.Symbol) and e.name not in env:
                if e.name in ext and ext[e.name] != shape[dim]:
                    raise ValueError(
                        f"{stmt.text}: index {e.name} has extent {ext[e.name]} and "
                        f"{shape[dim]} ({acc.tensor} dim {dim})"
                    )
                ext[e.name] = shape[dim]
    ranges = dict(spec.ranges)
    for name in statement_indices(stmt):
        if name not in ext:
            if name not in ranges:
                raise ValueError(f"{stmt.text}: index {name} has no direct use and no range")
            ext[name] = _to_int(ranges[name], env, f"ranges.{name}")
    return ext


# ---- named-axis values -----------------------------------------------------------------------

@dataclass(frozen=True)
class _Val:
    """An array whose axes are named by indices (``axes`` has one name per dimension)."""

    data: np.ndarray
    axes: tuple[str, ...]


class _StatementEval:
    """Evaluates the right-hand side of one statement over its index space."""

    def __init__(
        self,
        spec: Spec,
        stmt: Statement,
        values: Mapping[str, np.ndarray],
        sizes: Mapping[str, int],
        ftype: type[np.floating],
        arg_nans: list[ArgNaN] | None = None,
    ):
        self.spec = spec
        self.stmt = stmt
        self.values = values
        self.arg_nans = arg_nans
        self.env = _num_env(spec, sizes)
        self.ftype = ftype
        self.ext = index_extents(spec, stmt, sizes)
        self.order = {n: i for i, n in enumerate(statement_indices(stmt))}

    # -- helpers --
    def _sorted(self, names: set[str] | tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(names), key=self.order.__getitem__))

    def _expand(self, v: _Val, axes: tuple[str, ...]) -> np.ndarray:
        """``v`` transposed and reshaped so it broadcasts against arrays with ``axes``."""
        present = [a for a in axes if a in v.axes]
        data = np.transpose(v.data, [v.axes.index(a) for a in present]) if v.axes else v.data
        shape = [self.ext[a] if a in v.axes else 1 for a in axes]
        return np.reshape(data, shape)

    def _scalar(self, x: float) -> _Val:
        return _Val(np.asarray(x, dtype=self.ftype), ())

    # -- evaluation --
    def eval(self, e: Expr) -> _Val:
        return _EVALUATORS[type(e)](self, e)

    def _access(self, a: Access) -> _Val:
        if a.indirect:
            return self._gather(a)
        arr = self.values[a.tensor]
        exprs = [sympy.expand(_subs(e, self.env)) for e in a.indices]
        names = self._sorted({s.name for e in exprs for s in e.free_symbols})
        if _is_identity(exprs, names, arr, self.ext):
            # plain a[i, j, ...] over full dimensions: a view, axes permuted into canonical order
            axes = tuple(s.name for s in exprs)
            return _Val(arr, axes) if axes == names else _Val(
                np.transpose(arr, [axes.index(n) for n in names]), names
            )
        grids = {
            n: np.arange(self.ext[n]).reshape([self.ext[n] if m == n else 1 for m in names])
            for n in names
        }
        index_arrays = []
        for dim, e in enumerate(exprs):
            idx = np.asarray(_index_values(e, grids, f"{self.stmt.text}: index "
                                           f"{a.indices[dim]}"))
            if idx.size and (idx.min() < 0 or idx.max() >= arr.shape[dim]):
                raise IndexError(
                    f"{self.stmt.text}: {a.tensor} dim {dim} index {a.indices[dim]} spans "
                    f"[{idx.min()}, {idx.max()}] outside [0, {arr.shape[dim] - 1}]"
                )
            index_arrays.append(idx)
        data = arr[tuple(index_arrays)] if index_arrays else arr
        full = tuple(self.ext[n] for n in names)
        return _Val(np.broadcast_to(data, full), names)

    def _gather(self, a: Access) -> _Val:
        """``table[ids[t], d]`` (spec language 1.1): the gathered dimension takes the ids'
        values; an id outside the dimension is an error (IndexError naming the access)."""
        arr = self.values[a.tensor]
        ids = {d: self._access(inner) for d, inner in a.indirect}
        exprs = [sympy.expand(_subs(e, self.env)) for e in a.indices]
        names = self._sorted({s.name for d, e in enumerate(exprs) if d not in ids
                              for s in e.free_symbols} | {n for v in ids.values() for n in v.axes})
        grids = {
            n: np.arange(self.ext[n]).reshape([self.ext[n] if m == n else 1 for m in names])
            for n in names
        }
        index_arrays = []
        for dim, e in enumerate(exprs):
            if dim in ids:
                raw = self._expand(ids[dim], names)
                idx = np.asarray(np.rint(raw), dtype=np.int64)
                what = f"id from {a.indirect[0][1].tensor}"
            else:
                idx = np.asarray(_index_values(e, grids, f"{self.stmt.text}: index {e}"))
                what = f"index {a.indices[dim]}"
            if idx.size and (idx.min() < 0 or idx.max() >= arr.shape[dim]):
                bad = int(idx.min() if idx.min() < 0 else idx.max())
                raise IndexError(
                    f"{self.stmt.text}: {a.tensor} dim {dim} {what} reaches {bad}, outside "
                    f"[0, {arr.shape[dim] - 1}]")
            index_arrays.append(idx)
        full = tuple(self.ext[n] for n in names)
        return _Val(np.broadcast_to(arr[tuple(index_arrays)], full), names)

    def _index_value(self, iv: IndexValue) -> _Val:
        """An index expression as a number: its integer values over its indices' grids."""
        e = sympy.expand(_subs(iv.expr, self.env))
        names = self._sorted({s.name for s in e.free_symbols})
        grids = {
            n: np.arange(self.ext[n]).reshape([self.ext[n] if m == n else 1 for m in names])
            for n in names
        }
        data = _index_values(e, grids, f"{self.stmt.text}: {iv.expr}")
        full = tuple(self.ext[n] for n in names)
        return _Val(np.asarray(np.broadcast_to(data, full), self.ftype), names)

    def _compare(self, c: Compare) -> _Val:
        fn = CMPS[c.op]
        return self._combine(lambda a, b: fn(a, b).astype(self.ftype),
                             [self.eval(c.lhs), self.eval(c.rhs)])

    def _where(self, w: Where) -> _Val:
        return self._combine(_select,
                             [self.eval(w.cond), self.eval(w.a), self.eval(w.b)])

    def _scan(self, s: Scan) -> _Val:
        """``out[t] = a[t] * out[t - 1] + b[t]`` along ``s.index``, ``out[-1] = initial``,
        evaluated step by step in float64 (then rounded with the statement's target)."""
        a, b, init = self.eval(s.a), self.eval(s.b), self.eval(s.initial)
        axes = self._sorted({*a.axes, *b.axes, *init.axes, s.index})
        shape = tuple(self.ext[n] for n in axes)
        k = axes.index(s.index)
        av = np.moveaxis(np.broadcast_to(self._expand(a, axes), shape), k, -1)
        bv = np.moveaxis(np.broadcast_to(self._expand(b, axes), shape), k, -1)
        head = list(shape)
        head[k] = 1
        prev = np.moveaxis(np.broadcast_to(self._expand(init, axes), head), k, -1)[..., 0]
        out = np.empty(av.shape, dtype=self.ftype)
        for i in range(av.shape[-1]):
            prev = av[..., i] * prev + bv[..., i]
            out[..., i] = prev
        return _Val(np.moveaxis(out, -1, k), axes)

    def _binop(self, b: BinOp) -> _Val:
        return self._combine(BINOPS[b.op], [self.eval(b.lhs), self.eval(b.rhs)])

    def _combine(self, fn: Callable[..., np.ndarray], vals: list[_Val]) -> _Val:
        axes = self._sorted({a for v in vals for a in v.axes})
        return _Val(np.asarray(fn(*[self._expand(v, axes) for v in vals]), self.ftype), axes)

    def _call(self, c: Call) -> _Val:
        return self._combine(FUNCS[c.func], [self.eval(a) for a in c.args])

    def _reduce(self, r: Reduce) -> _Val:
        if r.op in (ReduceKind.SUM, ReduceKind.MEAN):
            v = self.sum_over(r.body, r.indices)
            if r.op is ReduceKind.MEAN:
                count = math.prod(self.ext[i] for i in set(r.indices))
                v = _Val(v.data / self.ftype(count), v.axes)
            return v
        body = self.eval(r.body)
        pos = tuple(body.axes.index(i) for i in set(r.indices) if i in body.axes)
        if self.arg_nans is not None and r.op.is_arg:
            nan = np.isnan(body.data)
            if nan.any():
                at = tuple(int(x) for x in np.argwhere(nan)[0])
                self.arg_nans.append(ArgNaN(self.stmt, r.op, r.indices[0],
                                            tuple(zip(body.axes, at)), int(nan.sum()),
                                            int(nan.size)))
        data = REDUCERS[r.op](body.data, pos) if pos else body.data
        return _Val(np.asarray(data, self.ftype), tuple(a for a in body.axes if a not in r.indices))

    def sum_over(self, e: Expr, indices: tuple[str, ...]) -> _Val:
        """``sum(e, *indices)``; products are contracted with einsum without broadcasting."""
        factors = [self.eval(f) for f in _factors(e)]
        present = {a for v in factors for a in v.axes}
        out_axes = self._sorted(present - set(indices))
        scale = math.prod(self.ext[i] for i in set(indices) - present)
        letters = {a: string.ascii_letters[i] for i, a in enumerate(self._sorted(present))}
        subs = ",".join("".join(letters[a] for a in v.axes) for v in factors)
        spec = f"{subs}->{''.join(letters[a] for a in out_axes)}"
        data = np.einsum(spec, *[v.data for v in factors], optimize=True)
        data = np.asarray(data, self.ftype)
        if scale != 1:
            data = data * self.ftype(scale)
        return _Val(data, out_axes)


def _index_values(e: sympy.Expr, grids: Mapping[str, np.ndarray], what: str) -> np.ndarray:
    """Integer values of one index expression over the index grids: sums of integer multiples
    of indices, constants, ``floor(p / q)`` (``//``) and ``Mod(p, q)`` (``%``) with positive
    integer ``q`` (floor semantics, as Python and NumPy), evaluated exactly in int64."""
    if e.is_Integer:
        return np.asarray(int(e), dtype=np.int64)
    if e.is_Symbol:
        return grids[e.name]
    if e.is_Add:
        out = np.asarray(0, dtype=np.int64)
        for t in e.args:
            out = out + _index_values(t, grids, what)
        return out
    if e.is_Mul:
        c, rest = e.as_coeff_Mul()
        if c.is_Integer:
            return int(c) * _index_values(rest, grids, what)
    if isinstance(e, sympy.floor):
        num, den = sympy.fraction(sympy.together(e.args[0]))
        if den.is_Integer and int(den) > 0:
            return np.floor_divide(_index_values(sympy.expand(num), grids, what), int(den))
    if isinstance(e, sympy.Mod) and e.args[1].is_Integer and int(e.args[1]) > 0:
        return np.mod(_index_values(e.args[0], grids, what), int(e.args[1]))
    raise ValueError(f"{what} is not an integer (quasi-)affine expression")


def _is_identity(exprs: list[sympy.Expr], names: tuple[str, ...], arr: np.ndarray,
                 ext: Mapping[str, int]) -> bool:
    """True if the access is ``a[i, j, ...]``: distinct plain indices over whole dimensions."""
    if len(exprs) != len(names) or not all(isinstance(e, sympy.Symbol) for e in exprs):
        return False
    return all(ext[e.name] == arr.shape[d] for d, e in enumerate(exprs))


def _factors(e: Expr) -> list[Expr]:
    """The operands of a (possibly nested) product ``f1 * f2 * ...``."""
    if isinstance(e, BinOp) and e.op is BinOpKind.MUL:
        return _factors(e.lhs) + _factors(e.rhs)
    return [e]


_EVALUATORS: dict[type, Callable[[_StatementEval, Any], _Val]] = {
    Const: lambda ev, e: ev._scalar(e.value),
    ParamRef: lambda ev, e: ev._scalar(e.value),
    SizeRef: lambda ev, e: ev._scalar(ev.env[e.name]),
    Access: _StatementEval._access,
    BinOp: _StatementEval._binop,
    Neg: lambda ev, e: (lambda v: _Val(-v.data, v.axes))(ev.eval(e.operand)),
    Call: _StatementEval._call,
    Reduce: _StatementEval._reduce,
    IndexValue: _StatementEval._index_value,
    Compare: _StatementEval._compare,
    Where: _StatementEval._where,
    Scan: _StatementEval._scan,
}
"""One evaluator per expression node type (a test checks it covers every node of ``Expr``)."""


# ---- the oracle ------------------------------------------------------------------------------

def evaluate_all(
    spec: Spec,
    inputs: Mapping[str, np.ndarray],
    sizes: Mapping[str, int] | None = None,
    *,
    compute_dtype: type[np.floating] = np.float64,
    overflows: list[IntegerOverflow] | None = None,
    arg_nans: list[ArgNaN] | None = None,
    fractional: set[str] | None = None,
    perturb_temps: float = 0.0,
    exact_outputs: bool = False,
) -> dict[str, np.ndarray]:
    """Run every statement; return inputs (rounded), outputs and temps, keyed by name.

    ``perturb_temps`` scales every floating-point temp by ``1 + perturb_temps * eps`` (its
    dtype's epsilon) when its statement completes: ``perturb_temps`` ulps off the rounded value,
    the way a kernel's temp may land (:func:`nkigen.testdata.temp_sensitivity` measures how far
    the outputs move). ``exact_outputs`` leaves float outputs unrounded (their own storage
    rounding is a relative error, measured apart).

    ``overflows``, when given, collects every statement whose result for an integer-typed
    target leaves that dtype's range (:func:`first_integer_overflow`); the result is still
    saturated (:meth:`nkigen.dtypes.DType.round`). ``arg_nans``, when given, collects every
    argmax/argmin whose operand holds NaN (:func:`first_arg_nan`). ``fractional``, when
    given, collects the integer-typed targets a statement gave a finite non-integer value
    before rounding (:func:`fractional_integer_targets`).

    ``compute_dtype=np.float32`` evaluates the same program with float32 arithmetic (storage
    rounding unchanged); the tests use it to emulate an fp32 engine when checking tolerances.
    The results are always returned as float64 arrays.
    """
    missing = [t.name for t in spec.inputs if t.name not in inputs]
    if missing:
        raise KeyError(f"{spec.name}: missing inputs {missing}")
    bound = resolve_sizes(spec, sizes, inputs)
    env = _num_env(spec, bound)
    ftype = compute_dtype
    values: dict[str, np.ndarray] = {}
    for t in spec.inputs:
        arr = np.asarray(inputs[t.name])
        want = shape_of(t, env)
        if arr.shape != want:
            raise ValueError(f"input {t.name}: shape {arr.shape}, expected {want} for {bound}")
        values[t.name] = t.dtype.round(arr).astype(ftype)
    written: set[str] = set()
    with np.errstate(all="ignore"):
        for stmt in spec.statements:
            decl = spec.tensor(stmt.target)
            exact = exact_outputs and decl in spec.outputs and not decl.dtype.is_integer
            values[stmt.target] = _run(spec, stmt, values, bound, ftype, stmt.target in written,
                                       overflows, arg_nans, fractional, exact)
            if perturb_temps and decl in spec.temps and not decl.dtype.is_integer:
                values[stmt.target] = values[stmt.target] * (1.0 + perturb_temps *
                                                              decl.dtype.eps)
            written.add(stmt.target)
    order = [t.name for t in spec.inputs + spec.outputs + spec.temps if t.name in values]
    return {n: values[n].astype(np.float64) for n in order}


def _run(
    spec: Spec,
    stmt: Statement,
    values: Mapping[str, np.ndarray],
    sizes: Mapping[str, int],
    ftype: type[np.floating],
    accumulate_onto: bool,
    overflows: list[IntegerOverflow] | None = None,
    arg_nans: list[ArgNaN] | None = None,
    fractional: set[str] | None = None,
    exact: bool = False,
) -> np.ndarray:
    ev = _StatementEval(spec, stmt, values, sizes, ftype, arg_nans)
    if stmt.op is AssignOp.ACCUMULATE:
        # the einsum rule, derived here rather than trusted from the parser
        summed = [i for i in expr_indices(stmt.rhs, free=True) if i not in stmt.lhs]
        if set(summed) != set(stmt.sum_indices):
            raise ValueError(
                f"{stmt.text}: the einsum rule sums over {summed}, the IR says "
                f"{list(stmt.sum_indices)}"
            )
        v = ev.sum_over(stmt.rhs, tuple(summed))
    else:
        v = ev.eval(stmt.rhs)
    extra = set(v.axes) - set(stmt.lhs)
    if extra:
        raise ValueError(f"{stmt.text}: indices {sorted(extra)} are neither on the left nor summed")
    decl = spec.tensor(stmt.target)
    shape = tuple(ev.ext[i] for i in stmt.lhs)
    data = np.broadcast_to(ev._expand(v, stmt.lhs), shape)
    if accumulate_onto and stmt.op is AssignOp.ACCUMULATE:   # `=` overwrites, `+=` adds
        data = values[stmt.target] + data
    if overflows is not None and decl.dtype.is_integer:
        lo, hi = decl.dtype.value_range
        raw = np.asarray(data, np.float64)
        r = np.rint(raw)
        out = ~np.isnan(r) & ((r < lo) | (r > hi))
        if out.any():
            idx = tuple(int(x) for x in np.argwhere(out)[0])
            overflows.append(IntegerOverflow(stmt, float(raw[idx]),
                                             idx, int(out.sum()), int(out.size)))
    if fractional is not None and decl.dtype.is_integer:
        raw = np.asarray(data, np.float64)
        if (np.isfinite(raw) & (raw != np.rint(raw))).any():
            fractional.add(stmt.target)
    if exact:
        return np.asarray(data, dtype=np.float64).astype(ftype)
    return decl.dtype.round(data).astype(ftype)


@dataclass(frozen=True)
class IntegerOverflow:
    """A statement's result for an integer-typed target outside the dtype's range: the first
    such element (``value`` before rounding, at ``index`` of the target) and how many."""

    statement: Statement
    value: float
    index: tuple[int, ...]
    count: int
    size: int


def first_integer_overflow(spec: Spec, inputs: Mapping[str, np.ndarray],
                           sizes: Mapping[str, int] | None = None) -> IntegerOverflow | None:
    """The first statement whose value for an int8/uint8/int32 target leaves the dtype's range
    with these inputs, or None (also when no statement writes an integer tensor).

    The reference saturates such values (:meth:`nkigen.dtypes.DType.round`), but NKI documents
    no conversion of an out-of-range value to an integer dtype: arithmetic instructions compute
    in float32 (SH nki/api/nki.api.shared.rst "Supported Math Operators", nki 0.3) and the
    integer dtypes are listed without a rounding or saturation rule (same page, data types), so
    the kernel's result is undefined there (numpy's cast, which the simulator uses, wraps); the
    build rejects such test data instead of comparing two guesses."""
    if not any(spec.tensor(st.target).dtype.is_integer for st in spec.statements):
        return None
    found: list[IntegerOverflow] = []
    evaluate_all(spec, inputs, sizes, overflows=found)
    return found[0] if found else None


@dataclass(frozen=True)
class ArgNaN:
    """An ``argmax``/``argmin`` (``op``) over ``index`` whose operand holds NaN: the first NaN
    (``at``: (operand index name, position) pairs) and how many of the operand's elements."""

    statement: Statement
    op: ReduceKind
    index: str
    at: tuple[tuple[str, int], ...]
    count: int
    size: int


def first_arg_nan(spec: Spec, inputs: Mapping[str, np.ndarray],
                  sizes: Mapping[str, int] | None = None) -> ArgNaN | None:
    """The first ``argmax``/``argmin`` whose operand holds NaN with these inputs, or None (also
    when the spec has no such reduction).

    The reference is NumPy's (a NaN is the extreme: the index of the first NaN), but the
    kernel's instructions leave NaN undefined: ``max8`` and ``nc_find_index8`` are documented on
    ordered values only ("the 8 largest values", "the first occurrence of each value"; SH
    nki/api/nki/isa/__init__.py, nki 0.3; S25 general/nki/api/nki/isa/__init__.py, SDK 2.25),
    with no word on how NaN orders or matches (and S25 nc_find_index8: "Behavior is undefined
    if vals tensor contains values that are not in the data tensor", which a NaN never equal
    to itself would be), so the build rejects such test data instead of comparing the
    reference with a guess."""
    if not any(isinstance(x, Reduce) and x.op.is_arg
               for st in spec.statements for x in walk(st.rhs)):
        return None
    found: list[ArgNaN] = []
    evaluate_all(spec, inputs, sizes, arg_nans=found)
    return found[0] if found else None


def fractional_integer_targets(spec: Spec, inputs: Mapping[str, np.ndarray],
                               sizes: Mapping[str, int] | None = None) -> set[str]:
    """The integer-typed temps and outputs some statement gives a finite non-integer value
    before its rounding, with these inputs (empty when no statement writes an integer tensor).

    Such a value is rounded to the nearest integer (:meth:`nkigen.dtypes.DType.round`); a
    kernel computes it in float32 (SH nki/api/nki.api.shared.rst "Supported Math Operators",
    nki 0.3: arithmetic operators convert their inputs to float32), so where the float64 value
    lies within the fp32 error of a half-integer the kernel's rounding may land on the other
    neighbour: one unit, the integer analogue of a float output's storage flip
    (:func:`nkigen.testdata.output_atol`). An integer computation on integers stays integer
    and gets no such slack."""
    if not any(spec.tensor(st.target).dtype.is_integer for st in spec.statements):
        return set()
    found: set[str] = set()
    evaluate_all(spec, inputs, sizes, fractional=found)
    return found


def evaluate(
    spec: Spec,
    inputs: Mapping[str, np.ndarray],
    sizes: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """The reference outputs of ``spec`` (float64, dtype-rounded), in declaration order."""
    everything = evaluate_all(spec, inputs, sizes)
    return {t.name: everything[t.name] for t in spec.outputs}
