"""Stage analyze (tiling): an analysed statement + tile sizes -> per-tile affine maps.

Input: an :class:`Analysis`, one statement and ``{index: tile}``. Output: :class:`TileMaps`:
each tiled index ``i = i_t * T + i_o`` (``0 <= i_o < T``; the last tile is partial unless the
extent is provably a multiple of ``T``), its tile count, and every access's map rewritten in the
tile coordinates. Codegen uses these to emit loops; explain prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from nkigen.analysis.indices import affine_dim
from nkigen.analysis.model import AccessMap, Analysis, DimMap
from nkigen.analysis.prover import SizeDomain
from nkigen.analysis.sizes import size_domain
from nkigen.diagnostics import error
from nkigen.ir import Statement, index_symbol


@dataclass(frozen=True)
class TiledIndex:
    name: str
    tile: int
    extent: sympy.Expr
    outer: str                 # name of the tile-number index (i_t)
    inner: str                 # name of the within-tile index (i_o)
    count: sympy.Expr          # number of tiles: extent/T, or ceiling(extent/T) when partial
    partial: bool              # the last tile may be shorter than T
    last: sympy.Expr           # size of the last tile

    def inner_extent(self, tile_number: sympy.Expr) -> sympy.Expr:
        """Valid ``i_o`` values in tile ``tile_number``: ``min(T, extent - tile_number * T)``."""
        return sympy.Min(self.tile, self.extent - tile_number * self.tile)


@dataclass(frozen=True)
class TiledAccess:
    map: AccessMap
    columns: tuple[str, ...]
    dims: tuple[DimMap, ...]

    @property
    def text(self) -> str:
        return f"{self.map.tensor}[{', '.join(str(d.expr) for d in self.dims)}]"


@dataclass(frozen=True)
class TileMaps:
    statement: int
    indices: tuple[TiledIndex, ...]
    untiled: tuple[str, ...]
    columns: tuple[str, ...]   # loop coordinates after tiling, outer ones first
    accesses: tuple[TiledAccess, ...]

    def index(self, name: str) -> TiledIndex:
        for t in self.indices:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def substitution(self) -> dict[sympy.Symbol, sympy.Expr]:
        return {index_symbol(t.name): t.tile * index_symbol(t.outer) + index_symbol(t.inner)
                for t in self.indices}


def is_multiple(extent: sympy.Expr, tile: int, dom: SizeDomain) -> bool:
    """``extent`` is a multiple of ``tile`` for every allowed size (via multiple_of)."""
    e = sympy.expand(dom.resolve(sympy.sympify(extent)))
    if e.is_number:
        return bool(e.is_integer) and int(e) % tile == 0
    if e.atoms(sympy.floor, sympy.ceiling):
        return False
    subs, gens = {}, []
    for s in sorted(e.free_symbols, key=str):
        info = dom.free_map.get(s)
        if info is None:
            return False
        u = sympy.Dummy(f"u_{s}", integer=True)
        subs[s] = info[0] * u
        gens.append(u)
    try:
        poly = sympy.Poly(sympy.expand(e.xreplace(subs)), *gens)
    except sympy.PolynomialError:
        return False
    return all(c.is_integer and int(c) % tile == 0 for c in poly.coeffs())


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def tile_maps(analysis: Analysis, statement: Statement | int,
              tiles: Mapping[str, int]) -> TileMaps:
    """Per-tile affine maps of ``statement`` for ``tiles`` (indices not listed stay whole)."""
    pos = statement if isinstance(statement, int) else statement.position
    sa = analysis.statements[pos]
    dom = analysis.domain or size_domain(analysis.spec)
    names = [li.name for li in sa.loop_indices]
    loop_names = list(dict.fromkeys(names))
    taken = {n for n, _ in analysis.extents} | set(loop_names)
    tiled: list[TiledIndex] = []
    for n in loop_names:
        t = tiles.get(n)
        if t is None:
            continue
        if t < 1:
            raise error(None, f"tiles.{n}", "tile size must be >= 1", t, "use 128")
        ext = analysis.extent(n)
        exact = is_multiple(ext, t, dom)
        count = ext / t if exact else sympy.ceiling(ext / t, evaluate=False)
        last = sympy.Integer(t) if exact else sympy.expand(ext - (count - 1) * t)
        tiled.append(TiledIndex(n, t, ext, _fresh(f"{n}_t", taken), _fresh(f"{n}_o", taken),
                                count, not exact, last))
    untiled = tuple(n for n in loop_names if n not in tiles)
    columns = tuple([t.outer for t in tiled] + list(untiled) + [t.inner for t in tiled])
    subs = {index_symbol(t.name): t.tile * index_symbol(t.outer) + index_symbol(t.inner)
            for t in tiled}
    out = []
    for m in sa.accesses:
        dims = []
        for d in m.dims:
            dm = affine_dim(sympy.expand(d.expr.xreplace(subs)), columns)
            assert dm is not None  # an affine map stays affine under an affine substitution
            dims.append(dm)
        out.append(TiledAccess(m, columns, tuple(dims)))
    return TileMaps(pos, tuple(tiled), untiled, columns, tuple(out))
