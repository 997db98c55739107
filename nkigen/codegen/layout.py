"""Layout choice for row statements: which left-hand index goes on the partitions.

Stage: plan (helper of :mod:`nkigen.codegen.rows` placements). Input: a row statement of rank
>= 3 and the spec's sizes; output: the partition index that needs the fewest row tiles at the
spec's representative sizes (its largest test case, else each free size's ``max``). Every row
tile pays the fixed costs of its DMAs and instructions (S25
general/nki/arch/trainium_inferentia2_arch.rst "Data movement between HBM and SBUF using DMAs":
overheads per DMA buffer and transfer; S29 nki/deep-dives/nki-dma-bandwidth-guide.rst), so the
index that fills the partitions with the fewest tiles wins: ``[C, OH, OW]`` pooling puts the
channels on the partitions when ``OH < 128`` (one tile of 128 channels per output row instead
of one tile of ``OH`` rows per channel), and 3-D layernorm keeps the sequence on the partitions
over a short batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import sympy

from nkigen.analysis.cases import _volume
from nkigen.analysis.sizes import complete_sizes, eval_size_expr
from nkigen.diagnostics import NkigenError
from nkigen.hw import PMAX
from nkigen.ir import Spec

CAP = 2048     # a free size without a test case or max is taken at this value


def representative_sizes(spec: Spec) -> dict[str, int] | None:
    """The largest test case (by input elements) with derived sizes, else the maxes."""
    cases = [dict(c) for c in spec.tests.cases]
    if cases:
        free = max(cases, key=lambda c: _volume(spec, c))
    else:
        free = {s.name: min(s.max, CAP) if s.max is not None else CAP
                for s in spec.free_sizes}
    try:
        return complete_sizes(spec, free)
    except NkigenError:
        return None


def largest_sizes(spec: Spec) -> dict[str, int] | None:
    """Every free size at its ``max`` (:data:`CAP` without one, rounded down to its
    ``multiple_of``), derived sizes computed; None when that assignment breaks a
    constraint."""
    free = {}
    for s in spec.free_sizes:
        v = min(s.max, CAP) if s.max is not None else CAP
        m = s.multiple_of or 1
        free[s.name] = max(v // m * m, m)
    try:
        return complete_sizes(spec, free)
    except NkigenError:
        return None


def row_tiles(extents: Mapping[str, sympy.Expr], sizes: Mapping[str, int],
              p: str, loops: tuple[str, ...]) -> int | None:
    """Row tiles of a placement: ceil(extent(p) / 128) times every outer loop's extent."""
    n = 1
    for idx in (p, *loops):
        v = eval_size_expr(sympy.sympify(extents[idx]), sizes)
        if v is None:
            return None
        n *= math.ceil(v / PMAX) if idx == p else v
    return n


def best_partition(spec: Spec, extents: Mapping[str, sympy.Expr], lhs: tuple[str, ...],
                   current: str, candidates: tuple[str, ...] | None = None) -> str:
    """The index of ``candidates`` (default ``lhs[:-1]``: every index but the free one) with
    the fewest row tiles, the others being outer loops (ties keep ``current``)."""
    cands = lhs[:-1] if candidates is None else candidates
    sizes = representative_sizes(spec)
    if sizes is None:
        return current
    best, best_n = current, row_tiles(extents, sizes, current,
                                      tuple(i for i in cands if i != current))
    if best_n is None:
        return current
    for p in cands:
        n = row_tiles(extents, sizes, p, tuple(i for i in cands if i != p))
        if n is not None and n < best_n:
            best, best_n = p, n
    return best


def row_partition(spec: Spec, extents: Mapping[str, sympy.Expr], lhs: tuple[str, ...]) -> str:
    """The partition index the row lowering tries first for a statement with left-hand indices
    ``lhs`` (:func:`nkigen.codegen.rows.placements`): the only index of a rank-1 statement,
    else the second-to-last one, except that from rank 3 a short fixed middle dimension (the
    two halves of ``[M, 2, H]``) gives way to a long leading one, and then the index with the
    fewest row tiles wins (:func:`best_partition`)."""
    if len(lhs) == 1:
        return lhs[0]
    p = lhs[-2]
    if len(lhs) >= 3:
        small = sympy.sympify(extents.get(lhs[-2], 0))
        if small.is_number and int(small) < PMAX and \
                not sympy.sympify(extents.get(lhs[0], 0)).is_number:
            p = lhs[0]
        p = best_partition(spec, extents, lhs, p)
    return p
