"""``neuronxcc.nki.isa`` (classic API): every instruction returns its result tile.

Stage: simulate (classic API layer). Each call allocates its result (SBUF; PSUM for TensorE),
applies ``mask=`` as the box of lanes to compute, and issues the same core instruction the
current-API layer issues for ``dst``-first calls. ``acc += nisa.nc_matmul(a, b)`` into PSUM is
one accumulating matmul (see :mod:`nkigen.sim.classic.tile`). Enums are the current layer's.
Any name not defined here raises an error naming it.
"""

from __future__ import annotations

import functools
import inspect
import math
from enum import Enum

import numpy as np

from nkigen.hw import Engine
from nkigen.sim import dt, isa_compute, isa_extra, isa_move, ops, state
from nkigen.sim.classic.fresh import issue, new_out, sub_box
from nkigen.sim.classic.gather import GatherView, move
from nkigen.sim.classic.index import EMPTY, Cmp, Empty, Expr, Predicate, check_select, mask_box
from nkigen.sim.classic.tile import (
    CTensor,
    IndexedView,
    MaskedOperand,
    boxed,
    need_operand,
    need_tile,
    shape_of,
    tile,
)
from nkigen.sim.emit import on_chip
from nkigen.sim.errors import SimError, UnsupportedError, as_int
from nkigen.sim.nki.isa import (  # noqa: F401 - the same enums as the current layer
    dge_mode,
    engine,
    get_nc_version,
    gpsimd_engine,
    matmul_perf_mode,
    nc_version,
    oob_mode,
    reduce_cmd,
    scalar_engine,
    sync_engine,
    tensor_engine,
    unknown_engine,
    vector_engine,
)
from nkigen.sim.tensor import PSUM, SBUF, Tensor
from nkigen.sim.trace import Mem

dma_engine = engine.dma
_TILES = (Tensor, IndexedView)


def _col(x, box, p_axis_only: bool = True):
    """A (P, 1) operand (bias, scale, per-partition scalar) restricted to the box's partitions."""
    if not isinstance(x, _TILES) or box is None or isinstance(box, Empty):
        return tile(x) if isinstance(x, _TILES) else x
    t = tile(x)
    return Tensor.__getitem__(t, (box[0],)) if t.shape[0] > 1 else t


def _dtype(dtype, default):
    return default if dtype is None else dt.as_dtype(dtype)


def _elementwise_call(api: str, data, dtype, mask, body, default_dtype=None) -> CTensor:
    """Common shape: result has the data's grid; ``body(dst, data_boxed, box)`` issues."""
    grid = shape_of(data)
    box = mask_box(mask, grid, api)
    out = new_out(grid, _dtype(dtype, default_dtype or data.dtype), SBUF, box)
    if isinstance(box, Empty):
        return out
    d = boxed(data, box, grid)
    on_chip(d, api, "data")

    def redo(dst: Tensor) -> None:
        body(dst, d, box, grid)
    return issue(out, box, redo)


# ---- TensorE -----------------------------------------------------------------------------
def _matmul_lanes(mask, api: str) -> None:
    """Rule ``mask.matmul-lanes`` (:mod:`nkigen.sim.classic.forms`): a matmul's ``mask=`` may
    hold loop-index predicates only (S25 general/nki/api/nki.api.shared.rst "NKI API Masking":
    lane masks of a matmul are written as operand masks; use case 2 skips instructions)."""
    if not isinstance(mask, Predicate):
        return
    lanes = [c for c in mask.parts() if c.lanes()]
    if lanes:
        from nkigen.sim.classic import forms
        from nkigen.sim.classic.index import show
        forms.report(forms.MATMUL_LANES, f"{api}: mask=", lambda: (
            f"{len(lanes)} comparison(s) over nl.arange lanes, e.g. {show(lanes[0])}"))


def _operand_boxes(ops: list, api: str) -> tuple[list, list]:
    """Operand masks (``lhsT[i_lhs_f <= 64]``) resolved: (operand tiles, per operand the box
    of its [contraction, free] lanes, None = all, EMPTY = none)."""
    tiles: list = []
    boxes: list = []
    for x, role in zip(ops, ("stationary", "moving")):
        if not isinstance(x, MaskedOperand):
            tiles.append(need_tile(x, api, role))
            boxes.append(None)
            continue
        t = need_tile(x.base, api, role)
        if t.ndim != 2:
            raise UnsupportedError(f"{api}: operand masking of an operand with more than one "
                                   "free dim", "mask a 2-D [K, F] operand tile")
        tiles.append(t)
        boxes.append(mask_box(x.pred, tuple(t.shape), f"{api} operand mask"))
    return tiles, boxes


def _meet(a: slice, b: slice) -> slice | None:
    lo, hi = max(a.start, b.start), min(a.stop, b.stop)
    return slice(lo, hi) if lo < hi else None


def matmul_tile(stationary, moving, mask=None, api: str = "nc_matmul", **kw) -> CTensor:
    """``stationary.T @ moving`` into a new fp32 PSUM tile [stationary_F, moving_F]; a mask
    selects a box of that result (stationary and moving free columns). Operand masks
    (``stationary[pred]``, ``moving[pred]``) select lanes of an operand: its free axis is that
    axis of the result, its partition axis the contraction (shared by both operands)."""
    _matmul_lanes(mask, api)
    (st, mv), oboxes = _operand_boxes([stationary, moving], api)
    grid = (st.free_size, mv.free_size)
    if getattr(kw.get("perf_mode"), "name", kw.get("perf_mode")) in ("double_row",
                                                                      "double_row_gen3"):
        if any(b is not None for b in oboxes):
            raise UnsupportedError(f"{api}: operand masking with perf_mode double_row")
        grid = (st.free_size // 2, mv.free_size // 2)    # [K, 2, F] operands
    box = mask_box(mask, grid, api)
    if any(b is not None for b in oboxes) and not isinstance(box, Empty):
        full = [slice(0, grid[0]), slice(0, grid[1])] if box is None else list(box)
        rows: slice | None = slice(0, st.shape[0])
        for k, ob in enumerate(oboxes):
            if isinstance(ob, Empty):
                box = EMPTY
                break
            if ob is None:
                continue
            rows = None if rows is None else _meet(rows, ob[0])
            cut = _meet(full[k], ob[1])
            if cut is None or rows is None:
                box = EMPTY
                break
            full[k] = cut
        else:
            assert rows is not None
            if rows.start != 0 or rows.stop != st.shape[0]:      # the shared contraction
                st = Tensor.__getitem__(st, (rows,))
                mv = Tensor.__getitem__(mv, (rows,))
            box = None if all(b.start == 0 and b.stop == n for b, n in zip(full, grid)) \
                else tuple(full)
    out = new_out(grid, dt.F32, PSUM, box)
    if isinstance(box, Empty):
        return out
    if box is not None:
        # an operand whose free axes the box keeps whole is used as it is (a multi-free-dim
        # moving operand masked on the stationary side only: the convolution's row blocks)
        for k, x in enumerate((st, mv)):
            whole = box[k].start == 0 and box[k].stop == grid[k]
            if x.ndim != 2 and not whole:
                raise UnsupportedError(f"{api}(mask=...) clipping an operand with more than "
                                       "one free dim")
        if box[0].start != 0 or box[0].stop != grid[0]:
            st = Tensor.__getitem__(st, (slice(None), box[0]))
        if box[1].start != 0 or box[1].stop != grid[1]:
            mv = Tensor.__getitem__(mv, (slice(None), box[1]))

    if api == "nc_matmul":
        # the ISA call: "stationary and moving must be SBUF tiles" (S25 general/nki/api/nki/
        # isa/__init__.py nc_matmul, SDK 2.25); only the language-level nl.matmul is lowered
        # by the compiler, which may stage a PSUM operand through SBUF
        for role, x in (("stationary", st), ("moving", mv)):
            if x.alloc.mem is Mem.PSUM:
                raise SimError(f"{api}: {role} must be an SBUF tile (TensorE reads SBUF only)",
                               f"a PSUM tile {x!r}",
                               "allocate it in nl.sbuf, or copy the PSUM tile to SBUF first "
                               "(nisa.tensor_copy)")
    # a classic PSUM result (e.g. of nc_transpose) used as an nl.matmul operand is copied to
    # SBUF by the compiler first (TensorE reads SBUF only), as for GpSimd operands (_staged)
    st, mv = _staged(st), _staged(mv)

    def redo(dst: Tensor, accumulate: bool = False, later: bool = False) -> None:
        isa_move.nc_matmul(dst, st, mv, accumulate=accumulate, api=api, direct="classic",
                           later=later, **kw)
    return issue(out, box, redo, matmul=True)


def nc_matmul(stationary, moving, is_stationary_onezero=False, is_moving_onezero=False,
              is_transpose=False, tile_position=(), tile_size=(), mask=None, perf_mode=None,
              **kw) -> CTensor:
    return matmul_tile(stationary, moving, mask, is_transpose=is_transpose,
                       tile_position=tile_position, tile_size=tile_size, perf_mode=perf_mode,
                       onezero=(bool(is_stationary_onezero), bool(is_moving_onezero)))


def nc_transpose(data, mask=None, dtype=None, engine=engine.unknown, **kw) -> CTensor:
    """``mask=`` names lanes of the input ``data`` [P, F] (S25 general/nki/api/nki.api.shared.rst
    "NKI API Masking": a comparison per input tile axis; the instruction is generated with the
    smaller input tile): the box of ``data`` it keeps is transposed, and the result's other
    lanes are undefined (NaN in the simulator)."""
    api = "nc_transpose"
    shape = shape_of(data)
    grid = (shape[0], math.prod(shape[1:]))
    box = mask_box(mask, shape, api)
    if box is not None and not isinstance(box, Empty) and len(shape) != 2:
        raise UnsupportedError(f"{api}(mask=...) on a tile with more than one free dim",
                               "slice the operand instead")
    x = None
    if not isinstance(box, Empty):       # no lane kept: the data is not read (nor checked)
        x = tile(data) if box is None else boxed(data, box, grid)
        on_chip(x, api, "data")
    p, f = grid
    eng = getattr(engine, "hw", None)
    if eng is not Engine.VECTOR:           # unset engine included (the doc's [32, 32] case)
        no_tensor_transpose_when_allocated("nc_transpose")
    if eng is None:
        eng = Engine.VECTOR if p <= 32 and f <= 32 else Engine.TENSOR
    buf = PSUM if eng is Engine.TENSOR else SBUF
    obox = box if box is None or isinstance(box, Empty) else (box[1], box[0])
    out = new_out((f, p), _dtype(dtype, data.dtype), buf, obox)
    if x is None:
        return out

    if eng is Engine.TENSOR and x.dtype.kind in "iu":
        from nkigen.sim.classic import forms
        forms.report(forms.TENSOR_INTEGER, f"{api}: TensorE data", lambda: (
            f"{x.dtype} data {list(x.shape)}"))

    def redo(dst: Tensor) -> None:
        isa_move.nc_transpose(dst, x, eng, direct="classic")
    return issue(out, obox, redo)


# ---- allocated kernels -----------------------------------------------------------------------
def allocated_kernel() -> bool:
    """Whether the running classic kernel has made a direct allocation (ncc.sbuf/psum.alloc or
    mod_alloc): an "allocated NKI kernel" of S25 general/nki/api/nki.errors.rst (SDK 2.25). The
    simulator runs eagerly, so calls before the kernel's first direct allocation are not
    covered."""
    run = state.current()
    return run.classic and run.direct_alloc


def no_tensor_transpose_when_allocated(api: str) -> None:
    """S25 nki.errors.rst err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel:
    allocated kernels transpose with their own identity and nisa.nc_matmul (or VectorE)."""
    if allocated_kernel():
        raise SimError(f"{api}: err_transpose_on_tensor_engine_not_allowed_in_allocated_kernel: "
                       "an allocated kernel may not transpose on TensorE", api,
                       "transpose with nisa.nc_matmul and an allocated identity matrix, or "
                       "nc_transpose(engine=nisa.vector_engine) for up to 32x32")


def bias_needed_when_allocated(api: str, bias) -> None:
    """S25 nki.errors.rst err_bias_tensor_must_be_specified_in_allocation: an activation in an
    allocated kernel passes bias (nl.exp & co, which lower to activation, cannot)."""
    if bias is None and allocated_kernel():
        raise SimError(f"{api}: err_bias_tensor_must_be_specified_in_allocation: an activation "
                       "in an allocated kernel must pass bias", "bias=None",
                       "call nisa.activation(..., bias=<an allocated (P, 1) tile of zeros>)")


# ---- Scalar / Vector / GpSimd ------------------------------------------------------------
def _cmd(reduce_cmd_, reduce_op, reduce_res) -> str:
    cmd = reduce_cmd_.name if isinstance(reduce_cmd_, Enum) else str(reduce_cmd_)
    if cmd == "load_reduce":
        raise UnsupportedError("nisa.activation(reduce_cmd=load_reduce)")
    return cmd


def activation(op, data, bias=None, scale=1.0, reduce_op=None, reduce_res=None,
               reduce_cmd=reduce_cmd.idle, mask=None, dtype=None, **kw) -> CTensor:
    cmd = _cmd(reduce_cmd, reduce_op, reduce_res)
    bias_needed_when_allocated("activation", bias)

    def body(dst, d, box, grid):
        isa_compute.activation(dst, op, d, _col(bias, box), _col(scale, box), reduce_op,
                               _col(reduce_res, box), cmd, direct="classic")
    return _elementwise_call("activation", data, dtype, mask, body)


def activation_reduce(op, data, reduce_op, reduce_res, bias=None, scale=1.0, mask=None,
                      dtype=None, **kw) -> CTensor:
    bias_needed_when_allocated("activation_reduce", bias)

    def body(dst, d, box, grid):
        isa_compute.activation(dst, op, d, _col(bias, box), _col(scale, box), reduce_op,
                               _col(reduce_res, box), "reset_reduce", api="activation_reduce",
                               direct="classic")
    return _elementwise_call("activation_reduce", data, dtype, mask, body)


def tensor_tensor(data1, data2, op, dtype=None, mask=None, engine=engine.unknown,
                  **kw) -> CTensor:
    need_operand(data1, "tensor_tensor", "data1")
    need_operand(data2, "tensor_tensor", "data2")
    d2 = data2

    def body(dst, d, box, grid):
        isa_compute.tensor_tensor(dst, d, boxed(d2, box, grid), op, engine, direct="classic")
    return _elementwise_call("tensor_tensor", data1, dtype, mask, body,
                             dt.promote(data1.dtype, data2.dtype))


def tensor_scalar(data, op0, operand0, reverse0=False, op1=None, operand1=None,
                  reverse1=False, dtype=None, mask=None, engine=engine.unknown,
                  **kw) -> CTensor:
    def body(dst, d, box, grid):
        isa_compute.tensor_scalar(dst, d, op0, _col(operand0, box), reverse0, op1,
                                  _col(operand1, box), reverse1, engine, direct="classic")
    return _elementwise_call("tensor_scalar", data, dtype, mask, body)


def scalar_tensor_tensor(data, op0, operand0, op1, operand1, reverse0=False, reverse1=False,
                         dtype=None, mask=None, **kw) -> CTensor:
    def body(dst, d, box, grid):
        isa_compute.scalar_tensor_tensor(dst, d, op0, _col(operand0, box), op1,
                                         boxed(operand1, box, grid), reverse0, reverse1,
                                         direct="classic")
    return _elementwise_call("scalar_tensor_tensor", data, dtype, mask, body)


def tensor_copy(src, mask=None, dtype=None, engine=engine.unknown, **kw) -> CTensor:
    def body(dst, d, box, grid):
        isa_move.tensor_copy(dst, d, engine, direct="classic")
    return _elementwise_call("tensor_copy", src, dtype, mask, body)


def reciprocal(data, dtype=None, mask=None, **kw) -> CTensor:
    def body(dst, d, box, grid):
        isa_compute.reciprocal(dst, d)
    return _elementwise_call("reciprocal", data, dtype, mask, body)


def tensor_tensor_scan(data0, data1, initial, op0, op1, reverse0=False, reverse1=False,
                       dtype=None, mask=None, **kw) -> CTensor:
    def body(dst, d, box, grid):
        isa_compute.tensor_tensor_scan(dst, d, boxed(data1, box, grid), _col(initial, box),
                                       op0, op1, reverse0, reverse1, direct="classic")
    return _elementwise_call("tensor_tensor_scan", data0, dtype, mask, body)


def _reducing(api: str, data, dtype, mask, out_shape_of, body) -> CTensor:
    """Result keeps the partitions (and the leading kept free dims) of the data."""
    grid = shape_of(data)
    box = mask_box(mask, grid, api)
    d = tile(data) if isinstance(box, Empty) else boxed(data, box, grid)
    on_chip(d, api, "data")
    shape, nkept = out_shape_of(d, grid)
    obox = sub_box(box, nkept, shape)
    out = new_out(shape, _dtype(dtype, data.dtype), SBUF, obox)
    if isinstance(box, Empty):
        return out

    def redo(dst: Tensor) -> None:
        body(dst, d)
    return issue(out, obox, redo)


def tensor_reduce(op, data, axis, mask=None, dtype=None, negate=False, keepdims=False,
                  **kw) -> CTensor:
    api = "tensor_reduce"

    def shape_fn(d, grid):
        axes = isa_compute.reduce_axes(api, d, axis)
        kept = grid[:axes[0]]
        shape = kept + (1,) * len(axes) if keepdims else kept
        return (shape + (1,) if len(shape) == 1 else shape), len(kept)

    def body(dst, d):
        isa_compute.tensor_reduce(dst, op, d, axis, negate, keepdims, direct="classic")
    return _reducing(api, data, dtype, mask, shape_fn, body)


def bn_stats(data, mask=None, dtype=None, **kw) -> CTensor:
    return _reducing("bn_stats", data, dtype, mask, lambda d, g: ((g[0], 6), 1),
                     isa_compute.bn_stats)


def bn_aggr(data, mask=None, dtype=None, **kw) -> CTensor:
    return _reducing("bn_aggr", data, dtype, mask, lambda d, g: ((g[0], 2), 1),
                     isa_compute.bn_aggr)


# ---- less common Vector / GpSimd instructions (core: nkigen.sim.isa_extra) -------------------
def _plain(api: str, mask) -> None:
    if mask_box(mask, (1 << 30,), api) is not None:
        raise UnsupportedError(f"nisa.{api}(mask=...)", "slice the operands instead")


def _result(shape, dtype, body, buffer=SBUF) -> CTensor:
    out = new_out(shape, dtype, buffer, None)
    return issue(out, None, body)


def local_gather(src_buffer, index, num_elem_per_idx=1, num_valid_indices=None, mask=None,
                 **kw) -> CTensor:
    """Classic ``nisa.local_gather``: returns a (P, num_valid_indices, num_elem_per_idx) tile
    (the NumPy semantics of S25 general/nki/test/test_nki_isa_local_gather.py)."""
    _plain("local_gather", mask)
    s, ix = tile(src_buffer), tile(index)
    groups = max(s.shape[0] // 16, 1)
    v = ix.size // groups if num_valid_indices is None else int(num_valid_indices)
    return _result((s.shape[0], v, int(num_elem_per_idx)), s.dtype, lambda dst: (
        isa_extra.local_gather(dst, s, ix, num_elem_per_idx, num_valid_indices)))


def tensor_scalar_reduce(data, op0, operand0, reduce_op, reduce_res, reverse0=False,
                         dtype=None, mask=None, **kw) -> CTensor:
    _plain("tensor_scalar_reduce", mask)
    d = need_tile(data, "tensor_scalar_reduce", "data")
    return _result(d.shape, _dtype(dtype, d.dtype), lambda dst: (
        isa_extra.tensor_scalar_reduce(dst, d, op0, _col(operand0, None), reduce_op,
                                       tile(reduce_res), reverse0, direct="classic")))


def tensor_copy_predicated(src, dst, predicate, mask=None, dtype=None, reverse_pred=False,
                           **kw) -> None:
    """Classic form: writes ``dst`` where ``predicate`` holds (no result). ``mask=`` (S25
    general/nki/api/nki/isa/__init__.py tensor_copy_predicated takes one; the masking rule:
    S25 general/nki/api/nki.api.shared.rst "NKI API Masking") restricts all three operands to
    the kept lanes of ``dst``'s grid; the other lanes of ``dst`` keep their values."""
    api = "tensor_copy_predicated"
    grid = shape_of(dst)
    box = mask_box(mask, grid, api)
    if isinstance(box, Empty):
        return
    isa_extra.tensor_copy_predicated(
        boxed(dst, box, grid), boxed(src, box, grid) if isinstance(src, _TILES) else src,
        boxed(predicate, box, grid), reverse_pred)


def tensor_partition_reduce(op, data, mask=None, dtype=None, **kw) -> CTensor:
    _plain("tensor_partition_reduce", mask)
    d = need_tile(data, "tensor_partition_reduce", "data")
    return _result((1,) + tuple(d.shape[1:]),
                   _dtype(dtype, d.dtype),
                   lambda dst: isa_extra.tensor_partition_reduce(dst, op, d))


def nc_stream_shuffle(src, dst, shuffle_mask, dtype=None, mask=None, **kw) -> None:
    """Classic form: writes ``dst`` (no result)."""
    _plain("nc_stream_shuffle", mask)
    isa_extra.nc_stream_shuffle(tile(dst), tile(src), shuffle_mask)


def _data_box(api: str, data, mask):
    """(boxed data tile, result box over [P, 8]) of an 8-wide search under ``mask=``: the mask
    names lanes of the data tile (S25 nc_find_index8: "a mask is applied only to the data
    tensor"; the masking guide: the instruction reads the smaller input tile), so the search
    runs over the kept free lanes of the kept partitions; the result keeps those partitions."""
    grid = shape_of(data)
    box = mask_box(mask, grid, api)
    if isinstance(box, Empty):
        return None, box
    d = boxed(data, box, grid)
    on_chip(d, api, "data")
    return d, sub_box(box, 1, (grid[0], 8))


def max8(src, mask=None, dtype=None, **kw) -> CTensor:
    """The 8 largest values per partition; under ``mask=`` of the kept lanes only (the kept
    partitions of the result; the others are undefined)."""
    s, obox = _data_box("max8", src, mask)
    out = new_out((src.shape[0], 8), _dtype(dtype, src.dtype), SBUF, obox)
    if isinstance(obox, Empty):
        return out
    return issue(out, obox, lambda dst: isa_extra.max8(dst, s))


def nc_find_index8(data, vals, mask=None, dtype=None, **kw) -> CTensor:
    """Indices of ``vals`` in each partition of ``data``; under ``mask=`` the search reads the
    kept lanes of ``data`` (indices count from the first kept lane) and ``vals`` of the kept
    partitions."""
    d, obox = _data_box("nc_find_index8", data, mask)
    out = new_out((data.shape[0], 8), _dtype(dtype, dt.as_dtype("uint32")), SBUF, obox)
    if isinstance(obox, Empty):
        return out
    v = tile(vals)
    if obox is not None:
        v = Tensor.__getitem__(v, (obox[0],))
    return issue(out, obox, lambda dst: isa_extra.nc_find_index8(dst, d, v))


def nc_match_replace8(data, vals, imm, dst_idx=None, mask=None, dtype=None, **kw) -> CTensor:
    _plain("nc_match_replace8", mask)
    d, v = tile(data), tile(vals)
    idx = None if dst_idx is None else tile(dst_idx)
    return _result(d.shape, _dtype(dtype, d.dtype),
                   lambda dst: isa_extra.nc_match_replace8(dst, d, v, imm, idx))


def range_select(on_true_tile, comp_op0, comp_op1, bound0, bound1,
                 reduce_cmd=reduce_cmd.reset_reduce, reduce_res=None, reduce_op="maximum",
                 range_start=0, on_false_value=-3.4028235e38, mask=None, dtype=None,
                 **kw) -> CTensor:
    _plain("range_select", mask)
    if state.current().target.nc_version < 3:
        raise SimError("nisa.range_select is available only on NeuronCore-v3 and newer",
                       state.current().target.name)
    t = tile(on_true_tile)
    cmd = reduce_cmd.name if isinstance(reduce_cmd, Enum) else str(reduce_cmd)
    res = None if reduce_res is None else tile(reduce_res)
    return _result(t.shape, _dtype(dtype, t.dtype), lambda dst: (
        isa_extra.range_select(dst, t, comp_op0, comp_op1, _col(bound0, None),
                               _col(bound1, None), cmd, res, reduce_op, range_start,
                               on_false_value)))


def dropout(data, prob, mask=None, dtype=None, **kw) -> CTensor:
    """``nisa.dropout``: each element replaced by zero with probability ``prob`` (a scalar or
    a (P, 1) tile); not rescaled. The draws come from NumPy (nl.random_seed, else 0)."""
    from nkigen.sim.classic.language import _rng
    from nkigen.sim.emit import emit, per_partition, read, write

    need_operand(data, "dropout", "data")
    if dt.is_int(data.dtype):
        # S25 dropout: integer data needs a float32 prob and keeps its dtype
        from nkigen.sim.emit import is_f32, need_dtype
        need_dtype(tile(prob) if isinstance(prob, _TILES) else prob, is_f32, "dropout", "prob",
                   "must be float32 when data is an integer tile")
        if dtype is not None and dt.as_dtype(dtype) != data.dtype:
            raise SimError("dropout: the output dtype must match integer input data",
                           f"{dt.name(dt.as_dtype(dtype))} vs {dt.name(data.dtype)}")

    def body(dst, d, box, grid):
        run = state.current()
        p = per_partition(_col(prob, box), d.shape[0], "dropout", "prob")
        if run.numerics:
            x = read(d)
            pr = read(p) if isinstance(p, Tensor) else np.float32(p)
            keep = _rng().random(x.shape, dtype=np.float32) >= pr
            write(dst, np.where(keep, x, np.float32(0)))
        emit(run, Engine.VECTOR, "dropout", (d,) + ((p,) if isinstance(p, Tensor) else ()),
             (dst,), d.shape[0], d.free_size, d.dtype, dst.dtype)
    return _elementwise_call("dropout", data, dtype, mask, body)


# ---- GpSimd: iota / affine_select / memset -------------------------------------------------
def _pattern(e: Expr, box) -> tuple[list[list[int]], int, int, tuple[int, ...]]:
    """(free pattern, offset, channel_multiplier, tile shape) of an expression over a box."""
    shape = e.shape
    if len(shape) < 2:
        raise SimError("an affine expression over a tile needs a partition and a free axis",
                       repr(e), "use nl.arange(P)[:, None] and nl.arange(F)[None, :]")
    rng = [(0, n) if box is None else (box[a].start, box[a].stop) for a, n in enumerate(shape)]
    coefs = [e.coef(a, e.ndim) for a in range(e.ndim)]
    offset = e.const + sum(c * lo for c, (lo, _) in zip(coefs, rng))
    pattern = [[coefs[a], rng[a][1] - rng[a][0]] for a in range(1, e.ndim)]
    return pattern, offset, coefs[0], tuple(hi - lo for lo, hi in rng)


def _staged(t: Tensor) -> Tensor:
    """A PSUM operand of a GpSimd instruction (GpSimd cannot read PSUM) copied to SBUF first
    by VectorE, as the compiler does for classic kernels that pass PSUM tiles."""
    if t.alloc.mem is not Mem.PSUM:
        return t
    from nkigen.sim.tensor import new_tensor
    s = new_tensor(t.shape, t.dtype, SBUF, fill=False)
    isa_move.tensor_copy(s, t)
    return s


def iota(expr, dtype, mask=None, **kw) -> CTensor:
    api = "iota"
    if not isinstance(expr, Expr):
        raise UnsupportedError(f"nisa.iota of a {type(expr).__name__}",
                               "pass an affine nl.arange expression")
    expr._need_placed()
    check_select(expr, api, "expr")
    grid = expr.shape
    box = mask_box(mask, grid, api)
    out = new_out(grid if len(grid) > 1 else grid + (1,), dtype, SBUF, box)
    if isinstance(box, Empty):
        return out
    pattern, offset, cm, _ = _pattern(expr, box)

    def redo(dst: Tensor) -> None:
        isa_move.iota(dst, pattern, offset, cm)
    return issue(out, box, redo)


def affine_select(pred, on_true_tile, on_false_value, mask=None, dtype=None, **kw) -> CTensor:
    api = "affine_select"
    if not isinstance(pred, Cmp):
        raise UnsupportedError(f"nisa.affine_select with a {type(pred).__name__} predicate"
                               if not isinstance(pred, Predicate) else
                               "nisa.affine_select with predicates joined by &",
                               "use one comparison of affine nl.arange expressions")
    check_select(pred, api, "pred")
    e = pred.diff()
    grid = shape_of(on_true_tile)
    if tuple(e.shape) != tuple(grid) and len(e.shape) == len(grid):
        e = e + Expr(0, {r: (n, 0) for r, n in enumerate(reversed(grid))}, len(grid))
    if tuple(e.shape) != tuple(grid):
        raise SimError(f"{api}: predicate grid {list(e.shape)} differs from the tile",
                       list(grid))
    box = mask_box(mask, grid, api)
    out = new_out(grid, _dtype(dtype, on_true_tile.dtype), SBUF, box)
    if isinstance(box, Empty):
        return out
    for d_, role in ((on_true_tile.dtype, "on_true_tile"), (out.dtype, "result")):
        if d_.kind in "iu" and d_.itemsize > 2:
            raise SimError(f"{api}: {role} must be a float or 8/16-bit integer dtype (S25 "
                           "affine_select)", dt.name(d_), "cast to a float or 16-bit tile first")
    t = _staged(boxed(on_true_tile, box, grid))
    pattern, offset, cm, _ = _pattern(e, box)

    def redo(dst: Tensor) -> None:
        isa_compute.affine_select(dst, pattern, cm, t, on_false_value, pred.op, offset,
                                  direct="classic")
    return issue(out, box, redo)


def memset(shape, value, dtype, mask=None, engine=engine.unknown, **kw) -> CTensor:
    api = "memset"
    if not isinstance(shape, (tuple, list)):
        raise SimError(f"{api}: shape must be a tuple of dims (classic nisa.memset(shape, value, "
                       "dtype))", repr(shape), "e.g. nisa.memset((P, F), 0.0, nl.float32)")
    grid = tuple(as_int(s, f"{api}: a shape dim") for s in shape)
    box = mask_box(mask, grid, api)
    out = new_out(grid, dtype, SBUF, box)

    def redo(dst: Tensor) -> None:
        isa_move.memset(dst, value, engine, direct="classic")
    return issue(out, box, redo)


# ---- DMA -----------------------------------------------------------------------------------
def dma_copy(dst=None, src=None, mask=None, dst_rmw_op=None, oob_mode=oob_mode.error,
             dge_mode=dge_mode.unknown, **kw) -> None:
    api = "dma_copy"
    add = dst_rmw_op is not None
    skip = getattr(oob_mode, "name", oob_mode) == "skip"
    # S25 general/nki/api/nki/isa/__init__.py dma_copy (SDK 2.25): dst_rmw_op is np.add only
    # and then oob_mode must be error; hardware DGE is only supported for NeuronCore-v3+
    if add and ops.resolve(dst_rmw_op, "dst_rmw_op").name != "add":
        raise SimError("dma_copy: dst_rmw_op supports only np.add",
                       getattr(dst_rmw_op, "__name__", dst_rmw_op),
                       "add with dst_rmw_op=np.add, or compute on chip and copy")
    if add and skip:
        raise SimError("dma_copy: with dst_rmw_op only oob_mode=oob_mode.error is allowed",
                       "oob_mode=skip", "drop oob_mode= (or dst_rmw_op=)")
    if getattr(dge_mode, "name", dge_mode) in ("hwdge", 2) and \
            state.current().target.nc_version < 3:
        raise SimError("dma_copy: dge_mode=hwdge needs NeuronCore-v3 or newer",
                       state.current().target.name, "use dge_mode=nisa.dge_mode.unknown")
    grid = shape_of(dst)
    box = mask_box(mask, grid, api)
    if isinstance(box, Empty):
        return
    if add and not isinstance(dst, GatherView) and not isinstance(src, GatherView):
        d = boxed(dst, box, grid)                  # dst = dst + src, in float32 (DMA cast)
        # an associative accumulation into dst, like `+=` (loops.affine_accumulate)
        isa_move.dma_compute(d, [d, boxed(src, box, grid)], api="dma_copy(dst_rmw_op=np.add)",
                             accum=True)
        return
    if add and not isinstance(dst, GatherView):
        raise UnsupportedError("nisa.dma_copy(dst_rmw_op=np.add) from an indirect source")
    if isinstance(src, GatherView) or isinstance(dst, GatherView):
        move(dst if isinstance(dst, GatherView) else boxed(dst, box, grid),
             src if isinstance(src, GatherView) else boxed(src, box, grid), box, api, skip,
             add)
        return
    isa_move.dma_copy(boxed(dst, box, grid), boxed(src, box, grid))


def dma_transpose(src, axes=None, mask=None, dtype=None, **kw) -> CTensor:
    """``mask=`` names lanes of the source tile (S25 general/nki/api/nki.api.shared.rst "NKI
    API Masking": a comparison per input tile axis): only that box is read (an HBM source
    past its end is never touched) and lands transposed; the result's other lanes are
    undefined (NaN in the simulator)."""
    api = "dma_transpose"
    grid = shape_of(src)
    perm = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}.get(len(grid))
    if perm is None:
        raise SimError("dma_transpose: src must be 2-D to 4-D", list(grid))
    perm = perm if axes is None else tuple(axes)
    box = mask_box(mask, grid, api)
    obox = box if box is None or isinstance(box, Empty) else tuple(box[a] for a in perm)
    out = new_out(tuple(grid[a] for a in perm), src.dtype, SBUF, obox)
    if isinstance(box, Empty):
        return out                   # no lane kept: the source is not read (nor checked)
    s = tile(src) if box is None else boxed(src, box, grid)

    def redo(dst: Tensor) -> None:
        isa_move.dma_transpose(dst, s, perm, direct="classic")
    return issue(out, obox, redo)


def _no_dst(fn):
    """Classic ISA calls return their result (``t[...] = nisa.tensor_tensor(x, y, op)``): their
    S25 signatures have no ``dst`` (only dma_copy, tensor_copy_dynamic_dst,
    tensor_copy_predicated and nc_stream_shuffle take one) but end in ``**kwargs``, so the
    current API's ``nisa.tensor_tensor(dst=t, ...)`` (SH, nki 0.3) would pass silently and leave
    ``t`` unwritten. A located error instead (mutants17 API-drift probe)."""
    api = fn.__name__

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if "dst" in kwargs:
            raise SimError(f"nisa.{api}: dst= is the current nki API (nki 0.3, SH nki/api/nki/"
                           f"isa); classic nisa.{api} (S25) has no dst and returns its result",
                           "dst=", f"write t[...] = nisa.{api}(...) in a neuronxcc.nki kernel")
        return fn(*args, **kwargs)
    return call


for _name, _fn in list(globals().items()):
    if inspect.isfunction(_fn) and _fn.__module__ == __name__ and not _name.startswith("_"):
        _params = inspect.signature(_fn).parameters
        if "dst" not in _params and any(q.kind is q.VAR_KEYWORD for q in _params.values()):
            globals()[_name] = _no_dst(_fn)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"neuronxcc.nki.isa.{name}")
