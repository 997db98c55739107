"""Core of the ``nl.*`` tile-returning functions: load/store, element-wise ops, reductions,
matmul, copy, transpose, broadcast, ``t[...] = value`` and the tensor operator overloads.

Stage: simulate (core). Each function allocates its result tile (SBUF unless stated) and lowers
to one or more core ISA instructions, so the trace shows what the hardware would execute.
Element-wise ops broadcast size-1 *free* dims NumPy-style; partition dims must match (use
``broadcast_to`` to broadcast across partitions, as on hardware).
"""

from __future__ import annotations

import math

import numpy as np

from nkigen.hw import Engine
from nkigen.sim import dt, isa_compute, isa_move, ops, state
from nkigen.sim.emit import emit, on_chip, read, write
from nkigen.sim.errors import SimError, as_int
from nkigen.sim.tensor import PSUM, SBUF, Buffer, Tensor, new_tensor
from nkigen.sim.trace import Mem

# Enum members as module constants: a class attribute lookup on an Enum goes through
# EnumType.__getattr__'s slow path on Python 3.11 (hot per-instruction code).
_HBM = Mem.HBM
_SBUF = Mem.SBUF
_E_TENSOR = Engine.TENSOR
_E_VECTOR = Engine.VECTOR
_E_SCALAR = Engine.SCALAR

_SCALARS = (int, float, bool, np.integer, np.floating, np.bool_)


def _out(shape, dtype, buffer: Buffer | None = None) -> Tensor:
    return new_tensor(tuple(shape), dtype, buffer or SBUF, fill=False)


def load(src: Tensor, dtype=None) -> Tensor:
    if not isinstance(src, Tensor) or src.alloc.mem is not _HBM:
        raise SimError("nl.load: source must be an HBM tensor",
                       repr(src), "nl.load copies HBM -> SBUF; use nisa.tensor_copy on chip")
    shape = src.shape
    if len(shape) < 2:
        raise SimError("nl.load: a tile needs rank >= 2", list(shape),
                       "reshape the HBM tensor to (P, F) first")
    t = _out(shape, src.dtype if dtype is None else dtype)
    isa_move.dma_copy(t, src, api="nl.load", op="dma_copy")
    return t


def store(dst: Tensor, value: Tensor) -> None:
    if not isinstance(dst, Tensor) or dst.alloc.mem is not _HBM:
        raise SimError("nl.store: destination must be an HBM tensor", repr(dst))
    if not isinstance(value, Tensor) or value.alloc.mem is not _SBUF:
        raise SimError("nl.store: value must be an SBUF tile", repr(value),
                       "copy PSUM results to SBUF first (nl.copy / nisa.tensor_copy)")
    if dst.size != value.size:
        raise SimError("nl.store: dst and value shapes differ",
                       f"{list(dst.shape)} vs {list(value.shape)}")
    isa_move.dma_copy(dst, value, api="nl.store", op="dma_copy")


def _free_bcast_shape(api: str, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    p = {s[0] for s in shapes}
    if len(p) > 1:
        raise SimError(f"{api}: partition dims differ", " vs ".join(str(list(s)) for s in shapes),
                       "use nl.broadcast_to(..., shape) to broadcast across partitions")
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise SimError(f"{api}: shapes do not broadcast",
                       " vs ".join(str(list(s)) for s in shapes)) from None


def _bcast_view(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A stride-0 view of ``t`` broadcast along free dims to ``shape`` (read-only)."""
    if t.shape == shape:
        return t
    pad = len(shape) - t.ndim
    if pad < 0:
        raise SimError("cannot broadcast to fewer dims", f"{list(t.shape)} -> {list(shape)}")
    tshape = (t.shape[0],) + (1,) * pad + t.shape[1:]
    tstr = (t.strides[0],) + (0,) * pad + t.strides[1:]
    strides = tuple(0 if (n == 1 and m != 1) else s for n, m, s in zip(tshape, shape, tstr))
    return Tensor(t.alloc, t.offset, shape, strides, bcast=True)


def elementwise(name: str, *args, dtype=None) -> Tensor:
    """``nl.<name>(x[, y], dtype=)``: unary ops on ScalarE (activation) or VectorE; binary
    tile-tile ops on VectorE (tensor_tensor), tile-scalar ops via tensor_scalar."""
    o = ops.REGISTRY[name]
    api = f"nl.{name}"
    if len(args) != o.arity:
        raise SimError(f"{api} takes {o.arity} operand(s)", len(args))
    tiles = [a for a in args if isinstance(a, Tensor)]
    if not tiles:
        raise SimError(f"{api}: needs at least one tile operand", args)
    for a in args:
        if isinstance(a, Tensor):
            on_chip(a, api, "operand")
        elif not isinstance(a, _SCALARS):
            raise SimError(f"{api}: operands must be tiles or scalars", type(a).__name__)
    if dtype is not None:
        out_dt = dt.as_dtype(dtype)
    elif not state.current().classic and (o.kind == ops.COMPARE or o.name == "logical_not"):
        # current API: a comparison (and logical_not) "defaults to the input tile dtype"
        # (1 where true, 0 elsewhere; "use dtype=nl.uint8 for a boolean-like result"): SH
        # nki/api/nki/language/__init__.py equal ... greater_equal, logical_not (nki 0.3);
        # two tiles of different dtypes give the promoted one
        out_dt = tiles[0].dtype
        for t in tiles[1:]:
            out_dt = dt.promote(out_dt, t.dtype)
    elif o.kind in (ops.COMPARE, ops.LOGICAL):
        # classic: dtype=bool (stored as uint8) by signature (S25 general/nki/api/nki/
        # language/__init__.py equal ... logical_not, SDK 2.25); current logical_and/or/xor
        # state no default (SH), uint8 is kept for them
        out_dt = dt.U8
    else:
        out_dt = args[0].dtype if isinstance(args[0], Tensor) else dt.scalar_dtype(args[0])
        for a in args[1:]:
            out_dt = dt.promote(out_dt, a.dtype if isinstance(a, Tensor)
                                else dt.scalar_dtype(a))
    if o.arity == 1:
        (x,) = tiles
        out = _out(x.shape, out_dt)
        if o.engine is _E_SCALAR or o.name in ("copy", "identity"):
            isa_compute.activation(out, o, x, api=api)
        else:
            isa_compute.tensor_scalar(out, x, o, None, api=api)
        return out
    a, b = args
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        shape = _free_bcast_shape(api, [a.shape, b.shape])
        out = _out(shape, out_dt)
        if a.free_size == 1 and a.shape != shape:       # (P,1) operand -> tensor_scalar
            isa_compute.tensor_scalar(out, _full(b, shape), o, a, reverse0=True, api=api)
        elif b.free_size == 1 and b.shape != shape:
            isa_compute.tensor_scalar(out, _full(a, shape), o, b, api=api)
        else:
            isa_compute.tensor_tensor(out, _bcast_view(a, shape), _bcast_view(b, shape), o,
                                      api=api)
        return out
    t, s, rev = (a, b, False) if isinstance(a, Tensor) else (b, a, True)
    out = _out(t.shape, out_dt)
    isa_compute.tensor_scalar(out, t, o, s, reverse0=rev, api=api)
    return out


def _full(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    if t.shape == shape:
        return t
    if t.free_size != math.prod(shape[1:]):
        return _bcast_view(t, shape)
    return t


def reduce(name: str, x: Tensor, axis, dtype=None, keepdims: bool = False) -> Tensor:
    """``nl.sum/max/min/mean/prod`` along trailing free axes (VectorE tensor_reduce).
    Without keepdims the result of a full free reduction is a (P, 1) tile (section 10.3)."""
    api = f"nl.{name}"
    on_chip(x, api, "x")
    axes = isa_compute.reduce_axes(api, x, axis)
    kept = x.shape[:axes[0]]
    shape = kept + (1,) * len(axes) if keepdims else kept
    if len(shape) == 1:
        shape = shape + (1,)
    op = {"sum": "add", "mean": "add", "max": "maximum", "min": "minimum",
          "prod": "multiply", "all": "logical_and", "any": "logical_or"}[name]
    # nl.mean of an integer tile: float32 result in the classic API ("float32 intermediate and
    # return values are used for integer inputs": S25 general/nki/api/nki/language/__init__.py
    # mean, SDK 2.25); the input tile's dtype in the current one (float32 intermediates only:
    # SH nki/api/nki/language/__init__.py mean, nki 0.3)
    out_dt = dt.as_dtype(dtype) if dtype is not None else (
        dt.F32 if name == "mean" and dt.is_int(x.dtype) and state.current().classic
        else x.dtype)
    out = _out(shape, out_dt)
    if name == "mean":
        n = math.prod(x.shape[a] for a in axes)
        tmp = _out(shape, dt.F32)
        isa_compute.tensor_reduce(tmp, op, x, axes, api=api)
        isa_compute.tensor_scalar(out, tmp, "multiply", 1.0 / n, api=api)
    else:
        isa_compute.tensor_reduce(out, op, x, axes, api=api)
    return out


def copy(x: Tensor, dtype=None) -> Tensor:
    on_chip(x, "nl.copy", "x")
    out = _out(x.shape, x.dtype if dtype is None else dtype)
    isa_move.tensor_copy(out, x, api="nl.copy")
    return out


def transpose(x: Tensor, dtype=None) -> Tensor:
    """2-D partition<->free transpose on TensorE (result in PSUM)."""
    on_chip(x, "nl.transpose", "x")
    if x.ndim != 2:
        raise SimError("nl.transpose: rank must be 2", list(x.shape))
    src = x
    if x.alloc.mem is not _SBUF:
        src = copy(x)
    out = _out((x.shape[1], x.shape[0]), x.dtype if dtype is None else dtype, PSUM)
    isa_move.nc_transpose(out, src)
    return out


def matmul(x: Tensor, y: Tensor, transpose_x: bool = False) -> Tensor:
    """``x @ y`` into a new fp32 PSUM tile; without transpose_x, x is transposed on TensorE
    first (an extra nc_transpose + copy, as the compiler would do). Operands in PSUM are copied
    to SBUF first, as the compiler does (the public attention tutorial's attn_fwd_v1 passes
    nl.transpose's PSUM result)."""
    for t, r in ((x, "x"), (y, "y")):
        on_chip(t, "nl.matmul", r)
    if not transpose_x:
        xt = transpose(x)
        x = copy(xt, dtype=x.dtype)
    elif x.alloc.mem is not _SBUF:       # TensorE reads SBUF: the compiler copies first
        x = copy(x)
    if y.alloc.mem is not _SBUF:
        y = copy(y)
    x, y = pair_fp32(x, y)
    out = _out((x.free_size, y.free_size), dt.F32, PSUM)
    isa_move.nc_matmul(out, x, y, accumulate=False, api="nl.matmul")
    return out


def pair_fp32(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """TensorE pairs fp32 only with fp32: for the high-level nl.matmul the other operand is
    cast up first (one copy), as the compiler does for mixed operands."""
    if (x.dtype == dt.F32) != (y.dtype == dt.F32):
        if x.dtype != dt.F32:
            x = copy(x, dtype=dt.F32)
        else:
            y = copy(y, dtype=dt.F32)
    return x, y


def broadcast_to(x: Tensor, shape) -> Tensor:
    """Free-dim broadcast is a stride-0 view; partition broadcast (1 -> P) is a TensorE
    ones-matmul on hardware and is recorded as one TensorE instruction making a new tile."""
    if not isinstance(shape, (tuple, list)):
        raise SimError("broadcast_to: shape is a tuple of dims", repr(shape), "e.g. (P, F)")
    shape = tuple(as_int(s, "broadcast_to: a shape dim") for s in shape)
    on_chip(x, "broadcast_to", "x")
    if len(shape) != x.ndim:
        raise SimError("broadcast_to: rank must match", f"{list(x.shape)} -> {list(shape)}")
    for n, m in zip(x.shape, shape):
        if n != m and n != 1:
            raise SimError("broadcast_to: only size-1 dims broadcast",
                           f"{list(x.shape)} -> {list(shape)}")
    if x.shape[0] == shape[0]:
        return _bcast_view(x, shape)
    run = state.current()
    out = _out(shape, x.dtype)
    if run.numerics:
        write(out, np.broadcast_to(x.np(), shape))
    emit(run, _E_TENSOR, "broadcast_to", (x,), (out,), x.shape[0], x.free_size, x.dtype,
         x.dtype, stationary_free=shape[0], moving_free=out.free_size)
    return out


def load_transpose2d(src: Tensor, dtype=None) -> Tensor:
    """HBM [P, F] -> new SBUF tile [F, P] with a DMA transpose."""
    if not isinstance(src, Tensor) or src.alloc.mem is not _HBM or src.ndim != 2:
        raise SimError("nl.load_transpose2d: source must be a 2-D HBM tensor", repr(src))
    t = _out((src.shape[1], src.shape[0]), src.dtype)
    isa_move.dma_transpose(t, src)
    if dtype is not None and dt.as_dtype(dtype) != src.dtype:
        return copy(t, dtype)
    return t


def where(cond: Tensor, x, y, dtype=None) -> Tensor:
    """``nl.where``: one VectorE select instruction (x, y tiles or scalars)."""
    api = "nl.where"
    on_chip(cond, api, "condition")
    tiles = [t for t in (x, y) if isinstance(t, Tensor)]
    for t in tiles:
        on_chip(t, api, "operand")
    shape = _free_bcast_shape(api, [cond.shape] + [t.shape for t in tiles])
    if dtype is None:
        ds = [t.dtype if isinstance(t, Tensor) else dt.scalar_dtype(t) for t in (x, y)]
        dtype = dt.promote(ds[0], ds[1])
    out = _out(shape, dtype)
    run = state.current()
    if run.numerics:
        def val(v):
            return read(_bcast_view(v, shape)) if isinstance(v, Tensor) else np.float32(v)
        write(out, np.where(read(_bcast_view(cond, shape)) != 0, val(x), val(y)))
    emit(run, _E_VECTOR, "select", (cond, *tiles), (out,), shape[0], out.free_size,
         cond.dtype, out.dtype, n_in=1 + len(tiles))
    return out


def identity(n: int, dtype, dst: Tensor | None = None) -> Tensor:
    """``nl.shared_identity_matrix``: an [n, n] identity *in SBUF* (public kernels feed it to
    nc_matmul directly); materialised by one DMA from an HBM constant, as a compiler would
    (into ``dst`` when given: the current API's ``dst=``)."""
    n = as_int(n, "nl.shared_identity_matrix: n")
    src = constant(np.eye(n), dtype)
    t = _out((n, n), src.dtype) if dst is None else dst
    isa_move.dma_copy(t, src, api="nl.shared_identity_matrix")
    return t


def constant(value, dtype=None) -> Tensor:
    """``nl.shared_constant``: a constant HBM tensor."""
    from nkigen.sim.tensor import HBM, Alloc, _row_major
    arr = np.asarray(value)
    d = dt.as_dtype(dtype if dtype is not None else (arr.dtype if arr.dtype != np.float64
                                                     else dt.F32))
    run = state.current()
    shape = tuple(int(s) for s in arr.shape)
    data = arr.astype(d).reshape(-1) if run.numerics else None
    alloc = Alloc(run, shape, d, HBM, "constant", data=data, fill=False)
    return Tensor(alloc, 0, shape, _row_major(shape))


def fill(t: Tensor, value, hint: str, whole: Tensor | None = None) -> None:
    """``nl.zeros/ones/full``: one memset of the new tile ``t`` (``whole``: the same elements as
    a core tile, when ``t`` is an API layer's view of them). Refused in HBM, ``hint`` saying
    what to do instead."""
    if t.alloc.mem is _HBM:
        raise SimError("nl.zeros/ones/full in HBM are not supported on hardware", repr(t), hint)
    isa_move.memset(t if whole is None else whole, value, api="nl.full")


def assign(dst: Tensor, value) -> None:
    """``t[...] = value``: a tile copy (tensor_copy / DMA) or a memset for scalars. The
    destination may not be smaller than the value: only size-1 dims of the value broadcast
    (S25 nki.errors err_store_dst_shape_smaller_than_other_shape)."""
    if isinstance(value, Tensor):
        _check_assign_shapes(dst, value)
        if dst.alloc.mem is _HBM or value.alloc.mem is _HBM:
            isa_move.dma_copy(dst, value)
        elif value.shape != dst.shape and value.free_size != dst.free_size:
            isa_move.tensor_copy(dst, _bcast_view(value, dst.shape))
        else:
            isa_move.tensor_copy(dst, value)
    elif isinstance(value, _SCALARS):
        isa_move.memset(dst, value)
    else:
        raise SimError("tensor assignment needs a tile or a scalar", type(value).__name__)


def _check_assign_shapes(dst: Tensor, value: Tensor) -> None:
    if value.shape == dst.shape or (value.size == dst.size and value.partitions == dst.partitions):
        return
    vs, ds = value.shape, dst.shape
    ok = len(vs) <= len(ds) and all(v in (1, d) for v, d in zip(reversed(vs), reversed(ds)))
    if not ok:
        raise SimError("assignment destination is smaller than the value "
                       "(err_store_dst_shape_smaller_than_other_shape)",
                       f"dst {list(ds)} <- value {list(vs)}",
                       "assign into a destination of the value's shape; only size-1 dims of "
                       "the value broadcast")


def inplace(name: str, dst: Tensor, value) -> Tensor:
    """``t += v`` and friends: dst = dst <op> v on VectorE, in place."""
    o = ops.REGISTRY[name]
    on_chip(dst, f"{name}=", "target")
    if isinstance(value, Tensor):
        isa_compute.tensor_tensor(dst, dst, _bcast_view(value, dst.shape)
                                  if value.shape != dst.shape else value, o)
    else:
        isa_compute.tensor_scalar(dst, dst, o, value)
    return dst


def _install_operators() -> None:
    table = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
             "pow": "power", "mod": "mod", "and": "bitwise_and", "or": "bitwise_or",
             "xor": "bitwise_xor", "lshift": "left_shift", "rshift": "right_shift",
             "lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal"}
    for dunder, name in table.items():
        def fwd(self, other, _n=name):
            return elementwise(_n, self, other)

        def rev(self, other, _n=name):
            return elementwise(_n, other, self)

        def inp(self, other, _n=name):
            return inplace(_n, self, other)

        setattr(Tensor, f"__{dunder}__", fwd)
        if dunder not in ("lt", "le", "gt", "ge"):
            setattr(Tensor, f"__r{dunder}__", rev)
            setattr(Tensor, f"__i{dunder}__", inp)
    setattr(Tensor, "__neg__", lambda self: elementwise("negative", self))  # noqa: B010
    setattr(Tensor, "__abs__", lambda self: elementwise("abs", self))  # noqa: B010


_install_operators()
