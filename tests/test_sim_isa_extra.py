"""Less common ISA instructions and nl helpers in the simulator, each against NumPy."""

import numpy as np
import pytest

import nkigen.sim.nki.isa as nisa
import nkigen.sim.nki.language as nl
from nkigen import sim
from nkigen.sim import SimError

rng = np.random.default_rng(2)


def run_tile(body, *arrays):
    """Load each array into SBUF, apply body(*tiles) -> tile, store and return it."""
    def k(*xs):
        tiles = [nl.load(x) for x in xs]
        r = body(*tiles)
        out = nl.ndarray(r.shape, dtype=r.dtype, buffer=nl.shared_hbm)
        if r.buffer == nl.sbuf:          # no `is` in nki 0.3 kernels (SH nki/migration)
            nl.store(out, value=r)
        else:
            nl.store(out, value=nl.copy(r))
        return out
    return sim.simulate(k)(*arrays)


def test_tensor_scalar_reduce():
    a = rng.standard_normal((128, 16)).astype(np.float32)

    def body(t):
        d = nl.ndarray((128, 16), dtype=nl.float32)
        r = nl.ndarray((128, 1), dtype=nl.float32)
        nisa.tensor_scalar_reduce(d, t, nl.multiply, 2.0, nl.maximum, r)
        return r

    np.testing.assert_allclose(run_tile(body, a)[:, 0], (2 * a).max(1))


def test_tensor_copy_predicated_keeps_unselected():
    a = rng.standard_normal((128, 8)).astype(np.float32)
    m = (rng.random((128, 8)) > 0.5).astype(np.uint8)

    def body(t, pred):
        d = nl.full((128, 8), 7.0, dtype=nl.float32)
        nisa.tensor_copy_predicated(d, t, pred)
        return d

    np.testing.assert_array_equal(run_tile(body, a, m), np.where(m != 0, a, 7.0))


def test_tensor_partition_reduce():
    a = rng.standard_normal((64, 8)).astype(np.float32)

    def body(t):
        d = nl.ndarray((1, 8), dtype=nl.float32)
        nisa.tensor_partition_reduce(d, nl.add, t)
        return d

    np.testing.assert_allclose(run_tile(body, a)[0], a.sum(0), rtol=1e-5)


def test_nc_stream_shuffle_reverses_quadrants():
    a = np.arange(64 * 4, dtype=np.float32).reshape(64, 4)

    def body(t):
        d = nl.ndarray((64, 4), dtype=nl.float32)
        nisa.nc_stream_shuffle(d, t, list(range(31, -1, -1)))
        return d

    ref = np.concatenate([a[31::-1], a[63:31:-1]])
    np.testing.assert_array_equal(run_tile(body, a), ref)


def test_max8_find_index8_match_replace8():
    a = rng.permutation(128 * 32).astype(np.float32).reshape(128, 32)

    def body(t):
        v = nl.ndarray((128, 8), dtype=nl.float32)
        nisa.max8(v, t)
        idx = nl.ndarray((128, 8), dtype=nl.uint32)
        nisa.nc_find_index8(idx, t, v)
        rep = nl.ndarray((128, 32), dtype=nl.float32)
        nisa.nc_match_replace8(rep, t, v, -1.0)
        both = nl.ndarray((128, 48), dtype=nl.float32)
        nisa.tensor_copy(both[:, 0:8], v)
        nisa.tensor_copy(both[:, 8:16], idx)
        nisa.tensor_copy(both[:, 16:48], rep)
        return both

    out = run_tile(body, a)
    top = -np.sort(-a, axis=1)[:, :8]
    np.testing.assert_array_equal(out[:, :8], top)
    np.testing.assert_array_equal(out[:, 8:16], np.argsort(-a, axis=1)[:, :8])
    rep = a.copy()
    rep[rep >= top[:, 7:8]] = -1
    np.testing.assert_array_equal(out[:, 16:], rep)


def test_select_reduce_and_range_select():
    a = rng.standard_normal((128, 16)).astype(np.float32)
    m = (rng.random((128, 16)) > 0.3).astype(np.uint8)

    def body(t, pred):
        d = nl.ndarray((128, 16), dtype=nl.float32)
        r = nl.ndarray((128, 1), dtype=nl.float32)
        nisa.select_reduce(d, pred, t, -5.0, reduce_res=r,
                           reduce_cmd=nisa.reduce_cmd.reset_reduce)
        lo = nl.full((128, 1), 3.0, dtype=nl.float32)
        hi = nl.full((128, 1), 9.0, dtype=nl.float32)
        d2 = nl.ndarray((128, 16), dtype=nl.float32)
        r2 = nl.ndarray((128, 1), dtype=nl.float32)
        nisa.range_select(d2, t, nl.greater_equal, nl.less, lo, hi, reduce_res=r2)
        out = nl.ndarray((128, 34), dtype=nl.float32)
        nisa.tensor_copy(out[:, 0:16], d)
        nisa.tensor_copy(out[:, 16:17], r)
        nisa.tensor_copy(out[:, 17:33], d2)
        nisa.tensor_copy(out[:, 33:34], r2)
        return out

    out = run_tile(body, a, m)
    sel = np.where(m != 0, a, -5.0)
    np.testing.assert_array_equal(out[:, :16], sel)
    np.testing.assert_array_equal(out[:, 16], sel.max(1))
    f = np.arange(16)
    rs = np.where((f >= 3) & (f < 9), a, np.finfo(np.float32).min)
    np.testing.assert_array_equal(out[:, 17:33], rs)
    np.testing.assert_array_equal(out[:, 33], rs.max(1))


def test_where_constant_identity_and_load_transpose2d():
    a = rng.standard_normal((128, 64)).astype(np.float32)

    def k(x):
        out = nl.ndarray((64, 128), dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load_transpose2d(x)                          # [64, 128]
        eye = nl.shared_identity_matrix(64, dtype=nl.float32)       # an SBUF tile
        c = nl.load(nl.shared_constant(np.full((64, 128), 2.0), dtype=nl.float32))
        w = nl.where(nl.greater(t, 0.0), t, c)
        s = nl.ndarray((64, 128), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(s, w)
        nisa.tensor_tensor(s[:, 0:64], s[:, 0:64], eye, np.add)
        nl.store(out, value=s)
        return out

    ref = np.where(a.T > 0, a.T, 2.0)
    ref[:, :64] += np.eye(64)
    np.testing.assert_array_equal(sim.simulate(k)(a), ref)
    assert sim.run(k, [a]).instrs[1].op == "dma_copy"      # identity materialised by a DMA


@pytest.mark.parametrize("name", ["exponential", "nc_matmul_mx", "quantize_mx"])
def test_v4_only_instructions_are_rejected(name):
    def k(a):
        getattr(nisa, name)(None, None)
    with pytest.raises(SimError, match=f"nki.isa.{name} is available only on NeuronCore-v4"):
        sim.run(k, [np.zeros((1, 1), np.float32)])


def test_dma_compute_sums_sources():
    a, b = (rng.standard_normal((128, 32)).astype(np.float32) for _ in range(2))

    def k(x, y):
        out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(y)
        nisa.dma_compute(out, [x, t], nl.add)
        return out

    np.testing.assert_allclose(sim.simulate(k)(a, b), a + b, rtol=1e-6)

    def bad(x, y):
        out = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        nisa.dma_compute(out, [x, y], nl.maximum)
    with pytest.raises(SimError, match="only reduce_op=add"):
        sim.run(bad, [a, b])


def test_nc_n_gather_and_nonzero_with_count():
    a = rng.standard_normal((32, 16)).astype(np.float32)
    idx = rng.integers(0, 16, size=(32, 5)).astype(np.uint32)
    m = (rng.random((32, 16)) > 0.6).astype(np.float32)

    def k(x, i, mm):
        out = nl.ndarray((32, 22), dtype=nl.float32, buffer=nl.shared_hbm)
        g = nl.ndarray((32, 5), dtype=nl.float32)
        nisa.nc_n_gather(g, nl.load(x), nl.load(i))
        nz = nl.ndarray((32, 17), dtype=nl.int32)
        nisa.memset(nz, 0)
        nisa.nonzero_with_count(nz, nl.load(mm), index_offset=100)
        both = nl.ndarray((32, 22), dtype=nl.float32)
        nisa.tensor_copy(both[:, 0:5], g)
        nisa.tensor_copy(both[:, 5:22], nz)
        nl.store(out, value=both)
        return out

    out = sim.simulate(k)(a, idx, m)
    np.testing.assert_array_equal(out[:, :5], np.take_along_axis(a, idx.astype(np.int64), 1))
    for p in range(32):
        row = out[p, 5:]
        if p % 16:
            np.testing.assert_array_equal(row, 0)          # untouched partitions
        else:
            nz = np.flatnonzero(m[p]) + 100
            np.testing.assert_array_equal(row[:nz.size], nz)
            np.testing.assert_array_equal(row[nz.size:16], -1)
            assert row[16] == nz.size

    bad = idx.copy()
    bad[0, 0] = 16

    def k2(x, i):
        g = nl.ndarray((32, 5), dtype=nl.float32)
        nisa.nc_n_gather(g, nl.load(x), nl.load(i))
    with pytest.raises(SimError, match=r"index out of range \[0, 16\)"):
        sim.run(k2, [a, bad])
