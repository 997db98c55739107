"""Instruction plumbing shared by every simulated ISA call: checks, fp32 reads, rounded writes,
and one trace record per instruction.

Stage: simulate (core). Reads return float32 arrays shaped ``(P, N)`` (engine math is fp32);
writes round through the destination's storage dtype (ml_dtypes for bf16/fp8). ``emit`` appends
one :class:`nkigen.sim.trace.Instr` with the regions read and written and the issuing line.
"""

from __future__ import annotations

import sys
from types import FrameType

import numpy as np

from nkigen import hw
from nkigen.hw import Engine
from nkigen.sim import deps, dt, mode, rules, state
from nkigen.sim.errors import _SIM_DIR, SimError, kernel_loc
from nkigen.sim.tensor import Tensor
from nkigen.sim.trace import Instr, Kind, Mem, _attr_key

# Enum members as module constants: a class attribute lookup on an Enum goes through
# EnumType.__getattr__'s slow path on Python 3.11 (hot per-instruction code).
_HBM = Mem.HBM
_SBUF = Mem.SBUF

F32 = dt.F32
_BF16 = dt.BF16
_U16 = np.dtype(np.uint16)
_U32 = np.dtype(np.uint32)
name = dt.name
_PSUM = Mem.PSUM
_DMA = Engine.DMA
# id(code object) -> (the code object, defined in nkigen/sim: skipped when locating the caller).
# Keyed by id: hashing a code object hashes its constants, every time (a generated kernel's
# stage function: ~0.4 us, twice per instruction); the entry holds the code object, so its id
# cannot be reused while the entry exists, and the identity check makes a stale entry harmless.
_IN_SIM: dict[int, tuple] = {}


MEMO_LIMIT = 4096   # entries per fast-path memo table before it is emptied


def remember(table: dict, key, value):
    """Store ``value`` under ``key`` in one of the fast path's memo tables (per-shape check
    results, trace Kinds, code objects) and return it. Bounded: a full table is emptied first
    (kernels loaded again bring new code objects and shapes)."""
    if len(table) >= MEMO_LIMIT:
        table.clear()
    table[key] = value
    return value


def _caller() -> FrameType | None:
    """The innermost frame outside nkigen/sim: the kernel line issuing the instruction."""
    f: FrameType | None = sys._getframe(2)
    in_sim = _IN_SIM
    while f is not None:
        code = f.f_code
        e = in_sim.get(id(code))
        if e is None or e[0] is not code:
            e = remember(in_sim, id(code), (code, code.co_filename.startswith(_SIM_DIR)))
        if not e[1]:
            break
        f = f.f_back
    return f


def emit(run: state.Run, engine: Engine, op: str, reads: tuple, writes: tuple,
         partitions: int, free: int, dtype: np.dtype, out_dtype: np.dtype,
         n_in: int = 1, accum: bool = False, **kw) -> Instr | None:
    """Record one instruction (reads/writes are tensors) on the run's trace. ``accum`` marks
    an accumulation (allowed across affine_range iterations, see ``deps``). The reference path
    returns the :class:`Instr` it appends; the fast path appends a compact entry (see
    nkigen.sim.trace) and returns None (read ``run.instrs[-1]`` for the record)."""
    rules.check(run, engine, op, reads, writes)
    if run.affine:
        deps.check(run, reads, writes, accum)
    f = _caller()
    in_psum = 0
    rr = []
    if not mode.FAST:                   # reference path: one full record per instruction
        for t in reads:
            if t is not None:
                r = t._region
                rr.append(r if r is not None else t.region())
                if t.alloc.mem is _PSUM:
                    in_psum += 1
        ins = Instr(engine, op, f.f_lineno if f is not None else 0, tuple(rr),
                    tuple([t._region or t.region() for t in writes]), partitions, free,
                    name(dtype), name(out_dtype), n_in, in_psum,
                    file=f.f_code.co_filename if f is not None else "",
                    loops=run.loops, program=run.program, **kw)
        run.instrs.append(ins)
        return ins
    # compact record: the instruction's Kind (interned per distinct shape) + where it lies
    rm = []
    for t in reads:
        if t is not None:
            r = t._region
            if r is None:
                r = t.region()
            rr.append(r)
            m = r.mem
            rm.append(m._value_)        # (strings: an Enum member hashes in Python code)
            if m is _PSUM:
                in_psum += 1
    wr = []
    wm = []
    for t in writes:
        r = t._region
        if r is None:
            r = t.region()
        wr.append(r)
        wm.append(r.mem._value_)
    rmems, wmems = tuple(rm), tuple(wm)
    trace = run.instrs
    key: tuple
    if kw:
        attrs = kw.get("attrs")
        kv = tuple(kw.values()) if attrs is None else \
            tuple([v if k != "attrs" else _attr_key(v) for k, v in kw.items()])
        key = (engine._value_, op, partitions, free, dtype, out_dtype, n_in, in_psum, rmems,
               wmems, tuple(kw), kv)
    else:
        key = (engine._value_, op, partitions, free, dtype, out_dtype, n_in, in_psum, rmems,
               wmems)
    try:
        kind = trace.kinds.get(key)
    except TypeError:                   # an unhashable attribute: a Kind of its own
        kind = Kind(engine, op, partitions, free, name(dtype), name(out_dtype), n_in, in_psum,
                    _mems(rmems), _mems(wmems), kw)
    if kind is None:
        kind = trace.kinds[key] = Kind(engine, op, partitions, free, name(dtype),
                                       name(out_dtype), n_in, in_psum, _mems(rmems),
                                       _mems(wmems), kw)
    if f is None:
        trace.entries.append((kind, 0, tuple(rr), tuple(wr), "", run.loops, run.program))
    else:
        trace.entries.append((kind, f.f_lineno, tuple(rr), tuple(wr), f.f_code.co_filename,
                              run.loops, run.program))
    return None


def kind_of(engine: Engine, op: str, reads: tuple, writes: tuple, partitions: int, free: int,
            dtype: np.dtype, out_dtype: np.dtype, n_in: int = 1, **kw) -> Kind:
    """The :class:`Kind` ``emit`` would record for these arguments (for an ISA call's per-shape
    memo: the same shapes, memories and dtypes give the same Kind wherever the operands lie)."""
    rm = tuple([t.alloc.mem for t in reads if t is not None])
    wm = tuple([t.alloc.mem for t in writes])
    return Kind(engine, op, partitions, free, name(dtype), name(out_dtype), n_in,
                sum(1 for m in rm if m is _PSUM), rm, wm, kw)


def record(run: state.Run, kind: Kind, reads: tuple, writes: tuple,
           accum: bool = False) -> None:
    """Fast path of :func:`emit` for an instruction whose Kind the caller memoised per operand
    shape (its shape checks passed before): the per-instance checks (start partition, classic
    scope, affine-loop dependencies) still run, then one compact entry is appended. Only when
    ``mode.FAST``; the reference path calls :func:`emit`."""
    if run.classic:
        rules.check(run, kind.engine, kind.op, reads, writes)
    elif kind.engine is not _DMA:
        # the start-partition rule can only fail for a view starting past partition 0 of its
        # allocation (or a direct allocation): otherwise rules.check has nothing to say
        for t in reads:
            if t is not None:
                a = t.alloc
                if t.offset >= a.pstride or a.phys is not None:
                    rules.check(run, kind.engine, kind.op, reads, writes)
                    break
        else:
            for t in writes:
                a = t.alloc
                if t.offset >= a.pstride or a.phys is not None:
                    rules.check(run, kind.engine, kind.op, reads, writes)
                    break
    if run.affine:
        deps.check(run, reads, writes, accum)
    f: FrameType | None = sys._getframe(2)     # (record's caller is an ISA function)
    in_sim = _IN_SIM
    while f is not None:                # the kernel line (as _caller)
        code = f.f_code
        e = in_sim.get(id(code))
        if e is None or e[0] is not code:
            e = remember(in_sim, id(code), (code, code.co_filename.startswith(_SIM_DIR)))
        if not e[1]:
            break
        f = f.f_back
    if len(reads) == 1 and reads[0] is not None:
        t = reads[0]
        rr: tuple = (t._region or t.region(),)
    else:
        rr = tuple([t._region or t.region() for t in reads if t is not None])
    if len(writes) == 1:
        t = writes[0]
        wr: tuple = (t._region or t.region(),)
    else:
        wr = tuple([t._region or t.region() for t in writes])
    if f is None:
        run.instrs.entries.append((kind, 0, rr, wr, "", run.loops, run.program))
    else:
        run.instrs.entries.append((kind, f.f_lineno, rr, wr, f.f_code.co_filename,
                                   run.loops, run.program))


def _mems(values: tuple) -> tuple:
    return tuple(Mem(v) for v in values)


def warn(run: state.Run, msg: str) -> None:
    """Record a located warning on the run (shown by the CLI; in ``Result.warnings``)."""
    loc = kernel_loc()
    text = f"{loc}: warning: {msg}" if loc is not None else f"warning: {msg}"
    if text not in run.warnings:
        run.warnings.append(text)


# ---- checks -----------------------------------------------------------------------------
def tensor(x: object, api: str, role: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise SimError(f"{api}: {role} must be a tensor", type(x).__name__)
    return x


def on_chip(x: object, api: str, role: str) -> Tensor:
    """An engine operand: on chip, at most 4 free access-pattern dims, free size within the
    engine limit (64K elements from SBUF, 4K from PSUM)."""
    t = tensor(x, api, role)
    mem = t.alloc.mem
    if mem is _HBM:
        raise SimError(f"{api}: {role} must be in SBUF or PSUM, not HBM",
                       repr(t), "load it into SBUF first (nl.load / nisa.dma_copy)")
    if len(t.shape) > 1 + hw.MAX_AP_FREE_DIMS and \
            _ap_dims(t.shape[1:], t.strides[1:]) > hw.MAX_AP_FREE_DIMS:
        raise SimError(f"{api}: {role} needs more than {hw.MAX_AP_FREE_DIMS} free "
                       "access-pattern dims", f"shape {list(t.shape)} strides {list(t.strides)}")
    lim = hw.PSUM_FMAX_ELEMS_ENGINE if mem is _PSUM else hw.SBUF_FMAX_ELEMS
    if t.free_size > lim:
        raise SimError(f"{api}: {role} has more than {lim} elements per partition "
                       f"({mem.value.upper()} engine access limit)", t.free_size)
    return t


def _ap_dims(shape: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Free dims left after merging unit dims and row-major-contiguous neighbours."""
    dims = [(n, s) for n, s in zip(shape, strides) if n != 1]
    out: list[tuple[int, int]] = []
    for n, s in reversed(dims):
        if out and s == out[-1][0] * out[-1][1]:
            out[-1] = (out[-1][0] * n, out[-1][1])
        else:
            out.append((n, s))
    return len(out)


def in_sbuf(x: object, api: str, role: str, why: str = "") -> Tensor:
    t = tensor(x, api, role)
    if t.alloc.mem is not _SBUF:
        raise SimError(f"{api}: {role} must be in SBUF{why}", repr(t))
    return t


def no_psum_gpsimd(api: str, *ts: Tensor | None) -> None:
    for t in ts:
        if t is not None and t.alloc.mem is _PSUM:
            raise SimError(f"{api}: GpSimd engine cannot access PSUM", repr(t),
                           "use the vector or scalar engine, or copy the tile to SBUF")


def writable(t: Tensor, api: str) -> Tensor:
    if t.bcast:
        raise SimError(f"{api}: cannot write into a broadcast view", repr(t))
    return t


def same_pn(api: str, a: Tensor, b: Tensor, ra: str, rb: str) -> None:
    """Same partition count and same elements per partition (the ISA's shape rule)."""
    if a.shape[0] != b.shape[0]:
        raise SimError(f"{api}: partition dims differ ({ra} vs {rb})",
                       f"{a.shape[0]} vs {b.shape[0]}", "use broadcast_to or matching tiles")
    if a.free_size != b.free_size:
        raise SimError(f"{api}: elements per partition differ ({ra} vs {rb})",
                       f"{list(a.shape)} vs {list(b.shape)}")


def per_partition(x: object, p: int, api: str, role: str) -> Tensor | float:
    """A scalar operand or an on-chip (P, 1) tile."""
    if isinstance(x, Tensor):
        on_chip(x, api, role)
        if x.shape[0] != p or x.free_size != 1:
            raise SimError(f"{api}: {role} must be a scalar or a ({p}, 1) tile",
                           list(x.shape))
        return x
    if isinstance(x, (int, float, np.integer, np.floating, bool)):
        return float(x)
    raise SimError(f"{api}: {role} must be a scalar or a (P, 1) tile", type(x).__name__)


def scalar_dtype_of(x: object) -> np.dtype | None:
    """The dtype of an operand: a tile's dtype, a NumPy scalar's own dtype, or the weak-scalar
    inference (bool -> uint8, int -> int32, float -> float32; S25 nki.api.shared.rst)."""
    if isinstance(x, Tensor):
        return x.dtype
    if isinstance(x, (np.generic, bool, int, float)):
        try:
            return dt.scalar_dtype(x)
        except SimError:
            return None
    return None


def need_dtype(x: object, ok, api: str, role: str, rule: str, fix: str = "",
               literals: bool = False) -> None:
    """``x`` (tile or scalar) must have a dtype accepted by ``ok`` (a predicate on np.dtype).
    Python number literals are compile-time immediates the compiler encodes in the engine's
    float32 (public kernels pass ``operand0=-1``, ``initial=0``): they are only checked when
    ``literals`` (e.g. a bitvec operand must be an integer)."""
    if not literals and isinstance(x, (bool, int, float)):
        return
    d = scalar_dtype_of(x)
    if d is not None and not ok(d):
        what = "tile" if isinstance(x, Tensor) else f"scalar {x!r}"
        raise SimError(f"{api}: {role} {rule}", f"{what} of dtype {dt.name(d)}", fix or None)


def is_f32(d: np.dtype) -> bool:
    return d == F32


def is_int(d: np.dtype) -> bool:
    return d.kind in "iu"


# ---- numerics ---------------------------------------------------------------------------
def widen(a: np.ndarray) -> np.ndarray:
    """``a`` as float32: bfloat16 by moving its 16 stored bits to the top of a 32-bit word (a
    bfloat16 is the upper half of a float32, so this is exactly ml_dtypes' conversion, every
    encoding and NaN payload included: tests/test_sim_equivalence.py checks all 65,536; several
    times faster than ``astype``); other dtypes by ``astype``."""
    d = a.dtype
    if d == _BF16 and mode.FAST:
        w = a.view(_U16).astype(_U32)
        np.left_shift(w, 16, out=w)
        return w.view(F32)
    return a.astype(F32)


def read(t: Tensor) -> np.ndarray:
    """The tile as float32 (P, N)."""
    a = t.np()
    if a.dtype != F32:
        a = widen(a)
    if a.ndim != 2:
        a = a.reshape(t.shape[0], -1)
    return a


def read_raw(t: Tensor) -> np.ndarray:
    """The tile in its storage dtype, (P, N)."""
    a = t.np()
    return a if a.ndim == 2 else a.reshape(t.shape[0], -1)


def operand(x: Tensor | float) -> np.ndarray | np.float32:
    if isinstance(x, Tensor):
        return read(x)
    return np.float32(x)


def write(t: Tensor, arr: np.ndarray) -> None:
    """Store ``arr`` (any shape with the same element layout) into ``t``, rounding to its dtype.
    A write of a whole allocation not yet filled with the uninitialised sentinel skips the fill
    (every element is overwritten here, so no sentinel could be seen)."""
    a = t.alloc
    if a.unfilled and t.offset == 0 and t.shape == a.shape and t.strides == a.strides0:
        a.unfilled = False
    d = t._np
    if d is None or a.unfilled or a.pending is not None:
        d = t.np()
    if arr.shape != d.shape:
        arr = arr.reshape(d.shape)
    if d.dtype.kind in "iu" and arr.dtype.kind == "f":
        arr = np.rint(arr)
        int_in_range(arr, d.dtype, "write")
    elif d.dtype == _BF16 and arr.dtype == F32 and mode.FAST:
        narrow(arr, d.view(_U16))
        return
    d[...] = arr


def int_in_range(arr, dtype: np.dtype, api: str) -> None:
    """An engine result stored into an integer tile must be finite and inside the dtype's range:
    NKI documents no conversion of NaN, an infinity or an out-of-range value to an integer dtype
    (SH nki/api/nki.api.shared.rst tbl-dtype, nki 0.3; S25 general/nki/api/nki.api.shared.rst
    tbl-dtype, SDK 2.25), so the hardware's result is unspecified (NumPy would wrap it
    silently). A NaN here is usually a read of an uninitialised tile (new tiles are NaN-filled).
    """
    info = np.iinfo(dtype)
    a = np.asarray(arr)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(a) | (a < info.min) | (a > info.max)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0]) if a.ndim else ()
        v = a[idx] if a.ndim else a
        raise SimError(f"{api}: a value written to a {name(dtype)} tile is not finite or outside "
                       f"[{info.min}, {info.max}] (NKI documents no conversion of NaN, inf or "
                       "out-of-range values to integer dtypes)",
                       f"{float(v)!r}" + (f" at {list(idx)}" if idx else ""),
                       "clamp the value (nl.minimum/nl.maximum) or write a float tile; a NaN "
                       "is usually a read of a tile no instruction wrote")


def narrow(x: np.ndarray, out: np.ndarray) -> None:
    """float32 ``x`` rounded to bfloat16 bits in the uint16 array ``out`` (same shape): exactly
    ml_dtypes' conversion -- round to nearest even on the bits (so overflow gives +-inf and
    subnormals round the same way), a NaN becomes the quiet NaN 0x7FC0 with its sign
    (tests/test_sim_equivalence.py compares every bfloat16 neighbourhood); about twice as fast
    as ``astype``."""
    u = x.view(_U32)
    r = u >> 16
    r &= 1
    r += 0x7FFF
    r += u                  # wraps only for NaN encodings, replaced below
    r >>= 16
    out[...] = r
    nan = np.isnan(x)
    if nan.any():
        out[nan] = ((u[nan] >> 16) & 0x8000) | 0x7FC0


def engine_of(x: object, default: Engine, allowed: tuple[Engine, ...], api: str) -> Engine:
    """Map an ``engine=`` argument (nisa.engine member, hw.Engine or None) to an engine."""
    if x is None:
        return default
    e = x if isinstance(x, Engine) else getattr(x, "hw", None)
    if e is None:
        name = getattr(x, "name", str(x))
        if name == "unknown":
            return default
        raise SimError(f"{api}: unknown engine", repr(x))
    if e not in allowed:
        raise SimError(f"{api}: engine {e.value} not allowed",
                       e.value, "use one of " + ", ".join(a.value for a in allowed))
    return e
