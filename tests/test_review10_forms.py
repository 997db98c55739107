"""Review 10 (docs/review-kernels-10.md) R10-6: ``float()`` of a classic loop index.

The classic divided-row gather (codegen/revrows.py ``divided_rows``, ``x[b, m % 4, n]``) added
the rows of the batches before as ``tensor_scalar(..., op0=nl.add, operand0=float(G * i_b))``
with ``i_b`` an ``nl.affine_range`` index. A scalar operand is a compile-time constant (S25
general/nki/api/nki/isa/__init__.py tensor_scalar, SDK 2.25) and only ``nl.static_range`` is
unrolled while the kernel is traced (S25 general/nki/api/nki/language/__init__.py
static_range): the index has no Python value. The simulator, whose loop index is an int, ran it.
Now ``float()`` of an affine / sequential loop index is an error (like ``if i:``), and the
generator writes the lead on chip (iota of the affine expression + tensor_tensor add).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402


def _scaled_by_index(kind: str):
    """out[:, 64 i:64 i + 64] = x[:, 64 i:64 i + 64] + float(i), for i < 4."""
    from nkigen import sim
    with sim.installed():
        import neuronxcc.nki.isa as nisa
        import neuronxcc.nki.language as nl
        from neuronxcc import nki
    loop = getattr(nl, f"{kind}_range")

    @nki.jit
    def kern(x):
        out = nl.ndarray((128, 256), dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.arange(128)[:, None], nl.arange(64)[None, :]
        for i in loop(4):
            t = nl.ndarray((128, 64), dtype=x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t[0:128, 0:64], src=x[i_p, i * 64 + i_f])
            u = nisa.tensor_scalar(t[0:128, 0:64], op0=nl.add, operand0=float(i),
                                   engine=nisa.vector_engine)
            nisa.dma_copy(dst=out[i_p, i * 64 + i_f], src=u)
        return out
    return kern


def _x():
    return np.arange(128 * 256, dtype=np.float32).reshape(128, 256)


@pytest.mark.parametrize("kind", ["affine", "sequential"])
def test_float_of_a_traced_loop_index_is_an_error(kind):
    from nkigen import sim
    with pytest.raises(sim.SimError, match=r"float\(\) of a loop index") as e:
        sim.run(_scaled_by_index(kind), [_x()], report=False)
    assert "nisa.iota" in str(e.value)     # the fix is named


def test_float_of_a_static_range_index_is_a_constant():
    # the boundary: nl.static_range unrolls during tracing, its index is a Python int
    from nkigen import sim
    x = _x()
    res = sim.run(_scaled_by_index("static"), [x], report=False)
    want = x + np.repeat(np.arange(4, dtype=np.float32), 64)[None, :]
    np.testing.assert_array_equal(res.outputs[0], want)


SPEC = """nkigen: 1
name: phases
sizes:
  B: {min: 1, max: 4}
  M: {min: 1, max: 1024}
  N: {min: 1, max: 1024}
  G: {value: 4}
inputs:
  x: {shape: [B, G, N], dtype: float32}
  z: {shape: [B, M, N], dtype: float32}
outputs:
  y: {shape: [B, M, N], dtype: float32}
compute:
  - y[b, m, n] = x[b, m % 4, n] * z[b, m, n]
tests:
  cases:
    - {B: 2, M: 130, N: 300}
"""


@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_classic_divided_rows_add_the_batch_rows_on_chip(target):
    spec = load_spec_text(SPEC)
    src = generate(spec, target=target, dialect="neuronxcc")
    assert "float(" not in src, src
    assert "nisa.iota(G * i_b + 0 * nl.arange(TILE_P)[:, None]" in src, src
    # the second batch reads its own rows (B = 2), a ragged tile, and one row
    for sizes in ({"B": 2, "M": 130, "N": 300}, {"B": 3, "M": 1, "N": 7}):
        check_case(spec, sizes, target=target, src=src)
