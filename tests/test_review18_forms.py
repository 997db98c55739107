"""Review 18 (docs/review-kernels-18.md): the rowsplit lowering (codegen/rowsplit.py) read as
an NKI expert against SH (nki/api at HEAD, nki 0.3) and S25 (v2.25.0 general/nki/).

R18-1: every combine of a split row holds a PSUM tile of its own (a bank: one per sum or mean,
two per max or min), all of a row's live at once, plus one more bank while they are (the
pipelined loop's next allocation, the classic ``+=`` matmul's result), so a group needing more
than PSUM_BANKS - 1 = 7 per row overflowed PSUM (rejected by the simulator's capacity rule in
both dialects); such a group now keeps the one-row-per-partition pass."""

from __future__ import annotations

import pytest
from codegen_check import assert_matches_reference, load_source

from nkigen.codegen import generate, rowsplit
from nkigen.frontend import load_spec_text
from nkigen.hw import PSUM_BANKS
from nkigen.testdata import make_inputs


def _stats(sums: int) -> str:
    """``sums`` row sums and one row max feeding one epilogue: ``sums + 2`` PSUM tiles per
    row in the split form."""
    temps = "".join(f"  s{i}: {{shape: [M], dtype: float32}}\n" for i in range(sums))
    comp = "".join(f"  - s{i}[m] = sum(x[m, d] * {i + 1}.0, d)\n" for i in range(sums))
    epi = " + ".join(f"s{i}[m]" for i in range(sums))
    return f"""nkigen: 1
name: stats{sums}
doc: {sums} row sums and a row max
sizes:
  M: {{min: 1, max: 8}}
  D: {{min: 128, max: 8192}}
inputs:
  x: {{shape: [M, D], dtype: float32}}
outputs:
  y: {{shape: [M, D], dtype: float32}}
temps:
{temps}  mx: {{shape: [M], dtype: float32}}
compute:
  - mx[m] = max(x[m, d], d)
{comp}  - y[m, d] = x[m, d] * ({epi}) - mx[m]
"""


def _run(spec, dialect: str, target: str, m: int, d: int):
    import nkigen.sim as sim
    from nkigen.sim.classic import forms
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    sizes = {"M": m, "D": d}
    ins = make_inputs(spec, sizes)
    with forms.profile(forms.GENERATED):
        res = sim.run(kernel, list(ins.values()), target, numerics=True)
    assert_matches_reference(spec, sizes, tuple(res.outputs), inputs=ins)
    assert not res.warnings, res.warnings
    return res


def test_psum_tiles_counts_one_per_sum_two_per_max():
    spec = load_spec_text(_stats(5))
    assert rowsplit.psum_tiles(list(spec.statements)) == 7
    assert PSUM_BANKS - 1 == 7


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_psum_banks_per_row_boundary(dialect):
    """5 sums + a max (7 PSUM tiles per row) take the split form on trn2 and run; 6 sums + a
    max (8, the first over) keep the one-row-per-partition pass: before the fix that kernel
    was rejected by the simulator (PSUM capacity exceeded, 18432 > 16384 B/partition)."""
    for sums, split in ((5, True), (6, False)):
        spec = load_spec_text(_stats(sums))
        res = _run(spec, dialect, "trn2", 1, 4096)
        turns = sum(1 for i in res.instrs if i.op == "nc_transpose")
        assert (turns == 2) is split, (sums, turns)


def _weighted(n: int) -> str:
    """A row sum of ``n`` per-column products: ``n`` hoisted ``[128, D / 128]`` weight tiles
    in the split form, rows up to 262144 long."""
    ins = "".join(f"  w{i}: {{shape: [D], dtype: float32}}\n" for i in range(n))
    body = " + ".join(f"x[m, d] * w{i}[d]" for i in range(n))
    return f"""nkigen: 1
name: wsum{n}
doc: a row sum of {n} per-column products
sizes:
  M: {{min: 1, max: 8}}
  D: {{min: 128, max: 262144}}
inputs:
  x: {{shape: [M, D], dtype: float32}}
{ins}outputs:
  s: {{shape: [M], dtype: float32}}
compute:
  - s[m] = sum({body}, d)
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_split_sbuf_peak_caps_the_row_length(dialect):
    """R18-2: the split form's rows are not chunked, so its ``[128, D / 128]`` tiles (here 20
    hoisted weights) must fit SBUF at the row length it is taken at: the trace-time choice
    caps ``D`` where the form's pipelined peak (rows.peak) reaches the planner's budget
    (153216 on trn2). At the cap it splits without a spill; 128 over it keeps the
    one-row-per-partition pass (before the fix: split, and the simulator warned of live SBUF
    tiles over 212984 B/partition, spilled)."""
    import nkigen.sim as sim
    from nkigen.sim.classic import forms
    spec = load_spec_text(_weighted(20))
    assert "D // 153217" in generate(spec, target="trn2", dialect=dialect)
    kernel = load_source(generate(spec, target="trn2", dialect=dialect), spec.name)
    for d, split in ((153216, True), (153344, False)):
        ins = make_inputs(spec, {"M": 1, "D": d})
        with forms.profile(forms.GENERATED):
            res = sim.run(kernel, list(ins.values()), "trn2", numerics=False)
        mm = sum(1 for i in res.instrs if i.op == "nc_matmul" and i.moving_free == 1)
        assert (mm == 1) is split, (d, mm)
        if split:
            assert not res.warnings, res.warnings
