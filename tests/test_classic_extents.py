"""Classic simulator: a tile extent may not vary with an nl.affine_range / sequential_range index.

Classic NKI traces a loop body once with a symbolic index (S25 general/nki/api/nki/language/
__init__.py affine_range; the classic tutorials size every tile fully and clip the ragged last
one with ``mask=``: S25 general/nki/api/nki.api.shared.rst "NKI API Masking", SDK 2.25), so
``nl.arange(min(128, n - i * 128))`` or a slice ``x[i * 128:i * 128 + min(128, n - i * 128)]``
has no trace-time length. The simulator ran loops with ints and accepted both (one refused only
when the length reached 0, with the advice to clip with min()). Boundary: a bound that moves
with the index while the length stays fixed passes; one that changes the length fails; the
same kernel under nl.static_range (plain ints) passes.
"""

from __future__ import annotations

import numpy as np
import pytest

from nkigen import sim
from nkigen.sim.errors import SimError

with sim.installed():
    import neuronxcc.nki.isa as nisa  # noqa: E402
    import neuronxcc.nki.language as nl  # noqa: E402
    from neuronxcc import nki  # noqa: E402

RULE = "a tile extent (an nl.arange length, a slice's length, an nl.ndarray dimension) " \
    "depends on an nl.affine_range"


def _copy(kind: str, form: str):
    loop = getattr(nl, f"{kind}_range")

    @nki.jit
    def kern(x):
        rows, f = x.shape
        out = nl.ndarray((rows, f), dtype=x.dtype, buffer=nl.shared_hbm)
        for i in loop((f + 127) // 128):
            f0 = i * 128
            n = min(128, f - f0) if form != "fixed" else 128
            t = nl.ndarray((128, 128), dtype=x.dtype, buffer=nl.sbuf)
            if form == "arange":
                i_f = nl.arange(n)[None, :]
                nisa.dma_copy(dst=t[0:128, 0:n], src=x[nl.arange(128)[:, None], f0 + i_f])
                nisa.dma_copy(dst=out[nl.arange(128)[:, None], f0 + i_f], src=t[0:128, 0:n])
            else:       # slices: the start moves with i; the length is n
                nisa.dma_copy(dst=t[0:128, 0:n], src=x[0:128, f0:f0 + n])
                nisa.dma_copy(dst=out[0:128, f0:f0 + n], src=t[0:128, 0:n])
        return out
    return kern


@pytest.mark.parametrize("form", ["arange", "slice"])
def test_an_extent_computed_from_an_affine_index_is_refused(form):
    x = np.arange(128 * 300, dtype=np.float32).reshape(128, 300)
    with pytest.raises(SimError, match="depends on an nl.affine_range"):
        sim.simulate(_copy("affine", form), target="trn2")(x)


@pytest.mark.parametrize("form", ["arange", "slice"])
def test_the_same_kernel_passes_where_the_extent_is_fixed_or_the_loop_static(form):
    x = np.arange(128 * 300, dtype=np.float32).reshape(128, 300)
    out = sim.simulate(_copy("static", form), target="trn2")(x)
    np.testing.assert_array_equal(out, x)
    even = np.arange(128 * 256, dtype=np.float32).reshape(128, 256)
    np.testing.assert_array_equal(
        sim.simulate(_copy("affine", "fixed"), target="trn2")(even), even)
    # the ragged extent of an affine loop refused in the last (ragged) iteration only: a size
    # that does not reach min()'s other side is the same every iteration
    np.testing.assert_array_equal(
        sim.simulate(_copy("affine", form), target="trn2")(even), even)


def test_coefficients_follow_affine_arithmetic():
    from nkigen.sim.classic.index import OPAQUE, LoopIndex, loop_dependent, traced_once
    i = next(traced_once(iter([3])))
    assert isinstance(i, LoopIndex) and loop_dependent(i)
    assert not loop_dependent((i * 128 + 7) - i * 128)       # a fixed length
    assert loop_dependent(300 - i * 128)
    assert not loop_dependent(2 * i - i - i)
    assert (OPAQUE, 1) in ((i // 2) - 0).coef                # no longer affine: opaque
    assert (OPAQUE, 1) in (i * i).coef


def test_a_tile_shape_from_a_loop_index_is_refused():
    @nki.jit
    def kern(x):
        out = nl.ndarray((128, 256), dtype=x.dtype, buffer=nl.shared_hbm)
        for i in nl.affine_range(2):
            t = nl.ndarray((128, 128 - 64 * i), dtype=x.dtype,
                           buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=x[0:128, 0:128 - 64 * i])
            nisa.dma_copy(dst=out[0:128, 0:128 - 64 * i], src=t)
        return out
    x = np.ones((128, 256), np.float32)
    with pytest.raises(SimError, match="nl.ndarray dimension 1"):
        sim.simulate(kern, target="trn2")(x)



def _ds_copy(kind: str, size_from_index: bool):
    loop = getattr(nl, f"{kind}_range")

    @nki.jit
    def kern(x):
        rows, f = x.shape
        out = nl.ndarray((rows, f), dtype=x.dtype, buffer=nl.shared_hbm)
        i_p, i_f = nl.arange(128)[:, None], nl.arange(64)[None, :]
        for i in loop(rows // 128):
            n = 64 + 32 * i - 32 * i if not size_from_index else 64 - 32 * i
            t = nl.ndarray((128, 64), dtype=x.dtype, buffer=nl.sbuf)
            u = nl.ndarray((128, 64), dtype=x.dtype, buffer=nl.sbuf)
            # nl.ds starts that move with i at a fixed size, and a mask of the loop index
            nisa.dma_copy(dst=t[0:128, nl.ds(0, n)], src=x[nl.ds(i * 128, 128), nl.ds(0, n)])
            u[i_p, i_f] = nisa.tensor_copy(t[i_p, i_f], mask=(i * 128 + i_p < rows - 64))
            nisa.dma_copy(dst=out[nl.ds(i * 128, 128), nl.ds(0, n)], src=u[0:128, nl.ds(0, n)])
        return out
    return kern


@pytest.mark.parametrize("kind", ["affine", "sequential"])
def test_documented_loop_forms_are_not_refused(kind):
    """Review 9 R9-4: what the rule must not refuse. An nl.ds start that moves with the index
    at a fixed size, and a mask= of the loop index and nl.arange (S25 general/nki/api/
    nki.api.shared.rst "NKI API Masking": affine expressions of nl.arange() and
    nl.affine_range()) pass; the same nl.ds whose size moves with the index fails."""
    x = np.arange(256 * 64, dtype=np.float32).reshape(256, 64)
    got = sim.simulate(_ds_copy(kind, False), target="trn2")(x)
    np.testing.assert_array_equal(got[:192], x[:192])      # the masked-out rows: not written
    with pytest.raises(SimError, match="nl.ds size on dim 1"):
        sim.simulate(_ds_copy(kind, True), target="trn2")(x)
