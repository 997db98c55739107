"""Core ISA, data movement and TensorE: dma_copy, dma_transpose, tensor_copy, memset, iota,
nc_transpose, nc_matmul (dst-first, shared by both API surfaces).

Stage: simulate (core). Each function checks the hardware rules, does the arithmetic when the
run has numerics, and records one trace instruction.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nkigen import hw
from nkigen.hw import Engine
from nkigen.sim import batch, dt, gemm, state
from nkigen.sim import mode as _mode
from nkigen.sim.emit import (
    F32,
    emit,
    engine_of,
    in_sbuf,
    int_in_range,
    kind_of,
    no_psum_gpsimd,
    on_chip,
    read,
    read_raw,
    record,
    remember,
    same_pn,
    tensor,
    writable,
    write,
)
from nkigen.sim.errors import SimError, UnsupportedError, as_int
from nkigen.sim.tensor import VIEWS as _VIEWS
from nkigen.sim.tensor import Tensor
from nkigen.sim.trace import Mem

# Enum members as module constants: a class attribute lookup on an Enum goes through
# EnumType.__getattr__'s slow path on Python 3.11 (hot per-instruction code).
_HBM = Mem.HBM
_SBUF = Mem.SBUF
_PSUM = Mem.PSUM
_E_TENSOR = Engine.TENSOR
_E_VECTOR = Engine.VECTOR
_E_SCALAR = Engine.SCALAR
_E_GPSIMD = Engine.GPSIMD
_E_DMA = Engine.DMA

_MATMUL_IN = {dt.F32, dt.BF16, dt.F16, dt.FP8_E4M3, dt.FP8_E4M3FN, dt.FP8_E5M2}


def _chunk_bytes(t: Tensor) -> int:
    """Contiguous bytes of the innermost run (within a partition for on-chip tensors)."""
    shape, strides = t.shape, t.strides
    if t.alloc.mem is not _HBM:
        shape, strides = shape[1:], strides[1:]
    run = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n == 1:
            continue
        if s != run:
            break
        run *= n
    return run * t.itemsize


def _attrs(api: str, ts, **kw) -> dict:
    if any(t.shape[-1] > 1 and t.strides[-1] != 1 for t in ts):
        kw["strided"] = True
    if api.startswith("nl."):
        kw["api"] = api
    return kw


def _dma_side(t: Tensor, api: str, role: str) -> Tensor:
    tensor(t, api, role)
    if t.alloc.mem is _PSUM:
        raise SimError(f"{api}: DMA cannot access PSUM ({role})", repr(t),
                       "copy the PSUM tile to SBUF with nisa.tensor_copy first")
    return t


_DMA_KINDS: dict = {}     # (api, op, operand shapes/strides/dtypes/memories) -> Kind


def _dma_plan(dst: Tensor, src: Tensor, api: str) -> tuple:
    """The shape checks of a DMA copy and what its trace record says (every argument of
    ``emit`` but the operands): a function of the operands' shapes, strides, dtypes and
    memories only, never of where they lie (so memoised per shape on the fast path)."""
    _dma_side(dst, api, "dst")
    _dma_side(src, api, "src")
    writable(dst, api)
    dshape = dst.shape
    n = math.prod(dshape)
    if n != math.prod(src.shape):
        raise SimError(f"{api}: dst and src element counts differ",
                       f"{list(dst.shape)} vs {list(src.shape)}")
    sdt, ddt = src.dtype, dst.dtype
    src_b = n * sdt.itemsize
    dst_b = n * ddt.itemsize
    s_hbm = src.alloc.mem is _HBM
    d_hbm = dst.alloc.mem is _HBM
    shape = src.shape if d_hbm else dshape
    p = shape[0] if shape else 1
    return (p, n // p if p else 0, sdt, ddt, max(src_b, dst_b),
            (src_b if s_hbm else 0) + (dst_b if d_hbm else 0),
            min(_chunk_bytes(src), _chunk_bytes(dst)))


def dma_copy(dst: Tensor, src: Tensor, api: str = "dma_copy", op: str = "dma_copy") -> None:
    run = state.current()
    kind = key = None
    if _mode.FAST and dst.__class__ in _VIEWS and src.__class__ in _VIEWS:
        key = (api, op, dst.alloc.mem._value_, dst.shape, dst.strides, dst.dtype, dst.bcast,
               src.alloc.mem._value_, src.shape, src.strides, src.dtype)
        kind = _DMA_KINDS.get(key)
    plan = None
    if kind is None:
        plan = _dma_plan(dst, src, api)
    if run.numerics:
        s = src._np
        if s is None:
            s = src.np()
        ddt = dst.dtype
        if s.dtype != ddt and F32 not in (s.dtype, ddt):
            s = s.astype(F32)
        if s.shape != dst.shape:
            s = s.reshape(dst.shape)
        write(dst, s)
    if plan is None:
        record(run, kind, (src,), (dst,))             # type: ignore[arg-type]
        return
    p, free, sdt, ddt, nbytes, hbm, chunk = plan
    if key is None:
        emit(run, _E_DMA, op, (src,), (dst,), p, free, sdt, ddt, nbytes=nbytes,
             hbm_bytes=hbm, chunk_bytes=chunk)
        return
    kind = kind_of(_E_DMA, op, (src,), (dst,), p, free, sdt, ddt, nbytes=nbytes,
                   hbm_bytes=hbm, chunk_bytes=chunk)
    remember(_DMA_KINDS, key, kind)
    record(run, kind, (src,), (dst,))


def dma_compute(dst: Tensor, srcs, reduce_op="add", scales=None,
                api: str = "dma_compute", accum: bool = False) -> None:
    """``dst = srcs[0] + srcs[1] + ...`` computed in fp32 by the DMA engines (also the classic
    ``dma_copy(dst_rmw_op=np.add)``: ``dst = dst + src``)."""
    from nkigen.sim import ops
    run = state.current()
    _dma_side(dst, api, "dst")
    writable(dst, api)
    srcs = list(srcs)
    if not 1 <= len(srcs) <= 16:
        raise SimError(f"{api}: needs 1 to 16 source tensors", len(srcs))
    if ops.resolve(reduce_op, "reduce_op").name != "add":
        raise SimError(f"{api}: only reduce_op=add is supported by the hardware",
                       getattr(reduce_op, "__name__", reduce_op))
    if scales is not None and any(float(x) != 1.0 for x in scales):
        raise SimError(f"{api}: all scales must be 1.0", list(scales))
    for i, s in enumerate(srcs):
        _dma_side(s, api, f"srcs[{i}]")
        if s.size != dst.size:
            raise SimError(f"{api}: srcs[{i}] and dst element counts differ",
                           f"{list(s.shape)} vs {list(dst.shape)}")
    if run.numerics:
        acc = np.zeros(dst.shape, np.float32)
        for s in srcs:
            acc += s.np().astype(F32).reshape(dst.shape)
        write(dst, acc)
    nb = sum(s.size * s.itemsize for s in srcs) + dst.size * dst.itemsize
    hbm = sum(s.size * s.itemsize for s in srcs if s.alloc.mem is _HBM) + (
        dst.size * dst.itemsize if dst.alloc.mem is _HBM else 0)
    chip = dst if dst.alloc.mem is not _HBM else srcs[0]
    emit(run, _E_DMA, "dma_compute", tuple(srcs), (dst,), chip.shape[0] if chip.shape else 1,
         chip.free_size if chip.shape else 1, srcs[0].dtype, dst.dtype, n_in=len(srcs),
         accum=accum, nbytes=nb, hbm_bytes=hbm,
         chunk_bytes=min(_chunk_bytes(t) for t in (*srcs, dst)))


def _uninitialised_accumulate(api: str, dst: Tensor) -> None:
    raise SimError(f"{api}: accumulate=True on a PSUM location no earlier nc_matmul wrote "
                   "(undefined on hardware: uninitialised, or initialised by memset/tensor_copy, "
                   "which NeuronCore-v2/v3 cannot accumulate onto)", repr(dst),
                   "start the accumulation group with accumulate=False (or None)")


def hwdge_transpose_shape(src: Tensor) -> None:
    """Hardware-DGE DMA transpose limits (SH dma_transpose "DMA Direct Transpose
    Constraints"): 2-D src has 16 rows; 3-D/4-D src.shape[0] in {1, 2, 4, 8, 16} with
    shape[0] * shape[-2] a multiple of 16; last dim <= 128; 2-byte dtype."""
    api = "dma_transpose(dge_mode=hwdge)"
    s = src.shape
    if len(s) == 2 and s[0] != 16:
        raise SimError(f"{api}: a 2-D source must have 16 rows", list(s))
    if len(s) in (3, 4) and (s[0] not in (1, 2, 4, 8, 16) or (s[0] * s[-2]) % 16):
        raise SimError(f"{api}: src.shape[0] must be 1, 2, 4, 8 or 16 and "
                       "src.shape[0] * src.shape[-2] a multiple of 16", list(s))
    if s[-1] > 128:
        raise SimError(f"{api}: src.shape[-1] must be <= 128", list(s))
    if src.itemsize != 2:
        raise SimError(f"{api}: src dtype must be 2 bytes", dt.name(src.dtype))


_TRANSPOSE_AXES = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}


def dma_transpose(dst: Tensor, src: Tensor, axes=None, direct: str | None = None) -> None:
    api = "dma_transpose"
    run = state.current()
    tensor(dst, api, "dst")
    tensor(src, api, "src")
    if direct and src.itemsize not in (2, 4):
        raise SimError(f"{api}: DMA transpose supports 2-byte and 4-byte dtypes only",
                       dt.name(src.dtype),
                       "transpose a 2-byte copy (e.g. bfloat16) or use nisa.nc_transpose")
    _dma_side(dst, api, "dst")
    _dma_side(src, api, "src")
    in_sbuf(dst, api, "dst")
    writable(dst, api)
    legal = _TRANSPOSE_AXES.get(src.ndim)
    if legal is None:
        raise SimError(f"{api}: src must be 2-D to 4-D", list(src.shape))
    axes = legal if axes is None else tuple(int(a) for a in axes)
    if axes != legal:
        raise SimError(f"{api}: unsupported permutation", axes, f"use {legal}")
    if src.dtype != dst.dtype:
        raise SimError(f"{api}: src and dst dtypes differ",
                       f"{dt.name(src.dtype)} vs {dt.name(dst.dtype)}")
    want = tuple(src.shape[a] for a in axes)
    if math.prod(want) != dst.size or (dst.shape != want and dst.shape[0] != want[0]):
        raise SimError(f"{api}: dst shape must be the permuted src shape",
                       f"{list(dst.shape)} vs {list(want)}")
    if run.numerics:
        write(dst, np.transpose(src.np(), axes))
    nb = src.size * src.itemsize
    emit(run, _E_DMA, api, (src,), (dst,), dst.shape[0], dst.free_size, src.dtype,
         dst.dtype, nbytes=nb, hbm_bytes=nb if src.alloc.mem is _HBM else 0,
         chunk_bytes=src.itemsize, transpose=True)


_COPY_ENGINES = (Engine.VECTOR, Engine.SCALAR, Engine.GPSIMD)
# integer dtypes a float32 does not hold exactly (24-bit significand, hw.FP32_EXACT_INT)
_NOT_FP32_EXACT = frozenset({np.dtype(np.int32), np.dtype(np.uint32), np.dtype(np.int64),
                             np.dtype(np.uint64)})


def _unspecified(engine: object) -> bool:
    """True for no ``engine=`` argument or ``nisa.engine.unknown`` (the API default)."""
    return engine is None or (not isinstance(engine, Engine)
                              and getattr(engine, "hw", None) is None
                              and getattr(engine, "name", None) == "unknown")


def copy_engines(nc: int, classic: bool, dst: Tensor, src: Tensor) -> tuple[Engine, ...]:
    """The engines a tile copy with no engine given may run on; the compiler picks one "based
    on engine workload" (S25 general/nki/api/nki/isa/__init__.py tensor_copy, SDK 2.25; SH
    nki/api/nki/isa/__init__.py tensor_copy, nki 0.3), the cost model the one that would finish
    it first (nkigen.sim.cost_rules.engine_choices). VectorE first (the simulator's default, used
    for the values). GpSimd only when neither operand is in PSUM (both docs: "GpSimd Engine
    cannot access PSUM"). ScalarE: on NeuronCore-v3+ a bit-accurate copy (SH
    nki/guides/architecture/trainium2_arch.rst, Scalar Engine); on NeuronCore-v2 the current
    API has no ScalarE tensor_copy (SH) and the classic one copies through float32 (S25), so
    only classic kernels whose source dtype float32 holds exactly (not int32/uint32): then the
    values equal VectorE's."""
    out = [_E_VECTOR]
    if nc >= 3 or (classic and src.dtype not in _NOT_FP32_EXACT):
        out.append(_E_SCALAR)
    if src.alloc.mem is not _PSUM and dst.alloc.mem is not _PSUM:
        out.append(_E_GPSIMD)
    return tuple(out)


def tensor_copy(dst: Tensor, src: Tensor, engine=None, api: str = "tensor_copy",
                direct: str | None = None) -> None:
    """On NeuronCore-v2 ScalarE has no tensor_copy in the current API (SH) while the classic
    one (S25) copies through float32 there."""
    run = state.current()
    nc = run.target.nc_version
    key = None
    if _mode.FAST and dst.__class__ in _VIEWS and src.__class__ in _VIEWS:
        key = (api, direct, engine, nc, run.classic,
               dst.alloc.mem._value_, dst.shape, dst.strides, dst.dtype, dst.bcast,
               src.alloc.mem._value_, src.shape, src.strides, src.dtype)
        try:
            got = _COPY_CHECKED.get(key)
        except TypeError:           # an unhashable engine= argument
            key = got = None
        if got is not None:
            eng, kind = got
            if run.numerics:
                _copy_values(dst, src, eng, nc)
            record(run, kind, (src,), (dst,))
            return
    on_chip(dst, api, "dst")
    on_chip(src, api, "src")
    writable(dst, api)
    same_pn(api, dst, src, "dst", "src")
    eng = engine_of(engine, _E_VECTOR, _COPY_ENGINES, api)
    if eng is _E_GPSIMD:
        no_psum_gpsimd(api, dst, src)
    if eng is _E_SCALAR and nc < 3 and direct != "classic":
        raise SimError(f"{api}: no ScalarE tensor_copy on NeuronCore-v2 ({run.target.name})",
                       fix="use nisa.activation(op=nl.copy) or the vector engine")
    if run.classic and nc < 3 and (direct == "classic" or api == "nl.copy"):
        _classic_int_copy_engine(api, engine, dst, src, run.target.name)
    if run.numerics:
        _copy_values(dst, src, eng, nc)
    attrs = _attrs(api, (src, dst))
    if _unspecified(engine):
        cands = copy_engines(nc, run.classic, dst, src)
        if len(cands) > 1:
            attrs["engines"] = tuple(e.value for e in cands)
    if key is not None:
        kind = kind_of(eng, "tensor_copy", (src,), (dst,), src.shape[0], src.free_size,
                       src.dtype, dst.dtype, attrs=attrs)
        remember(_COPY_CHECKED, key, (eng, kind))
        record(run, kind, (src,), (dst,))
        return
    emit(run, eng, "tensor_copy", (src,), (dst,), src.shape[0], src.free_size, src.dtype,
         dst.dtype, attrs=attrs)


def _classic_int_copy_engine(api: str, engine, dst: Tensor, src: Tensor, target: str) -> None:
    """A classic kernel's copy of int32/uint32 data into the same dtype with no engine given
    (``nisa.tensor_copy`` without ``engine=`` or with ``engine=nisa.unknown_engine``,
    ``nl.copy``) on NeuronCore-v2: the compiler picks the engine "based on engine workload",
    ScalarE among them, and ScalarE on NeuronCore-v2 copies "by first casting the input tile
    to FP32" (S25 general/nki/api/nki/isa/__init__.py tensor_copy, SDK 2.25; ``nl.copy`` is
    the Identity of the ScalarE activation table, S25 general/nki/api/nki.api.shared.rst), so
    a value beyond 2**24 may round on the chip while this simulator copies it bit for bit on
    VectorE (review 15 R15-1). Vector/GpSimd copies of equal dtypes are bit-accurate (same
    docstring), so naming one makes the result defined. Float and 8/16-bit data are exact
    through float32, and NeuronCore-v3 is not named by the note."""
    if not _unspecified(engine) or dst.dtype != src.dtype or src.dtype not in _NOT_FP32_EXACT:
        return
    raise SimError(f"{api}: a copy of {src.dtype.name} data with no engine given may run on "
                   f"ScalarE, which on NeuronCore-v2 ({target}) copies through float32 "
                   "(values beyond 2**24 round; S25 nki.isa.tensor_copy)",
                   f"{src.dtype.name} -> {dst.dtype.name}, engine unspecified",
                   "name the engine: nisa.tensor_copy(..., engine=nisa.vector_engine) "
                   "(bit-accurate for equal dtypes)")


# (api, direct, engine=, NeuronCore version, then mem, shape, strides, dtype of dst and src and
# dst's broadcast flag) -> (engine, Kind): all tensor_copy's shape checks and its trace Kind
# read, so a key seen before passed them (bounded; fast path only)
_COPY_CHECKED: dict[tuple, tuple] = {}


def _copy_values(dst: Tensor, src: Tensor, eng: Engine, nc: int) -> None:
    if dst.dtype == src.dtype and not (eng is _E_SCALAR and nc < 3):
        write(dst, read_raw(src))          # bit-exact copy (ScalarE v2 goes through fp32)
    else:
        write(dst, read(src))


def memset(dst: Tensor, value, engine=None, api: str = "memset",
           direct: str | None = None) -> None:
    run = state.current()
    on_chip(dst, api, "dst")
    writable(dst, api)
    if direct:
        _memset_value(api, dst, value)
    eng = engine_of(engine, _E_VECTOR, (_E_VECTOR, _E_GPSIMD), api)
    if eng is _E_GPSIMD:
        no_psum_gpsimd(api, dst)
    if run.numerics:
        d = dst.np()
        if d.dtype.kind in "iu" and not isinstance(value, (bool, np.bool_)):
            int_in_range(np.rint(np.float64(value)), d.dtype, api)
        d[...] = value
    emit(run, eng, "memset", (), (dst,), dst.shape[0], dst.free_size, dst.dtype, dst.dtype,
         attrs=_attrs(api, (dst,), value=value),
         n_in=0)


def _memset_value(api: str, dst: Tensor, value) -> None:
    """memset fills with a compile-time constant (SH/S25 memset docstring): a number, not a
    tile."""
    if isinstance(value, Tensor) or not isinstance(value, (int, float, np.number, bool)):
        raise SimError(f"{api}: value must be a compile-time constant number",
                       type(value).__name__, "copy a tile with nisa.tensor_copy instead")


INT32_LO, INT32_HI = -(2 ** 31), 2 ** 31 - 1


def _int32_values(api: str, offset: int, dims: list[tuple[int, int]]) -> None:
    """Refuse an affine pattern whose values leave int32: GpSimd computes them "in 32-bit
    integer math" (S25 general/nki/api/nki/isa/__init__.py ``iota``, SDK 2.25; SH
    nki/api/nki/isa/__init__.py ``iota`` "Data types": "computed in 32-bit integer
    arithmetic", nki 0.3), and ``affine_select`` evaluates its predicate's affine value
    "similar to nisa.iota" (SH ``affine_select``), so a value past the range wraps on the
    engine where numpy here would compute it exactly (review 14 R14-1). ``dims`` are
    ``(step, count)`` pairs, the channel multiplier over the partitions first."""
    lo = hi = int(offset)
    for s, k in dims:
        reach = s * (k - 1) if k > 0 else 0
        lo, hi = lo + min(0, reach), hi + max(0, reach)
    if lo < INT32_LO or hi > INT32_HI:
        raise SimError(f"{api}: affine values must fit int32 (GpSimd computes them in 32-bit "
                       "integer math: S25/SH nki.isa iota; SH affine_select 'similar to "
                       "nisa.iota')", f"values {lo} .. {hi}",
                       "keep the offset and steps within int32 (fold a comparison that is "
                       "constant over the tile, or compare smaller values)")


def _affine(pattern, p: int, n: int, offset: int, channel_multiplier: int,
            api: str) -> np.ndarray | None:
    """Values ``offset + p*channel_multiplier + sum(i_k*step_k)`` as int64 (P, N). The pattern
    has at most four ``[step, num]`` dimensions (SH nki/api/nki/isa/__init__.py ``iota`` and
    ``affine_select``: ``[[step_w, num_w], [step_z, num_z], [step_y, num_y], [step_x, num_x]]``,
    fewer padded with size 1; nki 0.3)."""
    if not isinstance(pattern, (list, tuple)) or not all(
            isinstance(d, (list, tuple)) and len(d) == 2 for d in pattern):
        # rule isa.iota.pattern_pairs (SH nki/api/nki/isa/__init__.py iota / affine_select
        # pattern: a list of [step, num] pairs, nki 0.3)
        raise SimError(f"{api}: pattern must be a list of [step, num] pairs", repr(pattern),
                       "e.g. pattern=[[1, n]] for 0, 1, .., n - 1 along the free axis")
    if len(pattern) > 4:
        raise SimError(f"{api}: pattern has more than 4 dimensions", len(pattern),
                       "merge dimensions: the engine walks at most [w, z, y, x]")
    steps = [as_int(s, f"{api}: a pattern step") for s, _ in pattern]
    nums = [as_int(k, f"{api}: a pattern count") for _, k in pattern]
    channel_multiplier = as_int(channel_multiplier, f"{api}: channel_multiplier")
    if math.prod(nums) != n:
        raise SimError(f"{api}: pattern element count must equal elements per partition",
                       f"{math.prod(nums)} vs {n}")
    _int32_values(api, offset, [(int(channel_multiplier), p)] + list(zip(steps, nums)))
    if not state.current().numerics:
        return None
    v = np.zeros((1,), dtype=np.int64)
    for s, k in zip(steps, nums):
        v = (v[:, None] + s * np.arange(k, dtype=np.int64)[None, :]).reshape(-1)
    ch = np.arange(p, dtype=np.int64)[:, None] * int(channel_multiplier)
    return offset + ch + v[None, :]


def iota(dst: Tensor, pattern, offset: int = 0, channel_multiplier: int = 0) -> None:
    api = "iota"
    run = state.current()
    in_sbuf(dst, api, "dst", " (GpSimd writes SBUF only)")
    writable(dst, api)
    vals = _affine(pattern, dst.shape[0], dst.free_size, as_int(offset, f"{api}: offset"),
                   channel_multiplier, api)
    if vals is not None:
        v = vals.astype(np.int32)
        if dst.dtype.kind in "iu":
            # the int32 pattern values must fit an integer dst: NumPy would wrap 200 in int8
            # to -56 (no integer narrowing is documented; isa.int_dst_range)
            int_in_range(v, dst.dtype, api)
        write(dst, v.astype(dst.dtype))
    emit(run, _E_GPSIMD, api, (), (dst,), dst.shape[0], dst.free_size, np.dtype(np.int32),
         dst.dtype, n_in=0)


def _te_transpose(x: np.ndarray, nc: int) -> np.ndarray:
    """TensorE transpose of fp32 values ``x`` [P, F] (SH nc_transpose / nc_matmul docstrings):
    bit-accurate from NeuronCore-v3; on NeuronCore-v2 it is a matmul with an identity, so a
    NaN/Inf in column j of ``x`` makes every other element of output row j NaN (x * 0) and
    -0.0 becomes +0.0 (x + 0)."""
    r = np.array(x.T, dtype=np.float32, copy=True)
    if nc >= 3:
        return r
    bad = ~np.isfinite(x)                                   # [P, F]
    other = bad.sum(axis=0)[None, :] - bad                  # non-finite elsewhere in column
    r[(other > 0).T] = np.nan
    if x.shape[0] > 1:
        r += np.float32(0.0)
    return r


def nc_transpose(dst: Tensor, data: Tensor, engine=None, direct: str | None = None) -> None:
    """``direct="nki"`` (the current API) requires dst.dtype == data.dtype; the classic
    ``dtype=`` and the language-level nl.transpose cast on the way (an extra cast)."""
    api = "nc_transpose"
    run = state.current()
    on_chip(dst, api, "dst")
    on_chip(data, api, "data")
    writable(dst, api)
    p, f = data.shape[0], data.free_size
    default = _E_VECTOR if p <= 32 and f <= 32 and dst.alloc.mem is _SBUF \
        else _E_TENSOR
    eng = engine_of(engine, default, (_E_TENSOR, _E_VECTOR), api)
    lim = hw.PMAX if eng is _E_TENSOR else 32
    if p > lim or f > lim:
        raise SimError(f"{api}: {eng.value} engine transposes at most {lim}x{lim}",
                       f"[{p}, {f}]")
    if eng is _E_TENSOR:
        in_sbuf(data, api, "data", " (TensorE reads SBUF only)")
        if dst.alloc.mem is not _PSUM:
            raise SimError(f"{api}: TensorE writes PSUM only (dst)", repr(dst))
    if dst.dtype != data.dtype and (direct == "nki" or (
            direct is None and not (eng is _E_TENSOR and dst.dtype == dt.F32))):
        raise SimError(f"{api}: dst dtype must equal data dtype",
                       f"{dt.name(dst.dtype)} vs {dt.name(data.dtype)}",
                       f"allocate dst as {dt.name(data.dtype)} and copy/cast it afterwards")
    if dst.shape[0] != f or dst.free_size != p:
        raise SimError(f"{api}: dst must be [{f}, {p}]", list(dst.shape))
    if eng is _E_TENSOR and direct == "nki" and run.target.nc_version < 3 \
            and dst.dtype != dt.F32:
        # SH (and S29) nki/guides/architecture/trainium2_arch.rst "Built-in Transpose Support":
        # a 16-bit PSUM result of a 16-bit TensorE transpose comes with NeuronCore-v3's
        # transpose mode; without it the result is the matmul's float32 (SH nc_matmul "Data
        # types": dst float32 on NeuronCore-v2). With dst and data of one dtype (SH
        # nc_transpose, nki 0.3) a NeuronCore-v2 TensorE transpose is float32 throughout.
        raise SimError(f"{api}: a TensorE transpose on NeuronCore-v2 writes float32 PSUM "
                       "(16-bit PSUM output needs NeuronCore-v3 transpose mode)",
                       f"dst {dt.name(dst.dtype)} on {run.target.name}",
                       "copy the tile to float32 first (exact), transpose it into a float32 "
                       "PSUM tile and cast when evicting; or use a VectorE transpose (32x32)")
    if eng is _E_TENSOR and direct == "nki" and run.target.nc_version >= 3 \
            and data.dtype in (dt.FP8_E4M3, dt.FP8_E5M2, dt.FP8_E4M3FN):
        # SH (and S29) nki/guides/architecture/trainium2_arch.rst "Built-in Transpose Support":
        # TensorE transpose mode on NeuronCore-v3 writes 16-bit elements (upper 8 bits zero)
        # for float8 input, while S29 nki/api/nki/isa/__init__.py nc_transpose (nki 0.3) asks
        # for a dst of data's dtype: no float8 PSUM tile holds that output (nki-library's
        # _transpose_sbuf transposes float8 through bfloat16 for this reason)
        _fp8_transpose(api, data, dst, run.target.name)
    if run.numerics:
        if eng is _E_TENSOR and run.target.nc_version < 3:
            write(dst, _te_transpose(read(data), run.target.nc_version))
        else:
            write(dst, read_raw(data).T)
    te = eng is _E_TENSOR
    emit(run, eng, api, (data,), (dst,), p, f, data.dtype, dst.dtype, transpose=True,
         stationary_free=f if te else 0, moving_free=p if te else 0)


def _pe_tiling(api: str, tile_position, tile_size, k: int, m: int, nc: int,
               direct: str | None) -> tuple[int, int]:
    """PE tiling (SH nc_matmul "Tiling mode", nki 0.3; S25 nc_matmul requirements): both
    tuples or neither; row/column sizes 64 or 128 (NeuronCore-v2) or 32/64/128 (v3+) in the
    current API, multiples of 32 (not 32 on NeuronCore-v2) in the classic one; each start a
    multiple of its size within the 128x128 array; the stationary tile fits the PE tile.
    Returns (row_size, column_size)."""
    if not tile_position and not tile_size:
        return hw.PMAX, hw.GEMM_STATIONARY_FMAX
    if not tile_position or not tile_size:
        raise SimError(f"{api}: tile_position and tile_size must both be set to enable PE "
                       "tiling", f"tile_position={tile_position!r}, tile_size={tile_size!r}",
                       "pass both (e.g. tile_position=(64, 0), tile_size=(64, 128)) or neither")
    if len(tile_position) != 2 or len(tile_size) != 2:
        raise SimError(f"{api}: tile_position and tile_size are (row, column) pairs",
                       f"{tile_position!r}, {tile_size!r}")
    pos = [int(v) for v in tile_position]
    size = [int(v) for v in tile_size]
    legal = ((64, 128) if nc < 3 else (32, 64, 128)) if direct != "classic" else \
        ((64, 96, 128) if nc < 3 else (32, 64, 96, 128))
    for what, v in zip(("row", "column"), size):
        if v not in legal:
            raise SimError(f"{api}: tile_size {what} size must be one of {list(legal)} on "
                           f"NeuronCore-v{nc}", v)
    for what, v, sz in zip(("row", "column"), pos, size):
        step = sz if direct != "classic" else 32
        if v < 0 or v % step or v + sz > hw.PMAX:
            raise SimError(f"{api}: tile_position start {what} must be a multiple of {step} "
                           f"with start + size <= {hw.PMAX}", f"{v} (size {sz})")
    if k > size[0] or m > size[1]:
        raise SimError(f"{api}: the stationary tile [{k}, {m}] exceeds tile_size {size}",
                       f"[{k}, {m}]", "use a larger tile_size")
    return size[0], size[1]


# Operand checks of nc_matmul that depend only on the operands' memories, shapes and dtypes
# and the arguments: passed once per distinct combination (a loop issues the same matmul shape
# over and over; the memo holds successes only, so a failing call always reports its error).
# Each entry: (K, M, N, double-row, {(accumulate, onezero, transpose): the record's Kind}).
_MM_CHECKED: dict[tuple, tuple[int, int, int, bool, dict]] = {}


def _matmul_checks(dst: Tensor, stationary: Tensor, moving: Tensor, tile_position, tile_size,
                   perf_mode, api: str, direct: str | None, nc: int,
                   transpose: bool = False) -> tuple[int, int, int, bool]:
    """(contraction K, stationary free M, moving free N, double-row mode) after every operand
    rule of nc_matmul that does not depend on where in its allocation ``dst`` lies (nor on the
    operands' values)."""
    tensor(dst, api, "dst")
    in_sbuf(stationary, api, "stationary", " (TensorE reads SBUF only)")
    in_sbuf(moving, api, "moving", " (TensorE reads SBUF only)")
    if dst.alloc.mem is not _PSUM:
        raise SimError(f"{api}: dst must be in PSUM (TensorE writes PSUM only)", repr(dst))
    writable(dst, api)
    mode = getattr(perf_mode, "name", perf_mode)
    double = mode in ("double_row", "double_row_gen3")
    if mode not in ("none", None) and not double:
        raise UnsupportedError(f"{api}(perf_mode={mode})")
    k, m, n = stationary.shape[0], stationary.free_size, moving.free_size
    if double:
        _double_row_rules(api, stationary, moving, tile_size, nc)
        m, n = m // 2, n // 2
    if moving.shape[0] != k:
        raise SimError(f"{api}: stationary and moving partition (contraction) dims differ",
                       f"{k} vs {moving.shape[0]}")
    rows, _ = _pe_tiling(api, tile_position, tile_size, k, m, nc, direct)
    if k > rows:
        raise SimError(f"{api}: contraction (partition) dim exceeds {rows}", k)
    if m > hw.GEMM_STATIONARY_FMAX:
        raise SimError(f"{api}: stationary free size exceeds gemm_stationary_fmax="
                       f"{hw.GEMM_STATIONARY_FMAX}", f"{m} (stationary {list(stationary.shape)})",
                       "tile M in chunks of 128")
    if n > hw.GEMM_MOVING_FMAX:
        raise SimError(f"{api}: moving free size exceeds gemm_moving_fmax={hw.GEMM_MOVING_FMAX}",
                       f"{n} (moving {list(moving.shape)})", "tile N in chunks of 512")
    for t, role in ((stationary, "stationary"), (moving, "moving")):
        if t.dtype not in _MATMUL_IN:
            raise SimError(f"{api}: {role} dtype not supported by TensorE", dt.name(t.dtype))
        if t.dtype == dt.FP8_E4M3FN and nc < 4:
            raise SimError(f"{api}: {role} float8_e4m3fn (OCP FP8) needs NeuronCore-v4; "
                           f"NeuronCore-v{nc} takes float8_e4m3 / float8_e5m2",
                           dt.name(t.dtype), "use float8_e4m3 (or float8_e5m2)")
    if (stationary.dtype == dt.F32) != (moving.dtype == dt.F32):
        raise SimError(f"{api}: float32 operands must be paired with float32",
                       f"{dt.name(stationary.dtype)} x {dt.name(moving.dtype)}")
    if transpose and direct == "nki" and nc >= 3:
        _transpose_mode_dtype(api, stationary, dst, nc)
    elif dst.dtype != dt.F32:
        raise SimError(f"{api}: dst must be float32 PSUM", dt.name(dst.dtype))
    if dst.shape[0] != m or dst.free_size != n:
        raise SimError(f"{api}: dst must be [stationary_F, moving_F] = [{m}, {n}]",
                       list(dst.shape))
    return k, m, n, double


def nc_matmul(dst: Tensor, stationary: Tensor, moving: Tensor, accumulate=None,
              is_transpose: bool = False, tile_position=(), tile_size=(),
              perf_mode=None, api: str = "nc_matmul", direct: str | None = None,
              onezero: tuple[bool, bool] = (False, False), later: bool = False) -> None:
    run = state.current()
    nc = run.target.nc_version
    key = None
    got: Any
    if _mode.FAST and dst.__class__ in _VIEWS and stationary.__class__ in _VIEWS and \
            moving.__class__ in _VIEWS:
        # (an Enum member as its class and name: Enum.__hash__ is Python code; the class and
        # the name identify the member)
        key = (api, direct, nc, bool(is_transpose), perf_mode.__class__,
               getattr(perf_mode, "_name_", perf_mode),
               tile_position.__class__, tile_position,
               tile_size.__class__, tile_size, stationary.alloc.mem._value_, stationary.shape,
               stationary.dtype, moving.alloc.mem._value_, moving.shape, moving.dtype,
               dst.alloc.mem._value_, dst.shape, dst.dtype, dst.bcast)
        try:
            got = _MM_CHECKED.get(key)
        except TypeError:           # an unhashable argument (e.g. a list tile_size)
            key = got = None
    else:
        got = None
    if got is None:
        got = _matmul_checks(dst, stationary, moving, tile_position, tile_size, perf_mode, api,
                             direct, nc, bool(is_transpose))
        if key is not None:         # (+ the record's Kinds of this shape, see below)
            got = remember(_MM_CHECKED, key, (*got, {}))
    k, m, n, double = got[0], got[1], got[2], got[3]
    reg = dst.region()
    if reg.b1 - reg.b0 > hw.PSUM_BANK_BYTES or reg.b0 // hw.PSUM_BANK_BYTES != \
            (reg.b1 - 1) // hw.PSUM_BANK_BYTES:
        raise SimError(f"{api}: matmul output must fit one PSUM bank "
                       f"({hw.PSUM_BANK_BYTES} B/partition)",
                       f"bytes [{reg.b0}, {reg.b1}) of {list(dst.alloc.shape)} "
                       f"{dt.name(dst.dtype)}", "use at most 512 fp32 columns per bank")
    if is_transpose and nc >= 3 and run.numerics and not _one_hot_columns(moving):
        # SH nki/api/nki/isa nc_matmul "Transpose mode" and nc_transpose (nki 0.3): transpose
        # mode loads the tile to turn as the stationary operand "using an identity matrix as
        # the moving tile" (nc_transpose "is equivalent to calling nisa.nc_matmul directly with
        # is_transpose=True"); S25 general/nki/api/nki/isa nc_matmul (SDK 2.25): is_transpose
        # "hints to the compiler that this is a transpose operation with moving as an identity
        # matrix". NeuronCore-v3 passes the data through bit-accurately instead of multiplying,
        # so any other moving operand has no defined result (on NeuronCore-v2 the flag only
        # tags the instruction for the profiler: SH nc_matmul "Transpose mode")
        raise SimError(f"{api}: is_transpose=True needs an identity matrix as the moving "
                       "operand (transpose mode turns the stationary tile)",
                       f"moving {list(moving.shape)} {dt.name(moving.dtype)} is not an identity "
                       "(a 0/1 matrix with one 1 per column)",
                       "drop is_transpose=True for a matrix product, or pass an identity "
                       "(nl.shared_identity_matrix) as moving")
    acc = _accumulates(dst, accumulate, api if direct == "nki" else None)
    hinted = _onezero(api, stationary, moving, onezero, run.numerics) \
        if onezero[0] or onezero[1] else False          # (no hint: nothing to check)
    if run.numerics:
        if is_transpose and nc >= 3 and _one_hot_columns(moving):
            # transpose mode is bit-accurate from NeuronCore-v3 (NaN/Inf move unchanged)
            r = read(stationary).T[:, read(moving).argmax(axis=0)]
        elif double:        # contraction over the partition dim and the first free dim (2)
            r = np.einsum("kli,klj->ij", read(stationary).reshape(k, 2, m),
                          read(moving).reshape(k, 2, n))
        else:
            s, mv = read(stationary), read(moving)
            a = dst.alloc
            if batch.ACTIVE and stationary.dtype != F32 and moving.dtype != F32 and \
                    len(dst.shape) == 2 and a.phys is None and a.parent is None and \
                    not a.aliased:
                # s and mv are private widened copies: the same GEMM and the same store/add,
                # applied before anything reads or writes this PSUM tile (batch.py)
                if a.unfilled:
                    a.fill()
                batch.defer(a, dst.view_of_storage(), s, mv, acc)
                r = None
            elif later and _mode.FAST and not acc and stationary.dtype != F32 and \
                    moving.dtype != F32 and dst.is_whole() and len(dst.shape) == 2 and \
                    a.phys is None and a.parent is None and not a.aliased and \
                    a.pending is None:
                # a classic fresh result (s and mv are private widened copies): computed when
                # read, or straight into the tile it is accumulated into (batch.take)
                if a.unfilled:
                    a.fill()
                batch.later(a, dst.view_of_storage(), s, mv)
                r = None
            elif _mode.FAST and dst.alloc.pending is None and \
                    gemm.into(dst.np(), s, mv, acc):
                r = None                    # the same sgemm, written into PSUM (gemm.py)
            else:
                r = np.matmul(s.T, mv)
        if r is not None:
            d = dst.np()
            if d.shape != r.shape:
                if acc:
                    r = r + read(dst)
                write(dst, r)
            elif acc:
                d += r
            else:
                d[...] = r
    reads = (stationary, moving, dst) if acc else (stationary, moving)
    if key is not None:             # the record's Kind, once per operand shape (fast path)
        kinds = got[4]
        kkey = (acc, hinted, bool(is_transpose))
        kind = kinds.get(kkey)
        if kind is None:
            kind = kinds[kkey] = kind_of(
                _E_TENSOR, "nc_matmul", reads, (dst,), k, n, moving.dtype, dst.dtype, n_in=2,
                stationary_free=m, moving_free=n, transpose=bool(is_transpose), accumulate=acc,
                attrs={k: True for k, on in (("double_row", double), ("onezero", hinted)) if on})
        record(run, kind, reads, (dst,), accum=True)
        return
    emit(run, _E_TENSOR, "nc_matmul", reads, (dst,),
         k, n, moving.dtype, dst.dtype, n_in=2, stationary_free=m, moving_free=n,
         transpose=bool(is_transpose), accumulate=acc, accum=True,
         attrs={k: True for k, on in (("double_row", double), ("onezero", hinted)) if on})


def _onezero(api: str, stationary: Tensor, moving: Tensor, hints: tuple[bool, bool],
             numerics: bool) -> bool:
    """is_stationary_onezero / is_moving_onezero (S25 general/nki/api/nki/isa/__init__.py
    nc_matmul, SDK 2.25; S29 nki/api/nki/isa/__init__.py nc_matmul, nki 0.3): a hint that the
    operand holds only ones and zeros, "could lead to 2x better performance if [it] is in
    float32; the field has no impact for non-float32". Strict: a hinted operand must hold only
    0/1 (checked when values are simulated). Returns whether the hint applies (a float32
    operand hinted), which the cost model reads (``attrs['onezero']``)."""
    applies = False
    for t, role, on in ((stationary, "stationary", hints[0]), (moving, "moving", hints[1])):
        if not on:
            continue
        if numerics:
            x = read(t)
            if not ((x == 0) | (x == 1)).all():
                raise SimError(f"{api}: is_{role}_onezero=True but the {role} operand holds "
                               "values other than 0 and 1", repr(t), f"drop is_{role}_onezero")
        applies = applies or t.dtype == dt.F32
    return applies


_FP8 = (dt.FP8_E4M3, dt.FP8_E5M2, dt.FP8_E4M3FN)


def _transpose_mode_dtype(api: str, stationary: Tensor, dst: Tensor, nc: int) -> None:
    """dst dtype of ``nc_matmul(..., is_transpose=True)`` on NeuronCore-v3+ (current API): the
    dtype of the data turned, as for ``nc_transpose`` (SH nki/api/nki/isa nc_transpose "The
    output dst tile must have the same data type as that of data", which it calls equivalent to
    nc_matmul with is_transpose=True; SH nki/guides/architecture/trainium2_arch.rst "Built-in
    Transpose Support": FP16/BF16 PSUM output for an FP16/BF16 transpose, 16-bit elements for
    float8 input, which no float8 PSUM tile holds)."""
    if stationary.dtype in _FP8:
        _fp8_transpose(api, stationary, dst, f"NeuronCore-v{nc}")
    if dst.dtype != stationary.dtype:
        raise SimError(f"{api}: is_transpose=True writes the stationary operand's dtype: dst "
                       "dtype must equal the stationary dtype (nc_transpose rule)",
                       f"dst {dt.name(dst.dtype)} vs stationary {dt.name(stationary.dtype)}",
                       f"allocate the PSUM dst as {dt.name(stationary.dtype)} and cast when "
                       "evicting it")


def _fp8_transpose(api: str, data: Tensor, dst: Tensor, where: str) -> None:
    """The refusal of a TensorE transpose (``nc_transpose`` or ``nc_matmul(...,
    is_transpose=True)``) of float8 data on NeuronCore-v3+: transpose mode writes 16-bit
    elements (SH nki/guides/architecture/trainium2_arch.rst "Built-in Transpose Support"),
    while the dst must have the data's dtype (SH nc_transpose, nki 0.3)."""
    raise SimError(f"{api}: a TensorE transpose of {dt.name(data.dtype)} data writes 16-bit "
                   "elements to PSUM on NeuronCore-v3+ (trn2 arch guide), which a "
                   f"{dt.name(dst.dtype)} dst tile does not hold",
                   f"data {dt.name(data.dtype)} {list(data.shape)} on {where}",
                   "copy the tile to bfloat16 first (exact for float8), transpose it into a "
                   "bfloat16 PSUM tile and cast back to float8 when evicting it; or use a "
                   "VectorE transpose (32x32 blocks)")


def _double_row_rules(api: str, stationary: Tensor, moving: Tensor, tile_size, nc: int) -> None:
    """perf_mode=double_row (SH nc_matmul "Performance mode", "Layout"): NeuronCore-v3+, fp8
    operands laid out [K, 2, F] (the contraction is split between the partition dim and the
    first free dim), not combined with column tiling."""
    if nc < 3:
        raise SimError(f"{api}: perf_mode=double_row is not supported on NeuronCore-v2",
                       f"NeuronCore-v{nc}", "drop perf_mode=")
    for t, role in ((stationary, "stationary"), (moving, "moving")):
        if t.dtype not in _FP8:
            raise SimError(f"{api}: perf_mode=double_row needs float8_e4m3/float8_e5m2 "
                           f"operands ({role})", dt.name(t.dtype))
        if t.ndim < 3 or t.shape[1] != 2:
            raise SimError(f"{api}: perf_mode=double_row needs {role} laid out [K, 2, F]",
                           list(t.shape))
    if tile_size and int(tile_size[1]) != hw.GEMM_STATIONARY_FMAX:
        raise SimError(f"{api}: perf_mode=double_row cannot be combined with column tiling",
                       tile_size)


def _one_hot_columns(t: Tensor) -> bool:
    x = read(t)
    return bool(((x == 0) | (x == 1)).all() and (x.sum(axis=0) == 1).all())


def _accumulates(dst: Tensor, accumulate, strict: str | None = None) -> bool:
    """Resolve accumulate=None: the first matmul write to a PSUM location overwrites, later
    ones add. Tracked per allocation by exact-view keys; a view seen for the first time is
    checked against an element mask (numerics) or the earlier views' regions (cost-only)."""
    a = dst.alloc
    key = (dst.offset, dst.shape, dst.strides)
    if a.mm_keys is None:
        a.mm_keys = {}
    if key in a.mm_keys:
        return True if accumulate is None else bool(accumulate)
    seen = False
    if a.data is not None:
        if a.mm_mask is None:
            a.mm_mask = np.zeros(a.data.size, dtype=np.bool_)
        m = np.ndarray(dst.shape, np.bool_, buffer=a.mm_mask, offset=dst.offset,
                       strides=dst.strides)
        seen = bool(m.any())
        if strict and accumulate is True and not m.all():
            _uninitialised_accumulate(strict, dst)
        if seen and not m.all() and accumulate is None:
            raise SimError("nc_matmul: accumulate=None on a PSUM region that is only partly "
                           "written by earlier matmuls", repr(dst),
                           "pass accumulate=True/False explicitly")
        m[...] = True
    else:
        r = dst.region()
        seen = any(q.p0 < r.p1 and r.p0 < q.p1 and q.b0 < r.b1 and r.b0 < q.b1
                   for q in a.mm_keys.values())
        if strict and accumulate is True and not seen:
            _uninitialised_accumulate(strict, dst)
    a.mm_keys[key] = dst.region()
    return seen if accumulate is None else bool(accumulate)


def receive(dst: Tensor, src: Tensor, values: np.ndarray | None) -> None:
    """The local half of ``nisa.sendrecv``: ``src`` left this core, ``dst`` receives
    ``values`` (the peer program's src, nkigen.sim.spmd); one DMA record reading src and
    writing dst."""
    run = state.current()
    writable(dst, "sendrecv")
    if run.numerics and values is not None:
        write(dst, values)
    nb = src.size * src.itemsize
    emit(run, _E_DMA, "sendrecv", (src,), (dst,), dst.shape[0], dst.free_size, src.dtype,
         dst.dtype, nbytes=nb, hbm_bytes=0, chunk_bytes=src.free_size * src.itemsize)
