"""Decode-shaped row groups (codegen/rowsplit.py): at few rows of a long length, each row is
viewed as ``[128, D / 128]`` across the partitions, its partial sums combined by a ones matmul on
TensorE (partial maxima by two TensorE transposes, NeuronCore-v3 only); the kernel takes that
form at trace time when ``D % 128 == 0`` and ``E * M <= D``: ``E = ROW_ELEMS_PER_ROW = 512``
for a group with an element-wise row statement (rmsnorm: one row of 4096 elements up to M = 8),
``REDUCE_ELEMS_PER_ROW = 1024`` for reductions alone (row_sum: up to M = 4), twice that with a
max (softmax: 1024, row_max: 2048).

Which form ran is read from the trace: the split form issues per row one ``nc_matmul`` per sum
whose moving operand is the ``[128, 1]`` column of partial sums (moving free size 1) and two
``nc_transpose`` per max; the one-row-per-partition pass issues none of either (classic: its
``broadcast_to`` matmuls move whole rows).
"""

from __future__ import annotations

import pytest
from codegen_check import assert_matches_reference, load_source

from nkigen.codegen import generate, rowsplit
from nkigen.frontend import load_spec, load_spec_text
from nkigen.testdata import make_inputs

COMBOS = [(d, t) for d in ("nki", "neuronxcc") for t in ("trn1", "trn2")]
SUMS = ["rmsnorm", "residual_rmsnorm", "layernorm", "row_sum", "row_mean", "l2_normalize"]
MAXES = ["softmax", "log_softmax", "row_max"]

# l2 normalisation of each row (no spec of its own ships): a sum of squares and an epilogue
L2 = """
nkigen: 1
name: l2_normalize
doc: each row divided by its L2 norm (floored at sqrt(eps))
sizes:
  M: {min: 1, max: 256}
  D: {min: 1, max: 8192}
params:
  eps: 1.0e-12
inputs:
  x: {shape: [M, D], dtype: float32}
outputs:
  y: {shape: [M, D], dtype: float32}
temps:
  ss: {shape: [M], dtype: float32}
compute:
  - ss[m] = sum(square(x[m, d]), d)
  - y[m, d] = x[m, d] * rsqrt(maximum(ss[m], eps))
"""

# combine instructions per row of each spec in the split form (a matmul per sum, two
# transposes per max)
REDUCTIONS = {"rmsnorm": 1, "residual_rmsnorm": 1, "layernorm": 2, "row_sum": 1,
              "row_mean": 1, "l2_normalize": 1, "softmax": 3, "log_softmax": 3, "row_max": 2}


def _elems(name: str) -> int:
    alone = name in ("row_sum", "row_mean", "row_max")
    e = rowsplit.REDUCE_ELEMS_PER_ROW if alone else rowsplit.ROW_ELEMS_PER_ROW
    return e * rowsplit.EXTREME_FACTOR if name in MAXES else e


def _splits(name: str, target: str) -> bool:
    """Whether the spec has a split form on ``target`` (a max: NeuronCore-v3 only)."""
    return name not in MAXES or target == "trn2"


def _spec(name: str):
    return load_spec_text(L2) if name == "l2_normalize" else load_spec(f"specs/{name}.yaml")


def _sizes(spec, m: int, d: int) -> dict[str, int]:
    rows, cols = (s.name for s in spec.free_sizes)
    return {rows: m, cols: d}


def _kernel(spec, dialect: str, target: str):
    return load_source(generate(spec, target=target, dialect=dialect), spec.name)


def _run(spec, kernel, target: str, m: int, d: int, numerics: bool = True):
    import nkigen.sim as sim
    from nkigen.sim.classic import forms
    ins = make_inputs(spec, _sizes(spec, m, d))
    args = list(ins.values()) if numerics else \
        [sim.placeholder(a.shape, str(a.dtype)) for a in ins.values()]
    with forms.profile(forms.GENERATED):      # the build's strict classic profile
        return sim.run(kernel, args, target, numerics=numerics), ins


def _split_matmuls(res) -> int:
    return sum(1 for i in res.instrs if (i.op == "nc_matmul" and i.moving_free == 1
                                         and i.stationary_free == 128)
               or i.op == "nc_transpose")


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("name", SUMS + MAXES)
def test_split_matches_reference(name, dialect, target):
    """At D = 4096 the normalisations split at M = 1, 2, 8, not at M = 9 (9 * 512 > 4096);
    row_sum and row_mean at M = 1, 2 only (4 * 1024 is the last), softmax at M = 1, 2, row_max
    at M = 1, 2 (trn2 only); D = 4000 (not a multiple of 128) never splits. Every case matches
    the float64 reference within the spec's tolerance (the float32 partial sums change the
    summation order)."""
    spec = _spec(name)
    kernel = _kernel(spec, dialect, target)
    for d, ms in ((4096, (1, 2, 8, 9)), (4000, (1,))):
        for m in ms:
            res, ins = _run(spec, kernel, target, m, d)
            assert_matches_reference(spec, _sizes(spec, m, d), tuple(res.outputs), inputs=ins)
            split = d % 128 == 0 and _elems(name) * m <= d and _splits(name, target)
            assert _split_matmuls(res) == (m * REDUCTIONS[name] if split else 0), (m, d)
            assert not res.warnings, res.warnings


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("name,d", [("rmsnorm", 512), ("rmsnorm", 1024), ("rmsnorm", 4096),
                                    ("row_sum", 1024), ("row_sum", 8192), ("softmax", 4096),
                                    ("row_max", 8192)])
def test_boundary(name, d, dialect, target):
    """M = D / E splits, the first M over it keeps the one-row-per-partition pass; a row
    shorter than E never splits (D = E - 128 at M = 1). A max never splits on trn1."""
    spec = _spec(name)
    kernel = _kernel(spec, dialect, target)
    e = _elems(name)
    m = d // e
    per_row = REDUCTIONS[name] if _splits(name, target) else 0
    assert _split_matmuls(_run(spec, kernel, target, m, d, numerics=False)[0]) == m * per_row
    assert _split_matmuls(_run(spec, kernel, target, m + 1, d, numerics=False)[0]) == 0
    assert _split_matmuls(_run(spec, kernel, target, 1, e - 128, numerics=False)[0]) == 0


def _latencies(name: str, dialect: str, target: str, m: int, d: int,
               monkeypatch) -> tuple[float, float]:
    """(one-row-per-partition, split) modelled latency of the same spec and case."""
    spec = _spec(name)
    new = _kernel(spec, dialect, target)
    with monkeypatch.context() as mp:
        mp.setattr(rowsplit, "ROW_ELEMS_PER_ROW", 10 ** 9)     # never split
        mp.setattr(rowsplit, "REDUCE_ELEMS_PER_ROW", 10 ** 9)
        mp.setattr(rowsplit, "EXTREME_FACTOR", 1)
        old = _kernel(spec, dialect, target)
    lat = [_run(spec, k, target, m, d, numerics=False)[0].report.latency_us for k in (old, new)]
    return lat[0], lat[1]


@pytest.mark.parametrize("dialect,target", COMBOS)
def test_rmsnorm_decode_speedup(dialect, target, monkeypatch):
    """rmsnorm M = 1, D = 4096: the split form is modelled at least 3x faster (trn2 nki:
    9.18 -> 2.49 us; trn1: 14.04 -> 4.38 us)."""
    old, new = _latencies("rmsnorm", dialect, target, 1, 4096, monkeypatch)
    assert old >= 3.0 * new, (old, new)


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("name", SUMS + MAXES)
def test_taken_only_when_faster(name, dialect, target, monkeypatch):
    """At the boundary the rule takes (M = D / E: M = 1 at D = E, M = 4 at D = 4 E, capped at
    the spec's largest D) the split form is modelled faster than the one-row-per-partition
    pass, for each spec, target and dialect that has it."""
    if not _splits(name, target):
        pytest.skip("no split form for a max on NeuronCore-v2")
    e = _elems(name)
    for m in (1, 4):
        d = min(m * e, 8192)
        old, new = _latencies(name, dialect, target, d // e, d, monkeypatch)
        assert new < old, (d, old, new)


def test_not_planned_when_never_taken():
    """No split branch in a kernel whose sizes never meet the rule (M at least 128 rows at
    D <= 8192), nor for a max on NeuronCore-v2, nor for an argmax."""
    text = load_spec("specs/rmsnorm.yaml")
    assert "x_rs = x.reshape" in generate(text, target="trn2")
    many = load_spec_text(L2.replace("M: {min: 1, max: 256}", "M: {min: 128, max: 256}"))
    assert ".reshape(" not in generate(many, target="trn2")
    assert ".reshape((M, TILE_P" not in generate(load_spec("specs/softmax.yaml"), target="trn1")
    assert ".reshape((M, TILE_P" in generate(load_spec("specs/softmax.yaml"), target="trn2")
    assert ".reshape((M, TILE_P" not in generate(load_spec("specs/row_argmax.yaml"), target="trn2")


def _rmsnorm_with(schedule: str):
    from pathlib import Path
    text = Path("specs/rmsnorm.yaml").read_text()
    return load_spec_text(text.replace("\ntests:\n", f"\nschedule: {schedule}\ntests:\n"))


def test_schedule_hints():
    """A buffers hint keeps the split form (one buffer: its row loop unprefetched, still
    matching the reference); a tile hint names the one-row-per-partition pass's tiles, which
    the split form would ignore, so it is not planned."""
    one = _rmsnorm_with("{buffers: 1}")
    src = generate(one, target="trn2")
    assert ".reshape((M, TILE_P" in src
    res, ins = _run(one, load_source(src, one.name), "trn2", 2, 1024)
    assert _split_matmuls(res) == 2
    assert_matches_reference(one, _sizes(one, 2, 1024), tuple(res.outputs), inputs=ins)
    assert ".reshape((M, TILE_P" not in generate(_rmsnorm_with("{tiles: {m: 64}}"),
                                                 target="trn2")


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("name", SUMS + MAXES)
def test_other_sizes_run_the_old_pass(name, dialect, target, monkeypatch):
    """Outside the split form's sizes the kernel issues what it issued without it: the same
    instructions and modelled latency (M = 128 one full tile; M = 3, D = 8000 ragged, over the
    fused pass's SBUF budget on trn1). The classic broadcast of a per-column operand keeps
    binding the whole tile inside the nested trace-time choice (render._lines ``tail``: layernorm
    on trn1 had two more VectorE copies)."""
    spec = _spec(name)
    new = _kernel(spec, dialect, target)
    with monkeypatch.context() as mp:
        for knob in ("ROW_ELEMS_PER_ROW", "REDUCE_ELEMS_PER_ROW"):
            mp.setattr(rowsplit, knob, 10 ** 9)
        old = _kernel(spec, dialect, target)
    for m, d in ((128, 1024), (3, 8000)):
        a, b = (_run(spec, k, target, m, d, numerics=False)[0] for k in (old, new))
        assert [(i.engine, i.op, i.partitions, i.free) for i in a.instrs] == \
            [(i.engine, i.op, i.partitions, i.free) for i in b.instrs], (m, d)
        assert a.report.latency_us == b.report.latency_us, (m, d)


# a temp of the row group that a later statement reads again (the hoisted global mean's
# per-row part, a split total's partial rows): the split form stores it for the next stage (it
# kept it on chip, judging by statement positions, which a pre-pass's statements share, and
# the next stage read a name nothing allocated: a render error)
CENTER = """
nkigen: 1
name: center_all
doc: each element minus the mean of the whole tensor
sizes:
  M: {min: 1, max: 8}
  D: {min: 1, max: 8192}
inputs:
  x: {shape: [M, D], dtype: float32}
outputs:
  y: {shape: [M, D], dtype: float32}
compute:
  - y[m, d] = x[m, d] - mean(x[i, j], i, j)
"""


@pytest.mark.parametrize("dialect,target", COMBOS)
def test_a_temp_read_by_a_later_stage_is_stored_for_it(dialect, target):
    spec = load_spec_text(CENTER)
    kernel = _kernel(spec, dialect, target)
    for m in (1, 2):
        res, ins = _run(spec, kernel, target, m, 4096)
        assert_matches_reference(spec, _sizes(spec, m, 4096), tuple(res.outputs), inputs=ins)
        assert _split_matmuls(res) == m       # one ones-matmul per row: the split form
