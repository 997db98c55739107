"""Simulator rules added for survivors of the kernel mutation campaign
(benchmarks/kernel_mutants.py): each test pins one rule at its boundary (the last legal value
runs, the first illegal one is a SimError located at the kernel line) and, where the campaign
found it, the injected bug that used to pass. The rows citing these tests are in
nkigen/sim/conformance/isa.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import nkigen.sim.nki.isa as nisa
import nkigen.sim.nki.language as nl
from nkigen import sim
from nkigen.sim.errors import SimError

with sim.installed():
    import neuronxcc.nki.isa as cisa  # noqa: E402
    import neuronxcc.nki.language as cnl  # noqa: E402
    from neuronxcc import nki as cnki  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
rng = np.random.default_rng(5)


def rnd(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def classic(body, *arrays):
    def k(*xs):
        tiles = [cnl.load(x) for x in xs]
        r = body(*tiles)
        out = cnl.ndarray(r.shape, dtype=r.dtype, buffer=cnl.shared_hbm)
        cnl.store(out, value=r)
        return out
    return cnki.simulate_kernel(cnki.jit(k, platform_target="trn2"), *arrays)


def current(body, *arrays):
    def k(*xs):
        tiles = [nl.load(x) for x in xs]
        r = body(*tiles)
        out = nl.ndarray(r.shape, dtype=r.dtype, buffer=nl.shared_hbm)
        nl.store(out, value=r)
        return out
    return sim.simulate(k)(*arrays)


def _line_of(err: SimError) -> int:
    d = err.diagnostics[0]
    assert d.loc is not None and Path(d.loc.path).name == Path(__file__).name, d
    return d.loc.line


# ---- classic tensor_tensor on GpSimd: the tbl-aluop engine column ---------------------------
@pytest.mark.parametrize("op,ok", [(np.add, True), (np.multiply, True), (np.subtract, False),
                                   (np.maximum, False), (np.minimum, False)])
def test_classic_tensor_tensor_gpsimd_engine_column(op, ok):
    a, b = rnd(8, 16), rnd(8, 16)

    def body(x, y):
        return cisa.tensor_tensor(x, y, op=op, engine=cisa.gpsimd_engine)  # the line
    line = sys._getframe().f_lineno - 1
    if ok:
        np.testing.assert_allclose(classic(body, a, b), op(a, b), rtol=1e-6)
        return
    with pytest.raises(SimError, match=r"is not supported on the GpSimd engine.*tbl-aluop") as e:
        classic(body, a, b)
    assert _line_of(e.value) == line
    assert "engine=nisa.vector_engine" in str(e.value)
    # the same operator on VectorE (or the engine left unset) is legal
    np.testing.assert_allclose(
        classic(lambda x, y: cisa.tensor_tensor(x, y, op=op, engine=cisa.vector_engine), a, b),
        op(a, b), rtol=1e-6)


def test_current_tensor_tensor_gpsimd_takes_any_operator():
    """The current API's tensor_tensor documents engine=gpsimd without an engine column, so
    the classic rule does not apply there (a subtract on GpSimd runs)."""
    a, b = rnd(8, 16), rnd(8, 16)

    def body(x, y):
        d = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=d, data1=x, data2=y, op=nl.subtract, engine=nisa.engine.gpsimd)
        return d
    np.testing.assert_allclose(current(body, a, b), a - b, rtol=1e-6)


# ---- integer tiles: engine results must be finite and in range -------------------------------
@pytest.mark.parametrize("value,ok", [(127.0, True), (128.0, False), (-128.0, True),
                                      (-129.0, False), (127.4, True), (127.6, False)])
def test_int8_write_range_boundary(value, ok):
    x = np.full((4, 8), value, np.float32)

    def body(t):
        d = nl.ndarray(t.shape, dtype=nl.int8, buffer=nl.sbuf)
        nisa.tensor_copy(dst=d, src=t)  # the line
        return d
    line = sys._getframe().f_lineno - 2
    if ok:
        np.testing.assert_array_equal(current(body, x), np.rint(x).astype(np.int8))
        return
    with pytest.raises(SimError, match=r"value written to a int8 tile is not finite or outside "
                                       r"\[-128, 127\]") as e:
        current(body, x)
    assert _line_of(e.value) == line


def test_uninitialised_read_into_int_tile_is_located():
    """A NaN (what a tile no instruction wrote reads as) cast into an int32 tile: located
    error, not NumPy's silent INT_MIN."""
    x = rnd(4, 8)

    def body(t):
        junk = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.sbuf)     # never written
        d = nl.ndarray(t.shape, dtype=nl.int32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=d, data1=t, data2=junk, op=nl.add)  # the line
        return d
    line = sys._getframe().f_lineno - 2
    with pytest.raises(SimError, match=r"int32 tile is not finite.*got nan") as e:
        current(body, x)
    assert _line_of(e.value) == line


def test_classic_int_result_range():
    x = np.full((4, 8), 40000.0, np.float32)
    with pytest.raises(SimError, match=r"int16 tile is not finite or outside \[-32768, 32767\]"):
        classic(lambda t: cisa.tensor_copy(t, dtype=cnl.int16), x)
    y = np.full((4, 8), 32767.0, np.float32)
    np.testing.assert_array_equal(classic(lambda t: cisa.tensor_copy(t, dtype=cnl.int16), y),
                                  y.astype(np.int16))


@pytest.mark.parametrize("value,ok", [(2147483647, True), (2147483648, False),
                                      (-2147483648, True), (-2147483649, False),
                                      (-3.4028234663852886e38, False), (float("-inf"), False)])
def test_memset_int32_value_range(value, ok):
    """Mutation survivor (a crash before): memset of the fp32 lowest value into an int32 tile
    raised NumPy's OverflowError from inside the simulator."""
    x = rnd(4, 8)

    def body(t):
        d = nl.ndarray(t.shape, dtype=nl.int32, buffer=nl.sbuf)
        nisa.memset(dst=d, value=value)  # the line
        return d
    line = sys._getframe().f_lineno - 2
    if ok:
        np.testing.assert_array_equal(current(body, x), np.full(x.shape, value, np.int64))
        return
    with pytest.raises(SimError, match=r"memset: a value written to a int32 tile") as e:
        current(body, x)
    assert _line_of(e.value) == line


def test_campaign_kills_the_fixed_survivors():
    """The campaign's own mutants behind these rules: a classic subtract moved to GpSimd and the
    running-max accumulator of row_argmax turned int32 are now simulator errors at the
    mutated kernel line."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import kernel_mutants as km
    finally:
        sys.path.pop(0)
    km.STRESS = False
    got = {}
    for k in km.spec_kernels(["sgd_step", "row_max"]):
        if k.dialect != "neuronxcc":
            continue
        ref = km._Ref(k)
        ops = [o for o in km.OPS if o.name in ("eng-gpsimd", "sbuf-int")]
        for m in km.mutants(k, ops, 4):
            o = km.classify(m, ref, Path(km.tempfile.mkdtemp()))
            got[(k.spec.name, m.op.name, m.line)] = o
    errs = {key: o for key, o in got.items() if o.cls == "KILLED-error"}
    assert any(n == "sgd_step" and op == "eng-gpsimd" and "GpSimd" in o.detail
               for (n, op, _), o in errs.items()), got
    assert any(n == "row_max" and op == "sbuf-int" and "int32 tile" in o.detail
               for (n, op, _), o in errs.items()), got
    assert all(o.located for o in errs.values())
    assert not [o for o in got.values() if o.cls == "KILLED-crash"]


# ---- classic nisa.nc_matmul operands must be SBUF tiles ---------------------------------------
def test_classic_nc_matmul_operands_in_sbuf():
    """Mutation survivor: the ones-vector stationary of a column sum allocated in PSUM was
    silently staged through SBUF. The ISA call requires SBUF operands; nl.matmul (language
    level, lowered by the compiler) still accepts a PSUM operand."""
    a = rnd(128, 64)

    def body(where):
        def f(x):
            ones = cnl.ndarray((128, 1), dtype=cnl.float32, buffer=where)
            ones[...] = cisa.memset((128, 1), 1.0, cnl.float32)
            return cnl.copy(cisa.nc_matmul(ones, x))  # the line
        return f
    np.testing.assert_allclose(classic(body(cnl.sbuf), a), a.sum(0, keepdims=True), rtol=1e-5,
                               atol=1e-5)     # (a sum of 128 values that may cancel)
    line = sys._getframe().f_lineno - 4
    with pytest.raises(SimError, match=r"nc_matmul: stationary must be an SBUF tile") as e:
        classic(body(cnl.psum), a)
    assert _line_of(e.value) == line

    def moving_in_psum(x):
        ones = cnl.ndarray((128, 1), dtype=cnl.float32, buffer=cnl.sbuf)
        ones[...] = cisa.memset((128, 1), 1.0, cnl.float32)
        xp = cnl.ndarray(x.shape, dtype=cnl.float32, buffer=cnl.psum)
        xp[...] = cisa.tensor_copy(x, dtype=cnl.float32)
        return cnl.copy(cisa.nc_matmul(ones, xp))
    with pytest.raises(SimError, match=r"nc_matmul: moving must be an SBUF tile"):
        classic(moving_in_psum, a)

    def language_level(x):
        ones = cnl.ndarray((128, 1), dtype=cnl.float32, buffer=cnl.psum)
        ones[...] = cisa.memset((128, 1), 1.0, cnl.float32)
        return cnl.copy(cnl.matmul(ones, x, transpose_x=True))
    np.testing.assert_allclose(classic(language_level, a), a.sum(0, keepdims=True), rtol=1e-5,
                               atol=1e-5)


# ---- an output-buffer error points at the kernel's return line -------------------------------
def test_output_not_in_hbm_is_located_at_the_return_line():
    """Mutation survivor of the location check: an output allocated on chip was reported at
    the caller of sim.run (the kernel had returned), not in the kernel file."""
    x = rnd(4, 8)

    def k(t):
        out = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(dst=out, src=nl.load(t))
        return out  # the line
    line = sys._getframe().f_lineno - 1
    with pytest.raises(SimError, match=r"kernel outputs must be allocated in nl.shared_hbm \(got "
                                       r"output 0 is in sbuf\)") as e:
        sim.simulate(k)(x)
    assert _line_of(e.value) == line

    def ok(t):
        out = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out, value=nl.load(t))
        return out
    np.testing.assert_array_equal(sim.simulate(ok)(x), x)


# ---- classic activation table: no current-only functions -------------------------------------
def test_classic_activation_table_has_no_current_only_functions():
    """gelu_apprx_sigmoid(_dx) are in the current table only (SH tbl-act-func); the classic
    table (S25) and neuronxcc.nki.language lack them. The nearest classic function passes."""
    a = rnd(8, 16)

    def act(op):
        def body(x):
            return cisa.activation(op=op, data=x)  # the line
        return body
    line = sys._getframe().f_lineno - 2
    classic(act(cnl.gelu_apprx_tanh), a)
    with pytest.raises(SimError, match=r"activation: nl\.gelu_apprx_sigmoid is not in the "
                                       r"classic activation-function table") as e:
        classic(act(cnl.gelu_apprx_sigmoid), a)
    assert _line_of(e.value) == line
    with pytest.raises(SimError, match=r"nl\.gelu_apprx_sigmoid_dx is not in the classic"):
        classic(lambda x: cnl.gelu_apprx_sigmoid_dx(x), a)

    def current_body(x):
        d = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=d, op=nl.gelu_apprx_sigmoid, data=x)
        return d
    got = current(current_body, a)
    np.testing.assert_allclose(got, a / (1 + np.exp(-1.702 * a)), rtol=1e-3, atol=1e-3)


def test_abs_max_abs_min_rules():
    """abs_max / abs_min: current-API ALU operators (SH tbl-aluop), documented "available only
    on NeuronCore-v4 (trn3) and newer" (SH nki.language abs_max) -- an error on the simulated
    trn1/trn2 at the ISA and nl.* level; a classic kernel gets the classic-table error. The
    operator of both tables (maximum) passes. The registry computes the documented signed
    value (y on a tie) for a future v4 target."""
    from nkigen.sim import ops

    a, b = rnd(8, 16), rnd(8, 16)
    np.testing.assert_allclose(
        classic(lambda x, y: cisa.tensor_tensor(x, y, op=cnl.maximum), a, b), np.maximum(a, b))
    with pytest.raises(SimError, match=r"tensor_tensor: nl\.abs_max is not in the classic ALU "
                                       r"operator table"):
        classic(lambda x, y: cisa.tensor_tensor(x, y, op=cnl.abs_max), a, b)
    with pytest.raises(SimError, match=r"nl\.abs_min is not in the classic ALU operator table"):
        classic(lambda x, y: cnl.abs_min(x, y), a, b)

    def isa_body(x, y):
        d = nl.ndarray(x.shape, dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=d, data1=x, data2=y, op=nl.abs_max)  # the line
        return d
    line = sys._getframe().f_lineno - 2
    for target in ("trn1", "trn2"):
        with pytest.raises(SimError, match=r"nl\.abs_max is available only on NeuronCore-v4 "
                                           r"\(trn3\) and newer") as e:
            sim.simulate(lambda x, y: _store(isa_body(nl.load(x), nl.load(y))),
                         target=target)(a, b)
        assert _line_of(e.value) == line
    with pytest.raises(SimError, match=r"nl\.abs_min is available only on NeuronCore-v4"):
        current(lambda x, y: nl.abs_min(x, y), a, b)
    x = np.array([-5.0, 1.0, 2.0, -3.0], np.float32)
    y = np.array([3.0, -1.0, -4.0, 3.0], np.float32)
    np.testing.assert_array_equal(ops.REGISTRY["abs_max"].fn(x, y), [-5.0, -1.0, -4.0, 3.0])
    np.testing.assert_array_equal(ops.REGISTRY["abs_min"].fn(x, y), [3.0, -1.0, 2.0, 3.0])


def _store(r):
    out = nl.ndarray(r.shape, dtype=r.dtype, buffer=nl.shared_hbm)
    nl.store(out, value=r)
    return out
