"""Classic-dialect HBM accesses of masked ragged tiles: nl.arange index tiles, not slices past
the tensor's end.

Stage: render (KernelPlan -> KernelPlan, classic dialect only, after the mask pass of
:mod:`nkigen.codegen.classic_mask`). That pass gives a ragged last tile its full extent and a
``mask=``; an HBM view of such a tile, printed as a basic slice (``a[r0:r0 + BLOCK_M, ...]``),
then runs past the tensor's end at some legal size. The documented ragged tile indexes HBM with
``nl.arange`` expressions and clips with the mask (S25 general/nki/api/nki.api.shared.rst "NKI
API Masking": ``in_tensor[i_p, i_f]`` with ``i_p = p * pmax + nl.arange(pmax)[:, None]`` and
``mask=(i_p < sz_p)``); an index range past the end is legal only that way
(S25 general/nki/api/nki.errors.rst err_tensor_access_out_of_bound: out-of-bound access "can be
avoided by providing a proper mask", shown with an ``nl.mgrid`` index). nl.load / nl.store /
nisa.dma_copy take such views (S25 general/nki/test/test_nki_nl_load_store.py,
test_nki_isa_dma_copy.py: ``in_tensor[i_b, i_p, i_f]``, ``out_tile[ix, iy]``); nisa.dma_transpose
takes "a tile in HBM or SBUF" (S25 general/nki/api/nki/isa/__init__.py dma_transpose), which
an arange-indexed view is; no S25 example shows one, the public classic kernels do, masked and
ragged (aws-neuron/nki-samples 7af4e4d contributed/neuron-team-kernels/attention_token_gen.py:
``nisa.dma_transpose(K_cache[b][i_tile + offset, nl.arange(d_head)[None, :]],
mask=(i_tile < sharded_S_ctx))``; collective_matmul.py the same without a mask).

This pass marks each such view :class:`LaneRef` (render prints its slices as
``start + i_p``, the index tiles named once per function); a view whose every slice provably
stays inside its tensor for every legal size and loop index (the loop ranges, the sizes'
``multiple_of`` checks) stays a :class:`~nkigen.codegen.plan.Ref`, printed as a slice.

Every raw access pattern (:class:`~nkigen.codegen.plan.ApRef`, masked or not) becomes a
:class:`ViewRef`: the N-D reshape of its tensor whose axes are the tile's axes, indexed per axis
with the same index tiles (``y.reshape((y.shape[0], 1))[p0 + i_p, i_col]``), not a flattened
1-D reshape indexed by one expression carrying both aranges (see :class:`ViewRef`). Where no
such view exists (:func:`as_view` None: a pattern of other than two pairs, a partition step that
is neither the extent of a run of trailing dims nor a multiple ``c >= 2`` of one (rows read with a
step: the same view, its partition index stepping by ``c``, review 9 R9-8), a step-1 partition
axis with a free axis longer than 1) the flat form stays; no shipped spec has one. A strided
view of any memory (a slice with a step, ``x_blk[0:K, c, 1:2 * n:2]``) becomes a
:class:`LaneRef` too (``x_blk[i_p, c, 1 + 2 * i_f]``): the docs spell a free-axis stride with
an arange index (S25 general/nki/programming_model.rst "Advanced Tensor Indexing"), never with a
step slice.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.classic_mask import Masked


@dataclass(frozen=True)
class LaneRef(P.Ref):
    """A :class:`~nkigen.codegen.plan.Ref` on HBM printed with ``nl.arange`` index tiles (each
    slice ``start + step * i_axis``, the tile's grid axis order): the view of a masked ragged
    tile that a slice would extend past the tensor's end."""


@dataclass(frozen=True)
class ViewRef(LaneRef):
    """A raw HBM access pattern (:class:`~nkigen.codegen.plan.ApRef`) printed as an N-D view of
    its tensor indexed per axis: ``t.reshape((t.shape[0], t.shape[1] * t.shape[2]))[r0 + i_p,
    c0 + i_f]``. ``view`` holds, per view axis, the tensor dims whose product is its extent
    (``()``: extent 1; the whole tuple empty: the tensor itself, no reshape); ``bcast`` the
    (partitions, free) shape a one-row partition-broadcast load is broadcast to (``()``: none).

    The docs index an HBM tensor with one ``nl.arange`` per dimension (S25
    general/nki/programming_model.rst "Advanced Tensor Indexing"; the rmsnorm tutorial S25
    general/nki/examples/rmsnorm/rmsnorm_nki_kernels.py: ``g_tensor.reshape((1,
    g_tensor.shape[0]))[iw, iy]``), reshaping to a view ("a new view, no copy": S25
    general/nki/api/nki/__init__.py tensor.reshape, SDK 2.25); a flattened 1-D reshape indexed
    by one expression carrying both a partition and a free arange is shown nowhere."""

    view: tuple[tuple[int, ...], ...] = ()
    bcast: tuple = ()


def _syms(e) -> set[str]:
    return {s.name for s in sympy.sympify(e).free_symbols}


class _Prover:
    """Upper bounds of slice ends over the loop ranges, against a tensor dimension."""

    def __init__(self, checks: tuple[P.SizeCheck, ...] = (),
                 derived: tuple[tuple[str, P.IntExpr], ...] = (),
                 shapes: dict[str, tuple] | None = None) -> None:
        self.multiples = {c.size: c.bound for c in checks if c.rule is P.Rule.MULTIPLE_OF}
        self.mins = {c.size: c.bound for c in checks if c.rule is P.Rule.MIN}
        self.derived = {n: sympy.sympify(e) for n, e in derived}
        self.shapes: dict[str, tuple] = dict(shapes or {})   # HBM tensor -> its shape
        self.values: dict[str, sympy.Expr] = {}       # lets in scope
        self.loops: list[tuple[str, sympy.Expr]] = []  # enclosing loops, outermost first

    def expand(self, e) -> sympy.Expr:
        e = sympy.sympify(e)
        for _ in range(16):
            keys = [k for k in e.free_symbols if k.name in self.values or k.name in self.derived]
            if not keys:
                break
            e = e.subs({k: self.values.get(k.name, self.derived.get(k.name)) for k in keys})
        return sympy.expand(e)

    def worst(self, e) -> sympy.Expr | None:
        """The largest value of ``e`` over the enclosing loop ranges (innermost loop first:
        a count may name an outer index), or None when ``e`` is not linear in an index or a
        coefficient's sign is unknown."""
        e = self.expand(e)
        for var, count in reversed(self.loops):
            v = next((s for s in e.free_symbols if s.name == var), None)
            if v is None:
                continue
            if not e.is_polynomial(v) or sympy.Poly(e, v).degree() != 1:
                return None
            a = _positive(sympy.Poly(e, v).coeff_monomial(v))
            if a.is_nonnegative:
                e = sympy.expand(e.subs(v, self.expand(count) - 1))
            elif a.is_nonpositive:
                e = sympy.expand(e.subs(v, 0))
            else:
                return None
        if any(s in {v for v, _ in self.loops} for s in _syms(e)):
            return None
        return e

    def fits(self, r: P.Ref, shape: tuple | None) -> bool:
        """True when every slice of ``r`` stays inside ``shape`` for every legal size."""
        if shape is None or len(r.dims) != len(shape):
            return False
        for d, n in zip(r.dims, shape):
            if isinstance(d, P.Index):
                continue
            step = sympy.sympify(d.step)
            if not (step.is_Integer and step > 0):
                return False
            hi = self.worst(sympy.sympify(d.start) + (sympy.sympify(d.size) - 1) * step)
            if hi is None or not _never_negative(self.sized(self.expand(n) - 1 - hi)):
                return False
        return True

    def sized(self, e) -> sympy.Expr:
        """``e`` with every size ``X`` its checks make ``multiple_of m`` (``min b``) written
        ``m * q_X`` (``b + r_X``), q_X >= 1 and r_X >= 0 integers; every other name a positive
        integer."""
        e = sympy.sympify(e)
        sub = {}
        for s in e.free_symbols:
            if s.name in self.multiples:
                q = sympy.Symbol(f"_q_{s.name}", integer=True, positive=True)
                sub[s] = self.multiples[s.name] * q
            elif s.name in self.mins:
                r = sympy.Symbol(f"_r_{s.name}", integer=True, nonnegative=True)
                sub[s] = self.mins[s.name] + r
            else:
                sub[s] = sympy.Symbol(s.name, integer=True, positive=True)
        return sympy.expand(e.subs(sub, simultaneous=True))


def _positive(e) -> sympy.Expr:
    """``e`` with its names as positive integers (sizes, tile counts), for a sign test."""
    e = sympy.sympify(e)
    return e.subs({s: sympy.Symbol(s.name, integer=True, positive=True)
                   for s in e.free_symbols}, simultaneous=True)


def _never_negative(e) -> bool:
    e = sympy.simplify(e)
    return bool(e.is_nonnegative)


class _Pass:
    def __init__(self, prove: _Prover) -> None:
        self.prove = prove
        self.hbm = set(prove.shapes)

    def nodes(self, body) -> tuple:
        out: list = []
        pr = self.prove
        for n in body:
            if isinstance(n, P.Let):
                pr.values[n.name] = sympy.sympify(n.value)
                out.append(n)
            elif isinstance(n, P.Alloc):
                if n.mem in (P.Mem.HBM, P.Mem.SHARED_HBM):
                    self.hbm.add(n.name)
                    pr.shapes[n.name] = tuple(n.shape)
                out.append(n)
            elif isinstance(n, P.Loop):
                pr.loops.append((n.var, sympy.sympify(n.count)))
                try:
                    out.append(replace(n, body=self.nodes(n.body)))
                finally:
                    pr.loops.pop()
            elif isinstance(n, P.If):
                out.append(replace(n, then=self.nodes(n.then), orelse=self.nodes(n.orelse)))
            elif isinstance(n, Masked):
                out.append(replace(n, node=self.views(n.node)))
            else:
                out.append(self.container(n))
        return tuple(out)

    def container(self, n):
        """Any other node with bodies (a tuple field of nodes): its bodies passed through, with
        no loop range added (a view there that needs one stays an index view)."""
        if not hasattr(n, "__dataclass_fields__") or isinstance(n, type):
            return n
        kw = {f.name: self.nodes(x) for f in fields(n)
              if isinstance(x := getattr(n, f.name), tuple) and x and all(
                  hasattr(e, "__dataclass_fields__") and not isinstance(e, (P.Slice, P.Index))
                  for e in x)}
        return replace(n, **kw) if kw else n

    def views(self, n):
        """A masked instruction with its HBM views that may pass the end as :class:`LaneRef`."""
        kw = {}
        for f in fields(n):
            x = getattr(n, f.name)
            if type(x) is P.Ref and x.name in self.hbm and any(
                    isinstance(d, P.Slice) for d in x.dims) \
                    and not self.prove.fits(x, self.prove.shapes.get(x.name)):
                kw[f.name] = LaneRef(x.name, x.dims)
        return replace(n, **kw) if kw else n


def apply(plan: P.KernelPlan) -> P.KernelPlan:
    """The classic plan with the HBM views of masked instructions that can extend past their
    tensor's end as :class:`LaneRef`."""
    prove = _Prover(plan.checks, plan.derived,
                    {t.name: tuple(t.shape) for t in plan.inputs + plan.outputs})
    body = _Pass(prove).nodes(plan.body)
    return replace(plan, body=_views(body, prove.shapes))


def as_view(ap: P.ApRef, shape: tuple | None) -> ViewRef | None:
    """The per-axis view of a 2-pair access pattern on a tensor of ``shape``, or None when the
    partition step is not the extent of a run of trailing dims (no such view exists); a pattern
    of three or more pairs: :func:`_multi_axis`."""
    if shape is not None and len(ap.pattern) >= 3:
        return _multi_axis(ap, shape)
    if shape is None or len(ap.pattern) != 2:
        return None
    (s0, n0), (s1, n1) = (tuple(sympy.sympify(x) for x in pr) for pr in ap.pattern)
    off = sympy.expand(sympy.sympify(ap.offset))
    allax = tuple(range(len(shape)))
    if n0 == 1 or s0 == 0:
        # one row (or one row broadcast to every partition): the (1, N) view of the tutorial
        bcast = (ap.pattern[0][1], ap.pattern[1][1]) if s0 == 0 and n0 != 1 else ()
        return ViewRef(ap.name, (P.Slice(sympy.Integer(0), sympy.Integer(1)),
                                 P.Slice(off, n1, s1)), ((), allax), bcast)
    for k in range(len(shape), -1, -1):
        cols = sympy.Mul(*(sympy.sympify(d) for d in shape[k:]))
        if sympy.expand(cols - s0) != 0:
            continue
        row, col = _split_rows(off, s0)
        if (s1.is_negative and col.as_coeff_Add()[0] < 0 or col.could_extract_minus_sign()) \
                and row.as_coeff_Add()[0] >= 1:
            # a reversed free axis (x[m, N - 1 - n], or its window read in ascending order,
            # x[m, N - f0 - fsz + i]): the offset's ``N`` went to the row part, leaving a
            # negative column start; one row back is the column N - ...
            row, col = row - 1, col + s0
        if k == len(shape) and not (n1 == 1 and col == 0):
            return None                 # a column view: the free axis has extent 1 only
        if n1 != 1 and s1 != 1 and not sympy.expand(cols - s1).is_positive:
            # a free step of a whole column axis or more (y[h, w, b] = x[b, h, w]: the free
            # index b steps H * W over a [B * H, W] view) would run the columns past their row:
            # no per-axis view; the flat index serves
            return None
        view: tuple[tuple[int, ...], ...] = (allax[:k], allax[k:])
        if len(shape) == 2 and k == 1:
            view = ()                   # the tensor's own axes
        return ViewRef(ap.name, (P.Slice(row, n0), P.Slice(col, n1, s1)), view)
    return _strided_rows(ap, shape, off)


def _split_rows(off: sympy.Expr, s0: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """``off`` as ``row * s0 + col``: first each index symbol whose whole coefficient is a
    multiple of ``s0`` (``p0 * (2 K + 2)``, expanded to ``2 p0 + 2 K p0``: a window read of
    rows ``2 K + 2`` long, whose terms one by one are not multiples of the row), then term by
    term; the rest is the column."""
    row: sympy.Expr = sympy.Integer(0)
    rest = sympy.expand(off)
    for v in sorted(rest.free_symbols, key=lambda x: x.name):
        co = sympy.expand(rest.coeff(v))
        if co == 0 or v in co.free_symbols:
            continue
        num, den = sympy.fraction(sympy.cancel(co / s0))
        if den == 1 and _integer_poly(num) and sympy.expand(num * s0 - co) == 0:
            row += v * num
            rest = sympy.expand(rest - v * co)
    col: sympy.Expr = sympy.Integer(0)
    for t in sympy.Add.make_args(rest):
        q = sympy.cancel(t / s0)
        num, den = sympy.fraction(q)
        if den == 1 and _integer_poly(num):
            row += q
        else:
            col += t
    return sympy.expand(row), col


def _strided_rows(ap: P.ApRef, shape: tuple, off: sympy.Expr) -> ViewRef | None:
    """A partition step that is ``c >= 2`` times the extent of a run of trailing dims (rows
    read with a step, ``z[2 * r, n]``): the same per-axis view, its partition index tile
    stepping by ``c`` (``z[2 * p0 + 2 * i_p, f0 + i_f]``), one affine ``nl.arange`` expression
    per axis (S25 general/nki/programming_model.rst "Tensor": an index is an affine
    expression of index-generating APIs; "Advanced Tensor Indexing": ``start + stride *
    nl.arange(size)``), not the flattened view carrying both aranges on one axis (review 8
    R8-6, review 9 R9-8). Only a forward free axis; None otherwise."""
    (s0, n0), (s1, n1) = (tuple(sympy.sympify(x) for x in pr) for pr in ap.pattern)
    if not (s1.is_Integer and s1 > 0):
        return None
    allax = tuple(range(len(shape)))
    for k in range(len(shape), 0, -1):
        cols = sympy.Mul(*(sympy.sympify(d) for d in shape[k:]))
        c = sympy.cancel(s0 / cols)
        if not (c.is_Integer and c >= 2) or (k == len(shape) and n1 != 1):
            continue                    # (k = rank: a column view, one element per row)
        row, col = _split_rows(off, cols)
        if col.could_extract_minus_sign():
            return None
        view: tuple[tuple[int, ...], ...] = (allax[:k], allax[k:])
        if len(shape) == 2 and k == 1:
            view = ()                   # the tensor's own axes
        return ViewRef(ap.name, (P.Slice(row, n0, c), P.Slice(col, n1, s1)), view)
    return None


def _multi_axis(ap: P.ApRef, shape: tuple) -> ViewRef | None:
    """The per-axis view of a pattern of three or more pairs (the ``[P, rows, run]`` tiles of
    codegen/shuffle.py: ``[[4 * H * W, P], [W, nb], [1, W]]`` on ``x[4 * C, H, W]``): one view
    axis per pair, outermost first, each a run of consecutive tensor dims; the view's stride of
    the axis of pair ``i`` (the product of the dims after it) times an integer ``c`` is the
    pair's step, ``c = 1`` for the free pairs but the innermost (a step of its own) and ``c >=
    1`` for the partition pair (rows read with a step, as :func:`_strided_rows`). The offset is
    split outermost first (a term that is an integer multiple of an axis's stride is that
    axis's start). The result is one affine ``nl.arange`` expression per axis,
    ``x[4 * c0 + 1 + 4 * i_p, h0 + i_f1, i_f2]`` (S25 general/nki/programming_model.rst
    "Tensor" and "Advanced Tensor Indexing", SDK 2.25; the transpose2d example's 3-D index), not
    the flattened 1-D view carrying every arange on one axis, which no classic document shows
    (review 8 R8-6, review 9 R9-8, review 13 R13-1). None when no such split exists, a pair
    is a broadcast (step 0) or an axis would start at a negative offset (a reversed axis)."""
    pairs = [tuple(sympy.sympify(x) for x in pr) for pr in ap.pattern]
    dims = [sympy.sympify(d) for d in shape]
    rank, m = len(dims), len(pairs) - 1
    if rank < len(pairs) or any(s == 0 for s, _ in pairs):
        return None

    def prod(k: int) -> sympy.Expr:
        return sympy.Mul(*dims[k:])

    s_in = pairs[m][0]
    if not (s_in.is_Integer and s_in > 0):
        return None
    ks = [rank]                        # axis i covers dims[k_i : k_(i+1)]; built innermost first
    steps = [s_in]
    for i in range(m - 1, -1, -1):
        s = pairs[i][0]
        found = None
        for want_one in ((True, False) if i == 0 else (True,)):
            for k in range(ks[-1] - 1, 0, -1):
                c = sympy.cancel(s / prod(k))
                if c.is_Integer and (c == 1 if want_one else c >= 2):
                    found = (k, c)
                    break
            if found:
                break
        if found is None:
            return None
        ks.append(found[0])
        steps.append(found[1])
    ks.append(0)
    ks.reverse()                       # k_0 = 0, ..., k_(m+1) = rank
    steps.reverse()
    strides = [prod(ks[i + 1]) for i in range(m + 1)]
    ext_in = prod(ks[m])
    if pairs[m][1] != 1 and s_in != 1 and not sympy.expand(ext_in - s_in).is_positive:
        return None                    # (the innermost step would leave its axis at once)
    starts = [sympy.Integer(0)] * (m + 1)
    for t in sympy.Add.make_args(sympy.expand(sympy.sympify(ap.offset))):
        for i in range(m):
            q = sympy.cancel(t / strides[i])
            num, den = sympy.fraction(q)
            if den == 1 and _integer_poly(num):
                starts[i] += q
                break
        else:
            starts[m] += t
    if any(sympy.expand(x).could_extract_minus_sign() for x in starts[1:]):
        return None
    allax = tuple(range(rank))
    view: tuple[tuple[int, ...], ...] = tuple(allax[ks[i]:ks[i + 1]] for i in range(m + 1))
    if len(view) == rank:
        view = ()                      # the tensor's own axes
    return ViewRef(ap.name, tuple(P.Slice(sympy.expand(starts[i]), pairs[i][1], steps[i])
                                  for i in range(m + 1)), view)


def _integer_poly(e: sympy.Expr) -> bool:
    """``e`` is a polynomial with integer coefficients, a floor or a mod of integers (the ``H //
    2`` of a shape, the ``i % 2`` of a trace-time loop index) counting as one integer: the
    row part of a pixel shuffle's read ``x[4 * c + 2 * (i % 2) + j % 2, ..]`` is the rows'
    (it went to the flat column, past the row's end: fuzz9 f9_pixel_shuffle)."""
    sized = {q: sympy.Dummy(integer=True) for q in e.atoms(sympy.floor, sympy.Mod)
             if q.free_symbols}
    if sized:
        e = e.xreplace(sized)
    try:
        poly = sympy.Poly(e, *e.free_symbols or [sympy.Symbol("_")])
    except sympy.PolynomialError:
        return False
    return all(c.is_integer for c in poly.coeffs())


def _views(body, shapes: dict[str, tuple]):
    """Every :class:`~nkigen.codegen.plan.ApRef` in ``body`` (any node, any depth) as a
    :class:`ViewRef` where a per-axis view exists (else left flat)."""
    if isinstance(body, P.ApRef):
        return as_view(body, shapes.get(body.name)) or body
    if type(body) is P.Ref and any(isinstance(d, P.Slice) and sympy.sympify(d.step) != 1
                                   for d in body.dims):
        # a strided view: the docs spell a free-axis stride with an arange index
        # (``2 * i_f``: S25 general/nki/programming_model.rst "Advanced Tensor Indexing"),
        # never with an ``a:b:2`` slice
        return LaneRef(body.name, body.dims)
    if isinstance(body, tuple):
        return tuple(_views(x, shapes) for x in body)
    if hasattr(body, "__dataclass_fields__") and not isinstance(body, type) \
            and not isinstance(body, (P.Ref, P.Slice, P.Index, P.Scalar)):
        kw = {}
        for f in fields(body):
            x = getattr(body, f.name)
            y = _views(x, shapes)
            if y is not x and y != x:
                kw[f.name] = y
        return replace(body, **kw) if kw else body
    return body


def lane_refs(nodes):
    """Every :class:`LaneRef` in a node list, in order (any node's fields and bodies: loops,
    branches, masked nodes and whatever else holds nodes)."""
    for n in nodes:
        if isinstance(n, LaneRef):
            yield n
        elif isinstance(n, tuple):
            yield from lane_refs(n)
        elif hasattr(n, "__dataclass_fields__") and not isinstance(n, type):
            yield from lane_refs(tuple(getattr(n, f.name) for f in fields(n)))


def grid_axes(r: P.Ref) -> list[tuple[int, int]]:
    """(grid axis, grid rank) of each dim of ``r`` that is a slice (an Index dim: (-1, rank))."""
    rank = sum(isinstance(d, P.Slice) for d in r.dims)
    out, k = [], 0
    for d in r.dims:
        if isinstance(d, P.Slice):
            out.append((k, rank))
            k += 1
        else:
            out.append((-1, rank))
    return out


def placement(axis: int, rank: int) -> str:
    """``[:, None]`` style placement of grid axis ``axis`` of a rank-``rank`` grid (a 1-axis
    grid is a partition column, as the masks place it)."""
    n = max(rank, 2)
    return "[" + ", ".join(":" if k == axis else "None" for k in range(n)) + "]"


def axis_letter(axis: int, rank: int) -> str:
    """``p`` for the partition axis, ``f`` for the free axis of a 2-D grid, ``f1``, ``f2``, ...
    for the free axes of a larger one (the names of the docs' ragged example: i_p, i_f)."""
    if axis == 0:
        return "p"
    return "f" if rank <= 2 else f"f{axis}"
