"""Vector-indirect DMA of the current API: ``hbm.ap(pattern, offset, vector_offset=idx,
indirect_dim=0)`` as the source (gather) of ``nisa.dma_copy``.

Stage: simulate (nki 0.3 API layer; added for the spec-language 1.1 indexed reads). Doc: SH
nki/api/nki/isa/__init__.py ``dma_copy``, "Indirect addressing (gather/scatter)": the indexed
tensor is in HBM, ``vector_offset`` is an SBUF ``(P, 1)`` tile holding one row index per
partition, and with ``indirect_dim=0`` the partition pair ``[step, P]`` of the pattern takes
``idx[p]`` rows instead of ``p``. Element ``(p, i...)`` is read at
``offset + idx[p] * step0 + sum(step_k * i_k)``. The hardware scales ``idx[p]`` by the
*base tensor's* dim-0 stride (the element count right of dim 0) and ignores the pattern's
leading step (SH nki/deep-dives/nki-aps.rst "Vector Dynamic Access", nki 0.3; same text in S29
nki/deep-dives/nki-beta2-migration-guide.rst), so ``step0`` must equal
``prod(base.shape[1:])``: a flat-index gather reshapes the table to ``(numel, 1)`` first (the
base may be such a whole-tensor reshape; S29 nki/deep-dives/src/mxfp-matmul/mx_kernel_utils.py
reshapes HBM tensors inside a kernel). Out-of-range elements raise (``oob_mode.error``, the
default) or keep the destination's value (``oob_mode.skip``). Only the gather direction and
``indirect_dim=0`` are simulated (anything else raises UnsupportedError).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import numpy as np

from nkigen.hw import Engine
from nkigen.sim import dt, state
from nkigen.sim.emit import emit, write
from nkigen.sim.errors import SimError, UnsupportedError
from nkigen.sim.tensor import Tensor, _row_major
from nkigen.sim.trace import Mem


class IndirectAP:
    """An HBM access pattern whose partition rows come from an index tile."""

    def __init__(self, base: Tensor, pattern, offset: int, idx: Tensor):
        self.base, self.idx = base, idx
        self.steps = tuple(int(p[0]) for p in pattern)
        self.nums = tuple(int(p[1]) for p in pattern)
        self.offset = int(offset)
        self.shape = self.nums
        self.dtype = base.dtype

    def __repr__(self) -> str:
        return f"IndirectAP({self.base!r}, pattern={list(zip(self.steps, self.nums))})"

    def rows(self) -> np.ndarray:
        """The row index of each gathered row: the index tile flattened column-major (one
        column: the column itself), its first ``nums[0]`` entries (SH dma_transpose: "flat_indices
        = indices.T.flatten()[:src.shape[0]]")."""
        idx = self.idx.np().reshape(self.idx.shape[0], -1)
        return idx.T.reshape(-1)[: self.nums[0]].astype(np.int64)

    def addresses(self) -> np.ndarray:
        rows = self.rows()
        v = np.zeros((1,), dtype=np.int64)
        for s, k in zip(self.steps[1:], self.nums[1:]):
            v = (v[:, None] + s * np.arange(k, dtype=np.int64)[None, :]).reshape(-1)
        return self.offset + rows[:, None] * self.steps[0] + v[None, :]


INDIRECT_V2 = ("an indirect DMA (.ap with vector_offset / scalar_offset) on NeuronCore-v2: the "
               "DMA guide lists indirect DMA from NeuronCore-v3 only (SH nki/deep-dives/"
               "nki-dge.rst Mode Selection Summary, swdge 'Any (indirect: v3+)'); the dma_copy "
               "reference names no generation (SH nki/api/nki/isa/__init__.py dma_copy "
               "'Indirect addressing', nki 0.3), so the run goes on. On trn1, the classic "
               "dialect documents indirect loads (S25 general/nki/programming_model.rst, SDK "
               "2.25)")


INDEX_WIDTH = ("an indirect DMA index tile of {dtype}: every documented index tile is 32-bit "
               "(SH nki/api/nki/isa/__init__.py dma_copy 'Indirect addressing' uint32, "
               "nki/deep-dives/nki-aps.rst 'Vector Dynamic Access' int32, nki 0.3; S25 "
               "general/nki/test/test_nki_nl_load_store_indirect.py int32, SDK 2.25), so the run "
               "goes on; load the ids into an int32 tile (a dma_copy casts)")


def narrow_index(dtype) -> None:
    """Warn (on the run) for an index tile narrower than 32 bits: no document shows one
    (review 12 R12-2; conformance row isa.dma_copy.index_width)."""
    from nkigen.sim import emit, state
    run = state.active()
    if run is not None and np.dtype(dtype).itemsize != 4:
        emit.warn(run, INDEX_WIDTH.format(dtype=dt.name(dtype)))


def _v2_indirect() -> None:
    """Warn (on the run) for an indirect DMA on NeuronCore-v2: a doc conflict (review 9 R9-6;
    conformance row isa.dma_copy.indirect_v3)."""
    from nkigen.sim import emit, state
    run = state.active()
    if run is not None and run.target.nc_version < 3:
        emit.warn(run, INDIRECT_V2)


def _addresses(ap: IndirectAP, size: int, skip: bool, api: str) -> tuple[np.ndarray, np.ndarray]:
    """The flat element addresses of ``ap`` and which of them fall inside its tensor of
    ``size`` elements; an address outside is an error unless ``skip`` (``oob_mode.skip``)."""
    addr = ap.addresses()
    ok = (addr >= 0) & (addr < size)
    if not ok.all() and not skip:
        bad = int(addr[~ok].flat[0])
        raise SimError(f"{api}: indirect index out of bounds",
                       f"element {bad} of a tensor with {size}",
                       "keep the index tile in range, or pass oob_mode=nisa.oob_mode.skip")
    return addr, ok


def vector_ap(base: Tensor, pattern, offset: int, vector_offset, indirect_dim=0,
              **kw) -> IndirectAP:
    """``base.ap(pattern, offset, vector_offset=idx, indirect_dim=0)``."""
    _v2_indirect()
    for k, v in kw.items():
        if v is not None and k not in ("name", "dtype"):
            raise UnsupportedError(f"tensor.ap({k}=...) with vector_offset")
    if int(indirect_dim) != 0:
        raise UnsupportedError("tensor.ap(indirect_dim != 0)")
    if base.alloc.mem is not Mem.HBM or not _whole_view(base):
        raise SimError("an indirect access pattern indexes a whole HBM tensor", repr(base))
    row = math.prod(base.shape[1:])
    if pattern and int(pattern[0][0]) != row:
        # SH nki/deep-dives/nki-aps.rst "Vector Dynamic Access" (nki 0.3)
        step = int(pattern[0][0])
        raise SimError("the partition step of a vector_offset access pattern must be the base "
                       "tensor's row stride (elements right of dim 0): the hardware scales "
                       "vector_offset by that stride and ignores the pattern's step",
                       f"step {step}, base {list(base.shape)} has row stride {row}",
                       f"reshape the tensor so that dim 0 has stride {step} "
                       f"(.reshape(({base.size // max(step, 1)}, {step}))) before .ap()")
    idx = vector_offset
    if not isinstance(idx, Tensor) or idx.alloc.mem is not Mem.SBUF:
        raise SimError("vector_offset must be an SBUF (P, 1) tile", repr(idx))
    if idx.dtype.kind not in "iu" or idx.ndim != 2:
        raise SimError("vector_offset must be a 2-D integer tile", repr(idx),
                       "load the ids into an int32/uint32 (P, 1) tile")
    narrow_index(idx.dtype)
    if not pattern or int(pattern[0][1]) > idx.size:
        raise SimError("the pattern's partition count exceeds the vector_offset tile",
                       f"{list(map(list, pattern))} vs {list(idx.shape)}")
    return IndirectAP(base, pattern, offset, idx)


def _one_column(ap: IndirectAP, api: str) -> None:
    """dma_copy takes one row index per partition: an SBUF (P, 1) tile (SH dma_copy "Indirect
    addressing"); several index columns are a dma_transpose form."""
    idx = ap.idx
    if idx.free_size != 1:
        raise SimError(f"{api}: vector_offset must be an integer (P, 1) tile", repr(idx),
                       "load the ids into an int32/uint32 tile of one column")
    if ap.nums[0] > idx.shape[0]:
        raise SimError("the pattern's partition count exceeds the vector_offset tile",
                       f"{list(ap.nums)} vs {list(idx.shape)}")


def scatter(dst: IndirectAP, src: Tensor, skip: bool, api: str = "dma_copy") -> None:
    """``dma_copy(dst=hbm.ap(pattern, vector_offset=idx, indirect_dim=0), src=sbuf)``: row
    ``p`` of ``src`` goes to row ``idx[p]`` of the HBM tensor (SH dma_copy "Indirect scatter
    example"). Out-of-range rows raise, or are skipped with ``oob_mode.skip``."""
    run = state.current()
    _one_column(dst, api)
    if not isinstance(src, Tensor) or src.alloc.mem is not Mem.SBUF:
        raise SimError(f"{api}: an indirect DMA scatters from SBUF", repr(src))
    n = math.prod(dst.nums)
    if n != src.size:
        raise SimError(f"{api}: dst and src element counts differ",
                       f"{list(dst.nums)} vs {list(src.shape)}")
    if run.numerics:
        whole = dst.base.np().reshape(-1).copy()
        addr, ok = _addresses(dst, whole.size, skip, api)
        vals = src.np().reshape(ok.shape)
        if vals.dtype != whole.dtype:
            vals = vals.astype(np.float32)
        whole[addr[ok]] = vals[ok]
        write(dst.base, whole)
    item = dst.base.dtype.itemsize
    emit(run, Engine.DMA, api, (src, dst.idx), (dst.base,), src.shape[0], src.free_size,
         src.dtype, dst.base.dtype, n_in=2, nbytes=n * item, hbm_bytes=n * item,
         chunk_bytes=(dst.nums[-1] if dst.steps[-1] == 1 else 1) * item,
         attrs={"indirect": True})


_T_AXES = {2: (1, 0), 3: (2, 1, 0), 4: (3, 1, 2, 0)}


def transpose_gather(dst: Tensor, src: IndirectAP, axes, dge_mode: str, skip: bool) -> None:
    """``dma_transpose(dst, src=hbm.ap(pattern, vector_offset=idx, indirect_dim=0))``: gather
    rows ``indices.T.flatten()[:src.shape[0]]`` then transpose (SH dma_transpose "DMA Indirect
    Transpose Constraints", nki 0.3; the doc's own examples in tests/test_sim_public9.py)."""
    api = "dma_transpose"
    run = state.current()
    s, idx = src.nums, src.idx
    why = None
    if dge_mode not in ("unknown", "swdge"):
        why = "the dge_mode of an indirect transpose is unknown or swdge"
    elif run.target.nc_version < 3:
        why = "an indirect DMA transpose needs NeuronCore-v3 (trn2) or newer"
    elif len(s) not in _T_AXES:
        why = "src must be 2-D to 4-D"
    elif len(s) == 4 and 1 not in (s[1], s[2]):
        why = "a 4-D src has src.shape[1] == 1 or src.shape[2] == 1"
    elif s[-1] > 128:
        why = "src.shape[-1] must be <= 128"
    elif src.base.dtype.itemsize != 2:
        why = "src dtype must be 2 bytes"
    elif s[0] % 16:
        why = "src.shape[0] must be a multiple of 16"
    elif idx.dtype != np.uint32:
        why = "indices must be uint32"
    elif not (16 <= idx.shape[0] <= 128 and idx.shape[0] % 16 == 0):
        why = "indices.shape[0] must be a multiple of 16 in [16, 128]"
    elif idx.free_size > 1 and idx.shape[0] != 128:
        why = "with several index columns indices.shape[0] must be 128"
    elif idx.size < s[0]:
        why = "indices must hold at least src.shape[0] entries"
    if why is not None:
        raise SimError(f"{api}: {why}", f"src {list(s)} {src.base.dtype}, indices "
                       f"{list(idx.shape)} {idx.dtype}")
    legal = _T_AXES[len(s)]
    if axes is not None and tuple(int(a) for a in axes) != legal:
        raise SimError(f"{api}: unsupported permutation", tuple(axes), f"use {legal}")
    want = tuple(s[a] for a in legal)
    if not isinstance(dst, Tensor) or dst.alloc.mem is not Mem.SBUF:
        raise SimError(f"{api}: an indirect transpose writes SBUF", repr(dst))
    if dst.dtype != src.base.dtype:
        raise SimError(f"{api}: src and dst dtypes differ", f"{src.base.dtype} vs {dst.dtype}")
    if math.prod(want) != dst.size or dst.shape[0] != want[0]:
        raise SimError(f"{api}: dst shape must be the permuted src shape",
                       f"{list(dst.shape)} vs {list(want)}")
    if run.numerics:
        flat = src.base.np().reshape(-1)
        addr, ok = _addresses(src, flat.size, skip, api)
        cur = np.transpose(dst.np().reshape(want), np.argsort(legal)).reshape(ok.shape)
        vals = np.where(ok, flat[np.where(ok, addr, 0)], cur).reshape(s)
        write(dst, np.transpose(vals, legal))
    n = math.prod(s)
    item = src.base.dtype.itemsize
    emit(run, Engine.DMA, api, (src.base, idx), (dst,), dst.shape[0], dst.free_size,
         src.base.dtype, dst.dtype, n_in=2, nbytes=n * item, hbm_bytes=n * item,
         chunk_bytes=item, transpose=True, attrs={"indirect": True})


def scalar_ap(base: Tensor, pattern, offset: int, scalar_offset, indirect_dim=0, dtype=None,
              vector_offset=None, **kw) -> Tensor:
    """``base.ap(pattern, offset, scalar_offset=t, indirect_dim=d)``: scalar indirection, one
    dynamic offset for every partition (SH nki/api/nki/isa/__init__.py ``dma_copy``, "Indirect
    addressing": the offset is "a 1x1 SBUF tensor or a VirtualRegister"; SH
    nki/api/nki/language/__init__.py ``NkiTensor.ap``: ``indirect_dim`` is the "dimension in
    self.shape whose stride scales the indirect scalar/vector offset"; nki 0.3 and later).
    The view starts ``t * stride(d)`` elements further than ``offset``. The simulator runs
    eagerly, so the value is the tile's content when ``.ap()`` is called, i.e. when the DMA it
    feeds is issued; a cost-only run has no values and takes 0. The result is an ordinary
    view: its bounds are checked as for a static ``.ap()`` (an offset that leaves the tensor
    is an error). A VirtualRegister offset is the integer it holds (nkigen.sim.nki.registers)."""
    _v2_indirect()
    if vector_offset is not None:
        raise SimError("vector_offset and scalar_offset are mutually exclusive",
                       "both given", "pass one of them")
    for k, v in kw.items():
        if v is not None and k != "name":
            raise UnsupportedError(f"tensor.ap({k}=...) with scalar_offset")
    t = scalar_offset
    from nkigen.sim.nki.registers import VirtualRegister
    if isinstance(t, VirtualRegister):
        reg_value = t.get("tensor.ap(scalar_offset=register)") \
            if state.current().numerics else 0
    elif not isinstance(t, Tensor):
        raise SimError("scalar_offset must be a 1x1 SBUF tensor or a VirtualRegister",
                       type(t).__name__)
    elif t.alloc.mem is not Mem.SBUF or t.size != 1:
        raise SimError("scalar_offset must be a 1x1 SBUF tensor (or a register)",
                       f"{list(t.shape)} in {t.alloc.mem.name}",
                       "copy the index into a (1, 1) SBUF tile")
    elif t.dtype.kind not in "iu":
        raise UnsupportedError(f"tensor.ap(scalar_offset=<{t.dtype} tile>)",
                               "hold the index in an int32/uint32 tile")
    if dtype is not None and dt.as_dtype(dtype) != base.dtype:
        raise UnsupportedError("tensor.ap(dtype=..., scalar_offset=...)")
    d = int(indirect_dim)
    if not 0 <= d < len(base.shape):
        raise SimError("indirect_dim must name a dimension of the tensor .ap() is called on",
                       f"indirect_dim={d} for shape {list(base.shape)}")
    if isinstance(t, VirtualRegister):
        value = reg_value
    else:
        value = int(t.np().reshape(-1)[0]) if state.current().numerics else 0
    try:
        view = base.ap(pattern, int(offset or 0) + value * int(base.strides[d]))
        key = id(view)
        _DYNAMIC[key] = weakref.ref(view, _forget(key))
        return view
    except SimError as e:
        if value == 0 or not e.rule.startswith("access pattern out of bounds"):
            raise
        return OutOfBounds(e)       # type: ignore[return-value]


# scalar-indirect views (a dynamic start address), by id: nisa.dma_copy refuses them with
# dge_mode=none (nkigen.sim.nki.isa.dge_rules)
_DYNAMIC: dict[int, weakref.ref] = {}


def _forget(key: int) -> Callable[[weakref.ref], None]:
    def drop(_ref: weakref.ref) -> None:
        _DYNAMIC.pop(key, None)
    return drop


def is_dynamic(t: object) -> bool:
    """Whether ``t`` is a view made by ``.ap(scalar_offset=...)`` (or the out-of-bounds stand-in
    of one)."""
    if isinstance(t, OutOfBounds):
        return True
    ref = _DYNAMIC.get(id(t))
    return ref is not None and ref() is t


class OutOfBounds:
    """A scalar-indirect view whose dynamic offset left the tensor. ``nisa.dma_copy`` with
    ``oob_mode=nisa.oob_mode.skip`` skips the transfer ("skip the DMA transfer for a given
    dynamic address ... when it is out of bound", SH nki/api/nki/isa/__init__.py dma_copy, nki
    0.3); any other use raises the bounds error (``oob_mode.error``, the default)."""

    def __init__(self, error: SimError):
        self.error = error

    def __getattr__(self, name: str):
        raise self.error

    def __repr__(self) -> str:
        return "OutOfBounds()"


def _whole_view(t: Tensor) -> bool:
    """The whole allocation, possibly reshaped (row-major, offset 0)."""
    return t.is_whole() or (t.offset == 0 and t.size == math.prod(t.alloc.shape)
                            and t.strides == _row_major(t.shape))


def gather(dst: Tensor, src: IndirectAP, skip: bool, api: str = "dma_copy") -> None:
    run = state.current()
    if isinstance(dst, IndirectAP):
        if isinstance(src, IndirectAP):
            raise UnsupportedError("an indirect dma_copy with both sides indirect")
        scatter(dst, src, skip, api)
        return
    _one_column(src, api)
    if dst.alloc.mem is not Mem.SBUF:
        raise SimError(f"{api}: an indirect DMA gathers into SBUF", repr(dst))
    n = math.prod(src.nums)
    if n != dst.size:
        raise SimError(f"{api}: dst and src element counts differ",
                       f"{list(dst.shape)} vs {list(src.nums)}")
    if run.numerics:
        flat = src.base.np().reshape(-1)
        addr, ok = _addresses(src, flat.size, skip, api)
        vals = flat[np.where(ok, addr, 0)]
        if vals.dtype != dst.dtype:
            vals = vals.astype(np.float32)
        cur = dst.np().reshape(ok.shape)
        write(dst, np.where(ok, vals, cur) if not ok.all() else vals)
    item = src.base.dtype.itemsize
    row = src.nums[-1] if len(src.nums) > 1 and src.steps[-1] == 1 else 1
    emit(run, Engine.DMA, api, (src.base, src.idx), (dst,), dst.shape[0], dst.free_size,
         src.base.dtype, dst.dtype, n_in=2, nbytes=n * item, hbm_bytes=n * item,
         chunk_bytes=row * item, attrs={"indirect": True})


def _same_view(a: Tensor, b: Tensor) -> bool:
    return (a.alloc is b.alloc and a.offset == b.offset and a.shape == b.shape
            and a.strides == b.strides)


def _same_ap(a: IndirectAP, b: IndirectAP) -> bool:
    return (a.base.alloc is b.base.alloc and a.steps == b.steps and a.nums == b.nums
            and a.offset == b.offset and _same_view(a.idx, b.idx))


def rmw(dst, srcs, skip: bool, unique: bool, api: str = "dma_compute") -> None:
    """``nisa.dma_compute`` read-modify-write with a ``vector_offset`` source (SH
    nki/api/nki/isa/__init__.py dma_compute, nki 0.3): scatter RMW ``dst(HBM)[idx] +=
    src(SBUF)`` (dst and one source the same indirect view) or gather RMW ``dst(SBUF) +=
    src(HBM)[idx]`` (one source the dst view); exactly two sources and unique_indices=True
    (the rows a scatter hits must be distinct: a repeated row is a located error). Float32
    add, cast to the destination's dtype; out-of-range rows raise or, with oob_mode.skip, are
    skipped."""
    run = state.current()
    srcs = list(srcs)
    if len(srcs) != 2:
        raise SimError(f"{api}: a read-modify-write with vector_offset takes exactly 2 sources",
                       len(srcs))
    if not unique:
        raise SimError(f"{api}: unique_indices must be True with vector_offset (non-unique "
                       "indices are not supported yet)", unique, "pass unique_indices=True")
    if isinstance(dst, IndirectAP):                            # scatter RMW
        same = [x for x in srcs if isinstance(x, IndirectAP) and _same_ap(x, dst)]
        data: list[Tensor] = [x for x in srcs if isinstance(x, Tensor)]
        if len(same) != 1 or len(data) != 1 or data[0].alloc.mem is not Mem.SBUF:
            raise SimError(f"{api}: a scatter read-modify-write reads dst's own indirect view "
                           "and one SBUF tile", repr(srcs))
        src = data[0]
        _one_column(dst, api)
        if math.prod(dst.nums) != src.size:
            raise SimError(f"{api}: dst and src element counts differ",
                           f"{list(dst.nums)} vs {list(src.shape)}")
        if run.numerics:
            whole = dst.base.np().reshape(-1).copy()
            addr, ok = _addresses(dst, whole.size, skip, api)
            hit = addr[ok]
            if np.unique(hit).size != hit.size:
                raise SimError(f"{api}: the scatter rows repeat (unique_indices=True promises "
                               "distinct indices)", "duplicate rows",
                               "make the index tile's rows distinct")
            vals = src.np().reshape(ok.shape)[ok].astype(np.float32)
            whole[hit] = (whole[hit].astype(np.float32) + vals).astype(whole.dtype)
            write(dst.base, whole)
        side, reads, writes = src, (src, dst.idx, dst.base), (dst.base,)
        ap = dst
    else:                                                      # gather RMW
        ind: list[IndirectAP] = [x for x in srcs if isinstance(x, IndirectAP)]
        same_t: list[Tensor] = [x for x in srcs if isinstance(x, Tensor) and _same_view(x, dst)]
        if len(ind) != 1 or len(same_t) != 1 or dst.alloc.mem is not Mem.SBUF:
            raise SimError(f"{api}: a gather read-modify-write adds an indirect HBM view into "
                           "an SBUF dst that is also the other source", repr(srcs))
        ap = ind[0]
        _one_column(ap, api)
        if math.prod(ap.nums) != dst.size:
            raise SimError(f"{api}: dst and src element counts differ",
                           f"{list(dst.shape)} vs {list(ap.nums)}")
        if run.numerics:
            flat = ap.base.np().reshape(-1)
            addr, ok = _addresses(ap, flat.size, skip, api)
            vals = flat[np.where(ok, addr, 0)].astype(np.float32)
            cur = dst.np().reshape(ok.shape).astype(np.float32)
            write(dst, np.where(ok, cur + vals, cur))
        side, reads, writes = dst, (ap.base, ap.idx, dst), (dst,)
    n = math.prod(ap.nums)
    item = ap.base.dtype.itemsize
    emit(run, Engine.DMA, api, reads, writes, side.shape[0], side.free_size, ap.base.dtype,
         side.dtype, n_in=2, nbytes=2 * n * item, hbm_bytes=2 * n * item,
         chunk_bytes=(ap.nums[-1] if ap.steps[-1] == 1 else 1) * item,
         attrs={"indirect": True, "rmw": "add"})
