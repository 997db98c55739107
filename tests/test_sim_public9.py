"""Simulator fixes found by running public current-API kernels (benchmarks/public_kernels_run.py).

Each test is a small kernel of its own reproducing one class of failure:

* ``tensor.ap(scalar_offset=..., indirect_dim=...)`` (scalar indirect DMA; SH
  nki/api/nki/isa/__init__.py dma_copy "Indirect addressing", SH nki/api/nki/language
  NkiTensor.ap, nki 0.3): was an UnsupportedError (117 uses in nki-library HEAD);
* ``oob_mode=nisa.oob_mode.skip`` skips a transfer whose dynamic address is out of bounds;
* rule locations inside a decorated kernel were one line early per decorator line (the
  ``is`` rule pointed at the line above; the classic shared_hbm-in-a-loop rule missed the last
  line of a loop body).
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

from nkigen import sim
from nkigen.sim.errors import SimError, UnsupportedError

HERE = os.path.abspath(__file__)

with sim.installed():
    import neuronxcc.nki.language as cl  # noqa: E402
    import nki  # noqa: E402
    import nki.isa as nisa  # noqa: E402
    import nki.language as nl  # noqa: E402
    from neuronxcc import nki as cnki  # noqa: E402


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(shape).astype(np.float32)


@nki.jit
def _window(x, pos):
    """out = x[:, pos:pos + 8], pos a runtime (1, 1) int32 tensor."""
    out = nl.ndarray((4, 8), dtype=nl.float32, buffer=nl.shared_hbm)
    p = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
    nisa.dma_copy(dst=p, src=pos)
    t = nl.ndarray((4, 8), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x.ap(pattern=[[64, 4], [1, 8]], offset=0, scalar_offset=p,
                                  indirect_dim=1))
    nisa.dma_copy(dst=out, src=t)
    return out


@pytest.mark.parametrize("pos", [0, 13, 56])
def test_scalar_offset_gather_reads_the_runtime_column(pos):
    x = _x(4, 64)
    got = _window(x, np.array([[pos]], np.int32))
    np.testing.assert_array_equal(got, x[:, pos:pos + 8])


def test_scalar_offset_past_the_end_is_an_error_by_default():
    x = _x(4, 64)
    _window(x, np.array([[56]], np.int32))                    # last legal start
    with pytest.raises(SimError, match="access pattern out of bounds"):
        _window(x, np.array([[57]], np.int32))                # first illegal start


def _place(skip: bool):
    @nki.jit
    def place(x, row):
        """out (8, 16) zeros, rows row, row + 1 = x (scatter at a runtime row)."""
        out = nl.ndarray((8, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        z = nl.ndarray((8, 16), dtype=nl.float32, buffer=nl.sbuf)
        nisa.memset(dst=z, value=0.0)
        nisa.dma_copy(dst=out, src=z)
        r = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(dst=r, src=row)
        t = nl.ndarray((2, 16), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        mode = nisa.oob_mode.skip if skip else nisa.oob_mode.error
        nisa.dma_copy(dst=out.ap(pattern=[[16, 2], [1, 16]], offset=0, scalar_offset=r,
                                 indirect_dim=0), src=t, oob_mode=mode)
        return out
    return place


@pytest.mark.parametrize("skip", [False, True])
def test_scalar_offset_scatter_to_the_runtime_row(skip):
    x = _x(2, 16)
    for row in (0, 3, 6):                                     # 6: last legal row
        want = np.zeros((8, 16), np.float32)
        want[row:row + 2] = x
        np.testing.assert_array_equal(_place(skip)(x, np.array([[row]], np.int32)), want)


def test_oob_skip_skips_the_transfer_and_error_mode_raises():
    x = _x(2, 16)
    got = _place(True)(x, np.array([[7]], np.int32))         # first illegal row: skipped
    np.testing.assert_array_equal(got, np.zeros((8, 16), np.float32))
    with pytest.raises(SimError, match="access pattern out of bounds"):
        _place(False)(x, np.array([[7]], np.int32))


def _offset_kernel(shape, mem, dtype=nl.int32):
    @nki.jit
    def k(x):
        out = nl.ndarray((4, 8), dtype=nl.float32, buffer=nl.shared_hbm)
        p = nl.ndarray(shape, dtype=dtype, buffer=mem)
        nisa.memset(dst=p, value=0)
        t = nl.ndarray((4, 8), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x.ap(pattern=[[64, 4], [1, 8]], offset=0, scalar_offset=p,
                                      indirect_dim=1))
        nisa.dma_copy(dst=out, src=t)
        return out
    return k


def test_scalar_offset_is_one_sbuf_element():
    x = _x(4, 64)
    np.testing.assert_array_equal(_offset_kernel((1, 1), nl.sbuf)(x), x[:, 0:8])
    with pytest.raises(SimError, match="scalar_offset must be a 1x1 SBUF tensor"):
        _offset_kernel((2, 1), nl.sbuf)(x)
    with pytest.raises(SimError, match="scalar_offset must be a 1x1 SBUF tensor"):
        _offset_kernel((1, 1), nl.psum, nl.float32)(x)
    with pytest.raises(UnsupportedError, match="float32 tile"):
        _offset_kernel((1, 1), nl.sbuf, nl.float32)(x)


def test_scalar_and_vector_offset_are_exclusive_and_indirect_dim_in_range():
    @nki.jit
    def both(x):
        p = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.memset(dst=p, value=0)
        x.ap(pattern=[[64, 1], [1, 8]], offset=0, scalar_offset=p, vector_offset=p)
        return x

    @nki.jit
    def dim(x, d):
        p = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.memset(dst=p, value=0)
        out = nl.ndarray((1, 8), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.ndarray((1, 8), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x.ap(pattern=[[64, 1], [1, 8]], offset=0, scalar_offset=p,
                                      indirect_dim=d))
        nisa.dma_copy(dst=out, src=t)
        return out
    x = _x(4, 64)
    with pytest.raises(SimError, match="mutually exclusive"):
        both(x)
    dim(x, 1)                                                 # last dimension of (4, 64)
    with pytest.raises(SimError, match="indirect_dim must name a dimension"):
        dim(x, 2)


# ---- rule locations in decorated kernels --------------------------------------------------
@nki.jit
def _uses_is(a, flag=None):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    if flag is not None:
        pass
    return out


def test_identity_rule_points_at_the_comparison_line_of_a_decorated_kernel():
    src, first = inspect.getsourcelines(_uses_is.__wrapped__)
    line = first + next(i for i, s in enumerate(src) if " is not " in s)
    with pytest.raises(SimError, match="may not use `is`") as ei:
        _uses_is(_x(4, 8))
    assert f"{HERE}:{line}:" in str(ei.value), str(ei.value)


@cnki.jit
def _shared_in_one_line_loop(a):
    for _ in range(2):
        cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
    out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
    cl.store(out, value=cl.load(a[0:128, 0:4]))
    return out


@cnki.jit
def _shared_after_loop(a):
    for _ in range(2):
        pass
    out = cl.ndarray((128, 4), dtype=cl.float32, buffer=cl.shared_hbm)
    cl.store(out, value=cl.load(a[0:128, 0:4]))
    return out


def test_classic_shared_hbm_in_the_last_loop_line_of_a_decorated_kernel():
    x = _x(128, 8)
    with pytest.raises(SimError, match="err_shared_hbm_must_in_kernel_level"):
        cnki.simulate_kernel(_shared_in_one_line_loop, x)
    np.testing.assert_array_equal(cnki.simulate_kernel(_shared_after_loop, x), x[:, 0:4])


# ---- .ap() on a view (SH NkiTensor.ap: the offset counts from the view's start) ---------
@nki.jit
def _ap_on_views(x):
    """x (8, 64): rows 2.. of x as (6, 64) read through .ap() on a slice, and x read as
    (4, 128) through .ap() on a reshape, then a free-dim window of an SBUF slice."""
    out1 = nl.ndarray((6, 64), dtype=x.dtype, buffer=nl.shared_hbm)
    out2 = nl.ndarray((4, 128), dtype=x.dtype, buffer=nl.shared_hbm)
    out3 = nl.ndarray((4, 8), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((6, 64), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x[2:8, :].ap(pattern=[[64, 6], [1, 64]]))
    nisa.dma_copy(dst=out1, src=t)
    u = nl.ndarray((4, 128), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=u, src=x.reshape((4, 128)).ap(pattern=[[128, 4], [1, 128]], offset=0))
    nisa.dma_copy(dst=out2, src=u)
    nisa.dma_copy(dst=out3, src=u[0:4, 8:128].ap(pattern=[[128, 4], [1, 8]], offset=4))
    return out1, out2, out3


def test_ap_on_a_view_starts_at_the_view():
    x = _x(8, 64)
    o1, o2, o3 = _ap_on_views(x)
    np.testing.assert_array_equal(o1, x[2:8])
    np.testing.assert_array_equal(o2, x.reshape(4, 128))
    np.testing.assert_array_equal(o3, x.reshape(4, 128)[:, 12:20])


def test_ap_on_a_view_is_bounded_by_the_tensor():
    @nki.jit
    def k(x, off):
        out = nl.ndarray((1, 64), dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray((1, 64), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[2:8, :].ap(pattern=[[64, 1], [1, 64]], offset=off))
        nisa.dma_copy(dst=out, src=t)
        return out
    x = _x(8, 64)
    np.testing.assert_array_equal(k(x, 5 * 64), x[7:8])        # the last row: legal
    with pytest.raises(SimError, match="access pattern out of bounds"):
        k(x, 5 * 64 + 1)                                        # one element past the end


# ---- nisa.core_barrier (SH core_barrier: NC-v3+, cores=(0, 1), data in shared HBM) --------
def _barrier(cores=(0, 1), on_input=False):
    @nki.jit
    def k(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        nisa.dma_copy(dst=out, src=t)
        nisa.core_barrier(t if on_input else out, cores)
        nisa.dma_copy(dst=t, src=out)
        return out
    return k


def test_core_barrier_passes_in_a_single_program_run():
    x = _x(4, 8)
    np.testing.assert_array_equal(sim.simulate(_barrier(), target="trn2")(x), x)


def test_core_barrier_rules():
    x = _x(4, 8)
    with pytest.raises(SimError, match="NeuronCore-v3 or newer"):
        sim.simulate(_barrier(), target="trn1")(x)
    with pytest.raises(SimError, match=r"only cores=\(0, 1\)"):
        sim.simulate(_barrier(cores=(0, 2)), target="trn2")(x)
    with pytest.raises(SimError, match="data must be a tensor in shared HBM"):
        sim.simulate(_barrier(on_input=True), target="trn2")(x)


# ---- vector-indirect scatter and gather-transpose (SH dma_copy / dma_transpose) -----------
def _rows(n: int, p: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)[:p].astype(np.uint32).reshape(p, 1)


@nki.jit
def _put_rows(vals, ids, table):
    """table[ids[p]] = vals[p]: a scatter through vector_offset on the destination."""
    p, f = vals.shape
    out = nl.ndarray(table.shape, dtype=table.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray(table.shape, dtype=table.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=table)
    nisa.dma_copy(dst=out, src=t)
    v = nl.ndarray((p, f), dtype=vals.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=v, src=vals)
    i = nl.ndarray((p, 1), dtype=nl.uint32, buffer=nl.sbuf)
    nisa.dma_copy(dst=i, src=ids)
    nisa.dma_copy(dst=out.ap(pattern=[[f, p], [1, f]], vector_offset=i, indirect_dim=0), src=v)
    return out


def test_vector_offset_scatter_writes_the_indexed_rows():
    vals, table = _x(32, 16), _x(100, 16)
    ids = _rows(100, 32)
    want = table.copy()
    want[ids[:, 0]] = vals
    np.testing.assert_array_equal(_put_rows(vals, ids, table), want)
    ids[5, 0] = 100                                   # first row past the end
    with pytest.raises(SimError, match="indirect index out of bounds"):
        _put_rows(vals, ids, table)


def _gather_t(cols: int, rows: int = 128, skip: bool = False):
    @nki.jit
    def k(src, ids):
        """dst = src[ids.T.flatten()].T, ids (rows, cols)."""
        n, w = src.shape
        g = rows * cols
        out = nl.ndarray((w, g), dtype=src.dtype, buffer=nl.shared_hbm)
        i = nl.ndarray((rows, cols), dtype=nl.uint32, buffer=nl.sbuf)
        nisa.dma_copy(dst=i, src=ids)
        d = nl.ndarray((w, g), dtype=src.dtype, buffer=nl.sbuf)
        nisa.memset(dst=d, value=0.0)
        mode = nisa.oob_mode.skip if skip else nisa.oob_mode.error
        nisa.dma_transpose(dst=d, src=src.ap(pattern=[[w, g], [1, w]], vector_offset=i,
                                             indirect_dim=0), oob_mode=mode)
        nisa.dma_copy(dst=out, src=d)
        return out
    return k


@pytest.mark.parametrize("rows,cols", [(16, 1), (128, 1), (128, 3)])
def test_gather_transpose_flattens_indices_column_major(rows, cols):
    import ml_dtypes
    src = _x(400, 64).astype(ml_dtypes.bfloat16)
    ids = np.random.default_rng(4).permutation(400)[:rows * cols].astype(np.uint32)
    ids = ids.reshape(cols, rows).T.copy()              # column-major: ids.T.flatten()
    got = sim.simulate(_gather_t(cols, rows), target="trn2")(src, ids)
    np.testing.assert_array_equal(got, src[ids.T.reshape(-1)].T)


def test_gather_transpose_constraints_and_skip():
    import ml_dtypes
    src = _x(400, 64).astype(ml_dtypes.bfloat16)
    ids = _rows(400, 128)
    with pytest.raises(SimError, match="multiple of 16 in \\[16, 128\\]"):
        sim.simulate(_gather_t(2, 8), target="trn2")(src, np.zeros((8, 2), np.uint32))
    with pytest.raises(SimError, match="with several index columns"):
        sim.simulate(_gather_t(2, 64), target="trn2")(src, np.zeros((64, 2), np.uint32))
    with pytest.raises(SimError, match="NeuronCore-v3"):
        sim.simulate(_gather_t(1), target="trn1")(src, ids)
    with pytest.raises(SimError, match="2 bytes"):
        sim.simulate(_gather_t(1), target="trn2")(src.astype(np.float32), ids)
    ids[7, 0] = 400                                                    # past the end
    with pytest.raises(SimError, match="indirect index out of bounds"):
        sim.simulate(_gather_t(1), target="trn2")(src, ids)
    got = sim.simulate(_gather_t(1, skip=True), target="trn2")(src, ids)
    keep = np.ones(128, bool)
    keep[7] = False
    np.testing.assert_array_equal(got[:, keep], src[ids[keep, 0]].T)
    np.testing.assert_array_equal(got[:, 7], np.zeros(64, ml_dtypes.bfloat16))


def test_dma_transpose_scalar_offset_skip():
    """SH release notes NKI 0.5: dma_transpose with scalar_offset supports oob_mode.skip."""
    import ml_dtypes

    def k(skip):
        @nki.jit
        def t(src, row):
            out = nl.ndarray((32, 16), dtype=src.dtype, buffer=nl.shared_hbm)
            r = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
            nisa.dma_copy(dst=r, src=row)
            d = nl.ndarray((32, 16), dtype=src.dtype, buffer=nl.sbuf)
            nisa.memset(dst=d, value=0.0)
            mode = nisa.oob_mode.skip if skip else nisa.oob_mode.error
            nisa.dma_transpose(dst=d, src=src.ap(pattern=[[32, 16], [1, 32]], offset=0,
                                                 scalar_offset=r, indirect_dim=0),
                               oob_mode=mode)
            nisa.dma_copy(dst=out, src=d)
            return out
        return t
    src = _x(64, 32).astype(ml_dtypes.bfloat16)
    got = sim.simulate(k(False), target="trn2")(src, np.array([[48]], np.int32))  # last legal
    np.testing.assert_array_equal(got, src[48:64].T)
    got = sim.simulate(k(True), target="trn2")(src, np.array([[49]], np.int32))
    np.testing.assert_array_equal(got, np.zeros((32, 16), ml_dtypes.bfloat16))
    with pytest.raises(SimError, match="access pattern out of bounds"):
        sim.simulate(k(False), target="trn2")(src, np.array([[49]], np.int32))


# ---- scheduling APIs (SH nki/guides/how-to-scheduling-apis.rst) ---------------------------
@nki.jit
def _two_ops(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=a)
    u = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.sbuf)
    with nl.no_reorder():
        nisa.tensor_scalar(dst=u, data=t, op0=nl.multiply, operand0=3.0, name="triple")
        nisa.tensor_scalar(dst=t, data=u, op0=nl.add, operand0=1.0, name="inc")
    nisa.dma_copy(dst=out, src=t)
    return out


def test_no_reorder_and_with_schedule_run_in_program_order():
    a = _x(8, 16)
    want = a * 3 + 1
    np.testing.assert_allclose(_two_ops(a), want, rtol=1e-6)
    for edges in ([("inc", "triple")], [("inc", ["triple"])], ()):
        np.testing.assert_allclose(_two_ops.with_schedule(edges)(a), want, rtol=1e-6)
    for bad in ([("inc",)], [("inc", 3)], "inc", [("inc", ["triple", 1])]):
        with pytest.raises(SimError, match="with_schedule takes a list"):
            _two_ops.with_schedule(bad)


# ---- nki.collectives is importable; its collectives raise when called ---------------------
def test_collectives_import_and_raise_when_called():
    import importlib
    with sim.installed():
        ncc = importlib.import_module("nki.collectives")
        from nki.collectives import ReplicaGroup  # noqa: F401 - the form nki-library uses
    group = ncc.ReplicaGroup([[0, 1]])
    assert group.replica_groups == [[0, 1]]

    @nki.jit
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        ncc.all_reduce(srcs=[a], dsts=[out], replica_group=group, op=nl.add)
        return out
    with pytest.raises(UnsupportedError, match="nki.collectives.all_reduce"):
        k(_x(4, 8))


# ---- interleaved SPMD programs: core_barrier and sendrecv between programs ------------------
@nki.jit
def _swap_halves(x):
    """Program p loads rows p*64.., swaps its tile with the other program (sendrecv) and
    stores mine + theirs into its rows of the output."""
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    p = nl.program_id(0)
    mine = nl.ndarray((64, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=mine, src=x[p * 64:(p + 1) * 64, :])
    theirs = nl.ndarray((64, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
    nisa.sendrecv(src=mine, dst=theirs, send_to_rank=1 - p, recv_from_rank=1 - p, pipe_id=0)
    s = nl.ndarray((64, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
    nisa.tensor_tensor(dst=s, data1=mine, data2=theirs, op=nl.subtract)
    nisa.dma_copy(dst=out[p * 64:(p + 1) * 64, :], src=s)
    return out


def test_sendrecv_swaps_tiles_between_the_two_programs():
    x = _x(128, 32)
    got = sim.simulate(_swap_halves[2], target="trn2")(x)
    np.testing.assert_array_equal(got[:64], x[:64] - x[64:])
    np.testing.assert_array_equal(got[64:], x[64:] - x[:64])


def test_sendrecv_needs_two_programs_and_v3():
    x = _x(128, 32)
    with pytest.raises(SimError, match="two programs of an LNC=2 grid"):
        sim.simulate(_swap_halves, target="trn2")(x)
    with pytest.raises(SimError, match="NeuronCore-v3"):
        sim.simulate(_swap_halves[2], target="trn1")(x)


def _exchange(barrier: bool):
    @nki.jit
    def k(x):
        """Program p stages its row of x in shared HBM, then reads the other program's row."""
        stage = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        p = nl.program_id(0)
        t = nl.ndarray((1, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x[p:p + 1, :])
        nisa.dma_copy(dst=stage[p:p + 1, :], src=t)
        if barrier:
            nisa.core_barrier(stage, (0, 1))
        u = nl.ndarray((1, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=u, src=stage[1 - p:2 - p, :])
        nisa.dma_copy(dst=out[p:p + 1, :], src=u)
        return out
    return k


def test_core_barrier_orders_programs():
    x = _x(2, 16)
    got = sim.simulate(_exchange(True)[2], target="trn2")(x)
    np.testing.assert_array_equal(got, x[::-1])
    with pytest.raises(SimError, match="SPMD race"):
        sim.simulate(_exchange(False)[2], target="trn2")(x)


def test_core_barrier_deadlock_is_an_error():
    @nki.jit
    def k(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        if nl.program_id(0) == 0:
            nisa.core_barrier(out, (0, 1))          # program 1 never gets there
        return out
    with pytest.raises(SimError, match="SPMD deadlock: program 0 waits at core_barrier"):
        sim.simulate(k[2], target="trn2")(_x(2, 16))


def test_sendrecv_ranks_must_pair_and_gpsimd_limit():
    def k(to1: int, free: int, engine_gpsimd: bool):
        @nki.jit
        def kern(x):
            out = nl.ndarray((2, free), dtype=x.dtype, buffer=nl.shared_hbm)
            p = nl.program_id(0)
            a = nl.ndarray((1, free), dtype=x.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=a, src=x[p:p + 1, 0:free])
            b = nl.ndarray((1, free), dtype=x.dtype, buffer=nl.sbuf)
            eng = nisa.dma_engine.gpsimd_dma if engine_gpsimd else nisa.dma_engine.dma
            to = (1 - p) if p == 0 else to1
            nisa.sendrecv(src=a, dst=b, send_to_rank=to, recv_from_rank=1 - p, pipe_id=0,
                          dma_engine=eng)
            nisa.dma_copy(dst=out[p:p + 1, :], src=b)
            return out
        return kern[2]
    import ml_dtypes
    x = _x(2, 300).astype(ml_dtypes.bfloat16)
    got = sim.simulate(k(0, 256, True), target="trn2")(x)           # 512 bytes: the limit
    np.testing.assert_array_equal(got, x[::-1, 0:256])
    with pytest.raises(SimError, match="gpsimd_dma moves at most 512 bytes"):
        sim.simulate(k(0, 257, True), target="trn2")(x)
    with pytest.raises(SimError, match="ranks do not pair up"):
        sim.simulate(k(1, 16, False), target="trn2")(x)             # program 1 sends to 1


def test_errors_inside_an_interleaved_program_propagate():
    @nki.jit
    def k(x):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        nisa.core_barrier(out, (0, 1))
        if nl.program_id(0) == 1:
            nl.ndarray((256, 4), dtype=x.dtype, buffer=nl.sbuf)      # 256 partitions
        return out
    with pytest.raises(SimError, match="partition dim exceeds 128") as ei:
        sim.simulate(k[2], target="trn2")(_x(2, 16))
    assert f"{HERE}:" in str(ei.value)


# ---- NkiTensor view primitives (SH nki/api/nki/language NkiTensor, NKI 0.5) ---------------
def _through(view_fn, out_shape):
    """Load x (8, 24) into SBUF, read the view view_fn(tile) with a DMA into out_shape."""
    @nki.jit
    def k(x):
        out = nl.ndarray(out_shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=t, src=x)
        u = nl.ndarray(out_shape, dtype=x.dtype, buffer=nl.sbuf)
        nisa.tensor_copy(dst=u, src=view_fn(t))
        nisa.dma_copy(dst=out, src=u)
        return out
    return k


@pytest.mark.parametrize("name,fn,shape,ref", [
    ("reshape_dim", lambda t: t.reshape_dim(1, (4, -1)), (8, 4, 6),
     lambda x: x.reshape(8, 4, 6)),
    ("permute", lambda t: t.reshape_dim(1, (4, 6)).permute((0, 2, 1)), (8, 6, 4),
     lambda x: x.reshape(8, 4, 6).transpose(0, 2, 1)),
    ("flatten_dims", lambda t: t.reshape_dim(1, (2, 3, 4)).flatten_dims(1, 2), (8, 6, 4),
     lambda x: x.reshape(8, 6, 4)),
    ("slice", lambda t: t.slice(1, 2, 22, 4), (8, 5), lambda x: x[:, 2:22:4]),
    ("select", lambda t: t.reshape_dim(1, (4, 6)).select(1, 3), (8, 6),
     lambda x: x.reshape(8, 4, 6)[:, 3]),
    ("expand_squeeze", lambda t: t.expand_dim(1).squeeze_dim(1), (8, 24), lambda x: x),
    ("broadcast", lambda t: t.slice(1, 5, 6).broadcast(1, 7), (8, 7),
     lambda x: np.repeat(x[:, 5:6], 7, axis=1)),
    ("rearrange", lambda t: t.rearrange(("b", ("h", "w")), ("b", "w", "h"), {"h": 4}),
     (8, 6, 4), lambda x: x.reshape(8, 4, 6).transpose(0, 2, 1)),
])
def test_view_primitives_read_the_right_elements(name, fn, shape, ref):
    x = _x(8, 24)
    np.testing.assert_array_equal(_through(fn, shape)(x), ref(x))


def test_view_primitive_constraints():
    x = _x(8, 24)
    for fn, shape, msg in [
        (lambda t: t.permute((1, 0)), (24, 8), "partition dim first"),
        (lambda t: t.broadcast(1, 3), (8, 72), "must have size 1"),
        (lambda t: t.reshape_dim(1, (5, 5)), (8, 5, 5), "prod\\(shape\\) must equal"),
        (lambda t: t.reshape_dim(0, (2, 4)), (2, 4, 24), "must not be 0"),
        (lambda t: t.slice(1, 4, 4), (8, 1), "0 <= start < end"),
        (lambda t: t.slice(1, 0, 25), (8, 25), "0 <= start < end"),
        (lambda t: t.select(1, 24), (8, 1), "0 <= index < t.shape"),
        (lambda t: t.reshape_dim(1, (4, 6)).permute((0, 2, 1)).flatten_dims(1, 2), (8, 24),
         "contiguous in memory"),
    ]:
        with pytest.raises(SimError, match=msg):
            _through(fn, shape)(x)
    np.testing.assert_array_equal(_through(lambda t: t.slice(1, 23, 24), (8, 1))(x), x[:, 23:])


def test_view_queries_and_dynamic_select():
    seen = {}

    @nki.jit
    def k(x, i):
        t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
        seen["contig"] = (t.is_contiguous(), t.reshape_dim(1, (4, 6)).permute((0, 2, 1))
                          .is_contiguous(), t.slice(1, 0, 24, 2).is_contiguous())
        seen["pattern"] = t.get_pattern()
        idx = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(dst=idx, src=i)
        out = nl.ndarray((8, 6), dtype=x.dtype, buffer=nl.shared_hbm)
        u = nl.ndarray((8, 6), dtype=x.dtype, buffer=nl.sbuf)
        nisa.dma_copy(dst=u, src=x.reshape((8, 4, 6)).select(1, idx))
        nisa.dma_copy(dst=out, src=u)
        return out
    x = _x(8, 24)
    np.testing.assert_array_equal(k(x, np.array([[3]], np.int32)), x.reshape(8, 4, 6)[:, 3])
    assert seen == {"contig": (True, False, False), "pattern": [[24, 8], [1, 24]]}
    with pytest.raises(SimError, match="dynamic index out of bounds"):
        k(x, np.array([[4]], np.int32))


# ---- virtual registers and dynamic loops (SH VirtualRegister, register_*, dynamic_range,
# ---- fori_loop, while_loop) -----------------------------------------------------------------
def _count_rows(form: str):
    @nki.jit
    def k(x, n):
        """out[r] = x[r] * (r + 1) for the first n rows (n read at run time), else 0."""
        rows, f = x.shape
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        z = nl.ndarray((rows, f), dtype=x.dtype, buffer=nl.sbuf)
        nisa.memset(dst=z, value=0.0)
        nisa.dma_copy(dst=out, src=z)
        n_sb = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.dma_copy(dst=n_sb, src=n)
        reg = nisa.register_alloc()
        nisa.register_load(reg, n_sb)
        row = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.memset(dst=row, value=0)
        t = nl.ndarray((1, f), dtype=x.dtype, buffer=nl.sbuf)

        def body(i):
            nisa.dma_copy(dst=t, src=x.ap([[f, 1], [1, f]], offset=0, scalar_offset=row,
                                          indirect_dim=0))
            nisa.tensor_scalar(dst=row, data=row, op0=nl.add, operand0=1)
            r1 = nl.ndarray((1, 1), dtype=nl.float32, buffer=nl.sbuf)
            nisa.tensor_copy(dst=r1, src=row)
            nisa.tensor_scalar(dst=t, data=t, op0=nl.multiply, operand0=r1)
            nisa.dma_copy(dst=out.ap([[f, 1], [1, f]], offset=0, scalar_offset=i,
                                     indirect_dim=0), src=t)
        if form == "dynamic_range":
            for i in nl.dynamic_range(0, reg, 1):
                body(i)
        elif form == "fori_loop":
            nl.fori_loop(0, reg, body)
        else:                                       # while_loop counting down
            left = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
            nisa.dma_copy(dst=left, src=n)
            idx = nisa.register_alloc(0)

            def wbody(r):
                nisa.register_load(idx, row)            # this iteration's row
                body(idx)
                nisa.tensor_scalar(dst=left, data=left, op0=nl.subtract, operand0=1)
                nisa.register_load(r, left)
                return r
            nl.while_loop(reg, wbody)
        return out
    return k


@pytest.mark.parametrize("form", ["dynamic_range", "fori_loop", "while_loop"])
@pytest.mark.parametrize("n", [0, 3, 5])
def test_dynamic_loops_run_the_register_count(form, n):
    x = _x(5, 8)
    want = np.zeros_like(x)
    want[:n] = x[:n] * np.arange(1, n + 1, dtype=np.float32)[:, None]
    np.testing.assert_allclose(_count_rows(form)(x, np.array([[n]], np.int32)), want, rtol=1e-6)


def test_register_rules():
    def k(case):
        @nki.jit
        def kern(x):
            out = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.shared_hbm)
            t = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
            r = nisa.register_alloc(7)
            if case == "unset":
                r = nisa.register_alloc()
                nisa.register_store(t, r)
            elif case == "uninitialised":
                nisa.register_load(r, t)
            elif case == "two_elements":
                nisa.register_load(r, nl.ndarray((1, 2), dtype=nl.int32, buffer=nl.sbuf))
            elif case == "step":
                for _ in nl.dynamic_range(0, r, r):
                    pass
            nisa.register_store(t, r)
            nisa.dma_copy(dst=out, src=t)
            return out
        return kern
    x = _x(1, 1)
    assert int(k("ok")(x)[0, 0]) == 7
    for case, msg in [("unset", "read before it holds a value"),
                      ("uninitialised", "never written"),
                      ("two_elements", "exactly one element"),
                      ("step", "step must be a compile-time positive integer")]:
        with pytest.raises(SimError, match=msg):
            k(case)(x)


# ---- nl.softmax / nl.rms_norm (SH nki/api/nki/language) -----------------------------------
def test_softmax_and_rms_norm():
    @nki.jit
    def k(x, w, axis):
        out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        out2 = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
        t = nl.load(x)
        nl.store(out, nl.softmax(t, axis=axis))
        nl.store(out2, nl.rms_norm(t, nl.load(w), axis=axis, n=x.shape[1], epsilon=1e-5))
        return out, out2
    x, w = _x(16, 64), _x(16, 64) + 1
    a, b = k(x, w, 1)
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(a, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b, x / np.sqrt((x * x).mean(1, keepdims=True) + 1e-5) * w,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(SimError, match="axis must be free dimensions"):
        k(x, w, 0)
