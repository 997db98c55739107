"""Classic index expressions: ``nl.arange`` / ``nl.mgrid`` affine expressions, ``mask=``
predicates, and the rectangular box of lanes a mask selects.

Stage: simulate (classic API layer). An :class:`Expr` is ``const + sum(coef * i_axis)`` over the
axes of a NumPy-style broadcast grid (``nl.arange(128)[:, None]`` is axis 0 of a 2-D grid,
``nl.arange(512)[None, :]`` axis 1). Loop variables and ``program_id`` are plain ints at trace
time, so they fold into ``const``. Axes are stored counted from the right, so expressions of
different rank broadcast exactly as NumPy arrays do. A :class:`Predicate` is a comparison of
expressions, or several joined with ``&``; :func:`mask_box` turns one into the box of lanes
(one ``slice`` per grid axis) an instruction is shrunk to, as the compiler does.
"""

from __future__ import annotations

import numpy as np

from nkigen.sim.errors import SimError, UnsupportedError, as_int

_INT = (int, np.integer)


class _Compares:
    """The six comparison operators, each ``self._cmp(other, op)`` (a predicate, or
    NotImplemented for an operand the class does not compare with)."""

    __slots__ = ()

    def _cmp(self, o, op: str):
        raise NotImplementedError

    def __lt__(self, o):
        return self._cmp(o, "less")

    def __le__(self, o):
        return self._cmp(o, "less_equal")

    def __gt__(self, o):
        return self._cmp(o, "greater")

    def __ge__(self, o):
        return self._cmp(o, "greater_equal")

    def __eq__(self, o):  # type: ignore[override]
        return self._cmp(o, "equal")

    def __ne__(self, o):  # type: ignore[override]
        return self._cmp(o, "not_equal")


class Expr(_Compares):
    """An affine expression of aranges: ``const + sum(coef * i)`` over grid axes.

    ``terms`` maps an axis counted from the right to ``(size, coef)``; ``ndim`` is the rank of
    the grid; ``placed`` is False only for a bare 1-D ``nl.arange`` not yet given a position;
    ``taint`` says what in ``const`` is not an affine expression of nl.arange /
    nl.affine_range / nl.program_id (see :data:`LoopIndex.taint`).
    """

    __slots__ = ("const", "terms", "ndim", "placed", "taint")
    __hash__ = None  # type: ignore[assignment]

    def __setitem__(self, key, value) -> None:
        raise SimError("err_cannot_assign_to_index: an index (nl.arange / nl.mgrid) does not "
                       "support item assignment", repr(self),
                       "convert it to a tile first with nisa.iota(...), then assign")

    def __init__(self, const: int, terms: dict[int, tuple[int, int]], ndim: int,
                 placed: bool = True, taint: frozenset = frozenset()):
        self.const = int(const)
        self.terms = terms
        self.ndim = ndim
        self.placed = placed
        self.taint = taint

    # ---- shape and values -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.terms[r][0] if r in self.terms else 1
                     for r in range(self.ndim - 1, -1, -1))

    def coef(self, axis: int, ndim: int) -> int:
        """Coefficient of grid axis ``axis`` (counted from the left) in a rank-``ndim`` grid."""
        t = self.terms.get(ndim - 1 - axis)
        return t[1] if t is not None else 0

    def values(self) -> np.ndarray:
        """The expression evaluated over its own grid (int64, shape :attr:`shape`)."""
        v = np.full(self.shape, self.const, dtype=np.int64)
        for r, (n, c) in self.terms.items():
            a = self.ndim - 1 - r
            idx = [1] * self.ndim
            idx[a] = n
            v = v + c * np.arange(n, dtype=np.int64).reshape(idx)
        return v

    def __repr__(self) -> str:
        parts = [f"{c}*i{self.ndim - 1 - r}[{n}]" for r, (n, c) in sorted(self.terms.items())]
        return f"Expr({' + '.join(parts + [str(self.const)])}, shape={list(self.shape)})"

    # ---- placement: nl.arange(n)[:, None] -------------------------------------------------
    def __getitem__(self, key) -> Expr:
        if self.placed:
            raise UnsupportedError("indexing an already placed nl.arange expression",
                                   "place the 1-D nl.arange once: nl.arange(n)[:, None]")
        key = key if isinstance(key, tuple) else (key,)
        full = [i for i, k in enumerate(key) if isinstance(k, slice) and k == slice(None)]
        if len(full) != 1 or any(k is not None for i, k in enumerate(key) if i != full[0]):
            raise SimError("nl.arange placement must be one ':' and None elsewhere",
                           repr(key), "write nl.arange(n)[:, None] or nl.arange(n)[None, :]")
        nd = len(key)
        r = nd - 1 - full[0]
        (v,) = self.terms.values()
        return Expr(self.const, {r: v}, nd, taint=self.taint)

    # ---- arithmetic ------------------------------------------------------------------------
    def _need_placed(self) -> None:
        if not self.placed and self.terms:
            raise SimError("a 1-D nl.arange must be placed before use (err_1d_arange_not_"
                           "supported)", repr(self),
                           "use nl.arange(n)[:, None] (partition) or nl.arange(n)[None, :]")

    def __add__(self, other) -> Expr:
        if isinstance(other, _INT):
            return Expr(self.const + int(other), dict(self.terms), self.ndim, self.placed,
                        self.taint | taint_of(other))
        if not isinstance(other, Expr):
            return NotImplemented
        self._need_placed()
        other._need_placed()
        terms = dict(self.terms)
        for r, (n, c) in other.terms.items():
            if r in terms:
                m, d = terms[r]
                if m != n and 1 not in (m, n):
                    raise SimError("index expressions do not broadcast",
                                   f"{self!r} + {other!r}")
                terms[r] = (max(m, n), c + d)
            else:
                terms[r] = (n, c)
        return Expr(self.const + other.const, terms, max(self.ndim, other.ndim),
                    taint=self.taint | other.taint)

    __radd__ = __add__

    def __mul__(self, other) -> Expr:
        if not isinstance(other, _INT):
            if isinstance(other, Expr):
                raise SimError("index expressions must be affine", "product of two aranges")
            return NotImplemented
        k = int(other)
        taint = self.taint | taint_of(other)
        if isinstance(other, LoopIndex) and self.terms:
            taint = taint | {NONAFFINE + "a loop index times nl.arange"}
        return Expr(self.const * k, {r: (n, c * k) for r, (n, c) in self.terms.items()},
                    self.ndim, self.placed, taint)

    __rmul__ = __mul__

    def __neg__(self) -> Expr:
        return self * -1

    def __sub__(self, other) -> Expr:
        return self + (-other)

    def __rsub__(self, other) -> Expr:
        return (-self) + other

    def __floordiv__(self, other):
        raise SimError("index expressions must be affine", f"{self!r} // {other!r}",
                       "build the window with separate aranges (a 5-D index)")

    __truediv__ = __mod__ = __floordiv__

    # ---- comparisons -> predicates ---------------------------------------------------------
    def _cmp(self, other, op: str) -> Predicate:
        if not isinstance(other, (Expr,) + _INT):
            return NotImplemented
        self._need_placed()
        return Cmp(self, op, other)

    def __bool__(self) -> bool:
        raise SimError("an nl.arange expression has no truth value at trace time", repr(self))

    def __index__(self) -> int:
        raise SimError("an nl.arange expression is not an integer", repr(self),
                       "index a tensor with it, or use a loop variable")


def arange(start, stop=None) -> Expr:
    """``nl.arange(stop)`` / ``nl.arange(start, stop)``: a 1-D expression to be placed."""
    if stop is None:
        start, stop = 0, start
    check_extent(start, stop, "nl.arange length")
    start, stop = as_int(start, "nl.arange: start"), as_int(stop, "nl.arange: stop")
    n = stop - start
    if n <= 0:
        raise SimError("nl.arange needs a positive length", f"arange({start}, {stop})")
    return Expr(int(start), {0: (n, 1)}, 1, placed=False,
                taint=taint_of(start) | taint_of(stop))


class Grid(tuple):
    """What ``nl.mgrid[...]`` returns: unpackable, with ``.p``, ``.x``, ``.y``, ``.z``."""

    @property
    def p(self) -> Expr:
        return self[0]

    def _axis(self, i: int, name: str) -> Expr:
        if i >= len(self):
            raise SimError(f"nl.mgrid: the grid has no axis .{name}", f"{len(self)} axes",
                           "give nl.mgrid one slice per axis: nl.mgrid[0:P, 0:F]")
        return self[i]

    @property
    def x(self) -> Expr:
        return self._axis(1, "x")

    @property
    def y(self) -> Expr:
        return self._axis(2, "y")

    @property
    def z(self) -> Expr:
        return self[3]


class _MGrid:
    """``nl.mgrid[0:128, 0:512]`` -> one placed expression per axis."""

    def __getitem__(self, key) -> Grid:
        key = key if isinstance(key, tuple) else (key,)
        nd = len(key)
        out = []
        for a, k in enumerate(key):
            if not isinstance(k, slice) or k.step not in (None, 1):
                raise SimError("nl.mgrid takes start:stop ranges", repr(k))
            start = 0 if k.start is None else int(k.start)
            n = int(k.stop) - start
            if n <= 0:
                raise SimError("nl.mgrid range must be non-empty", repr(k))
            out.append(Expr(start, {nd - 1 - a: (n, 1)}, nd))
        return Grid(out)


mgrid = _MGrid()


# ---- predicates ---------------------------------------------------------------------------
_PY_OPS = {"less": np.less, "less_equal": np.less_equal, "greater": np.greater,
           "greater_equal": np.greater_equal, "equal": np.equal, "not_equal": np.not_equal}


class Predicate:
    """A mask: comparisons of affine expressions joined with ``&``."""

    def __and__(self, other) -> Predicate:
        if isinstance(other, (bool, np.bool_)):
            return self if other else FALSE
        if not isinstance(other, Predicate):
            return NotImplemented
        return Conj(self.parts() + other.parts())

    __rand__ = __and__

    def __or__(self, other):
        raise UnsupportedError("mask predicates joined with |", "join comparisons with &")

    __ror__ = __or__

    def __bool__(self) -> bool:
        """A predicate of loop indices only is a condition the classic compiler resolves per
        iteration (``if (i < n) & causal:``); one over nl.arange lanes has no single value."""
        if all(not c.diff().terms for c in self.parts()):
            return bool(self.evaluate().all())
        raise SimError("a predicate over nl.arange lanes has no single truth value",
                       repr(self), "join comparisons with & (not 'and') and pass them as mask=")

    def __invert__(self):
        raise UnsupportedError("negated (~) mask predicates", "write the opposite comparison")

    def parts(self) -> tuple[Cmp, ...]:
        raise NotImplementedError

    def evaluate(self) -> np.ndarray:
        """Boolean array over the predicate's broadcast grid."""
        out = None
        for c in self.parts():
            v = c.evaluate()
            if out is None:
                out = v
            else:
                nd = max(out.ndim, v.ndim)
                a = out.reshape((1,) * (nd - out.ndim) + out.shape)
                b = v.reshape((1,) * (nd - v.ndim) + v.shape)
                if any(x != y and 1 not in (x, y) for x, y in zip(a.shape, b.shape)):
                    # rule index.mask_grid: the comparisons of one mask index one lane grid
                    # (S25 general/nki/api/nki.api.shared.rst NKI API Masking; the NumPy
                    # broadcasting of nl.arange indices, S25 general/nki/programming_model.rst)
                    raise SimError("mask= comparisons index lane grids that do not broadcast "
                                   "together (an nl.arange on the wrong axis or of the wrong "
                                   "size)", f"{list(a.shape)} & {list(b.shape)}",
                                   "index the partition axis with nl.arange(P)[:, None] and "
                                   "each free axis with nl.arange(F)[None, :], F the tile's "
                                   "free size")
                out = a & b
        return out if out is not None else np.ones((1,), bool)


class Cmp(Predicate):
    __slots__ = ("lhs", "op", "rhs")

    def __init__(self, lhs: Expr, op: str, rhs):
        self.lhs, self.op, self.rhs = lhs, op, rhs

    def parts(self) -> tuple[Cmp, ...]:
        return (self,)

    def diff(self) -> Expr:
        """``lhs - rhs`` (the predicate is ``op(diff, 0)``)."""
        return self.lhs - self.rhs

    @property
    def taint(self) -> frozenset:
        """What either side depends on that the masking docs do not allow."""
        return self.lhs.taint | taint_of(self.rhs)

    def lanes(self) -> bool:
        """Whether a side names tile lanes with nl.arange (a non-zero arange term)."""
        return any(c != 0 for side in (self.lhs, self.rhs) if isinstance(side, Expr)
                   for _, c in side.terms.values())

    def evaluate(self) -> np.ndarray:
        d = self.diff()
        return _PY_OPS[self.op](d.values(), 0)

    def __repr__(self) -> str:
        return f"({self.lhs!r} {self.op} {self.rhs!r})"


class Conj(Predicate):
    __slots__ = ("items",)

    def __init__(self, items: tuple[Cmp, ...]):
        self.items = items

    def parts(self) -> tuple[Cmp, ...]:
        return self.items

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.items)) or "True"


class _False(Predicate):
    def parts(self) -> tuple[Cmp, ...]:
        return ()

    def evaluate(self) -> np.ndarray:
        return np.zeros((1,), bool)

    def __and__(self, other) -> Predicate:
        return self

    __rand__ = __and__


FALSE = _False()


class Empty:
    """The box of a mask that selects no lane: the instruction is skipped."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = Empty()
Box = tuple[slice, ...]


_SYM = {"less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=", "equal": "==",
        "not_equal": "!="}


def _show(x) -> str:
    """An index expression as the value it has in this iteration (``384 + arange(128)[p]``)."""
    if not isinstance(x, Expr):
        return str(int(x))
    parts = [] if x.const == 0 and x.terms else [str(x.const)]
    for r, (n, c) in sorted(x.terms.items(), reverse=True):
        parts.append(f"{'' if c == 1 else f'{c}*'}arange({n})[axis {x.ndim - 1 - r}]")
    return " + ".join(parts)


def show(c: Cmp) -> str:
    return f"{_show(c.lhs)} {_SYM[c.op]} {_show(c.rhs)}"


def check_affine(mask: Predicate, api: str) -> None:
    """Rule ``mask.sequential-index`` (:mod:`nkigen.sim.classic.forms`): every comparison of a
    mask is affine in nl.arange / nl.affine_range / nl.program_id."""
    bad = [c for c in mask.parts() if c.taint]
    if bad:
        from nkigen.sim.classic import forms

        def got() -> str:
            why = sorted(frozenset().union(*(c.taint for c in bad)))
            return f"{show(bad[0])} in this iteration, depending on {'; '.join(why)}"
        forms.report(forms.SEQUENTIAL_MASK, f"{api}: mask=", got)


def check_select(e, api: str, arg: str) -> None:
    """Rule ``select.sequential-index`` (:mod:`nkigen.sim.classic.forms`): the affine
    expression ``e`` of ``affine_select``'s pred / ``iota``'s expr (a :class:`Cmp` or an
    :class:`Expr`) is affine in nl.arange / nl.affine_range / nl.program_id."""
    taint = e.taint if isinstance(e, (Cmp, Expr)) else _NONE
    if taint:
        from nkigen.sim.classic import forms

        def got() -> str:
            val = show(e) if isinstance(e, Cmp) else _show(e)
            return f"{val} in this iteration, depending on {'; '.join(sorted(taint))}"
        forms.report(forms.SEQUENTIAL_SELECT, f"{api}: {arg}", got)


def mask_box(mask, grid: tuple[int, ...], api: str) -> Box | Empty | None:
    """The box of lanes of ``grid`` that ``mask`` selects: None = every lane, EMPTY = none.

    Mask axes align with grid axes from the left (axis 0 = partitions); a size-1 mask axis
    leaves that grid axis unconstrained. Masks that select a non-rectangular set are refused.
    """
    if mask is None or (isinstance(mask, (bool, np.bool_)) and mask):
        return None
    if isinstance(mask, (bool, np.bool_)) or mask is FALSE:
        return EMPTY
    if not isinstance(mask, Predicate):
        raise SimError(f"{api}: mask must be a predicate of nl.arange / loop variables",
                       type(mask).__name__, "e.g. mask=(i_p < n) & (i_f < m)")
    check_affine(mask, api)
    b = mask.evaluate()
    if b.ndim > len(grid):
        raise SimError(f"{api}: mask has more axes than the instruction's tile",
                       f"mask {list(b.shape)} vs tile {list(grid)}")
    box: list[slice] = []
    for a, n in enumerate(grid):
        if a >= b.ndim or b.shape[a] == 1:
            box.append(slice(0, n))
            continue
        if b.shape[a] != n:
            raise SimError(f"{api}: mask axis {a} has {b.shape[a]} lanes, the tile has {n}",
                           f"mask {list(b.shape)} vs tile {list(grid)}")
        proj = b.any(axis=tuple(i for i in range(b.ndim) if i != a))
        hit = np.flatnonzero(proj)
        if hit.size == 0:
            return EMPTY
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    if not b.any():
        return EMPTY
    sub = b[tuple(s if b.shape[a] != 1 else slice(None) for a, s in enumerate(box[:b.ndim]))]
    if not sub.all():
        raise UnsupportedError(f"{api}: a mask that does not select a rectangular box of lanes",
                               "use masks that bound each axis separately")
    if all(s.start == 0 and s.stop == n for s, n in zip(box, grid)):
        return None
    return tuple(box)


# ---- loop indices ---------------------------------------------------------------------------
_TRACED_ONCE = ("classic NKI traces an nl.affine_range / nl.sequential_range body once, with a "
                "symbolic index")
_NONE: frozenset = frozenset()
NONAFFINE = "a non-affine operation on a loop index: "


def taint_of(x) -> frozenset:
    """The taint of a loop index or index expression (empty for plain ints)."""
    return getattr(x, "taint", _NONE)


class LoopIndex(_Compares, int):
    """The index of a classic ``affine_range`` / ``sequential_range`` loop: an int for affine
    arithmetic and slicing, whose comparisons are predicates (usable as ``mask=``, joined with
    ``&``, or as an ``if`` condition, which the classic compiler resolves per iteration);
    ``if i:`` on the bare index raises.

    ``taint``: why a value computed from loop indices is not an affine expression of
    nl.affine_range indices (S25 general/nki/api/nki.api.shared.rst "NKI API Masking"): it
    depends on an nl.sequential_range index, or went through ``//``, ``%`` or a product of two
    indices. Empty (the class default) for an affine value; a mask using a tainted value is
    reported by :mod:`nkigen.sim.classic.forms`."""

    taint: frozenset = _NONE
    # the value as an affine function of the loop indices: ((loop id, coefficient), ...);
    # OPAQUE among them after //, % or a product of two indices (no longer affine)
    coef: tuple = ()

    def _op(self, o, f, nonaffine: str = "", lin=None):
        if not isinstance(o, _INT) or isinstance(o, bool):
            return NotImplemented
        r = LoopIndex(f(int(self), int(o)))
        st, ot = self.taint, getattr(o, "taint", _NONE)
        if nonaffine and (nonaffine != "*" or isinstance(o, LoopIndex)):
            st = st | {NONAFFINE + ("a product of two loop indices" if nonaffine == "*"
                                    else f"'{nonaffine}'")}
        if st or ot:
            r.taint = st | ot
        oc = getattr(o, "coef", ())
        if lin is not None:
            c = lin(self.coef, oc, int(o))
        else:
            c = _merge(self.coef, oc, 1) + ((OPAQUE, 1),)
        if c:
            r.coef = c
        return r

    def __add__(self, o):
        return self._op(o, lambda a, b: a + b, lin=lambda a, b, _: _merge(a, b, 1))

    def __radd__(self, o):
        return self._op(o, lambda a, b: b + a, lin=lambda a, b, _: _merge(a, b, 1))

    def __sub__(self, o):
        return self._op(o, lambda a, b: a - b, lin=lambda a, b, _: _merge(a, b, -1))

    def __rsub__(self, o):
        return self._op(o, lambda a, b: b - a, lin=lambda a, b, _: _merge(b, a, -1))

    def __mul__(self, o):
        return self._op(o, lambda a, b: a * b, "*", lin=_scaled)

    def __rmul__(self, o):
        return self._op(o, lambda a, b: b * a, "*", lin=_scaled)

    def __floordiv__(self, o):
        return self._op(o, lambda a, b: a // b, "//")

    def __mod__(self, o):
        return self._op(o, lambda a, b: a % b, "%")

    def __neg__(self):
        r = tainted(-int(self), self.taint)
        if self.coef:
            r.coef = tuple((k, -v) for k, v in self.coef)
        return r

    def __bool__(self) -> bool:
        raise SimError(f"Python control flow on a loop index: {_TRACED_ONCE}",
                       f"index value {int(self)}",
                       "use a mask= predicate (e.g. mask=(i * 128 + nl.arange(128)[:, None] < n))"
                       " or nl.static_range for a loop whose body branches on its index")

    def __float__(self) -> float:
        # review 10 R10-6: a scalar operand is "a compile-time constant scalar" (S25
        # general/nki/api/nki/isa/__init__.py tensor_scalar, activation; neuronxcc, SDK 2.25),
        # and only nl.static_range is unrolled "during NKI kernel tracing" (S25
        # general/nki/api/nki/language/__init__.py static_range): an affine_range index has no
        # Python value, so float(i) cannot be one constant per iteration
        raise SimError(f"float() of a loop index: {_TRACED_ONCE}, so it has no trace-time "
                       "value to make a compile-time constant scalar of",
                       f"index value {int(self)}",
                       "put the value on chip (nisa.iota of the affine expression, then a "
                       "tile operand), or loop with nl.static_range (a Python int index)")

    # comparisons are predicates (usable as mask=, e.g. a causal mask ``i * 128 >= j * 512``)
    def _cmp(self, o, op: str):
        if isinstance(o, Expr):
            return Cmp(Expr(int(self), {}, 1, taint=self.taint), op, o)
        if isinstance(o, _INT) and not isinstance(o, bool):
            return Cmp(Expr(int(self), {}, 1, taint=self.taint), op, o)
        return NotImplemented

    __hash__ = int.__hash__

    def __repr__(self) -> str:
        return f"LoopIndex({int(self)})"


OPAQUE = "nonaffine"      # a coefficient key: the value went through //, % or index * index


def _merge(a: tuple, b: tuple, sign: int) -> tuple:
    """The coefficients of ``A + sign * B`` (zeros dropped; sorted)."""
    d: dict = dict(a)
    for k, v in b:
        d[k] = d.get(k, 0) + sign * v
    return tuple(sorted(((k, v) for k, v in d.items() if v), key=lambda kv: str(kv[0])))


def _scaled(a: tuple, b: tuple, o: int) -> tuple:
    """The coefficients of ``A * o``: scaled by a plain int; opaque for index * index."""
    if b:
        return _merge(a, b, 1) + ((OPAQUE, 1),)
    return tuple((k, v * o) for k, v in a if v * o)


_LOOP_IDS = iter(range(1, 1 << 62))
SIZE_RULE = ("a tile extent (an nl.arange length, a slice's length, an nl.ndarray dimension) "
             "depends on an nl.affine_range / nl.sequential_range index: " + _TRACED_ONCE
             + ", so every extent must be a trace-time integer [S25 general/nki/api/nki/"
             "language/__init__.py static_range (only static_range is unrolled during NKI "
             "kernel tracing, unlike affine_range or sequential_range) and affine_range Notes "
             "(not unrolled until the compiler backend); the ragged last tile is a full tile "
             "under mask=: general/nki/api/nki.api.shared.rst \"NKI API Masking\" (neuronxcc, "
             "SDK 2.25)]")
SIZE_FIX = ("size the tile fully and exclude the ragged lanes with mask= (e.g. mask=(i * 128 + "
            "nl.arange(128)[:, None] < n)), or use nl.static_range for this loop")


def loop_dependent(x) -> bool:
    """Whether the int ``x`` varies with a loop index (nonzero coefficients)."""
    return bool(getattr(x, "coef", ()))


def check_extent(start, stop, what: str) -> None:
    """Refuse an extent ``stop - start`` that varies with a loop index (``min(128, n - i *
    128)`` as a size): classic NKI cannot trace it (:data:`SIZE_RULE`)."""
    sc, tc = getattr(start, "coef", ()), getattr(stop, "coef", ())
    if (sc or tc) and _merge(tc, sc, -1):
        raise SimError(SIZE_RULE, f"{what} {int(stop) - int(start)} in this iteration, "
                       "computed from a loop index", SIZE_FIX)


def tainted(value: int, taint: frozenset) -> LoopIndex:
    """A :class:`LoopIndex` of ``value`` carrying ``taint``."""
    r = LoopIndex(value)
    if taint:
        r.taint = taint
    return r


def traced_once(it, taint: frozenset = _NONE):
    """Wrap a loop iterator's ints as :class:`LoopIndex` (carrying ``taint``, and the loop's
    own coefficient 1)."""
    coef = ((next(_LOOP_IDS), 1),)
    for i in it:
        r = tainted(i, taint)
        r.coef = coef
        yield r
