"""Core ISA, Vector/Scalar/GpSimd compute: activation, tensor_tensor, tensor_scalar,
scalar_tensor_tensor, tensor_reduce, reciprocal, affine_select, tensor_tensor_scan, bn_stats,
bn_aggr (dst-first, shared by both API surfaces).

Stage: simulate (core). Inputs are read as float32 (P, N), math is fp32 (int64 for exact
integer ops on integer data), results round through the destination dtype.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from nkigen import hw
from nkigen.hw import Engine
from nkigen.sim import dt, mode, ops, state
from nkigen.sim.emit import (
    emit,
    engine_of,
    in_sbuf,
    int_in_range,
    is_f32,
    is_int,
    kind_of,
    need_dtype,
    no_psum_gpsimd,
    on_chip,
    operand,
    per_partition,
    read,
    read_raw,
    record,
    remember,
    same_pn,
    warn,
    writable,
    write,
)
from nkigen.sim.errors import SimError, as_int
from nkigen.sim.isa_move import _affine
from nkigen.sim.tensor import VIEWS as _VIEWS
from nkigen.sim.tensor import Tensor
from nkigen.sim.trace import Mem

# Enum members as module constants: a class attribute lookup on an Enum goes through
# EnumType.__getattr__'s slow path on Python 3.11 (hot per-instruction code).
_PSUM = Mem.PSUM
_E_VECTOR = Engine.VECTOR
_E_SCALAR = Engine.SCALAR
_E_GPSIMD = Engine.GPSIMD


def check_io(api: str, dst: Tensor, data: Tensor) -> None:
    on_chip(dst, api, "dst")
    on_chip(data, api, "data")
    writable(dst, api)
    same_pn(api, dst, data, "dst", "data")


def check_pair(api: str, dst: Tensor, a: Tensor, b: Tensor, roles: tuple[str, str, str],
               scalar) -> tuple[int, Tensor | float]:
    """``dst`` written from tiles ``a`` and ``b`` (not both in PSUM) and a per-partition
    ``scalar``; ``roles`` names a, b and the scalar. Returns (partitions, scalar operand)."""
    ra, rb, rs = roles
    check_io(api, dst, a)
    on_chip(b, api, rb)
    same_pn(api, a, b, ra, rb)
    if a.alloc.mem is _PSUM and b.alloc.mem is _PSUM:
        raise SimError(f"{api}: {ra} and {rb} cannot both be in PSUM")
    p = a.shape[0]
    return p, per_partition(scalar, p, api, rs)


def strided(ts) -> bool:
    """Any operand whose innermost dim is not unit-stride (no VectorE fast modes)."""
    return any(t.shape[-1] > 1 and t.strides[-1] != 1 for t in ts)


def attrs_of(api: str, ts, **kw) -> dict:
    if strided(ts):
        kw["strided"] = True
    if api.startswith("nl."):
        kw["api"] = api
    return kw


_ASSOC = {"add", "multiply", "maximum", "minimum", "bitwise_and", "bitwise_or", "bitwise_xor",
          "logical_and", "logical_or"}


def _same(a, b) -> bool:
    return isinstance(a, Tensor) and isinstance(b, Tensor) and a.alloc is b.alloc and \
        a.offset == b.offset and a.shape == b.shape and a.strides == b.strides


def is_accumulation(op: ops.Op, dst: Tensor, *srcs) -> bool:
    """``dst = dst <op> x`` with an associative op: a reduction, legal across affine iterations."""
    return op.name in _ASSOC and any(_same(dst, s) for s in srcs)


def _ints(*ts: Tensor) -> bool:
    return all(t.dtype.kind in "iu" for t in ts)


_I32 = (np.dtype(np.int32), np.dtype(np.uint32))


def _native_int(eng: Engine, *ts: Tensor) -> bool:
    """Whether a tensor_tensor arithmetic operator runs in native integer arithmetic: on
    GpSimd with every input and output tile int32/uint32 ("GpSimd Engine, which uses native
    integer arithmetic. This ensures exact results for all 32-bit integer values", SH
    nki/api/nki/isa/__init__.py tensor_tensor, nki 0.3; S25 general/nki/api/nki.api.shared.rst:
    32-bit integer add and multiply only on GpSIMD). Anywhere else -- VectorE, or other
    integer dtypes -- arithmetic operators convert their inputs to float32 (SH/S25
    nki.api.shared.rst "Supported Math Operators"), so int32 values beyond 2**24 are rounded
    before the operator and the float32 result is rounded back to the integer dtype."""
    return eng is _E_GPSIMD and all(t.dtype in _I32 for t in ts)


def bitvec(op: ops.Op, a, b, width: int) -> np.ndarray:
    """A bitvec operator on int64 bit patterns; ``right_shift`` is a logical shift of the
    ``width``-byte pattern (S25/SH tbl-aluop: logical shift right, arithmetic right shift not
    supported)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if op.name == "right_shift":
        return (a & np.int64((1 << (8 * width)) - 1)) >> b
    return op.fn(a, b)


def _bitvec_ints(api: str, op: ops.Op, *ts: Tensor) -> None:
    """Bitvec operators treat data as bit patterns: every tile must be an integer dtype."""
    for t in ts:
        if t.dtype.kind not in "iu":
            raise SimError(f"{api}: bitvec operator {op.name} needs integer input/output dtypes "
                           "(nki.api.shared tbl-aluop)", dt.name(t.dtype),
                           "use an integer tile (or an arithmetic operator)")


def _apply2(op: ops.Op, a: Tensor, b: Tensor, native: bool = False,
            into: np.dtype | None = None) -> np.ndarray:
    """``a op b``: bitvec operators on the bit patterns; arithmetic in float32, or in exact
    integer arithmetic when ``native`` (:func:`_native_int`). An exact result must fit the
    destination dtype ``into`` (isa.int_dst_range): int32 2**31 - 1 + 1 wrapped to -2**31 in
    NumPy silently (mutants17)."""
    if op.kind == ops.BITVEC or (op.int_exact and native):
        if not _ints(a, b) and op.kind == ops.BITVEC:
            raise SimError(f"{op.name} needs integer inputs", f"{a.dtype} and {b.dtype}")
        if op.kind == ops.BITVEC:
            return bitvec(op, read_raw(a), read_raw(b), a.itemsize)
        r = op.fn(read_raw(a).astype(np.int64), read_raw(b).astype(np.int64))
        if into is not None and into.kind in "iu":
            int_in_range(r, into, f"tensor_tensor {op.name}")
        return r
    return op.fn(read(a), read(b))



def regs_reset(run: state.Run, attr: str, p: int) -> None:
    """Partitions [0, p) of an engine's accumulation registers (``act_regs_set``: ScalarE
    ``reduce_regs``; ``vec_regs_set``: the VectorE accumulators) now hold a defined value."""
    ok = getattr(run, attr)
    if ok is None:
        ok = np.zeros(hw.PMAX, bool)
        setattr(run, attr, ok)
    ok[:p] = True


def regs_defined(run: state.Run, attr: str, p: int, api: str, cmd: str) -> None:
    """Reading an engine's accumulation registers (``reduce_res``, or a cumulative result
    continuing with ``reduce_cmd=reduce``) needs them reset first: the registers change only by
    reset / reduce commands and the docs give no value before the first reset (SH nki/api/nki/
    isa/__init__.py activation pseudo-code and reduce_cmd, select_reduce, range_select,
    tensor_scalar_cumulative, nki 0.3; S25 general/nki/api/nki/isa/__init__.py activation,
    range_select, SDK 2.25), so a kernel whose first accumulation says ``reduce`` or ``idle``
    reads leftovers of earlier instructions or kernels."""
    ok = getattr(run, attr)
    bad = np.arange(p) if ok is None else np.flatnonzero(~ok[:p])
    if bad.size:
        raise SimError(f"{api}: reads the engine's accumulation registers of partitions "
                       f"[{int(bad[0])}, {int(bad[-1]) + 1}) that no instruction reset (their "
                       "value before the first reset is undefined)", f"reduce_cmd={cmd}",
                       "start the accumulation with reduce_cmd=reset_reduce (or a reset)")


_BIAS_CLASSIC = {dt.F32, dt.F16, dt.BF16}


def _activation_rules(api: str, o: ops.Op, reduce_op, reduce_cmd: str, bias, scale,
                      nc: int, direct: str) -> None:
    """Argument rules of a direct ``nisa.activation`` / ``activation_reduce`` call (SH
    nki/api/nki/isa activation docstring, nki 0.3; S25 isa activation docstring and nki.errors
    err_activation_*): the op is in the activation-function table, reduce_op is add, scale is
    float32, bias is float32/float16/bfloat16 (classic; current API: any dtype but tfloat32)."""
    if direct == "classic":
        ops.classic_act_missing(o.name, api)
    if o.name not in ops.ACT_FUNCS:
        raise SimError(f"{api}: op={o.name} is not in the ScalarE activation-function table "
                       "(nki.api.shared tbl-act-func)", o.name,
                       f"use nl.{o.name} (language level, compiled to several instructions) or "
                       "an activation from the table")
    if reduce_op is not None:
        r = ops.resolve(reduce_op, "reduce_op")
        # SH activation: add only; activation_reduce (both APIs): add only on NeuronCore-v2;
        # the classic activation docstring (S25) states no restriction beyond v2
        only_add = (api == "activation" and direct == "nki") or nc < 3
        if only_add and r.name != "add":
            where = "" if nc >= 3 else f" on NeuronCore-v{nc}"
            raise SimError(f"{api}: reduce_op must be nl.add{where}", r.name,
                           "reduce with nl.add, or reduce the output with nisa.tensor_reduce")
        if not only_add:
            ops.reducer(r)
    need_dtype(scale, is_f32, api, "scale", "must be float32 (err_activation_scale_invalid_type)",
               "pass a Python/np.float32 scale or a float32 (P, 1) tile")
    if direct == "classic" and bias is not None and not isinstance(bias, Tensor):
        raise SimError(f"{api}: bias must be a (P, 1) vector in the classic API (a scalar bias "
                       "is a current-API feature)", bias, "memset a (P, 1) float32 tile")
    if direct == "classic" and isinstance(bias, Tensor) and bias.dtype not in _BIAS_CLASSIC:
        raise SimError(f"{api}: bias must be a float32, float16 or bfloat16 vector "
                       "(err_activation_bias_invalid_type)", dt.name(bias.dtype),
                       "copy the bias into a float32 tile first")


def activation(dst: Tensor, op, data: Tensor, bias=None, scale=1.0, reduce_op=None,
               reduce_res: Tensor | None = None, reduce_cmd: str = "idle",
               api: str = "activation", direct: str | None = None) -> None:
    """``dst = op(data * scale + bias)`` on ScalarE with the optional free-axis reduction into
    the engine's registers; ``direct`` ("nki"/"classic") marks a direct nisa call, whose
    argument rules are checked (language-level nl.* calls are several instructions)."""
    run = state.current()
    key = kind = None
    if mode.FAST and dst.__class__ in _VIEWS and data.__class__ in _VIEWS and \
            (bias is None or bias.__class__ in _VIEWS) and \
            (reduce_res is None or reduce_res.__class__ in _VIEWS) and \
            (scale.__class__ in _VIEWS or scale.__class__ is float or scale.__class__ is int):
        key = (api, direct, op, reduce_op, reduce_cmd, run.target.nc_version,
               _desc(dst), _desc(data), _desc(bias), _desc(scale), _desc(reduce_res))
        try:
            got = _ACT_CHECKED.get(key)
        except TypeError:           # an unhashable argument (op, reduce_op, reduce_cmd)
            key = got = None
        if got is not None:
            o, red, kind = got
            b = cast("Tensor | None", bias)
            sv: Tensor | float = scale if isinstance(scale, Tensor) else float(cast(float, scale))
    if kind is None:
        o, b, sv, red = _activation_checks(dst, op, data, bias, scale, reduce_op, reduce_res,
                                           reduce_cmd, api, direct, run)
    p = data.shape[0]
    s = sv
    if run.numerics:
        x = read(data)
        if not (isinstance(s, float) and s == 1.0):
            x = x * operand(s)
        if b is not None:
            x = x + operand(b)
        y = np.asarray(o.fn(x), dtype=np.float32)
        rng = ops.ACT_RANGES.get(o.name)
        if rng is not None and api != "nl.sin":     # nl.sin range-reduces first (SH note)
            y = _poison_out_of_range(run, api, o.name, rng, x, y)
        write(dst, y)
        if red is not None:
            # reduce_cmd: reset zeroes the registers, reduce/reset_reduce add this output's
            # reduction, idle leaves them alone; reduce_res reads them out (SH pseudo-code).
            if run.act_regs is None:
                run.act_regs = np.zeros((hw.PMAX, 1), np.float32)
            if reduce_cmd in ("reset", "reset_reduce"):
                run.act_regs[...] = 0
                regs_reset(run, "act_regs_set", p)
            if reduce_cmd in ("reduce", "reset_reduce"):
                regs = run.act_regs[:p]
                regs[...] = red(np.concatenate([regs, red(y, axis=1)[:, None]], axis=1), axis=1
                                )[:, None]
            if reduce_res is not None:
                regs_defined(run, "act_regs_set", p, api, reduce_cmd)
                write(reduce_res, run.act_regs[:p])
    reads = (data,) + tuple(t for t in (b, s) if isinstance(t, Tensor))
    writes = (dst,) + ((reduce_res,) if reduce_res is not None else ())
    opname = "activation_reduce" if red is not None else "activation"
    if kind is None and key is not None:
        kind = kind_of(_E_SCALAR, opname, reads, writes, p, data.free_size, data.dtype,
                       dst.dtype, attrs=attrs_of(api, (data, dst), op=o.name))
        remember(_ACT_CHECKED, key, (o, red, kind))
    if kind is not None:
        record(run, kind, reads, writes)
        return
    emit(run, _E_SCALAR, opname, reads, writes, p, data.free_size,
         data.dtype, dst.dtype, attrs=attrs_of(api, (data, dst), op=o.name))


# (api, direct, op, reduce_op, reduce_cmd, NeuronCore version, then _desc of dst, data, bias,
# scale and reduce_res) -> (op, reducer, Kind): all that activation's argument and shape checks
# and its trace Kind read, so a key seen before passed them (tile or absent bias, tile or
# Python int/float scale; bounded; fast path only)
_ACT_CHECKED: dict[tuple, tuple] = {}


def _desc(x) -> tuple | type:
    """What the per-shape checks read of an operand: a tile's memory, shape, strides, dtype and
    broadcast flag; of anything else its type (None, a Python int/float scale)."""
    if x.__class__ in _VIEWS:
        t = cast(Tensor, x)
        return (t.alloc.mem._value_, t.shape, t.strides, t.dtype, t.bcast)
    return x.__class__


def _activation_checks(dst: Tensor, op, data: Tensor, bias, scale, reduce_op, reduce_res,
                       reduce_cmd, api: str, direct: str | None, run: state.Run) -> tuple:
    """activation's argument and shape rules; (op, bias, scale, reducer or None)."""
    check_io(api, dst, data)
    o = ops.resolve(op, "op")
    if o.arity != 1:
        raise SimError(f"{api}: op must be an activation function", o.name)
    if direct:
        _activation_rules(api, o, reduce_op, reduce_cmd, bias, scale, run.target.nc_version,
                          direct)
    p = data.shape[0]
    b = None if bias is None else per_partition(bias, p, api, "bias")
    s = per_partition(scale, p, api, "scale")
    if run.target.nc_version < 3 and b is not None:
        if not isinstance(b, Tensor):
            raise SimError(f"{api}: bias must be a ({p}, 1) tile on NeuronCore-v2 "
                           f"({run.target.name}); scalar bias needs NeuronCore-v3", b)
        if o.name == "reciprocal":
            raise SimError(f"{api}: reciprocal takes no bias on NeuronCore-v2 "
                           f"({run.target.name})")
    red = None
    if reduce_op is not None or reduce_cmd != "idle" or reduce_res is not None:
        red = ops.reducer(ops.resolve(reduce_op or "add", "reduce_op"))
        if reduce_res is not None:
            on_chip(reduce_res, api, "reduce_res")
            if reduce_res.shape[0] != p or reduce_res.free_size != 1:
                raise SimError(f"{api}: reduce_res must be ({p}, 1)", list(reduce_res.shape))
    return o, b, s, red


def _poison_out_of_range(run: state.Run, api: str, name: str, rng, x, y) -> np.ndarray:
    """ScalarE functions are only valid on a documented input range: NaN outside it, and a
    located warning (NaN inputs are left alone: they propagate anyway)."""
    lo, hi, sym = rng
    v = np.abs(x) if sym else x
    bad = (v < lo) | (v > hi)
    if not bad.any():
        return y
    y = np.array(y, dtype=np.float32, copy=True)
    y[np.broadcast_to(bad, y.shape)] = np.nan
    span = f"+-[{lo:.3g}, {hi:.3g}]" if sym else f"[{lo:.3g}, {hi:.3g}]"
    warn(run, f"{api}: {name} input outside its valid range {span} "
              f"({int(bad.sum())} elements, e.g. {float(x[bad].flat[0]):.6g}); "
              "the hardware result is invalid, the simulator writes NaN")
    return y


# (api, direct, classic run, op, engine, then mem, shape, strides, dtype of dst, data1, data2
# and dst's broadcast flag) -> (engine, op, Kind): everything tensor_tensor's shape checks, its
# default engine and its trace Kind read, so a key seen before passed them all (bounded; fast
# path only)
_TT_CHECKED: dict[tuple, tuple] = {}


def tensor_tensor(dst: Tensor, data1: Tensor, data2: Tensor, op, engine=None,
                  api: str = "tensor_tensor", direct: str | None = None) -> None:
    run = state.current()
    key = None
    if mode.FAST and dst.__class__ in _VIEWS and data1.__class__ in _VIEWS and \
            data2.__class__ in _VIEWS:
        key = (api, direct, run.classic, op, engine,
               dst.alloc.mem._value_, dst.shape, dst.strides, dst.dtype, dst.bcast,
               data1.alloc.mem._value_, data1.shape, data1.strides, data1.dtype,
               data2.alloc.mem._value_, data2.shape, data2.strides, data2.dtype)
        try:
            got = _TT_CHECKED.get(key)
        except TypeError:           # an unhashable argument (op or engine)
            key = got = None
        if got is not None:
            eng, o, kind = got
            if run.numerics:
                write(dst, _apply2(o, data1, data2, _native_int(eng, data1, data2, dst),
                                   dst.dtype))
            record(run, kind, (data1, data2), (dst,),
                   accum=is_accumulation(o, dst, data1, data2))
            return
    eng, o = _tensor_tensor_checks(dst, data1, data2, op, engine, api, direct)
    if run.numerics:
        write(dst, _apply2(o, data1, data2, _native_int(eng, data1, data2, dst),
                                   dst.dtype))
    attrs = attrs_of(api, (data1, data2, dst), op=o.name)
    if key is not None:
        kind = kind_of(eng, "tensor_tensor", (data1, data2), (dst,), data1.shape[0],
                       data1.free_size, data1.dtype, dst.dtype, n_in=2, attrs=attrs)
        remember(_TT_CHECKED, key, (eng, o, kind))
        record(run, kind, (data1, data2), (dst,), accum=is_accumulation(o, dst, data1, data2))
        return
    emit(run, eng, "tensor_tensor", (data1, data2), (dst,), data1.shape[0], data1.free_size,
         data1.dtype, dst.dtype, n_in=2, accum=is_accumulation(o, dst, data1, data2),
         attrs=attrs)


def _tensor_tensor_checks(dst: Tensor, data1: Tensor, data2: Tensor, op, engine, api: str,
                          direct: str | None) -> tuple[Engine, ops.Op]:
    """tensor_tensor's argument and shape rules (they read only what its memo key holds);
    returns the engine and the resolved operator."""
    check_io(api, dst, data1)
    on_chip(data2, api, "data2")
    same_pn(api, data1, data2, "data1", "data2")
    o = ops.resolve(op, "op")
    if o.arity != 2:
        raise SimError(f"{api}: op must be a binary operator", o.name)
    if data1.alloc.mem is _PSUM and data2.alloc.mem is _PSUM:
        raise SimError(f"{api}: data1 and data2 cannot both be in PSUM",
                       f"{data1!r}, {data2!r}", "copy one of them to SBUF")
    default = _E_GPSIMD if o.name == "power" else _E_VECTOR
    # current API: all-int32/uint32 tiles default to GpSimd (native integer arithmetic),
    # falling back to VectorE when a tile is in PSUM (SH nki/api/nki/isa/__init__.py
    # tensor_tensor, nki 0.3). Classic: a direct nisa.tensor_tensor documents float32 math and
    # no such dispatch (S25 general/nki/api/nki/isa/__init__.py tensor_tensor); the
    # language-level nl.add / nl.multiply of 32-bit integers run on GpSIMD only, subtract, max
    # and min on VectorE only (S25 general/nki/api/nki.api.shared.rst operator table)
    gpsimd_ints = not state.current().classic or (direct is None and
                                                  o.name in ("add", "multiply"))
    if gpsimd_ints and o.kind != ops.BITVEC and \
            all(t.dtype in _I32 and t.alloc.mem is not _PSUM for t in (dst, data1, data2)):
        default = _E_GPSIMD
    eng = engine_of(engine, default, (_E_VECTOR, _E_GPSIMD), api)
    if direct:
        ops.alu(o, api)
        if o.name == "power" and eng is not _E_GPSIMD:
            raise SimError(f"{api}: nl.power runs on the GpSimd engine only (tbl-aluop)",
                           eng.value, "use engine=nisa.gpsimd_engine (or leave it unset)")
        # classic: the operator table's "Supported Engine" column (S25
        # general/nki/api/nki.api.shared.rst tbl-aluop, SDK 2.25) lists GpSIMD for add,
        # multiply, rsqrt and power only; the current API's table has no engine column and its
        # tensor_tensor takes engine=gpsimd for any operator (SH nki/api/nki/isa tensor_tensor)
        if direct == "classic" and eng is _E_GPSIMD and o.name not in ops.ALU_GPSIMD:
            raise SimError(f"{api}: nl.{o.name} is not supported on the GpSimd engine "
                           "(tbl-aluop Supported Engine column: GpSimd runs add, multiply and "
                           "power)", o.name,
                           "use engine=nisa.vector_engine (or leave engine unset)")
    if o.kind == ops.BITVEC:
        _bitvec_ints(api, o, data1, data2, dst)
    if eng is _E_GPSIMD:
        no_psum_gpsimd(api, dst, data1, data2)
    return eng, o


def scalar_op(o: ops.Op | None, x, v, rev: bool, width: int = 4):
    if o is None:
        return x
    if o.arity == 1:
        return o.fn(x)
    if o.kind == ops.BITVEC:
        return bitvec(o, v, x, width) if rev else bitvec(o, x, v, width)
    return o.fn(v, x) if rev else o.fn(x, v)


_SCALAR_ENGINE_PAIRS = {("multiply", "add"), ("multiply", None), ("add", None)}


def _unary_operand(api: str, o: ops.Op, v, role: str) -> None:
    if o.arity == 2 and v is None:
        # rule isa.tensor_scalar.binary_operand: a binary operator's operand is a scalar or a
        # (P, 1) tile (SH nki/api/nki/isa/__init__.py tensor_scalar operand0/operand1, nki 0.3;
        # S25 general/nki/api/nki/isa/__init__.py tensor_scalar): None is no value
        raise SimError(f"{api}: {role} of the binary operator {o.name} must be a scalar or a "
                       "(P, 1) tile", "None", f"pass {role}= the value to {o.name} with")
    if o.arity == 1 and v is not None and not (
            not isinstance(v, Tensor) and isinstance(v, (int, float, np.number)) and v == 0):
        raise SimError(f"{api}: {role} must be None or 0 when the operator is unary ({o.name})",
                       v if not isinstance(v, Tensor) else repr(v), f"pass {role}=None")


def _tensor_scalar_rules(api: str, eng: Engine, nc: int, dst: Tensor, data: Tensor,
                         o0: ops.Op, v0, o1: ops.Op | None, v1) -> None:
    """Argument rules of a direct ``nisa.tensor_scalar`` (SH nki/api/nki/isa tensor_scalar,
    nki 0.3; S25 isa tensor_scalar and nki.api.shared tbl-aluop with its engine column)."""
    ops.alu(o0, api, "op0")
    if o1 is not None:
        ops.alu(o1, api, "op1")
        if ops.is_bitvec(o0) != ops.is_bitvec(o1):
            raise SimError(f"{api}: op0 and op1 must both be bitvec or both be arithmetic "
                           "operators", f"{o0.name}, {o1.name}")
    elif v1 is not None:
        raise SimError(f"{api}: operand1 must be None when op1 is None", v1)
    _unary_operand(api, o0, v0, "operand0")
    if o1 is not None:
        _unary_operand(api, o1, v1, "operand1")
    used = [(o, v, r) for o, v, r in ((o0, v0, "operand0"), (o1, v1, "operand1"))
            if o is not None]
    names = tuple(o.name for o, _, _ in used)
    if ops.is_bitvec(o0):
        if eng is not _E_VECTOR:
            raise SimError(f"{api}: bitvec operators run on the Vector engine only", eng.value,
                           "use engine=nisa.vector_engine")
        _bitvec_ints(api, o0, data, dst)
        for o, v, r in used:
            if o.arity == 2:
                need_dtype(v, is_int, api, r, "must be an integer with a bitvec operator",
                           "pass an int scalar or an integer (P, 1) tile", literals=True)
        return
    for o, v, r in used:
        if o.arity == 2:
            need_dtype(v, is_f32, api, r, "must be float32 with an arithmetic operator",
                       "pass a float32 (P, 1) tile or a Python/np.float32 scalar")
    if eng is _E_GPSIMD and ("rsqrt" not in names or
                                 any(n not in ops.ALU_GPSIMD for n in names)):
        raise SimError(f"{api}: the GpSimd engine is only allowed for rsqrt (with add or "
                       "multiply as the other operator)", names,
                       "use engine=nisa.vector_engine (or leave it unset)")
    if eng is _E_SCALAR:
        if nc >= 3:
            pair = (o0.name, o1.name if o1 else None)
            if pair not in _SCALAR_ENGINE_PAIRS:
                raise SimError(f"{api}: ScalarE on NeuronCore-v{nc} supports only (multiply, "
                               "add), (multiply, None), (add, None)", pair,
                               "use engine=nisa.vector_engine")
        elif any(n not in ops.ALU_SCALAR for n in names):
            raise SimError(f"{api}: ScalarE on NeuronCore-v2 supports only rsqrt, reciprocal "
                           "and abs (add/multiply need NeuronCore-v3)", names,
                           "use engine=nisa.vector_engine")
    if eng is _E_VECTOR and any(n in ops.ALU_NOT_VECTOR for n in names):
        bad = [n for n in names if n in ops.ALU_NOT_VECTOR]
        raise SimError(f"{api}: {bad[0]} does not run on the Vector engine (tbl-aluop)", bad,
                       "rsqrt: engine=nisa.gpsimd_engine or activation(op=nl.rsqrt)")


def tensor_scalar(dst: Tensor, data: Tensor, op0, operand0, reverse0: bool = False, op1=None,
                  operand1=None, reverse1: bool = False, engine=None,
                  api: str = "tensor_scalar", direct: str | None = None) -> None:
    run = state.current()
    check_io(api, dst, data)
    p = data.shape[0]
    o0 = ops.resolve(op0, "op0")
    o1 = None if op1 is None else ops.resolve(op1, "op1")
    default = _E_VECTOR
    if direct and "rsqrt" in (o0.name, o1.name if o1 else ""):
        default = _E_GPSIMD if _PSUM not in (dst.alloc.mem, data.alloc.mem) \
            else _E_SCALAR
    eng = engine_of(engine, default, (_E_VECTOR, _E_SCALAR, _E_GPSIMD), api)
    if direct:
        _tensor_scalar_rules(api, eng, run.target.nc_version, dst, data, o0, operand0, o1,
                             operand1)
    elif o0.kind == ops.BITVEC or (o1 is not None and o1.kind == ops.BITVEC):
        _bitvec_ints(api, o0 if o0.kind == ops.BITVEC else o1, data, dst)  # type: ignore[arg-type]
    v0 = per_partition(0.0 if operand0 is None else operand0, p, api, "operand0")
    v1 = None if o1 is None else per_partition(
        0.0 if operand1 is None else operand1, p, api, "operand1")
    if eng is _E_GPSIMD:
        no_psum_gpsimd(api, dst, data)
    if eng is _E_SCALAR and run.target.nc_version >= 3 and \
            (o0.name, o1.name if o1 else None) not in _SCALAR_ENGINE_PAIRS:
        raise SimError(f"{api}: ScalarE supports only (multiply, add), (multiply, None), "
                       "(add, None)", f"({o0.name}, {o1.name if o1 else None})",
                       "use engine=nisa.vector_engine")
    if run.numerics:
        if o0.kind == ops.BITVEC:
            w = data.itemsize
            x = read_raw(data).astype(np.int64)
            x = scalar_op(o0, x, _int_operand(v0), reverse0, w)
            if o1 is not None and v1 is not None:
                x = scalar_op(o1, x, _int_operand(v1), reverse1, w)
            write(dst, np.asarray(x))
        else:
            x = read(data)
            x = scalar_op(o0, x, operand(v0), reverse0)
            if o1 is not None and v1 is not None:
                x = scalar_op(o1, x, operand(v1), reverse1)
            write(dst, np.asarray(x, dtype=np.float32))
    reads = (data,) + tuple(t for t in (v0, v1) if isinstance(t, Tensor))
    emit(run, eng, "tensor_scalar", reads, (dst,), p, data.free_size, data.dtype, dst.dtype,
         accum=o1 is None and is_accumulation(o0, dst, data),
         attrs=attrs_of(api, (data, dst), op0=o0.name, op1=o1.name if o1 else ""))


def _int_operand(v: Tensor | float):
    if isinstance(v, Tensor):
        return read_raw(v).astype(np.int64)
    return np.int64(int(v))


def _arith_binary(api: str, o: ops.Op, role: str) -> None:
    """An arithmetic binary operator of the ALU table (no bitvec, no unary)."""
    ops.alu(o, api, role)
    if o.kind == ops.BITVEC:
        raise SimError(f"{api}: {role} must be an arithmetic operator (bitvec operators are not "
                       "supported)", o.name)
    if o.arity != 2:
        raise SimError(f"{api}: {role} must be a binary operator", o.name)


def scalar_tensor_tensor(dst: Tensor, data: Tensor, op0, operand0, op1, operand1: Tensor,
                         reverse0: bool = False, reverse1: bool = False,
                         direct: str | None = None) -> None:
    api = "scalar_tensor_tensor"
    run = state.current()
    check_io(api, dst, data)
    on_chip(operand1, api, "operand1")
    same_pn(api, data, operand1, "data", "operand1")
    p = data.shape[0]
    o0, o1 = ops.resolve(op0, "op0"), ops.resolve(op1, "op1")
    if direct:
        _arith_binary(api, o0, "op0")
        _arith_binary(api, o1, "op1")
    v0 = per_partition(operand0, p, api, "operand0")
    if data.alloc.mem is _PSUM and operand1.alloc.mem is _PSUM:
        raise SimError(f"{api}: data and operand1 cannot both be in PSUM")
    if run.numerics:
        x = scalar_op(o0, read(data), operand(v0), reverse0)
        x = scalar_op(o1, x, read(operand1), reverse1)
        write(dst, np.asarray(x, dtype=np.float32))
    reads = (data, operand1) + ((v0,) if isinstance(v0, Tensor) else ())
    kw = {} if operand1.dtype == data.dtype else {"operand1_dtype": operand1.dtype.name}
    emit(run, _E_VECTOR, api, reads, (dst,), p, data.free_size, data.dtype, dst.dtype,
         attrs=attrs_of(api, (data, operand1, dst), op0=o0.name, op1=o1.name, **kw),
         n_in=2)


def axis_list(api: str, axis) -> tuple[int, ...]:
    """The reduction ``axis`` as a tuple of ints: an int or a tuple/list of ints (S25 nl.sum /
    nl.max ... ``axis: int or tuple/list of ints``; SH nki.isa tensor_reduce ``axis``). None, a
    string or a float is an error, not a NumPy default (rule isa.reduce.axis_type)."""
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return (int(axis),)
    if isinstance(axis, (tuple, list, range)) and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis):
        return tuple(int(a) for a in axis)
    raise SimError(f"{api}: axis must be an int or a tuple/list of ints (the free axes to "
                   "reduce)", repr(axis), "e.g. axis=1, or axis=[1, 2] for two free axes")


def reduce_axes(api: str, t: Tensor, axis) -> tuple[int, ...]:
    """Validate reduction axes: free dims only, trailing and contiguous."""
    axes = axis_list(api, axis)
    nd = t.ndim
    axes = tuple(sorted(int(a) + nd if int(a) < 0 else int(a) for a in axes))
    if not axes or axes[0] == 0 or axes != tuple(range(axes[0], nd)):
        raise SimError(f"{api}: reduction axes must be trailing contiguous free dims",
                       f"axis={axis} on shape {list(t.shape)}",
                       f"use axis={list(range(1, nd))[-1]} or a trailing range starting >= 1")
    return axes


def tensor_reduce(dst: Tensor, op, data: Tensor, axis, negate: bool = False,
                  keepdims: bool = False, api: str = "tensor_reduce",
                  direct: str | None = None) -> None:
    run = state.current()
    key = kind = None
    if mode.FAST and dst.__class__ in _VIEWS and data.__class__ in _VIEWS:
        key = (api, direct, op, axis.__class__, axis, negate, _desc(dst), _desc(data))
        try:
            got = _REDUCE_CHECKED.get(key)
        except TypeError:           # an unhashable argument (e.g. a list axis)
            key = got = None
        if got is not None:
            o, red, kept, kind = got
    if kind is None:
        o, red, kept = _tensor_reduce_checks(dst, op, data, axis, negate, api, direct)
    p = data.shape[0]
    if run.numerics:
        if o.kind == ops.BITVEC:
            x = read_raw(data).astype(np.int64)
        else:
            x = data.np().astype(np.float32)
        r = red(x.reshape(p, kept, -1), axis=2)
        if negate:
            r = -r
        write(dst, r)
    if kind is None and key is not None:
        kind = kind_of(_E_VECTOR, "tensor_reduce", (data,), (dst,), p, data.free_size,
                       data.dtype, dst.dtype, attrs=attrs_of(api, (data, dst), op=o.name))
        remember(_REDUCE_CHECKED, key, (o, red, kept, kind))
    if kind is not None:
        record(run, kind, (data,), (dst,))
        return
    emit(run, _E_VECTOR, "tensor_reduce", (data,), (dst,), p, data.free_size, data.dtype,
         dst.dtype, attrs=attrs_of(api, (data, dst), op=o.name))


# (api, direct, op, axis type and value, negate, then _desc of dst and data) -> (op, reducer,
# elements kept per partition, Kind): all tensor_reduce's checks and its trace Kind read
# (bounded; fast path only)
_REDUCE_CHECKED: dict[tuple, tuple] = {}


def _tensor_reduce_checks(dst: Tensor, op, data: Tensor, axis, negate, api: str,
                          direct: str | None) -> tuple:
    """tensor_reduce's argument and shape rules; (op, reducer, elements kept per partition)."""
    on_chip(dst, api, "dst")
    on_chip(data, api, "data")
    writable(dst, api)
    axes = reduce_axes(api, data, axis)
    o = ops.resolve(op, "op")
    if direct:
        ops.alu(o, api)
    red = ops.reducer(o)
    if o.kind == ops.BITVEC:
        _bitvec_ints(api, o, data, dst)
        if negate:
            raise SimError(f"{api}: negate applies only to arithmetic reduction operators",
                           o.name, "negate the result with a separate instruction")
    p = data.shape[0]
    kept = 1
    for i in range(1, axes[0]):
        kept *= data.shape[i]
    if dst.shape[0] != p or dst.free_size != kept:
        raise SimError(f"{api}: dst must have {p} partitions and {kept} elements per partition",
                       list(dst.shape))
    return o, red, kept


def reciprocal(dst: Tensor, data: Tensor) -> None:
    api = "reciprocal"
    run = state.current()
    check_io(api, dst, data)
    if run.numerics:
        write(dst, np.float32(1.0) / read(data))
    emit(run, _E_VECTOR, api, (data,), (dst,), data.shape[0], data.free_size, data.dtype,
         dst.dtype)


def affine_select(dst: Tensor, pattern, channel_multiplier: int, on_true_tile: Tensor,
                  on_false_value, cmp_op="equal", offset: int = 0,
                  direct: str | None = None) -> None:
    api = "affine_select"
    run = state.current()
    if direct:
        need_dtype(on_false_value, is_f32, api, "on_false_value", "must be float32",
                   "pass a Python or np.float32 number")
    in_sbuf(dst, api, "dst", " (GpSimd)")
    in_sbuf(on_true_tile, api, "on_true_tile", " (GpSimd)")
    writable(dst, api)
    same_pn(api, dst, on_true_tile, "dst", "on_true_tile")
    o = ops.resolve(cmp_op, "cmp_op")
    if not isinstance(on_false_value, (int, float, np.integer, np.floating)) or \
            isinstance(on_false_value, bool):
        raise SimError(f"{api}: on_false_value must be a number", type(on_false_value).__name__,
                       "pass a float such as -3.4028235e38 (nl.fp32.min)")
    vals = _affine(pattern, dst.shape[0], dst.free_size, as_int(offset, f"{api}: offset"),
                   channel_multiplier, api)
    if vals is not None:
        pred = o.fn(vals, np.int64(0)) != 0
        write(dst, np.where(pred, read(on_true_tile), np.float32(on_false_value)))
    emit(run, _E_GPSIMD, api, (on_true_tile,), (dst,), dst.shape[0], dst.free_size,
         on_true_tile.dtype, dst.dtype)


def tensor_tensor_scan(dst: Tensor, data0: Tensor, data1: Tensor, initial, op0, op1,
                       reverse0: bool = False, reverse1: bool = False,
                       direct: str | None = None) -> None:
    api = "tensor_tensor_scan"
    run = state.current()
    p, init = check_pair(api, dst, data0, data1, ("data0", "data1", "initial"), initial)
    o0, o1 = ops.resolve(op0, "op0"), ops.resolve(op1, "op1")
    if direct:
        _arith_binary(api, o0, "op0")
        _arith_binary(api, o1, "op1")
        if not isinstance(initial, Tensor):
            need_dtype(initial, is_f32, api, "initial", "must be a float32 scalar or a tile",
                       "pass a Python or np.float32 number")
    if run.numerics:
        d0, d1 = read(data0), read(data1)
        out = np.empty_like(d0)
        prev = operand(init)
        prev = np.broadcast_to(prev, (p, 1))[:, 0] if np.ndim(prev) else \
            np.full((p,), prev, np.float32)
        f0, f1 = o0.fn, o1.fn
        for i in range(d0.shape[1]):
            t = f0(prev, d0[:, i]) if reverse0 else f0(d0[:, i], prev)
            prev = f1(d1[:, i], t) if reverse1 else f1(t, d1[:, i])
            out[:, i] = prev
        write(dst, out)
    reads = (data0, data1) + ((init,) if isinstance(init, Tensor) else ())
    emit(run, _E_VECTOR, api, reads, (dst,), p, data0.free_size, data0.dtype, dst.dtype,
         n_in=2)


def bn_stats(dst: Tensor, data: Tensor) -> None:
    api = "bn_stats"
    run = state.current()
    on_chip(dst, api, "dst")
    on_chip(data, api, "data")
    writable(dst, api)
    p, n = data.shape[0], data.free_size
    if n > hw.BN_STATS_FMAX:
        raise SimError(f"{api}: free size exceeds bn_stats_fmax={hw.BN_STATS_FMAX}", n,
                       "call bn_stats per 512-element chunk and combine with bn_aggr")
    if dst.shape[0] != p or dst.free_size != 6:
        raise SimError(f"{api}: dst must be ({p}, 6)", list(dst.shape))
    if run.numerics:
        x = read(data)
        out = np.zeros((p, 6), np.float32)
        for j, part in enumerate((x[:, 0::2], x[:, 1::2])):
            c = part.shape[1]
            if c:
                mean = part.mean(axis=1, dtype=np.float32)
                out[:, 3 * j] = c
                out[:, 3 * j + 1] = mean
                out[:, 3 * j + 2] = np.square(part - mean[:, None]).sum(axis=1)
        write(dst, out)
    emit(run, _E_VECTOR, api, (data,), (dst,), p, n, data.dtype, dst.dtype)


def bn_aggr(dst: Tensor, data: Tensor) -> None:
    api = "bn_aggr"
    run = state.current()
    on_chip(dst, api, "dst")
    on_chip(data, api, "data")
    writable(dst, api)
    p, n = data.shape[0], data.free_size
    if n % 3:
        raise SimError(f"{api}: data elements per partition must be a multiple of 3", n)
    if dst.shape[0] != p or dst.free_size != 2:
        raise SimError(f"{api}: dst must be ({p}, 2)", list(dst.shape))
    if run.numerics:
        x = read(data).reshape(p, -1, 3)
        c, m, m2 = x[:, :, 0], x[:, :, 1], x[:, :, 2]
        tot = c.sum(axis=1)
        with np.errstate(all="ignore"):
            mean = (c * m).sum(axis=1) / tot
            var = (m2.sum(axis=1) + (c * np.square(m - mean[:, None])).sum(axis=1)) / tot
        write(dst, np.stack([mean, var], axis=1))
    emit(run, _E_VECTOR, api, (data,), (dst,), p, n, data.dtype, dst.dtype)
