"""Stage analyze: :class:`nkigen.ir.Spec` -> :class:`Analysis` (or NkigenError with every problem).

Input: a parsed spec. Output: the frozen :class:`Analysis`. Steps, in order:

1. sizes: derived-size order, satisfiable constraints, every free size bound by an input shape;
2. indices: extents from direct uses (agreeing) or ``ranges``;
3. per statement: loop indices, affine access maps, in-bounds and exactly-once proofs;
   tensor-free divisors and function arguments in their domain for every size;
4. ``tests.cases``: each case satisfies the constraints;
5. schedule hints: hardware limits of the target;
6. what no kernel can be generated for: an ``argmax`` into an 8-bit tensor
   too small for its indices (:func:`nkigen.analysis.checktime.argindex_diagnostics`). Here, so
   ``check``, ``explain``, ``gen``, ``tune``, ``build`` and the Python API refuse the same specs
   (``gen`` generated the argmax kernel that ``check`` and ``build`` reject, fuzz7).
"""

from __future__ import annotations

from nkigen import hw
from nkigen.analysis.cases import default_cases
from nkigen.analysis.checktime import argindex_diagnostics
from nkigen.analysis.diag import diag
from nkigen.analysis.domains import domain_diagnostics
from nkigen.analysis.indices import access_map, compute_extents, loop_indices, statement_accesses
from nkigen.analysis.model import Analysis, SizeInfo, StatementAnalysis
from nkigen.analysis.proofs import bounds_proofs, exactly_once
from nkigen.analysis.schedule import hint_diagnostics, index_roles, main_statement
from nkigen.analysis.sizes import (
    check_sizes,
    constraint_diagnostics,
    derived_order,
    size_domain,
    size_value,
)
from nkigen.diagnostics import Diagnostic, NkigenError, unique
from nkigen.ir import Spec


def analyze(spec: Spec, target: str | None = None) -> Analysis:
    """Analyse ``spec``; raise NkigenError listing every problem found. ``target`` (the build's
    ``--target``) overrides the spec's for the hardware checks of schedule hints."""
    diags: list[Diagnostic] = []
    order, resolved, d = derived_order(spec)
    diags += d
    if d:
        raise NkigenError(diags)
    diags += constraint_diagnostics(spec)
    dom = size_domain(spec)
    sizes = tuple(
        SizeInfo(s.name, s.derived, s.multiple_of, max(1, s.min), s.max, size_value(spec, s),
                 resolved.get(s.name))
        for s in spec.sizes
    )
    info, d = compute_extents(spec, dom)
    diags += d
    extents = {e.name: e.extent for e in info}
    extent_problems = bool(d)
    stmts: list[StatementAnalysis] = []
    for st in spec.statements:
        loops = loop_indices(st, extents)
        columns = tuple(dict.fromkeys(li.name for li in loops))
        maps = []
        for i, a in enumerate(statement_accesses(st)):
            m, d = access_map(spec, a, columns, i == 0, st)
            diags += d
            if m is not None:
                maps.append(m)
        if len(maps) != len(statement_accesses(st)):
            continue
        proofs = []
        if not extent_problems:
            for m in maps:
                p, d = bounds_proofs(m, extents, dom, st)
                proofs += p
                diags += d
        once, d = exactly_once(st, maps[0], extents, dom)
        if not extent_problems:
            diags += d
        stmts.append(StatementAnalysis(st, loops, maps[0], tuple(maps[1:]), tuple(proofs), once))
    diags += domain_diagnostics(spec, dom)
    for i, case in enumerate(spec.tests.cases):
        path = f"tests.cases[{i}]"
        diags += check_sizes(spec, dict(case), path, spec.loc_of(path))
    if not diags and not spec.tests.cases and not default_cases(spec):
        diags.append(diag(
            spec.loc_of("sizes"), "sizes",
            "no size assignment satisfying every constraint was found among small candidates "
            "(sizes and constraints that no tensor can satisfy?)", None,
            "check the derived sizes' constraints, or add a valid `tests.cases` entry"))
    target = target or spec.target or hw.DEFAULT_TARGET
    main = main_statement(spec)
    if not diags and len(stmts) == len(spec.statements):
        diags += hint_diagnostics(spec, tuple(stmts), main, target)
    if not diags:
        diags += argindex_diagnostics(spec, tuple(extents.items()))
    if diags:
        raise NkigenError(unique(diags))
    roles = index_roles(tuple(stmts), main) if stmts else {}
    return Analysis(
        spec=spec,
        sizes=sizes,
        derived_order=tuple(order),
        extents=tuple((e.name, e.extent) for e in info),
        extent_info=tuple(info),
        statements=tuple(stmts),
        main_statement=main,
        roles=tuple(roles.items()),
        target=target,
        domain=dom,
    )
