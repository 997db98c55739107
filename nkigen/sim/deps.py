"""Loop-carried dependency check for ``nl.affine_range`` (numerics runs).

Stage: simulate (core). ``affine_range`` promises that iterations are independent (the compiler
may reorder, vectorise or pipeline them), but the simulator runs them in order, which would hide
a kernel that relies on order. So an instruction raises when, inside a running affine loop and on
a tensor allocated *outside* that loop, it

* reads an element another iteration of the loop wrote (read-after-write across iterations), or
* writes an element another iteration of the loop wrote (write-after-write), or
* writes an element an earlier iteration of the loop read (write-after-read),

unless both accesses are accumulations (``nc_matmul`` into PSUM, or a read-modify-write
``dst = dst <op> x`` with an associative op), which the docs allow in affine loops. Tensors
allocated inside the loop body are private to their iteration and never checked. The check runs
for the classic API only (S25 nki.language.affine_range, nki.errors
err_unexpected_output_dependencies): the current API's affine_range is an alias of ``range``
(SH nki/api/nki/language affine_range, nki 0.3), so its iterations run in order.

The same check runs across the programs of an SPMD grid (they run in parallel on hardware; the
simulator runs them one after another): a program may not read or overwrite what another
program wrote in a kernel input or shared_hbm tensor.

Bookkeeping: ``run.epoch`` counts loop iterations started; each written element of a checked
tensor is tagged ``2 * epoch + accumulation`` (one int32 array per allocation, made on the first
write inside an affine loop). An earlier write conflicts with loop L when its epoch lies in
``[L.inst_start, L.iter_start)``: written in this run of L, but in an earlier iteration. Per
allocation, the latest write epochs let most accesses skip the element-wise check. Reads are
logged per allocation and applied to its read tags only when it is written in a loop (kernel
inputs, read every iteration and never written, never pay for the element-wise tags).
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from nkigen.sim.errors import SimError
from nkigen.sim.tensor import SHARED_HBM


class LoopState:
    """One running affine loop."""

    __slots__ = ("first_id", "inst_start", "iter_start", "starts", "spmd")

    def __init__(self, first_id: int, epoch: int, spmd: bool = False):
        self.first_id = first_id        # allocations with smaller ids are outside the loop
        self.spmd = spmd                # the programs of an SPMD grid: shared_hbm is shared
        self.inst_start = epoch         # epoch when this run of the loop started
        self.iter_start = epoch         # epoch when the current iteration started
        self.starts = [epoch]           # iteration start epochs (to name iterations)

    def next_iteration(self, epoch: int) -> None:
        self.iter_start = epoch
        self.starts.append(epoch)

    def iteration_of(self, epoch: int) -> int:
        return bisect_right(self.starts, epoch) - 1


def _tag_view(tags: np.ndarray, t) -> np.ndarray:
    return np.ndarray(t.shape, np.int32, buffer=tags, offset=t.offset * 4,
                      strides=tuple(s * 4 for s in t.strides))


def _find(loops, t, accum: bool) -> tuple[LoopState, int] | None:
    """The loop and the earlier epoch this access conflicts with, if any."""
    a = t.alloc
    latest = a.dep_na_epoch if accum else a.dep_w_epoch
    if a.phys is not None:
        return None                     # direct allocations are not tracked
    if latest < 0 or a.dep_tags is None:
        return None
    tv = None
    for st in loops:
        if st.iter_start == st.inst_start or latest < st.inst_start or (
                a.id >= st.first_id and not (st.spmd and a.buffer is SHARED_HBM)):
            continue
        if tv is None:
            tv = _tag_view(a.dep_tags, t)
            ep = tv >> 1
            if accum:
                ep = np.where((tv & 1) == 0, ep, -1)
        hit = (ep >= st.inst_start) & (ep < st.iter_start)
        if hit.any():
            return st, int(ep[hit].flat[0])
    return None


RLOG_MAX = 4096      # reads logged on one allocation before they are applied to its tags


def _record_reads(run, loops, reads) -> None:
    """Note read views of tensors allocated outside an affine loop, for the write-after-read
    check: each element's tag becomes the epoch of its first read in the running loop nest.
    The views are logged and applied to the tags only when the tensor is written in a loop
    (:func:`_apply_reads`) or the log is full: most such tensors are kernel inputs, read in
    every iteration and never written, whose tags nobody reads."""
    base = loops[0].inst_start
    epoch = run.epoch
    for t in reads:
        if t is None:
            continue
        a = t.alloc
        if a.phys is not None or a.data is None:
            continue
        if not any(a.id < st.first_id and not st.spmd for st in loops):
            continue
        log = a.dep_rlog
        if log is None:
            log = a.dep_rlog = []
        log.append((t.offset, t.shape, t.strides, base, epoch))
        if len(log) >= RLOG_MAX:
            _apply_reads(a)
        a.dep_r_epoch = epoch


def _apply_reads(a) -> None:
    """Apply the logged reads to the allocation's read tags, in order (the same element-wise
    updates the reads would have made one by one: a tag older than the read's loop nest becomes
    the read's epoch)."""
    log, a.dep_rlog = a.dep_rlog, None
    if not log:
        return
    tags = a.dep_rtags
    if tags is None:
        tags = a.dep_rtags = np.full(a.data.size, -1, np.int32)
    for off, shape, strides, base, epoch in log:
        tv = np.ndarray(shape, np.int32, buffer=tags, offset=off * 4,
                        strides=tuple(s * 4 for s in strides))
        tv[...] = np.where(tv < base, epoch, tv)


def _check_war(loops, t) -> None:
    """An iteration overwrites what an earlier iteration of the same affine loop read."""
    a = t.alloc
    tv = None
    for st in loops:
        if st.spmd or st.iter_start == st.inst_start or a.dep_r_epoch < st.inst_start \
                or a.id >= st.first_id:
            continue
        if tv is None:
            if a.dep_rlog:
                _apply_reads(a)
            tv = _tag_view(a.dep_rtags, t)
        hit = (tv >= st.inst_start) & (tv < st.iter_start)
        if hit.any():
            ep = int(tv[hit].flat[0])
            raise SimError(
                "loop-carried dependency in nl.affine_range: iteration "
                f"{len(st.starts) - 1} overwrites what iteration {st.iteration_of(ep)} read "
                "(write-after-read; iterations may run in any order)", repr(t),
                "use nl.sequential_range for this loop, or write a different tensor than the "
                "one read (e.g. a new tile per iteration)")


def check(run, reads, writes, accum: bool) -> None:
    loops = run.affine
    for t in reads:
        if t is None:
            continue
        a = t.alloc
        if a.dep_tags is None or a.phys is not None:
            continue                    # never written in an affine loop, or not tracked
        found = _find(loops, t, accum)
        if found is not None:
            st, ep = found
            if st.spmd:
                raise SimError(
                    f"SPMD race: program {len(st.starts) - 1} reads what program "
                    f"{st.iteration_of(ep)} wrote (programs run in parallel)", repr(t),
                    "programs may only read kernel inputs and what they wrote themselves")
            raise SimError(
                "loop-carried dependency in nl.affine_range: iteration "
                f"{len(st.starts) - 1} reads what iteration {st.iteration_of(ep)} wrote", repr(t),
                "use nl.sequential_range for this loop, or give each iteration its own tensor "
                "(allocate it inside the loop or index it by the loop variable)")
    if not accum:
        _record_reads(run, loops, reads)
    for t in writes:
        a = t.alloc
        if a.phys is not None:
            continue                    # direct allocations are not tracked
        if not accum and (a.dep_rtags is not None or a.dep_rlog):
            _check_war(loops, t)
        if a.id >= loops[-1].first_id and not (loops[0].spmd and a.buffer is SHARED_HBM):
            continue                    # allocated inside the innermost loop: private
        found = _find(loops, t, accum)
        if found is not None:
            st, ep = found
            if st.spmd:
                raise SimError(
                    f"SPMD race: program {len(st.starts) - 1} overwrites what program "
                    f"{st.iteration_of(ep)} wrote (programs run in parallel)", repr(t),
                    "index the output by nl.program_id so each program writes its own part")
            raise SimError(
                "affine_range iterations write the same location: iteration "
                f"{len(st.starts) - 1} overwrites what iteration {st.iteration_of(ep)} wrote",
                repr(t), "use nl.sequential_range, or index the destination by the loop variable")
        if a.dep_tags is None:
            a.dep_tags = np.full(a.data.size, -1, np.int32)
        _tag_view(a.dep_tags, t)[...] = 2 * run.epoch + (1 if accum else 0)
        a.dep_w_epoch = run.epoch
        if not accum:
            a.dep_na_epoch = run.epoch
