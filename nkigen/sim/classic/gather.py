"""Indirect DMA: ``data[idx_tile[i_p, 0], i_f]`` (gather on load, scatter on store).

Stage: simulate (classic API layer). One dim of an HBM tensor is indexed per partition by the
values of an on-chip index tile ``[P, 1]`` (loaded with ``nl.load`` or made by ``nisa.iota``);
the other dims take affine arange expressions over the free axes, or ints. A
:class:`GatherView` is what such an index returns; ``nl.load`` / ``nl.store`` /
``nisa.dma_copy`` move its lanes with one DMA instruction that reads the index tile.
Out-of-bounds rows raise (``oob_mode.error``, the default) or are dropped (``oob_mode.skip``);
masked-out lanes are never checked. In cost-only runs the index values are unknown: the trace
records the same instruction, touching the whole HBM tensor.
"""

from __future__ import annotations

import numpy as np

from nkigen.hw import Engine
from nkigen.sim import state
from nkigen.sim.classic.index import Box, Expr
from nkigen.sim.emit import emit, write
from nkigen.sim.errors import SimError
from nkigen.sim.tensor import Tensor
from nkigen.sim.trace import Mem


class GatherView:
    """``base[..., idx_tile, ...]``: lanes (p, f...) of an HBM tensor, row of dim ``dim`` from
    ``idx[p]``; ``consts`` / ``coefs`` give the other dims as in an arange index."""

    def __init__(self, base: Tensor, dim: int, idx: Tensor, consts: list[int],
                 coefs: list[list[int]], shape: tuple[int, ...]):
        self.base, self.dim, self.idx = base, dim, idx
        self.consts, self.coefs, self.shape = consts, coefs, shape
        self.dtype = base.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"GatherView({self.base!r}, dim={self.dim}, grid={list(self.shape)})"

    def indices(self, box: Box | None, skip: bool, api: str):
        """Per-dim index arrays over the box's lanes and a lane-validity mask."""
        rng = [(0, n) if box is None else (box[g].start, box[g].stop)
               for g, n in enumerate(self.shape)]
        sub = tuple(hi - lo for lo, hi in rng)
        axes = [np.arange(lo, hi).reshape([-1 if a == g else 1 for a in range(len(sub))])
                for g, (lo, hi) in enumerate(rng)]
        rows = self.idx.np().reshape(self.idx.shape[0], -1)[:, 0].astype(np.int64)
        rows = rows[rng[0][0]:rng[0][1]].reshape((-1,) + (1,) * (len(sub) - 1))
        out, ok = [], np.ones(sub, bool)
        for d in range(self.base.ndim):
            v = np.zeros(sub, np.int64)
            if d == self.dim:
                v += rows
            else:
                v += self.consts[d]
                for k, ax in zip(self.coefs[d], axes):
                    v += k * ax
            inb = (v >= 0) & (v < self.base.shape[d])
            if not inb.all() and not skip:
                bad = v[~inb].flat[0]
                raise SimError(f"{api}: indirect index out of bounds",
                               f"index {int(bad)} on dim {d} of size {self.base.shape[d]}",
                               "keep the index tile in range, or pass oob_mode=nisa.oob_mode.skip")
            ok &= inb
            out.append(v)
        return tuple(np.where(ok, v, 0) for v in out), ok


def make(base: Tensor, key: tuple, pos: int, advanced) -> GatherView:
    """``base[key]`` where ``key[pos]`` is an index tile; ``advanced`` resolves the rest."""
    idx = key[pos]
    if idx.dtype.kind not in "iu":
        raise SimError("an indirect index tile must have an integer dtype", repr(idx),
                       "load the indices as int32/uint32 or make them with nisa.iota(dtype=int32)")
    from nkigen.sim.nki.indirect import narrow_index
    narrow_index(idx.dtype)
    if idx.alloc.mem is Mem.HBM or idx.shape[0] > 128 or idx.free_size != 1:
        raise SimError("an indirect index must be an on-chip [P, 1] tile (the dynamic index "
                       "stands for the partition or block dim: err_indirect_indices_free_dim)",
                       repr(idx),
                       "load the indices with nl.load(idx[i_p]) or make them with nisa.iota")
    others = [k for i, k in enumerate(key) if i != pos and isinstance(k, Expr)]
    nd = max([e.ndim for e in others] + [2])
    p = idx.shape[0]
    rows = Expr(0, {nd - 1: (p, 1)}, nd)         # stands for the tile: grid axis 0, size P
    view = advanced(base, key[:pos] + (rows,) + key[pos + 1:], -1, lazy=True)
    coefs = [list(c) for c in view.coefs]
    consts = list(view.consts)
    for a in range(1, len(view.shape)):
        if coefs[pos][a]:
            raise SimError("the indirect index tile stands for the partition axis only", repr(key))
    for d, c in enumerate(coefs):
        if d != pos and c[0] and view.shape[0] > 1:
            raise SimError("with an indirect index, other dims may use free axes only (the "
                           "dynamic index is the partition dim: err_indirect_indices_free_dim)",
                           repr(key), "index them with nl.arange(F)[None, :] expressions")
    return GatherView(base, pos, idx, consts, coefs, tuple(view.shape))


def _side(t) -> Tensor:
    return t.base if isinstance(t, GatherView) else t


def move(dst, src, box: Box | None, api: str, skip: bool = False, add: bool = False) -> None:
    """One indirect DMA: ``src`` -> ``dst`` over ``box`` (one side is a GatherView, the other
    a tile or a plain view of the box's shape); ``add``: the DMA adds into HBM (``dst_rmw_op=
    np.add`` / ``nl.atomic_rmw``; rows hit twice get both values)."""
    run = state.current()
    if add and not isinstance(dst, GatherView):
        raise SimError(f"{api}: an accumulating DMA needs an indirect destination", repr(dst),
                       "index the HBM destination with an index tile")
    g = src if isinstance(src, GatherView) else dst
    other = dst if g is src else src
    if isinstance(other, GatherView):
        raise SimError(f"{api}: both sides indirect", repr(other))
    if other.alloc.mem is not Mem.SBUF:
        raise SimError(f"{api}: an indirect DMA moves between HBM and SBUF", repr(other))
    n = other.size
    if run.numerics:
        ix, ok = g.indices(box, skip, api)
        data = g.base.np()
        if g is src:
            vals = data[ix].astype(np.float32) if data.dtype != other.dtype else data[ix]
            cur = other.np().reshape(ok.shape)
            write(other, np.where(ok, vals, cur) if not ok.all() else vals)
        else:
            vals = other.np().reshape(ok.shape)
            at = tuple(v[ok] for v in ix)
            if add:
                acc = data.astype(np.float32)
                np.add.at(acc, at, vals[ok].astype(np.float32))
                data[at] = acc[at].astype(data.dtype)
            else:
                data[at] = vals[ok].astype(data.dtype)
    whole = Tensor(g.base.alloc, 0, g.base.alloc.shape,
                   _row_major(g.base.alloc.shape))
    item = g.base.dtype.itemsize
    last = g.shape[-1] if box is None or len(box) < len(g.shape) else \
        box[len(g.shape) - 1].stop - box[len(g.shape) - 1].start   # a mask shortens the rows
    row = last if g.coefs and g.coefs[-1][-1] == 1 else 1
    reads = (whole, g.idx) if g is src else (other, g.idx) + ((whole,) if add else ())
    writes = (other,) if g is src else (whole,)
    emit(run, Engine.DMA, "dma_copy", reads, writes, other.shape[0], other.free_size,
         _side(src).dtype, _side(dst).dtype, n_in=2, nbytes=n * item, hbm_bytes=n * item,
         chunk_bytes=row * item, attrs={"indirect": True, **({"rmw": "add"} if add else {})})


def _row_major(shape) -> tuple[int, ...]:
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= n
    return tuple(reversed(out))
