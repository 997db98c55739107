"""``nki.isa`` (current standalone API: every instruction takes ``dst`` first) over the core.

Stage: simulate (API layer). Enums mirror the public ones; ``engine`` members carry the
``nkigen.hw.Engine`` they select. Any name not defined here raises an error naming it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from enum import Enum, IntEnum

import numpy as np

from nkigen import hw
from nkigen.sim import dt, isa_compute, isa_extra, isa_move, state
from nkigen.sim.errors import SimError, UnsupportedError, unsupported_stub
from nkigen.sim.tensor import Tensor
from nkigen.sim.trace import Mem


class engine(Enum):
    unknown = 0
    tensor = 1
    scalar = 2
    gpsimd = 3
    vector = 5
    sync = 6
    dma = 7

    @property
    def hw(self) -> hw.Engine | None:
        return _ENGINES.get(self)


_ENGINES = {engine.tensor: hw.Engine.TENSOR, engine.scalar: hw.Engine.SCALAR,
            engine.gpsimd: hw.Engine.GPSIMD, engine.vector: hw.Engine.VECTOR,
            engine.dma: hw.Engine.DMA}

tensor_engine = engine.tensor
vector_engine = engine.vector
scalar_engine = engine.scalar
gpsimd_engine = engine.gpsimd
unknown_engine = engine.unknown
sync_engine = engine.sync


class reduce_cmd(Enum):
    idle = 0
    reset = 1
    reduce = 2
    reset_reduce = 3
    load_reduce = 4


class dge_mode(Enum):
    none = 0
    swdge = 1
    hwdge = 2
    unknown = 3


class oob_mode(Enum):
    error = 0
    skip = 1


class dma_engine(Enum):
    dma = 0
    gpsimd_dma = 1


class matmul_perf_mode(Enum):
    none = 0
    double_row = 1


class nc_version(IntEnum):              # ordered: kernels compare versions with >=
    gen2 = 2
    gen3 = 3
    gen4 = 4


def get_nc_version() -> nc_version:
    return nc_version(state.current().target.nc_version)


def _cast_to(dst: Tensor, dtype) -> object:
    """Public kernels sometimes pass ``dtype=`` to dst-first calls (e.g. a PSUM->SBUF copy with
    ``dtype=out.dtype`` into an fp32 tile). The engine casts its fp32 result to that dtype, so
    the values stored in ``dst`` are rounded through it (see :func:`_round`)."""
    if dtype is None:
        return None
    d = dt.as_dtype(dtype)
    return None if d == dst.dtype else d


def _round(dst: Tensor, d) -> None:
    if d is not None and state.current().numerics:
        a = dst.np()
        a[...] = a.astype(d)


# ---- data movement -----------------------------------------------------------------------
_DGE_UNKNOWN = dge_mode.unknown
_ENGINE_UNKNOWN = engine.unknown


def dma_copy(dst: Tensor, src: Tensor, priority=None, oob_mode=oob_mode.error,
             dge_mode=dge_mode.unknown, engine=engine.unknown, name=None, **kw) -> None:
    if kw:
        _dma_copy_kwargs(kw)
    if dge_mode is not _DGE_UNKNOWN:
        _dge_indirect_rules(dst, src, dge_mode)
    if src.__class__ is not Tensor or dst.__class__ is not Tensor:
        from nkigen.sim.nki.indirect import IndirectAP, OutOfBounds, gather
        for t in (dst, src):
            if isinstance(t, OutOfBounds):
                if getattr(oob_mode, "name", oob_mode) == "skip":
                    return          # the transfer is skipped (SH dma_copy oob_mode)
                raise t.error
        if isinstance(src, IndirectAP) or isinstance(dst, IndirectAP):
            gather(dst, src, getattr(oob_mode, "name", oob_mode) == "skip")  # type: ignore
            return
    if dge_mode is not _DGE_UNKNOWN:        # (the defaults pass every check below)
        _hwdge_needs_v3("dma_copy", dge_mode)
    if priority is not None and state.current().target.nc_version < 4:
        raise SimError("dma_copy: priority= is available only on NeuronCore-v4", priority,
                       "drop priority=")
    if engine is not _ENGINE_UNKNOWN and getattr(engine, "name", "unknown") != "unknown" and \
            dge_name(dge_mode) != "hwdge":
        raise SimError("dma_copy: engine= is only valid with dge_mode=hwdge",
                       getattr(engine, "name", engine), "drop engine= or use dge_mode=hwdge")
    isa_move.dma_copy(dst, src)


def _dma_copy_kwargs(kw: dict) -> None:
    """Keywords outside the SH dma_copy signature (dst, src, priority, oob_mode, dge_mode,
    engine, name; nki 0.3): the classic dst_rmw_op is unsupported, mask= was removed
    (nki03.mask_removed), dtype= is accepted as on the other dst-first calls (public
    tutorials pass it; the DMA casts to dst's dtype anyway); any other keyword is the
    TypeError Python raises for the documented signature, as a located error (it was ignored
    silently)."""
    for k, v in kw.items():
        if k == "dst_rmw_op":
            if v is not None:
                raise UnsupportedError("nki.isa.dma_copy(dst_rmw_op=...)")
        elif k == "mask":
            if v is not None:       # as nl.* calls (nki/language.py _no_mask)
                raise UnsupportedError("nki.isa.dma_copy(mask=...) (removed in the current API)",
                                       "clip tiles with Python min()/slices")
        elif k != "dtype":
            raise SimError(f"dma_copy: unexpected keyword argument {k!r} (SH nki/api/nki/isa "
                           "dma_copy: dst, src, priority, oob_mode, dge_mode, engine, name)",
                           f"{k}=", "drop the keyword")


def dge_name(mode) -> str:
    """The name of a ``dge_mode`` given as the enum member or its integer value (nki-library
    passes the integers, e.g. mlp_tkg_utils.adaptive_dge_mode)."""
    if isinstance(mode, (int, np.integer)) and not isinstance(mode, bool):
        try:
            return dge_mode(int(mode)).name
        except ValueError:
            return str(mode)
    return str(getattr(mode, "name", mode))


def _dge_indirect_rules(dst, src, mode) -> None:
    """Which DGE mode can address what (SH nki/api/nki/isa/__init__.py dma_copy: dynamic
    start addresses need sw_dge or hw_dge, and only sw_dge gathers or scatters; SH
    nki/deep-dives/nki-dge.rst: ``none`` "cannot handle dynamic (runtime-computed) addresses
    or indices", ``swdge`` "is the only mode that supports indirect (gather/scatter)
    operations", ``hwdge`` "does not support indirect (gather/scatter) operations"; nki 0.3)."""
    from nkigen.sim.nki.indirect import IndirectAP, is_dynamic
    name = dge_name(mode)
    if name in ("hwdge", "none") and (isinstance(src, IndirectAP) or isinstance(dst, IndirectAP)):
        raise SimError("dma_copy: a gather/scatter (.ap with vector_offset) runs on software "
                       "DGE only", f"dge_mode={name}",
                       "use dge_mode=nisa.dge_mode.swdge (or leave it unknown)")
    if name == "none" and (is_dynamic(src) or is_dynamic(dst)):
        raise SimError("dma_copy: dge_mode=none cannot take a dynamic address (.ap with "
                       "scalar_offset): the descriptors are made before the kernel runs",
                       f"dge_mode={name}",
                       "use dge_mode=nisa.dge_mode.hwdge or swdge (or leave it unknown)")


def _hwdge_needs_v3(api: str, mode) -> None:
    """Hardware DGE is only supported on NeuronCore-v3 or newer (SH dma_copy / dma_transpose
    ``dge_mode``)."""
    run = state.current()
    if dge_name(mode) == "hwdge" and run.target.nc_version < 3:
        raise SimError(f"{api}: dge_mode=hwdge needs NeuronCore-v3 or newer",
                       run.target.name, "use dge_mode=nisa.dge_mode.unknown")


def dma_compute(dst: Tensor, srcs, reduce_op, scales=None, unique_indices=True,
                oob_mode=oob_mode.error, name=None) -> None:
    from nkigen.sim.nki.indirect import IndirectAP, rmw
    srcs = list(srcs)
    if isinstance(dst, IndirectAP) or any(isinstance(x, IndirectAP) for x in srcs):
        from nkigen.sim import ops
        if ops.resolve(reduce_op, "reduce_op").name != "add":
            raise SimError("dma_compute: only reduce_op=add is supported by the hardware",
                           getattr(reduce_op, "__name__", reduce_op))
        if scales is not None and any(float(x) != 1.0 for x in scales):
            raise SimError("dma_compute: all scales must be 1.0", list(scales))
        rmw(dst, srcs, getattr(oob_mode, "name", oob_mode) == "skip", bool(unique_indices))
        return
    isa_move.dma_compute(dst, srcs, reduce_op, scales)


def dma_transpose(dst: Tensor, src: Tensor, axes=None, priority=None,
                  dge_mode=dge_mode.unknown, oob_mode=oob_mode.error, name=None) -> None:
    if src.__class__ is not Tensor or dst.__class__ is not Tensor:
        from nkigen.sim.nki.indirect import IndirectAP, OutOfBounds, transpose_gather
        skip = getattr(oob_mode, "name", oob_mode) == "skip"
        for t in (dst, src):
            if isinstance(t, OutOfBounds):
                if skip:        # SH release notes NKI 0.5: scalar_offset + oob_mode.skip
                    return
                raise t.error
        if isinstance(dst, IndirectAP):
            raise UnsupportedError("an indirect dma_transpose destination")
        if isinstance(src, IndirectAP):
            transpose_gather(dst, src, axes, dge_name(dge_mode), skip)
            return
    _hwdge_needs_v3("dma_transpose", dge_mode)
    mode = dge_name(dge_mode)
    # SH dma_transpose "DMA Direct Transpose Constraints" (nki 0.3): "The only valid
    # dge_modes are unknown and hwdge"; swdge is the indirect (gather) transpose's mode
    if mode not in ("unknown", "hwdge"):
        raise SimError("dma_transpose: dge_mode must be unknown or hwdge (swdge for an "
                       "indirect source)", mode, "drop dge_mode= or pass nisa.dge_mode.hwdge")
    if mode == "hwdge":
        isa_move.hwdge_transpose_shape(src)
    isa_move.dma_transpose(dst, src, axes, direct="nki")


def tensor_copy(dst: Tensor, src: Tensor, engine=engine.unknown, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_move.tensor_copy(dst, src, engine)
    _round(dst, cast)


def memset(dst: Tensor, value, engine=engine.unknown, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_move.memset(dst, value, engine, direct="nki")
    _round(dst, cast)


def iota(dst: Tensor, pattern, offset: int = 0, channel_multiplier: int = 0, name=None,
         dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    for v, role in ((offset, "offset"), (channel_multiplier, "channel_multiplier")):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or \
                not -(1 << 31) <= int(v) < 1 << 31:
            raise SimError(f"iota: {role} must be an int32", v)
    isa_move.iota(dst, pattern, offset, channel_multiplier)
    _round(dst, cast)


# ---- TensorE -----------------------------------------------------------------------------
def nc_matmul(dst: Tensor, stationary: Tensor, moving: Tensor, is_stationary_onezero=False,
              is_moving_onezero=False, is_transpose=False, accumulate=None, tile_position=(),
              tile_size=(), perf_mode=matmul_perf_mode.none, name=None) -> None:
    isa_move.nc_matmul(dst, stationary, moving, accumulate, is_transpose, tile_position,
                       tile_size, perf_mode, direct="nki",
                       onezero=(bool(is_stationary_onezero), bool(is_moving_onezero)))


def nc_transpose(dst: Tensor, data: Tensor, engine=engine.unknown, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_move.nc_transpose(dst, data, engine, direct="nki")
    _round(dst, cast)


# ---- Vector / Scalar / GpSimd ------------------------------------------------------------
def activation(dst: Tensor, op, data: Tensor, bias=None, scale=1.0, reduce_op=None,
               reduce_res=None, reduce_cmd=reduce_cmd.idle, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    cmd = reduce_cmd.name if isinstance(reduce_cmd, Enum) else str(reduce_cmd)
    if cmd == "load_reduce":
        raise UnsupportedError("nki.isa.activation(reduce_cmd=load_reduce)")
    isa_compute.activation(dst, op, data, bias, scale, reduce_op, reduce_res, cmd,
                           direct="nki")
    _round(dst, cast)


def activation_reduce(dst: Tensor, op, data: Tensor, reduce_op, reduce_res, bias=None,
                      scale=1.0, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.activation(dst, op, data, bias, scale, reduce_op, reduce_res, "reset_reduce",
                           api="activation_reduce", direct="nki")
    _round(dst, cast)


def tensor_tensor(dst: Tensor, data1: Tensor, data2: Tensor, op, engine=engine.unknown,
                  name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.tensor_tensor(dst, data1, data2, op, engine, direct="nki")
    _round(dst, cast)


def tensor_scalar(dst: Tensor, data: Tensor, op0, operand0, reverse0=False, op1=None,
                  operand1=None, reverse1=False, engine=engine.unknown, name=None,
                  dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.tensor_scalar(dst, data, op0, operand0, reverse0, op1, operand1, reverse1,
                              engine, direct="nki")
    _round(dst, cast)


def scalar_tensor_tensor(dst: Tensor, data: Tensor, op0, operand0, op1, operand1,
                         reverse0=False, reverse1=False, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.scalar_tensor_tensor(dst, data, op0, operand0, op1, operand1, reverse0,
                                     reverse1, direct="nki")
    _round(dst, cast)


def tensor_reduce(dst: Tensor, op, data: Tensor, axis, negate=False, keepdims=False,
                  name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.tensor_reduce(dst, op, data, axis, negate, keepdims, direct="nki")
    _round(dst, cast)


def reciprocal(dst: Tensor, data: Tensor, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.reciprocal(dst, data)
    _round(dst, cast)


def affine_select(dst: Tensor, pattern, channel_multiplier, on_true_tile, on_false_value,
                  cmp_op="equal", offset=0, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.affine_select(dst, pattern, channel_multiplier, on_true_tile, on_false_value,
                              cmp_op, offset, direct="nki")
    _round(dst, cast)


def tensor_tensor_scan(dst: Tensor, data0: Tensor, data1: Tensor, initial, op0, op1,
                       reverse0=False, reverse1=False, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.tensor_tensor_scan(dst, data0, data1, initial, op0, op1, reverse0, reverse1,
                                   direct="nki")
    _round(dst, cast)


def bn_stats(dst: Tensor, data: Tensor, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.bn_stats(dst, data)
    _round(dst, cast)


def bn_aggr(dst: Tensor, data: Tensor, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_compute.bn_aggr(dst, data)
    _round(dst, cast)


def _cmd(x) -> str:
    return x.name if isinstance(x, Enum) else str(x)


def tensor_scalar_reduce(dst: Tensor, data: Tensor, op0, operand0, reduce_op,
                         reduce_res=None, reverse0=False, reduce_cmd=reduce_cmd.reset_reduce,
                         reduce_init=None, reduce_res_negate=False, name=None,
                         dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_extra.tensor_scalar_reduce(dst, data, op0, operand0, reduce_op, reduce_res, reverse0,
                                   _cmd(reduce_cmd), reduce_init, direct="nki",
                                   reduce_res_negate=bool(reduce_res_negate))
    _round(dst, cast)


def tensor_scalar_cumulative(dst: Tensor, src: Tensor, op0, op1, imm0, imm1=None,
                             reduce_cmd=reduce_cmd.reset_reduce, name=None) -> None:
    isa_extra.tensor_scalar_cumulative(dst, src, op0, op1, imm0, imm1, _cmd(reduce_cmd),
                                       direct="nki")


def tensor_copy_predicated(dst: Tensor, src, predicate: Tensor, reverse_pred=False,
                           name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_extra.tensor_copy_predicated(dst, src, predicate, reverse_pred)
    _round(dst, cast)


def tensor_partition_reduce(dst: Tensor, op, data: Tensor, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_extra.tensor_partition_reduce(dst, op, data)
    _round(dst, cast)


def nc_stream_shuffle(dst: Tensor, src: Tensor, shuffle_mask, name=None) -> None:
    isa_extra.nc_stream_shuffle(dst, src, shuffle_mask)


def max8(dst: Tensor, src: Tensor, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_extra.max8(dst, src)
    _round(dst, cast)


def nc_find_index8(dst: Tensor, data: Tensor, vals: Tensor, name=None) -> None:
    isa_extra.nc_find_index8(dst, data, vals)


def nc_match_replace8(dst: Tensor, data: Tensor, vals: Tensor, imm: float, dst_idx=None,
                      name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_extra.nc_match_replace8(dst, data, vals, imm, dst_idx)
    _round(dst, cast)


def dropout(dst: Tensor, data: Tensor, prob, name=None) -> None:
    isa_extra.dropout(dst, data, prob)


def local_gather(dst: Tensor, src_buffer: Tensor, index: Tensor, num_elem_per_idx=1,
                 num_valid_indices=None, name=None) -> None:
    isa_extra.local_gather(dst, src_buffer, index, num_elem_per_idx, num_valid_indices)


def nc_n_gather(dst: Tensor, data: Tensor, indices: Tensor, name=None) -> None:
    isa_extra.nc_n_gather(dst, data, indices)


def nonzero_with_count(dst: Tensor, src: Tensor, index_offset=0, padding_val=-1,
                       name=None) -> None:
    if state.current().target.nc_version < 3:
        raise SimError("nki.isa.nonzero_with_count is available only on NeuronCore-v3 and "
                       "newer", state.current().target.name)
    isa_extra.nonzero_with_count(dst, src, index_offset, padding_val)


def select_reduce(dst: Tensor, predicate: Tensor, on_true: Tensor, on_false, reduce_res=None,
                  reduce_cmd=reduce_cmd.idle, reduce_op="maximum", reverse_pred=False,
                  name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    isa_extra.select_reduce(dst, predicate, on_true, on_false, reduce_res, _cmd(reduce_cmd),
                            reduce_op, reverse_pred, direct="nki")
    _round(dst, cast)


def range_select(dst: Tensor, on_true_tile: Tensor, comp_op0, comp_op1, bound0, bound1,
                 reduce_cmd=reduce_cmd.reset_reduce, reduce_res=None, reduce_op="maximum",
                 range_start=0, on_false_value=-3.4028235e38, name=None, dtype=None) -> None:
    cast = _cast_to(dst, dtype)
    if state.current().target.nc_version < 3:
        raise SimError("nki.isa.range_select is available only on NeuronCore-v3 and newer",
                       state.current().target.name)
    isa_extra.range_select(dst, on_true_tile, comp_op0, comp_op1, bound0, bound1,
                           _cmd(reduce_cmd), reduce_res, reduce_op, range_start, on_false_value)
    _round(dst, cast)


def _v4_only(api: str):
    def fn(*args, **kwargs):
        raise SimError(f"nki.isa.{api} is available only on NeuronCore-v4 (trn3)",
                       state.current().target.name, "the simulator models trn1 and trn2")
    fn.__name__ = api
    return fn


exponential = _v4_only("exponential")
activate2 = _v4_only("activate2")
nc_matmul_mx = _v4_only("nc_matmul_mx")
quantize_mx = _v4_only("quantize_mx")
rand2 = _v4_only("rand2")


_MULTI_CORE = "LNC collectives need interleaved cores; the simulator runs programs serially"


def core_barrier(data: Tensor, cores, engine=engine.gpsimd, name=None) -> None:
    """``nisa.core_barrier`` (SH nki/api/nki/isa/__init__.py core_barrier, nki 0.3):
    NeuronCore-v3 or newer, ``cores=(0, 1)`` only, ``data`` in shared HBM. In a run of one
    program (no SPMD grid, or a grid of one; nki-library kernels call it whatever the LNC
    degree) no other core is waited for: the barrier passes. With several programs the
    simulator, which runs the programs one after the other, cannot honour it
    (UnsupportedError)."""
    from nkigen.sim.tensor import SHARED_HBM
    run = state.current()
    if run.target.nc_version < 3:
        raise SimError("nki.isa.core_barrier is available only on NeuronCore-v3 or newer",
                       run.target.name, "synchronise on trn2")
    try:
        ok = tuple(int(c) for c in cores) == (0, 1)
    except TypeError:
        ok = False
    if not ok:
        raise SimError("core_barrier: only cores=(0, 1) is supported", repr(cores),
                       "pass cores=(0, 1)")
    if not isinstance(data, Tensor) or data.alloc.buffer is not SHARED_HBM:
        raise SimError("core_barrier: data must be a tensor in shared HBM", repr(data),
                       "pass the nl.shared_hbm tensor both cores write")
    if _programs(run) > 1:
        _sync(run, "core_barrier", {"cores": (0, 1)})


def _programs(run) -> int:
    n = 1
    for g in run.grid:
        n *= int(g)
    return n


def _sync(run, kind: str, info: dict):
    """Wait for the other programs (nkigen.sim.spmd): a serial run restarts interleaved."""
    from nkigen.sim import spmd
    from nkigen.sim.errors import kernel_loc
    if run.interleave is None:
        raise spmd.Restart
    return run.interleave.sync(kind, {**info, "loc": kernel_loc()})


def sendrecv(src: Tensor, dst: Tensor, send_to_rank, recv_from_rank, pipe_id,
             dma_engine=dma_engine.dma, name=None) -> None:
    """``nisa.sendrecv`` (SH nki/api/nki/isa/__init__.py sendrecv, nki 0.3): NeuronCore-v3 or
    newer with LNC=2 (an SPMD grid of two programs, ranks 0 and 1); src and dst are SBUF tiles
    of one dtype and shape; each program's dst receives the src of the program it receives
    from, when every program has reached its sendrecv (same pipe_id). The gpsimd_dma engine
    moves at most 1024 / 512 / 256 bytes per partition for 32 / 16 / 8-bit types."""
    run = state.current()
    api = "sendrecv"
    if run.target.nc_version < 3:
        raise SimError(f"nki.isa.{api} is available only on NeuronCore-v3 or newer",
                       run.target.name, "exchange tiles on trn2")
    n = _programs(run)
    if n != 2:
        raise SimError(f"{api} exchanges tiles between the two programs of an LNC=2 grid",
                       f"{n} program(s)", "launch the kernel as kernel[2](...)")
    ranks = []
    for what, v in (("send_to_rank", send_to_rank), ("recv_from_rank", recv_from_rank)):
        try:
            rank = int(v)
        except (TypeError, ValueError):
            rank = -1
        if rank not in (0, 1):
            raise SimError(f"{api}: {what} must be 0 or 1", repr(v))
        ranks.append(rank)
    for what, t in (("src", src), ("dst", dst)):
        if not isinstance(t, Tensor) or t.alloc.mem is not Mem.SBUF:
            raise SimError(f"{api}: {what} must be an SBUF tile", repr(t))
    if src.dtype != dst.dtype or src.shape != dst.shape:
        raise SimError(f"{api}: src and dst must have the same dtype and shape",
                       f"{list(src.shape)} {dt.name(src.dtype)} vs {list(dst.shape)} "
                       f"{dt.name(dst.dtype)}")
    if getattr(dma_engine, "name", dma_engine) == "gpsimd_dma":
        limit = {4: 1024, 2: 512, 1: 256}.get(src.dtype.itemsize, 1024)
        if src.free_size * src.dtype.itemsize > limit:
            raise SimError(f"{api}: gpsimd_dma moves at most {limit} bytes per partition for "
                           f"{8 * src.dtype.itemsize}-bit data",
                           f"{src.free_size * src.dtype.itemsize} bytes",
                           "use dma_engine=nisa.dma_engine.dma")
    values = np.array(src.np(), copy=True) if run.numerics else None
    got = _sync(run, api, {"send_to": ranks[0], "recv_from": ranks[1], "pipe_id": pipe_id,
                           "shape": src.shape, "dtype": src.dtype, "values": values,
                           "dst_shape": dst.shape, "dst_dtype": dst.dtype})
    isa_move.receive(dst, src, got)


_registers = importlib.import_module("nkigen.sim.nki.registers")
VirtualRegister = _registers.VirtualRegister
register_alloc = _registers.register_alloc
register_move = _registers.register_move
register_load = _registers.register_load
register_store = _registers.register_store

# Real APIs the simulator does not implement: importable, raise when called.
for _n, _fix in {
    "rng": "random numbers are not simulated",
    "set_rng_seed": None, "rand_set_state": None, "rand_get_state": None,
    "topk": None,
    "sequence_bounds": None, "tensor_copy_dynamic_src": None,
    "tensor_copy_dynamic_dst": None,
}.items():
    globals()[_n] = unsupported_stub(f"nki.isa.{_n}", _fix)


def _signature_errors(fn):
    """A call that does not bind to the documented signature (a missing dst, a keyword of the
    classic API such as mask= or dtype= where the SH signature has none) raises Python's
    TypeError at the kernel line; it becomes a located SimError naming the signature
    (isa.signature; mutants17 classic-form: ``t[...] = nisa.tensor_tensor(...)`` in a
    current kernel). TypeErrors from inside the instruction are not touched."""
    api = fn.__name__

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TypeError as e:
            tb = e.__traceback__
            if tb is None or tb.tb_next is not None:    # raised inside fn: not a binding error
                raise
            sig = str(inspect.signature(fn)).replace("'", "")
            raise SimError(f"nisa.{api}: the call does not match the nki 0.3 signature "
                           f"nisa.{api}{sig} (SH nki/api/nki/isa)", str(e).partition(" ")[2],
                           "current ISA calls write into dst= and return nothing; classic "
                           "keywords (mask=, the returned result) belong to neuronxcc.nki"
                           ) from None
    return call


for _name, _fn in list(globals().items()):
    if inspect.isfunction(_fn) and _fn.__module__ == __name__ and not _name.startswith("_") \
            and _name not in ("get_nc_version", "dge_name"):
        globals()[_name] = _signature_errors(_fn)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    if name == "constants":                      # nki.isa.constants (a module upstream)
        return importlib.import_module("nkigen.sim.nki.constants")
    raise UnsupportedError(f"nki.isa.{name}")
