"""Review 7 R7-1: what the docs give a reversed read, pinned in both dialects.

* A negative step in an HBM (DMA) access pattern is undocumented (SH nki/deep-dives/nki-aps.rst,
  SH NkiTensor.slice ``step >= 1``, nki 0.3; S25 general/nki/programming_model.rst "Advanced
  Tensor Indexing", SDK 2.25): the simulator refuses it, nki ``.ap`` and classic ``nl.arange``
  index alike. The boundary: step -1 on an axis of two elements fails, step +1 passes (and a
  negative step on an axis of one element moves nothing and passes).
* A negative FREE step on an SBUF tile is documented (each free axis has an int16 stride: S25
  general/nki/arch/trainium_inferentia2_arch.rst, SH nki/guides/architecture/
  trainium_inferentia2_arch.rst): accepted in both dialects.
* Generated kernels read reversed rows with iota + a vector-indirect DMA and reversed columns
  loaded ascending and reversed on chip: no negative HBM step, verified against the reference.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen import sim  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402
from nkigen.sim import SimError  # noqa: E402

NKI_HBM = '''
import nki
import nki.isa as nisa
import nki.language as nl

@nki.jit
def k(x):
    out = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t[0:4, 0:COUNT], src=x.ap([[2, 4], [STEP, COUNT]], offset=OFFSET))
    nisa.dma_copy(dst=out[0:4, 0:COUNT], src=t[0:4, 0:COUNT])
    return out
'''

NKI_SBUF = '''
import nki
import nki.isa as nisa
import nki.language as nl

@nki.jit
def k(x):
    out = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.sbuf)
    r = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t[0:4, 0:2], src=x[0:4, 0:2])
    nisa.tensor_copy(dst=r[0:4, 0:2], src=t.ap([[2, 4], [-1, 2]], offset=1))
    nisa.dma_copy(dst=out[0:4, 0:2], src=r[0:4, 0:2])
    return out
'''

CLASSIC_HBM = '''
from neuronxcc import nki
import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl

@nki.jit
def k(x):
    out = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(4)[:, None]
    i_f = nl.arange(COUNT)[None, :]
    t = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t[0:4, 0:COUNT], src=x[i_p, START + STEP * i_f])
    nisa.dma_copy(dst=out[0:4, 0:COUNT], src=t[0:4, 0:COUNT])
    return out
'''

CLASSIC_SBUF = '''
from neuronxcc import nki
import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl

@nki.jit
def k(x):
    out = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(4)[:, None]
    i_f = nl.arange(2)[None, :]
    t = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t[0:4, 0:2], src=x[0:4, 0:2])
    r = nl.ndarray((4, 2), dtype=x.dtype, buffer=nl.sbuf)
    r[0:4, 0:2] = nisa.tensor_copy(t[i_p, 1 - i_f], dtype=x.dtype)
    nisa.dma_copy(dst=out[0:4, 0:2], src=r[0:4, 0:2])
    return out
'''

X = np.arange(8, dtype=np.float32).reshape(4, 2)


def _run(src: str, **subs):
    for k, v in subs.items():
        src = src.replace(k, str(v))
    return sim.run(load_source(src, "k"), [X], report=False).outputs[0]


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_a_negative_hbm_step_is_refused_at_its_boundary(dialect):
    src = NKI_HBM if dialect == "nki" else CLASSIC_HBM
    kw = (lambda step, count, first: dict(STEP=step, COUNT=count, OFFSET=first)) \
        if dialect == "nki" else \
        (lambda step, count, first: dict(STEP=step, COUNT=count, START=first))
    with pytest.raises(SimError, match=r"HBM access pattern may not have a negative step.*"
                                       r"nki-aps\.rst.*programming_model\.rst"):
        _run(src, **kw(-1, 2, 1))                        # columns 1, 0: refused
    got = _run(src, **kw(1, 2, 0))                       # columns 0, 1: the last legal step
    np.testing.assert_array_equal(got, X)
    got = _run(src, **kw(-1, 1, 1))                      # one element: nothing moves backwards
    np.testing.assert_array_equal(got[:, 0], X[:, 1])


@pytest.mark.parametrize("src", [NKI_SBUF, CLASSIC_SBUF], ids=["nki", "neuronxcc"])
def test_a_negative_free_step_on_sbuf_is_documented_and_accepted(src):
    np.testing.assert_array_equal(_run(src), X[:, ::-1])


SPEC = """nkigen: 1
name: rev
doc: d
sizes:
  M: {min: 1, max: 300}
  N: {min: 1, max: 40}
inputs:
  x: {shape: [M, N], dtype: DTYPE}
outputs:
  y: {shape: [M, N], dtype: DTYPE}
compute:
  - STATEMENT
tests:
  cases:
    - {M: 130, N: 37}
"""

# an HBM access pattern or arange index with a negative step: ``[-N, psz]``, ``[-1, fsz]``,
# ``(-1) * i_f``, ``-N * nl.arange``
_NEG = re.compile(r"\[\s*-[\w ()*]+,|\(-\d+\) \* i_|-\w+ \* nl\.arange|\+ -\d* ?\*? ?i_")


@pytest.mark.parametrize("statement", ["y[m, n] = 2.0 * x[M - 1 - m, n]",
                                       "y[m, n] = x[M - 1 - m, N - 1 - n] + x[m, n]",
                                       "y[m, n] = cumsum(x[m, N - 1 - n], n)"])
@pytest.mark.parametrize("dialect,target,dtype", [("nki", "trn2", "float32"),
                                                  ("neuronxcc", "trn1", "bfloat16"),
                                                  ("nki", "trn1", "bfloat16"),
                                                  ("neuronxcc", "trn2", "float32")])
def test_reversed_reads_use_documented_forms_and_verify(statement, dialect, target, dtype):
    spec = load_spec_text(SPEC.replace("STATEMENT", statement).replace("DTYPE", dtype))
    src = generate(spec, target=target, dialect=dialect)
    loads = [ln for ln in src.splitlines() if "dma_copy" in ln]
    assert not [ln for ln in loads if _NEG.search(ln.split("src=", 1)[-1])], loads
    if "M - 1 - m" in statement:                         # reversed rows: iota + gather
        assert "iota(" in src and ("vector_offset=" in src if dialect == "nki" else
                                   "_rows[" in src)
    if "N - 1 - n" in statement:                         # reversed columns: on-chip copy
        assert re.search(r"tensor_copy\(.*\[-1, \w+\]\]" if dialect == "nki" else
                         r"tensor_copy\(.* - 1 \+ \(-1\) \* ", src)
    check_case(spec, {"M": 130, "N": 37}, target=target, src=src)
