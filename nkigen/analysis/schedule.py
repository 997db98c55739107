"""Stage analyze (schedule hints): statements + ``schedule`` -> index roles and hint diagnostics.

Input: the spec, its statement analyses and the target's limits from :mod:`nkigen.hw`. Output:
the hardware role of each index (partition / stationary / moving / free), default tile sizes,
and diagnostics for hints that break a hardware limit, each naming the hint, the limit and a
legal value.

The main statement is the first with einsum-summed indices (a contraction), else the first.
In a contraction the first summed index lies on the partitions, the lhs index of the first
(stationary) operand is the stationary free index and the other lhs indices are moving (one PSUM
bank wide). In an element-wise statement the first lhs index lies on the partitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from nkigen import hw
from nkigen.analysis.diag import diag
from nkigen.analysis.model import AccessMap, IndexRole, StatementAnalysis
from nkigen.diagnostics import Diagnostic
from nkigen.ir import Spec

DEFAULT_TILE: dict[IndexRole, int] = {
    IndexRole.PARTITION: hw.PMAX,
    IndexRole.STATIONARY: hw.GEMM_STATIONARY_FMAX,
    IndexRole.MOVING: hw.GEMM_MOVING_FMAX,
    IndexRole.FREE: hw.PSUM_FMAX,
    IndexRole.BATCH: 1,
}


MAX_BLOCK = 64
"""The largest block factor (tiles per block) the planner takes (nkigen.codegen.matmul)."""


@dataclass(frozen=True)
class TileLimit:
    limit: int
    what: str     # "partition tile {t} exceeds 128 partitions" style template


TILE_LIMITS: dict[IndexRole, TileLimit] = {
    IndexRole.PARTITION: TileLimit(hw.PMAX, "partition tile {t} exceeds {n} partitions"),
    IndexRole.STATIONARY: TileLimit(
        hw.GEMM_STATIONARY_FMAX, "matmul stationary tile {t} exceeds the stationary free size {n}"),
    IndexRole.MOVING: TileLimit(
        min(hw.GEMM_MOVING_FMAX, hw.PSUM_FMAX),
        "matmul moving tile {t} exceeds {n} (moving free size and one PSUM bank of fp32)"),
}


def main_statement(spec: Spec) -> int:
    for st in spec.statements:
        if st.sum_indices:
            return st.position
    return 0


def statement_roles(sa: StatementAnalysis) -> dict[str, IndexRole]:
    st = sa.statement
    roles: dict[str, IndexRole] = {}
    if st.sum_indices and sa.rhs:
        roles[st.sum_indices[0]] = IndexRole.PARTITION
        for n in st.sum_indices[1:]:
            roles[n] = IndexRole.BATCH
        first = set(_used(sa.rhs[0]))
        others: set[str] = set()
        for m in sa.rhs[1:]:
            others |= set(_used(m))
        for n in st.lhs:
            if n in first and n in others:
                roles[n] = IndexRole.BATCH
            elif n in first:
                roles[n] = IndexRole.BATCH if IndexRole.STATIONARY in roles.values() \
                    else IndexRole.STATIONARY
            else:
                roles[n] = IndexRole.BATCH if IndexRole.MOVING in roles.values() \
                    else IndexRole.MOVING
    elif st.lhs:
        roles[st.lhs[0]] = IndexRole.PARTITION
    for li in sa.loop_indices:
        roles.setdefault(li.name, IndexRole.FREE)
    return roles


def _used(m: AccessMap) -> list[str]:
    return list(dict.fromkeys(n for d in m.dims for n, _ in d.coeffs))


def index_roles(statements: tuple[StatementAnalysis, ...], main: int) -> dict[str, IndexRole]:
    """Roles from the main statement, then from the first statement using each other index."""
    roles: dict[str, IndexRole] = {}
    if statements:
        roles.update(statement_roles(statements[main]))
    for sa in statements:
        for n, r in statement_roles(sa).items():
            roles.setdefault(n, r)
    return roles


def extent_cap(spec: Spec, extent: sympy.Expr) -> int | None:
    """An upper bound of an extent when one is cheap to see (a number, a size with a max or a
    fixed value), else None."""
    e = sympy.sympify(extent)
    if e.is_number:
        return int(e)
    if isinstance(e, sympy.Symbol):
        try:
            s = spec.size(str(e))
        except KeyError:
            return None
        if s.value is not None and sympy.sympify(s.value).is_number:
            return int(s.value)
        return s.max
    return None


def default_tiles(roles: Mapping[str, IndexRole], spec: Spec,
                  extents: Mapping[str, sympy.Expr] | None = None) -> dict[str, int]:
    """Schedule tiles where given, else the role's default (128 on partitions / stationary, 512
    for free indices, 1 for batch indices), capped by a small known extent."""
    out = {}
    for n, r in roles.items():
        t = DEFAULT_TILE[r]
        cap = extent_cap(spec, extents[n]) if extents and n in extents else None
        out[n] = max(1, min(t, cap)) if cap is not None else t
    out.update({n: t for n, t in spec.schedule.tiles if n in out})
    return out


def hint_diagnostics(spec: Spec, statements: tuple[StatementAnalysis, ...], main: int,
                     target: str) -> list[Diagnostic]:
    sch = spec.schedule
    diags: list[Diagnostic] = []
    roles = index_roles(statements, main)
    main_idx = [li.name for li in statements[main].loop_indices] if statements else []

    def loc(path: str):
        return spec.loc_of(f"schedule.{path}")

    for name, t in sch.tiles:
        path = f"tiles.{name}"
        if name not in roles:
            diags.append(diag(loc(path), f"schedule.{path}", f"{name} is not an index of "
                              "any statement", name, _one_of(sorted(roles))))
            continue
        if t < 1:
            diags.append(diag(loc(path), f"schedule.{path}", "tile size must be >= 1", t,
                              f"use {DEFAULT_TILE[roles[name]]}"))
            continue
        lim = TILE_LIMITS.get(roles[name])
        if lim is not None and t > lim.limit:
            diags.append(diag(loc(path), f"schedule.{path}",
                              lim.what.format(t=t, n=lim.limit), t, f"use {lim.limit}"))
    for name, b in sch.block:
        path = f"block.{name}"
        if name not in roles:
            diags.append(diag(loc(path), f"schedule.{path}", f"{name} is not an index of "
                              "any statement", name, _one_of(sorted(roles))))
        elif b < 1:
            diags.append(diag(loc(path), f"schedule.{path}",
                              "block factor must be >= 1", b, "use 1"))
        elif b > MAX_BLOCK:
            diags.append(diag(loc(path), f"schedule.{path}",
                              f"block factor must be at most {MAX_BLOCK}", b, "use 8"))
    seen: set[str] = set()
    for name in sch.order:
        if name not in main_idx:
            diags.append(diag(loc("order"), "schedule.order", f"{name} is not a loop index "
                              "of the main statement", name, _one_of(main_idx)))
        elif name in seen:
            diags.append(diag(loc("order"), "schedule.order", f"{name} appears twice",
                              list(sch.order), "list each index at most once"))
        seen.add(name)
    if sch.buffers is not None and not 1 <= sch.buffers <= 4:
        diags.append(diag(loc("buffers"), "schedule.buffers", "buffers must be 1 to 4",
                          sch.buffers, "use 2"))
    if diags or not statements or not (sch.tiles or sch.block):
        return diags      # without size hints the planner sizes tiles to fit on its own
    diags += _footprint(spec, statements[main], roles, target)
    return diags


def _one_of(names) -> str:
    return f"use one of {', '.join(names)}" if names else "remove it"


def sbuf_bytes_per_partition(spec: Spec, sa: StatementAnalysis, roles: Mapping[str, IndexRole],
                             tiles: Mapping[str, int]) -> int:
    """Estimate: every tile the statement streams (each dimension spanning
    ``1 + sum |coeff| * (tile * block - 1)`` elements, the partition dimension excluded), times
    the rotating buffers."""
    bufs = spec.schedule.buffers or 2
    total = 0
    for m in sa.accesses:
        part = _partition_dim(m, roles)
        elems = 1
        for d, dm in enumerate(m.dims):
            if d == part:
                continue
            span = 1
            for n, c in dm.coeffs:
                c = abs(int(c)) if sympy.sympify(c).is_number else 1
                span += c * (tiles.get(n, 1) * (spec.schedule.block_of(n) or 1) - 1)
            elems *= span
        total += elems * spec.tensor(m.tensor).dtype.itemsize * bufs
    return total


def _partition_dim(m: AccessMap, roles: Mapping[str, IndexRole]) -> int | None:
    for want in (IndexRole.PARTITION, IndexRole.STATIONARY):
        for d, dm in enumerate(m.dims):
            if any(roles.get(n) is want for n, _ in dm.coeffs):
                return d
    for d, dm in enumerate(m.dims):
        if dm.coeffs and not all(roles.get(n) is IndexRole.BATCH for n, _ in dm.coeffs):
            return d
    return None


def _footprint(spec: Spec, sa: StatementAnalysis, roles: Mapping[str, IndexRole],
               target: str) -> list[Diagnostic]:
    tiles = default_tiles(roles, spec, {li.name: li.extent for li in sa.loop_indices})
    cap = hw.target(target).sbuf_bytes_per_partition
    need = sbuf_bytes_per_partition(spec, sa, roles, tiles)
    diags = []
    if need > cap:
        diags.append(diag(spec.loc_of("schedule"), "schedule",
                          f"SBUF footprint estimate {need} bytes per partition exceeds "
                          f"{target}'s {cap}", need,
                          "use smaller tiles or block factors (block 1 always fits)"))
    return diags
