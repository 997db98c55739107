"""Stage analyze: :class:`nkigen.ir.Spec` -> :class:`Analysis` (sympy index analysis and proofs).

Public interface (codegen, reference, build and tuner depend on these names):

``analyze(spec, target=None) -> Analysis``
    Raises :class:`nkigen.diagnostics.NkigenError` listing every problem (disagreeing extents,
    missing ``ranges``, unprovable bounds, unsatisfiable constraints, undetermined sizes, bad
    ``tests.cases``, impossible schedule hints).
``Analysis``
    ``spec``; ``sizes`` (:class:`SizeInfo`, with derived definitions over free sizes);
    ``derived_order``; ``extents`` ((index, sympy extent) pairs) and ``.extent(name)``;
    ``extent_info`` (where each extent came from); ``statements`` (:class:`StatementAnalysis`:
    ``loop_indices`` = lhs, then einsum-summed, then reduction-bound with their ``Reduce``;
    ``lhs``/``rhs``/``accesses`` :class:`AccessMap` s with ``coeffs(dim)``, ``const(dim)``,
    ``matrix``, ``offset``; ``bounds`` (:class:`BoundsProof` per access dim); ``exactly_once``);
    ``main_statement`` / ``.main``; ``roles`` / ``.role(index)`` (:class:`IndexRole`); ``target``.
``tile_maps(analysis, statement, tiles) -> TileMaps``
    Per-tile maps for ``i = i_t * T + i_o``, tile counts and partial last tiles.
``check_schedule(analysis, schedule, target=None) -> list[Diagnostic]``
    The hardware checks of another schedule for an analysed spec (cheap; for the tuner).
``default_tiles(analysis) -> dict[str, int]``
    Schedule tiles where given, else 128 on partitions/stationary, 512 for free indices and 1 for
    batch indices (capped by a small known extent).
``bind_sizes(spec, shapes) -> dict[str, int]``
    All sizes (free and derived) from input shapes; constraint violations raise NkigenError.
``check_sizes(spec, sizes, field="sizes", loc=None) -> list[Diagnostic]``
``default_cases(spec) -> list[dict[str, int]]`` / ``invalid_cases(spec)``
    Small valid size assignments (one ragged when possible); assignments breaking one
    constraint with a substring of the rejection message (``size_rule_message`` words it).
``complete_sizes(spec, free_sizes) -> dict[str, int]``
    Free sizes plus every derived size, in dependency order.
``format_analysis(analysis) -> str``
    The human-readable report printed by ``nkigen explain``.

Modules, in pipeline order: ``sizes`` (derived order, constraints, binding) -> ``indices``
(extents, loop indices, affine maps) -> ``proofs`` (in bounds, exactly once; built on
``prover``) -> ``schedule`` (roles, hint checks) -> ``analyze`` (the driver); then ``tiling``,
``cases`` and ``report`` for later stages. ``Analysis.domain`` + ``prover.prove_nonneg`` let a
later stage prove its own size inequalities.
"""

from __future__ import annotations

import dataclasses

from nkigen.analysis.analyze import analyze
from nkigen.analysis.cases import default_cases, invalid_cases
from nkigen.analysis.model import (
    AccessMap,
    Analysis,
    BoundsProof,
    DimMap,
    ExactlyOnceProof,
    ExtentSource,
    IndexExtent,
    IndexRole,
    LoopIndex,
    LoopKind,
    SizeInfo,
    StatementAnalysis,
)
from nkigen.analysis.report import format_analysis
from nkigen.analysis.schedule import DEFAULT_TILE, hint_diagnostics, sbuf_bytes_per_partition
from nkigen.analysis.schedule import default_tiles as _default_tiles
from nkigen.analysis.sizes import bind_sizes, check_sizes, complete_sizes, size_rule_message
from nkigen.analysis.tiling import TiledAccess, TiledIndex, TileMaps, tile_maps
from nkigen.diagnostics import Diagnostic
from nkigen.ir import Schedule


def check_schedule(analysis: Analysis, schedule: Schedule,
                   target: str | None = None) -> list[Diagnostic]:
    """The hardware hint checks of ``schedule`` for an analysed spec, without re-analysing it
    (for the tuner: a few microseconds per candidate instead of a full ``analyze``)."""
    spec = dataclasses.replace(analysis.spec, schedule=schedule)
    return hint_diagnostics(spec, analysis.statements, analysis.main_statement,
                            target or analysis.target)


def default_tiles(analysis: Analysis) -> dict[str, int]:
    """Tile size of every index: the schedule's hint, else the default for its role."""
    return _default_tiles(dict(analysis.roles), analysis.spec, dict(analysis.extents))


__all__ = [
    "DEFAULT_TILE", "AccessMap", "Analysis", "BoundsProof", "DimMap", "ExactlyOnceProof",
    "ExtentSource", "IndexExtent", "IndexRole", "LoopIndex", "LoopKind", "SizeInfo",
    "StatementAnalysis", "TileMaps", "TiledAccess", "TiledIndex", "analyze", "bind_sizes",
    "check_schedule", "check_sizes", "complete_sizes", "default_cases", "default_tiles",
    "format_analysis", "invalid_cases", "sbuf_bytes_per_partition", "size_rule_message",
    "tile_maps",
]
