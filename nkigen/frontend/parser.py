"""Schema-valid document to frozen spec IR (stage: parse).

Input: a :class:`~nkigen.frontend.yamlpos.Document` that passed JSON Schema validation.
Output: a :class:`~nkigen.ir.Spec`, or :class:`~nkigen.diagnostics.NkigenError` carrying every
problem found: names (collisions, reserved words), size and shape expressions, each statement,
then the cross-field semantic checks of :mod:`nkigen.frontend.checks`.
"""

from __future__ import annotations

import functools
import re

import sympy

from nkigen.diagnostics import Diagnostic, Loc, NkigenError, by_position, unique
from nkigen.dtypes import DType
from nkigen.frontend import checks
from nkigen.frontend.exprs import ExprError, size_expr
from nkigen.frontend.names import Kind, Namespace, reserved_reason, tidy_got
from nkigen.frontend.statements import Shapes, parse_statement
from nkigen.frontend.validate import field_name
from nkigen.frontend.yamlpos import Document, Path
from nkigen.ir import (
    Dist,
    InputDist,
    Param,
    Role,
    Schedule,
    SizeDecl,
    Spec,
    Statement,
    TensorDecl,
    Tests,
)

_ROLES: dict[str, tuple[Role, Kind]] = {
    "inputs": (Role.INPUT, Kind.INPUT),
    "outputs": (Role.OUTPUT, Kind.OUTPUT),
    "temps": (Role.TEMP, Kind.TEMP),
}


class _Ctx:
    """The document, the namespace being built and the diagnostics collected so far."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.data: dict = doc.data  # type: ignore[assignment]
        self.ns = Namespace()
        self.diags: list[Diagnostic] = []

    def report(self, path: Path, rule: str, got: object = None, fix: str | None = None,
               key: bool = False, loc: Loc | None = None) -> None:
        where = loc or (self.doc.key_loc(path) if key else self.doc.loc(path))
        self.diags.append(Diagnostic(where, field_name(path), rule,
                                     tidy_got(rule, None if got is None else str(got)), fix))

    def expr_error(self, path: Path, e: ExprError) -> None:
        self.report(path, e.rule, e.got, e.fix, loc=self.doc.text_loc(path, e.offset))

    def size_value(self, path: Path, value: object) -> sympy.Expr | None:
        """An integer or a quoted size expression; None (reported) if it does not parse."""
        if isinstance(value, (int, float)):
            return sympy.Integer(int(value))
        try:
            return size_expr(str(value), self.ns)
        except ExprError as e:
            self.expr_error(path, e)
            return None


def _kernel_name(ctx: _Ctx) -> str:
    name = ctx.data["name"]
    why = reserved_reason(name)
    if why is not None:
        ctx.report(("name",), f"kernel name {why}", repr(name), f"use e.g. '{name}_kernel'")
    return name


def _declare_names(ctx: _Ctx) -> None:
    """Sizes, params and tensors enter the one namespace, in file order of their sections."""
    sections: list[tuple[str, Kind | None]] = [("sizes", Kind.SIZE), ("params", Kind.PARAM),
                                               ("inputs", None), ("outputs", None),
                                               ("temps", None)]
    for section, kind in sections:
        for name, value in (ctx.data.get(section) or {}).items():
            k = kind or _ROLES[section][1]
            path = (section, name)
            for d in ctx.ns.declare(name, k, ctx.doc.key_loc(path), field_name(path)):
                ctx.diags.append(d)
            if k is Kind.PARAM and ctx.ns.kind(name) is Kind.PARAM:
                ctx.ns.params[name] = value
                if isinstance(value, int):
                    ctx.ns.int_params[name] = value
    kname = ctx.data["name"]
    if kname in ctx.ns.kinds:
        kind = ctx.ns.kinds[kname]
        ctx.report(("name",), f"kernel name is also the name of {kind.value} '{kname}'",
                   repr(kname), "rename the kernel or the " + kind.value)


def _sizes(ctx: _Ctx) -> tuple[SizeDecl, ...]:
    out = []
    for name, body in (ctx.data.get("sizes") or {}).items():
        path = ("sizes", name)
        value = None
        if "value" in body:
            value = ctx.size_value((*path, "value"), body["value"])
        lo = int(body.get("min", 1))
        hi = int(body["max"]) if "max" in body else None
        if hi is not None and lo > hi:
            ctx.report((*path, "max"), f"max is smaller than min ({lo})", hi,
                       f"use a max of at least {lo}")
        mult = int(body["multiple_of"]) if "multiple_of" in body else None
        out.append(SizeDecl(name, mult, lo, hi, value, ctx.doc.key_loc(path)))
    _derived_cycles(ctx, out)
    return tuple(out)


def _derived_cycles(ctx: _Ctx, sizes: list[SizeDecl]) -> None:
    deps = {s.name: {x.name for x in s.value.free_symbols} for s in sizes if s.value is not None}
    for start in deps:
        seen, todo = set(), list(deps[start])
        while todo:
            n = todo.pop()
            if n == start:
                ctx.report(("sizes", start, "value"), "derived size depends on itself",
                           f"{start} = {ctx.data['sizes'][start]['value']}",
                           "compute it from free sizes and params only")
                break
            if n not in seen:
                seen.add(n)
                todo.extend(deps.get(n, ()))


def _params(ctx: _Ctx) -> tuple[Param, ...]:
    return tuple(Param(n, v, ctx.doc.key_loc(("params", n)))
                 for n, v in (ctx.data.get("params") or {}).items())


def _tensors(ctx: _Ctx, section: str, broken: set[str]) -> tuple[TensorDecl, ...]:
    """Tensor declarations; names whose shape has an error go to ``broken``."""
    role, kind = _ROLES[section]
    out = []
    for name, body in (ctx.data.get(section) or {}).items():
        if ctx.ns.kind(name) is not kind:    # lost a name collision (reported): leave it out
            continue
        before = len(ctx.diags)
        shape = []
        for i, entry in enumerate(body["shape"]):
            e = ctx.size_value((section, name, "shape", i), entry)
            if e is not None and e.is_number and not e > 0:
                ctx.report((section, name, "shape", i), "a dimension must be positive", e,
                           "use a size name or a positive expression")
            shape.append(e if e is not None else sympy.Integer(1))
        if len(ctx.diags) > before:
            broken.add(name)
        if "initial" in body:          # spec language 1.1: a recurrence's starting value
            ctx.ns.initial[name] = body["initial"]
        out.append(TensorDecl(name, role, tuple(shape), DType(body["dtype"]),
                              ctx.doc.key_loc((section, name))))
    return tuple(out)


def _shapes(tensors: tuple[TensorDecl, ...], broken: set[str]) -> Shapes:
    def example(t: TensorDecl) -> str:
        names = []
        for k, d in enumerate(t.shape):
            syms = sorted(s.name for s in d.free_symbols)
            cand = syms[0].lower() if syms else "ijklmn"[k]
            names.append(cand if cand not in names else f"{cand}{k}")
        return ", ".join(names)

    return Shapes({t.name: t.rank for t in tensors}, {t.name: example(t) for t in tensors},
                  frozenset(broken))


def _statements(ctx: _Ctx, shapes: Shapes) -> tuple[tuple[Statement, ...], bool]:
    out = []
    ok = True
    for i, text in enumerate(ctx.data["compute"]):
        path: Path = ("compute", i)
        loc = functools.partial(ctx.doc.text_loc, path)
        try:
            out.append(parse_statement(text, i, ctx.ns, shapes, loc))
        except ExprError as e:
            ok = False
            if not _mentions(text, ctx.ns.collided):   # else: a follow-up of the collision
                ctx.expr_error(path, e)
    return tuple(out), ok


def _mentions(text: str, names: set[str]) -> bool:
    return any(re.search(rf"\b{re.escape(n)}\b", text) for n in names)


def _ranges(ctx: _Ctx) -> tuple[tuple[str, sympy.Expr], ...]:
    out = []
    for name, value in (ctx.data.get("ranges") or {}).items():
        e = ctx.size_value(("ranges", name), value)
        if e is not None:
            out.append((name, e))
    return tuple(out)


def _schedule(ctx: _Ctx) -> Schedule:
    raw = ctx.data.get("schedule", "auto")
    loc = ctx.doc.loc(("schedule",)) if "schedule" in ctx.data else None
    if not isinstance(raw, dict) or not raw:
        return Schedule(auto=True, loc=loc)
    return Schedule(
        auto=False,
        tiles=tuple((k, int(v)) for k, v in (raw.get("tiles") or {}).items()),
        order=tuple(raw.get("order") or ()),
        block=tuple((k, int(v)) for k, v in (raw.get("block") or {}).items()),
        buffers=int(raw["buffers"]) if "buffers" in raw else None,
        loc=loc,
    )


# default [low, high] of the ranged distributions
DIST_RANGE: dict[Dist, tuple[float, float]] = {
    Dist.UNIFORM: (0.0, 1.0), Dist.INTEGERS: (-8.0, 8.0), Dist.POSITIVE: (0.5, 2.0),
}


def _tests(ctx: _Ctx) -> Tests:
    raw = ctx.data.get("tests")
    if raw is None:
        return Tests()
    cases = tuple(tuple(sorted((k, int(v)) for k, v in case.items()))
                  for case in raw.get("cases") or ())
    tol = raw.get("tolerance") or {}
    inputs = []
    for name, d in (raw.get("inputs") or {}).items():
        kind = Dist(d["dist"])
        if kind is Dist.NORMAL:
            inputs.append((name, InputDist(Dist.NORMAL, float(d.get("mean", 0.0)),
                                           float(d.get("std", 1.0)))))
        else:
            low, high = DIST_RANGE.get(kind, (0.0, 1.0))
            exprs = {}
            for key in ("low", "high"):
                if isinstance(d.get(key), str):     # 1.1: integers bounds as size expressions
                    exprs[key] = ctx.size_value(("tests", "inputs", name, key), d[key])
            inputs.append((name, InputDist(
                kind, float(d["low"]) if isinstance(d.get("low"), (int, float)) else low,
                float(d["high"]) if isinstance(d.get("high"), (int, float)) else high,
                exprs.get("low"), exprs.get("high"))))
    return Tests(
        cases=cases,
        rtol=float(tol["rtol"]) if "rtol" in tol else None,
        atol=float(tol["atol"]) if "atol" in tol else None,
        seed=int(raw.get("seed", 0)),
        inputs=tuple(inputs),
        nonfinite=bool(raw.get("nonfinite", False)),
        loc=ctx.doc.loc(("tests",)),
    )


def parse_spec(doc: Document, sha256: str = "") -> Spec:
    """A schema-valid document to a Spec (raises NkigenError with every problem found)."""
    ctx = _Ctx(doc)
    name = _kernel_name(ctx)
    _declare_names(ctx)
    sizes = _sizes(ctx)
    params = _params(ctx)
    broken: set[str] = set()
    inputs, outputs, temps = (_tensors(ctx, s, broken) for s in ("inputs", "outputs", "temps"))
    statements, all_parsed = _statements(ctx, _shapes(inputs + outputs + temps, broken))
    spec = Spec(
        name=name,
        doc=str(ctx.data.get("doc", "")),
        bound_note=str(ctx.data.get("bound_note", "")),
        target=ctx.data.get("target"),
        sizes=sizes,
        params=params,
        inputs=inputs,
        outputs=outputs,
        temps=temps,
        statements=statements,
        ranges=_ranges(ctx),
        schedule=_schedule(ctx),
        tests=_tests(ctx),
        path=doc.path,
        sha256=sha256,
        loc=doc.loc(()),
        locs=_locs(doc),
    )
    ctx.diags.extend(checks.check_spec(spec, doc, all_parsed))
    if ctx.diags:
        raise NkigenError(by_position(unique(ctx.diags)))
    return spec


def _locs(doc: Document) -> tuple[tuple[str, Loc], ...]:
    """Every node's position keyed "a.b[0].c", for stages that report on raw fields."""
    return tuple((field_name(path), loc) for path, loc in doc.locs.items() if path)
