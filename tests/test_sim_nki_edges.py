"""Boundaries of the current-API simulator layers added in the last stops, pinned where the
mutation benchmark (benchmarks/mutate.py, helper kill10) found them unpinned: interleaved SPMD
exchanges (nkigen/sim/spmd.py), virtual registers (nkigen/sim/nki/registers.py), NkiTensor view
primitives (nkigen/sim/nki/views.py) and vector-indirect DMA (nkigen/sim/nki/indirect.py).
Each rule's doc source is cited in the module that enforces it."""

from __future__ import annotations

import numpy as np
import pytest

from nkigen import sim
from nkigen.sim.errors import SimError

with sim.installed():
    import nki  # noqa: E402
    import nki.isa as nisa  # noqa: E402
    import nki.language as nl  # noqa: E402


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(3).standard_normal(shape).astype(np.float32)


# ---- interleaved SPMD programs (SH core_barrier / sendrecv, nki 0.3) --------------------------
def _pair(pipe1: int = 0, free1: int = 16, barrier1: bool = False):
    """Two programs swap a (1, 16) row by sendrecv; program 1 may use another pipe id, another
    width, or wait at a core_barrier instead."""
    @nki.jit
    def k(x):
        out = nl.ndarray((2, 16), dtype=x.dtype, buffer=nl.shared_hbm)
        p = nl.program_id(0)
        free = 16 if p == 0 else free1
        a = nl.ndarray((1, free), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=a, src=x[p:p + 1, 0:free])
        b = nl.ndarray((1, free), dtype=x.dtype, buffer=nl.sbuf)
        if p == 1 and barrier1:
            nisa.core_barrier(out, (0, 1))
        else:
            nisa.sendrecv(src=a, dst=b, send_to_rank=1 - p, recv_from_rank=1 - p,
                          pipe_id=0 if p == 0 else pipe1)
        nisa.dma_copy(dst=out[p:p + 1, 0:free], src=b)
        return out
    return k[2]


def test_sendrecv_pairs_only_on_the_same_pipe_and_shape():
    x = _x(2, 16)
    np.testing.assert_array_equal(sim.simulate(_pair(), target="trn2")(x), x[::-1])
    with pytest.raises(SimError, match="ranks do not pair up"):
        sim.simulate(_pair(pipe1=1), target="trn2")(x)
    with pytest.raises(SimError, match="received tile does not fit dst"):
        sim.simulate(_pair(free1=8), target="trn2")(x)


def test_programs_waiting_at_different_synchronisation_points_are_an_error():
    with pytest.raises(SimError, match="different synchronisation points"):
        sim.simulate(_pair(barrier1=True), target="trn2")(_x(2, 16))


def test_an_interleaved_run_reports_the_largest_program_sbuf_peak():
    @nki.jit
    def k(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        p = nl.program_id(0)
        nisa.core_barrier(out, (0, 1))
        if p == 1:          # 4000 bytes per partition in program 1 only
            big = nl.ndarray((128, 1000), dtype=nl.float32, buffer=nl.sbuf)
            nisa.memset(dst=big, value=0.0)
        t = nl.ndarray((1, 16), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[p:p + 1, :])
        nisa.dma_copy(dst=out[p:p + 1, :], src=t)
        return out
    r = sim.run(k[2], [_x(2, 16)], target="trn2", report=False)
    assert r.peak_sbuf_bytes >= 4000


# ---- virtual registers (SH nki/api/nki/isa VirtualRegister / register_*, nki 0.3) -------------
def _stored(value=None, step: int = 1, loop_to=None):
    """register_alloc(value) stored to a (1, 1) int32 output; with ``loop_to`` the count of
    nl.dynamic_range(0, loop_to, step) iterations instead."""
    counting = loop_to is not None

    @nki.jit
    def k(x):
        out = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
        t = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        if not counting:
            r = nisa.register_alloc(value)
        else:
            n = 0
            for _ in nl.dynamic_range(0, loop_to, step):
                n += 1
            r = nisa.register_alloc(n)
        nisa.register_store(t, r)
        nisa.dma_copy(dst=out, src=t)
        return out
    return k


@pytest.mark.parametrize("value,ok", [(-(1 << 31), True), (-(1 << 31) - 1, False),
                                      ((1 << 32) - 1, True), (1 << 32, False)])
def test_a_register_holds_32_bits(value, ok):
    if ok:
        _stored(value)(_x(1, 1))       # (the int32 store wraps: only the check is pinned)
    else:
        with pytest.raises(SimError, match="a register holds 32 bits"):
            _stored(value)(_x(1, 1))


def test_dynamic_range_step_is_positive():
    assert int(_stored(loop_to=5, step=1)(_x(1, 1))[0, 0]) == 5
    assert int(_stored(loop_to=5, step=2)(_x(1, 1))[0, 0]) == 3
    with pytest.raises(SimError, match="step must be a compile-time positive integer"):
        _stored(loop_to=5, step=0)(_x(1, 1))


def test_while_on_a_register_runs_while_it_is_nonzero():
    """``while reg:`` tests for nonzero (SH VirtualRegister): a negative count runs too."""
    @nki.jit
    def k(x):
        out = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
        t = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        r = nisa.register_alloc(-3)
        n = 0
        while r:
            n += 1
            nisa.register_move(r, -3 + n)
        nisa.register_store(t, nisa.register_alloc(n))
        nisa.dma_copy(dst=out, src=t)
        return out
    assert int(k(_x(1, 1))[0, 0]) == 3


# ---- NkiTensor view primitives (SH nki/api/nki/language NkiTensor, NKI 0.5) -----------------
def _through(view_fn, out_shape, rows: int = 8, cols: int = 24):
    @nki.jit
    def k(x):
        out = nl.ndarray(out_shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((rows, cols), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        u = nl.ndarray(out_shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=u, src=view_fn(t))
        nisa.dma_copy(dst=out, src=u)
        return out
    return k


def test_view_primitive_boundaries():
    x = _x(8, 24)
    np.testing.assert_array_equal(_through(lambda t: t.slice(1, 0, 8, 1), (8, 8))(x), x[:, :8])
    np.testing.assert_array_equal(_through(lambda t: t.reshape_dim(1, (4, -1)), (8, 4, 6))(x),
                                  x.reshape(8, 4, 6))
    for fn, shape, msg in [
        (lambda t: t.slice(1, 0, 8, 0), (8, 8), "step must be >= 1"),
        (lambda t: t.reshape_dim(1, (5, -1)), (8, 5, 4), "sizes do not divide the dimension"),
        (lambda t: t.slice(1, 3, 4).squeeze_dim(1), (8, 1), "lose its last free dimension"),
    ]:
        with pytest.raises(SimError, match=msg):
            _through(fn, shape)(x)
    one = _x(1, 24)
    np.testing.assert_array_equal(
        _through(lambda t: t.slice(1, 0, 1).broadcast(1, 5), (1, 5), 1, 24)(one),
        np.repeat(one[:, :1], 5, axis=1))
    with pytest.raises(SimError, match="must not be 0 \\(the partition dim\\)"):
        _through(lambda t: t.broadcast(0, 8), (8, 24), 1, 24)(one)


# ---- vector-indirect DMA (SH nki/api/nki/isa dma_copy "Indirect addressing", dma_transpose
# ---- "DMA Indirect Transpose Constraints"; nki/deep-dives/nki-aps.rst; nki 0.3) -----------
def _get_rows(step_rows: int = 1, offset: int = 0):
    @nki.jit
    def k(table, ids):
        """out[p] = the row of ``table`` at ``offset + ids[p] * step`` (step = step_rows rows)."""
        n, f = table.shape
        p = ids.shape[0]
        out = nl.ndarray((p, f), dtype=table.dtype, buffer=nl.shared_hbm)
        i = nl.ndarray((p, 1), dtype=nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(dst=i, src=ids)
        t = nl.ndarray((p, f), dtype=table.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=table.ap(pattern=[[f * step_rows, p], [1, f]], offset=offset,
                                          vector_offset=i, indirect_dim=0))
        nisa.dma_copy(dst=out, src=t)
        return out
    return k


def test_vector_offset_gather_step_and_offset():
    table = _x(50, 8)
    ids = np.array([[3], [1], [49], [7]], np.uint32)
    np.testing.assert_array_equal(_get_rows()(table, ids), table[ids[:, 0]])
    with pytest.raises(SimError, match="partition step of a vector_offset access pattern"):
        _get_rows(step_rows=2)(table, ids)
    # a negative offset reads the element before each row; before the table it is out of range
    flat = table.reshape(-1)
    want = np.stack([flat[r * 8 - 1:r * 8 + 7] for r in ids[:, 0]])
    np.testing.assert_array_equal(_get_rows(offset=-1)(table, ids), want)
    with pytest.raises(SimError, match="indirect index out of bounds"):
        _get_rows(offset=-1)(table, np.array([[3], [0], [4], [5]], np.uint32))


def _transpose_rows(g: int, mode_name: str = "unknown", nids: int = 128):
    @nki.jit
    def k(src, ids):
        """dst = src[ids[:g, 0]].T by an indirect dma_transpose, ids a (nids, 1) uint32 tile."""
        n, w = src.shape
        out = nl.ndarray((w, g), dtype=src.dtype, buffer=nl.shared_hbm)
        i = nl.ndarray((nids, 1), dtype=nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(dst=i, src=ids[0:nids, :])
        d = nl.ndarray((w, g), dtype=src.dtype, buffer=nl.sbuf)
        nisa.dma_transpose(dst=d, src=src.ap(pattern=[[w, g], [1, w]], vector_offset=i,
                                             indirect_dim=0),
                           dge_mode=getattr(nisa.dge_mode, mode_name))
        nisa.dma_copy(dst=out, src=d)
        return out
    return k


def test_indirect_transpose_row_count_and_dge_mode():
    import ml_dtypes
    src = _x(300, 16).astype(ml_dtypes.bfloat16)
    ids = np.random.default_rng(5).permutation(300)[:128].astype(np.uint32).reshape(128, 1)
    got = sim.simulate(_transpose_rows(32), target="trn2")(src, ids)
    np.testing.assert_array_equal(got, src[ids[:32, 0]].T)
    got = sim.simulate(_transpose_rows(32, "swdge"), target="trn2")(src, ids)
    np.testing.assert_array_equal(got, src[ids[:32, 0]].T)
    with pytest.raises(SimError, match="src.shape\\[0\\] must be a multiple of 16"):
        sim.simulate(_transpose_rows(24), target="trn2")(src, ids)
    with pytest.raises(SimError, match="dge_mode of an indirect transpose is unknown or swdge"):
        sim.simulate(_transpose_rows(32, "hwdge"), target="trn2")(src, ids)
    got = sim.simulate(_transpose_rows(32, nids=32), target="trn2")(src, ids)
    np.testing.assert_array_equal(got, src[ids[:32, 0]].T)
    # one row more than the index tile holds: refused where the pattern is made
    with pytest.raises(SimError, match="partition count exceeds the vector_offset tile"):
        sim.simulate(_transpose_rows(17, nids=16), target="trn2")(src, ids)


def test_vector_offset_gather_counts_must_match():
    @nki.jit
    def k(table, ids):
        n, f = table.shape
        out = nl.ndarray((4, f), dtype=table.dtype, buffer=nl.shared_hbm)
        i = nl.ndarray((4, 1), dtype=nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(dst=i, src=ids)
        t = nl.ndarray((4, f), dtype=table.dtype, buffer=nl.sbuf)
        nisa.memset(dst=t, value=0.0)
        nisa.dma_copy(dst=t[:, 0:f - 1], src=table.ap(pattern=[[f, 4], [1, f]], offset=0,
                                                      vector_offset=i, indirect_dim=0))
        nisa.dma_copy(dst=out, src=t)
        return out
    with pytest.raises(SimError, match="dst and src element counts differ"):
        k(_x(50, 8), np.array([[3], [1], [49], [7]], np.uint32))


def test_select_on_a_sliced_view_starts_at_the_view():
    x = _x(8, 24)
    got = _through(lambda t: t.slice(1, 6, 24).reshape_dim(1, (3, 6)).select(1, 1), (8, 6))(x)
    np.testing.assert_array_equal(got, x[:, 12:18])


# ---- program ids (SH nki/api/nki/language program_id, nki 0.3) ------------------------------
def test_program_id_axis_must_name_a_grid_dimension():
    def k(axis: int):
        @nki.jit
        def kern(x):
            out = nl.ndarray((6, 1), dtype=nl.int32, buffer=nl.shared_hbm)
            t = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
            nisa.memset(dst=t, value=nl.program_id(axis))
            r = nl.program_id(0) * 3 + nl.program_id(1)
            nisa.dma_copy(dst=out[r:r + 1, :], src=t)
            return out
        return kern
    x = _x(1, 1)
    got = sim.simulate(k(1)[2, 3], target="trn2")(x)
    assert got[:, 0].tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(SimError, match="program_id: axis out of range"):
        sim.simulate(k(2)[2, 3], target="trn2")(x)
    with pytest.raises(SimError, match="program_id: axis out of range"):
        sim.simulate(k(1)[2], target="trn2")(x)
