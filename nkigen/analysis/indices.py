"""Stage analyze (indices): statements -> index extents, loop indices and affine access maps.

Input: a :class:`nkigen.ir.Spec` and its :class:`SizeDomain`. Output: one
:class:`IndexExtent` per index (from its direct uses, which must agree, or from ``ranges``),
the loop indices of each statement and an :class:`AccessMap` per access, plus diagnostics.
"""

from __future__ import annotations

import sympy

from nkigen.analysis.diag import diag
from nkigen.analysis.model import (
    AccessMap,
    DimMap,
    ExtentSource,
    IndexExtent,
    LoopIndex,
    LoopKind,
)
from nkigen.analysis.prover import SizeDomain, prove_equal
from nkigen.diagnostics import Diagnostic, Loc
from nkigen.ir import (
    Access,
    Reduce,
    Spec,
    Statement,
    accesses,
    index_names,
    index_symbol,
    spec_indices,
    walk,
)


def access_text(a: Access) -> str:
    gathered = dict(a.indirect)
    return f"{a.tensor}[{', '.join(access_text(gathered[d]) if d in gathered else str(i) for d, i in enumerate(a.indices))}]"  # noqa: E501


def lhs_access(st: Statement) -> Access:
    return Access(st.target, tuple(index_symbol(i) for i in st.lhs), st.loc)


def statement_accesses(st: Statement) -> tuple[Access, ...]:
    """The left-hand access, then the right-hand ones in source order."""
    return (lhs_access(st), *accesses(st.rhs))


def _loc(a: Access, st: Statement) -> Loc | None:
    return a.loc or st.loc


def compute_extents(spec: Spec, dom: SizeDomain) -> tuple[list[IndexExtent], list[Diagnostic]]:
    diags: list[Diagnostic] = []
    found: dict[str, IndexExtent] = {}
    compound: dict[str, tuple[Access, Statement]] = {}
    for st in spec.statements:
        for a in statement_accesses(st):
            shape = spec.tensor(a.tensor).shape if _known(spec, a.tensor) else ()
            for d, e in enumerate(a.indices):
                e = sympy.sympify(e)
                names = index_names(e)
                if isinstance(e, sympy.Symbol) and names == [str(e)] and d < len(shape):
                    name = str(e)
                    size = sympy.sympify(shape[d])
                    where = f"{access_text(a)} dim {d}"
                    prev = found.get(name)
                    if prev is None:
                        found[name] = IndexExtent(name, size, ExtentSource.DIRECT, where,
                                                  _loc(a, st))
                    elif not prove_equal(prev.extent, size, dom):
                        diags.append(diag(
                            _loc(a, st), f"compute[{st.position}]",
                            f"{where}: index {name} ranges over {size} here but over "
                            f"{prev.extent} at {prev.where}", size,
                            f"make both dimensions the same size (e.g. {prev.extent}), "
                            "or use different indices"))
                else:
                    for n in names:
                        compound.setdefault(n, (a, st))
    ranges = dict(spec.ranges)
    for name, value in spec.ranges:
        value = sympy.sympify(value)
        loc = spec.loc_of(f"ranges.{name}")
        prev = found.get(name)
        if prev is None:
            found[name] = IndexExtent(name, value, ExtentSource.RANGES, f"ranges.{name}", loc)
        elif not prove_equal(prev.extent, value, dom):
            diags.append(diag(
                loc, f"ranges.{name}",
                f"range of {name} disagrees with its direct use {prev.where} ({prev.extent})",
                value, f"use {prev.extent} or drop the entry"))
    for name, (a, st) in compound.items():
        if name not in found and name not in ranges:
            diags.append(diag(
                _loc(a, st), f"compute[{st.position}]",
                f"{access_text(a)}: index {name} has no extent: it indexes no dimension "
                "directly and has no `ranges:` entry", name,
                f"add `ranges: {{{name}: <size expression>}}`"))
    for st in spec.statements:
        for name in _bound_names(st):
            if name not in found and name not in compound and name not in ranges:
                diags.append(diag(
                    st.loc, f"compute[{st.position}]",
                    f"index {name} has no extent: no access uses it", name,
                    f"use {name} in an access or add `ranges: {{{name}: <size expression>}}`"))
    order = [found[n] for n in _first_use_order(spec) if n in found]
    return order, diags


def _known(spec: Spec, tensor: str) -> bool:
    return any(t.name == tensor for t in spec.tensors)


def _bound_names(st: Statement) -> list[str]:
    out = list(st.lhs) + list(st.sum_indices)
    for x in walk(st.rhs):
        if isinstance(x, Reduce):
            out += list(x.indices)
    return out


def _first_use_order(spec: Spec) -> list[str]:
    """Statement indices in first-use order (:func:`nkigen.ir.spec_indices`), then ranges."""
    return list(dict.fromkeys([*spec_indices(spec.statements), *(n for n, _ in spec.ranges)]))


def loop_indices(st: Statement, extents: dict[str, sympy.Expr]) -> tuple[LoopIndex, ...]:
    """lhs indices, then einsum-summed ones, then each reduction call's bound indices."""
    zero = sympy.Integer(0)
    out = [LoopIndex(n, LoopKind.LHS, extents.get(n, zero)) for n in st.lhs]
    out += [LoopIndex(n, LoopKind.SUM, extents.get(n, zero)) for n in st.sum_indices]
    k = 0
    for x in walk(st.rhs):
        if isinstance(x, Reduce):
            for n in x.indices:
                out.append(LoopIndex(n, LoopKind.REDUCE, extents.get(n, zero), x, k))
            k += 1
    return tuple(out)


def affine_dim(e: sympy.Expr, columns: tuple[str, ...]) -> DimMap | None:
    """Split ``e`` into index coefficients and a constant; None if it is not affine."""
    e = sympy.sympify(e)
    syms = {index_symbol(c): c for c in columns}
    coeffs: dict[str, sympy.Expr] = {}
    const = sympy.Integer(0)
    atoms: list[tuple[sympy.Expr, sympy.Expr]] = []
    for term in sympy.Add.make_args(sympy.expand(e)):
        hit = [s for s in term.free_symbols if s in syms]
        if not hit:
            const += term
            continue
        quasi = [q for q in term.atoms(sympy.floor, sympy.Mod)
                 if any(s in syms for s in q.free_symbols)]
        if quasi:
            # c * floor(p / q) or c * Mod(p, q): p affine in the indices, c free of them
            if len(quasi) > 1 or affine_dim(quasi[0].args[0] if isinstance(
                    quasi[0], sympy.Mod) else quasi[0].args[0], columns) is None:
                return None
            c = sympy.simplify(term / quasi[0])
            if any(s in syms for s in c.free_symbols) or c.atoms(sympy.floor, sympy.Mod):
                return None
            atoms.append((quasi[0], c))
            continue
        if len(hit) > 1:
            return None
        c = term / hit[0]
        if c.has(hit[0]):
            return None
        coeffs[syms[hit[0]]] = coeffs.get(syms[hit[0]], sympy.Integer(0)) + c
    ordered = tuple((c, coeffs[c]) for c in columns if c in coeffs and coeffs[c] != 0)
    return DimMap(e, ordered, const, tuple(sorted(atoms, key=lambda x: str(x[0]))))


def access_map(spec: Spec, a: Access, columns: tuple[str, ...], is_lhs: bool,
               st: Statement) -> tuple[AccessMap | None, list[Diagnostic]]:
    dims = []
    gathered = dict(a.indirect)
    for d, e in enumerate(a.indices):
        if d in gathered:       # spec language 1.1: the ids' values, checked at run time
            dims.append(DimMap(sympy.Symbol(access_text(gathered[d])), (), sympy.Integer(0)))
            continue
        dm = affine_dim(e, columns)
        if dm is None:
            return None, [diag(_loc(a, st), f"compute[{st.position}]",
                               f"{access_text(a)} dim {d}: index expression is not affine",
                               e, "use an integer combination of indices plus a constant")]
        dims.append(dm)
    shape = tuple(sympy.sympify(x) for x in spec.tensor(a.tensor).shape)
    return AccessMap(a, a.tensor, shape, is_lhs, columns, tuple(dims)), []


def extents_of(spec: Spec, analysis: object | None) -> dict[str, sympy.Expr]:
    """Index name -> extent (a sympy expression of size symbols)."""
    # the analysis' extents (plus the indices of statements the plan pre-passes added, e.g.
    # codegen/hoist.py's), else the ranges plus the dimensions indexed directly
    given = analysis.extents if analysis is not None and hasattr(analysis, "extents") \
        else spec.ranges
    out: dict[str, sympy.Expr] = {n: sympy.sympify(e) for n, e in given}
    for st in spec.statements:
        accs: list[Access] = [Access(st.target, tuple(index_symbol(i) for i in st.lhs))]
        accs += list(accesses(st.rhs))
        for a in accs:
            t = spec.tensor(a.tensor)
            for e, size in zip(a.indices, t.shape):
                e = sympy.sympify(e)
                if e.is_Symbol and e.name not in out:
                    out[e.name] = sympy.sympify(size)
    return out
