"""Properties of classic index expressions and masks: an arange index of any affine form reads
what NumPy fancy indexing reads (on HBM: any form whose address never steps backwards; one that
does is refused, review 7 R7-1); a box mask computes exactly its box (and nothing else)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nkigen import sim

with sim.installed():
    import neuronxcc.nki.language as nl
    from neuronxcc import nki

COEF = st.sampled_from([-2, -1, 0, 1, 2, 3])


@settings(max_examples=60, deadline=None)
@given(p=st.integers(1, 16), n1=st.integers(1, 5), n2=st.integers(1, 6),
       c=st.tuples(COEF, COEF, COEF, COEF), o=st.tuples(st.integers(0, 20), st.integers(0, 20)),
       p0=st.integers(0, 4), via_tile=st.booleans())
def test_affine_index_matches_numpy(p, n1, n2, c, o, p0, via_tile):
    shape = (24, 24, 24)
    i1, i2 = np.arange(n1)[None, :, None], np.arange(n2)[None, None, :]
    d1 = o[0] + c[0] * i1 + c[1] * i2
    d2 = o[1] + c[2] * i1 + c[3] * i2
    assume(p0 + p <= shape[0] and d1.min() >= 0 and d2.min() >= 0)
    assume(d1.max() < shape[1] and d2.max() < shape[2])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = x[p0 + np.arange(p)[:, None, None], d1, d2]

    @nki.jit
    def kern(x):
        out = nl.ndarray((p, n1, n2), dtype=x.dtype, buffer=nl.shared_hbm)
        j0 = nl.arange(p)[:, None, None]
        j1 = nl.arange(n1)[None, :, None]
        j2 = nl.arange(n2)[None, None, :]
        idx = (p0 + j0, o[0] + c[0] * j1 + c[1] * j2, o[1] + c[2] * j1 + c[3] * j2)
        if via_tile:        # the same index applied to an SBUF copy of x[p0:p0+p]
            t = nl.load(x[p0:p0 + p, :, :])
            r = nl.copy(t[j0, idx[1], idx[2]])
        else:
            r = nl.load(x[idx])
        nl.store(out[j0, j1, j2], value=r)
        return out

    # an HBM read whose address steps backwards along an index axis is refused (no NKI document
    # gives a DMA access pattern a negative stride; review 7 R7-1): on chip it is the documented
    # signed int16 free stride and reads what NumPy reads
    backwards = any(k * 24 + m < 0 and n > 1
                    for k, m, n in ((c[0], c[2], n1), (c[1], c[3], n2)))
    if backwards and not via_tile:
        with pytest.raises(sim.SimError, match="may not have a negative step"):
            nki.simulate_kernel(kern, x)
        return
    np.testing.assert_array_equal(nki.simulate_kernel(kern, x), want)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much])   # illegal starts are assumed away
@given(rows=st.integers(1, 200), cols=st.integers(1, 300),
       r0=st.one_of(st.sampled_from([0, 32, 64, 96]), st.integers(0, 40)),
       c0=st.integers(0, 40), op=st.sampled_from(["exp", "copy", "negative"]))
def test_box_mask_computes_exactly_its_box(rows, cols, r0, c0, op):
    # a partition mask makes the instruction start at the box's first partition: only boxes that
    # obey the start-partition rule are legal (S25 arch guide; tests/test_conformance_lang.py)
    from nkigen.sim.rules import legal_start
    for t0 in range(0, rows, 128):
        lo, hi = max(r0 - t0, 0), min(rows - t0, 128)
        assume(hi <= lo or legal_start(lo, hi - lo))
    x = np.random.default_rng(1).standard_normal((rows, cols)).astype(np.float32)
    tiles = (rows + 127) // 128

    @nki.jit
    def kern(x):
        out = nl.ndarray((rows, cols), dtype=x.dtype, buffer=nl.shared_hbm)
        zero = nl.zeros((128, 64), dtype=x.dtype)
        i_f = nl.arange(64)[None, :]
        for t in nl.affine_range(tiles):
            i_p = t * 128 + nl.arange(128)[:, None]
            for c in nl.affine_range((cols + 63) // 64):
                nl.store(out[i_p, c * 64 + i_f], value=zero,
                         mask=(i_p < rows) & (c * 64 + i_f < cols))
        i_c = nl.arange(320)[None, :]
        for t in nl.affine_range(tiles):
            i_p = t * 128 + nl.arange(128)[:, None]
            m = (i_p >= r0) & (i_p < rows) & (i_c >= c0) & (i_c < cols)
            v = nl.load(x[i_p, i_c], mask=m)
            y = getattr(nl, op)(v, mask=m)
            nl.store(out[i_p, i_c], value=y, mask=m)
        return out

    ref = {"exp": np.exp, "copy": lambda a: a, "negative": np.negative}[op]
    want = np.zeros_like(x)
    want[r0:, c0:] = ref(x[r0:, c0:])
    res = sim.run(kern, [x], report=False)
    np.testing.assert_array_equal(res.outputs[0], want)
    loads = [i for i in res.instrs if i.op == "dma_copy" and i.reads[0].mem.value == "hbm"]
    lanes = sum(i.partitions * i.free for i in loads)
    assert lanes == max(rows - r0, 0) * max(cols - c0, 0)
