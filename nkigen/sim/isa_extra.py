"""Core ISA, less common Vector/GpSimd instructions: tensor_scalar_reduce,
tensor_copy_predicated, tensor_partition_reduce, nc_stream_shuffle, max8, nc_find_index8,
nc_match_replace8, select_reduce, range_select, tensor_scalar_cumulative.

Stage: simulate (core). Same conventions as ``isa_compute``: checks, fp32 math when the run has
numerics, one trace record per instruction. VectorE accumulator registers (shared by the
``*_reduce`` / cumulative instructions) live on the run.
"""

from __future__ import annotations

import numpy as np

from nkigen import hw
from nkigen.hw import Engine
from nkigen.sim import dt, ops, state
from nkigen.sim.emit import (
    emit,
    in_sbuf,
    is_f32,
    need_dtype,
    on_chip,
    operand,
    per_partition,
    read,
    read_raw,
    same_pn,
    warn,
    writable,
    write,
)
from nkigen.sim.errors import SimError
from nkigen.sim.isa_compute import (
    attrs_of,
    check_io,
    check_pair,
    regs_defined,
    regs_reset,
    scalar_op,
)
from nkigen.sim.tensor import Tensor
from nkigen.sim.trace import Mem

_INT32 = (np.dtype(np.int32), np.dtype(np.uint32))
_INIT = {"add": 0.0, "subtract": 0.0, "multiply": 1.0, "maximum": -np.inf, "minimum": np.inf}


def _regs(run: state.Run, p: int, cmd: str, op: str, init=None) -> np.ndarray:
    """The VectorE accumulator registers for partitions [0, p), reset/loaded per ``cmd``."""
    regs = run.vec_regs
    if regs is None or cmd in ("reset", "reset_reduce", "load_reduce"):
        regs = np.full((hw.PMAX, 1), _INIT.get(op, 0.0), np.float32)
        if cmd == "load_reduce":
            regs[:p] = np.broadcast_to(operand(init), (p, 1))
        run.vec_regs = regs
    if cmd in ("reset", "reset_reduce", "load_reduce"):
        regs_reset(run, "vec_regs_set", p)
    return regs[:p]


def _reduce_res(api: str, t: Tensor | None, p: int) -> None:
    if t is not None:
        on_chip(t, api, "reduce_res")
        if t.shape[0] != p or t.free_size != 1:
            raise SimError(f"{api}: reduce_res must be ({p}, 1)", list(t.shape))


_TSR_REDUCE = ("add", "subtract", "multiply", "maximum", "minimum")
_TSR_REDUCE_CURRENT = ("add", "multiply", "maximum", "minimum")


def tensor_scalar_reduce(dst: Tensor, data: Tensor, op0, operand0, reduce_op, reduce_res,
                         reverse0: bool = False, reduce_cmd: str = "reset_reduce",
                         reduce_init=None, direct: str | None = None,
                         reduce_res_negate: bool = False) -> None:
    api = "tensor_scalar_reduce"
    run = state.current()
    check_io(api, dst, data)
    p = data.shape[0]
    o0, ro = ops.resolve(op0, "op0"), ops.resolve(reduce_op, "reduce_op")
    if direct:
        ops.alu(o0, api, "op0")
        if o0.kind == ops.BITVEC:
            raise SimError(f"{api}: op0 must be an arithmetic operator (bitvec operators are "
                           "not supported)", o0.name)
        # reverse0 is documented "(not supported yet)" in both generations (SH and S25
        # tensor_scalar_reduce); the current API's reduce_op list drops subtract and its
        # reduce_cmd takes reset_reduce, reduce or load_reduce only (SH, nki 0.3)
        if reverse0:
            raise SimError(f"{api}: reverse0=True is not supported yet", reverse0,
                           "compute the reversed operator with nisa.tensor_scalar (reverse0=True) "
                           "and reduce with nisa.tensor_reduce")
        legal = _TSR_REDUCE if direct == "classic" else _TSR_REDUCE_CURRENT
        if ro.name not in legal:
            raise SimError(f"{api}: reduce_op must be " + ", ".join(legal[:-1]) + " or "
                           + legal[-1], ro.name)
        if direct != "classic" and reduce_cmd not in ("reset_reduce", "reduce", "load_reduce"):
            raise SimError(f"{api}: reduce_cmd must be reset_reduce, reduce or load_reduce",
                           reduce_cmd, "drop reduce_cmd= (reset_reduce is the default)")
        if o0.arity == 2:
            need_dtype(operand0, is_f32, api, "operand0", "must be float32",
                       "write the scalar as a float or pass a float32 (P, 1) tile")
        if reduce_init is not None and reduce_cmd != "load_reduce":
            raise SimError(f"{api}: reduce_init is only used with reduce_cmd=load_reduce",
                           reduce_cmd)
        if reduce_cmd == "load_reduce" and reduce_init is None:
            raise SimError(f"{api}: reduce_cmd=load_reduce needs reduce_init")
    red = ops.reducer(ro)
    v0 = per_partition(0.0 if operand0 is None else operand0, p, api, "operand0")
    _reduce_res(api, reduce_res, p)
    if run.numerics:
        y = np.asarray(scalar_op(o0, read(data), operand(v0), reverse0), np.float32)
        write(dst, y)
        regs = _regs(run, p, reduce_cmd, ro.name, reduce_init)
        regs[...] = red(np.concatenate([regs, red(y, axis=1)[:, None]], axis=1), axis=1)[:, None]
        if reduce_res is not None:       # reduce_res_negate: the read-out only (SH)
            regs_defined(run, "vec_regs_set", p, api, reduce_cmd)
            write(reduce_res, -regs if reduce_res_negate else regs)
    reads = (data,) + ((v0,) if isinstance(v0, Tensor) else ())
    emit(run, Engine.VECTOR, api, reads, (dst,) + ((reduce_res,) if reduce_res is not None
                                                   else ()),
         p, data.free_size, data.dtype, dst.dtype, attrs=attrs_of(api, (data, dst), op=o0.name))


def tensor_scalar_cumulative(dst: Tensor, src: Tensor, op0, op1, imm0, imm1=None,
                             reduce_cmd: str = "reset_reduce", direct: str | None = None) -> None:
    api = "tensor_scalar_cumulative"
    run = state.current()
    check_io(api, dst, src)
    p = src.shape[0]
    o0, o1 = ops.resolve(op0, "op0"), ops.resolve(op1, "op1")
    if o1.name not in _INIT:
        raise SimError(f"{api}: op1 must be add, subtract, multiply, maximum or minimum", o1.name)
    if direct:
        ops.alu(o0, api, "op0")
        if o0.kind == ops.BITVEC:
            raise SimError(f"{api}: op0 must be an arithmetic operator", o0.name)
        for t, role in ((src, "src"), (dst, "dst")):
            if t.dtype in _INT32:
                raise SimError(f"{api}: {role} dtype int32/uint32 is not supported (ISA "
                               "limitation)", dt.name(t.dtype),
                               "use bf16/fp16/fp32/fp8/(u)int8/(u)int16")
        need_dtype(imm0, is_f32, api, "imm0", "must be float32")
        if imm1 is not None:
            need_dtype(imm1, is_f32, api, "imm1", "must be float32")
    v0 = per_partition(imm0, p, api, "imm0")
    if run.numerics:
        x = scalar_op(o0, read(src), operand(v0), False)
        regs = _regs(run, p, reduce_cmd, o1.name, imm1)
        regs_defined(run, "vec_regs_set", p, api, reduce_cmd)
        out = np.empty_like(x)
        acc = regs[:, 0].copy()
        for i in range(x.shape[1]):
            acc = o1.fn(x[:, i], acc)
            out[:, i] = acc
        regs[:, 0] = acc
        write(dst, out)
    emit(run, Engine.VECTOR, api, (src,), (dst,), p, src.free_size, src.dtype, dst.dtype,
         attrs=attrs_of(api, (src, dst), op0=o0.name, op1=o1.name))


def tensor_copy_predicated(dst: Tensor, src, predicate: Tensor,
                           reverse_pred: bool = False) -> None:
    api = "tensor_copy_predicated"
    run = state.current()
    on_chip(dst, api, "dst")
    on_chip(predicate, api, "predicate")
    writable(dst, api)
    same_pn(api, dst, predicate, "dst", "predicate")
    if predicate.dtype.kind != "u":
        raise SimError(f"{api}: predicate must be uint8/uint16/uint32", str(predicate.dtype))
    reads: tuple = (predicate, dst)
    if isinstance(src, Tensor):
        on_chip(src, api, "src")
        same_pn(api, dst, src, "dst", "src")
        if src.dtype != dst.dtype:
            raise SimError(f"{api}: src and dst dtypes differ", f"{src.dtype} vs {dst.dtype}")
        if src.alloc.mem is Mem.PSUM and predicate.alloc.mem is Mem.PSUM:
            raise SimError(f"{api}: src and predicate cannot both be in PSUM")
        reads = (src,) + reads
    elif not isinstance(src, (int, float, np.integer, np.floating)) or isinstance(src, bool):
        # SH tensor_copy_predicated: src is a tile or a scalar (float | NkiTensor)
        raise SimError(f"{api}: src must be a tile or a number", type(src).__name__,
                       "pass an SBUF/PSUM tile or a Python float")
    if run.numerics:
        pred = read_raw(predicate) != 0
        if reverse_pred:
            pred = ~pred
        cur = read_raw(dst)
        new = read_raw(src) if isinstance(src, Tensor) else np.asarray(src, dst.dtype)
        write(dst, np.where(pred, new, cur))
    emit(run, Engine.VECTOR, api, reads, (dst,), dst.shape[0], dst.free_size, dst.dtype,
         dst.dtype, n_in=2 if isinstance(src, Tensor) else 1)


class Average:
    """``nl.average`` (current API): the partition-mean operator of tensor_partition_reduce
    (SH nki/api/nki/isa/__init__.py tensor_partition_reduce: "add, average, max, bitwise_or,
    bitwise_and"; SH nki/api/nki/language/__init__.py ``average``; nki 0.3). It is no ALU
    operator: elsewhere ``op=`` resolves it to an unsupported-operator error."""

    __name__ = "average"

    def __repr__(self) -> str:
        return "nl.average"


AVERAGE = Average()


def tensor_partition_reduce(dst: Tensor, op, data: Tensor) -> None:
    api = "tensor_partition_reduce"
    run = state.current()
    in_sbuf(dst, api, "dst", " (GpSimd)")
    in_sbuf(data, api, "data", " (GpSimd)")
    writable(dst, api)
    mean = op is AVERAGE and not run.classic        # S25 lists add, max, bitwise_or/and
    o = ops.resolve("add" if mean else op, "op")
    if o.name not in ("add", "maximum", "bitwise_or", "bitwise_and"):
        raise SimError(f"{api}: op must be add, maximum, bitwise_or or bitwise_and"
                       + ("" if run.classic else " (or nl.average)"), o.name)
    if dst.shape[0] != 1 or dst.free_size != data.free_size:
        raise SimError(f"{api}: dst must be (1, {data.free_size})", list(dst.shape))
    if run.numerics:
        x = read_raw(data).astype(np.int64) if o.kind == ops.BITVEC else read(data)
        r = ops.reducer(o)(x, axis=0)[None, :]
        write(dst, r / np.float32(data.shape[0]) if mean else r)
    emit(run, Engine.GPSIMD, api, (data,), (dst,), data.shape[0], data.free_size, data.dtype,
         dst.dtype, attrs={"op": "average" if mean else o.name})


def nc_stream_shuffle(dst: Tensor, src: Tensor, shuffle_mask) -> None:
    api = "nc_stream_shuffle"
    run = state.current()
    on_chip(dst, api, "dst")
    on_chip(src, api, "src")
    writable(dst, api)
    try:
        mask = [int(m) for m in shuffle_mask]
    except (TypeError, ValueError):      # None, a tile, a string: not a list of 32 integers
        raise SimError(f"{api}: shuffle_mask must be 32 entries in [0, 32) or 255",
                       repr(shuffle_mask)) from None
    if len(mask) != 32 or any(not (0 <= m < 32 or m == 255) for m in mask):
        raise SimError(f"{api}: shuffle_mask must be 32 entries in [0, 32) or 255", mask)
    if dst.dtype != src.dtype or dst.free_size != src.free_size:
        raise SimError(f"{api}: dst and src must match in dtype and elements per partition",
                       f"{list(dst.shape)} {dst.dtype} vs {list(src.shape)} {src.dtype}")
    pn = max(src.shape[0], dst.shape[0])
    active = -(-pn // 32) * 32
    starts = {"src": (src._region or src.region()).p0, "dst": (dst._region or dst.region()).p0}
    legal = (0,) if active > 64 else ((0, 64) if active == 64 else (0, 32, 64, 96))
    for role, p0 in starts.items():
        if p0 not in legal:
            raise SimError(f"{api}: {role} starts at partition {p0}; with {active} active "
                           f"partitions the start must be one of {list(legal)}", p0)
    if run.numerics:
        s = read_raw(src).copy()
        d = read_raw(dst).copy()
        for q in range(0, pn, 32):
            for i, m in enumerate(mask):
                if m != 255 and q + i < d.shape[0] and q + m < s.shape[0]:
                    d[q + i] = s[q + m]
        write(dst, d)
    emit(run, Engine.VECTOR, api, (src,), (dst,), pn, src.free_size, src.dtype, dst.dtype)


def _topk_check(api: str, dst: Tensor, data: Tensor) -> None:
    on_chip(dst, api, "dst")
    on_chip(data, api, "data")
    writable(dst, api)
    if not 8 <= data.free_size <= 16384:
        raise SimError(f"{api}: data needs 8..16384 elements per partition", data.free_size)
    if dst.shape[0] != data.shape[0] or dst.free_size != 8:
        raise SimError(f"{api}: dst must be ({data.shape[0]}, 8)", list(dst.shape))


def _topk_ranks(api: str, data: Tensor, vals: Tensor | None = None,
                dst: Tensor | None = None) -> None:
    """Operand ranks of max8 / nc_find_index8 / nc_match_replace8. Current API (SH
    nki/api/nki/isa/__init__.py max8 and nc_find_index8, nki 0.3): the source / data tile is
    at most 3-D, vals at most 3-D and dst a 2-D [P, 8] tile. Classic (S25
    general/nki/api/nki/isa/__init__.py max8, nc_find_index8, nc_match_replace8, SDK 2.25):
    data at most 5-D, vals at most 3-D (the result tile is made 2-D by the API)."""
    data_max = 5 if state.current().classic else 3
    role = "src" if api == "max8" else "data"
    if data.ndim > data_max:
        raise SimError(f"{api}: {role} can be at most {data_max}-dimensional",
                       list(data.shape), "reshape it (the free dims are flattened anyway)")
    if vals is not None and vals.ndim > 3:
        raise SimError(f"{api}: vals can be at most 3-dimensional", list(vals.shape),
                       "pass vals as a (P, 8) tile")
    if dst is not None and dst.ndim != 2:
        raise SimError(f"{api}: dst must be a 2-D (P, 8) tile", list(dst.shape),
                       "allocate dst as (P, 8)")


def _nan_warning(run: state.Run, api: str, x: np.ndarray, role: str) -> None:
    """max8 and nc_find_index8 are documented on ordered values only ("the 8 largest values",
    "the first occurrence of each value": SH nki/api/nki/isa/__init__.py, nki 0.3; S25
    general/nki/api/nki/isa/__init__.py, SDK 2.25): NaN data gives a located warning, and the
    simulator's result (NaN below every value, never matched) is a guess, not the hardware's."""
    nan = np.isnan(x)
    if nan.any():
        warn(run, f"{api}: {role} holds NaN ({int(nan.sum())} elements, first in partition "
                  f"{int(np.argwhere(nan)[0][0])}); NKI does not document how {api} orders "
                  "or matches NaN, so the simulator's result (NaN below every value, never "
                  "matched) may differ from the hardware's")


def max8(dst: Tensor, src: Tensor) -> None:
    api = "max8"
    run = state.current()
    _topk_check(api, dst, src)
    _topk_ranks(api, src, dst=dst)
    if run.numerics:
        x = read(src)
        _nan_warning(run, api, x, "src")
        write(dst, -np.sort(-x, axis=1)[:, :8])
    emit(run, Engine.VECTOR, api, (src,), (dst,), src.shape[0], src.free_size, src.dtype,
         dst.dtype)


def _first_index(x: np.ndarray, vals: np.ndarray, reverse: bool = False) -> np.ndarray:
    """Per partition, the index of each of the 8 ``vals`` in ``x`` (all-ones if absent).
    Duplicate vals claim distinct matches: in ascending val order for nc_find_index8, in
    descending order (``reverse``) for nc_match_replace8 (SH nc_match_replace8 docstring)."""
    none = np.iinfo(np.uint32).max
    hit = x[:, None, :] == vals[:, :, None]                   # (P, 8, N)
    idx = np.where(hit.any(axis=2), hit.argmax(axis=2), none).astype(np.int64)
    p, k = vals.shape
    order = range(k - 1, -1, -1) if reverse else range(k)
    for r in range(p):
        if len(set(vals[r].tolist())) == k:
            continue                                          # no duplicates in this row
        used: set[int] = set()
        for i in order:
            # (at most len(used) of the first matches are taken: a row of ties is not listed
            # whole, which made a 16384-wide row of small integers take seconds)
            pos = np.flatnonzero(hit[r, i])[:len(used) + 1]
            free = [q for q in pos.tolist() if q not in used]
            idx[r, i] = free[0] if free else none
            if free:
                used.add(free[0])
    return idx


def nc_find_index8(dst: Tensor, data: Tensor, vals: Tensor) -> None:
    api = "nc_find_index8"
    run = state.current()
    _topk_check(api, dst, data)
    on_chip(vals, api, "vals")
    _topk_ranks(api, data, vals, dst)
    if vals.shape[0] != data.shape[0] or vals.free_size != 8:
        raise SimError(f"{api}: vals must be ({data.shape[0]}, 8)", list(vals.shape))
    if dst.dtype not in (np.dtype(np.uint16), np.dtype(np.uint32)):
        raise SimError(f"{api}: dst must be uint16 or uint32", str(dst.dtype))
    if run.numerics:
        x = read(data)
        _nan_warning(run, api, x, "data")
        write(dst, _first_index(x, read(vals)).astype(dst.dtype))
    emit(run, Engine.VECTOR, api, (data, vals), (dst,), data.shape[0], data.free_size,
         data.dtype, dst.dtype)


def nc_match_replace8(dst: Tensor, data: Tensor, vals: Tensor, imm: float,
                      dst_idx: Tensor | None = None) -> None:
    api = "nc_match_replace8"
    run = state.current()
    check_io(api, dst, data)
    on_chip(vals, api, "vals")
    if vals.shape[0] != data.shape[0] or vals.free_size != 8:
        raise SimError(f"{api}: vals must be ({data.shape[0]}, 8)", list(vals.shape))
    if run.classic:
        # S25 nc_match_replace8 (SDK 2.25): data at most 5-D with no more than 16,384
        # elements per partition, vals at most 3-D; the current docstring states no limit
        _topk_ranks(api, data, vals)
        if data.free_size > 16384:
            raise SimError(f"{api}: data can have at most 16384 elements per partition",
                           data.free_size, "split the search into tiles")
    if dst_idx is not None:
        _topk_check(api, dst_idx, data)
    if run.numerics:
        x = read(data).copy()
        idx = _first_index(x, read(vals), reverse=True)
        rows = np.arange(x.shape[0])[:, None]
        ok = idx != np.iinfo(np.uint32).max
        x[np.broadcast_to(rows, idx.shape)[ok], idx[ok]] = np.float32(imm)
        write(dst, x)
        if dst_idx is not None:
            write(dst_idx, idx.astype(dst_idx.dtype))
    writes = (dst,) + ((dst_idx,) if dst_idx is not None else ())
    emit(run, Engine.VECTOR, api, (data, vals), writes, data.shape[0], data.free_size,
         data.dtype, dst.dtype)


_PRED = tuple(np.dtype(d) for d in (np.int8, np.uint8, np.int16, np.uint16))


def select_reduce(dst: Tensor, predicate: Tensor, on_true: Tensor, on_false,
                  reduce_res: Tensor | None = None, reduce_cmd: str = "idle",
                  reduce_op="maximum", reverse_pred: bool = False,
                  direct: str | None = None) -> None:
    api = "select_reduce"
    run = state.current()
    p, f = check_pair(api, dst, on_true, predicate, ("on_true", "predicate", "on_false"),
                      on_false)
    ro = ops.resolve(reduce_op, "reduce_op")
    if ro.name != "maximum":
        raise SimError(f"{api}: reduce_op must be maximum", ro.name)
    _reduce_res(api, reduce_res, p)
    if on_true.dtype in _INT32:
        raise SimError(f"{api}: on_true must not be int32/uint32/tfloat32",
                       dt.name(on_true.dtype), "copy it into a float tile first")
    if predicate.dtype not in _PRED:
        raise SimError(f"{api}: predicate must be int8, uint8, int16 or uint16",
                       dt.name(predicate.dtype))
    if not isinstance(on_false, Tensor):
        need_dtype(on_false, is_f32, api, "on_false", "must be float32 when a scalar",
                   "write it as a float")
    if reduce_res is not None and not dt.is_float(reduce_res.dtype):
        raise SimError(f"{api}: reduce_res must be a float dtype", dt.name(reduce_res.dtype))
    if run.numerics:
        pred = read_raw(predicate) != 0
        if reverse_pred:
            pred = ~pred
        y = np.where(pred, read(on_true), operand(f)).astype(np.float32)
        write(dst, y)
        if reduce_cmd in ("reduce", "reset_reduce") or reduce_res is not None:
            regs = _regs(run, p, reduce_cmd, "maximum")
            if reduce_cmd in ("reduce", "reset_reduce"):
                regs[...] = np.maximum(regs, y.max(axis=1, keepdims=True))
            if reduce_res is not None:
                regs_defined(run, "vec_regs_set", p, api, reduce_cmd)
                write(reduce_res, regs)
    emit(run, Engine.VECTOR, api, (on_true, predicate), (dst,) + (
        (reduce_res,) if reduce_res is not None else ()), p, on_true.free_size, on_true.dtype,
        dst.dtype, n_in=2)


def range_select(dst: Tensor, on_true_tile: Tensor, comp_op0, comp_op1, bound0, bound1,
                 reduce_cmd: str = "reset_reduce", reduce_res: Tensor | None = None,
                 reduce_op="maximum", range_start: int = 0,
                 on_false_value: float = float(np.finfo(np.float32).min)) -> None:
    api = "range_select"
    run = state.current()
    check_io(api, dst, on_true_tile)
    p = on_true_tile.shape[0]
    c0, c1 = ops.resolve(comp_op0, "comp_op0"), ops.resolve(comp_op1, "comp_op1")
    for c in (c0, c1):
        if c.kind != ops.COMPARE or c.name == "not_equal":
            raise SimError(f"{api}: comparison ops must be equal/less/less_equal/greater/"
                           "greater_equal", c.name)
    if ops.resolve(reduce_op, "reduce_op").name != "maximum":
        raise SimError(f"{api}: reduce_op must be nl.maximum", getattr(reduce_op, "__name__",
                                                                        reduce_op))
    if not dt.is_float(on_true_tile.dtype):
        raise SimError(f"{api}: on_true_tile must be a float dtype",
                       dt.name(on_true_tile.dtype))
    for bnd, role in ((bound0, "bound0"), (bound1, "bound1")):
        if not isinstance(bnd, Tensor):
            raise SimError(f"{api}: {role} must be a ({p}, 1) tile", bnd,
                           "memset a float32 (P, 1) tile to the bound")
        if bnd.dtype != dt.F32:
            raise SimError(f"{api}: {role} must be float32", dt.name(bnd.dtype))
    if not isinstance(range_start, (int, np.integer)) or isinstance(range_start, bool):
        raise SimError(f"{api}: range_start must be a compile-time integer", range_start)
    if range_start + on_true_tile.free_size > 1 << 24:
        raise SimError(f"{api}: range_start + free index must stay within 2^24 (compared in "
                       "fp32)", range_start + on_true_tile.free_size - 1)
    if np.float32(on_false_value) != np.finfo(np.float32).min:
        raise SimError(f"{api}: on_false_value must be FP32_MIN (-3.4028235e+38)",
                       on_false_value, "leave on_false_value at its default")
    b0 = per_partition(bound0, p, api, "bound0")
    b1 = per_partition(bound1, p, api, "bound1")
    _reduce_res(api, reduce_res, p)
    if run.numerics:
        idx = (range_start + np.arange(on_true_tile.free_size, dtype=np.float32))[None, :]
        mask = (c0.fn(idx, operand(b0)) != 0) & (c1.fn(idx, operand(b1)) != 0)
        y = np.where(mask, read(on_true_tile), np.float32(on_false_value)).astype(np.float32)
        write(dst, y)
        regs = _regs(run, p, reduce_cmd, "maximum")
        if reduce_cmd in ("reduce", "reset_reduce"):
            regs[...] = np.maximum(regs, y.max(axis=1, keepdims=True))
        if reduce_res is not None:
            regs_defined(run, "vec_regs_set", p, api, reduce_cmd)
            write(reduce_res, regs)
    reads = (on_true_tile,) + tuple(t for t in (b0, b1) if isinstance(t, Tensor))
    emit(run, Engine.VECTOR, api, reads, (dst,) + ((reduce_res,) if reduce_res is not None
                                                   else ()),
         p, on_true_tile.free_size, on_true_tile.dtype, dst.dtype)


def nc_n_gather(dst: Tensor, data: Tensor, indices: Tensor) -> None:
    """Per-partition gather over the flattened free dims of ``data`` (GpSimd, SBUF only)."""
    api = "nc_n_gather"
    run = state.current()
    for t, role in ((dst, "dst"), (data, "data"), (indices, "indices")):
        in_sbuf(t, api, role, " (GpSimd)")
    writable(dst, api)
    if indices.dtype != np.dtype(np.uint32):
        raise SimError(f"{api}: indices must be uint32", str(indices.dtype))
    if dst.dtype != data.dtype:
        raise SimError(f"{api}: dst dtype must equal data dtype",
                       f"{dst.dtype} vs {data.dtype}")
    same_pn(api, dst, indices, "dst", "indices")
    if data.shape[0] != dst.shape[0]:
        raise SimError(f"{api}: partition dims differ", f"{data.shape[0]} vs {dst.shape[0]}")
    if run.numerics:
        idx = read_raw(indices).astype(np.int64)
        n = data.free_size
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise SimError(f"{api}: index out of range [0, {n})",
                           f"{int(idx.min())}..{int(idx.max())}")
        write(dst, np.take_along_axis(read_raw(data), idx, axis=1))
    emit(run, Engine.GPSIMD, api, (data, indices), (dst,), dst.shape[0], dst.free_size,
         data.dtype, dst.dtype, n_in=2)


def dropout(dst: Tensor, data: Tensor, prob) -> None:
    """``nisa.dropout`` (current API; SH nki/api/nki/isa/__init__.py dropout, nki 0.3): each
    element of ``data`` replaced by zero with probability ``prob`` (a scalar or a (P, 1) tile of
    the partition's probability), not rescaled; dst.dtype equals data.dtype; an integer
    ``data`` needs a float32 ``prob``, a float one any float ``prob``. The draws are the run's
    NumPy generator (:mod:`nkigen.sim.rngstate`), not the device's sequence."""
    from nkigen.sim import rngstate
    api = "dropout"
    run = state.current()
    check_io(api, dst, data)
    if dst.dtype != data.dtype:
        raise SimError(f"{api}: dst dtype must match data dtype",
                       f"{dt.name(dst.dtype)} vs {dt.name(data.dtype)}",
                       "drop with a dst of data's dtype, then copy to cast")
    p = per_partition(prob, data.shape[0], api, "prob")
    if isinstance(p, Tensor):
        if dt.is_int(data.dtype):
            need_dtype(p, is_f32, api, "prob", "must be float32 when data is an integer tile")
        elif not dt.is_float(p.dtype):
            raise SimError(f"{api}: prob must be a float tile", dt.name(p.dtype))
    if run.numerics:
        x = read(data)
        pr = read(p) if isinstance(p, Tensor) else np.float32(p)
        keep = rngstate.generator().random(x.shape, dtype=np.float32) >= pr
        write(dst, np.where(keep, x, np.float32(0)))
    emit(run, Engine.VECTOR, api, (data,) + ((p,) if isinstance(p, Tensor) else ()), (dst,),
         data.shape[0], data.free_size, data.dtype, dst.dtype)


_LG_ELEMS = (1, 2, 4, 8, 16, 32)


def local_gather(dst: Tensor, src_buffer: Tensor, index: Tensor, num_elem_per_idx=1,
                 num_valid_indices=None) -> None:
    """GpSimd ``local_gather`` (SH nki/api/nki/isa/__init__.py, nki 0.3; S25 general/nki/api/
    nki/isa/__init__.py and the NumPy semantics of general/nki/test/test_nki_isa_local_gather.py,
    SDK 2.25): each group of 16 partitions (one GpSimd core) flattens its 16-partition slice of
    the uint16 ``index`` along the partition dim first, keeps the first ``num_valid_indices``
    and, in every partition of the group, copies ``num_elem_per_idx`` contiguous elements of
    the (flattened) free dims of ``src_buffer`` starting at each index (an element offset). The
    result is (P, num_valid_indices * num_elem_per_idx) elements in src's dtype (no cast).
    Limits: P of src and index equal and a multiple of 16, num_elem_per_idx in
    {1, 2, 4, 8, 16, 32}, num_valid_indices <= the slice's index count and <= 4096. An
    out-of-bounds index (undefined on hardware) is a located error."""
    api = "local_gather"
    run = state.current()
    for t, role in ((dst, "dst"), (src_buffer, "src_buffer"), (index, "index")):
        in_sbuf(t, api, role, " (GpSimd)")
    writable(dst, api)
    if index.dtype != np.dtype(np.uint16):
        raise SimError(f"{api}: index must be uint16", str(index.dtype),
                       "copy the indices into a uint16 tile")
    p = src_buffer.shape[0]
    if index.shape[0] != p or p % 16:
        raise SimError(f"{api}: src_buffer and index need the same partition count, a multiple "
                       "of 16", f"{p} and {index.shape[0]}")
    e = int(num_elem_per_idx)
    if e not in _LG_ELEMS:
        raise SimError(f"{api}: num_elem_per_idx must be 1, 2, 4, 8, 16 or 32", e)
    per_core = index.size // (p // 16)
    v = per_core if num_valid_indices is None else int(num_valid_indices)
    if not 1 <= v <= per_core:
        raise SimError(f"{api}: num_valid_indices must be 1..{per_core} (the indices of one "
                       "16-partition slice)", v)
    if v > 4096:
        raise SimError(f"{api}: at most 4096 indices per GpSimd core", v,
                       "split the gather into several instructions")
    if dst.dtype != src_buffer.dtype:
        raise SimError(f"{api}: dst dtype must equal src_buffer dtype (no cast)",
                       f"{dt.name(dst.dtype)} vs {dt.name(src_buffer.dtype)}")
    if dst.shape[0] != p or dst.free_size != v * e:
        raise SimError(f"{api}: dst must hold ({p}, {v} * {e}) elements", list(dst.shape))
    if run.numerics:
        src = read_raw(src_buffer)
        idx = read_raw(index).astype(np.int64)
        n = src.shape[1]
        out = np.empty((p, v * e), src.dtype)
        for g in range(0, p, 16):
            ids = idx[g:g + 16].flatten(order="F")[:v]
            offs = (ids[:, None] + np.arange(e)).reshape(-1)
            if offs.size and offs.max() >= n:
                raise SimError(f"{api}: index out of range (an element offset of the "
                               f"{n} elements per partition; undefined on hardware)",
                               int(ids[(ids + e - 1) >= n][0]))
            out[g:g + 16] = src[g:g + 16][:, offs]
        write(dst, out)
    emit(run, Engine.GPSIMD, api, (src_buffer, index), (dst,), p, v * e, src_buffer.dtype,
         dst.dtype, n_in=2, attrs={"num_elem_per_idx": e, "num_valid_indices": v})


def nonzero_with_count(dst: Tensor, src: Tensor, index_offset: int = 0,
                       padding_val: int = -1) -> None:
    """Indices of nonzero elements + count, on partitions 0, 16, ..., 112 only (GpSimd)."""
    api = "nonzero_with_count"
    run = state.current()
    in_sbuf(dst, api, "dst", " (GpSimd)")
    in_sbuf(src, api, "src", " (GpSimd)")
    writable(dst, api)
    if dst.dtype != np.dtype(np.int32) or src.dtype not in (np.dtype(np.int32), dt.F32):
        raise SimError(f"{api}: src must be float32/int32 and dst int32",
                       f"{dt.name(src.dtype)} -> {dt.name(dst.dtype)}")
    if dst.shape[0] != src.shape[0] or dst.free_size != src.free_size + 1:
        raise SimError(f"{api}: dst must have the partitions of src and one more element",
                       f"{list(src.shape)} -> {list(dst.shape)}")
    if run.numerics:
        x = read_raw(src)
        out = read_raw(dst).copy()
        n = x.shape[1]
        for p in range(0, x.shape[0], 16):
            nz = np.flatnonzero(x[p]) + int(index_offset)
            row = np.full(n + 1, int(padding_val), np.int64)
            row[:nz.size] = nz
            row[n] = nz.size
            out[p] = row
        write(dst, out)
    emit(run, Engine.GPSIMD, api, (src,), (dst,), src.shape[0], src.free_size, src.dtype,
         dst.dtype)
