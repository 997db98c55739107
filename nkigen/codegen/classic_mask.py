"""Classic-dialect ragged tiles: full tiles plus ``mask=`` instead of ``min()`` of loop indices.

Stage: render (KernelPlan -> KernelPlan, classic dialect only). Classic NKI traces an
``nl.affine_range`` / ``nl.sequential_range`` body once with a symbolic loop index (S25
general/nki/api/nki/language/__init__.py affine_range, SDK 2.25), so a tile size computed with
Python ``min(T, E - i * T)`` of a loop index is not a trace-time integer. The classic tutorials
size every tile fully and clip the ragged last tile with ``mask=`` (S25
general/nki/examples/layernorm/layernorm_nki_kernel.py, rmsnorm/rmsnorm_nki_kernels.py:
``mask=(i * 128 + i_p < num_rows)``; the mask parameter: S25
general/nki/api/nki.api.shared.rst "NKI API Masking", a compile-time execution predicate).

This pass rewrites the plan that way: every loop-dependent ``Let x = Min(T, E)`` (T a number)
disappears, each slice or access-pattern count of size ``x`` becomes the full ``T``, and every
instruction touching such a view gets a :class:`Masked` wrapper carrying the predicate
``lane < E`` (nested ``Min`` sizes give one comparison per bound, joined with ``&``; a bound
the loop ranges already guarantee is left out). Sizes derived from a ragged one (tile counts)
are computed from the full size: the extra iterations are masked out entirely.

Three more rewrites keep every classic loop affine/sequential (no Python computation on an
index; the nl.static_range of an unrolled loop is a debugging fall-back there):

* a ragged contraction (partition) extent of a matmul operand stays the full tile; a tile
  with no lane in range is skipped by a mask on the loop indices alone, and a partly filled
  one is contracted against operand tiles whose lanes past the bound were zeroed first
  (:class:`Pad`; not needed when the sizes' ``multiple_of`` checks make every tile whole);
* ``if lin == first/last`` on loop indices (the matmul's first / last contraction block)
  becomes one loop-index mask per branch on the branch's instructions;
* an ``affine_select`` whose predicate has no lane term becomes a masked copy and a masked
  fill;
* a loop branching on its index's parity (``i % 2``) becomes a loop over index pairs, and a
  loop read only as ``i // d`` and ``i % d`` becomes two nested loops;
* a loop count of a ragged size uses the size's largest value over the enclosing loops
  (``Min(T, max E)``, a trace-time int) rather than ``T``.

Masks never depend on an ``nl.sequential_range`` index: each side of a mask comparison must be
an affine expression of ``nl.arange()``, ``nl.affine_range()`` or ``nl.program_id()`` (S25
general/nki/api/nki.api.shared.rst "NKI API Masking", SDK 2.25; a sequential_range index is
not in that list). A sequential loop whose ragged last iteration or last-iteration branch
would need one is peeled (:meth:`_Pass.peel`, :class:`Peeled`): the loop runs the full
iterations, the last one is issued once after it with a trace-time Python int index (the same
section's remedy for a ragged tile: a loop over the full tiles, then one invocation on the
remainder), and both run one body, written once as a helper function (ahead.extract). An
affine tile loop whose ragged tile is a matmul's moving free size is peeled the same way, so
that matmul is issued at the ragged size (below: no lane mask on a matmul).

nc_matmul masks carry no ``nl.arange`` lane term: the section's matmul paragraph says a lane
mask cannot tell the result's two free axes apart (it introduces operand masking instead), so
a matmul is only skipped whole by a loop-index predicate ("Skip ineffectual instructions");
result rows / columns past a bound are computed on don't-care lanes and dropped by the masked
eviction and store that read them.

A full tile extent may be a size the kernel computes before its loops (a Python int at trace
time); tiles of three axes get one ``nl.arange`` axis per tile axis in their masks.

A kernel the pass cannot express this way is returned unchanged (``apply`` returns the plan
and the reason; render then keeps the loops static where Python needs the index, see
render._trace_time_loop_vars). No shipped spec needs that (benchmarks/classic_loops.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.plan_ext import (
    AffineSelect,
    CopyPredicated,
    FindIndex8,
    GatherDma,
    Iota,
    Max8,
    TensorTensorScan,
    VeTranspose,
)
from nkigen.codegen.pyexpr import py
from nkigen.codegen.symcache import Min

ZERO = sympy.Integer(0)


@dataclass(frozen=True)
class Masked:
    """An instruction node and the ``mask=`` predicate (Python source) it is issued with."""

    node: object
    mask: str


@dataclass(frozen=True)
class Pad(Masked):
    """The zero fill of a matmul operand tile (:meth:`_Pass.zero_pad`), an empty mask being
    none. Issued on GpSimd (S25 general/nki/api/nki/isa/__init__.py memset: "using Vector or
    GpSimd Engine", ``engine=``): in order on VectorE it would wait behind the previous
    iteration's PSUM evictions, and the operand's load waits for it."""

    engine: str = "gpsimd"


@dataclass(frozen=True)
class Peeled(P.Loop):
    """A sequential loop over every iteration but the last, that one issued after the loop
    with a trace-time index (:meth:`_Pass.peel`). ``body`` is one iteration; its top-level
    ``Let``s of ``params`` hold their values in a full iteration (a ragged size at its full
    tile). ``last`` are ``Let``s, in the enclosing scope, binding the index and ``params`` for
    the last iteration; ``flag`` names the last-iteration flag (False in the loop, True after
    it) that the body's :class:`FlagIf` nodes test, or is empty. Render writes the body once as
    a helper function called in the loop and once after it (ahead.extract)."""

    params: tuple[str, ...] = ()
    last: tuple = ()
    flag: str = ""


@dataclass(frozen=True)
class FlagIf(P.If):
    """``if <flag>:`` on a :class:`Peeled` loop's last-iteration flag, a Python bool at trace
    time (lhs and rhs are unused zeros)."""

    flag: str = ""


class _Unsupported(Exception):
    pass


# instructions whose classic call takes mask= over the grid of their (first) input tile (S25
# general/nki/api/nki/isa/__init__.py: activation, tensor_tensor, tensor_scalar,
# scalar_tensor_tensor, tensor_reduce, reciprocal, tensor_copy, memset, dma_copy (indirect
# too), tensor_tensor_scan, iota, affine_select, max8, nc_find_index8 ("applied only to the
# data tensor"), tensor_copy_predicated, dma_transpose and nc_transpose (the source tile's
# axes), nc_matmul (a box of the result); the masking rule: S25
# general/nki/api/nki.api.shared.rst "NKI API Masking")
_MASKABLE: tuple[type, ...] = (
    P.Dma, P.Matmul, P.Activation, P.TensorTensor, P.TensorScalar, P.ScalarTensorTensor,
    P.TensorReduce, P.Reciprocal, P.TensorCopy, P.Memset, TensorTensorScan, P.DmaTranspose,
    P.PeTranspose, VeTranspose, Max8, FindIndex8, GatherDma, Iota, AffineSelect,
    CopyPredicated)

# which mask grid axis each view axis of a node's operand is, where that is not the view's own
# axis order: the contraction axis of a matmul operand has none; a transpose's mask is over its
# source, so the destination's axes are swapped
_AXES: dict[type, dict[str, tuple[int | None, ...]]] = {
    P.Matmul: {"dst": (0, 1), "stationary": (None, 0), "moving": (None, 1)},
    P.DmaTranspose: {"dst": (1, 0)}, P.PeTranspose: {"dst": (1, 0)},
    VeTranspose: {"dst": (1, 0)}}

# a matmul whose moving operand has two free axes (the convolution's [rows, columns] block):
# its result box is over the flattened moving free size, which no per-axis lane bound
# describes, so those axes are computed whole (from in-bounds SBUF lanes of the full tiles) and
# clipped where the result is evicted and stored (masked there); _UNMASKED marks such an axis
_UNMASKED = -2
_AXES_3D: dict[type, dict[str, tuple[int | None, ...]]] = {
    P.Matmul: {"dst": (0, _UNMASKED, _UNMASKED), "stationary": (None, 0),
               "moving": (None, _UNMASKED, _UNMASKED)}}

# size fields of the nodes whose tile extents are numbers, not views: the grid axis of each
_SIZE_AXES = {"psz": 0, "fsz": 1, "fcount": 1}


def _syms(e) -> set[str]:
    return {s.name for s in sympy.sympify(e).free_symbols}


def _min_parts(e, dep: set[str]) -> tuple[sympy.Expr, sympy.Expr] | None:
    """``Min(T, E)`` with one argument free of loop variables -> (T, E). T is a number, or a
    size the kernel computes before its loops (a Python int at trace time, e.g. the pooling
    planes' rows per block)."""
    if not isinstance(e, sympy.Min) or len(e.args) != 2:
        return None
    fixed = [a for a in e.args if not (_syms(a) & dep)]
    rest = [a for a in e.args if _syms(a) & dep]
    if len(fixed) != 1 or len(rest) != 1:
        return None
    return fixed[0], rest[0]


class _Pass:
    def __init__(self, multiples: dict[str, int] | None = None,
                 operands: set[str] | None = None) -> None:
        self.multiples = multiples or {}                 # size -> a known divisor (checks)
        self.operands = operands or set()                # tiles read as matmul operands
        self.dep: set[str] = set()                       # loop variables and lets of them
        self.guards: list[str] = []     # loop-index conditions of the branches being flattened
        self.ragged: dict[str, tuple[sympy.Expr, sympy.Expr]] = {}
        self.rank = 2                   # axes of the tile grid of the node being masked
        self.values: dict[str, sympy.Expr] = {}  # dependent lets, for bound checks
        self.counts: dict[str, sympy.Expr] = {}          # loop var -> (full) trip count
        self.plain: dict[str, sympy.Expr] = {}   # lets of no loop index (trace-time ints)
        self.lane_free = False          # masking an nc_matmul: loop-index predicates only
        self.opaque: set[str] = set()   # a peeled loop's values (each call passes its own)
        self.at_full: dict[str, sympy.Expr] = {}    # ... and their full-iteration values

    # ---- sizes -----------------------------------------------------------------------------
    def full(self, e) -> sympy.Expr:
        e = sympy.sympify(e)
        for _ in range(8):
            names = _syms(e) & set(self.ragged)
            if not names:
                return e
            e = e.subs({x: self.ragged[x.name][0] for x in e.free_symbols if x.name in names})
        raise _Unsupported("ragged sizes nest too deeply")

    def tight(self, e) -> sympy.Expr:
        """A loop count with each ragged size ``Min(T, E)`` replaced by ``Min(T, max E)``, the
        largest value it takes over the enclosing loops (a trace-time size: no loop index in
        it), or by ``T`` where that maximum is not found: a loop over the tiles of a block no
        longer than the tensor runs no iteration its mask would empty (M = 128 queries in a
        2048-query block: 1 row tile, not 16). Every iteration past the ragged bound is still
        masked as with ``T``."""
        e = sympy.sympify(e)
        names = _syms(e) & set(self.ragged)
        if not names:
            return e
        sub = {}
        for x in e.free_symbols:
            if x.name not in names:
                continue
            t, big = self.ragged[x.name]
            big = self.expand(big)
            for v in sorted(big.free_symbols, key=str):
                if v.name not in self.dep:
                    continue
                c = self.counts.get(v.name)
                if not big.is_polynomial(v) or sympy.Poly(big, v).degree() != 1:
                    big = None
                    break
                a = sympy.Poly(big, v).coeff_monomial(v)
                if a.is_nonpositive:
                    big = big.subs(v, 0)
                elif c is not None and sympy.sympify(c).is_Integer:
                    big = big.subs(v, int(c) - 1)
                else:
                    big = None
                    break
            ok = big is not None and not (_syms(big) & self.dep)
            sub[x] = Min(t, sympy.expand(big)) if ok else t
        return self.full(e.subs(sub))

    def is_ragged(self, e) -> bool:
        return bool(_syms(e) & set(self.ragged))

    def bounds(self, size) -> list[sympy.Expr]:
        """``lane < size`` as a conjunction of ``lane < s`` with no ragged name in any s."""
        size = sympy.sympify(size)
        names = sorted(_syms(size) & set(self.ragged))
        if not names:
            return [size]
        x = next(v for v in size.free_symbols if v.name == names[0])
        t, e = self.ragged[names[0]]
        if not size.is_polynomial(x) or sympy.Poly(size, x).degree() != 1 \
                or not (sympy.Poly(size, x).coeffs()[0] > 0):
            raise _Unsupported(f"size {size} is not increasing in {x}")
        return self.bounds(size.subs(x, t)) + self.bounds(size.subs(x, e))

    def needed(self, s: sympy.Expr, lanes) -> bool:
        """False when the loop ranges already guarantee ``s >= lanes``."""
        e = s
        for _ in range(8):
            keys = [k for k in e.free_symbols if k.name in self.values]
            if not keys:
                break
            e = e.subs({k: self.values[k.name] for k in keys})
        e = sympy.expand(e)
        worst = e
        for v in sorted(e.free_symbols, key=str):
            c = self.counts.get(v.name)
            if c is None or not sympy.sympify(c).is_Integer or not e.is_polynomial(v) \
                    or sympy.Poly(e, v).degree() > 1:
                continue
            a = sympy.Poly(e, v).coeff_monomial(v)
            worst = worst.subs(v, int(c) - 1 if a < 0 else 0)
        worst = sympy.expand(worst - lanes)
        return not (worst.is_number and worst >= 0) and not self.whole_loop(e, lanes)

    def plain_value(self, e) -> sympy.Expr:
        """``e`` with the trace-time lets (no loop index in them) replaced by their values."""
        e = sympy.sympify(e)
        for _ in range(8):
            keys = [k for k in e.free_symbols if k.name in self.plain]
            if not keys:
                break
            e = e.subs({k: self.plain[k.name] for k in keys})
        return e

    def whole_loop(self, e, lanes) -> bool:
        """True when ``e`` is ``X - lanes * v`` for a loop ``v`` over ``ceiling(X / lanes)``
        tiles and the checks make ``X`` a multiple of ``lanes``: every tile of the loop is
        whole (``lane < e`` always holds)."""
        for v in sorted(e.free_symbols, key=str):
            c = self.plain_value(self.counts.get(v.name, sympy.Integer(0)))
            if not isinstance(c, sympy.ceiling):
                continue
            x = sympy.expand(c.args[0] * lanes)
            if sympy.expand(e - (x - lanes * v)) == 0 and self.whole_tiles(x, lanes):
                return True
        return False

    def cond(self, axis: int, lanes, s: sympy.Expr) -> str:
        # one nl.arange axis per grid axis, as the tile's own index grid (2 axes: [:, None] /
        # [None, :]; a 3-axis tile [None, :, None] for its second)
        where = ", ".join(":" if k == axis else "None" for k in range(max(self.rank, 2)))
        lane = f"nl.arange({py(lanes)})[{where}]"
        s = sympy.expand(s)
        moving = sum((t for t in sympy.Add.make_args(s) if _syms(t) & self.dep), sympy.Integer(0))
        fixed = sympy.expand(s - moving)
        if moving == 0:
            return f"({lane} < {py(fixed)})"
        return f"({py(-moving)} + {lane} < {py(fixed)})"

    # ---- views -----------------------------------------------------------------------------
    def view(self, r, axes, conds: dict[int, tuple[Any, list[str]]]):
        if isinstance(r, P.Ref):
            dims: list[P.Dim] = []
            k = 0
            for d in r.dims:
                if isinstance(d, P.Index):
                    if self.is_ragged(d.at):
                        raise _Unsupported("ragged index")
                    dims.append(d)
                    continue
                axis = axes[k] if axes is not None else k
                k += 1
                if self.is_ragged(d.start) or self.is_ragged(d.step):
                    raise _Unsupported("ragged slice start")
                if self.is_ragged(d.size):
                    dims.append(self.ragged_dim(d, axis, conds))
                else:
                    dims.append(d)
            return replace(r, dims=tuple(dims))
        if isinstance(r, P.ApRef):
            if self.is_ragged(r.offset):
                raise _Unsupported("ragged offset")
            pat = []
            for k, (st, n) in enumerate(r.pattern):
                if self.is_ragged(st):
                    raise _Unsupported("ragged step")
                if self.is_ragged(n):
                    axis = axes[k] if axes is not None else k
                    n = self.mask_axis(n, axis, conds)
                pat.append((st, n))
            return replace(r, pattern=tuple(pat))
        if isinstance(r, P.Scalar) and self.is_ragged(r.value):
            raise _Unsupported("ragged scalar")
        return r

    def ragged_dim(self, d: P.Slice, axis, conds) -> P.Slice:
        return replace(d, size=self.mask_axis(d.size, axis, conds))

    def lanes(self, size) -> sympy.Expr:
        """The full tile extent of a ragged ``size``: a number or a trace-time size computed
        before the loops (never a loop variable: nl.arange takes a Python int)."""
        lanes = self.full(size)
        if _syms(lanes) & self.dep:
            raise _Unsupported(f"full size {lanes} depends on a loop index")
        return lanes

    def mask_axis(self, size, axis, conds) -> sympy.Expr:
        if axis is None:
            return self.contraction(size, conds)
        if axis == _UNMASKED:
            return self.lanes(size)
        n = self.lanes(size)
        if self.lane_free:
            # nc_matmul: no lane term (S25 general/nki/api/nki.api.shared.rst "NKI API
            # Masking", the matmul paragraph: a lane mask cannot tell the result's free axes
            # apart); the matmul is skipped only when its first lane is out of range, lanes
            # past the bound are don't-care (the masked eviction drops them)
            for s in self.bounds(size):
                if self.needed(s, n):
                    moving, fixed = self.split(s)
                    if moving != 0:
                        c = f"({py(-moving)} < {py(fixed)})"
                        skip = conds.setdefault(-1, (1, []))
                        if c not in skip[1]:
                            skip[1].append(c)
            return n
        have = conds.setdefault(axis, (n, []))
        if have[0] != n:
            raise _Unsupported(f"one grid axis, two lane counts {have[0]} {n} {axis}")
        for s in self.bounds(size):
            if self.needed(s, n):
                c = self.cond(axis, n, s)
                if c not in have[1]:
                    have[1].append(c)
        return n

    def expand(self, s) -> sympy.Expr:
        """``s`` with the dependent lets replaced by their values."""
        e = sympy.sympify(s)
        for _ in range(8):
            keys = [k for k in e.free_symbols if k.name in self.values]
            if not keys:
                break
            e = e.subs({k: self.values[k.name] for k in keys})
        return sympy.expand(e)

    def whole_tiles(self, s, lanes) -> bool:
        """True when ``s`` is a multiple of ``lanes`` at every size the checks allow (each
        size replaced by its ``multiple_of`` times a fresh integer): ``lane < s`` then keeps
        a tile's lanes all or none."""
        if not sympy.sympify(lanes).is_Integer:
            return False
        lanes = int(lanes)
        e = self.expand(s)
        e = sympy.expand(e.subs({x: self.multiples[x.name] * sympy.Symbol(f"_q_{x.name}",
                                                                           integer=True)
                                 for x in e.free_symbols if x.name in self.multiples}))
        return all(int(t.as_coeff_Mul()[0]) % lanes == 0 for t in sympy.Add.make_args(e)
                   if t.as_coeff_Mul()[0].is_Integer)

    def split(self, s) -> tuple[sympy.Expr, sympy.Expr]:
        """``s`` as (its terms in loop variables and their lets, the rest)."""
        s = sympy.expand(s)
        moving = sum((t for t in sympy.Add.make_args(s) if _syms(t) & self.dep), sympy.Integer(0))
        return moving, sympy.expand(s - moving)

    def contraction(self, size, conds) -> sympy.Expr:
        """A ragged contraction (partition) extent of a matmul operand: nc_matmul's mask=
        selects a box of its result only (S25 general/nki/api/nki.api.shared.rst "NKI API
        Masking", the matmul paragraph), so the operand stays its full tile. A tile with no
        lane in range is skipped with a condition on the loop indices alone (an affine_range
        index is a legal mask term, same section); in a partly filled one the operand tiles'
        lanes past the bound were zeroed when they were written (:meth:`zero_pad`; never
        needed when the sizes' checks make every tile whole or empty), so they add nothing."""
        n = self.lanes(size)
        for s in self.bounds(size):
            if not self.needed(s, n):
                continue
            moving, fixed = self.split(s)
            if moving != 0:
                c = f"({py(-moving)} < {py(fixed)})"
                have = conds.setdefault(-1, (1, []))
                if c not in have[1]:
                    have[1].append(c)
        return n

    def zero_pad(self, dst: Any) -> Pad | None:
        """A memset to zero of a matmul operand tile with a ragged partition bound, issued
        before the (masked) write, so a full-size contraction tile adds zeros past the bound;
        masked by a loop-index condition to the iterations whose tile is not whole. The whole
        tile, not the lanes past the bound: an engine access of more than 64 partitions
        starts at partition 0 (the start-partition rule, S25
        general/nki/arch/trainium_inferentia2_arch.rst "data streaming"; conformance row
        pm.start_partition). None when no tile can be ragged."""
        if not isinstance(dst, P.Ref) or dst.name not in self.operands:
            return None
        first = next((d for d in dst.dims if isinstance(d, P.Slice)), None)
        if first is None or not self.is_ragged(first.size):
            return None
        n = self.lanes(first.size)
        need = [s for s in self.bounds(first.size)
                if self.needed(s, n) and not self.whole_tiles(s, n)]
        if not need:
            return None
        if len(need) > 1:
            raise _Unsupported("a contraction tile with two ragged bounds")
        dims = tuple(replace(d, size=self.whole(d.size)) if isinstance(d, P.Slice) else d
                     for d in dst.dims)
        if any(self.is_ragged(e) for e in _exprs(dims)):
            raise _Unsupported("a ragged operand tile offset")
        zero = P.Memset(replace(dst, dims=dims), sympy.Float(0.0))
        # the free lanes the write keeps (a memset may start at any free offset)
        conds: dict[int, tuple[Any, list[str]]] = {}
        rest = tuple(d for d in dst.dims if d is not first)
        self.view(replace(dst, dims=rest), tuple(range(1, len(rest) + 1)), conds)
        parts = conds.get(1, (0, []))[1]
        moving, fixed = self.split(need[0])
        if moving != 0:
            # only a partly filled tile: lanes in range (0 < s) but not all of them (s < n)
            parts = [f"({py(-moving)} < {py(fixed)})", f"({py(-moving + n)} > {py(fixed)})",
                     *parts]
        return Pad(zero, " & ".join(parts))

    def peeled_pad(self, dst: Any) -> P.If | None:
        """The zero fill of a matmul operand tile whose partition count is a peeled loop's
        value (:meth:`peel`): in the call where that value is short of its full tile, the
        partitions past it are zeroed first (the whole partitions, from 0, as
        :meth:`zero_pad`), so the full-size contraction adds zeros there. A trace-time
        ``if`` on the value (a Python int in every call); None when every value is whole."""
        if not isinstance(dst, P.Ref) or dst.name not in self.operands:
            return None
        first = next((d for d in dst.dims if isinstance(d, P.Slice)), None)
        full = None if first is None else self.peeled_value(first.size)
        if first is None or full is None or not full.is_Integer \
                or self.multiples.get(str(first.size), 1) % int(full) == 0:
            return None
        dims = tuple(replace(d, size=full) if d is first else d for d in dst.dims)
        fill: tuple = (Pad(P.Memset(replace(dst, dims=dims), sympy.Float(0.0)), ""),)
        return P.If(first.size, full, fill, (), P.Cmp.LT)

    def branch_masks(self, n: P.If) -> tuple[str, str] | None:
        """``if lin == v`` on loop indices (the first / last contraction block of a matmul) as
        two loop-index masks, one per branch, or None when it is no such condition.

        An ``if`` on an affine_range / sequential_range index needs its value at trace time
        (a static_range loop); a mask= term may be an affine expression of those indices and a
        mask may skip an instruction outright (S25 general/nki/api/nki.api.shared.rst "NKI
        API Masking": "Skip ineffectual instructions"), so each branch's instructions carry
        their branch's condition instead. ``lin == v`` is one comparison each way only where
        ``v`` is the least or greatest value ``lin`` takes over the loop ranges (then the other
        branch is ``lin > v`` / ``lin < v``); ``lin`` must be linear in loop variables."""
        if n.cmp is not P.Cmp.EQ:
            return None
        e = self.expand(sympy.sympify(n.lhs) - sympy.sympify(n.rhs))
        moving, fixed = self.split(e)
        if moving == 0:
            return None
        lo = hi = sympy.Integer(0)
        for v in sorted((x for x in moving.free_symbols if x.name in self.dep), key=str):
            c = self.counts.get(v.name)
            if c is None or not moving.is_polynomial(v) or sympy.Poly(moving, v).degree() != 1:
                return None
            a = sympy.Poly(moving, v).coeff_monomial(v)
            if _syms(a) & self.dep:
                return None
            span = a * (sympy.sympify(c) - 1)
            # ceiling/floor of x >= 0 is >= 0: judge the sign on the argument
            sign = a.replace(sympy.ceiling, lambda x: x).replace(sympy.floor, lambda x: x)
            if sign.is_nonnegative:
                hi += span
            elif sign.is_nonpositive:
                lo += span
            else:
                return None
        m = py(moving)
        if sympy.simplify(lo + fixed) == 0:          # lin takes its least value: lin <= v
            return f"({m} < {py(-fixed + 1)})", f"({m} >= {py(-fixed + 1)})"
        if sympy.simplify(hi + fixed) == 0:          # its greatest: lin >= v
            return f"({m} >= {py(-fixed)})", f"({m} < {py(-fixed)})"
        return None

    # ---- nodes -----------------------------------------------------------------------------
    def instr(self, n: Any) -> Any:
        got = self.masked(n)
        if not self.guards:
            return got
        items = got if isinstance(got, tuple) else (got,)
        if not all(isinstance(x.node if isinstance(x, Masked) else x, _MASKABLE)
                   for x in items):
            raise _Unsupported(f"{type(n).__name__} in a branch on a loop index")
        guard = " & ".join(self.guards)
        out = tuple(replace(x, mask=f"{guard} & {x.mask}" if x.mask else guard)
                    if isinstance(x, Masked) else Masked(x, guard) for x in items)
        return out if len(out) > 1 else out[0]

    def masked(self, n: Any) -> Any:
        touched = any(self.is_ragged(e) for e in _exprs(n))
        bcast = isinstance(n, P.Dma) and isinstance(n.src, P.ApRef) \
            and sympy.sympify(n.src.pattern[0][0]) == 0
        if bcast and (touched or any(self.peeled_value(c) is not None
                                     for _, c in n.src.pattern[1:])):
            return self.broadcast(n)
        if not touched:
            fill = None if _reads_own_dst(n) else self.peeled_pad(getattr(n, "dst", None))
            return (fill, n) if fill is not None else n
        if not isinstance(n, _MASKABLE):
            raise _Unsupported(f"{type(n).__name__}(mask=...) is not emitted")
        item: Any = n
        rank = max([sum(isinstance(d, P.Slice) for d in x.dims) if isinstance(x, P.Ref)
                    else len(x.pattern) for f in fields(item)
                    if isinstance(x := getattr(n, f.name), (P.Ref, P.ApRef))] + [2])
        table = _AXES_3D if rank > 2 and type(n) in _AXES_3D else _AXES
        # a matmul's mask grid is its 2-D result [stationary free, moving free]
        self.rank = 2 if isinstance(n, P.Matmul) else rank
        self.lane_free = isinstance(n, P.Matmul)
        conds: dict[int, tuple[Any, list[str]]] = {}
        new = {}
        for f in fields(item):
            x = getattr(n, f.name)
            if isinstance(x, (P.Ref, P.ApRef, P.Scalar)):
                axes = table.get(type(n), {}).get(f.name)
                new[f.name] = self.view(x, axes, conds)
            elif isinstance(x, sympy.Basic) and self.is_ragged(x):
                if f.name not in _SIZE_AXES:
                    raise _Unsupported(f"ragged {f.name}")
                new[f.name] = self.mask_axis(x, _SIZE_AXES[f.name], conds)
        node = replace(item, **new)
        self.lane_free = False
        parts = [c for a in sorted(conds) for c in conds[a][1]]
        out = Masked(node, " & ".join(parts)) if parts else node
        pad = None if _reads_own_dst(n) else self.zero_pad(getattr(n, "dst", None))
        return (pad, out) if pad is not None else out

    def broadcast(self, n: P.Dma) -> P.Dma | Masked:
        """A partition-broadcast load (rendered as nl.load of the row + broadcast_to, whose
        copy into the tile takes no mask=): broadcast the row to all the tile's partitions.
        The same row lands on the extra partitions, which the masked instructions never read;
        the destination is an on-chip tile of that full size."""
        src, dst = n.src, n.dst
        assert isinstance(src, P.ApRef)
        if not isinstance(dst, P.Ref) or self.is_ragged(src.offset) \
                or any(self.is_ragged(st) for st, _ in src.pattern):
            raise _Unsupported("a ragged partition broadcast into HBM")
        conds: dict[int, tuple[Any, list[str]]] = {}
        self.rank = 2

        def row(c):
            # a peeled loop's value (the block's width in this call): the full block's row,
            # the lanes past the value masked, so the broadcast fills the whole tile and binds
            # it without a copy (render._WHOLE), as with a ragged width
            full = self.peeled_value(c)
            if full is None:
                return self.mask_axis(c, 1, conds) if self.is_ragged(c) else c
            have = conds.setdefault(1, (full, []))
            have[1].append(self.cond(1, full, sympy.sympify(c)))
            return full

        pat = ((src.pattern[0][0], self.whole(src.pattern[0][1])),) + tuple(
            (st, row(c)) for st, c in src.pattern[1:])
        dims = tuple(replace(d, size=self.peeled_value(d.size) or self.whole(d.size))
                     if isinstance(d, P.Slice) else d for d in dst.dims)
        if any(isinstance(d, P.Index) and self.is_ragged(d.at) for d in dims) or any(
                isinstance(d, P.Slice) and self.is_ragged(d.start) for d in dims):
            raise _Unsupported("a ragged broadcast offset")
        node = replace(n, src=replace(src, pattern=pat), dst=replace(dst, dims=dims))
        # a ragged row: nl.load masks its [1, T] grid; broadcast lanes past the row's end are
        # never read by the masked instructions
        parts = [c for a in sorted(conds) for c in conds[a][1]]
        return Masked(node, " & ".join(parts)) if parts else node

    def peeled_value(self, e) -> sympy.Expr | None:
        """The full-iteration value of a peeled loop's value ``e`` (a bare name), else None."""
        e = sympy.sympify(e)
        return self.at_full.get(e.name) if isinstance(e, sympy.Symbol) else None

    def whole(self, size) -> sympy.Expr:
        if not self.is_ragged(size):
            return sympy.sympify(size)
        return self.lanes(size)

    def nodes(self, body) -> tuple:
        out: list = []
        for n in body:
            if isinstance(n, P.Let):
                value = sympy.sympify(n.value)
                if not (_syms(value) & self.dep):
                    if n.name not in self.opaque:
                        self.plain[n.name] = value
                    out.append(n)
                    continue
                self.dep.add(n.name)
                mp = _min_parts(value, self.dep)
                if mp is not None:
                    self.ragged[n.name] = mp
                    continue                 # a full tile + mask replaces the ragged size
                if value.has(sympy.Min, sympy.Max):
                    raise _Unsupported(f"let {n.name} = {value}")
                value = self.full(value)
                self.values[n.name] = value
                out.append(replace(n, value=value))
            elif isinstance(n, Peeled):
                self.opaque.update(n.params)
                self.at_full.update((x.name, sympy.sympify(x.value)) for x in n.body
                                    if isinstance(x, P.Let) and x.name in n.params)
                count = self.tight(n.count)
                self.dep.add(n.var)
                self.counts[n.var] = self.expand(count)
                out.append(replace(n, count=count, body=self.nodes(n.body)))
            elif isinstance(n, P.Loop) and (cut := self.peel(n)) is not None:
                out.extend(self.nodes(cut if isinstance(cut, tuple) else (cut,)))
            elif isinstance(n, P.Loop) and (nest := self.delinearize(n)) is not None:
                out.extend(self.nodes((nest,)))
            elif isinstance(n, P.Loop) and (pairs := self.parity_pairs(n)) is not None:
                out.extend(self.nodes((pairs,)))
            elif isinstance(n, P.Loop):
                count = self.tight(n.count)
                self.dep.add(n.var)
                self.counts[n.var] = self.expand(count)    # a let's name -> its number
                out.append(replace(n, count=count, body=self.nodes(n.body)))
            elif isinstance(n, P.If):
                if self.is_ragged(n.lhs) or self.is_ragged(n.rhs):
                    raise _Unsupported("branch on a ragged size")
                guards = self.branch_masks(n)
                if guards is None:
                    out.append(replace(n, then=self.nodes(n.then),
                                       orelse=self.nodes(n.orelse)))
                    continue
                for guard, part in zip(guards, (n.then, n.orelse)):
                    self.guards.append(guard)
                    try:
                        out.extend(self.nodes(part))
                    finally:
                        self.guards.pop()
            elif isinstance(n, (P.Comment, P.Alloc, P.Release)):
                if isinstance(n, P.Alloc) and any(self.is_ragged(s) for s in n.shape):
                    raise _Unsupported("ragged allocation")
                out.append(n)
            elif isinstance(n, AffineSelect) and (split := self.loop_select(n)) is not None:
                for guard, part in zip(*split):
                    self.guards.append(guard)
                    try:
                        got = self.instr(part)
                    finally:
                        self.guards.pop()
                    out.extend(got if isinstance(got, tuple) else (got,))
            else:
                got = self.instr(n)
                out.extend(got if isinstance(got, tuple) else (got,))
        return tuple(out)

    def peel(self, n: P.Loop) -> Peeled | tuple | None:
        """A sequential loop whose index a mask would need, as a :class:`Peeled` loop over its
        full iterations plus its last one issued with a trace-time index; None for any other
        loop (no mask needs the index, or the loop is not of the shape below).

        A top-level ``Let x = Min(T, X - T * i)`` of the loop over ``ceiling(X / T)``
        iterations is ``T`` in every iteration but the last, so it becomes a value the body
        takes from its caller (``T`` in the loop, ``min(...)`` of the trace-time last index
        after it): no ragged bound of the body then names the index. An ``if i == count - 1``
        anywhere in the body becomes an ``if`` on the last-iteration flag. A mask may not
        name an nl.sequential_range index (S25 general/nki/api/nki.api.shared.rst "NKI API
        Masking": each side of a comparison is an affine expression of nl.arange(),
        nl.affine_range() or nl.program_id()), and the same section's remedy for a ragged
        tile is a loop over the full tiles followed by one invocation on the remainder.

        An nl.affine_range loop is peeled the same way only where a matmul's moving free size
        derives from its ragged tile (:meth:`moving_ragged`). A loop of one iteration even at
        the peeled values' full size is returned as its body at index 0 (a node tuple)."""
        if n.kind not in (P.LoopKind.SEQUENTIAL, P.LoopKind.PARALLEL):
            return None
        count = self.plain_value(n.count)
        if _syms(count) & self.dep or not count.free_symbols:
            return None
        var = n.var
        if _syms(count) & self.opaque and sympy.simplify(count.subs(
                {x: self.at_full[x.name] for x in count.free_symbols
                 if x.name in self.at_full})) == 1:
            # one iteration even at a peeled loop's full value (a tile loop over a block no
            # wider than the tile): the body once, at index 0 (a trace-time int)
            return (P.Let(var, ZERO), *n.body)

        def at(e, value):
            e = sympy.sympify(e)
            return e.xreplace({x: value for x in e.free_symbols if x.name == var})

        env: dict[str, sympy.Expr] = {}        # top-level lets of the index, expanded
        params: dict[str, tuple[sympy.Expr, int]] = {}   # ragged size -> (T, its divisor)
        upto = -1
        for k, x in enumerate(n.body):
            if not isinstance(x, P.Let):
                continue
            val = sympy.expand(sympy.sympify(x.value).subs(
                {y: env[y.name] for y in sympy.sympify(x.value).free_symbols
                 if y.name in env}))
            if var not in _syms(val):
                continue
            mp = _min_parts(val, {var})
            if mp is not None:
                t, e = mp
                i = next((y for y in e.free_symbols if y.name == var), None)
                full = sympy.expand(at(e, 0))
                if i is None or sympy.expand(e - full + t * i) != 0:
                    return None
                if sympy.simplify(count - self.plain_value(sympy.ceiling(full / t))) != 0:
                    return None
                m = self.multiples.get(str(full)) if isinstance(full, sympy.Symbol) else None
                div = math.gcd(int(t), m) if m and t.is_Integer else 1
                params[x.name] = (t, div)
                upto = k
                continue
            if val.has(sympy.Min, sympy.Max, sympy.floor, sympy.ceiling, sympy.Mod):
                return None
            env[x.name] = val
        last = sympy.expand(count - 1)
        flag = f"last_{var}"
        flagged = [False]

        inner = {x.var: self.plain_value(x.count) for x in _all(n.body)
                 if isinstance(x, P.Loop)}

        def residual(d) -> sympy.Expr | None:
            """``d`` less its ``i - last`` part when ``d == 0`` holds exactly when ``i`` is
            the last index and the rest is 0 (the rest: loop indices with positive
            coefficients at their greatest value, a mixed-radix linear index); else None."""
            i = next((y for y in d.free_symbols if y.name == var), None)
            if i is None or not d.is_polynomial(i) or sympy.Poly(d, i).degree() != 1:
                return None
            a = sympy.Poly(d, i).coeff_monomial(i)
            if (-a).is_positive:
                d, a = sympy.expand(-d), -a
            if not a.is_positive:
                return None
            rest = sympy.expand(d - a * (i - last))
            top = rest
            for u in sorted(rest.free_symbols, key=str):
                c = inner.get(u.name, self.counts.get(u.name))
                if c is None:
                    continue                     # a size: a constant here
                if not rest.is_polynomial(u) or sympy.Poly(rest, u).degree() != 1 \
                        or not sympy.Poly(rest, u).coeff_monomial(u).is_positive:
                    return None
                top = top.subs(u, sympy.sympify(c) - 1)
            return rest if sympy.simplify(top) == 0 else None

        def flags(nodes) -> tuple:
            out = []
            for x in nodes:
                if isinstance(x, P.If) and x.cmp is P.Cmp.EQ:
                    d = sympy.sympify(x.lhs) - sympy.sympify(x.rhs)
                    d = sympy.expand(d.subs({y: env[y.name] for y in d.free_symbols
                                             if y.name in env}))
                    then, orelse = flags(x.then), flags(x.orelse)
                    rest = residual(d)
                    if rest is not None:
                        flagged[0] = True
                        if rest != 0:        # the other indices' part, tested on its own
                            loops = set(inner) | self.dep
                            lhs = sum((t for t in sympy.Add.make_args(rest)
                                       if {y.name for y in t.free_symbols} & loops),
                                      sympy.Integer(0))
                            then = (P.If(lhs, sympy.expand(lhs - rest), then, orelse),)
                        x = FlagIf(ZERO, ZERO, then, orelse, P.Cmp.EQ, flag)
                    else:
                        x = replace(x, then=then, orelse=orelse)
                elif isinstance(x, P.If):
                    x = replace(x, then=flags(x.then), orelse=flags(x.orelse))
                elif isinstance(x, P.Loop):
                    x = replace(x, body=flags(x.body))
                out.append(x)
            return tuple(out)

        body = flags(n.body)
        if not params and not flagged[0]:
            return None
        if n.kind is P.LoopKind.PARALLEL and not self.moving_ragged(n.body, params):
            return None
        body = tuple(P.Let(x.name, params[x.name][0])
                     if isinstance(x, P.Let) and x.name in params else x for x in body)
        for name, (_, div) in params.items():
            if div > 1:
                self.multiples[name] = div
        # the last iteration's index and values, with the lets they read (only those)
        need = {name for name in params}
        prefix = [x for x in n.body[:upto + 1] if isinstance(x, P.Let)]
        for x in reversed(prefix):
            if x.name in need:
                need |= _syms(x.value)
        head = (P.Let(var, sympy.sympify(n.count) - 1),
                *(x for x in prefix if x.name in need))
        return Peeled(var, sympy.sympify(n.count) - 1, n.kind, body, tuple(params), head,
                      flag if flagged[0] else "")

    def moving_ragged(self, body, params: dict[str, tuple[sympy.Expr, int]]) -> bool:
        """An nl.affine_range loop is peeled only where a matmul's moving free size is its
        ragged tile and that tile is not always whole: an nc_matmul takes no lane mask (S25
        general/nki/api/nki.api.shared.rst "NKI API Masking", the matmul paragraph), so the
        ragged tile would be computed whole (TensorE time grows with the moving free size,
        S25 general/nki/api/nki/isa/__init__.py nc_matmul); peeled, the last tile's size is a
        trace-time int and the matmul is issued at that size."""
        ragged = {name for name, (t, div) in params.items()
                  if not (t.is_Integer and div % int(t) == 0)}
        lets = {x.name: _syms(x.value) for x in _all(body) if isinstance(x, P.Let)}

        def reaches(names: set[str]) -> bool:       # through the body's lets
            seen: set[str] = set()
            while names - seen:
                nm = (names - seen).pop()
                seen.add(nm)
                names = names | lets.get(nm, set())
            return bool(seen & ragged)

        return any(isinstance(d, P.Slice) and reaches(_syms(d.size))
                   for x in _all(body) if isinstance(x, P.Matmul)
                   and isinstance(x.moving, P.Ref) for d in x.moving.dims[1:])

    def delinearize(self, n: P.Loop) -> P.Loop | None:
        """A loop over ``c * d`` blocks whose body reads its index only as ``i // d`` and
        ``i % d`` (the 2-D convolution's row/column output blocks) as two nested loops, the
        outer over ``i // d`` and the inner over ``i % d``, both of the original kind: floor
        division and remainder of an affine_range index are no affine expressions and need the
        index at trace time (S25 general/nki/api/nki/language/__init__.py affine_range, SDK
        2.25). ``d`` must not depend on a loop index. None for any other loop."""
        var = n.var
        parts = {e for x in _exprs(n.body) for e in sympy.preorder_traversal(x)
                 if isinstance(e, (sympy.floor, sympy.Mod)) and var in _syms(e)}
        divs = set()
        sym = None
        for e in parts:
            if isinstance(e, sympy.Mod):
                a, d = e.args
            else:
                q = e.args[0]
                num, den = sympy.fraction(sympy.together(q))
                a, d = num, den
            if not (isinstance(a, sympy.Symbol) and a.name == var) or _syms(d) & self.dep:
                return None
            sym = a
            divs.add(sympy.sympify(d))
        if sym is None or len(divs) != 1:
            return None
        d = divs.pop()
        count = sympy.simplify(sympy.sympify(n.count) / d)
        # the count must be d times a whole trip count c (no remainder block)
        if var in _syms(count) or _syms(count) & self.dep \
                or sympy.fraction(sympy.together(count))[1] != 1:
            return None
        hi = sympy.Symbol(f"{var}_hi", **sym.assumptions0)
        lo = sympy.Symbol(f"{var}_lo", **sym.assumptions0)

        def sub(e):
            e = e.replace(lambda x: isinstance(x, sympy.floor) and x.args[0] == sym / d,
                          lambda x: hi)
            return e.replace(lambda x: isinstance(x, sympy.Mod) and x.args == (sym, d),
                             lambda x: lo)

        body = _map_exprs(n.body, sub)
        if any(var in _syms(e) for e in _exprs(body)):
            return None
        return P.Loop(hi.name, count, n.kind, (P.Loop(lo.name, d, n.kind, body),))

    def parity_pairs(self, n: P.Loop) -> P.Loop | None:
        """A loop whose body branches on the parity of its index (``if i % 2 == 0``: the
        matrix-vector product alternates its PSUM evictions between VectorE and ScalarE) as a
        loop over index pairs, the even body then the odd one, each opening with
        ``i = 2 * pair (+ 1)``. ``i % 2`` of an affine_range index is no affine expression
        and an ``if`` needs the index at trace time (S25 general/nki/api/nki/language/__init__.py
        affine_range, SDK 2.25), so the branch would make the loop static. Only when the
        loop's (full) trip count is an even number, so every pair is two real iterations;
        None otherwise."""
        ifs = [k for k, x in enumerate(n.body) if isinstance(x, P.If)
               and x.cmp is P.Cmp.EQ and sympy.sympify(x.rhs) == 0
               and isinstance(m := sympy.sympify(x.lhs), sympy.Mod) and m.args[1] == 2
               and isinstance(m.args[0], sympy.Symbol) and m.args[0].name == n.var]
        if len(ifs) != 1:
            return None
        count = self.expand(self.full(n.count))
        if not count.is_Integer:
            # a count of a peeled loop's value (a tile count of a ragged block): the full
            # block's, the tiles past the value masked off as for any ragged size
            count = sympy.expand(self.plain_value(count).subs(
                {x: self.at_full[x.name] for x in self.plain_value(count).free_symbols
                 if x.name in self.at_full}))
        if not (count.is_Integer and int(count) % 2 == 0 and int(count) > 0):
            return None
        k = ifs[0]
        br = n.body[k]
        assert isinstance(br, P.If)
        pair = f"{n.var}_pair"
        head, tail = n.body[:k], n.body[k + 1:]
        i = sympy.Symbol(pair)
        body = (P.Let(n.var, 2 * i), *head, *br.then, *tail,
                P.Let(n.var, 2 * i + 1), *head, *br.orelse, *tail)
        return replace(n, var=pair, count=sympy.Integer(int(count) // 2), body=body)

    _FLIP = {"less": ("<", ">="), "less_equal": ("<=", ">"), "greater": (">", "<="),
             "greater_equal": (">=", "<")}

    def loop_select(self, n: AffineSelect) -> tuple[tuple[str, str], tuple] | None:
        """An affine_select whose predicate depends on loop indices only (no lane term: both
        coefficients 0) as a copy of the source under the predicate and a memset of the false
        value under its complement, both loop-index masks (S25 general/nki/api/nki.api.shared.rst
        "NKI API Masking"): the classic affine_select takes a predicate of nl.arange lanes, and
        spelling a lane-free one with 0 * nl.arange terms is no documented access pattern
        (lint index.zero-stride). None for any other affine_select."""
        if sympy.sympify(n.pcoef) != 0 or sympy.sympify(n.fcoef) != 0:
            return None
        off = self.expand(n.offset)
        moving, fixed = self.split(off)
        if moving == 0 or self.is_ragged(off):
            return None
        if n.cmp in self._FLIP:
            yes, no = self._FLIP[n.cmp]
            guards = (f"({py(moving)} {yes} {py(-fixed)})", f"({py(moving)} {no} {py(-fixed)})")
        elif n.cmp in ("equal", "not_equal"):
            got = self.branch_masks(P.If(off, sympy.Integer(0), ()))
            if got is None:
                return None
            guards = got if n.cmp == "equal" else (got[1], got[0])
        else:
            return None
        return guards, (P.TensorCopy(n.dst, n.src), P.Memset(n.dst, n.false_value))


def _exprs(n):
    """Every sympy expression inside a node (views included)."""
    if isinstance(n, sympy.Basic):
        yield n
    elif isinstance(n, tuple):
        for x in n:
            yield from _exprs(x)
    elif hasattr(n, "__dataclass_fields__"):
        for f in fields(n):
            yield from _exprs(getattr(n, f.name))


def _reads_own_dst(n: Any) -> bool:
    """True when ``n`` reads the tile it writes (an in-place ``diff = square(diff)``): its
    destination was written, and zero-padded, by an earlier instruction, and the masked write
    leaves the padded lanes alone; zeroing the whole tile again before it would wipe the very
    values it reads (fuzz9: var[t] = sum(square(x[d, t] - mu[t]), d) summed zeros)."""
    dst = getattr(n, "dst", None)
    if not isinstance(dst, P.Ref) or not is_dataclass(n):
        return False
    return any(isinstance(x, (P.Ref, P.ApRef)) and x.name == dst.name
               for f in fields(n) if f.name != "dst"
               for x in _refs_in(getattr(n, f.name)))


def _refs_in(v: Any):
    if isinstance(v, (P.Ref, P.ApRef)):
        yield v
    elif isinstance(v, tuple):
        for x in v:
            yield from _refs_in(x)


def _map_exprs(n, fn):
    """``n`` with every sympy expression inside it (views included) replaced by ``fn`` of it."""
    if isinstance(n, sympy.Basic):
        return fn(n)
    if isinstance(n, tuple):
        return tuple(_map_exprs(x, fn) for x in n)
    if hasattr(n, "__dataclass_fields__"):
        return replace(n, **{f.name: _map_exprs(getattr(n, f.name), fn) for f in fields(n)})
    return n


def _all(nodes):
    for n in nodes:
        yield n
        if isinstance(n, P.Loop):
            yield from _all(n.body)
        elif isinstance(n, P.If):
            yield from _all(n.then)
            yield from _all(n.orelse)


def apply(plan: P.KernelPlan) -> tuple[P.KernelPlan, str | None]:
    """The plan with ragged loop-dependent tiles as full tiles + masks, and None; or the plan
    unchanged and the reason it cannot be written that way."""
    multiples = {c.size: c.bound for c in plan.checks if c.rule is P.Rule.MULTIPLE_OF}
    operands = {x.name for n in _all(plan.body) if isinstance(n, P.Matmul)
                for x in (n.stationary, n.moving)}
    try:
        body = _Pass(multiples, operands).nodes(plan.body)
    except _Unsupported as e:
        return plan, str(e)
    return replace(plan, body=body), None
