"""Stage analyze (sizes): size declarations -> derived-size order, constraint checks, bindings.

Input: a :class:`nkigen.ir.Spec`. Output: the evaluation order of derived sizes, a
:class:`~nkigen.analysis.prover.SizeDomain` for proofs, diagnostics for unsatisfiable constraints
and undetermined sizes, and the concrete helpers ``bind_sizes``, ``check_sizes``,
``default_cases`` and ``invalid_cases`` used by the reference, the build and the tuner.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy

from nkigen.analysis.diag import diag
from nkigen.analysis.prover import SizeDomain, hypotheses_from
from nkigen.diagnostics import Diagnostic, Loc, NkigenError
from nkigen.ir import SizeDecl, Spec, size_symbol

# ---- messages shared with the generated kernel's own checks --------------------------------


MAX_SIZE = 2**31 - 1     # no dimension of a kernel argument is larger (the front end's bound)

def size_rule_message(name: str, value: int, rule: str, bound: int) -> tuple[str, str]:
    """(rule text, fix) for a size that breaks ``rule`` (``multiple_of``, ``min`` or ``max``).

    The generated kernel rejects bad calls with the same words, so the build's negative tests can
    match :func:`invalid_cases` substrings: ``size M = 100 breaks multiple_of 128``.
    """
    fixes = {
        "multiple_of": f"pass a multiple of {bound}",
        "min": f"pass at least {bound}",
        "max": f"pass at most {bound}",
    }
    return f"size {name} = {value} breaks {rule} {bound}", fixes[rule]


# ---- derived sizes -------------------------------------------------------------------------


def _param_subs(spec: Spec) -> dict[sympy.Symbol, sympy.Expr]:
    out: dict[sympy.Symbol, sympy.Expr] = {}
    for p in spec.params:
        v = sympy.Integer(p.value) if float(p.value).is_integer() else sympy.Float(p.value)
        out[sympy.Symbol(p.name)] = v
        out[sympy.Symbol(p.name, integer=True)] = v
    return out


def size_value(spec: Spec, decl: SizeDecl) -> sympy.Expr | None:
    """A derived size's definition with params replaced by their values."""
    if decl.value is None:
        return None
    v = sympy.sympify(decl.value)
    subs = {s: r for s, r in _param_subs(spec).items() if s in v.free_symbols}
    return v.xreplace(subs) if subs else v


def derived_order(spec: Spec) -> tuple[list[str], dict[str, sympy.Expr], list[Diagnostic]]:
    """Derived sizes in dependency order, their definitions over free sizes, and problems
    (cycles, unknown names)."""
    diags: list[Diagnostic] = []
    names = {s.name for s in spec.sizes}
    deps: dict[str, set[str]] = {}
    values: dict[str, sympy.Expr] = {}
    for s in spec.sizes:
        v = size_value(spec, s)
        if v is None:
            continue
        values[s.name] = v
        unknown = sorted(str(x) for x in v.free_symbols if str(x) not in names)
        if unknown:
            diags.append(diag(
                s.loc, f"sizes.{s.name}.value",
                f"derived size uses {', '.join(unknown)}, which is not a size or integer param",
                str(v), "use only sizes and integer params"))
        deps[s.name] = {str(x) for x in v.free_symbols if str(x) in names}
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2 or n not in deps:
            return
        if state.get(n) == 1:
            cyc = path[path.index(n):] + [n]
            decl = spec.size(n)
            diags.append(diag(decl.loc, f"sizes.{n}.value", "derived sizes form a cycle",
                              " -> ".join(cyc), "define one of them without the others"))
            return
        state[n] = 1
        for d in sorted(deps[n]):
            visit(d, path + [n])
        state[n] = 2
        order.append(n)

    for s in spec.sizes:
        visit(s.name, [])
    resolved: dict[str, sympy.Expr] = {}
    for n in order:
        v = values[n]
        resolved[n] = v.xreplace({size_symbol(k): r for k, r in resolved.items()})
    return order, resolved, diags


def size_domain(spec: Spec) -> SizeDomain:
    """The proof domain of the spec's sizes (free sizes with constraints, derived definitions,
    linear consequences of max and derived-size constraints)."""
    _, resolved, _ = derived_order(spec)
    free = tuple(
        (s.symbol, s.multiple_of or 1, max(1, s.min), s.max) for s in spec.sizes if not s.derived
    )
    derived = tuple((size_symbol(n), resolved[n]) for n in resolved)
    dom = SizeDomain(free, derived)
    extra: list[sympy.Expr] = []
    for s in spec.sizes:
        if s.derived and s.name in resolved:
            extra.append(resolved[s.name] - max(1, s.min))
            if s.max is not None:
                extra.append(s.max - resolved[s.name])
        elif s.max is not None:
            extra.append(s.max - s.symbol)
    return SizeDomain(free, derived, hypotheses_from(dom, extra))


# ---- static checks (analyze time) ----------------------------------------------------------


def _rule_loc(spec: Spec, s: SizeDecl, key: str) -> Loc | None:
    return dict(spec.locs).get(f"sizes.{s.name}.{key}", s.loc)


def constraint_diagnostics(spec: Spec) -> list[Diagnostic]:
    """Constraints that no value can satisfy, and sizes nothing determines."""
    diags: list[Diagnostic] = []
    _, resolved, _ = derived_order(spec)
    for s in spec.sizes:
        lo = max(1, s.min)
        if s.max is not None and lo > s.max:
            diags.append(diag(_rule_loc(spec, s, "max"), f"sizes.{s.name}",
                              f"min {lo} is greater than max {s.max}", f"max {s.max}",
                              f"use a max of at least {lo}"))
            continue
        m = s.multiple_of
        if m is not None and s.max is not None and -(-lo // m) * m > s.max:
            diags.append(diag(
                _rule_loc(spec, s, "multiple_of"), f"sizes.{s.name}.multiple_of",
                f"no multiple of {m} lies in [{lo}, {s.max}]", m,
                f"use a max of at least {-(-lo // m) * m} or a smaller multiple_of"))
        v = resolved.get(s.name)
        if v is not None and v.is_number:
            for rule, bound, bad in _broken(s, int(v)):
                rtext, fix = size_rule_message(s.name, int(v), rule, bound)
                diags.append(diag(_rule_loc(spec, s, "value"), f"sizes.{s.name}.value",
                                  f"fixed {rtext}", int(v), fix if bad else None))
    bindable = bindable_sizes(spec)
    for s in spec.sizes:
        if not s.derived and s.name not in bindable:
            diags.append(diag(
                s.loc, f"sizes.{s.name}",
                f"size {s.name} is not determined: no input shape binds it and it has no value "
                "(sizes and constraints that no tensor can satisfy)", s.name,
                f"use {s.name} alone as a dimension of an input, or give it a `value:`"))
    return diags


def _broken(s: SizeDecl, v: int) -> list[tuple[str, int, bool]]:
    out: list[tuple[str, int, bool]] = []
    if s.multiple_of is not None and v % s.multiple_of:
        out.append(("multiple_of", s.multiple_of, True))
    if v < max(1, s.min):
        out.append(("min", max(1, s.min), True))
    if s.max is not None and v > s.max:
        out.append(("max", s.max, True))
    return out


def bindable_sizes(spec: Spec) -> set[str]:
    """Free sizes that the input shapes determine (solving linear dims one unknown at a time)."""
    free = {s.name for s in spec.sizes if not s.derived}
    known: set[str] = set()
    changed = True
    while changed:
        changed = False
        for t in spec.inputs:
            for d in input_dims(spec, t):
                unknown = {str(x) for x in sympy.sympify(d).free_symbols} & (free - known)
                if len(unknown) == 1:
                    (u,) = unknown
                    if _linear_in(sympy.sympify(d), size_symbol(u)) is not None:
                        known.add(u)
                        changed = True
    return known


def input_dims(spec: Spec, t) -> list[sympy.Expr]:
    """The shape entries of input ``t`` with derived sizes replaced by their definitions over
    free sizes (spec language 1.1: a size used by outputs only, ``OH`` with ``H = 2 * OH``, is
    then solved from the input dimension ``H``)."""
    _, resolved, _ = derived_order(spec)
    subs = {size_symbol(n): v for n, v in resolved.items()}
    return [sympy.expand(sympy.sympify(d).xreplace(subs)) for d in t.shape]


def _linear_in(e: sympy.Expr, s: sympy.Symbol) -> tuple[sympy.Expr, sympy.Expr] | None:
    e = sympy.expand(e)
    a, b = e.coeff(s, 1), e.coeff(s, 0)
    if a == 0 or a.has(s) or b.has(s) or sympy.expand(e - a * s - b) != 0:
        return None
    return a, b


# ---- concrete sizes ------------------------------------------------------------------------


def eval_size_expr(e: sympy.Expr, sizes: Mapping[str, int]) -> int | None:
    """Evaluate a size expression at concrete sizes; None if it is not an integer."""
    e = sympy.sympify(e)
    v = e.xreplace({s: sympy.Integer(sizes[str(s)]) for s in e.free_symbols if str(s) in sizes})
    if not v.is_number or not v.is_integer:
        return None
    return int(v)


def complete_sizes(spec: Spec, free: Mapping[str, int]) -> dict[str, int]:
    """Free sizes plus every derived size, computed in dependency order."""
    order, _, diags = derived_order(spec)
    if diags:
        raise NkigenError(diags)
    out = {k: int(v) for k, v in free.items()}
    for n in order:
        v = eval_size_expr(size_value(spec, spec.size(n)) or 0, out)
        if v is None:
            raise NkigenError(diag(spec.size(n).loc, f"sizes.{n}.value",
                                   "derived size does not evaluate to an integer",
                                   str(spec.size(n).value), "use // for integer division"))
        out[n] = v
    return out


def check_sizes(spec: Spec, sizes: Mapping[str, int], field: str = "sizes",
                loc: Loc | None = None) -> list[Diagnostic]:
    """Every problem with a concrete size assignment (free sizes, derived ones optional)."""
    diags: list[Diagnostic] = []
    names = {s.name for s in spec.sizes}
    for k in sorted(sizes):
        if k not in names:
            diags.append(diag(loc, f"{field}.{k}", f"{k} is not a size of this spec", k,
                              f"use one of {', '.join(sorted(names))}"))
    missing = [s.name for s in spec.sizes if not s.derived and s.name not in sizes]
    for n in missing:
        diags.append(diag(loc, field, f"size {n} has no value", None,
                          f"add {n}: <value>"))
    if diags:
        return diags
    try:
        full = complete_sizes(spec, {k: v for k, v in sizes.items() if not spec.size(k).derived})
    except NkigenError as e:
        return list(e.diagnostics)
    for s in spec.sizes:
        v = full[s.name]
        if s.derived and s.name in sizes and int(sizes[s.name]) != v:
            diags.append(diag(loc, f"{field}.{s.name}",
                              f"derived size {s.name} is {v} for these sizes",
                              sizes[s.name], f"drop {s.name} or set it to {v}"))
        for rule, bound, _ in _broken(s, v):
            rtext, fix = size_rule_message(s.name, v, rule, bound)
            if s.derived:
                rtext = f"derived {rtext}"
                fix = "choose other sizes"
            diags.append(diag(loc, f"{field}.{s.name}", rtext, v, fix))
        if v > MAX_SIZE:
            diags.append(diag(loc, f"{field}.{s.name}",
                              f"size {s.name} exceeds {MAX_SIZE} (2**31 - 1)", v,
                              "choose other sizes" if s.derived else "use a smaller size"))
    if diags:
        return diags
    for t in spec.tensors:
        for i, d in enumerate(t.shape):
            dv = eval_size_expr(d, full)
            if dv is None or dv < 1:
                diags.append(diag(loc, field, f"{t.name} dim {i} ({d}) is not a positive "
                                  "integer for these sizes", dv, "choose other sizes"))
    return diags


def bind_sizes(spec: Spec, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """Bind every size from the input shapes, compute derived sizes, check all constraints."""
    free = {s.name for s in spec.sizes if not s.derived}
    known: dict[str, int] = {}
    diags: list[Diagnostic] = []
    for t in spec.inputs:
        if t.name not in shapes:
            diags.append(diag(t.loc, f"inputs.{t.name}", f"no shape given for {t.name}"))
        elif len(shapes[t.name]) != t.rank:
            diags.append(diag(t.loc, f"inputs.{t.name}",
                              f"{t.name} must have rank {t.rank}", tuple(shapes[t.name]),
                              f"pass a {t.rank}-d array"))
    if diags:
        raise NkigenError(diags)
    pending = [(t, i, sympy.sympify(d)) for t in spec.inputs
               for i, d in enumerate(input_dims(spec, t))]
    declared = {(t.name, i): sympy.sympify(d) for t in spec.inputs for i, d in enumerate(t.shape)}
    progress = True
    while progress:
        progress = False
        for t, i, d in list(pending):
            actual = int(shapes[t.name][i])
            e = d.xreplace({size_symbol(k): sympy.Integer(v) for k, v in known.items()})
            unknown = [x for x in e.free_symbols if str(x) in free]
            if len(unknown) != 1:
                continue
            lin = _linear_in(e, unknown[0])
            if lin is None:
                continue
            a, b = lin
            val = (actual - b) / a
            name = str(unknown[0])
            if not val.is_integer:
                raise NkigenError(diag(
                    t.loc, f"inputs.{t.name}.shape[{i}]",
                    f"cannot bind size {name}: {d} = {actual} has no integer solution",
                    actual, f"pass a dimension of the form {d}"))
            known[name] = int(val)
            pending.remove((t, i, d))
            progress = True
    for s in spec.sizes:
        if s.name in free and s.name not in known:
            raise NkigenError(diag(s.loc, f"sizes.{s.name}",
                                   f"size {s.name} is not bound by any input shape"))
    full = complete_sizes(spec, known)
    for t, i, d in pending:
        v = eval_size_expr(d, full)
        if v != int(shapes[t.name][i]):
            diags.append(diag(t.loc, f"inputs.{t.name}.shape[{i}]",
                              f"{t.name} dim {i} must be {declared[(t.name, i)]} = {v}",
                              shapes[t.name][i], f"pass {v}"))
    for s in spec.sizes:
        for rule, bound, _ in _broken(s, full[s.name]):
            rtext, fix = size_rule_message(s.name, full[s.name], rule, bound)
            diags.append(diag(s.loc, f"sizes.{s.name}", rtext, None, fix))
    if diags:
        raise NkigenError(diags)
    return full


def at_max(spec: Spec, e: sympy.Expr) -> int | None:
    """``e`` at the largest allowed sizes (each free size at its ``max``, derived sizes
    through their definitions), or None when a size is unbounded."""
    params = spec.param_values()
    subs: dict = {sympy.Symbol(k): sympy.sympify(v) for k, v in params.items()}
    for _ in range(8):
        syms = [s for s in sympy.sympify(e).free_symbols if s not in subs
                and s.name not in params]
        if not syms:
            break
        for s in syms:
            try:
                decl = spec.size(s.name)
            except KeyError:
                return None
            if decl.value is not None:
                e = e.subs(s, decl.value)
            elif decl.max is not None:
                subs[s] = sympy.Integer(decl.max)
            else:
                return None
    e = sympy.sympify(e).subs(subs)
    return int(e) if e.is_number else None
