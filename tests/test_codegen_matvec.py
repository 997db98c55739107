"""Matrix-vector products lower to TensorE (issue 14: a contraction with a free operand of
width 1 still goes to TensorE), nkigen.codegen.matvec."""

from __future__ import annotations

from pathlib import Path

import pytest

from nkigen.codegen import generate, plan_kernel
from nkigen.frontend import load_spec
from tests.codegen_check import check_case

SPECS = Path(__file__).resolve().parent.parent / "specs"

MV = """nkigen: 1
name: mv
sizes: {{M: {{}}, K: {{{kdecl}}}}}
inputs: {{w: {{shape: {wshape}, dtype: {wdt}}}, x: {{shape: [K], dtype: {xdt}}}}}
outputs: {{y: {{shape: [M], dtype: float32}}}}
compute:
  - y[m] += {wacc} * x[k]
"""


def _spec(tmp_path, wshape="[M, K]", wacc="w[m, k]", wdt="bfloat16", xdt="bfloat16",
          kdecl="max: 4096"):
    p = tmp_path / "mv.yaml"
    p.write_text(MV.format(wshape=wshape, wacc=wacc, wdt=wdt, xdt=xdt, kdecl=kdecl))
    return load_spec(p)


def _strategies(spec, target="trn2"):
    return [s.strategy for s in plan_kernel(spec, None, target).stages]


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_shipped_matvec_runs_on_tensore(dialect):
    spec = load_spec(SPECS / "matvec.yaml")
    src = generate(spec, target="trn2", dialect=dialect)
    assert "nc_matmul(" in src and "tensor_reduce" not in src and "tensor_tensor_scan" not in src
    assert _strategies(spec) == ["matvec"]
    # trn2: w[m, k] is turned by the DMA transpose (nkigen.codegen.matmul.choose_transpose with
    # trn2's documented small-row DMA efficiency, hw.Target.dma_small_row_eff)
    assert "dma_transpose(" in src and "nc_transpose(" not in src
    # trn1 has no DMA transpose unit: turned on TensorE, the PSUM evictions alternate
    # VectorE / ScalarE
    src1 = generate(spec, target="trn1", dialect=dialect)
    assert "nc_matmul(" in src1 and "dma_transpose(" not in src1
    assert "nc_transpose(" in src1 and "tensor_copy(" in src1 and "activation(" in src1


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("sizes", [{"M": 512, "K": 512}, {"M": 300, "K": 200},
                                   {"M": 130, "K": 1100}, {"M": 1, "K": 1},
                                   {"M": 513, "K": 2049}])   # a second k block, ragged
def test_shipped_matvec_matches_reference(sizes, dialect):
    spec = load_spec(SPECS / "matvec.yaml")
    check_case(spec, sizes, src=generate(spec, target="trn2", dialect=dialect))


@pytest.mark.parametrize("kw", [
    {"wshape": "[K, M]", "wacc": "w[k, m]"},                        # k-major: no transpose
    {"wdt": "float32", "xdt": "float32"},
    {"kdecl": ""},                                                   # unbounded K: per-block x
])
def test_matvec_variants_match_reference(tmp_path, kw):
    spec = _spec(tmp_path, **kw)
    assert _strategies(spec) == ["matvec"]
    for sizes in ({"M": 200, "K": 300}, {"M": 600, "K": 2100}):
        check_case(spec, sizes, src=generate(spec, target="trn2"))


def test_float32_matrix_with_bf16_vector_is_not_a_tensore_pair(tmp_path):
    # TensorE pairs float32 only with float32 (S29 nki/api/nki/isa/__init__.py nc_matmul)
    spec = _spec(tmp_path, wdt="float32", xdt="bfloat16")
    assert "matvec" not in _strategies(spec)
    check_case(spec, {"M": 200, "K": 300}, src=generate(spec, target="trn2"))
