"""``nki.language`` (current standalone API) over the simulator core.

Stage: simulate (API layer). Thin: names, signatures and defaults of the public API, each
delegating to ``nkigen.sim.lang`` / ``nkigen.sim.tensor`` / ``nkigen.sim.loops``. Any name not
defined here raises an error naming it (never a silent wrong answer).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import numpy as np

from nkigen import hw
from nkigen.sim import dt, isa_extra, lang, loops, ops, rngstate, state
from nkigen.sim.emit import emit, write
from nkigen.sim.errors import SimError, UnsupportedError, unsupported_stub
from nkigen.sim.tensor import (
    BUFFERS,
    HBM,
    PRIVATE_HBM,
    PSUM,
    SBUF,
    SHARED_HBM,
    DynSlice,
    Tensor,
    new_tensor,
)
from nkigen.sim.trace import Mem

# ---- dtypes and buffers ------------------------------------------------------------------
float32 = dt.F32
F32 = dt.F32
tfloat32 = dt.F32
bfloat16 = dt.BF16
float16 = dt.F16
float8_e4m3 = dt.FP8_E4M3
float8_e5m2 = dt.FP8_E5M2
int32, uint32 = np.dtype(np.int32), np.dtype(np.uint32)
int16, uint16 = np.dtype(np.int16), np.dtype(np.uint16)
int8, uint8 = np.dtype(np.int8), np.dtype(np.uint8)
bool_ = dt.U8
globals()["bool"] = bool_       # nl.bool (public NKI spelling; not shadowing in this module)
# float8_e4m3 is IEEE-style (max 240); float8_e4m3fn is the extended-range OCP format (max 448).
# The NeuronCore-v4 packed x4 types are names only: using one as a dtype raises an
# unsupported-dtype error.
float8_e4m3fn = dt.FP8_E4M3FN
float8_e4m3fn_x4 = "float8_e4m3fn_x4"
float8_e5m2_x4 = "float8_e5m2_x4"
float4_e2m1fn_x4 = "float4_e2m1fn_x4"
dtype = np.dtype


class NKIObject:
    """Base class public kernels derive their helper records from. Subclasses (also ones
    decorated with ``@dataclass``, even without annotations) get a record constructor: positional
    and keyword arguments set the declared fields; the others keep their defaults."""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "__init__" not in cls.__dict__:
            setattr(cls, "__init__", _record_init)  # noqa: B010 - @dataclass keeps an existing one


def _record_fields(cls) -> list[str]:
    dfields = getattr(cls, "__dataclass_fields__", None)
    names = list(dfields) if dfields else []
    for klass in reversed(cls.__mro__):
        for n in list(getattr(klass, "__annotations__", {})) + list(vars(klass)):
            if not n.startswith("_") and n not in names and not callable(getattr(cls, n, None)):
                names.append(n)
    return names


def _record_init(self, *args, **kwargs) -> None:
    import dataclasses
    names = _record_fields(type(self))
    if len(args) > len(names):
        raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional fields")
    for n, v in zip(names, args):
        kwargs[n] = v
    for f in dataclasses.fields(self) if dataclasses.is_dataclass(self) else ():
        if f.name not in kwargs and f.default_factory is not dataclasses.MISSING:
            kwargs[f.name] = f.default_factory()
    for k, v in kwargs.items():
        object.__setattr__(self, k, v)      # also for frozen dataclasses
    post = getattr(self, "__post_init__", None)
    if post is not None:
        post()

sbuf, psum, hbm, shared_hbm, private_hbm = SBUF, PSUM, HBM, SHARED_HBM, PRIVATE_HBM
ndarray_type = Tensor
NkiTensor = tensor = Tensor


class _TileSize:
    """``nl.tile_size`` of the current API (SH nki/api/nki.language.tile_size.rst): per-target
    constants from nkigen.hw (the active run's target), including the bytes-aware extras of
    nki 0.4 (``sbuf_fmax``, ``sbuf_fmax_bytes``, ``sbuf_size_bytes``, ``psum_bank_fmax``,
    ``psum_bank_fmax_bytes``, ``psum_fmax_bytes``, ``psum_num_banks``)."""

    pmax = hw.PMAX
    psum_fmax = hw.PSUM_FMAX
    psum_bank_fmax = hw.PSUM_FMAX
    psum_bank_fmax_bytes = hw.PSUM_BANK_BYTES
    psum_fmax_bytes = hw.PSUM_BANK_BYTES
    psum_num_banks = hw.PSUM_BANKS
    gemm_stationary_fmax = hw.GEMM_STATIONARY_FMAX
    gemm_moving_fmax = hw.GEMM_MOVING_FMAX
    bn_stats_fmax = hw.BN_STATS_FMAX
    psum_min_align = hw.PSUM_MIN_ALIGN
    sbuf_min_align = hw.SBUF_MIN_ALIGN

    @staticmethod
    def _target() -> hw.Target:
        r = state.active()
        return r.target if r is not None else hw.target(hw.DEFAULT_TARGET)

    @property
    def total_available_sbuf_size(self) -> int:
        """Usable SBUF bytes per partition (deprecated in nki 0.4 for sbuf_fmax_bytes)."""
        return self._target().sbuf_bytes_per_partition

    @property
    def sbuf_fmax_bytes(self) -> int:
        """Usable SBUF bytes per partition."""
        return self._target().sbuf_bytes_per_partition

    @property
    def sbuf_fmax(self) -> int:
        """Usable SBUF free size per partition in fp32 elements."""
        return self._target().sbuf_bytes_per_partition // 4

    @property
    def sbuf_size_bytes(self) -> int:
        """Total SBUF capacity, all partitions combined."""
        return hw.PMAX * self._target().sbuf_physical_bytes


tile_size = _TileSize()


# ---- creation ----------------------------------------------------------------------------
def _buffer(buffer):
    """Buffers are the objects above; strings ('sbuf', ...) are rejected since nki 0.3 (SH
    nki/migration "String buffer names no longer supported")."""
    if isinstance(buffer, str):
        fix = f"use nl.{buffer}" if buffer in BUFFERS else \
            "use nl.sbuf, nl.psum, nl.hbm, nl.shared_hbm or nl.private_hbm"
        raise SimError("buffer names as strings are not accepted in NKI 0.3", repr(buffer), fix)
    return buffer


def ndarray(shape, dtype, buffer=None, name: str = "", address=None, **kw) -> Tensor:
    return new_tensor(shape, dtype, _buffer(buffer), name, address=address)


def _filled(shape, dtype, buffer, name, value) -> Tensor:
    t = new_tensor(shape, dtype, _buffer(buffer), name)
    lang.fill(t, value, "allocate on chip, memset it and store it")
    return t


def zeros(shape, dtype, buffer=None, name: str = "", **kw) -> Tensor:
    return _filled(shape, dtype, buffer, name, 0)


def ones(shape, dtype, buffer=None, name: str = "", **kw) -> Tensor:
    return _filled(shape, dtype, buffer, name, 1)


def full(shape, fill_value, dtype, buffer=None, name: str = "", **kw) -> Tensor:
    return _filled(shape, dtype, buffer, name, fill_value)


def zeros_like(a: Tensor, dtype=None, buffer=None, name: str = "", **kw) -> Tensor:
    return zeros(a.shape, a.dtype if dtype is None else dtype, buffer or a.buffer, name)


def ones_like(a: Tensor, dtype=None, buffer=None, name: str = "", **kw) -> Tensor:
    return ones(a.shape, a.dtype if dtype is None else dtype, buffer or a.buffer, name)


def full_like(a: Tensor, fill_value, dtype=None, buffer=None, name: str = "", **kw) -> Tensor:
    return full(a.shape, fill_value, a.dtype if dtype is None else dtype, buffer or a.buffer,
                name)


def empty_like(a: Tensor, dtype=None, buffer=None, name: str = "", **kw) -> Tensor:
    return new_tensor(a.shape, a.dtype if dtype is None else dtype,
                      _buffer(buffer) or a.buffer, name)


def ds(start, size) -> DynSlice:
    """``nl.ds(start, size)``: ``start:start + size`` of trace-time integers (rule index.ds;
    a tile or a fractional value is an error, not a Python exception inside the simulator or
    a silent truncation; a start held in a tile is a dynamic offset, ``.ap(scalar_offset=)``)."""
    return DynSlice(_ds_int(start, "start"), _ds_int(size, "size"))


def _ds_int(v, what: str) -> int:
    if isinstance(v, float) and not v.is_integer():
        raise SimError(f"nl.ds: {what} must be an integer", v, "use integer tile offsets")
    try:
        return int(v)
    except (TypeError, ValueError):
        raise SimError(f"nl.ds: {what} must be an integer known at trace time",
                       type(v).__name__, "a start held in a tile is a dynamic offset: "
                       "t.ap(pattern, scalar_offset=idx, indirect_dim=0)") from None


# ---- memory ------------------------------------------------------------------------------
def load(src: Tensor, dtype=None, **kw) -> Tensor:
    _no_mask(kw, "nl.load")
    return lang.load(src, dtype)


def store(dst: Tensor, value: Tensor, **kw) -> None:
    _no_mask(kw, "nl.store")
    lang.store(dst, value)


def copy(x: Tensor, dtype=None, **kw) -> Tensor:
    _no_mask(kw, "nl.copy")
    return lang.copy(x, dtype)


copy.__nki_op__ = "copy"  # type: ignore[attr-defined]


def transpose(x: Tensor, dtype=None, **kw) -> Tensor:
    _no_mask(kw, "nl.transpose")
    return lang.transpose(x, dtype)


def matmul(x: Tensor, y: Tensor, transpose_x: bool = False, **kw) -> Tensor:
    _no_mask(kw, "nl.matmul")
    return lang.matmul(x, y, transpose_x)


def broadcast_to(src: Tensor, shape, dtype=None, **kw) -> Tensor:
    """``nl.broadcast_to(x, shape, dtype=None)``: with a ``dtype`` other than x's the result is
    a cast copy (SH nki/api/nki/language/__init__.py broadcast_to, nki 0.3)."""
    out = lang.broadcast_to(src, shape)
    if dtype is not None and dt.as_dtype(dtype) != out.dtype:
        return lang.copy(out, dtype)
    return out


def load_transpose2d(src: Tensor, dtype=None, **kw) -> Tensor:
    _no_mask(kw, "nl.load_transpose2d")
    return lang.load_transpose2d(src, dtype)


def where(condition: Tensor, x, y, dtype=None, **kw) -> Tensor:
    _no_mask(kw, "nl.where")
    return lang.where(condition, x, y, dtype)


average = isa_extra.AVERAGE      # tensor_partition_reduce(op=nl.average) (SH, nki 0.3)


# ---- random numbers (SH nki/api/nki/language/__init__.py rand, random_seed, dropout) -------
def random_seed(seed) -> None:
    """``nl.random_seed(seed)``: seed is a [1, 1] SBUF/PSUM tensor holding a 32-bit value; the
    same seed gives the same nl.rand sequence (the run's NumPy generator, nkigen.sim.rngstate)."""
    if not isinstance(seed, Tensor) or seed.alloc.mem not in (Mem.SBUF, Mem.PSUM) \
            or seed.size != 1 or seed.itemsize != 4:
        raise SimError("nl.random_seed: seed must be a [1, 1] SBUF/PSUM tensor of a 32-bit "
                       "value", repr(seed),
                       "seed = nl.full((1, 1), 42, dtype=nl.int32, buffer=nl.sbuf)")
    run = state.current()
    value = int(np.asarray(seed.np()).reshape(-1)[0]) if run.numerics else 0
    rngstate.seed(value & 0xFFFFFFFF)


def rand(shape, dtype, buffer=None, name: str = "", **kw) -> Tensor:
    """``nl.rand(shape, dtype, buffer=nl.sbuf)``: a new tensor of uniform [0, 1) values."""
    t = new_tensor(shape, dtype, _buffer(buffer), name)
    run = state.current()
    if run.numerics:
        write(t, rngstate.generator().random(t.shape, dtype=np.float32))
    eng = {Mem.SBUF: hw.Engine.GPSIMD, Mem.PSUM: hw.Engine.VECTOR}.get(t.alloc.mem,
                                                                        hw.Engine.DMA)
    emit(run, eng, "rand", (), (t,), t.shape[0] if t.shape else 1,
         t.free_size if t.shape else 1, dt.F32, t.dtype, n_in=0)
    return t


def dropout(x: Tensor, rate, dtype=None) -> Tensor:
    """``nl.dropout(x, rate, dtype=None)``: nisa.dropout into a new SBUF tile (a cast copy when
    dtype differs from x's)."""
    out = new_tensor(x.shape, x.dtype, SBUF)
    isa_extra.dropout(out, x, rate)
    if dtype is not None and dt.as_dtype(dtype) != out.dtype:
        return lang.copy(out, dtype)
    return out


def shared_constant(constant, dtype=None) -> Tensor:
    return lang.constant(constant, dtype)


def shared_identity_matrix(n: int, dtype=uint8, dst: Tensor | None = None) -> Tensor:
    """An [n, n] identity in SBUF; with ``dst=`` (an SBUF tensor of n * n elements) it is
    written there and dst is returned (SH nki/api/nki/language/__init__.py
    shared_identity_matrix, nki 0.3)."""
    if dst is None:
        return lang.identity(n, dtype)
    if not isinstance(dst, Tensor) or dst.alloc.mem is not Mem.SBUF:
        raise SimError("nl.shared_identity_matrix: dst must be an SBUF tensor", repr(dst),
                       "allocate dst with nl.ndarray((n, n), dtype, buffer=nl.sbuf)")
    lang.identity(n, dtype, dst)
    return dst


def expand_dims(data: Tensor, axis: int) -> Tensor:
    return data.expand_dims(axis)


def _no_mask(kw: dict, api: str) -> None:
    if kw.get("mask") is not None:
        raise UnsupportedError(f"{api}(mask=...) (removed in the current API)",
                               "clip tiles with Python min()/slices")


# ---- element-wise ops and reductions (generated from the op registry) --------------------
def _make_elementwise(name: str):
    def fn(*args, dtype=None, **kw):
        _no_mask(kw, f"nl.{name}")
        if name in ops.ALU_CURRENT_ONLY:
            ops.v4_only(name, f"nl.{name}", state.current().target.nc_version)
        return lang.elementwise(name, *args, dtype=dtype)
    fn.__name__ = fn.__qualname__ = name
    fn.__nki_op__ = name  # type: ignore[attr-defined]
    fn.__doc__ = f"nl.{name}: element-wise {ops.REGISTRY[name].kind} op"
    return fn


for _name in ops.REGISTRY:
    if _name not in ("copy", "identity", "gelu_apprx_sigmoid"):
        globals()[_name] = _make_elementwise(_name)
identity = _make_elementwise("identity")
gelu_apprx_sigmoid = _make_elementwise("gelu_apprx_sigmoid")


def _make_reduce(name: str, op: str):
    def fn(x, axis, dtype=None, keepdims: bool = False, **kw):
        _no_mask(kw, f"nl.{name}")
        return lang.reduce(name, x, axis, dtype, keepdims)
    fn.__name__ = fn.__qualname__ = name
    fn.__nki_op__ = op  # type: ignore[attr-defined]
    return fn


sum = _make_reduce("sum", "add")  # noqa: A001
max = _make_reduce("max", "maximum")  # noqa: A001
min = _make_reduce("min", "minimum")  # noqa: A001
mean = _make_reduce("mean", "add")
prod = _make_reduce("prod", "multiply")
all = _make_reduce("all", "logical_and")  # noqa: A001


# ---- loops and SPMD ----------------------------------------------------------------------
affine_range = loops.unrolled_affine_range      # an alias of range() in nki 0.3 (unrolled)
sequential_range = loops.sequential_range
static_range = loops.static_range
program_id = loops.program_id
num_programs = loops.num_programs_current       # axes defaults to 0 in nki 0.3
program_ndim = loops.program_ndim


def device_print(prefix: str, x: Tensor, **kw) -> None:
    r = state.current()
    if r.numerics and isinstance(x, Tensor):
        print(prefix, x.np())


_registers = importlib.import_module("nkigen.sim.nki.registers")
dynamic_range = _registers.dynamic_range        # dynamic loops over registers
fori_loop = _registers.fori_loop
while_loop = _registers.while_loop


def softmax(x: Tensor, axis=-1, dtype=None) -> Tensor:
    """``nl.softmax`` (SH nki/api/nki/language softmax): exp(x - max) / sum(exp(x - max))
    along free axes, fp32 inside, composed of the simulator's own nl reductions and
    element-wise ops (their rules and trace records apply)."""
    axes = _free_axes(x, axis, "softmax")
    ew = lang.elementwise
    m = lang.reduce("max", x, axes, F32, True)
    e = ew("exp", ew("subtract", x, m, dtype=F32), dtype=F32)
    return ew("divide", e, lang.reduce("sum", e, axes, F32, True), dtype=dtype or x.dtype)


def rms_norm(x: Tensor, w: Tensor, axis, n, epsilon=1e-06, dtype=None,
             compute_dtype=None) -> Tensor:
    """``nl.rms_norm`` (SH nki/api/nki/language rms_norm): ``x / RMS(x) * w`` with
    RMS(x) = sqrt(sum(x * x, axis) / n + epsilon)."""
    axes = _free_axes(x, axis, "rms_norm")
    cd = compute_dtype or F32
    ew = lang.elementwise
    ss = lang.reduce("sum", ew("multiply", x, x, dtype=cd), axes, cd, True)
    ms = ew("add", ew("multiply", ss, 1.0 / float(n), dtype=cd), float(epsilon), dtype=cd)
    r = ew("rsqrt", ms, dtype=cd)
    return ew("multiply", ew("multiply", x, r, dtype=cd), w, dtype=dtype or x.dtype)


def _free_axes(x: Tensor, axis, api: str) -> tuple[int, ...]:
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = tuple(int(a) + x.ndim if int(a) < 0 else int(a) for a in axes)
    if any(not 0 < a < x.ndim for a in out):
        raise SimError(f"nl.{api}: axis must be free dimensions (not the partition dim 0)",
                       f"axis {axis} of a {x.ndim}-D tile")
    return out


@contextlib.contextmanager
def no_reorder() -> Iterator[None]:
    """``with nl.no_reorder():`` keeps the block's instructions in program order (SH
    nki/api/nki/language/__init__.py no_reorder; SH nki/guides/how-to-scheduling-apis.rst,
    nki 0.5+). The simulator executes every instruction in program order, so the block runs
    unchanged (fori_loop / while_loop, refused inside it, are unsupported anyway)."""
    yield


# Real APIs the simulator does not implement: importable, raise when called.
for _n, _fix in {

    "gather_flattened": None, "atomic_rmw": None, "all_reduce": None,
    "loop_reduce": None, "gelu_apprx_sigmoid_dx": None,
}.items():
    globals()[_n] = unsupported_stub(f"nki.language.{_n}", _fix)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedError(f"nki.language.{name}")
