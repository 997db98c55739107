"""Review5 F5: ``c[m, n] += a[m, k, j] * b[k, j, n]`` with (k, j) adjacent whole dimensions of
both row-major operands is one contraction of K * J rows (128-row tiles crossing k, one PSUM
accumulation group per output tile), in both dialects; a layout where (k, j) are not adjacent
in the same order keeps one contraction per k. Checked on the modelled instruction counts and
the results against numpy (K * J not a multiple of 128: tiles end inside a k row)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from nkigen.frontend import load_spec
from nkigen.pipeline import generate
from nkigen.sim import load, placeholder, runner

SPECS = Path(__file__).parent.parent / "specs"

SWAPPED = """\
nkigen: 1
name: mm2k_swapped
sizes:
  M: {multiple_of: 128}
  K: {min: 1, max: 64}
  J: {min: 1, max: 128}
  N: {min: 1, max: 4096}
inputs:
  a: {shape: [M, K, J], dtype: float32}
  b: {shape: [J, K, N], dtype: float32}
outputs:
  c: {shape: [M, N], dtype: float32}
compute:
  - c[m, n] += a[m, k, j] * b[j, k, n]
tests:
  cases:
    - {M: 128, K: 2, J: 3, N: 5}
"""


def _load(spec, dialect, target="trn2"):
    src = generate(spec, target=target, dialect=dialect)
    d = Path(tempfile.mkdtemp())
    (d / "k.py").write_text(src)
    return load(str(d / "k.py"), spec.name), src


def _ops(kernel, shapes, target="trn2"):
    args = [placeholder(s, np.float32) for s in shapes]
    return runner.run(kernel, args, target=target, numerics=False).report.op_counts


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_one_psum_group_per_output_tile(dialect):
    k, src = _load(load_spec(SPECS / "matmul_2k.yaml"), dialect)
    assert "range(K)" not in src
    ops = _ops(k, [(256, 16, 64), (16, 64, 1024)])
    # 2 row tiles x 2 column tiles (512 wide) x 8 contraction tiles of 128 = K*J/128 rows;
    # before: one contraction of J = 64 rows per k, 16 per tile pair (64 matmuls, 64 adds)
    assert ops["nc_matmul"] == 2 * 2 * 8
    assert ops["tensor_tensor"] == 2 * 2 * 2     # one add per 4-tile contraction block


def test_swapped_layout_keeps_one_contraction_per_k(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(SWAPPED)
    k, src = _load(load_spec(p), "nki")
    assert ".ap(" not in src
    ops = _ops(k, [(128, 2, 3), (3, 2, 5)])
    assert ops["nc_matmul"] == 2                 # one per k


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("target", ["trn2", "trn1"])
@pytest.mark.parametrize("m,kk,j,n", [(128, 3, 50, 70), (256, 1, 1, 1), (128, 64, 2, 513)])
def test_results_match_numpy(dialect, target, m, kk, j, n):
    k, _ = _load(load_spec(SPECS / "matmul_2k.yaml"), dialect, target)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, kk, j)).astype(np.float32)
    b = rng.standard_normal((kk, j, n)).astype(np.float32)
    out = runner.run(k, [a, b], target=target).outputs[0]
    want = np.einsum("mkj,kjn->mn", a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(np.asarray(out, np.float64), want, rtol=1e-4, atol=1e-3)
