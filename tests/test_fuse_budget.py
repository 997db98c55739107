"""The planner's fuse/split choice of a row group, pinned at its boundary (review5 F3, F6, F12).

A fused row pass keeps whole rows on chip. When its pipelined SBUF peak exceeds the budget
(``FUSED_SBUF_SHARE`` of the target's SBUF per partition) at some allowed size, the generated
kernel chooses at trace time: ``if <peak> < budget + 1: <fused> else: <split>``. For each case
below the test finds, from the generated source, the largest size the test accepts, and runs
the kernel cost-only in the simulator there (fused branch taken, its SBUF peak equal to the
tested expression, within the budget, no spill) and one element further (split branch taken,
within the budget); the spec's test cases take the fused branch.

The free size of the row group is the only size in each test expression; the other sizes are
set so the row loop runs at least two tiles (the double-buffered pipeline's peak).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import sympy
from codegen_check import load_source  # noqa: E402

from nkigen import hw, sim
from nkigen.codegen import generate
from nkigen.codegen.planner import FUSED_SBUF_SHARE
from nkigen.frontend import load_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _user_layernorm(tmp: Path) -> Path:
    """specs/layernorm.yaml with ``D`` unbounded (``{min: 1}``): review5 F12's user spec."""
    text = (SPECS / "layernorm.yaml").read_text()
    text = text.replace("D: {min: 1, max: 8192}", "D: {min: 1}").replace(
        "name: layernorm\n", "name: layernorm_u\n")
    assert "D: {min: 1}" in text and "name: layernorm_u" in text
    p = tmp / "layernorm_u.yaml"
    p.write_text(text)
    return p


def _budget(target: str) -> int:
    return int(FUSED_SBUF_SHARE * hw.target(target).sbuf_bytes_per_partition)


def _choice(src: str, budget: int) -> tuple[ast.If, list[ast.If]]:
    """The generated trace-time fuse test (the first ``if <peak> < budget + 1:``, guarding the
    fused stage) and the stages of its fallback (each ``if budget < <peak>:``, same peak)."""
    ifs = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.If)
           and isinstance(n.test, ast.Compare) and isinstance(n.test.ops[0], ast.Lt)]
    fused = [n for n in ifs if isinstance(n.test.comparators[0], ast.Constant)
             and n.test.comparators[0].value == budget + 1]
    assert fused, "no trace-time fuse test"
    first = min(fused, key=lambda n: n.lineno)
    assert not first.orelse
    split = [n for n in ifs if isinstance(n.test.left, ast.Constant)
             and n.test.left.value == budget
             and ast.dump(n.test.comparators[0]) == ast.dump(first.test.left)]
    assert split, "no fallback stages"
    return first, split


def _largest_accepted(test: ast.Compare, size: str) -> int:
    """The largest value of ``size`` for which the generated test holds (it is monotone)."""
    expr = compile(ast.Expression(test.left), "<fuse test>", "eval")
    ok = lambda v: eval(expr, {"max": max, "min": min}, {size: v}) < test.comparators[0].value  # noqa: E731
    lo, hi = 1, 1
    assert ok(lo)
    while ok(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _lines(nodes) -> set[int]:
    return {ln for n in nodes for ln in range(n.lineno, n.end_lineno + 1)}


def _run(kern, spec, sizes: dict, target: str):
    """Cost-only run (no arithmetic: shapes, checks, SBUF accounting) at ``sizes``."""
    subs = {spec.size(k).symbol: v for k, v in sizes.items()}
    inputs = [sim.Placeholder(tuple(int(sympy.sympify(d).subs(subs)) for d in t.shape),
                              np.dtype(t.dtype.name)) for t in spec.inputs]
    return sim.run(kern, inputs, target, numerics=False, report=False)


def _branch(res, choice: tuple[ast.If, list[ast.If]]) -> str:
    """Which side of the choice issued the run's instructions."""
    lines = {i.line for i in res.instrs}
    fused = bool(lines & _lines(choice[0].body))
    split = bool(lines & _lines([x for n in choice[1] for x in n.body]))
    assert fused != split, f"instructions from {'both' if fused else 'neither'} branches"
    return "fused" if fused else "split"


# (spec, dialect, target, free size, other sizes for two or more row tiles)
CASES = [
    ("layernorm3d", "nki", "trn2", "D", {"B": 2, "S": 256}),
    ("layernorm3d", "neuronxcc", "trn1", "D", {"B": 2, "S": 256}),
    ("layernorm3d", "neuronxcc", "trn2", "D", {"B": 1, "S": 300}),
    ("layernorm", "nki", "trn1", "D", {"M": 384}),
    ("layernorm", "neuronxcc", "trn1", "D", {"M": 384}),
    # (glu and leaky_relu_where in the current API run over flat views, rows of at most
    # FREE_TILE elements: no fuse choice there, test_flat_maps_need_no_fuse_choice)
    ("glu", "neuronxcc", "trn2", "N", {"M": 256}),
    ("layernorm_u", "nki", "trn2", "D", {"M": 384}),
    ("layernorm_u", "neuronxcc", "trn1", "D", {"M": 384}),
]


@pytest.mark.parametrize("name,dialect,target,size,rest", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_fuse_choice_at_its_boundary(tmp_path, name, dialect, target, size, rest):
    path = _user_layernorm(tmp_path) if name == "layernorm_u" else SPECS / f"{name}.yaml"
    spec = load_spec(path)
    budget = _budget(target)
    src = generate(spec, target=target, dialect=dialect)
    node = _choice(src, budget)
    last = _largest_accepted(node[0].test, size)
    kern = load_source(src, spec.name)
    peak = compile(ast.Expression(node[0].test.left), "<fuse test>", "eval")
    # the last accepted size: fused, its peak is the tested expression, within the budget
    at = _run(kern, spec, {**rest, size: last}, target)
    assert _branch(at, node) == "fused"
    assert at.peak_sbuf_bytes == eval(peak, {"max": max, "min": min}, {size: last})
    assert at.peak_sbuf_bytes <= budget
    assert not [w for w in at.warnings if "spill" in str(w)]
    # the first refused size: split, within the budget
    over = _run(kern, spec, {**rest, size: last + 1}, target)
    assert _branch(over, node) == "split"
    assert over.peak_sbuf_bytes <= budget
    # the spec's test cases take both branches, so the build verifies both forms: the
    # cases up to the boundary the fused pass, the one at the size's maximum the split form
    taken = set()
    for case in spec.tests.cases if spec.tests else ():
        got = _branch(_run(kern, spec, dict(case), target), node)
        assert got == ("fused" if dict(case)[size] <= last else "split"), case
        taken.add(got)
    if spec.tests and spec.tests.cases:
        assert taken == {"fused", "split"}, taken


# (spec, dialect, target, free size, other sizes: two row tiles, the last one ragged)
NUMERIC = [
    ("layernorm3d", "nki", "trn2", "D", {"B": 2, "S": 130}),
    ("layernorm3d", "neuronxcc", "trn1", "D", {"B": 1, "S": 130}),
    ("glu", "neuronxcc", "trn2", "N", {"M": 130}),
    ("layernorm_u", "nki", "trn2", "D", {"M": 130}),
]


@pytest.mark.parametrize("name,dialect,target,size,rest", NUMERIC,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in NUMERIC])
def test_both_sides_of_the_choice_compute_the_reference(tmp_path, name, dialect, target, size,
                                                        rest):
    """Both branches agree with the float64 reference at the boundary (the classic kernel under
    the generated profile: every undocumented classic form an error)."""
    from codegen_check import check_case

    from nkigen.sim.classic import forms

    path = _user_layernorm(tmp_path) if name == "layernorm_u" else SPECS / f"{name}.yaml"
    spec = load_spec(path)
    src = generate(spec, target=target, dialect=dialect)
    last = _largest_accepted(_choice(src, _budget(target))[0].test, size)
    with forms.profile(forms.GENERATED):
        for v in (last, last + 1):
            check_case(spec, {**rest, size: v}, target=target, src=src)


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_every_fuse_test_of_the_fallback_keeps_the_kernel_within_budget(tmp_path, dialect,
                                                                        target):
    """The user layernorm's fallback has its own choice (mu and var fused over whole rows, y
    streamed): at the last size each fuse test accepts and the next one, the whole kernel's
    SBUF peak is within the budget (each fallback pass is its own stage helper, so a pass's
    tiles are gone when the next one allocates)."""
    spec = load_spec(_user_layernorm(tmp_path))
    budget = _budget(target)
    src = generate(spec, target=target, dialect=dialect)
    tests = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.If)
             and isinstance(n.test, ast.Compare) and isinstance(n.test.ops[0], ast.Lt)
             and isinstance(n.test.comparators[0], ast.Constant)
             and n.test.comparators[0].value == budget + 1]
    lasts = sorted({_largest_accepted(n.test, "D") for n in tests})
    assert len(lasts) == 2, lasts
    kern = load_source(src, spec.name)
    for last in lasts:
        for d in (last, last + 1):
            res = _run(kern, spec, {"M": 384, "D": d}, target)
            assert res.peak_sbuf_bytes <= budget, (d, res.peak_sbuf_bytes)
            assert not [w for w in res.warnings if "spill" in str(w)], d


@pytest.mark.parametrize("name", ["glu", "leaky_relu_where"])
def test_flat_maps_need_no_fuse_choice(name):
    # codegen/flatten.py: the maps run as rows of at most FREE_TILE elements, whose fused pass
    # fits SBUF at every size, so the kernel carries no trace-time fuse choice
    src = generate(load_spec(SPECS / f"{name}.yaml"), target="trn2", dialect="nki")
    assert "codegen/flatten.py" in src
    assert not re.search(r"^\s*if .+ < \d{4,}:$", src, re.M)   # (if <peak> < <budget + 1>:)
