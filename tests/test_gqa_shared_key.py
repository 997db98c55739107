"""Review5 F7: in ``s[h, m, n] += scale * q[h, m, d] * k[h // G, n, d]`` the key block is turned
once per group of G query heads (the kv-head loop outside, the G heads inside, after the key
block's load), in both dialects. Checked on the modelled DMA transposes and the results against
numpy; a moving operand read at ``h`` itself keeps the per-head loop."""

from __future__ import annotations

import tempfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from nkigen.frontend import load_spec
from nkigen.pipeline import generate
from nkigen.sim import load, placeholder, runner

SPECS = Path(__file__).parent.parent / "specs"


def _kernel(dialect, target="trn2"):
    src = generate(load_spec(SPECS / "gqa_scores.yaml"), target=target, dialect=dialect)
    d = Path(tempfile.mkdtemp())
    (d / "k.py").write_text(src)
    return load(str(d / "k.py"), "gqa_scores"), src


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_key_block_turned_once_per_group(dialect):
    k, src = _kernel(dialect)
    assert "range(H // 4)" in src and "k[i_h // 4" not in src
    kv, m, n = 2, 128, 256
    args = [placeholder((4 * kv, m, 128), ml_dtypes.bfloat16),
            placeholder((kv, n, 128), ml_dtypes.bfloat16)]
    ops = runner.run(k, args, target="trn2", numerics=False).report.op_counts
    # one q transpose per head (8) + one k transpose per kv head (2); before: 8 + 8
    assert ops["dma_transpose"] == 4 * kv + kv


def test_bmm_keeps_per_batch_loads():
    src = generate(load_spec(SPECS / "bmm.yaml"), dialect="nki")
    assert "_grp" not in src


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("target", ["trn2", "trn1"])
@pytest.mark.parametrize("kv,m,n", [(1, 128, 1), (3, 256, 513)])
def test_results_match_numpy(dialect, target, kv, m, n):
    k, _ = _kernel(dialect, target)
    rng = np.random.default_rng(2)
    q = rng.standard_normal((4 * kv, m, 128)).astype(ml_dtypes.bfloat16)
    kk = rng.standard_normal((kv, n, 128)).astype(ml_dtypes.bfloat16)
    out = runner.run(k, [q, kk], target=target).outputs[0]
    q64, k64 = q.astype(np.float64), kk.astype(np.float64)
    want = 0.08838834764831845 * np.einsum("hmd,hnd->hmn", q64, np.repeat(k64, 4, axis=0))
    np.testing.assert_allclose(np.asarray(out, np.float64), want, rtol=1e-4, atol=1e-3)
