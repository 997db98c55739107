"""``neuronxcc.nki.language`` (classic API, SDK 2.21-2.26) over the simulator core.

Stage: simulate (classic API layer). Functions return new tiles; every compute/memory call takes
``mask=`` (the instruction is shrunk to the box of lanes the mask keeps; the other lanes of the
result are undefined) and ``dtype=``. The instructions issued are the core's, chosen as in the
current-API layer, so the trace and the cost estimate match for the same work. Any name not
defined here raises an error naming it.
"""

from __future__ import annotations

import builtins
import math
from typing import cast

import numpy as np

from nkigen import hw
from nkigen.hw import Engine
from nkigen.sim import dt, isa_compute, isa_move, lang, loops, ops, rngstate, state
from nkigen.sim.classic import compiler, zeroing
from nkigen.sim.classic.fresh import issue, new_out, sub_box
from nkigen.sim.classic.gather import GatherView, move
from nkigen.sim.classic.index import Empty, arange, check_extent, mask_box, mgrid, traced_once
from nkigen.sim.classic.tile import (
    BlockTensor,
    CTensor,
    DirectBlocks,
    IndexedView,
    box_shape,
    boxed,
    need_tile,
    shape_of,
    tile,
    wrap,
)
from nkigen.sim.emit import on_chip
from nkigen.sim.errors import SimError, UnsupportedError, kernel_loc
from nkigen.sim.tensor import (
    HBM,
    PRIVATE_HBM,
    PSUM,
    SBUF,
    SHARED_HBM,
    DynSlice,
    Tensor,
    _row_major,
    new_tensor,
)
from nkigen.sim.trace import Mem

__all__ = ["arange", "mgrid"]

# ---- dtypes and buffers ------------------------------------------------------------------
float32 = dt.F32
tfloat32 = dt.F32
bfloat16 = dt.BF16
float16 = dt.F16
float8_e4m3 = dt.FP8_E4M3
float8_e5m2 = dt.FP8_E5M2
int32, uint32 = np.dtype(np.int32), np.dtype(np.uint32)
int16, uint16 = np.dtype(np.int16), np.dtype(np.uint16)
int8, uint8 = np.dtype(np.int8), np.dtype(np.uint8)
bool_ = dt.U8

sbuf, psum, hbm, shared_hbm, private_hbm = SBUF, PSUM, HBM, SHARED_HBM, PRIVATE_HBM
ndarray_type = Tensor
tensor = Tensor

_TILES = (Tensor, IndexedView)
_SCALARS = (int, float, bool, np.integer, np.floating, np.bool_)


class _ClassicTileSize:
    """``nl.tile_size`` of neuronxcc.nki (S25 general/nki/api/nki/language/__init__.py class
    tile_size, SDK 2.25): only the seven documented constants; the nki 0.4 extras (sbuf_fmax,
    psum_bank_fmax, ...) do not exist there."""

    pmax = hw.PMAX
    psum_fmax = hw.PSUM_FMAX
    gemm_stationary_fmax = hw.GEMM_STATIONARY_FMAX
    gemm_moving_fmax = hw.GEMM_MOVING_FMAX
    bn_stats_fmax = hw.BN_STATS_FMAX
    psum_min_align = hw.PSUM_MIN_ALIGN
    sbuf_min_align = hw.SBUF_MIN_ALIGN

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise SimError(f"neuronxcc.nki.language.tile_size has no constant {name!r} (SDK 2.25)",
                       name, "use pmax, psum_fmax, gemm_stationary_fmax, gemm_moving_fmax, "
                       "bn_stats_fmax, psum_min_align or sbuf_min_align")


tile_size = _ClassicTileSize()


class par_dim(int):  # noqa: N801 - public NKI spelling
    """``nl.par_dim(n)``: marks the partition dim of a shape (an int)."""

    def __repr__(self) -> str:
        return f"par_dim({int(self)})"


# ---- creation ----------------------------------------------------------------------------
def ndarray(shape, dtype, buffer=None, name: str = "", **kw) -> CTensor:
    if kw.get("address") is not None:
        raise UnsupportedError("nl.ndarray(address=...) direct allocation",
                               "use buffer=ncc.sbuf.mod_alloc(...) / ncc.psum.mod_alloc(...)")
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    for k, s in enumerate(shape):       # (sim/classic/index.py check_extent)
        check_extent(0, s, f"nl.ndarray dimension {k}")
    pds = [i for i, s in enumerate(shape) if isinstance(s, par_dim)]
    if len(pds) > 1:
        raise SimError("a shape may have one nl.par_dim", list(shape))
    p = pds[0] if pds else 0
    if isinstance(buffer, compiler.DirectBuffer):
        if buffer.func is None:
            buffer = SBUF if buffer.mem is Mem.SBUF else PSUM
        else:
            _check_psum_tile(shape, p, buffer.mem)
            ishape = tuple(int(s) for s in shape)
            tiles = compiler.place(ishape, p, dtype, buffer, name)
            if p == 0:
                return wrap(tiles[()])
            first = next(iter(tiles.values()))
            blocks = DirectBlocks(tiles, ishape, p, first.dtype, first.buffer)
            return cast(CTensor, blocks)     # indexed like a block tensor (never filled)
    _check_psum_tile(shape, p, getattr(buffer, "mem", None))
    if p == 0 or getattr(buffer, "mem", None) is Mem.HBM:      # HBM has no partitions
        return wrap(new_tensor(tuple(int(s) for s in shape), dtype, buffer, name))
    pshape = (int(shape[p]),) + tuple(int(s) for s in shape[:p] + shape[p + 1:])
    t = new_tensor(pshape, dtype, buffer, name)
    ps = _row_major(pshape)
    strides = tuple(ps[d + 1] for d in range(p)) + (ps[0],) + ps[p + 1:]
    return BlockTensor(t.alloc, 0, tuple(int(s) for s in shape), strides, p)


def _check_psum_tile(shape: tuple, p: int, mem) -> None:
    """TC#2: a PSUM tile's free size is at most nl.tile_size.psum_fmax (512) elements
    (S25 general/nki/programming_model.rst "Tile size considerations", SDK 2.25); block dims
    (before nl.par_dim) are not part of the tile."""
    if mem is not Mem.PSUM:
        return
    free = math.prod(int(s) for s in shape[p + 1:])
    if free > hw.PSUM_FMAX:
        raise SimError(f"TC#2: a PSUM tile's free size may not exceed "
                       f"nl.tile_size.psum_fmax ({hw.PSUM_FMAX})",
                       f"{free} in shape {[int(s) for s in shape]}",
                       "split the free dim into PSUM tiles of at most 512 elements (a block "
                       "dim before nl.par_dim, or several tensors)")


def _filled(shape, dtype, buffer, name, value) -> CTensor:
    if isinstance(buffer, compiler.DirectBuffer) and buffer.func is not None:
        raise SimError("err_tensor_creation_on_scratchpad_with_init_value_not_supported: a "
                       "directly allocated tensor cannot be created with an init value",
                       repr(buffer), "create it with nl.ndarray and fill it (nisa.memset / "
                       "t[...] = value)")
    t = ndarray(shape, dtype, buffer, name)
    whole = t._pfirst() if isinstance(t, BlockTensor) else t
    lang.fill(t, value, "allocate on chip, fill it and store it", whole)
    if t.alloc.mem is Mem.PSUM and value == 0 and zeroing.eliding():
        zeroing.defer(whole)               # issued only if something reads the zeros
    return t


def zeros(shape, dtype, buffer=None, name: str = "", **kw) -> CTensor:
    return _filled(shape, dtype, buffer, name, 0)


def ones(shape, dtype, buffer=None, name: str = "", **kw) -> CTensor:
    return _filled(shape, dtype, buffer, name, 1)


def full(shape, fill_value, dtype, buffer=None, name: str = "", **kw) -> CTensor:
    return _filled(shape, dtype, buffer, name, fill_value)


def _like(a, dtype, buffer) -> tuple:
    return a.shape, a.dtype if dtype is None else dtype, buffer or a.buffer


def zeros_like(a, dtype=None, buffer=None, name: str = "", **kw) -> CTensor:
    shape, d, b = _like(a, dtype, buffer)
    return zeros(shape, d, b, name)


def ones_like(a, dtype=None, buffer=None, name: str = "", **kw) -> CTensor:
    shape, d, b = _like(a, dtype, buffer)
    return ones(shape, d, b, name)


def full_like(a, fill_value, dtype=None, buffer=None, name: str = "", **kw) -> CTensor:
    shape, d, b = _like(a, dtype, buffer)
    return full(shape, fill_value, d, b, name)


def empty_like(a, dtype=None, buffer=None, name: str = "", **kw) -> CTensor:
    shape, d, b = _like(a, dtype, buffer)
    return ndarray(shape, d, b, name)


def ds(start, size) -> DynSlice:
    """``nl.ds(start, size)``. A loop index (a :class:`LoopIndex`, an int) is kept as it is, not
    turned into a plain int, so that indexing can refuse a size that varies with it
    (sim/classic/index.py check_extent; review 9 R9-4: ``int()`` dropped its coefficients and
    a loop-dependent nl.ds size passed)."""
    def keep(v, what: str):
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, float) and not v.is_integer():
            raise SimError(f"nl.ds: {what} must be an integer", v, "use integer tile offsets")
        try:
            return int(v)
        except (TypeError, ValueError):     # rule index.ds: a tile is no trace-time integer
            raise SimError(f"nl.ds: {what} must be an integer known at trace time",
                           type(v).__name__, "index rows held in a tile with an indirect "
                           "access, x[idx_tile[i_p, 0], i_f]") from None
    return DynSlice(keep(start, "start"), keep(size, "size"))


# ---- memory ------------------------------------------------------------------------------
def _hbm_side(x, api: str, role: str) -> None:
    base = x.base if isinstance(x, (IndexedView, GatherView)) else x
    if not isinstance(base, Tensor) or base.alloc.mem is not Mem.HBM:
        raise SimError(f"{api}: {role} must be an HBM tensor", repr(x))


def load(src, mask=None, dtype=None, **kw) -> CTensor:
    api = "nl.load"
    _hbm_side(src, api, "source")
    grid = shape_of(src)
    if len(grid) == 1:                  # src[a:b, i]: the sliced dim becomes the partitions
        grid = grid + (1,)
    if len(grid) < 2:
        raise SimError(f"{api}: a tile needs rank >= 2", list(grid),
                       "index the partition dim with nl.arange(P)[:, None]")
    box = mask_box(mask, grid, api)
    out = new_out(grid, src.dtype if dtype is None else dtype, SBUF, box)
    if isinstance(box, Empty):
        return out
    if isinstance(src, GatherView):             # indirect: rows from an index tile

        def gather_rows(dst: Tensor) -> None:
            move(dst, src, box, api)
        return issue(out, box, gather_rows)
    s = boxed(src, box, grid)

    def redo(dst: Tensor) -> None:
        isa_move.dma_copy(dst, s, api=api, op="dma_copy")
    return issue(out, box, redo)


def store(dst, value, mask=None, **kw) -> None:
    api = "nl.store"
    _hbm_side(dst, api, "destination")
    grid = shape_of(dst)
    box = mask_box(mask, grid, api)
    if isinstance(box, Empty):
        return
    v = boxed(value, box, grid)
    if isinstance(dst, GatherView):             # indirect: rows chosen by an index tile
        move(dst, v, box, api)
        return
    if isinstance(v, Tensor) and v.alloc.mem is Mem.PSUM:     # DMA cannot read PSUM: the
        staged = new_tensor(v.shape, v.dtype, SBUF, fill=False)  # compiler copies it first
        isa_move.tensor_copy(staged, v, api=api)
        v = staged
    lang.store(boxed(dst, box, grid), v)


def loop_reduce(x, op, loop_indices, mask=None, dtype=None, **kw):
    """``nl.loop_reduce``: accumulate ``x`` into the tile the result is assigned to (see
    :class:`nkigen.sim.classic.fresh.LoopReduced`); ``op`` is a NumPy ALU operator of the
    legal reduction ops (S25 nki.api.shared tbl-aluop). The destination's dtype is the result's
    (``dtype=`` casts nothing further)."""
    from nkigen.sim.classic.fresh import LoopReduced
    o = ops.resolve(op, "op")
    ops.reducer(o)                                 # a legal reduction operator
    ops.alu(o, "nl.loop_reduce")
    return LoopReduced(x, o.name, mask)


def atomic_rmw(dst, value, op, mask=None, **kw) -> None:
    """``nl.atomic_rmw(dst[idx_tile, i_f], value, op=np.add)``: an accumulating indirect DMA."""
    api = "nl.atomic_rmw"
    # S25 general/nki/api/nki/language/__init__.py atomic_rmw (SDK 2.25): op "only supports
    # np.add currently", dst "only supports indirect dynamic indexing currently"
    if ops.resolve(op, "op").name != "add":
        raise SimError(f"{api}: op supports only np.add", getattr(op, "__name__", op),
                       "accumulate with op=np.add")
    if not isinstance(dst, GatherView):
        raise SimError(f"{api}: dst must use indirect (index tile) indexing", repr(dst))
    grid = shape_of(dst)
    box = mask_box(mask, grid, api)
    if isinstance(box, Empty):
        return
    move(dst, boxed(value, box, grid), box, api, add=True)


def load_transpose2d(src, mask=None, dtype=None, **kw) -> CTensor:
    api = "nl.load_transpose2d"
    _hbm_side(src, api, "source")
    _no_mask(mask, api)
    s = tile(src)
    if s.ndim != 2:
        raise SimError(f"{api}: source must be 2-D", list(s.shape))
    out = new_out((s.shape[1], s.shape[0]), s.dtype, SBUF, None)
    isa_move.dma_transpose(out, s)
    if dtype is not None and dt.as_dtype(dtype) != s.dtype:
        return copy(out, dtype=dtype)
    return out


def copy(x, mask=None, dtype=None, **kw) -> CTensor:
    api = "nl.copy"
    grid = shape_of(x)
    box = mask_box(mask, grid, api)
    out = new_out(grid, x.dtype if dtype is None else dtype, SBUF, box)
    if isinstance(box, Empty):
        return out
    s = boxed(x, box, grid)
    on_chip(s, api, "x")

    def redo(dst: Tensor) -> None:
        isa_move.tensor_copy(dst, s, api=api)
    return issue(out, box, redo)


copy.__nki_op__ = "copy"  # type: ignore[attr-defined]


def _no_mask(mask, api: str) -> None:
    if mask_box(mask, (1 << 30,), api) is not None:
        raise UnsupportedError(f"{api}(mask=...)", "slice the operands instead")


def transpose(x, mask=None, dtype=None, **kw) -> CTensor:
    _no_mask(mask, "nl.transpose")
    return wrap(lang.transpose(tile(x), dtype))


def matmul(x, y, transpose_x: bool = False, mask=None, **kw) -> CTensor:
    """``x @ y`` into a new fp32 PSUM tile (``acc += nl.matmul(...)`` accumulates)."""
    from nkigen.sim.classic import isa
    from nkigen.sim.classic.tile import MaskedOperand
    xp, yp = (a.pred if isinstance(a, MaskedOperand) else None for a in (x, y))
    if xp is not None and not transpose_x:
        raise UnsupportedError("nl.matmul operand masking of x without transpose_x=True",
                               "pass x transposed (lhsT[pred]) with transpose_x=True, as the "
                               "masking docs do")
    x, y = (need_tile(a.base if isinstance(a, MaskedOperand) else a, "nl.matmul", r)
            for a, r in ((x, "x"), (y, "y")))
    if not transpose_x:
        isa.no_tensor_transpose_when_allocated("nl.matmul (transpose_x=False)")
    if not transpose_x:
        on_chip(x, "nl.matmul", "x")
        x = lang.copy(lang.transpose(x), dtype=x.dtype)
    elif isinstance(x, Tensor) and x.alloc.mem is Mem.PSUM:
        x = lang.copy(x)                # TensorE reads SBUF: the compiler copies PSUM first
    if isinstance(y, Tensor) and y.alloc.mem is Mem.PSUM:
        y = lang.copy(y)                # (the attention tutorial's attn_fwd_v1 relies on it)
    x, y = lang.pair_fp32(x, y)
    return isa.matmul_tile(x if xp is None else MaskedOperand(x, xp),
                           y if yp is None else MaskedOperand(y, yp), mask, api="nl.matmul")


def broadcast_to(x, shape, **kw) -> CTensor:
    return wrap(lang.broadcast_to(tile(x), shape))


def where(condition, x, y, dtype=None, mask=None, **kw) -> CTensor:
    _no_mask(mask, "nl.where")
    args = tuple(tile(a) if isinstance(a, _TILES) else a for a in (condition, x, y))
    if len({a.shape[0] for a in args if isinstance(a, Tensor)}) > 1:
        args = _partition_broadcast(args)
    cond, a, b = args
    return wrap(lang.where(cond, a, b, dtype))


def shared_constant(constant, dtype=None) -> CTensor:
    return wrap(lang.constant(constant, dtype))


def shared_identity_matrix(n: int, dtype=uint8) -> CTensor:
    return wrap(lang.identity(n, dtype))


def expand_dims(x, axis) -> CTensor:
    """``nl.expand_dims``: "currently only supports expanding dimensions after the last index
    of the tile" (S25 general/nki/api/nki/language/__init__.py expand_dims, SDK 2.25); the
    tensor method ``t.expand_dims(axis)`` states no such limit."""
    t = tile(x)
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    n = t.ndim + len(axes)
    pos = sorted(int(a) % n if int(a) < 0 else int(a) for a in axes)
    if pos != list(range(t.ndim, n)):
        raise SimError("nl.expand_dims: new axes only after the last index of the tile",
                       f"axis={axis} on shape {list(t.shape)}",
                       f"use axis={t.ndim} (or the tensor method .expand_dims(axis))")
    return wrap(t.expand_dims(axis))


# ---- element-wise ops ----------------------------------------------------------------------
def _out_dtype(o: ops.Op, args, dtype) -> np.dtype:
    if dtype is not None:
        return dt.as_dtype(dtype)
    if o.kind in (ops.COMPARE, ops.LOGICAL):
        return dt.U8
    d: np.dtype | None = None
    for a in args:
        ad = a.dtype if isinstance(a, _TILES) else dt.scalar_dtype(a)
        d = ad if d is None else dt.promote(d, ad)
    assert d is not None
    if o.name == "divide" and dt.is_int(d):
        return dt.F32           # true division, as NumPy (nl.floor(i / w, dtype=int32) idiom)
    return d


def elementwise(name: str, *args, dtype=None, mask=None, pbcast: bool = True) -> CTensor:
    """``nl.<name>(x[, y], dtype=, mask=)``, lowered exactly as the core ``nl.*`` functions."""
    o = ops.REGISTRY[name]
    api = f"nl.{name}"
    ops.classic_act_missing(name, api)
    if len(args) != o.arity:
        raise SimError(f"{api} takes {o.arity} operand(s)", len(args))
    tiles = [a for a in args if isinstance(a, _TILES)]
    if not tiles:
        raise SimError(f"{api}: needs at least one tile operand", args)
    if pbcast and len(tiles) == 2 and tiles[0].shape[0] != tiles[1].shape[0] \
            and 1 in (tiles[0].shape[0], tiles[1].shape[0]):
        args = _partition_broadcast(args)           # nl.* ops broadcast across partitions
        tiles = [a for a in args if isinstance(a, _TILES)]
    for a in args:
        if not isinstance(a, _TILES + _SCALARS):
            raise SimError(f"{api}: operands must be tiles or scalars", type(a).__name__)
    shapes = [shape_of(a) for a in tiles]
    grid = lang._free_bcast_shape(api, shapes) if len(tiles) > 1 else shapes[0]
    box = mask_box(mask, grid, api)
    out = new_out(grid, _out_dtype(o, args, dtype), SBUF, box)
    if isinstance(box, Empty):
        return out
    shape = box_shape(box, grid)
    b = [boxed(a, box, grid) if isinstance(a, _TILES) else a for a in args]
    for a in b:
        if isinstance(a, Tensor):
            on_chip(a, api, "operand")

    if o.arity == 1 and (o.engine is Engine.SCALAR or o.name in ("copy", "identity")):
        from nkigen.sim.classic.isa import bias_needed_when_allocated
        bias_needed_when_allocated(api, None)      # nl.exp & co lower to a biasless activation

    def redo(dst: Tensor) -> None:
        if o.arity == 1:
            if o.engine is Engine.SCALAR or o.name in ("copy", "identity"):
                isa_compute.activation(dst, o, b[0], api=api)
            else:
                isa_compute.tensor_scalar(dst, b[0], o, None, api=api)
            return
        x, y = b
        if isinstance(x, Tensor) and isinstance(y, Tensor):
            if x.free_size == 1 and x.shape != shape:
                isa_compute.tensor_scalar(dst, lang._full(y, shape), o, x, reverse0=True,
                                          api=api)
            elif y.free_size == 1 and y.shape != shape:
                isa_compute.tensor_scalar(dst, lang._full(x, shape), o, y, api=api)
            else:
                isa_compute.tensor_tensor(dst, lang._bcast_view(x, shape),
                                          lang._bcast_view(y, shape), o, api=api)
            return
        t, s, rev = (x, y, False) if isinstance(x, Tensor) else (y, x, True)
        isa_compute.tensor_scalar(dst, t, o, s, reverse0=rev, api=api)
    return issue(out, box, redo)


def _partition_broadcast(args) -> tuple:
    """The operand with one partition broadcast to the other's partitions (a TensorE
    ones-matmul on hardware, one instruction), free dims left to NumPy-style broadcasting."""
    p = builtins.max(a.shape[0] for a in args if isinstance(a, _TILES))
    out = []
    for a in args:
        if isinstance(a, _TILES) and a.shape[0] == 1:
            t = tile(a)
            a = lang.broadcast_to(t, (p,) + tuple(t.shape[1:]))
        out.append(a)
    return tuple(out)


def _make_elementwise(name: str):
    def fn(*args, dtype=None, mask=None, **kw):
        return elementwise(name, *args, dtype=dtype, mask=mask)
    fn.__name__ = fn.__qualname__ = name
    fn.__nki_op__ = name  # type: ignore[attr-defined]
    fn.__doc__ = f"nl.{name}: element-wise {ops.REGISTRY[name].kind} op (classic: mask=)"
    return fn


for _name in ops.REGISTRY:
    if _name not in ("copy",):
        globals()[_name] = _make_elementwise(_name)


# ---- reductions ----------------------------------------------------------------------------
_REDUCE_OP = {"sum": "add", "mean": "add", "max": "maximum", "min": "minimum",
              "prod": "multiply", "all": "logical_and"}


def reduce(name: str, x, axis, dtype=None, keepdims: bool = False, mask=None) -> CTensor:
    """``nl.sum/max/min/mean/prod/all`` along trailing free axes; without keepdims a full
    free reduction gives a (P, 1) tile."""
    api = f"nl.{name}"
    grid = shape_of(x)
    box = mask_box(mask, grid, api)
    xb = tile(x) if isinstance(box, Empty) else boxed(x, box, grid)
    on_chip(xb, api, "x")
    xb, grid, box, axis = _reduced_last(xb, grid, box, axis, api)
    axes = isa_compute.reduce_axes(api, xb, axis)
    kept = grid[:axes[0]]
    shape = kept + (1,) * len(axes) if keepdims else kept
    if len(shape) == 1:
        shape = shape + (1,)
    out_dt = dt.as_dtype(dtype) if dtype is not None else (
        dt.F32 if name == "mean" and dt.is_int(x.dtype) else x.dtype)
    obox = sub_box(box, len(kept), shape)
    out = new_out(shape, out_dt, SBUF, obox)
    if isinstance(box, Empty):
        return out
    op = _REDUCE_OP[name]
    if name != "mean":
        def redo(dst: Tensor) -> None:
            isa_compute.tensor_reduce(dst, op, xb, axes, api=api)
        return issue(out, obox, redo)
    n = math.prod(xb.shape[a] for a in axes)
    tmp = new_tensor(box_shape(obox, shape), dt.F32, SBUF, fill=False)
    isa_compute.tensor_reduce(tmp, op, xb, axes, api=api)

    def redo_mean(dst: Tensor) -> None:
        isa_compute.tensor_scalar(dst, tmp, "multiply", 1.0 / n, api=api)
    return issue(out, obox, redo_mean)


def _reduced_last(x: Tensor, grid, box, axis, api: str):
    """Free axes reordered so the reduced ones are trailing (``axis=[2, 4]`` of a pooling
    window): a permuted access pattern, no data movement. Returns (x, grid, box, axis)."""
    nd = x.ndim
    axes = list(isa_compute.axis_list(api, axis))
    axes = sorted(int(a) + nd if int(a) < 0 else int(a) for a in axes)
    if not axes or axes[0] == 0 or axes == list(range(axes[0], nd)):
        return x, grid, box, axis
    perm = [0] + [a for a in range(1, nd) if a not in axes] + axes
    if box is not None and not isinstance(box, Empty):
        full = tuple(box) + tuple(slice(0, n) for n in grid[len(box):])
        box = tuple(full[a] for a in perm)
    x = Tensor(x.alloc, x.offset, tuple(x.shape[a] for a in perm),
               tuple(x.strides[a] for a in perm), x.bcast)
    grid = tuple(grid[a] for a in perm)
    return x, grid, box, list(range(nd - len(axes), nd))


def _make_reduce(name: str):
    def fn(x, axis, dtype=None, mask=None, keepdims: bool = False, **kw):
        return reduce(name, x, axis, dtype, keepdims, mask)
    fn.__name__ = fn.__qualname__ = name
    fn.__nki_op__ = _REDUCE_OP[name]  # type: ignore[attr-defined]
    return fn


sum = _make_reduce("sum")  # noqa: A001
max = _make_reduce("max")  # noqa: A001
min = _make_reduce("min")  # noqa: A001
mean = _make_reduce("mean")
prod = _make_reduce("prod")
all = _make_reduce("all")  # noqa: A001


class _FloatInfo:
    """``nl.fp32.min`` / ``nl.finfo(dtype).max`` ...: the finite extremes of a float dtype."""

    def __init__(self, d):
        import ml_dtypes
        d = dt.as_dtype(d)
        info = np.finfo(d) if d.kind == "f" and d.itemsize in (2, 4, 8) and d != dt.BF16 \
            else ml_dtypes.finfo(d)
        self.min, self.max = float(info.min), float(info.max)
        self.bits, self.eps, self.tiny = int(info.bits), float(info.eps), float(info.tiny)


fp32 = _FloatInfo(float32)
finfo = _FloatInfo


# ---- random numbers ----------------------------------------------------------------------
def random_seed(seed, **kw) -> None:
    """``nl.random_seed(seed)``: the generator behind nl.rand for the rest of the run."""
    rngstate.seed(int(seed))


def rand(shape, dtype=float32, **kw) -> CTensor:
    """``nl.rand(shape)``: uniform [0, 1) in a new SBUF tile (one GpSimd instruction; the
    numbers come from NumPy, seeded by nl.random_seed, else 0, per run)."""
    from nkigen.sim.emit import emit, write
    run = state.current()
    out = new_out(tuple(int(s) for s in shape), dtype, SBUF, None)
    if run.numerics:
        write(out, rngstate.generator().random(out.shape, dtype=np.float32))
    emit(run, Engine.GPSIMD, "rand", (), (out,), out.shape[0], out.free_size, dt.F32,
         out.dtype, n_in=0)
    return out


def _rng():
    return rngstate.generator()


def dropout(x, rate, dtype=None, mask=None, **kw) -> CTensor:
    """``nl.dropout(x, rate)``: nisa.dropout of ``x`` with drop probability ``rate`` (a scalar
    or a (P, 1) tile; S25 general/nki/api/nki/language/__init__.py dropout)."""
    from nkigen.sim.classic import isa
    return isa.dropout(x, rate, mask=mask, dtype=dtype)


def gather_flattened(data, indices, mask=None, dtype=None, **kw) -> CTensor:
    """``nl.gather_flattened``: ``out[p, j] = data[p].flatten()[indices[p, j]]`` (one GpSimd
    instruction; an index past a partition's elements is an error, not garbage)."""
    from nkigen.sim.emit import emit, write
    api = "nl.gather_flattened"
    _no_mask(mask, api)
    d, ix = tile(data), tile(indices)
    on_chip(d, api, "data")
    on_chip(ix, api, "indices")
    if ix.dtype.kind not in "iu" or ix.shape[0] != d.shape[0]:
        raise SimError(f"{api}: indices must be an integer tile with data's partitions",
                       f"{list(ix.shape)} {ix.dtype}")
    # S25 general/nki/api/nki/language/__init__.py gather_flattened (SDK 2.24+): "Both data
    # and indices must be 2-, 3-, or 4-dimensional. The indices tensor must contain uint32"
    if ix.dtype != dt.as_dtype("uint32"):
        raise SimError(f"{api}: indices must be uint32", str(ix.dtype),
                       "copy the indices into a uint32 tile")
    for t, role in ((d, "data"), (ix, "indices")):
        if not 2 <= t.ndim <= 4:
            raise SimError(f"{api}: {role} must be 2-, 3- or 4-dimensional", list(t.shape))
    run = state.current()
    out = new_out(ix.shape, d.dtype if dtype is None else dtype, SBUF, None)
    if run.numerics:
        flat = d.np().reshape(d.shape[0], -1)
        j = ix.np().reshape(ix.shape[0], -1).astype(np.int64)
        if (j < 0).any() or (j >= flat.shape[1]).any():
            raise SimError(f"{api}: index out of bounds", f"max {int(j.max())}, "
                           f"{flat.shape[1]} elements per partition")
        write(out, np.take_along_axis(flat, j, axis=1))
    emit(run, Engine.GPSIMD, "gather_flattened", (d, ix), (out,), d.shape[0], ix.free_size,
         d.dtype, out.dtype, n_in=2)
    return out


# ---- loops and SPMD ----------------------------------------------------------------------
class nc:  # noqa: N801 - public NKI spelling
    """``nl.nc(n)``: n physical NeuronCores in an SPMD grid dim (``nl.nc(2) * 2``)."""

    def __init__(self, n: int):
        self.n = int(n)

    def __mul__(self, k) -> int:
        return self.n * int(k)

    __rmul__ = __mul__

    def __int__(self) -> int:
        return self.n


def spmd_dim(*factors) -> int:
    """``nl.spmd_dim(nl.nc(2), 2)``: a grid dim of 2 x 2 instances (run one after another)."""
    n = 1
    for f in factors:
        n *= int(f)
    return n


# ---- loops and SPMD ----------------------------------------------------------------------
def affine_range(start, stop=None, step=1, **kw):
    """Parallel loop; its index is a :class:`~nkigen.sim.classic.index.LoopIndex`."""
    return traced_once(loops.affine_range(start, stop, step, **kw))


def sequential_range(start, stop=None, step=1, **kw):
    """Loop with carried dependencies; its index is a LoopIndex (traced once) tainted as
    sequential: a mask using it is reported (rule ``mask.sequential-index`` of
    :mod:`nkigen.sim.classic.forms`)."""
    loc = kernel_loc()
    where = f" of line {loc.line}" if loc is not None else ""
    return traced_once(loops.sequential_range(start, stop, step, **kw),
                       frozenset({f"the nl.sequential_range index{where}"}))


static_range = loops.static_range       # unrolled: plain int indices
program_id = loops.program_id
num_programs = loops.num_programs
program_ndim = loops.program_ndim


def static_cast(x, dtype):
    """``nl.static_cast(array, dtype)``: a host-side NumPy cast (for kernel inputs)."""
    if isinstance(x, np.ndarray):
        return x.astype(dt.as_dtype(dtype))
    raise UnsupportedError("nl.static_cast of a kernel tensor", "use nl.copy(x, dtype=...)")


def device_print(prefix: str, x, mask=None, **kw) -> None:
    r = state.current()
    if r.numerics and isinstance(x, _TILES):
        print(prefix, tile(x).np())


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"neuronxcc.nki.language.{name}")
