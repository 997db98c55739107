"""Simulator tensors: allocations over flat NumPy storage and strided views of them.

Stage: simulate (core). An :class:`Alloc` is one ``nl.ndarray``-style allocation in a buffer
(SBUF, PSUM or HBM) backed by a flat NumPy array (``None`` in cost-only runs). A
:class:`Tensor` is a view: element offset + shape + element strides into its allocation, exactly
the hardware access pattern model (dim 0 of an on-chip tensor is the partition dim and its
stride is the allocation's elements per partition). Every view is bounds-checked when it is
made; NumPy views are produced lazily with ``np.ndarray(buffer=...)`` (no copies).
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass

import numpy as np

from nkigen import hw
from nkigen.sim import batch, dt, mode, state
from nkigen.sim.errors import SimError, UnsupportedError, as_int
from nkigen.sim.trace import Mem, Region

# Enum members as module constants: a class attribute lookup on an Enum goes through
# EnumType.__getattr__'s slow path on Python 3.11 (hot per-instruction code).
_HBM = Mem.HBM
_SBUF = Mem.SBUF
_PSUM = Mem.PSUM
# Region(*fields) without the named tuple's Python-level __new__ (the same object; hot path)
_new_region = tuple.__new__


@dataclass(frozen=True)
class Buffer:
    """A buffer kind as passed to ``buffer=`` (nl.sbuf, nl.psum, nl.shared_hbm, ...)."""

    name: str
    mem: Mem

    def __repr__(self) -> str:
        return f"nl.{self.name}"


SBUF = Buffer("sbuf", Mem.SBUF)
PSUM = Buffer("psum", Mem.PSUM)
HBM = Buffer("hbm", Mem.HBM)
SHARED_HBM = Buffer("shared_hbm", Mem.HBM)
PRIVATE_HBM = Buffer("private_hbm", Mem.HBM)
BUFFERS = {b.name: b for b in (SBUF, PSUM, HBM, SHARED_HBM, PRIVATE_HBM)}


class Alloc:
    """One allocation: buffer, logical shape, dtype, flat storage (None when cost-only)."""

    # Rarely set attributes are class-level defaults (cheap allocation in cost-only runs).
    mm_keys: dict | None = None             # nc_matmul accumulation tracking (isa_move)
    mm_mask: np.ndarray | None = None
    pool: state.Pool | None = None          # on-chip pool charged for this allocation
    charged = 0
    dep_tags: np.ndarray | None = None      # affine-loop write tags (see deps.py)
    dep_w_epoch = -1
    dep_na_epoch = -1
    dep_rtags: np.ndarray | None = None     # affine-loop first-read tags (write-after-read)
    dep_r_epoch = -1
    dep_rlog: list | None = None            # reads not yet applied to dep_rtags (deps.py)
    regions: dict | None = None             # view key -> Region (tiles are re-read often)
    phys: tuple[int, int, int] | None = None   # direct allocation: (id, p0, byte0)
    parent: Alloc | None = None             # reinterpret casts: the allocation viewed
    scope: tuple = ()                       # running loop ids at creation (rules.py)
    psum_written: set | None = None         # classic: PSUM boxes written (rules.py)
    unfilled = False                        # fast path: the sentinel fill not yet written
    pending: batch.Queue | None = None      # fast path: deferred matmul numerics (batch.py)
    aliased = False                         # viewed by a reinterpret cast (never deferred)
    dense: bool | None = None               # storage is exactly the row-major whole tensor

    def __init__(self, run: state.Run, shape: tuple[int, ...], dtype: np.dtype, buffer: Buffer,
                 name: str = "", data: np.ndarray | None = None, fill: bool = True):
        self.id = run.new_id()
        self.buffer = buffer
        self.mem = mem = buffer.mem
        self.shape = shape
        self.dtype = dtype
        self.name = name
        size = math.prod(shape)
        self.pfree = self.pstride = math.prod(shape[1:]) if mem is not _HBM \
            else size                           # pstride: storage elements between partitions
        self.strides0 = _row_major(shape)       # strides of the whole-tensor view
        if data is None and run.numerics:
            if fill and mode.FAST:
                # the sentinel is written on first access (Tensor.np), unless that access is a
                # write of the whole allocation (emit.write), which leaves no sentinel visible
                data = np.empty(size, dtype=dtype)
                self.unfilled = True
            else:
                data = dt.filled(dtype, size) if fill else np.empty(size, dtype=dtype)
        self.data = data
        if run.scope:
            self.scope = run.scope

    def fill(self) -> None:
        """Write the uninitialised-memory sentinel now (see ``unfilled``)."""
        self.unfilled = False
        if self.data is not None:
            dt.fill(self.data)

    def __del__(self) -> None:
        # Release the on-chip bytes when the last view of this allocation dies.
        pool = self.pool
        if pool is not None:
            pool.live -= self.charged


class DynSlice:
    """``nl.ds(start, size)``: the slice ``start:start+size``."""

    __slots__ = ("start", "size")

    def __init__(self, start: int, size: int):
        self.start = start
        self.size = size

    def __repr__(self) -> str:
        return f"ds({self.start}, {self.size})"


def _is_int(k: object) -> bool:
    return isinstance(k, (int, np.integer)) and not isinstance(k, bool)


class Tensor:
    """A view of an allocation: what NKI calls a tensor or tile (``NkiTensor``)."""

    __slots__ = ("alloc", "offset", "shape", "strides", "dtype", "bcast", "_np", "_region",
                 "__weakref__")

    def __init__(self, alloc: Alloc, offset: int, shape: tuple[int, ...],
                 strides: tuple[int, ...], bcast: bool = False):
        self.alloc = alloc
        self.offset = offset
        self.shape = shape
        self.strides = strides
        self.dtype = alloc.dtype
        self.bcast = bcast          # has stride-0 (broadcast) dims: read-only
        self._np: np.ndarray | None = None
        self._region: Region | None = None

    # ---- attributes -------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def buffer(self) -> Buffer:
        return self.alloc.buffer

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def name(self) -> str:
        return self.alloc.name

    @property
    def on_chip(self) -> bool:
        return self.alloc.mem is not _HBM

    @property
    def partitions(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def free_size(self) -> int:
        """Elements per partition (on-chip); all elements but dim 0 otherwise."""
        return math.prod(self.shape[1:])

    def is_whole(self) -> bool:
        a = self.alloc
        return self.offset == 0 and self.shape == a.shape and self.strides == a.strides0

    def __repr__(self) -> str:
        return (f"Tensor({self.alloc.buffer.name}, shape={list(self.shape)}, "
                f"dtype={dt.name(self.dtype)}, id={self.alloc.id})")

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self):
        raise SimError("iterating over a tensor is not allowed",
                       repr(self), "index it with slices or nl.ds inside an nl.*_range loop")

    def __bool__(self) -> bool:
        raise SimError("a tensor has no truth value at trace time", repr(self))

    # ---- NumPy storage ----------------------------------------------------------------
    def view_of_storage(self) -> np.ndarray:
        """The NumPy view as the storage holds it now (no fill, no deferred work applied)."""
        a = self._np
        if a is None:
            al = self.alloc
            data = al.data
            if data is None:
                raise SimError("internal: no storage in a cost-only run")
            if self.offset == 0 and self.strides is al.strides0:
                dense = al.dense
                if dense is None:
                    dense = al.dense = al.strides0 == _row_major(al.shape) and \
                        data.size == math.prod(al.shape)
                if dense:       # the whole allocation, row-major: a reshape is cheaper
                    a = self._np = data.reshape(self.shape)
                    if self.bcast:
                        a.flags.writeable = False
                    return a
            isz = data.itemsize
            a = np.ndarray(self.shape, data.dtype, buffer=data, offset=self.offset * isz,
                           strides=tuple(s * isz for s in self.strides))
            if self.bcast:
                a.flags.writeable = False
            self._np = a
        return a

    def np(self) -> np.ndarray:
        """A NumPy view of exactly the elements this tensor addresses (numerics runs only), with
        the allocation's values complete: its sentinel fill written or its deferred matmul
        products applied first (fast path; see ``Alloc.unfilled`` and batch.py)."""
        al = self.alloc
        if al.unfilled:
            al.fill()
        elif al.pending is not None:
            batch.flush(al)
        a = self._np
        return a if a is not None else self.view_of_storage()

    def region(self) -> Region:
        """The box of the allocation this view touches (for dependencies in the cost model)."""
        r = self._region
        if r is None:
            a = self.alloc
            if self.offset == 0 and self.shape is a.shape and self.strides is a.strides0 \
                    and a.phys is None and mode.FAST:
                # the whole allocation as nl.ndarray returned it: the box is all of it
                isz = a.dtype.itemsize
                if a.mem is _HBM:
                    r = _new_region(Region, (a.id, _HBM, 0, 1, 0, a.pfree * isz))
                else:
                    r = _new_region(Region, (a.id, a.mem, 0, a.shape[0], 0, a.pfree * isz))
                self._region = r
                return r
            cache = a.regions
            if cache is None:
                cache = a.regions = {}
            key = (self.offset, self.shape, self.strides)
            r = cache.get(key)
            if r is not None:
                self._region = r
                return r
            isz = a.dtype.itemsize
            if a.mem is _HBM:
                lo = hi = self.offset
                dims = zip(self.shape, self.strides)
                p0, p1 = 0, 1
            else:
                p0, lo = divmod(self.offset, a.pstride) if a.pstride else (self.offset, 0)
                hi = lo
                p1 = p0 + (self.shape[0] if self.strides[0] else 1)
                dims = zip(self.shape[1:], self.strides[1:])
            for n, s in dims:
                if s > 0:
                    hi += (n - 1) * s
                else:
                    lo += (n - 1) * s
            if a.phys is None:
                r = _new_region(Region, (a.id, a.mem, p0, p1, lo * isz, (hi + 1) * isz))
            else:       # direct allocation: physical addresses, so aliasing tensors depend
                pid, pb, bb = a.phys
                r = Region(pid, a.mem, pb + p0, pb + p1, bb + lo * isz, bb + (hi + 1) * isz)
            self._region = r
            if len(cache) < 4096:
                cache[key] = r
        return r

    # ---- views ------------------------------------------------------------------------
    def __getitem__(self, key) -> Tensor:
        if not isinstance(key, tuple):
            key = (key,)
        if mode.FAST:
            t = self._index_fast(key)
            if t is not None:
                return t
        return self._index(key)

    def _index_fast(self, key: tuple) -> Tensor | None:
        """The common indexing forms -- in-bounds ``int``, ``start:stop`` slices of ``int``/None
        bounds without a step, ``nl.ds`` -- without the general path's conversions; None for
        anything else (negative or out-of-bounds values, steps, Ellipsis, NumPy integers), which
        :meth:`_index` then handles, errors included. Same result as :meth:`_index`.
        Two forms generated kernels index with in every loop -- ``t[a:b, c:d]`` of a 2-D
        tensor and ``t[a:b, i, c:d]`` of a 3-D one -- are spelled out without the loop."""
        shape, strides = self.shape, self.strides
        nd = len(shape)
        nk = len(key)
        if nk == nd and 2 <= nd <= 3:
            k0 = key[0]
            k1 = key[-1]
            if k0.__class__ is slice and k1.__class__ is slice and \
                    k0.step is None and k1.step is None:
                n0 = shape[0]
                n1 = shape[-1]
                a0 = k0.start
                e0 = k0.stop
                a1 = k1.start
                e1 = k1.stop
                if a0 is None:
                    a0 = 0
                if e0 is None:
                    e0 = n0
                if a1 is None:
                    a1 = 0
                if e1 is None:
                    e1 = n1
                if a0.__class__ is not int or e0.__class__ is not int or \
                        a1.__class__ is not int or e1.__class__ is not int or \
                        not 0 <= a0 < e0 <= n0 or not 0 <= a1 < e1 <= n1:
                    return None
                s0 = strides[0]
                s1 = strides[-1]
                if nd == 2:
                    return Tensor(self.alloc, self.offset + a0 * s0 + a1 * s1,
                                  (e0 - a0, e1 - a1), (s0, s1), self.bcast)
                if nd == 3:
                    i = key[1]
                    if i.__class__ is int and 0 <= i < shape[1]:   # the middle dim dropped
                        return Tensor(self.alloc, self.offset + a0 * s0 + i * strides[1] +
                                      a1 * s1, (e0 - a0, e1 - a1), (s0, s1), self.bcast)
        elif nk > nd:
            return None
        on_chip = self.alloc.mem is not _HBM
        off = self.offset
        out_shape: list[int] = []
        out_strides: list[int] = []
        d = 0
        for k in key:
            c = k.__class__
            n = shape[d]
            s = strides[d]
            if c is slice:
                if k.step is not None:
                    return None
                start, stop = k.start, k.stop
                if start is None:
                    start = 0
                elif start.__class__ is not int:
                    return None
                if stop is None:
                    stop = n
                elif stop.__class__ is not int:
                    return None
                if not 0 <= start < stop <= n:
                    return None
                off += start * s
                out_shape.append(stop - start)
                out_strides.append(s)
            elif c is int:
                if not 0 <= k < n:
                    return None
                off += k * s
                if d == 0 and on_chip:
                    out_shape.append(1)
                    out_strides.append(s)
            elif c is DynSlice:
                start, size = k.start, k.size
                if start.__class__ is not int or size.__class__ is not int or start < 0 \
                        or size <= 0 or start + size > n:
                    return None
                off += start * s
                out_shape.append(size)
                out_strides.append(s)
            else:
                return None
            d += 1
        if d < nd:
            out_shape.extend(shape[d:])
            out_strides.extend(strides[d:])
        if on_chip and len(out_shape) == 1:
            out_shape.append(1)
            out_strides.append(1)
        return Tensor(self.alloc, off, tuple(out_shape), tuple(out_strides), self.bcast)

    def _index(self, key: tuple) -> Tensor:
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            fill = len(self.shape) - (len(key) - 1)
            key = key[:i] + (slice(None),) * fill + key[i + 1:]
        if len(key) > len(self.shape):
            raise SimError("too many indices", f"{len(key)} indices for shape {list(self.shape)}")
        on_chip = self.alloc.mem is not _HBM
        off = self.offset
        shape: list[int] = []
        strides: list[int] = []
        for d, k in enumerate(key):
            n = self.shape[d]
            s = self.strides[d]
            if k.__class__ is int or _is_int(k):
                i = int(k)
                if i < 0:
                    i += n
                if not 0 <= i < n:
                    raise SimError("index out of bounds", f"index {k} on dim {d} of size {n} "
                                   f"(shape {list(self.shape)})")
                off += i * s
                if d == 0 and on_chip:
                    shape.append(1)
                    strides.append(s)
                continue
            if k.__class__ is slice:
                start, stop, step = _slice_bounds(k, n, d, self.shape)
                size = -(-(stop - start) // step)
            elif isinstance(k, DynSlice):
                if getattr(k.size, "coef", ()):
                    from nkigen.sim.classic.index import check_extent
                    check_extent(0, k.size, f"nl.ds size on dim {d}")
                start, size, step = int(k.start), int(k.size), 1
                if start < 0 or size <= 0 or start + size > n:
                    raise SimError("slice out of bounds",
                                   f"nl.ds({k.start}, {k.size}) on dim {d} of size {n} "
                                   f"(shape {list(self.shape)})", "slices are never clipped")
            elif isinstance(k, slice):
                start, stop, step = _slice_bounds(k, n, d, self.shape)
                size = -(-(stop - start) // step)
            else:
                raise UnsupportedError(f"tensor index of type {type(k).__name__}",
                                       "use integers, slices or nl.ds(start, size)")
            if step != 1 and d == 0 and on_chip:
                raise SimError("partition-dim striding is not allowed",
                               f"step {step} on the partition dim", "stride free dims only")
            off += start * s
            shape.append(size)
            strides.append(s * step)
        shape.extend(self.shape[len(key):])
        strides.extend(self.strides[len(key):])
        if on_chip and len(shape) == 1:
            shape.append(1)
            strides.append(1)
        return Tensor(self.alloc, off, tuple(shape), tuple(strides), self.bcast)

    def reshape(self, *shape) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(as_int(x, "reshape: a dimension") for x in shape)
        if math.prod(shape) != self.size:
            raise SimError("reshape changes the number of elements",
                           f"{list(self.shape)} -> {list(shape)}")
        if self.on_chip:
            if shape[0] != self.shape[0]:
                raise SimError("reshape may not change the partition dim",
                               f"{list(self.shape)} -> {list(shape)}")
            if not _contiguous(self.shape[1:], self.strides[1:]):
                raise SimError("reshape of a non-contiguous tile view", repr(self))
            strides = (self.strides[0],) + _row_major(shape[1:])
        else:
            if not _contiguous(self.shape, self.strides):
                raise SimError("reshape of a non-contiguous HBM view", repr(self))
            strides = _row_major(shape)
        return Tensor(self.alloc, self.offset, shape, strides, self.bcast)

    def ap(self, pattern=None, offset: int | None = None, dtype=None, **kw) -> Tensor:
        """Raw access pattern ``[[step, num], ...]`` (first pair = partition for on-chip).

        On a view (a slice, a reshape) the pattern addresses the underlying storage and the
        offset counts from the view's own start: "offset: element offset added to the view's
        base storage offset. When None (default), inherits the current view's storage offset
        unchanged" (SH nki/api/nki/language/__init__.py NkiTensor.ap; SH
        nki/deep-dives/nki-aps.rst "Composition and .ap on a view": chaining .ap is allowed;
        SDK 2.31+, where the NKI 0.3 restriction "Restriction on Nested Indexing" of
        nki-aps.rst, SDK 2.27-2.30, was removed). nki-library HEAD calls .ap() on reshaped
        HBM views. Classic kernels keep the refusal (S25 has no .ap)."""
        _ap_args(pattern, offset)
        offset = int(offset or 0)
        if kw.get("scalar_offset") is not None:     # one dynamic offset for all partitions
            from nkigen.sim.nki.indirect import scalar_ap
            return scalar_ap(self, pattern, offset, dtype=dtype, **kw)
        if kw.get("vector_offset") is not None:     # indirect (gather) DMA source, nki 0.3
            from nkigen.sim.nki.indirect import vector_ap
            return vector_ap(self, pattern, offset, **kw)  # type: ignore[return-value]
        for k, v in kw.items():
            if v is not None and k != "name":
                raise UnsupportedError(f"tensor.ap({k}=...)")
        base = 0                    # the view's start, in (new-dtype) elements of the tensor
        if not self.is_whole():
            run = state.active()
            if self.bcast or (run is not None and run.classic):
                raise SimError("cannot specify an access pattern on an already indexed tensor",
                               repr(self), "call .ap() on the tensor returned by nl.ndarray")
            a = self.alloc
            base = self.offset if a.mem is _HBM else \
                (self.offset // a.pstride) * a.pfree + self.offset % a.pstride
        if pattern is None or not pattern:
            raise SimError("tensor.ap needs a pattern [[step, num], ...]")
        steps = tuple(int(p[0]) for p in pattern)
        nums = tuple(int(p[1]) for p in pattern)
        a = self.alloc
        if dtype is not None and dt.as_dtype(dtype) != self.dtype:
            old, new_size = a.dtype.itemsize, dt.as_dtype(dtype).itemsize
            if (base * old) % new_size:
                raise SimError("the view's start is not a whole number of elements of the "
                               "reinterpreted dtype", f"{base} x {old} bytes",
                               "call .ap(dtype=...) on an aligned view")
            base = base * old // new_size
            a = _reinterpret(a, dt.as_dtype(dtype))     # pattern counts new-dtype elements
        offset += base
        if any(n <= 0 for n in nums):
            raise SimError("access pattern sizes must be positive", list(map(list, pattern)))
        if a.mem is not _HBM:
            # A negative FREE step on SBUF/PSUM is documented: each free axis of an engine
            # access pattern has a uint16 size and an int16 (signed) stride (S25
            # general/nki/arch/trainium_inferentia2_arch.rst "stride expressed in int16", SDK
            # 2.25; SH nki/guides/architecture/trainium_inferentia2_arch.rst, nki 0.3), and
            # ``.ap()`` "can express any access pattern the hardware supports" (SH
            # nki/deep-dives/nki-aps.rst). Pinned by tests/test_reversed_reads_doc.py.
            if steps[0] != a.pfree and nums[0] != 1:
                raise SimError("partition-dim striding is not allowed in an access pattern",
                               f"partition step {steps[0]}, tensor has {a.pfree} elements "
                               "per partition", f"use step {a.pfree} for the first pair")
            p0, f0 = divmod(offset, a.pfree)
            lo = hi = f0
            for n, s in zip(nums[1:], steps[1:]):
                hi += (n - 1) * max(s, 0)
                lo += (n - 1) * min(s, 0)
            if offset < 0 or lo < 0 or hi >= a.pfree or p0 + nums[0] > a.shape[0]:
                raise SimError("access pattern out of bounds",
                               f"pattern {list(map(list, pattern))} offset {offset} on "
                               f"{list(a.shape)}")
            # logical (flattened tensor) -> storage element space
            offset = p0 * a.pstride + f0
            steps = (a.pstride,) + steps[1:]
        else:
            neg_step(steps, nums, pattern)
            lo = hi = offset
            for n, s in zip(nums, steps):
                hi += (n - 1) * max(s, 0)
                lo += (n - 1) * min(s, 0)
            if lo < 0 or hi >= a.pfree:
                raise SimError("access pattern out of bounds",
                               f"pattern {list(map(list, pattern))} offset {offset} on "
                               f"{list(a.shape)}")
        return Tensor(a, offset, nums, steps)

    def view(self, dtype) -> Tensor:
        """Bit reinterpretation of a whole tensor; the last dim scales by the itemsize ratio."""
        d = dt.as_dtype(dtype)
        if d == self.dtype:
            return self
        if not self.is_whole():
            raise SimError("view(dtype) needs a whole tensor", repr(self))
        a = _reinterpret(self.alloc, d)
        shape = a.shape
        return Tensor(a, 0, shape, a.strides0)

    def broadcast_to(self, shape) -> Tensor:
        from nkigen.sim import lang
        return lang.broadcast_to(self, shape)

    def expand_dims(self, axis: int) -> Tensor:
        if axis < 0:
            axis += self.ndim + 1
        if axis == 0 and self.on_chip:
            raise SimError("expand_dims may not add a partition dim", axis)
        return Tensor(self.alloc, self.offset, self.shape[:axis] + (1,) + self.shape[axis:],
                      self.strides[:axis] + (1,) + self.strides[axis:], self.bcast)

    # ---- NkiTensor view primitives (current API, nkigen.sim.nki.views) ----------------------
    def permute(self, dims) -> Tensor:
        from nkigen.sim.nki import views
        return views.permute(self, dims)

    def broadcast(self, dim: int, size: int) -> Tensor:
        from nkigen.sim.nki import views
        return views.broadcast(self, dim, size)

    def expand_dim(self, dim: int) -> Tensor:
        from nkigen.sim.nki import views
        return views.expand_dim(self, dim)

    def squeeze_dim(self, dim: int) -> Tensor:
        from nkigen.sim.nki import views
        return views.squeeze_dim(self, dim)

    def reshape_dim(self, dim: int, shape) -> Tensor:
        from nkigen.sim.nki import views
        return views.reshape_dim(self, dim, shape)

    def flatten_dims(self, start_dim: int, end_dim: int) -> Tensor:
        from nkigen.sim.nki import views
        return views.flatten_dims(self, start_dim, end_dim)

    def rearrange(self, src_pattern, dst_pattern, fixed_sizes=None) -> Tensor:
        from nkigen.sim.nki import views
        return views.rearrange(self, src_pattern, dst_pattern, fixed_sizes)

    def slice(self, dim: int, start: int, end: int, step: int = 1) -> Tensor:
        from nkigen.sim.nki import views
        return views.slice_(self, dim, start, end, step)

    def select(self, dim: int, index) -> Tensor:
        from nkigen.sim.nki import views
        return views.select(self, dim, index)

    def vector_select(self, dim: int, vector_offset):
        from nkigen.sim.nki import views
        return views.vector_select(self, dim, vector_offset)

    def is_contiguous(self) -> bool:
        from nkigen.sim.nki import views
        return views.is_contiguous(self)

    def get_pattern(self) -> list[list[int]]:
        from nkigen.sim.nki import views
        return views.get_pattern(self)

    def is_indirect(self) -> bool:
        return False            # indirect views are IndirectAP objects (nkigen.sim.nki.indirect)

    def assert_shape(self, shape) -> Tensor:
        if tuple(shape) != self.shape:
            raise SimError("shape assertion failed", f"{list(self.shape)} != {list(shape)}")
        return self

    def __setitem__(self, key, value) -> None:
        from nkigen.sim import lang
        lang.assign(self[key], value)


@functools.lru_cache(maxsize=4096)
def _row_major(shape: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    acc = 1
    for n in reversed(shape):
        out.append(acc)
        acc *= n
    return tuple(reversed(out))


def _contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    acc = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != acc:
            return False
        acc *= n
    return True


NEG_STEP_RULE = (
    "an HBM access pattern may not have a negative step: no NKI document gives a DMA (HBM) "
    "access pattern a negative stride (SH nki/deep-dives/nki-aps.rst and SH "
    "nki/api/nki/language/__init__.py NkiTensor.slice 'step >= 1', nki 0.3; S25 "
    "general/nki/programming_model.rst 'Advanced Tensor Indexing', SDK 2.25, shows only "
    "positive strides; the signed int16 stride of the architecture guide is the on-chip "
    "SBUF/PSUM engine access pattern)")
NEG_STEP_FIX = ("read the rows or columns in ascending order and reverse on chip: a reversed "
                "free axis with a negative free step on the SBUF tile, a reversed partition "
                "axis with a vector-indirect DMA (row ids from nisa.iota)")


def neg_step(steps, nums, pattern) -> None:
    """Reject a negative step (on an axis of more than one element) in an HBM access pattern
    (see :data:`NEG_STEP_RULE`)."""
    for i, (s, n) in enumerate(zip(steps, nums)):
        if s < 0 and n > 1:
            raise SimError(NEG_STEP_RULE, f"step {s} in pair {i} of pattern "
                           f"{[list(map(int, p)) for p in pattern]}", NEG_STEP_FIX)


def _slice_bounds(k: slice, n: int, d: int, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if getattr(k.start, "coef", ()) or getattr(k.stop, "coef", ()):
        # classic: a slice bound computed from a loop index (a LoopIndex) -- its length must
        # not vary with the index (sim/classic/index.py check_extent)
        from nkigen.sim.classic.index import check_extent
        check_extent(0 if k.start is None else k.start, n if k.stop is None else k.stop,
                     f"slice length on dim {d}")
    step = 1 if k.step is None else as_int(k.step, "a slice step")
    if step <= 0:
        raise SimError("slice step must be positive", f"step {k.step} on dim {d}")
    start = 0 if k.start is None else as_int(k.start, "a slice start")
    stop = n if k.stop is None else as_int(k.stop, "a slice stop")
    if start < 0:
        start += n
    if stop < 0:
        stop += n
    if not 0 <= start < stop <= n:
        raise SimError("slice out of bounds",
                       f"{k.start}:{k.stop} on dim {d} of size {n} (shape {list(shape)})",
                       "slices are never clipped; clip with min() in the kernel")
    return start, stop, step


_NEW_CHECKED: dict = {}     # fast path: (shape, dtype, buffer name) -> checked (shape, dtype),
                            # elements per partition, whole-view strides, bytes charged


# Tensor classes that are plain views (no state beyond Tensor's slots; subclasses that only
# add API behaviour, e.g. the classic CTensor, register here): the ISA calls' per-shape memos
# (keyed on memory, shape, strides, dtype) apply to them.
VIEWS: set[type] = {Tensor}


def _ap_args(pattern, offset) -> None:
    """``.ap(pattern, offset)``: the pattern is a list of ``[stride, count]`` pairs and the
    offset an element count (SH nki/api/nki/language/__init__.py NkiTensor.ap ``pattern:
    list[list[int]]``, ``offset: int``; nki 0.3): a flat pair, a three-element entry or a
    fractional value is an error, not a Python exception inside the simulator or a silent
    truncation (rule nki.ap_pattern)."""
    def whole(v) -> bool:
        if isinstance(v, bool):
            return False
        if isinstance(v, float):
            return v.is_integer()
        try:
            return int(v) == v
        except (TypeError, ValueError):
            return False
    if pattern is not None and (not isinstance(pattern, (list, tuple)) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and whole(p[0]) and whole(p[1])
            for p in pattern)):
        raise SimError("tensor.ap: pattern must be a list of [stride, count] pairs of "
                       "integers", repr(pattern), "e.g. t.ap([[F, P], [1, F]]) for a [P, F] "
                       "tile")
    if offset is not None and not whole(offset):
        raise SimError("tensor.ap: offset must be an integer element count", repr(offset))


def new_tensor(shape, dtype, buffer: Buffer | None = None, name: str = "",
               fill: bool = True, address=None) -> Tensor:
    """Allocate a tensor (``nl.ndarray``): on-chip rank >= 2, partition dim <= 128.
    ``address=(start_partition, byte_offset)`` places it directly (see :func:`_direct`)."""
    run = state.current()
    if address is None and (buffer is SBUF or buffer is PSUM) and mode.FAST:
        # fast path (issue 18): the checks below depend on (shape, dtype, buffer) only, so a
        # shape seen before skips them
        try:
            got = _NEW_CHECKED.get((shape, dtype, buffer.name))
        except TypeError:
            got = None
        if got is not None:
            shape, d, pfree, strides0, nbytes = got
            if run.numerics:
                alloc = Alloc(run, shape, d, buffer, name, fill=fill)
            else:           # cost-only: Alloc.__init__'s fields, derived once per shape
                alloc = Alloc.__new__(Alloc)
                i = run.next_id
                run.next_id = i + 1
                alloc.id = i
                alloc.buffer = buffer
                alloc.mem = buffer.mem
                alloc.shape = shape
                alloc.dtype = d
                alloc.name = name
                alloc.pfree = alloc.pstride = pfree
                alloc.strides0 = strides0
                alloc.data = None
                if run.scope:
                    alloc.scope = run.scope
            # run.charge(mem, pfree * itemsize, alloc) with the PSUM bank rounding done once
            pool = run.psum if buffer is PSUM else run.sbuf
            live = pool.live + nbytes
            if live <= pool.capacity:           # (Pool.charge when nothing overflows)
                pool.live = live
                if live > pool.peak:
                    pool.peak = live
            elif buffer is PSUM:
                pool.charge(nbytes, alloc)
            else:
                over = pool.charge(nbytes, alloc, spill=True)
                if over:
                    run._spill(over, alloc)
            alloc.pool, alloc.charged = pool, nbytes
            return Tensor(alloc, 0, shape, alloc.strides0)
    if buffer is None:
        buffer = SBUF
    elif not isinstance(buffer, Buffer):
        raise UnsupportedError(f"buffer={buffer!r}", "use nl.sbuf, nl.psum, nl.hbm, "
                               "nl.shared_hbm or nl.private_hbm")
    key_shape = shape
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise SimError("a tensor shape is a tuple of dims", repr(shape), "e.g. (P, F)")
    shape = tuple(as_int(s, "a tensor shape dim") for s in shape)
    d = dt.as_dtype(dtype)
    if shape and min(shape) <= 0:
        raise SimError("tensor dims must be positive", list(shape))
    mem = buffer.mem
    if mem is not _HBM:
        if len(shape) < 2:
            raise SimError("on-chip tensors need rank >= 2 (partition dim + free dims)",
                           list(shape), "use shape (P, 1)")
        if shape[0] > hw.PMAX:
            raise SimError(f"partition dim exceeds {hw.PMAX}",
                           f"{shape[0]} in shape {list(shape)}",
                           "tile the partition dim in chunks of nl.tile_size.pmax")
    if buffer is SHARED_HBM and run.classic:
        _check_top_level(run)
    # SPMD: every instance sees the same shared_hbm tensors, in creation order.
    if buffer is SHARED_HBM and run.grid and run.program != (0,) * len(run.grid) \
            and run.shared_index < len(run.shared_hbm):
        alloc = run.shared_hbm[run.shared_index]
        run.shared_index += 1
        if alloc.shape != shape or alloc.dtype != d:
            raise SimError("SPMD instances created different shared_hbm tensors",
                           f"{list(shape)} vs {list(alloc.shape)}")
        return Tensor(alloc, 0, shape, alloc.strides0)
    if address is not None:
        return _direct(run, shape, d, buffer, name, address)
    alloc = Alloc(run, shape, d, buffer, name, fill=fill)
    if mem is not _HBM and len(_NEW_CHECKED) < 4096:
        nbytes = alloc.pfree * d.itemsize   # bytes charged per partition (run.charge)
        if mem is _PSUM:
            nbytes = -(-nbytes // hw.PSUM_BANK_BYTES) * hw.PSUM_BANK_BYTES
        with contextlib.suppress(TypeError):            # (an unhashable dtype spelling)
            _NEW_CHECKED[(key_shape, dtype, buffer.name)] = (shape, d, alloc.pfree,
                                                             alloc.strides0, nbytes)
    if mem is not _HBM:
        alloc.pool, alloc.charged = run.charge(mem, alloc.pfree * d.itemsize, alloc)
    elif buffer is SHARED_HBM:
        run.shared_hbm.append(alloc)
        run.shared_index = len(run.shared_hbm)
    return Tensor(alloc, 0, shape, alloc.strides0)


def _check_top_level(run: state.Run) -> None:
    """Classic: shared_hbm tensors are created only at the kernel's top level, not inside a
    loop, under an if, or in another function (S25 general/nki/api/nki.errors.rst
    err_shared_hbm_must_in_kernel_level, SDK 2.25)."""
    from nkigen.sim.errors import kernel_frame
    where = None
    if run.scope:
        where = "inside an nl.*_range loop"
    else:
        f = kernel_frame(2)
        if f is not None and run.kernel_code is not None:
            if f.f_code is not run.kernel_code:
                where = f"inside function {f.f_code.co_name!r}, not the top-level kernel"
            elif f.f_lineno in run.nested_lines:
                where = "inside a Python for/while loop"
    if where is not None:
        raise SimError("err_shared_hbm_must_in_kernel_level: shared_hbm tensors can only be "
                       "created in the top-level kernel scope", where,
                       "create the nl.shared_hbm tensor at the top of the kernel function and "
                       "pass it to helpers / write it inside loops")


def _reinterpret(a: Alloc, d: np.dtype) -> Alloc:
    """The same bytes as another dtype (same tensor id, so dependencies still see it). The
    last dim is rescaled by the itemsize ratio, which must divide evenly."""
    old, new = a.dtype.itemsize, d.itemsize
    last = a.shape[-1] * old
    if last % new or (a.pstride * old) % new:
        raise SimError("reinterpret cast does not divide the last dim evenly",
                       f"{list(a.shape)} {dt.name(a.dtype)} -> {dt.name(d)}")
    shape = a.shape[:-1] + (last // new,)
    if a.unfilled:      # the cast shares the bytes: the original's values go in first
        a.fill()
    elif a.pending is not None:
        batch.flush(a)
    a.aliased = True
    r = Alloc.__new__(Alloc)
    r.__dict__.update(a.__dict__)
    r.dtype, r.shape = d, shape
    r.pfree = math.prod(shape[1:]) if a.mem is not _HBM else math.prod(shape)
    r.pstride = a.pstride * old // new if a.mem is not _HBM else r.pfree
    r.strides0 = ((r.pstride,) + _row_major(shape[1:])) if a.mem is not _HBM \
        else _row_major(shape)
    if a.data is not None:
        raw = a.data.view(np.uint8)
        r.data = raw[:raw.size - raw.size % new].view(d)
    else:
        r.data = None
    r.pool, r.charged = None, 0          # the original allocation stays charged ...
    r.parent = a                         # ... and alive while this view exists
    r.regions, r.mm_keys, r.mm_mask, r.dep_tags, r.dense = None, None, None, None, None
    r.dep_rtags = r.dep_rlog = None
    return r


_PHYS_ID = {Mem.SBUF: 0, Mem.PSUM: -1}     # Region.tensor of physical on-chip memory


def _direct(run: state.Run, shape: tuple[int, ...], d: np.dtype, buffer: Buffer, name: str,
            address) -> Tensor:
    """Direct allocation: the tensor lives at ``(start_partition, byte_offset)`` of the
    physical SBUF/PSUM, whose bytes are shared (tensors placed over each other alias, as on
    hardware). Physical memory starts as 0xFF bytes (NaN for every float dtype). Direct
    allocations are not charged to the automatic pools and are not covered by the affine-loop
    dependency check."""
    run.direct_alloc = True
    mem = buffer.mem
    if mem is _HBM:
        raise UnsupportedError("nl.ndarray(address=...) for HBM tensors")
    if isinstance(address, (int, np.integer)):
        address = (0, int(address))
    pb, bb = (int(x) for x in address)
    cap = run.sbuf.capacity if mem is _SBUF else run.psum.capacity
    isz = d.itemsize
    fbytes = math.prod(shape[1:]) * isz
    if pb < 0 or pb + shape[0] > hw.PMAX or bb < 0 or bb + fbytes > cap:
        raise SimError(f"direct {mem.value} allocation out of range",
                       f"partitions [{pb}, {pb + shape[0]}) bytes [{bb}, {bb + fbytes}) of "
                       f"{hw.PMAX} x {cap}")
    if mem is _PSUM and bb % hw.PSUM_MIN_ALIGN:
        raise SimError(f"PSUM byte offset must be {hw.PSUM_MIN_ALIGN}-byte aligned", bb)
    if cap % isz:
        raise UnsupportedError(f"direct {dt.name(d)} allocation in a {cap}-byte partition")
    pstride = cap // isz
    data = None
    if run.numerics:
        phys = run.phys.get(mem)
        if phys is None:
            phys = run.phys[mem] = np.full(hw.PMAX * cap, 0xFF, np.uint8)
        n = (shape[0] - 1) * pstride + math.prod(shape[1:])
        data = np.ndarray((n,), d, buffer=phys, offset=pb * cap + bb)
    alloc = Alloc(run, shape, d, buffer, name, data=data, fill=False)
    alloc.pstride = pstride
    alloc.strides0 = (pstride,) + _row_major(shape[1:])
    alloc.phys = (_PHYS_ID[mem], pb, bb)
    return Tensor(alloc, 0, shape, alloc.strides0)


def wrap_input(run: state.Run, arr, name: str) -> Tensor:
    """A kernel argument: a NumPy array (copied into HBM) or a placeholder (cost-only)."""
    shape = tuple(int(x) for x in arr.shape)
    d = dt.as_dtype(arr.dtype)
    data = None
    if run.numerics:
        data = np.array(arr, dtype=d, copy=True).reshape(-1)
    alloc = Alloc(run, shape, d, SHARED_HBM, name, data=data, fill=False)
    return Tensor(alloc, 0, shape, _row_major(shape))
