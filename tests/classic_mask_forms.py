"""Which loop kinds each ``mask=`` of a classic kernel source depends on (a test helper).

The documented mask forms (S25 = aws-neuron-sdk v2.25.0 general/nki/api/nki.api.shared.rst,
"NKI API Masking"): each side of each comparison in a mask is an affine expression of
``nl.arange()``, ``nl.affine_range()`` or ``nl.program_id()``, so a mask must not depend on
an ``nl.sequential_range`` (or ``nl.static_range``) index; a matmul lane mask cannot tell the
result's free axes apart (the section introduces operand masking instead), so an
``nc_matmul`` mask holds no ``nl.arange`` term, only loop-index predicates that skip the whole
instruction (its use case 2, "Skip ineffectual instructions").

The analysis is flow-sensitive per function (a name rebound after a loop, e.g. the peeled last
iteration's ``kb = nkb - 1``, loses the loop's kind) and follows module-level helper calls: a
parameter has the kinds of every argument passed to it (iterated to a fixed point).
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field

RANGES = ("affine_range", "sequential_range", "static_range", "range")


@dataclass
class Report:
    seq_masks: Counter = field(default_factory=Counter)   # op -> masks naming a seq index
    matmul_lane_masks: int = 0                            # nc_matmul masks with nl.arange
    loop_min: int = 0                                     # min() of a loop index
    where: list[str] = field(default_factory=list)


def _names(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _range_kind(it) -> str | None:
    if isinstance(it, ast.Call):
        f = it.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) \
            else None
        if name in RANGES:
            return name
    return None


class _Fn:
    def __init__(self, fn: ast.FunctionDef, params: dict[str, set[str]],
                 funcs: dict[str, ast.FunctionDef], calls: dict[str, dict[str, set[str]]],
                 report: Report | None) -> None:
        self.env: dict[str, set[str]] = {k: set(v) for k, v in params.items()}
        self.funcs, self.calls, self.report, self.fn = funcs, calls, report, fn

    def kinds(self, node) -> set[str]:
        out: set[str] = set()
        for n in _names(node):
            out |= self.env.get(n, set())
        return out

    def stmts(self, body) -> None:
        for s in body:
            self.stmt(s)

    def stmt(self, s) -> None:
        if isinstance(s, ast.For):
            kind = _range_kind(s.iter)
            self.exprs(s.iter)
            if isinstance(s.target, ast.Name):
                self.env[s.target.id] = {kind} if kind else self.kinds(s.iter)
            self.stmts(s.body)
            self.stmts(s.orelse)
        elif isinstance(s, ast.Assign):
            self.exprs(s.value)
            k = self.kinds(s.value)
            for t in s.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                        self.env[n.id] = set(k)
                if not isinstance(t, ast.Name):
                    self.exprs(t)
        elif isinstance(s, ast.If):
            self.exprs(s.test)
            self.stmts(s.body)
            self.stmts(s.orelse)
        elif isinstance(s, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
            return
        else:
            for child in ast.iter_child_nodes(s):
                if isinstance(child, ast.expr):
                    self.exprs(child)
                elif isinstance(child, ast.stmt):
                    self.stmt(child)

    def exprs(self, e) -> None:
        for n in ast.walk(e):
            if not isinstance(n, ast.Call):
                continue
            f = n.func
            if isinstance(f, ast.Name) and f.id in self.funcs:
                params = [a.arg for a in self.funcs[f.id].args.args]
                got = self.calls.setdefault(f.id, {})
                for p, a in zip(params, n.args):
                    got.setdefault(p, set()).update(self.kinds(a))
                for kw in n.keywords:
                    if kw.arg:
                        got.setdefault(kw.arg, set()).update(self.kinds(kw.value))
            if self.report is None:
                continue
            if isinstance(f, ast.Name) and f.id == "min" and self.kinds(n):
                self.report.loop_min += 1
                self.report.where.append(f"{self.fn.name}:{n.lineno}: min() of a loop index")
            for kw in n.keywords:
                if kw.arg != "mask":
                    continue
                op = ast.unparse(f).split(".")[-1]
                if self.kinds(kw.value) - {"affine_range"}:
                    self.report.seq_masks[op] += 1
                    self.report.where.append(f"{self.fn.name}:{n.lineno}: {op} mask names "
                                             f"a {sorted(self.kinds(kw.value))} index")
                if op in ("nc_matmul", "matmul") and any(
                        isinstance(x, ast.Attribute) and x.attr == "arange"
                        for x in ast.walk(kw.value)):
                    self.report.matmul_lane_masks += 1
                    self.report.where.append(f"{self.fn.name}:{n.lineno}: nc_matmul mask with "
                                             "an nl.arange lane term")


def analyse(src: str) -> Report:
    """The mask report of one kernel module's source."""
    tree = ast.parse(src)
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    calls: dict[str, dict[str, set[str]]] = {}
    for _ in range(len(funcs) + 1):       # parameter kinds to a fixed point
        before = {k: {p: set(v) for p, v in d.items()} for k, d in calls.items()}
        for name, fn in funcs.items():
            _Fn(fn, calls.get(name, {}), funcs, calls, None).stmts(fn.body)
        if calls == before:
            break
    report = Report()
    for name, fn in funcs.items():
        _Fn(fn, calls.get(name, {}), funcs, calls, report).stmts(fn.body)
    return report
