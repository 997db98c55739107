"""Tuner stage 1 (search space): an analysed spec -> the legal candidate schedules to rank.

Candidates vary what the planner honours: tile sizes per index role (within the hardware limits
of :mod:`nkigen.hw`), block factors of a contraction's stationary / moving / contraction indices,
which of a contraction's block loops runs outermost (``order``) and the number of rotating
buffers. The spec's own hints (if
any) and the planner's defaults (an empty schedule) are always candidates, so the tuner's pick
is never modeled slower than either.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from nkigen import hw
from nkigen.analysis import Analysis, IndexRole
from nkigen.ir import Schedule

# Tile choices per role, largest first; every value respects the role's hardware limit.
TILE_CHOICES: dict[IndexRole, tuple[int, ...]] = {
    IndexRole.PARTITION: (hw.PMAX,),
    IndexRole.STATIONARY: (hw.GEMM_STATIONARY_FMAX,),
    IndexRole.MOVING: (hw.GEMM_MOVING_FMAX, 256),
    IndexRole.FREE: (hw.PSUM_FMAX, 2048),
    IndexRole.BATCH: (1,),
}

# Block factors (tiles per block) for a contraction, by role.
BLOCK_CHOICES: dict[IndexRole, tuple[int, ...]] = {
    IndexRole.STATIONARY: (1, 2, 4, 8, 16),
    IndexRole.MOVING: (1, 2, 4),
    IndexRole.PARTITION: (1, 2, 4, 8),
}

BUFFER_CHOICES = (1, 2)


def schedule_key(s: Schedule) -> str:
    """A canonical text for a schedule: the cache key of a candidate and its table label."""
    if s.auto and not (s.tiles or s.block or s.order or s.buffers):
        return "default"
    parts = []
    if s.tiles:
        parts.append("tiles " + ",".join(f"{k}={v}" for k, v in sorted(s.tiles)))
    if s.block:
        parts.append("block " + ",".join(f"{k}={v}" for k, v in sorted(s.block)))
    if s.order:
        parts.append("order " + ",".join(s.order))
    if s.buffers:
        parts.append(f"buffers {s.buffers}")
    return "; ".join(parts) or "default"


def _main_indices(analysis: Analysis) -> list[tuple[str, IndexRole]]:
    main = {li.name for li in analysis.main.loop_indices}
    out: list[tuple[str, IndexRole]] = []
    for name, _ in analysis.extents:
        role = analysis.role(name)
        if name in main and role is not None:
            out.append((name, role))
    return out


def tile_candidates(analysis: Analysis) -> Iterator[tuple[tuple[str, int], ...]]:
    """Every combination of per-role tile choices over the main statement's indices."""
    idx = _main_indices(analysis)
    choices = [[(n, t) for t in TILE_CHOICES.get(r, (hw.PSUM_FMAX,))] for n, r in idx]
    for combo in itertools.product(*choices):
        yield tuple(sorted(combo))


def block_candidates(analysis: Analysis) -> Iterator[tuple[tuple[str, int], ...]]:
    """Block factors for a contraction (empty when the main statement is element-wise)."""
    idx = [(n, r) for n, r in _main_indices(analysis) if r in BLOCK_CHOICES]
    if not any(r is IndexRole.STATIONARY for _, r in idx):
        yield ()
        return
    choices = [[(n, b) for b in BLOCK_CHOICES[r]] for n, r in idx]
    for combo in itertools.product(*choices):
        yield tuple(sorted(c for c in combo if c[1] > 1))


def is_contraction(analysis: Analysis) -> bool:
    return any(analysis.role(n) is IndexRole.STATIONARY for n, _ in analysis.extents)


def seeds(analysis: Analysis) -> list[Schedule]:
    """Starting points: the planner's defaults and the spec's own hints."""
    out = [Schedule(auto=True)]
    own = analysis.spec.schedule
    if not own.auto:
        out.append(own)
    return out
