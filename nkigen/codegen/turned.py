"""Transposed reads in row statements: read a turned copy instead of one element per descriptor.

Stage: plan (pre-pass, Spec -> Spec, run by :func:`nkigen.codegen.planner.plan_kernel` before
anything is lowered). The row lowering (:mod:`nkigen.codegen.rows`) puts a statement's first
left-hand index on the partitions. A rank-2 input read as ``x[j, p]`` with that index ``p`` in
its *inner* (contiguous) dimension is then loaded with a partition stride of one element and a
free stride of a whole row: every DMA descriptor moves one element (issue 14's cliff, which
:mod:`nkigen.codegen.transpose` removed for plain transposes only). Measured in the cost model
at 512 x 512 float32 on trn2: ``y[m, n] = 2.0 * x[n, m]`` 745.78 us and
``y[m, n] = z[m, n] + x[n, m]`` 750.98 us, against 10.86 us for the plain transpose; a column
max over 1024 x 1024 float32 2,981 us.

The rewrite: such an access reads a new HBM temp ``x_t[p, j]`` that a plain transpose statement
``x_t[p, j] = x[j, p]`` writes first, lowered by :mod:`nkigen.codegen.transpose` (512 x 512
super-blocks loaded and stored as contiguous rows, turned on chip: TensorE on NeuronCore-v3,
exact 32 x 32 VectorE pieces on NeuronCore-v2). The statement then loads ``x_t`` row by row.
The value is unchanged (a transpose moves values exactly on every path
:mod:`nkigen.codegen.transpose` takes), so the spec's reference is the same; the build verifies
the kernel against it as always.

Docs: a DMA buffer is a contiguous run of memory and per-buffer / per-transfer overheads are
amortised only by moving enough contiguous bytes (S25 general/nki/arch/trainium_inferentia2_arch
.rst "Data movement between HBM and SBUF using DMAs"; S29 nki/deep-dives/nki-dma-bandwidth-
guide.rst "Why Large Contiguous DMA Payloads Are Still Required").

Scans down the rows (``y[m, n] = cumsum(x[m, n], m)``, a recurrence along ``m``): the row
lowering runs a scan along the free axis, so it puts ``n`` on the partitions and would read
``x`` and store ``y`` one element per descriptor (339.58 us modelled at 300 x 200 float32 on
trn2). The scan is computed as ``y_t[n, m]`` from the turned inputs and ``y`` is its plain
transpose (16.19 us).

Applied only where it cannot lose: the tensor is an input of rank 2 or more (never written
by the kernel, so one copy serves every statement; integer data too, which
:mod:`nkigen.codegen.transpose` turns exactly on every target: VectorE on NeuronCore-v2, the
bit-accurate TensorE transpose mode or the DMA transpose unit from NeuronCore-v3), read with
distinct plain indices whose last one is the partition index of the row lowering's first
placement of the statement (:func:`nkigen.codegen.rows.placements`); the statement is an
``=`` statement that is not itself a plain transpose and that no whole-statement lowering
takes (colreduce, matvec, ...:
:func:`nkigen.codegen.planner.claimed`); and the input holds at least :data:`MIN_ELEMENTS`
elements at the spec's largest sizes (:func:`nkigen.codegen.layout.largest_sizes`; below that
the turn's fixed DMA costs can exceed the one-element descriptors it saves, and the kernel
serves the largest sizes too), with both turned dimensions (the scan's output: both its
dimensions) at least :data:`MIN_SIDE` there: with one of them 1 the layout is the same either
way (one element per partition, or one contiguous run), so the turn is pure cost
(benchmarks/prepass_fuzz.py: ``y[b, n] = max(x[b, m, n], m)`` at B = 3, M = 1, N = 2000 fp32
on trn2 60.01 us turned against 42.03 us not).
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import sympy

from nkigen.codegen.context import Build
from nkigen.codegen.prepass import (
    build_at,
    claims,
    extents_at,
    first_placement,
    fresh,
    substitute,
    taken_names,
)
from nkigen.ir import (
    Access,
    AssignOp,
    Role,
    Scan,
    Schedule,
    Spec,
    Statement,
    TensorDecl,
    accesses,
    index_symbol,
    walk,
)

MIN_ELEMENTS = 4096     # a 64 x 64 input: ~4096 one-element descriptors vs. the turn's ~4 DMAs
MIN_SIDE = 2            # extent of each turned dimension: a side of 1 leaves the layout as it is


@lru_cache(maxsize=64)
def rewrite(spec: Spec, target: str, schedule: Schedule | None = None) -> Spec:
    """``spec`` with every qualifying transposed read replaced (see the module docstring); the
    same object when there is none."""
    got = build_at(spec, target)
    if got is None:
        return spec
    sizes, b = got
    taken_whole: frozenset[int] | None = None
    epilogues: frozenset[int] = frozenset()
    taken = taken_names(spec)
    turned: dict[str, str] = {}          # input name -> its turned temp
    temps: list[TensorDecl] = []
    out: list[Statement] = []
    scan_out = False
    for k, st in enumerate(spec.statements):
        scan = _scan_turn(b, st, sizes)
        reads = _transposed_reads(b, st, sizes, scan is not None,
                                  st.lhs[-1] if scan is not None else None)
        if reads and taken_whole is None:
            taken_whole, epilogues = claims(spec, target, schedule or spec.schedule)
        if reads and k in (taken_whole or ()):
            reads = []      # a whole-statement lowering (colreduce, matvec, ...) takes it
        if not reads and scan is None:
            out.append(st)
            continue
        # the copies go before the statement, or before the contraction it is the eviction
        # epilogue of (the matmul lowering takes the statement right after it)
        at = len(out) - 1 if k in epilogues else len(out)
        rhs = st.rhs
        for a in reads:
            name = turned.get(a.tensor)
            src = spec.tensor(a.tensor)
            # the copy's own index names: the read's where plain, a fresh one for a divided
            # row index (x[n // 2, m]: the copy is the plain transpose, the statement then
            # reads x_t[m, n // 2] along its free axis)
            names = [str(i) if sympy.sympify(i).is_Symbol else
                     fresh(f"{a.tensor}_i{d}", taken | frozenset(st.lhs))
                     for d, i in enumerate(a.indices)]
            *lead, q, p = names
            swapped = (*lead, p, q)         # x_t[..., p, q] = x[..., q, p]
            if name is None:
                name = fresh(f"{a.tensor}_t", taken)
                turned[a.tensor] = name
                temps.append(TensorDecl(name, Role.TEMP,
                                        (*src.shape[:-2], src.shape[-1], src.shape[-2]),
                                        src.dtype, src.loc))
                out.insert(at, Statement(
                    st.position, name, swapped, AssignOp.ASSIGN,
                    Access(a.tensor, tuple(index_symbol(i) for i in names), a.loc), (),
                    f"{name}[{', '.join(swapped)}] = {a.tensor}[{', '.join(names)}]"
                    f": a turned copy of {a.tensor}, which statement {st.position} reads "
                    "transposed (codegen/turned.py)", st.loc))
            *lead_e, q_e, p_e = (sympy.sympify(i) for i in a.indices)
            rhs = substitute(rhs, a, Access(name, (*lead_e, p_e, q_e), a.loc))
        if scan is None:
            out.append(dataclasses.replace(st, rhs=rhs))
            continue
        # a scan down the rows of y[.., s, p]: computed as y_t[.., p, s] (rows along the scan,
        # stored whole), then turned into y by a plain transpose of the last two axes (batched
        # over the leading ones)
        *lead, s_, p_ = st.lhs
        dst = spec.tensor(st.target)
        name = fresh(f"{st.target}_t", taken)
        temps.append(TensorDecl(name, Role.TEMP, (*dst.shape[:-2], dst.shape[-1], dst.shape[-2]),
                                dst.dtype, dst.loc))
        tl = ", ".join((*lead, p_, s_))
        out.append(Statement(st.position, name, (*lead, p_, s_), AssignOp.ASSIGN, rhs, (),
                             f"{name}[{tl}] = statement {st.position} with its scan along "
                             f"{s_} on the rows (codegen/turned.py)", st.loc))
        out.append(Statement(st.position, st.target, st.lhs, AssignOp.ASSIGN,
                             Access(name, tuple(index_symbol(i) for i in (*lead, p_, s_))), (),
                             f"{st.target}[{', '.join(st.lhs)}] = {name}[{tl}]: the scan's rows "
                             "turned back (codegen/turned.py)", st.loc))
        scan_out = True
    if not turned and not scan_out:
        return spec
    return dataclasses.replace(spec, temps=spec.temps + tuple(temps), statements=tuple(out))


def _transposed_reads(b: Build, st: Statement, sizes: dict[str, int],
                      scan_ok: bool = False, part_index: str | None = None) -> list[Access]:
    """The reads of ``st`` to turn: their last index is the partition index of the row
    lowering's first placement, or ``part_index`` (a turned scan's: ``y_t[.., p, s]`` has its
    scan ``s`` on the free axis whatever the placement, so a read ``x[.., s, p]`` is strided
    along it)."""
    spec = b.spec
    plain_copy = isinstance(st.rhs, Access) and \
        all(sympy.sympify(i).is_Symbol for i in st.rhs.indices)   # codegen/transpose.py's
    if st.op is not AssignOp.ASSIGN or plain_copy \
            or (not scan_ok and any(isinstance(e, Scan) for e in walk(st.rhs))):
        return []
    # the partition index of the row lowering's first placement of the statement
    scan_turn = part_index is not None
    if part_index is None:
        pl = first_placement(b, st)
        if pl is None:
            return []
        part_index = pl.p
    part = index_symbol(part_index)
    got: list[Access] = []
    decls = {t.name: t for t in spec.tensors}
    # for a turned scan (its own stages: nothing fused to lose), a temp written by one
    # statement only, before this one, is as fixed as an input when it is read here
    # (codegen/gathered.py's gathered rows, scanned down their rows after); elsewhere a temp
    # stays as it is (a fused row group keeps it on chip: layernorm3d's mu)
    fixed: set[str] = set()
    if scan_turn:
        writers: dict[str, list[int]] = {}
        for k, s in enumerate(spec.statements):
            writers.setdefault(s.target, []).append(k)
        here = spec.statements.index(st)
        fixed = {n for n, ks in writers.items() if len(ks) == 1 and ks[0] < here}
    # the ids of a gather (table[ids[m, n], h]) are loaded as their own index column by
    # codegen/gather.py, straight from the input, and the substitution below does not reach
    # inside a gather's ids (prepass.substitute compares an access whole): a turned copy of
    # an access read only as ids would be written and never read (review 16 R16-1)
    reads = accesses(st.rhs)
    ids = [x for acc in reads for _, x in acc.indirect]
    for a in reads:
        if reads.count(a) == ids.count(a):
            continue
        t = decls.get(a.tensor)     # (an undeclared or unusable name: the planner reports it)
        if t is None or not (a.tensor.isascii() and a.tensor.isidentifier()) or \
                not (t.role is Role.INPUT or (t.role is Role.TEMP and t.name in fixed)) or \
                len(t.shape) < 2 or a.indirect or a in got:
            continue
        idx = [sympy.sympify(e) for e in a.indices]
        syms = [i.free_symbols for i in idx]
        # plain distinct indices, but the row index may be read divided (x[n // 2, m]: the
        # free index n // 2 of the turned copy, expanded on chip by tilexpr.expanded_load)
        if idx[-1] != part or not all(i.is_Symbol for j, i in enumerate(idx) if j != len(idx) - 2) \
                or len(syms[-2]) != 1 or not (idx[-2].is_Symbol or idx[-2].atoms(sympy.floor)) \
                or len(set().union(*syms)) != len(idx):
            continue
        dims = extents_at(t.shape, sizes)
        if dims and math.prod(dims) >= MIN_ELEMENTS and min(dims[-2:]) >= MIN_SIDE:
            got.append(a)
    return got


def _scan_turn(b: Build, st: Statement, sizes: dict[str, int]) -> Scan | None:
    """The scan of a statement ``y[.., s, p] = ...`` scanning along its last index but one
    ``s``: the row lowering puts ``s`` on the free axis and ``p`` on the partitions
    (:func:`nkigen.codegen.scan.scan_placement`), so ``y`` would be stored (and its inputs read)
    one element per descriptor (a rank-3 ``y[b, m, n] = cumsum(x[b, m, n], m)`` modelled
    24,603.64 us at 16 x 512 x 512 float32 on trn2); None otherwise, or below
    :data:`MIN_ELEMENTS` outputs or :data:`MIN_SIDE` on a turned side."""
    found = [e for e in walk(st.rhs) if isinstance(e, Scan)]
    if st.op is not AssignOp.ASSIGN or len(st.lhs) < 2 or len(found) != 1 or \
            found[0].index != st.lhs[-2]:
        return None
    dst = {t.name: t for t in b.spec.tensors}.get(st.target)
    if dst is None or len(dst.shape) != len(st.lhs):
        return None
    dims = extents_at(dst.shape, sizes)
    return found[0] if dims and math.prod(dims) >= MIN_ELEMENTS and \
        min(dims[-2:]) >= MIN_SIDE else None
