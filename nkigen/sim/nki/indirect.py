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

    def addresses(self) -> np.ndarray:
        rows = self.idx.np().reshape(self.idx.shape[0], -1)[: self.nums[0], 0].astype(np.int64)
        v = np.zeros((1,), dtype=np.int64)
        for s, k in zip(self.steps[1:], self.nums[1:]):
            v = (v[:, None] + s * np.arange(k, dtype=np.int64)[None, :]).reshape(-1)
        return self.offset + rows[:, None] * self.steps[0] + v[None, :]


def vector_ap(base: Tensor, pattern, offset: int, vector_offset, indirect_dim=0,
              **kw) -> IndirectAP:
    """``base.ap(pattern, offset, vector_offset=idx, indirect_dim=0)``."""
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
    if idx.dtype.kind not in "iu" or idx.free_size != 1:
        raise SimError("vector_offset must be an integer (P, 1) tile", repr(idx),
                       "load the ids into an int32/uint32 tile of one column")
    if not pattern or int(pattern[0][1]) > idx.shape[0]:
        raise SimError("the pattern's partition count exceeds the vector_offset tile",
                       f"{list(map(list, pattern))} vs {list(idx.shape)}")
    return IndirectAP(base, pattern, offset, idx)


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
    is an error). Not modelled: a VirtualRegister offset (registers are not simulated)."""
    if vector_offset is not None:
        raise SimError("vector_offset and scalar_offset are mutually exclusive",
                       "both given", "pass one of them")
    for k, v in kw.items():
        if v is not None and k != "name":
            raise UnsupportedError(f"tensor.ap({k}=...) with scalar_offset")
    t = scalar_offset
    if not isinstance(t, Tensor):
        raise UnsupportedError(f"tensor.ap(scalar_offset={type(t).__name__})",
                               "registers are not simulated: pass a 1x1 SBUF tile")
    if t.alloc.mem is not Mem.SBUF or t.size != 1:
        raise SimError("scalar_offset must be a 1x1 SBUF tensor (or a register)",
                       f"{list(t.shape)} in {t.alloc.mem.name}",
                       "copy the index into a (1, 1) SBUF tile")
    if t.dtype.kind not in "iu":
        raise UnsupportedError(f"tensor.ap(scalar_offset=<{t.dtype} tile>)",
                               "hold the index in an int32/uint32 tile")
    if dtype is not None and dt.as_dtype(dtype) != base.dtype:
        raise UnsupportedError("tensor.ap(dtype=..., scalar_offset=...)")
    d = int(indirect_dim)
    if not 0 <= d < len(base.shape):
        raise SimError("indirect_dim must name a dimension of the tensor .ap() is called on",
                       f"indirect_dim={d} for shape {list(base.shape)}")
    value = int(t.np().reshape(-1)[0]) if state.current().numerics else 0
    try:
        return base.ap(pattern, int(offset or 0) + value * int(base.strides[d]))
    except SimError as e:
        if value == 0 or not e.rule.startswith("access pattern out of bounds"):
            raise
        return OutOfBounds(e)       # type: ignore[return-value]


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
        raise UnsupportedError("indirect dma_copy destinations (scatter)")
    if dst.alloc.mem is not Mem.SBUF:
        raise SimError(f"{api}: an indirect DMA gathers into SBUF", repr(dst))
    n = math.prod(src.nums)
    if n != dst.size:
        raise SimError(f"{api}: dst and src element counts differ",
                       f"{list(dst.shape)} vs {list(src.nums)}")
    if run.numerics:
        addr = src.addresses()
        flat = src.base.np().reshape(-1)
        ok = (addr >= 0) & (addr < flat.size)
        if not ok.all() and not skip:
            bad = int(addr[~ok].flat[0])
            raise SimError(f"{api}: indirect index out of bounds",
                           f"element {bad} of a tensor with {flat.size}",
                           "keep the index tile in range, or pass oob_mode=nisa.oob_mode.skip")
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
