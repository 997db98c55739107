"""Operator registry: one table of ALU / activation ops -> NumPy function, arity, class, engine.

Stage: simulate (core). Every ``op=`` argument (``nl.add``, ``np.add``, ``nl.exp``, ``np.max``,
a string) resolves through :func:`resolve` to one :class:`Op`. Engine math is fp32: functions
receive float32 arrays (or int64 arrays for integer-exact ops on integer data) and return arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nkigen.hw import Engine
from nkigen.sim.errors import SimError, UnsupportedError

ARITH, BITVEC, COMPARE, LOGICAL, ACT = "arith", "bitvec", "compare", "logical", "act"


@dataclass(frozen=True)
class Op:
    """One operator. ``fn`` is unary (x) or binary (x, y); ``reduce`` folds an axis."""

    name: str
    fn: Callable
    arity: int
    kind: str
    engine: Engine                      # default engine when used as an nl.* function
    reduce: Callable | None = None      # (array, axis) -> array, for reduction-legal ops
    int_exact: bool = False             # computed exactly on integer data


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): ScalarE uses an approximation as well.
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    return (s * y).astype(x.dtype, copy=False)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.float32(0.7978845608028654) * (x + 0.044715 * x * x * x)))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _f(v):
    return v.astype(np.float32)


_UNARY: dict[str, Callable] = {
    "copy": lambda x: x, "identity": lambda x: x,
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "reciprocal": lambda x: 1.0 / x, "tanh": np.tanh, "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0), "gelu": _gelu, "gelu_apprx_tanh": _gelu_tanh,
    "gelu_apprx_sigmoid": lambda x: x * _sigmoid(np.float32(1.702) * x),
    "silu": lambda x: x * _sigmoid(x), "square": np.square, "abs": np.abs,
    "negative": np.negative, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "arctan": np.arctan, "erf": _erf, "softplus": lambda x: np.logaddexp(0, x),
    "mish": lambda x: x * np.tanh(np.logaddexp(0, x)), "sign": np.sign,
    "trunc": np.trunc, "floor": np.floor, "ceil": np.ceil,
    "gelu_dx": lambda x: 0.5 * (1 + _erf(x * np.float32(0.7071067811865476)))
    + x * np.exp(-0.5 * x * x) * np.float32(0.3989422804014327),
    "silu_dx": lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))),
    "erf_dx": lambda x: np.float32(1.1283791670955126) * np.exp(-x * x),
    "gelu_apprx_sigmoid_dx": lambda x: _sigmoid(np.float32(1.702) * x) * (
        1 + np.float32(1.702) * x * (1 - _sigmoid(np.float32(1.702) * x))),
}
_VECTOR_UNARY = {"copy", "identity", "abs", "negative", "logical_not", "invert", "reciprocal"}

_BINARY: dict[str, tuple[Callable, str, Callable | None, bool]] = {
    # name: (fn, kind, reduce, int_exact)
    "add": (np.add, ARITH, np.add.reduce, True),
    "subtract": (np.subtract, ARITH, np.subtract.reduce, True),
    "multiply": (np.multiply, ARITH, np.multiply.reduce, True),
    "divide": (np.divide, ARITH, None, False),
    "maximum": (np.maximum, ARITH, np.maximum.reduce, True),
    "minimum": (np.minimum, ARITH, np.minimum.reduce, True),
    "power": (np.power, ARITH, None, False),
    "fmod": (np.fmod, ARITH, None, True),
    "mod": (np.mod, ARITH, None, True),
    "equal": (lambda a, b: _f(a == b), COMPARE, None, True),
    "not_equal": (lambda a, b: _f(a != b), COMPARE, None, True),
    "greater": (lambda a, b: _f(a > b), COMPARE, None, True),
    "greater_equal": (lambda a, b: _f(a >= b), COMPARE, None, True),
    "less": (lambda a, b: _f(a < b), COMPARE, None, True),
    "less_equal": (lambda a, b: _f(a <= b), COMPARE, None, True),
    "logical_and": (lambda a, b: _f((a != 0) & (b != 0)), LOGICAL,
                    lambda a, axis: _f(np.all(a != 0, axis=axis)), True),
    "logical_or": (lambda a, b: _f((a != 0) | (b != 0)), LOGICAL,
                   lambda a, axis: _f(np.any(a != 0, axis=axis)), True),
    "logical_xor": (lambda a, b: _f((a != 0) ^ (b != 0)), LOGICAL,
                    lambda a, axis: _f(np.logical_xor.reduce(a != 0, axis=axis)), True),
    # the input of larger (smaller) magnitude, signed; y on a tie (SH nki/api/nki/language
    # abs_max / abs_min); NeuronCore-v4 only, see v4_only
    "abs_max": (lambda a, b: np.where(np.abs(a) > np.abs(b), a, b), ARITH, None, True),
    "abs_min": (lambda a, b: np.where(np.abs(a) < np.abs(b), a, b), ARITH, None, True),
    "bitwise_and": (np.bitwise_and, BITVEC, np.bitwise_and.reduce, True),
    "bitwise_or": (np.bitwise_or, BITVEC, np.bitwise_or.reduce, True),
    "bitwise_xor": (np.bitwise_xor, BITVEC, np.bitwise_xor.reduce, True),
    "left_shift": (np.left_shift, BITVEC, None, True),
    "right_shift": (np.right_shift, BITVEC, None, True),     # logical: see isa_compute.bitvec
}

# The documented ALU operator table (``op=`` of tensor_tensor / tensor_scalar / tensor_reduce /
# scans): S25 general/nki/api/nki.api.shared.rst tbl-aluop (with its engine column) and
# SH nki/api/nki.api.shared.rst tbl-aluop (adds abs_max, abs_min, square, relu; drops
# logical_not). The union is accepted for both API generations.
ALU_OPS = frozenset({
    "invert", "bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift",
    "add", "subtract", "multiply", "maximum", "minimum", "equal", "not_equal",
    "greater_equal", "greater", "less_equal", "less", "logical_not", "logical_and",
    "logical_or", "logical_xor", "power", "abs_max", "abs_min", "abs", "square", "relu",
    "rsqrt", "reciprocal"})
# Engines of each ALU op (S25 tbl-aluop "Supported Engine"; ScalarE add/multiply only from
# NeuronCore-v3, see ALU_SCALAR_V3).
ALU_GPSIMD = frozenset({"add", "multiply", "rsqrt", "power"})
ALU_SCALAR = frozenset({"rsqrt", "reciprocal", "abs"})
ALU_SCALAR_V3 = frozenset({"add", "multiply"})
ALU_NOT_VECTOR = frozenset({"rsqrt", "power"})

# The documented ScalarE activation-function table (``op=`` of nisa.activation): S25 and SH
# tbl-act-func (SH adds prelu, gelu_apprx_sigmoid, gelu_apprx_sigmoid_dx); union accepted.
ACT_FUNCS = frozenset({
    "copy", "identity", "square", "sigmoid", "relu", "gelu", "gelu_dx", "gelu_apprx_tanh",
    "gelu_apprx_sigmoid", "gelu_apprx_sigmoid_dx", "silu", "silu_dx", "tanh", "softplus",
    "mish", "erf", "erf_dx", "exp", "log", "sin", "arctan", "sqrt", "rsqrt", "reciprocal",
    "sign", "abs"})

# Names of the current API only: the classic activation table (S25 general/nki/api/
# nki.api.shared.rst tbl-act-func, SDK 2.25), its ALU table (tbl-aluop) and classic
# neuronxcc.nki.language do not have them, so a classic kernel naming one fails on the SDK.
ACT_CURRENT_ONLY = frozenset({"gelu_apprx_sigmoid", "gelu_apprx_sigmoid_dx"})
ALU_CURRENT_ONLY = frozenset({"abs_max", "abs_min"})


def classic_act_missing(name: str, api: str) -> None:
    """A classic kernel used an activation function or ALU operator that only the current API
    documents."""
    if name in ACT_CURRENT_ONLY:
        raise SimError(f"{api}: nl.{name} is not in the classic activation-function table "
                       "(S25 nki.api.shared tbl-act-func, SDK 2.25; it was added in the current "
                       "nki API)", name,
                       "use nl.gelu_apprx_tanh or nl.gelu in a neuronxcc.nki kernel")
    if name in ALU_CURRENT_ONLY:
        raise SimError(f"{api}: nl.{name} is not in the classic ALU operator table (S25 "
                       "nki.api.shared tbl-aluop, SDK 2.25; it was added in the current nki API)",
                       name, "compare absolute values with nl.abs and nl.maximum/nl.minimum")


def v4_only(name: str, api: str, nc: int) -> None:
    """abs_max / abs_min: "Available only on NeuronCore-v4 (trn3) and newer" (SH
    nki/api/nki/language/__init__.py abs_max / abs_min); the simulated targets are v2/v3."""
    if name in ALU_CURRENT_ONLY and nc < 4:
        raise SimError(f"{api}: nl.{name} is available only on NeuronCore-v4 (trn3) and newer",
                       f"NeuronCore-v{nc}",
                       "compare absolute values with nl.abs and nl.maximum/nl.minimum")


# Valid input ranges of ScalarE activation functions (nki-reference.md 2.5): (lo, hi, symmetric).
# Outside them the hardware output is invalid; the simulator makes it NaN and warns.
ACT_RANGES: dict[str, tuple[float, float, bool]] = {
    "log": (2.0**-64, 2.0**64, False),
    "sin": (-np.pi, np.pi, False),
    "arctan": (-np.pi / 2, np.pi / 2, False),
    "sqrt": (2.0**-116, 2.0**118, False),
    "rsqrt": (2.0**-87, 2.0**97, False),
    "reciprocal": (2.0**-42, 2.0**42, True),
}

REGISTRY: dict[str, Op] = {}
for _n, _fn in _UNARY.items():
    REGISTRY[_n] = Op(_n, _fn, 1, ACT,
                      Engine.VECTOR if _n in _VECTOR_UNARY else Engine.SCALAR)
REGISTRY["logical_not"] = Op("logical_not", lambda x: _f(x == 0), 1, LOGICAL, Engine.VECTOR,
                             int_exact=True)
REGISTRY["invert"] = Op("invert", np.invert, 1, BITVEC, Engine.VECTOR, int_exact=True)
for _n, (_fn, _kind, _red, _ie) in _BINARY.items():
    REGISTRY[_n] = Op(_n, _fn, 2, _kind, Engine.GPSIMD if _n == "power" else Engine.VECTOR,
                      _red, _ie)

# NumPy callables accepted wherever an op is taken (nki-reference.md 10.9).
NUMPY: dict[object, str] = {
    np.add: "add", np.subtract: "subtract", np.multiply: "multiply", np.divide: "divide",
    np.maximum: "maximum", np.minimum: "minimum", np.max: "maximum", np.min: "minimum",
    np.amax: "maximum", np.amin: "minimum", np.power: "power", np.fmod: "fmod",
    np.mod: "mod", np.equal: "equal", np.not_equal: "not_equal", np.greater: "greater",
    np.greater_equal: "greater_equal", np.less: "less", np.less_equal: "less_equal",
    np.logical_and: "logical_and", np.logical_or: "logical_or",
    np.logical_xor: "logical_xor", np.logical_not: "logical_not",
    np.bitwise_and: "bitwise_and", np.bitwise_or: "bitwise_or",
    np.bitwise_xor: "bitwise_xor", np.invert: "invert", np.left_shift: "left_shift",
    np.right_shift: "right_shift", np.exp: "exp", np.log: "log", np.sqrt: "sqrt",
    np.reciprocal: "reciprocal", np.tanh: "tanh", np.square: "square", np.abs: "abs",
    np.negative: "negative", np.sin: "sin", np.cos: "cos", np.tan: "tan",
    np.arctan: "arctan", np.sign: "sign", np.trunc: "trunc", np.floor: "floor",
    np.ceil: "ceil", np.sum: "add", np.prod: "multiply", np.copy: "copy",
}


def resolve(op: object, what: str = "op") -> Op:
    """The registry entry for an ``op=`` value (nl function, NumPy callable or name)."""
    if isinstance(op, Op):
        return op
    key = op if isinstance(op, str) else getattr(op, "__nki_op__", None)
    if key is None:
        try:
            key = NUMPY.get(op)  # type: ignore[call-overload]
        except TypeError:
            key = None
    if key is None:
        raise UnsupportedError(f"{what}={getattr(op, '__name__', op)!r}")
    o = REGISTRY.get(key)
    if o is None:
        raise UnsupportedError(f"{what}={key!r}")
    return o


def reducer(op: Op) -> Callable:
    if op.reduce is None:
        raise SimError(f"{op.name} cannot be used as a reduction (not a legal reduction op in "
                       "the ALU operator table)", op.name,
                       "use add, subtract, multiply, maximum, minimum, bitwise_and/or/xor or "
                       "logical_and/or/xor")
    return op.reduce


def is_bitvec(op: Op) -> bool:
    return op.kind == BITVEC


def alu(op: Op, api: str, role: str = "op") -> Op:
    """``op`` must be in the documented ALU operator table (tbl-aluop)."""
    run = None
    if op.name in ALU_CURRENT_ONLY:
        from nkigen.sim import state
        run = state.active()
    if run is not None:
        if run.classic:
            classic_act_missing(op.name, api)
        v4_only(op.name, api, run.target.nc_version)
    if op.name not in ALU_OPS:
        fix = ("multiply by the reciprocal (nisa.reciprocal, or activation(op=nl.reciprocal)) "
               "or use nl.divide" if op.name == "divide" else
               "use an operator of the ALU table or the nl.* language function")
        raise SimError(f"{api}: {role}={op.name} is not in the ALU operator table "
                       "(nki.api.shared tbl-aluop)", op.name, fix)
    return op
