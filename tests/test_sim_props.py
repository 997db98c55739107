"""Property tests of simulator views: indexing, nl.ds, strides, reshape and .ap agree with NumPy
on the same storage, and every out-of-bounds index raises instead of clipping."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nkigen import hw
from nkigen.sim import SimError, state, tensor
from nkigen.sim.tensor import DynSlice


@contextlib.contextmanager
def running():
    state.push(state.Run(hw.TRN2, True))
    try:
        yield
    finally:
        state.pop()


def _index(draw, n: int, partition: bool):
    kind = draw(st.sampled_from(["int", "slice", "ds", "full"]))
    if kind == "int":
        i = draw(st.integers(-n, n - 1))
        return i, (slice(i % n, i % n + 1) if partition else i % n)
    if kind == "ds":
        start = draw(st.integers(0, n - 1))
        size = draw(st.integers(1, n - start))
        return DynSlice(start, size), slice(start, start + size)
    if kind == "full":
        return slice(None), slice(None)
    start = draw(st.integers(0, n - 1))
    stop = draw(st.integers(start + 1, n))
    step = 1 if partition else draw(st.integers(1, 3))
    return slice(start, stop, step), slice(start, stop, step)


@st.composite
def indexed(draw):
    on_chip = draw(st.booleans())
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=2, max_size=4)))
    keys, np_keys = [], []
    for d, n in enumerate(shape[:draw(st.integers(1, len(shape)))]):
        k, nk = _index(draw, n, on_chip and d == 0)
        keys.append(k)
        np_keys.append(nk)
    return on_chip, shape, tuple(keys), tuple(np_keys)


@settings(max_examples=80, deadline=None)
@given(indexed())
def test_views_match_numpy(case):
    with running():
        on_chip, shape, keys, np_keys = case
        buf = tensor.SBUF if on_chip else tensor.SHARED_HBM
        t = tensor.new_tensor(shape, np.float32, buf)
        ref = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        t.np()[...] = ref
        v = t[keys]
        want = ref[np_keys]
        if on_chip and want.ndim == 1:
            want = want[:, None]                       # a per-partition operand is (P, 1)
        np.testing.assert_array_equal(v.np(), want)
        r = v.region()
        assert 0 <= r.b0 < r.b1 and r.p0 < r.p1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=3), st.integers(0, 2),
       st.integers(1, 4))
def test_out_of_bounds_always_raises(shape, dim, over):
    with running():
        dim = min(dim, len(shape) - 1)
        t = tensor.new_tensor(tuple(shape), np.float32, tensor.SHARED_HBM)
        n = shape[dim]
        for key in (slice(0, n + over), DynSlice(n - 1, 1 + over), n - 1 + over):
            with pytest.raises(SimError, match="out of bounds"):
                t[(slice(None),) * dim + (key,)]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 6), st.integers(1, 6), st.integers(0, 3),
       st.integers(1, 3))
def test_ap_matches_flat_indexing(p, f1, f2, off, step):
    with running():
        t = tensor.new_tensor((p, f1 * f2 * 4), np.float32, tensor.SBUF)
        ref = np.arange(t.size, dtype=np.float32)
        t.np()[...] = ref.reshape(t.shape)
        pf = t.shape[1]
        n2 = max(1, (pf - off - 1) // (step * f1) + 1) if pf > off else 1
        pattern = [[pf, p], [step * f1, min(n2, f2)], [1, min(f1, pf - off)]]
        try:
            v = t.ap(pattern, offset=off)
        except SimError:
            hi = off + (pattern[1][1] - 1) * pattern[1][0] + (pattern[2][1] - 1)
            assert hi >= pf                           # rejected only when really out of bounds
            return
        pp, ii, jj = np.meshgrid(np.arange(p), np.arange(pattern[1][1]), np.arange(pattern[2][1]),
                                 indexing="ij")
        want = ref[off + pp * pf + ii * pattern[1][0] + jj * pattern[2][0]]
        np.testing.assert_array_equal(v.np(), want)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.sampled_from([(2, 6), (3, 4), (12, 1), (1, 12)]))
def test_reshape_keeps_partition_dim(p, free):
    with running():
        t = tensor.new_tensor((p, 12), np.float32, tensor.SBUF)
        t.np()[...] = np.arange(p * 12, dtype=np.float32).reshape(p, 12)
        v = t.reshape((p,) + free)
        np.testing.assert_array_equal(v.np(), t.np().reshape((p,) + free))
        with pytest.raises(SimError, match="partition dim"):
            t.reshape((p * 2, 6))


_DTYPES = ["float32", "bfloat16", "float16"]
_BIN = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
        "maximum": np.maximum, "minimum": np.minimum}


def _run_tile(body, arrays, out_shape, out_dtype):
    """Load arrays to SBUF, run body(*tiles, out) into a new tile, return it as NumPy."""
    import nkigen.sim.nki.language as nl
    from nkigen import sim

    def k(*xs):
        tiles = [nl.load(x) for x in xs]
        o = nl.ndarray(out_shape, dtype=out_dtype)
        body(*tiles, o)
        out = nl.ndarray(out_shape, dtype=out_dtype, buffer=nl.shared_hbm)
        nl.store(out, value=o)
        return out
    return sim.simulate(k)(*arrays)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(_DTYPES), st.sampled_from(_DTYPES), st.sampled_from(list(_BIN)),
       st.integers(1, 8), st.integers(1, 16), st.integers(0, 2**31 - 1))
def test_tensor_tensor_is_fp32_math_rounded_to_dst(d_in, d_out, op, p, f, seed):
    import nkigen.sim.nki.isa as nisa
    from nkigen.sim import dt
    a = np.random.default_rng(seed).standard_normal((p, f)).astype(dt.as_dtype(d_in))
    b = np.random.default_rng(seed + 1).standard_normal((p, f)).astype(dt.as_dtype(d_in))
    got = _run_tile(lambda x, y, o: nisa.tensor_tensor(o, x, y, _BIN[op]), [a, b], (p, f),
                    dt.as_dtype(d_out))
    want = _BIN[op](a.astype(np.float32), b.astype(np.float32)).astype(dt.as_dtype(d_out))
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(_DTYPES), st.sampled_from(["add", "maximum", "minimum"]),
       st.integers(1, 8), st.integers(1, 4), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_tensor_reduce_trailing_axes(d_in, op, p, f1, f2, seed):
    import nkigen.sim.nki.isa as nisa
    from nkigen.sim import dt
    a = np.random.default_rng(seed).standard_normal((p, f1, f2)).astype(dt.as_dtype(d_in))
    got = _run_tile(lambda x, o: nisa.tensor_reduce(o, _BIN[op], x, axis=(1, 2)), [a], (p, 1),
                    np.dtype(np.float32))
    want = _BIN[op].reduce(a.astype(np.float32).reshape(p, -1), axis=1)[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 128), st.integers(1, 128), st.integers(1, 512), st.integers(0, 2**31 - 1),
       st.sampled_from(["float32", "bfloat16", "float8_e4m3"]))
def test_nc_matmul_is_exact_products_fp32_accumulate(k, m, n, seed, d):
    import nkigen.sim.nki.isa as nisa
    from nkigen.sim import dt
    d2 = "float32" if d == "float32" else "bfloat16"
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m)).astype(dt.as_dtype(d))
    b = rng.standard_normal((k, n)).astype(dt.as_dtype(d2))

    def body(x, y, o):
        import nkigen.sim.nki.language as nl
        acc = nl.ndarray((m, n), dtype=nl.float32, buffer=nl.psum)
        nisa.nc_matmul(acc, x, y)
        nisa.tensor_copy(o, acc)

    got = _run_tile(body, [a, b], (m, n), np.dtype(np.float32))
    want = a.astype(np.float64).T @ b.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * np.sqrt(k))
