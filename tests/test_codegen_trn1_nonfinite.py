"""Non-finite data and NeuronCore-v2 transposes (nkigen.codegen.transpose).

A trn1 TensorE transpose is a matmul with the identity and "not bit-accurate if the input data
contains NaN/Inf" (S29 nki/api/nki/isa/__init__.py nc_transpose, nki 0.3; S25
general/nki/api/nki/isa/__init__.py nc_transpose, SDK 2.25); the simulator models that
(nkigen.sim.isa_move._te_transpose). A plain transpose moves an input, which may hold NaN/Inf,
so on trn1 it turns float data with VectorE 32 x 32 transposes; trn2 (bit-accurate transpose
mode) keeps TensorE / the DMA transpose unit. Contractions keep their TensorE operand
transposes on trn1 and the kernel and the build say they are exact for finite data only.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from nkigen.analysis import analyze
from nkigen.codegen import generate, plan_kernel
from nkigen.codegen.render import NOT_EXACT_V2
from nkigen.frontend import load_spec
from nkigen.library.planinfo import schedule_json

sys.path.insert(0, str(Path(__file__).parent))
from codegen_check import check_case, load_source  # noqa: E402

SPECS = Path(__file__).parent.parent / "specs"
SPEC = """
nkigen: 1
name: tr
sizes: {{M: {{min: 1, max: 4096}}, N: {{min: 1, max: 4096}}}}
inputs: {{x: {{shape: [M, N], dtype: {dt}}}}}
outputs: {{y: {{shape: [N, M], dtype: {out}}}}}
compute:
  - y[n, m] = x[m, n]
"""


def _spec(dt: str, out: str | None = None):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "tr.yaml"
        p.write_text(SPEC.format(dt=dt, out=out or dt))
        return load_spec(p)


def _nonfinite(m: int, n: int, dt) -> np.ndarray:
    x = np.random.default_rng(m * 7919 + n).standard_normal((m, n)).astype(dt)
    x[0, 0] = np.inf
    x[m // 2, n // 3] = np.nan
    x[m - 1, n - 1] = -np.inf
    x[m // 3, n - 1] = -0.0
    return x


def _simulate(spec, target: str, dialect: str, x: np.ndarray) -> np.ndarray:
    import nkigen.sim as sim
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    return np.asarray(sim.simulate(kernel, target)(x))


def _bit_equal(got: np.ndarray, want: np.ndarray) -> bool:
    return got.dtype == want.dtype and got.shape == want.shape and \
        got.tobytes() == np.ascontiguousarray(want).tobytes()


# 32/33 and 128/129: the last VectorE piece (32) and the last block (128) full, then ragged
@pytest.mark.parametrize("sizes", [(1, 1), (32, 33), (128, 129), (300, 200)])
@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_transpose_moves_nan_and_inf_unchanged(sizes, dialect, target):
    """Failed on trn1 before (main): a NaN/Inf turned on TensorE spread NaN over its row."""
    m, n = sizes
    x = _nonfinite(m, n, np.float32)
    assert _bit_equal(_simulate(load_spec(SPECS / "transpose.yaml"), target, dialect, x), x.T)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_trn1_transpose_of_16_bit_floats_is_exact(dialect):
    x = _nonfinite(70, 40, np.float16)
    assert _bit_equal(_simulate(_spec("float16"), "trn1", dialect, x), x.T)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_trn1_float_transpose_turns_on_vectore_in_32x32_pieces(dialect):
    src = generate(load_spec(SPECS / "transpose.yaml"), target="trn1", dialect=dialect)
    calls = re.findall(r"nisa\.nc_transpose\(.*", src)
    assert calls and all("vector" in c for c in calls)
    assert "nl.psum" not in src                       # SBUF to SBUF, no PSUM eviction
    assert "PIECE = 32" in src                        # the VectorE limit, [32, 32]
    assert NOT_EXACT_V2 not in src


@pytest.mark.parametrize("dt,out", [("int32", "int32"), ("bfloat16", "float32"),
                                    ("float32", "bfloat16")])
def test_trn1_integer_and_casting_transposes_turn_on_vectore(dt, out):
    """An int32 TensorE transpose on NeuronCore-v2 would go through float32 PSUM (failed in
    the simulator before); a cast on the way is done by the loading DMA (VectorE transposes
    keep the dtype)."""
    spec = _spec(dt, out)
    for dialect in ("nki", "neuronxcc"):
        src = generate(spec, target="trn1", dialect=dialect)
        assert "nl.psum" not in src
        check_case(spec, {"M": 130, "N": 70}, target="trn1", src=src)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_trn2_transpose_keeps_its_engines(dialect):
    # NeuronCore-v3 transposes bit-accurately: no VectorE turns on trn2; both dtypes take the
    # DMA transpose (choose_transpose with trn2's documented small-row DMA efficiency)
    for dt, want in (("float32", "dma_transpose"), ("bfloat16", "dma_transpose")):
        src = generate(_spec(dt), target="trn2", dialect=dialect)
        assert want in src and "vector_engine" not in src and "engine.vector" not in src


def _matmul_nan(target: str):
    import nkigen.sim as sim
    from nkigen.reference import evaluate
    spec = load_spec(SPECS / "matmul_f32.yaml")
    sizes = {"M": 128, "K": 128, "N": 64}
    rng = np.random.default_rng(1)
    a = rng.standard_normal((128, 128)).astype(np.float32)
    b = rng.standard_normal((128, 64)).astype(np.float32)
    a[5, 7] = np.nan
    kernel = load_source(generate(spec, target=target, dialect="nki"), spec.name)
    got = np.asarray(sim.simulate(kernel, target)(a, b))
    want = evaluate(spec, {"a": a, "b": b}, sizes)["c"]
    return got, want


def test_trn1_matmul_operand_transpose_is_stated_inexact():
    """Contractions keep TensorE operand transposes on trn1; the kernel docstring and the
    manifest's schedule record (printed as a build note) say they are exact for finite data
    only, and the simulator shows why: one NaN in a spreads to other rows of c."""
    spec = load_spec(SPECS / "matmul_f32.yaml")
    for target, stated in (("trn1", True), ("trn2", False)):
        for dialect in ("nki", "neuronxcc"):
            assert (NOT_EXACT_V2 in generate(spec, target=target, dialect=dialect)) is stated
            plan = plan_kernel(spec, analyze(spec), target, None, dialect)
            rec = schedule_json(spec, plan, None)
            assert (rec.get("nonfinite_note") == NOT_EXACT_V2) is stated
    got, want = _matmul_nan("trn1")
    assert np.isnan(want).sum(axis=1).tolist().count(0) == 127      # only row 5 is NaN
    assert np.isnan(got).any(axis=1).sum() > 1                       # spread on trn1
    got2, want2 = _matmul_nan("trn2")
    assert np.array_equal(np.isnan(got2), np.isnan(want2))           # exact on trn2


def test_transpose_spec_has_no_note_on_trn1():
    spec = load_spec(SPECS / "transpose.yaml")
    plan = plan_kernel(spec, analyze(spec), "trn1", None, "nki")
    assert "nonfinite_note" not in schedule_json(spec, plan, None)


def test_build_summary_prints_the_note():
    from nkigen.library.progress import warnings
    from nkigen.library.unit import UnitResult
    case = {"name": "c", "sizes": {"M": 128}, "latency_us": 1.0}    # no bound: no warning
    entry = {"name": "mm", "target": "trn1", "cases": [case],
             "schedule": {"chosen_by": "default", "stages": [], "nonfinite_note": NOT_EXACT_V2}}
    lines = warnings([UnitResult("mm.yaml", "k", "built", "mm", entry)])
    assert lines == [f"note: mm (trn1): {NOT_EXACT_V2}"]
    del entry["schedule"]["nonfinite_note"]
    assert warnings([UnitResult("mm.yaml", "k", "built", "mm", entry)]) == []
