"""Frozen spec IR: what the parser produces and every later stage consumes.

Stage: parse (YAML document -> :class:`Spec`). Everything here is immutable: tuples instead of
lists, enums instead of op-name strings, sympy expressions for sizes and index expressions.

Symbols. A size ``M`` is ``size_symbol("M")`` (integer, positive). An index ``m`` is
``index_symbol("m")`` (integer, nonnegative). Integer params used in index expressions are
substituted by their values at parse time; size names stay symbolic.

Right-hand expressions are trees of :data:`Expr` nodes. ``Access.indices`` holds one sympy
expression per dimension, affine in index symbols (coefficients may be integers or size
expressions). A ``+=`` statement sums over ``Statement.sum_indices``: the indices that occur in
the right-hand side outside any reduction call and not on the left (einsum rule). Reduction calls
``sum(e, j)`` bind their indices inside the call only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import cache

import sympy

from nkigen.diagnostics import Loc
from nkigen.dtypes import DType

# An index name: lower-case identifier, may start with '_' (sizes start upper-case).
INDEX_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def is_index_name(name: str) -> bool:
    """True if ``name`` is spelled like an index (the one rule every stage uses)."""
    return INDEX_RE.fullmatch(name) is not None


@cache
def size_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, positive=True)


@cache
def index_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, nonnegative=True)


class Role(Enum):
    INPUT = "input"
    OUTPUT = "output"
    TEMP = "temp"


class BinOpKind(Enum):
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"


class Func(Enum):
    """Element-wise functions of the spec language; value = spelling in a spec."""

    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    RECIPROCAL = "reciprocal"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    RELU = "relu"
    GELU = "gelu"
    GELU_TANH = "gelu_tanh"
    SILU = "silu"
    SQUARE = "square"
    ABS = "abs"
    MAXIMUM = "maximum"   # two arguments
    MINIMUM = "minimum"   # two arguments

    @property
    def arity(self) -> int:
        return 2 if self in (Func.MAXIMUM, Func.MINIMUM) else 1


class ReduceKind(Enum):
    SUM = "sum"
    MAX = "max"
    MIN = "min"
    MEAN = "mean"
    # spec language 1.1: index (along the one reduced index) of the first extreme value
    ARGMAX = "argmax"
    ARGMIN = "argmin"

    @property
    def is_arg(self) -> bool:
        return self in (ReduceKind.ARGMAX, ReduceKind.ARGMIN)


# ---- right-hand expressions ---------------------------------------------------------------

@dataclass(frozen=True)
class Const:
    """A number literal."""

    value: float


@dataclass(frozen=True)
class ParamRef:
    """A param used as a number; ``value`` is the param's value."""

    name: str
    value: float


@dataclass(frozen=True)
class SizeRef:
    """A size used as a number (e.g. ``/ N``)."""

    name: str


@dataclass(frozen=True)
class Access:
    """``tensor[i0, i1, ...]``; one affine sympy expression per dimension.

    Spec language 1.1 indexed reads (gather): ``table[ids[t], d]`` has ``indirect =
    ((0, ids[t]),)``: dimension 0 is indexed by the values of the integer access ``ids[t]``;
    its ``indices`` entry is the placeholder 0 (every stage that proves or maps affine indices
    sees an in-bounds constant; the ids' range is checked at run time)."""

    tensor: str
    indices: tuple[sympy.Expr, ...]
    loc: Loc | None = field(default=None, compare=False)
    indirect: tuple[tuple[int, Access], ...] = ()


@dataclass(frozen=True)
class BinOp:
    op: BinOpKind
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True)
class Neg:
    operand: Expr


@dataclass(frozen=True)
class Call:
    """An element-wise function call; ``len(args) == func.arity``."""

    func: Func
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Reduce:
    """``sum(body, j, k)``: reduce ``body`` over the named indices (bound inside only)."""

    op: ReduceKind
    body: Expr
    indices: tuple[str, ...]


class CmpOp(Enum):
    """Comparison operators (spec language 1.1); value = spelling in a spec."""

    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="
    GE = ">="
    GT = ">"


@dataclass(frozen=True)
class IndexValue:
    """An index expression used as a number (1.1: an operand of a comparison, e.g. the ``n``
    and ``m`` of ``n <= m``); integer (quasi-)affine like an access index."""

    expr: sympy.Expr


@dataclass(frozen=True)
class Compare:
    """``lhs <op> rhs``: 1.0 where it holds, else 0.0 (spec language 1.1)."""

    op: CmpOp
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True)
class Where:
    """``where(cond, a, b)``: ``a`` where ``cond`` is nonzero, else ``b`` (spec language 1.1)."""

    cond: Expr
    a: Expr
    b: Expr


@dataclass(frozen=True)
class Scan:
    """A first-order linear recurrence along ``index`` (spec language 1.1):
    ``out[..., t] = a[..., t] * out[..., t - 1] + b[..., t]`` with ``out[..., -1] = initial``.
    ``cumsum(e, t)`` is ``Scan(t, 1, e, 0)``; ``h[c, t] = a[c, t] * h[c, t - 1] + b[c, t]`` is
    ``Scan(t, a[c, t], b[c, t], 0)`` as the right-hand side of ``h``. ``index`` stays free (it
    must be a left-hand index)."""

    index: str
    a: Expr
    b: Expr
    initial: Expr


Expr = (Const | ParamRef | SizeRef | Access | BinOp | Neg | Call | Reduce | IndexValue | Compare
        | Where | Scan)


def index_only(e: Expr) -> bool:
    """True when ``e`` reads no tensor: a function of indices, sizes, params and numbers."""
    return not any(isinstance(x, Access) for x in walk(e))


def walk(e: Expr):
    """Yield ``e`` and all its sub-expressions, parents first, left to right."""
    yield e
    if isinstance(e, Access):
        for _, inner in e.indirect:
            yield from walk(inner)
    if isinstance(e, BinOp):
        yield from walk(e.lhs)
        yield from walk(e.rhs)
    elif isinstance(e, Neg):
        yield from walk(e.operand)
    elif isinstance(e, Call):
        for a in e.args:
            yield from walk(a)
    elif isinstance(e, Reduce):
        yield from walk(e.body)
    elif isinstance(e, Compare):
        yield from walk(e.lhs)
        yield from walk(e.rhs)
    elif isinstance(e, Where):
        yield from walk(e.cond)
        yield from walk(e.a)
        yield from walk(e.b)
    elif isinstance(e, Scan):
        yield from walk(e.a)
        yield from walk(e.b)
        yield from walk(e.initial)


_SCALAR_FUNCS: dict[Func, Callable[[sympy.Expr], sympy.Expr]] = {
    Func.LOG: sympy.log, Func.SQRT: sympy.sqrt, Func.RSQRT: lambda x: 1 / sympy.sqrt(x),
    Func.RECIPROCAL: lambda x: 1 / x, Func.SQUARE: lambda x: x * x, Func.ABS: sympy.Abs,
}


def scalar_value(e: Expr, memo: dict[int, sympy.Expr | None] | None = None) -> sympy.Expr | None:
    """The exact value of a tensor-free expression of numbers, params and sizes (sizes as
    positive integer symbols), else None (a tensor, an index or a function not folded here).
    ``memo`` (id of a sub-expression -> its value) keeps a parse that checks every node linear."""
    if memo is not None and id(e) in memo:
        return memo[id(e)]
    v: sympy.Expr | None = None
    if isinstance(e, (Const, ParamRef)):
        v = sympy.Rational(e.value) if math.isfinite(e.value) else None
    elif isinstance(e, SizeRef):
        v = size_symbol(e.name)
    elif isinstance(e, Neg):
        a = scalar_value(e.operand, memo)
        v = None if a is None else -a
    elif isinstance(e, BinOp):
        a = scalar_value(e.lhs, memo)
        b = None if a is None else scalar_value(e.rhs, memo)
        if a is not None and b is not None:
            if e.op is BinOpKind.DIV:
                v = sympy.zoo if sympy.expand(b) == 0 else a / b
            else:
                v = {BinOpKind.ADD: a + b, BinOpKind.SUB: a - b, BinOpKind.MUL: a * b}[e.op]
    elif isinstance(e, Call) and e.func in _SCALAR_FUNCS:
        a = scalar_value(e.args[0], memo)
        v = None if a is None else _SCALAR_FUNCS[e.func](a)
    if memo is not None:
        memo[id(e)] = v
    return v


def accesses(e: Expr) -> tuple[Access, ...]:
    """All tensor accesses in ``e``, in source order."""
    return tuple(x for x in walk(e) if isinstance(x, Access))


def index_exprs(e: Expr) -> list[sympy.Expr]:
    """Every index expression in ``e``: the indices of its accesses (gathers' ids included)
    and the indices it reads as numbers (``IndexValue``, a condition's ``n % 2 == 0``)."""
    out: list[sympy.Expr] = []
    for x in walk(e):
        if isinstance(x, Access):
            out.extend(sympy.sympify(i) for i in x.indices)
        elif isinstance(x, IndexValue):
            out.append(sympy.sympify(x.expr))
    return out


def division_parts(q: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """``(numerator, divisor)`` of a ``floor(num / den)`` or ``Mod(num, den)`` atom of an index
    expression (spec language 1.1 ``//`` and ``%``)."""
    if isinstance(q, sympy.Mod):
        return q.args[0], q.args[1]
    return sympy.fraction(sympy.together(q.args[0]))


def index_names(e: object) -> list[str]:
    """The index names in one index expression (an ``Access.indices`` entry), sorted."""
    return sorted(n for n in (s.name for s in sympy.sympify(e).free_symbols) if is_index_name(n))


def expr_indices(e: Expr, free: bool = False) -> tuple[str, ...]:
    """Index names used by the accesses of ``e``, in first-use order: accesses in source order,
    dimensions left to right, the names within one index expression sorted. ``free=True``
    leaves out indices bound by a reduction call inside ``e`` (unless also used outside it)."""
    found: list[str] = []
    if isinstance(e, Access):
        for ix in e.indices:
            found += index_names(ix)
        for _, inner in e.indirect:
            found += expr_indices(inner, free)
    elif isinstance(e, Reduce):
        found = [i for i in expr_indices(e.body, free) if not free or i not in e.indices]
    elif isinstance(e, BinOp):
        found = [*expr_indices(e.lhs, free), *expr_indices(e.rhs, free)]
    elif isinstance(e, Neg):
        found = list(expr_indices(e.operand, free))
    elif isinstance(e, Call):
        found = [i for a in e.args for i in expr_indices(a, free)]
    elif isinstance(e, IndexValue):
        found = index_names(e.expr)
    elif isinstance(e, Compare):
        found = [*expr_indices(e.lhs, free), *expr_indices(e.rhs, free)]
    elif isinstance(e, Where):
        found = [i for x in (e.cond, e.a, e.b) for i in expr_indices(x, free)]
    elif isinstance(e, Scan):
        found = [*(i for x in (e.a, e.b, e.initial) for i in expr_indices(x, free)), e.index]
    return tuple(dict.fromkeys(found))


def statement_indices(st: Statement) -> tuple[str, ...]:
    """Every index of ``st`` in first-use order: the left-hand side's, then the right-hand
    side's (:func:`expr_indices`), then summed and reduction-bound ones not seen yet."""
    bound = [i for x in walk(st.rhs) if isinstance(x, Reduce) for i in x.indices]
    return tuple(dict.fromkeys([*st.lhs, *expr_indices(st.rhs), *st.sum_indices, *bound]))


def spec_indices(statements: tuple[Statement, ...] | list[Statement]) -> tuple[str, ...]:
    """Every index of the statements, in first-use order across them."""
    return tuple(dict.fromkeys(i for st in statements for i in statement_indices(st)))


# ---- declarations ------------------------------------------------------------------------

@dataclass(frozen=True)
class SizeDecl:
    name: str
    multiple_of: int | None = None
    min: int = 1
    max: int | None = None
    value: sympy.Expr | None = None   # derived size: computed, never passed
    loc: Loc | None = field(default=None, compare=False)

    @property
    def symbol(self) -> sympy.Symbol:
        return size_symbol(self.name)

    @property
    def derived(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class Param:
    name: str
    value: int | float
    loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True)
class TensorDecl:
    name: str
    role: Role
    shape: tuple[sympy.Expr, ...]    # integers or expressions of size symbols
    dtype: DType
    loc: Loc | None = field(default=None, compare=False)
    # a plan pre-pass temp that is a reshaped view of this tensor's storage (codegen/residue.py)
    view_of: str = ""

    @property
    def rank(self) -> int:
        return len(self.shape)


class AssignOp(Enum):
    ASSIGN = "="
    ACCUMULATE = "+="


@dataclass(frozen=True)
class Statement:
    """One compute line: ``target[lhs...] (=|+=) rhs``."""

    position: int                   # 0-based index in ``compute``
    target: str
    lhs: tuple[str, ...]            # distinct index names
    op: AssignOp
    rhs: Expr
    sum_indices: tuple[str, ...]    # summed by the einsum rule (``+=`` only), first-use order
    text: str
    loc: Loc | None = field(default=None, compare=False)


# ---- schedule and tests ------------------------------------------------------------------

@dataclass(frozen=True)
class Schedule:
    """Tiling hints; ``auto`` True means nkigen chooses everything."""

    auto: bool = True
    tiles: tuple[tuple[str, int], ...] = ()
    order: tuple[str, ...] = ()
    block: tuple[tuple[str, int], ...] = ()
    buffers: int | None = None
    loc: Loc | None = field(default=None, compare=False)

    def tile(self, index: str) -> int | None:
        return dict(self.tiles).get(index)

    def block_of(self, index: str) -> int | None:
        return dict(self.block).get(index)


class Dist(Enum):
    NORMAL = "normal"
    UNIFORM = "uniform"
    # spec language 1.1
    INTEGERS = "integers"   # uniform integers in [low, high] (a, b)
    POSITIVE = "positive"   # uniform in [low, high] with 0 < low (a, b)
    ONEHOT = "onehot"       # one 1.0 per row (last dimension), the rest 0.0
    ARANGE = "arange"       # 0, 1, 2, ... in row-major order
    CAUSAL = "causal"       # 1.0 on and below the diagonal of the last two dimensions, else 0.0


@dataclass(frozen=True)
class InputDist:
    dist: Dist = Dist.NORMAL
    a: float = 0.0   # mean (normal) or low (uniform)
    b: float = 1.0   # std (normal) or high (uniform)
    # spec language 1.1 (integers): low/high given as size expressions ("V - 1"), evaluated at
    # each test case; a and b then hold nothing useful
    a_expr: sympy.Expr | None = None
    b_expr: sympy.Expr | None = None


@dataclass(frozen=True)
class Tests:
    """The spec's ``tests`` section (not a pytest class)."""

    __test__ = False
    cases: tuple[tuple[tuple[str, int], ...], ...] = ()   # each case: sorted (size, value) pairs
    rtol: float | None = None
    atol: float | None = None
    seed: int = 0
    inputs: tuple[tuple[str, InputDist], ...] = ()
    loc: Loc | None = field(default=None, compare=False)
    nonfinite: bool = False     # 1.1: the reference may produce NaN/Inf on the test inputs

    def dist(self, tensor: str) -> InputDist:
        return dict(self.inputs).get(tensor, InputDist())

    def declared(self, tensor: str) -> InputDist | None:
        """The distribution the spec declares for ``tensor``, None when it gives none (the
        test data then picks a default suited to the input's dtype and uses)."""
        return dict(self.inputs).get(tensor)


# ---- the spec ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """A whole validated kernel spec."""

    name: str
    doc: str
    target: str | None              # None: not given in the spec (build --target or default)
    sizes: tuple[SizeDecl, ...]
    params: tuple[Param, ...]
    inputs: tuple[TensorDecl, ...]
    outputs: tuple[TensorDecl, ...]
    temps: tuple[TensorDecl, ...]
    statements: tuple[Statement, ...]
    ranges: tuple[tuple[str, sympy.Expr], ...]
    schedule: Schedule
    tests: Tests
    path: str = ""
    sha256: str = ""                # of the spec file's bytes
    # why the bound resource stays under 50 % at the largest test case (replaces the warning)
    bound_note: str = ""
    loc: Loc | None = field(default=None, compare=False)
    # Source positions of fields that have no node of their own, keyed by dotted path:
    # "ranges.r", "schedule.tiles.k", "schedule.order", "schedule.block.m", "tests.cases[0]",
    # "tests.cases[0].M", "sizes.M.max" (a key's position; see :meth:`loc_of`).
    locs: tuple[tuple[str, Loc], ...] = field(default=(), compare=False)

    def loc_of(self, path: str) -> Loc | None:
        """Position of ``path``, else of its nearest recorded parent ("a.b.c" -> "a.b" -> "a")."""
        table = dict(self.locs)
        while path:
            if path in table:
                return table[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.loc

    @property
    def tensors(self) -> tuple[TensorDecl, ...]:
        return self.inputs + self.outputs + self.temps

    def tensor(self, name: str) -> TensorDecl:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def size(self, name: str) -> SizeDecl:
        for s in self.sizes:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def free_sizes(self) -> tuple[SizeDecl, ...]:
        """Sizes bound from input shapes (not derived)."""
        return tuple(s for s in self.sizes if not s.derived)

    def param_values(self) -> dict[str, int | float]:
        return {p.name: p.value for p in self.params}
