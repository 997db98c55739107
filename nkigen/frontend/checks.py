"""Cross-field semantic checks that need no sympy reasoning (stage: parse, last step).

Input: the parsed :class:`~nkigen.ir.Spec` and its :class:`~nkigen.frontend.yamlpos.Document`
(for positions). Output: a list of located diagnostics (empty when all is well).

Checked here: statement order (read before write, outputs never written, temps never read),
names in ``ranges``, ``schedule`` and ``tests`` that refer to nothing, duplicate loop orders,
test cases that miss a size or give a derived one, empty uniform ranges. Extents, bounds and
constraint proofs are the analysis stage's (:mod:`nkigen.analysis`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from nkigen.diagnostics import Diagnostic
from nkigen.frontend.names import did_you_mean, tidy_got
from nkigen.frontend.validate import field_name
from nkigen.frontend.yamlpos import Document, Path
from nkigen.ir import Dist, Reduce, Role, Spec, accesses, spec_indices, walk

Check = Callable[[Spec, Document], list[Diagnostic]]


def _d(doc: Document, path: Path, rule: str, got: object = None, fix: str | None = None,
       key: bool = False) -> Diagnostic:
    loc = doc.key_loc(path) if key else doc.loc(path)
    shown = tidy_got(rule, None if got is None else str(got))
    return Diagnostic(loc, field_name(path), rule, shown, fix)


def statement_indices(spec: Spec) -> list[str]:
    """Every index name used by some statement, in first-use order."""
    return list(spec_indices(spec.statements))


def check_dataflow(spec: Spec, doc: Document) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    roles = {t.name: t.role for t in spec.tensors}
    written: dict[str, int] = {}
    read: set[str] = set()
    later_writes = {st.target: st.position for st in reversed(spec.statements)}
    for st in spec.statements:
        for a in accesses(st.rhs):
            if roles[a.tensor] is Role.INPUT:
                continue
            read.add(a.tensor)
            if a.tensor not in written:
                first = later_writes.get(a.tensor)
                if first is not None and first > st.position:
                    fix = f"move compute[{first}] (which writes it) before this statement"
                elif first == st.position:
                    fix = f"write {a.tensor} in an earlier statement, or use '+=' to accumulate"
                else:
                    fix = f"write {a.tensor} in an earlier statement"
                out.append(Diagnostic(a.loc or st.loc, field_name(("compute", st.position)),
                                      f"reads {roles[a.tensor].value} '{a.tensor}' before any "
                                      "statement writes it", None, fix))
        written.setdefault(st.target, st.position)
    for t in spec.outputs:
        if t.name not in written:
            out.append(_d(doc, ("outputs", t.name), f"output '{t.name}' is never written", None,
                          f"add a statement such as '{t.name}[...] = ...'", key=True))
    for t in spec.temps:
        if t.name not in written and t.name not in read:
            out.append(_d(doc, ("temps", t.name), f"temp '{t.name}' is never used", None,
                          "remove it", key=True))
        elif t.name not in read:
            out.append(_d(doc, ("temps", t.name), f"temp '{t.name}' is written but never read",
                          None, "read it in a later statement, or remove it and its statement",
                          key=True))
    return out


def check_index_names(spec: Spec, doc: Document) -> list[Diagnostic]:
    """ranges and schedule hints must name indices the statements use."""
    used = statement_indices(spec)
    fix_all = "indices used: " + ", ".join(used) if used else None
    out = []

    def unknown(path: Path, name: str, key: bool) -> None:
        out.append(_d(doc, path, f"no statement uses index '{name}'", repr(name),
                      did_you_mean(name, used, fix_all), key=key))

    for name, _ in spec.ranges:
        if name not in used:
            unknown(("ranges", name), name, True)
    raw = doc.data.get("schedule") if isinstance(doc.data, dict) else None
    if isinstance(raw, dict):
        for section in ("tiles", "block"):
            for name in raw.get(section) or {}:
                if name not in used:
                    unknown(("schedule", section, name), name, True)
        for i, name in enumerate(raw.get("order") or ()):
            if name not in used:
                unknown(("schedule", "order", i), name, False)
    return out


def check_order_duplicates(spec: Spec, doc: Document) -> list[Diagnostic]:
    out = []
    for i, name in enumerate(spec.schedule.order):
        if name in spec.schedule.order[:i]:
            out.append(_d(doc, ("schedule", "order", i), f"index '{name}' appears twice in the "
                          "loop order", repr(name), "list each index once, outermost first"))
    return out


def check_tests(spec: Spec, doc: Document) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    sizes = {s.name: s for s in spec.sizes}
    free = [s.name for s in spec.free_sizes]
    raw = doc.data.get("tests") if isinstance(doc.data, dict) else None
    if not isinstance(raw, dict):
        return out
    for i, case in enumerate(raw.get("cases") or ()):
        for name in case:
            path = ("tests", "cases", i, name)
            if name not in sizes:
                out.append(_d(doc, path, f"unknown size '{name}'", repr(name),
                              did_you_mean(name, sizes, "sizes: " + ", ".join(sizes)), key=True))
            elif sizes[name].derived:
                out.append(_d(doc, path, f"size '{name}' is derived (computed from its value:)",
                              repr(name), f"remove {name} from the case", key=True))
        missing = [n for n in free if n not in case]
        if missing:
            out.append(_d(doc, ("tests", "cases", i), "test case does not give every free size",
                          "missing " + ", ".join(missing),
                          "add " + ", ".join(f"{n}: <value>" for n in missing)))
    inputs = [t.name for t in spec.inputs]
    for name, dist in spec.tests.inputs:
        ipath: Path = ("tests", "inputs", name)
        if name not in inputs:
            what = "an output" if name in {t.name for t in spec.outputs} else "not an input"
            out.append(_d(doc, ipath, f"'{name}' is {what}; tests.inputs configures inputs only",
                          repr(name), did_you_mean(name, inputs, "inputs: " + ", ".join(inputs)),
                          key=True))
        elif dist.dist is Dist.UNIFORM and dist.a >= dist.b:
            out.append(_d(doc, ipath, "uniform range is empty: low must be below high",
                          f"low {dist.a}, high {dist.b}", "e.g. {dist: uniform, low: 0, high: 1}"))
        elif dist.dist in (Dist.UNIFORM, Dist.POSITIVE) and dist.a_expr is None \
                and dist.b_expr is None and not math.isfinite(dist.b - dist.a):
            # NumPy draws low + (high - low) * u: the width itself must be a finite float64
            out.append(_d(doc, ipath, f"{dist.dist.value} range is too wide to draw: high - low "
                          "overflows float64", f"low {dist.a}, high {dist.b}",
                          "keep high - low below 1.7e308, e.g. low: -1.0e300, high: 1.0e300"))
        elif dist.dist is Dist.INTEGERS and dist.a_expr is None and dist.b_expr is None \
                and not (dist.a >= -2.0 ** 63 and dist.b < 2.0 ** 63 - 1):
            out.append(_d(doc, ipath, "integers range must lie within int64",
                          f"low {dist.a}, high {dist.b}", "e.g. {dist: integers, low: 0, high: 9}"))
        else:
            out += _check_dist_11(spec, doc, ipath, name, dist)
    return out


def _check_dist_11(spec: Spec, doc: Document, ipath: Path, name: str, dist) -> list[Diagnostic]:
    """The spec-language 1.1 distributions: ranges that can be drawn, shapes they need."""
    out: list[Diagnostic] = []
    t = spec.tensor(name)
    if (dist.a_expr is not None or dist.b_expr is not None) and dist.dist is not Dist.INTEGERS:
        out.append(_d(doc, ipath, "only dist: integers takes size expressions as low/high",
                      dist.dist.value, "give numbers, or use dist: integers"))
    elif dist.a_expr is not None or dist.b_expr is not None:
        pass        # evaluated at each test case
    elif dist.dist is Dist.INTEGERS:
        if dist.a != int(dist.a) or dist.b != int(dist.b) or dist.a > dist.b:
            out.append(_d(doc, ipath, "integers range needs integer low <= high",
                          f"low {dist.a}, high {dist.b}", "e.g. {dist: integers, low: 0, high: 9}"))
        elif t.dtype.is_integer and not (t.dtype.value_range[0] <= dist.a
                                         and dist.b <= t.dtype.value_range[1]):
            out.append(_d(doc, ipath, f"integers range does not fit {t.dtype.value}",
                          f"low {dist.a}, high {dist.b}",
                          f"stay within the {t.dtype.value} range"))
    elif dist.dist is Dist.POSITIVE and not 0 < dist.a < dist.b:
        out.append(_d(doc, ipath, "positive range needs 0 < low < high",
                      f"low {dist.a}, high {dist.b}", "e.g. {dist: positive, low: 0.5, high: 2}"))
    elif dist.dist is Dist.CAUSAL and t.rank < 2:
        out.append(_d(doc, ipath, "causal masks need a tensor of rank 2 or more",
                      f"rank {t.rank}", "use dist: onehot or integers for rank 1"))
    return out


def check_arg_targets(spec: Spec, doc: Document) -> list[Diagnostic]:
    """``argmax``/``argmin`` (spec language 1.1) produce indices: the statement's target must
    have an integer dtype, so no index is ever rounded."""
    out: list[Diagnostic] = []
    for st in spec.statements:
        args = [x for x in walk(st.rhs) if isinstance(x, Reduce) and x.op.is_arg]
        t = spec.tensor(st.target)
        if args and not t.dtype.is_integer:
            out.append(_d(doc, ("compute", st.position), f"{args[0].op.value} gives indices, "
                          f"but {st.target} is {t.dtype.value}", t.dtype.value,
                          f"declare {st.target} with dtype int32"))
    return out


def check_gather_ids(spec: Spec, doc: Document) -> list[Diagnostic]:
    """Indexed reads ``table[ids[t], d]`` (spec language 1.1): the ids are an integer input."""
    out: list[Diagnostic] = []
    for st in spec.statements:
        for a in accesses(st.rhs):
            for _, inner in a.indirect:
                t = spec.tensor(inner.tensor)
                if not t.dtype.is_integer:
                    out.append(_d(doc, ("compute", st.position), f"{inner.tensor} gives the ids "
                                  f"of {a.tensor}[...] but is {t.dtype.value}", t.dtype.value,
                                  f"declare {inner.tensor} with dtype int32"))
    return out


# checks that are meaningful only when every statement parsed (else they cascade)
AFTER_STATEMENTS: tuple[Check, ...] = (check_dataflow, check_index_names, check_arg_targets,
                                       check_gather_ids)
ALWAYS: tuple[Check, ...] = (check_order_duplicates, check_tests)


def check_spec(spec: Spec, doc: Document, all_parsed: bool) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for check in ALWAYS + (AFTER_STATEMENTS if all_parsed else ()):
        out.extend(check(spec, doc))
    return out
