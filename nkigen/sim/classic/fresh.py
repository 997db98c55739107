"""Classic results and their destinations: ``t[...] = nisa.op(...)`` and ``acc += matmul``.

Stage: simulate (classic API layer). Every classic call allocates its result tile
(:func:`new_out`) and issues its instruction into it (:func:`issue`); the latest result is
remembered with that instruction (only the latest: nothing else may run in between, and the
operands it captured are released as soon as the next result is made). ``t[...] = result``
re-targets the instruction to write ``t`` directly, as the compiler does, and the result tile is
released as if it never existed (its SBUF/PSUM bytes and peak undone); ``psum_tile += matmul``
becomes one accumulating TensorE matmul (or a resetting one into a zeroed tile, see
:mod:`~nkigen.sim.classic.zeroing`). When re-targeting is not possible (another instruction came
in between, or the engine cannot write the destination) the honest lowering is used instead: a
copy, or a VectorE add.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

from nkigen.sim import batch, lang, rules, state
from nkigen.sim.classic import zeroing
from nkigen.sim.classic.index import Box, Empty
from nkigen.sim.classic.tile import BlockTensor, CTensor, IndexedView, tile, wrap
from nkigen.sim.emit import read_raw, write
from nkigen.sim.errors import SimError
from nkigen.sim.tensor import Tensor
from nkigen.sim.trace import Instr, Mem


@dataclass
class Fresh:
    """How a classic call produced its result tile (for re-targeting on assignment)."""

    instr: Instr
    redo: Callable[..., None]      # redo(dst, accumulate=False): re-issue into dst
    box: Box | None                # lanes written (None: all)
    matmul: bool = False
    peak: int | None = None        # the pool's peak before the result tile was allocated


# ---- fresh results: issue, re-target, accumulate ------------------------------------------
# The one re-targetable result: (run, tile, Fresh), weakly held. Keeping only the latest means
# the operands captured by ``redo`` are released as soon as the next result is made.
_PENDING: list = []


def _set_pending(run, out: CTensor | None, f: Fresh | None) -> None:
    _PENDING.clear()
    if out is not None:
        _PENDING.append((weakref.ref(run), weakref.ref(out), f))


def pending(value) -> Fresh | None:
    """The Fresh record of ``value`` if it is the latest classic result of the active run."""
    if not _PENDING:
        return None
    run, ref, f = _PENDING[0]
    if run() is not state.active() or ref() is not value:
        return None
    return f


def issue(out: CTensor, box: Box | Empty | None, redo: Callable[..., None],
          matmul: bool = False) -> CTensor:
    """Run ``redo(dst)`` into ``out`` (restricted to ``box``); ``out`` becomes the pending
    fresh result."""
    run = state.current()
    _set_pending(run, None, None)
    if isinstance(box, Empty):
        return out
    dst = out if box is None else Tensor.__getitem__(out, box)
    n = len(run.instrs)
    if matmul and box is None:
        redo(dst, later=True)       # the product is computed when read, or into its target
    else:
        redo(dst)
    if len(run.instrs) > n and run.instrs[-1].writes and \
            run.instrs[-1].writes[0].tensor == out.alloc.id:
        _set_pending(run, out, Fresh(run.instrs[-1], redo, box, matmul,
                                     _PEAK.get(out.alloc.id)))
    return out


def _same_view(a: Tensor, b: Tensor) -> bool:
    return a.alloc is b.alloc and a.offset == b.offset and a.shape == b.shape \
        and a.strides == b.strides


def _retarget(dst: Tensor, value: Tensor, accumulate: bool) -> bool:
    f = pending(value)
    run = state.current()
    if f is None or not run.instrs or run.instrs[-1] is not f.instr or not value.is_whole():
        return False
    if dst.alloc.mem is Mem.HBM or dst.bcast or dst.shape[0] != value.shape[0] \
            or dst.free_size != value.free_size:
        return False
    if f.box is not None:
        if dst.shape == value.shape:
            dst = Tensor.__getitem__(dst, f.box)
            value = Tensor.__getitem__(value, f.box)
        elif all(b.start == 0 and b.stop == n for b, n in zip(f.box[1:], value.shape[1:])):
            # a box of partitions only, into a destination of another free shape (a matmul
            # result [P, F] into a [P, rows, cols] PSUM view)
            dst = Tensor.__getitem__(dst, (f.box[0],))
            value = Tensor.__getitem__(value, (f.box[0],))
        else:
            return False
    zeroed = zeroing.matmul_accumulates(dst) if accumulate else None
    reset = accumulate and zeroed is False
    # ``acc += matmul`` into PSUM nothing has written yet: the first matmul overwrites
    # (S25 arch guide, near-memory accumulation in PSUM), as the compiler emits it
    first = bool(accumulate and f.matmul and zeroed is None and not rules.written_before(dst))
    popped = run.instrs.pop()
    numerics, run.numerics = run.numerics, False
    try:
        if f.matmul:
            f.redo(dst, accumulate=accumulate and not reset and not first)
        else:
            f.redo(dst)
    except SimError:                  # the engine cannot write dst directly: copy instead
        run.instrs.append(popped)
        return False
    finally:
        run.numerics = numerics
    if reset:
        zeroing.started(dst, run.instrs[-1])
    _uncharge(value, f.peak)
    if numerics:
        acc = accumulate and not first
        if f.matmul and value.alloc.pending is not None and batch.take(value.alloc, dst.np(),
                                                                        acc):
            pass                      # the product went straight into dst (not via value)
        elif acc:
            d = dst.np()
            d += read_raw(value).reshape(d.shape).astype(d.dtype, copy=False)
        else:
            write(dst, read_raw(value))
    return True


class LoopReduced:
    """The value of ``nl.loop_reduce(x, op, loop_indices, dtype=, mask=)`` (S25
    general/nki/api/nki/language/__init__.py loop_reduce, SDK 2.25): "equivalent to a
    tensor_tensor accumulate" -- the reduction's destination is the tile it is assigned into
    (``acc[...] = nl.loop_reduce(x, op=np.add, loop_indices=[k])`` is ``acc[...] = op(acc[...],
    x)`` on VectorE, an accumulation across the listed affine loops). Assigning it is its only
    use: the destination is what the compiler reduces into."""

    __slots__ = ("x", "op", "mask")

    def __init__(self, x, op: str, mask) -> None:
        self.x, self.op, self.mask = x, op, mask

    def apply(self, target: Tensor) -> None:
        from nkigen.sim.classic.index import mask_box
        from nkigen.sim.classic.tile import boxed, shape_of
        api = "nl.loop_reduce"
        x = tile(self.x) if isinstance(self.x, (IndexedView, BlockTensor)) else self.x
        grid = shape_of(x)
        box = mask_box(self.mask, grid, api)
        if isinstance(box, Empty):
            return                                # the mask kept no lane: no instruction
        dst = tile(target)
        if box is not None:
            dst, x = boxed(dst, box, grid), boxed(x, box, grid)
        zeroing.touch(dst, write=True)
        lang.inplace(self.op, tile(dst), tile(x))

    def __repr__(self) -> str:
        return ("nl.loop_reduce(...) result (the simulator models only its assignment into "
                "the accumulating tile: acc[...] = nl.loop_reduce(x, ...))")


def assign(target: Tensor, value) -> None:
    """``target[...] = value``; a result computed under a mask writes only its box (nothing
    when the mask kept no lane), as the instruction writing ``target`` directly would."""
    if isinstance(value, LoopReduced):
        value.apply(target)
        return
    if isinstance(value, IndexedView):
        value = value.materialize(None)
    if isinstance(value, Tensor) and _same_view(target, value):
        return                                    # the write-back of ``t[...] += v``
    box = _MASKED.get(value.alloc) if isinstance(value, Tensor) and value.is_whole() else None
    if isinstance(box, Empty):
        _skipped(value)
        return
    if box is not None and target.shape == value.shape and pending(value) is None:
        target, value = Tensor.__getitem__(target, box), Tensor.__getitem__(value, box)
    zeroing.touch(target, write=True)
    if isinstance(value, CTensor) and _retarget(target, value, False):
        _set_pending(state.current(), None, None)
        return
    lang.assign(target, tile(value))


def accumulate(dst: Tensor, value, name: str) -> Tensor:
    """``dst += value`` (and friends): a matmul result into PSUM accumulates on TensorE."""
    value = tile(value) if isinstance(value, (IndexedView, BlockTensor)) else value
    if isinstance(value, Tensor) and value.is_whole() \
            and isinstance(_MASKED.get(value.alloc), Empty):
        _skipped(value)
        return dst         # its mask kept no lane: the instruction was skipped, nothing to add
    f = pending(value) if name == "add" else None
    if f is not None and f.matmul and dst.alloc.mem is Mem.PSUM \
            and _retarget(dst, value, True):
        _set_pending(state.current(), None, None)
        return dst
    lang.inplace(name, tile(dst), tile(value) if isinstance(value, Tensor) else value)
    return dst





_PEAK: dict[int, int] = {}       # result alloc id -> its pool's peak before the allocation


_MASKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # result alloc -> its box


def new_out(shape, dtype, buffer, box) -> CTensor:
    """A result tile of the full ``shape``; NaN-filled when a mask leaves lanes unwritten
    (and then remembered with its box, see :func:`assign`)."""
    from nkigen.sim.tensor import new_tensor
    run = state.current()
    pool = run.psum if getattr(buffer, "mem", None) is Mem.PSUM else run.sbuf
    before = pool.peak
    out = wrap(new_tensor(tuple(shape), dtype, buffer, fill=box is not None))
    _PEAK.clear()
    _PEAK[out.alloc.id] = before
    if box is not None:
        _MASKED[out.alloc] = box
    return out


def _skipped(value: Tensor) -> None:
    """The result of an instruction whose mask kept no lane, assigned or accumulated: the
    compiler generates no instruction and no result tile (S25 general/nki/api/nki.api.shared.rst
    "NKI API Masking": the mask tells it to skip the instruction), so its bytes and peak are
    undone."""
    _uncharge(value, _PEAK.get(value.alloc.id))


def _uncharge(t: Tensor, peak: int | None) -> None:
    """A re-targeted result never exists on chip: release its bytes and undo its peak."""
    a = t.alloc
    pool = getattr(a, "pool", None)
    if pool is None:
        return
    pool.live -= a.charged
    a.pool, a.charged = None, 0
    if peak is not None:
        pool.peak = max(peak, pool.live)


def sub_box(box: Box | Empty | None, naxes: int, shape: tuple[int, ...]):
    """The first ``naxes`` axes of ``box`` as a box of ``shape`` (None if it is everything)."""
    if box is None or isinstance(box, Empty):
        return box
    b = tuple(box[:naxes])
    if all(s.start == 0 and s.stop == n for s, n in zip(b, shape)):
        return None
    return b
