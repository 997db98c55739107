"""Classic tiles: the core :class:`~nkigen.sim.tensor.Tensor` with classic indexing and
assignment semantics.

Stage: simulate (classic API layer). :class:`CTensor` adds to the core view

* advanced indexing with ``nl.arange`` / ``nl.mgrid`` expressions (any rank of index grid, the
  partition index a column, free indices rows); an index that is out of bounds somewhere yields
  a lazy :class:`IndexedView` whose bounds are checked only on the lanes an instruction's
  ``mask=`` keeps (a masked store never checks masked-out indices);
* block dimensions (``nl.par_dim`` not leading): :class:`BlockTensor`, stored partition-first;
* ``t[...] = v`` and ``t += v`` with the classic meaning (see :mod:`nkigen.sim.classic.fresh`).

Operands reach instructions through :func:`tile` / :func:`boxed`, which resolve lazy views,
restrict them to a mask's box and tell :mod:`~nkigen.sim.classic.zeroing` about reads.
"""

from __future__ import annotations

import numpy as np

from nkigen.sim.classic import zeroing
from nkigen.sim.classic.index import (
    NONAFFINE,
    Box,
    Expr,
    Predicate,
    arange,
    check_extent,
    taint_of,
)
from nkigen.sim.errors import SimError, UnsupportedError
from nkigen.sim.tensor import NEG_STEP_FIX, NEG_STEP_RULE, VIEWS, DynSlice, Tensor
from nkigen.sim.trace import Mem

_INT = (int, np.integer)


class CTensor(Tensor):
    """A core tensor view with classic indexing, assignment and accumulation."""

    __slots__ = ()

    # ---- views ------------------------------------------------------------------------
    def __getitem__(self, key):
        if isinstance(key, Predicate):          # operand masking: lhsT[i_lhs_f <= 64]
            return MaskedOperand(self, key)
        k = key if isinstance(key, tuple) else (key,)
        check_index_affine(k)
        if any(isinstance(x, (Expr, Predicate, Tensor, IndexedView)) for x in k):
            return advanced(self, k, 0)
        try:
            return wrap(Tensor.__getitem__(self, key))
        except SimError as e:
            # an HBM slice past the end may still be read/written under a mask: checked later,
            # on the lanes the instruction's mask keeps (as an arange index would be); the form
            # itself is undocumented (rule hbm.slice-past-end of nkigen.sim.classic.forms)
            if self.alloc.mem is not Mem.HBM or not e.rule.startswith("slice out of bounds"):
                raise
            from nkigen.sim.classic import forms
            got = str(e.diagnostics[0].got)
            forms.report(forms.SLICE_PAST_END, "a basic slice of an HBM tensor", lambda: got)
            return advanced(self, _slices_as_index(self, k), 0)

    def reshape(self, *shape, **kw):
        if "shape" in kw:                      # t.reshape(shape=(...))
            shape = (kw.pop("shape"),)
        return wrap(Tensor.reshape(self, *shape))

    def broadcast_to(self, shape):
        return wrap(Tensor.broadcast_to(self, shape))

    def expand_dims(self, axis: int):
        return wrap(Tensor.expand_dims(self, axis))

    # ---- assignment ---------------------------------------------------------------------
    def __setitem__(self, key, value) -> None:
        target = self[key]
        if isinstance(target, IndexedView):
            target = target.materialize(None)
        fresh.assign(target, value)


class BlockTensor(CTensor):
    """A tensor whose partition dim is not dim 0 (``(B, nl.par_dim(P), F)``); it must be
    indexed down to a tile (partition dim first) before any instruction uses it."""

    __slots__ = ("pdim",)

    def __init__(self, alloc, offset, shape, strides, pdim: int, bcast=False):
        super().__init__(alloc, offset, shape, strides, bcast)
        self.pdim = pdim

    def __repr__(self) -> str:
        return f"BlockTensor(shape={list(self.shape)}, par_dim={self.pdim}, id={self.alloc.id})"

    @property
    def partitions(self) -> int:
        return self.shape[self.pdim]

    def _pfirst(self) -> Tensor:
        """The same elements with the partition dim moved first (a core tile view)."""
        order = [self.pdim] + [d for d in range(self.ndim) if d != self.pdim]
        return Tensor(self.alloc, self.offset, tuple(self.shape[d] for d in order),
                      tuple(self.strides[d] for d in order), self.bcast)

    def __getitem__(self, key):
        k = key if isinstance(key, tuple) else (key,)
        check_index_affine(k)
        if any(isinstance(x, (Expr, Predicate)) for x in k):
            return advanced(self, k, self.pdim)
        if any(x is Ellipsis for x in k):
            i = k.index(Ellipsis)
            k = k[:i] + (slice(None),) * (self.ndim - len(k) + 1) + k[i + 1:]
        k = k + (slice(None),) * (self.ndim - len(k))
        order = [self.pdim] + [d for d in range(self.ndim) if d != self.pdim]
        r = Tensor.__getitem__(self._pfirst(), tuple(k[d] for d in order))
        # result axes: partition first, then the surviving other dims in order
        newp = sum(1 for d in range(self.pdim) if not isinstance(k[d], _INT))
        if newp == 0:
            return wrap(r)
        perm = list(range(1, newp + 1)) + [0] + list(range(newp + 1, r.ndim))
        return BlockTensor(r.alloc, r.offset, tuple(r.shape[a] for a in perm),
                           tuple(r.strides[a] for a in perm), newp, r.bcast)


class DirectBlocks:
    """A directly allocated tensor with block dims (``ncc.sbuf.mod_alloc`` ...): one physical
    tile per logical block (blocks may share a tile). Index the block dims with integers (loop
    indices) first; the rest indexes that block's tile."""

    def __init__(self, tiles: dict, shape: tuple[int, ...], nblock: int, dtype, buffer):
        self.tiles = tiles
        self.shape = shape
        self.nblock = nblock
        self.dtype = dtype
        self.buffer = buffer

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"DirectBlocks(shape={list(self.shape)}, blocks={self.nblock})"

    def _split(self, key):
        k = key if isinstance(key, tuple) else (key,)
        if k and k[0] is Ellipsis:
            k = (slice(None),) * self.nblock + k
        head, rest = k[:self.nblock], k[self.nblock:]
        if len(head) < self.nblock or not all(isinstance(i, _INT) for i in head):
            raise UnsupportedError("indexing several blocks of a directly allocated tensor at "
                                   "once", "index each block dim with an integer or loop index")
        idx = tuple(int(i) for i in head)
        for d, (i, n) in enumerate(zip(idx, self.shape)):
            if not 0 <= i < n:
                raise SimError("index out of bounds", f"block index {i} on dim {d} of size {n}")
        return wrap(self.tiles[idx]), rest

    def __getitem__(self, key):
        t, rest = self._split(key)
        return t[rest] if rest else t

    def __setitem__(self, key, value) -> None:
        t, rest = self._split(key)
        t[rest if rest else ...] = value


VIEWS.add(CTensor)       # a plain view with classic indexing: the ISA memos apply


def wrap(t):
    """Core tensors (and tuples of them) as classic tiles."""
    if isinstance(t, CTensor) or not isinstance(t, Tensor):
        if isinstance(t, tuple):
            return tuple(wrap(x) for x in t)
        return t
    return CTensor(t.alloc, t.offset, t.shape, t.strides, t.bcast)


_OPS = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
        "pow": "power", "mod": "mod", "and": "bitwise_and", "or": "bitwise_or",
        "xor": "bitwise_xor", "lshift": "left_shift", "rshift": "right_shift"}
_CMP = {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal"}


def _install_operators() -> None:
    """Operators of CTensor: the classic ``nl.*`` element-wise ops (same lowering as the
    core's, classic dtype rules), without partition broadcasting (as documented for
    operators); ``+=`` and friends through :func:`~nkigen.sim.classic.fresh.accumulate`."""
    def binary(name: str, reflected: bool):
        def op(self, other):
            from nkigen.sim.classic import language
            a, b = (other, self) if reflected else (self, other)
            return language.elementwise(name, a, b, pbcast=False)
        return op
    for d, name in {**_OPS, **_CMP}.items():
        setattr(CTensor, f"__{d}__", binary(name, False))
        if d in _OPS:
            setattr(CTensor, f"__r{d}__", binary(name, True))
    for d, name in (("neg", "negative"), ("abs", "abs")):
        def unary(self, _n=name):
            from nkigen.sim.classic import language
            return language.elementwise(_n, self)
        setattr(CTensor, f"__{d}__", unary)
    for d, name in _OPS.items():
        def iop(self, other, _n=name):
            return fresh.accumulate(self, other, _n)
        setattr(CTensor, f"__i{d}__", iop)


class MaskedOperand:
    """``t[predicate]``: classic operand masking, documented for the matmul APIs only (S25
    general/nki/api/nki.api.shared.rst "NKI API Masking": ``nl.matmul(lhs_T[i_lhs_f <= 64],
    rhs[i_rhs_f <= 256], transpose_x=True)``). The predicate names lanes of the operand tile
    (axis 0 = partitions = the contraction, axis 1 = the operand's free axis, which becomes one
    axis of the result); :func:`nkigen.sim.classic.isa.matmul_tile` resolves it."""

    def __init__(self, base, pred: Predicate):
        self.base = base
        self.pred = pred
        self.dtype = base.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.base.shape)

    def __repr__(self) -> str:
        return (f"t[{self.pred!r}] (an operand mask: documented for nl.matmul / nisa.nc_matmul "
                "operands only, S25 general/nki/api/nki.api.shared.rst \"NKI API Masking\")")


def _operand_mask_elsewhere(x: MaskedOperand):
    raise SimError("operand masking (t[predicate]) is documented for nl.matmul / nisa.nc_matmul "
                   "operands only (S25 general/nki/api/nki.api.shared.rst \"NKI API Masking\")",
                   repr(x), "pass the predicate as mask= to this instruction")


# ---- advanced (arange) indexing -----------------------------------------------------------
class IndexedView:
    """``t[expr, expr, ...]`` before its bounds are known to hold: materialised per box."""

    def __init__(self, base: Tensor, consts: list[int], coefs: list[list[int]],
                 shape: tuple[int, ...], pdim: int):
        self.base = base
        self.consts = consts          # per base dim
        self.coefs = coefs            # per base dim, per grid axis
        self.shape = shape            # the index grid
        self.pdim = pdim              # partition dim of an on-chip base
        self.dtype = base.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"IndexedView({self.base!r}, grid={list(self.shape)})"

    def _range(self, box) -> list[tuple[int, int]]:
        return [(0, n) if box is None else (box[g].start, box[g].stop)
                for g, n in enumerate(self.shape)]

    def bounds_error(self, box) -> str | None:
        rng = self._range(box)
        for d, (c, co) in enumerate(zip(self.consts, self.coefs)):
            lo = hi = c
            for (a, b), k in zip(rng, co):
                lo += min(k * a, k * (b - 1))
                hi += max(k * a, k * (b - 1))
            n = self.base.shape[d]
            if lo < 0 or hi >= n:
                return f"indices {lo}..{hi} on dim {d} of size {n} (shape {list(self.base.shape)})"
        return None

    def materialize(self, box: Box | None) -> CTensor:
        err = self.bounds_error(box)
        if err is not None:
            raise SimError("index out of bounds", err,
                           "pass a mask= that excludes the out-of-bounds lanes")
        rng = self._range(box)
        b = self.base
        off = b.offset
        strides = []
        for g in range(len(self.shape)):
            strides.append(sum(b.strides[d] * self.coefs[d][g] for d in range(b.ndim)))
        for d in range(b.ndim):
            off += b.strides[d] * (self.consts[d] + sum(
                k * lo for k, (lo, _) in zip(self.coefs[d], rng)))
        shape = tuple(hi - lo for lo, hi in rng)
        if b.alloc.mem is Mem.HBM:
            # a negative nl.arange coefficient on an HBM tensor is a negative DMA stride, which
            # no NKI document gives (S25 general/nki/programming_model.rst "Advanced Tensor
            # Indexing": ``start + stride * nl.arange(size)``, positive strides only); on-chip,
            # a negative free-axis coefficient is the documented signed int16 engine stride
            # (S25 general/nki/arch/trainium_inferentia2_arch.rst, SDK 2.25)
            neg = [(g, s) for g, s in enumerate(strides) if s < 0 and shape[g] > 1]
            if neg:
                raise SimError(NEG_STEP_RULE, f"element stride {neg[0][1]} along index axis "
                               f"{neg[0][0]} of {b.alloc.name}", NEG_STEP_FIX)
        if b.alloc.mem is not Mem.HBM and len(shape) == 1:
            shape, strides = shape + (1,), strides + [1]
        return CTensor(b.alloc, off, shape, tuple(strides), b.bcast)

    def __getattr__(self, name):
        return getattr(self.materialize(None), name)

    def __setitem__(self, key, value):
        self.materialize(None)[key] = value

    def __getitem__(self, key):
        return self.materialize(None)[key]


def check_index_affine(key: tuple) -> None:
    """Rule ``index.nonaffine-loop-index`` (:mod:`nkigen.sim.classic.forms`): no index term
    (an nl.arange expression, an int, a slice or nl.ds bound) went through ``%``, ``//`` or a
    product of loop indices."""
    taint: frozenset = frozenset()
    for k in key:
        parts = (k.start, k.stop) if isinstance(k, slice) else \
            (k.start, k.size) if isinstance(k, DynSlice) else (k,)
        for x in parts:
            taint = taint | taint_of(x)
    bad = sorted(t for t in taint if t.startswith(NONAFFINE))
    if bad:
        from nkigen.sim.classic import forms
        forms.report(forms.NONAFFINE_INDEX, "a tensor index",
                     lambda: f"{key!r}, depending on {'; '.join(bad)}")


def advanced(base: Tensor, key: tuple, pdim: int, lazy: bool = False):
    """Resolve an index tuple of aranges and ints against ``base`` (an on-chip index tile
    among them makes an indirect :class:`~nkigen.sim.classic.gather.GatherView`)."""
    if len(key) > base.ndim:
        raise SimError("too many indices", f"{len(key)} indices for shape {list(base.shape)}")
    tiles = [i for i, k in enumerate(key) if isinstance(k, (Tensor, IndexedView))]
    if tiles and base.alloc.mem is Mem.HBM and len(tiles) == 1:
        from nkigen.sim.classic import gather
        k = key[tiles[0]]
        return gather.make(base, key[:tiles[0]] + (tile(k),) + key[tiles[0] + 1:], tiles[0],
                           advanced)
    exprs: list[Expr | int] = []
    for k in key:
        if isinstance(k, Predicate):
            raise SimError("indexing a tensor with a predicate is not supported",
                           repr(k), "pass the predicate as mask= to the instruction")
        if isinstance(k, Expr):
            k._need_placed()
            exprs.append(k)
        elif isinstance(k, _INT) and not isinstance(k, bool):
            exprs.append(int(k))
        elif isinstance(k, (Tensor, IndexedView)):
            raise UnsupportedError("indirect indexing of an on-chip tensor or with several "
                                   "index tiles", "index one HBM dim with one [P, 1] tile")
        else:
            raise SimError("basic and advanced indexing may not be mixed in one index",
                           repr(key), "index every dim with nl.arange expressions or ints")
    g = max(e.ndim for e in exprs if isinstance(e, Expr))
    grid = [1] * g
    for e in exprs:
        if isinstance(e, Expr):
            for a, n in enumerate(e.shape, start=g - e.ndim):
                if n != 1:
                    if grid[a] not in (1, n):
                        raise SimError("index expressions do not broadcast",
                                       f"axis {a}: {grid[a]} vs {n}")
                    grid[a] = n
    extra = base.ndim - len(exprs)
    nd = g + extra
    consts, coefs = [], []
    for e in exprs:
        if isinstance(e, Expr):
            consts.append(e.const)
            coefs.append([e.coef(a - (g - e.ndim), e.ndim) if a >= g - e.ndim and a < g else 0
                          for a in range(nd)])
        else:
            consts.append(e)
            coefs.append([0] * nd)
    for j in range(extra):            # trailing dims not indexed: whole, as extra grid axes
        consts.append(0)
        coefs.append([1 if a == g + j else 0 for a in range(nd)])
        grid.append(base.shape[len(exprs) + j])
    if base.alloc.mem is not Mem.HBM:
        _check_partition(base, coefs, grid, pdim)
    elif g >= 2 and grid[0] > 1:
        _check_flat(key, coefs, grid, g)
    v = IndexedView(base, consts, coefs, tuple(grid), pdim)
    if not lazy and v.bounds_error(None) is None:
        return v.materialize(None)
    return v


def _check_flat(key: tuple, coefs: list, grid: list, g: int) -> None:
    """Rule ``index.flat-view`` (:mod:`nkigen.sim.classic.forms`): no index component of an HBM
    tensor carries the partition arange (grid axis 0) with the arange of another grid axis."""
    for d, row in enumerate(coefs):
        axes = [a for a in range(g) if row[a] != 0 and grid[a] > 1]
        if 0 in axes and len(axes) > 1:
            from nkigen.sim.classic import forms

            def got(d: int = d, axes: list = axes) -> str:
                return f"component {d} of {key!r} reads the aranges of grid axes {axes}"

            forms.report(forms.FLAT_VIEW, "an HBM tensor index", got)
            return


def _slices_as_index(base: Tensor, key: tuple) -> tuple:
    """A basic index (ints, slices, nl.ds) of an HBM tensor as the equivalent arange index."""
    if any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (base.ndim - len(key) + 1) + key[i + 1:]
    ranged = [d for d, k in enumerate(key) if not isinstance(k, _INT)]
    nd = len(ranged)
    out: list = []
    for d, k in enumerate(key):
        n = base.shape[d]
        if isinstance(k, _INT):
            out.append(int(k))
            continue
        if isinstance(k, DynSlice):
            check_extent(0, k.size, f"nl.ds size on dim {d}")
            start, count, step = int(k.start), int(k.size), 1
        elif isinstance(k, slice):
            check_extent(0 if k.start is None else k.start, n if k.stop is None else k.stop,
                         f"slice length on dim {d}")
            step = 1 if k.step is None else int(k.step)
            start = 0 if k.start is None else int(k.start)
            stop = n if k.stop is None else int(k.stop)
            if step <= 0 or stop <= start:
                raise SimError("slice must be non-empty with a positive step", repr(k))
            count = -(-(stop - start) // step)
        else:
            raise UnsupportedError(f"tensor index of type {type(k).__name__}")
        place = tuple(slice(None) if j == ranged.index(d) else None for j in range(nd))
        out.append(start + step * arange(count)[place])
    return tuple(out)


def _check_partition(base: Tensor, coefs: list[list[int]], grid: list[int], pdim: int) -> None:
    pc = coefs[pdim]
    bad = [a for a in range(1, len(grid)) if pc[a] != 0 and grid[a] > 1]
    if bad or (grid[0] > 1 and pc[0] != 1):
        raise SimError("the partition index must be nl.arange(P)[:, None] plus a constant "
                       "(no striding across partitions)",
                       f"coefficients {pc} on grid {grid}", "stride free dims only")
    for d, c in enumerate(coefs):
        if d != pdim and grid[0] > 1 and c[0] != 0:
            raise SimError("the partition index (grid axis 0) may only index the partition "
                           "dim of an on-chip tensor", f"dim {d} of {list(base.shape)}",
                           "use nisa.nc_transpose to move data across partitions")


# ---- operands ---------------------------------------------------------------------------
def tile(x):
    """An operand as a core tensor: lazy views resolved over every lane."""
    if isinstance(x, MaskedOperand):
        _operand_mask_elsewhere(x)
    if isinstance(x, IndexedView):
        return x.materialize(None)
    if isinstance(x, BlockTensor):
        raise SimError("a tensor with block dimensions must be indexed down to a tile "
                       "before use", repr(x), "index the block dims: t[b] or t[b, :, :]")
    zeroing.touch(x)
    return x


def need_operand(x, api: str, role: str) -> None:
    """An operand that must be a tensor (a tile, a masked or indexed view): a string, None, a
    number or a list there is a located SimError naming the operand, not a Python exception
    inside the simulator (mutants17 crash probes: nisa.tensor_tensor('x', t),
    nisa.nc_matmul(None, w), nisa.dropout(1.5, p) raised AttributeError). Only the type is
    checked: a lazy view or zero-filled tile is not resolved here, so the check changes no
    trace (resolving it over every lane here recorded the memset of an ``nl.zeros`` PSUM tile
    whose every use is masked off)."""
    base = x.base if isinstance(x, MaskedOperand) else x
    if not isinstance(base, (Tensor, IndexedView)):
        raise SimError(f"{api}: {role} must be a tile", type(x).__name__,
                       "pass an SBUF/PSUM tile (nl.load / nl.ndarray) or a view of one")


def need_tile(x, api: str, role: str):
    """``tile(x)`` for an operand that must be a tensor (:func:`need_operand`)."""
    need_operand(x, api, role)
    return tile(x)


def shape_of(x) -> tuple[int, ...]:
    if not hasattr(x, "shape"):
        raise SimError("expected a tile", type(x).__name__, "pass an SBUF/PSUM tile (or an "
                       "HBM tensor where the API takes one)")
    return tuple(x.shape)


def boxed(x, box: Box | None, grid: tuple[int, ...]):
    """Operand ``x`` restricted to ``box`` of ``grid`` (axes aligned from the left; size-1
    broadcast axes are left whole)."""
    if isinstance(x, IndexedView):
        if box is None:
            return tile(x.materialize(None))
        sub = tuple(box[a] if a < len(box) else slice(0, n) for a, n in enumerate(x.shape))
        return tile(x.materialize(sub))
    if box is None or not isinstance(x, Tensor):
        return tile(x)
    if isinstance(x, BlockTensor):
        tile(x)
    key = []
    for a, n in enumerate(x.shape):
        if a < len(box) and a < len(grid) and n == grid[a] and n > 1:
            key.append(slice(box[a].start, box[a].stop))
        else:
            key.append(slice(None))
    v = Tensor.__getitem__(x, tuple(key))
    zeroing.touch(v)
    return v


def box_shape(box: Box | None, grid: tuple[int, ...]) -> tuple[int, ...]:
    if box is None:
        return tuple(grid)
    return tuple(s.stop - s.start for s in box) + tuple(grid[len(box):])


_install_operators()

from nkigen.sim.classic import fresh  # noqa: E402 (needs the classes above)
