"""Instruction-level conformance (``nki.isa`` of both API generations): each test shows the
simulator enforcing one documented rule (a SimError naming the rule and the fix, with the last
legal value accepted) or computing the documented value. The rows that cite these tests are in
nkigen/sim/conformance/isa.py."""

from __future__ import annotations

import ml_dtypes
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

rng = np.random.default_rng(11)
F32 = np.float32


def rnd(*shape, lo=-2.0, hi=2.0, dtype=F32):
    return rng.uniform(lo, hi, shape).astype(dtype)


def run(body, *arrays, target="trn2"):
    """Load each array into SBUF, apply body(*tiles) -> tile, return the tile as NumPy."""
    def k(*xs):
        tiles = [nl.load(x) for x in xs]
        r = body(*tiles)
        out = nl.ndarray(r.shape, dtype=r.dtype, buffer=nl.shared_hbm)
        nl.store(out, value=r if r.buffer == nl.sbuf else nl.copy(r))
        return out
    return sim.simulate(k, target=target)(*arrays)


def raises(match, body, *arrays, target="trn2", exc=SimError):
    with pytest.raises(exc, match=match):
        run(body, *arrays, target=target)


def sb(shape, dtype=nl.float32):
    return nl.ndarray(shape, dtype=dtype, buffer=nl.sbuf)


def ps(shape, dtype=nl.float32):
    return nl.ndarray(shape, dtype=dtype, buffer=nl.psum)


def cast(t, dtype, buffer=None):
    d = nl.ndarray(t.shape, dtype=dtype, buffer=buffer or nl.sbuf)
    nisa.tensor_copy(dst=d, src=t)
    return d


def classic(body, *arrays, target="trn2"):
    """Run ``body(*tiles) -> tile`` as a classic (neuronxcc.nki) kernel."""
    def k(*xs):
        tiles = [cnl.load(x) for x in xs]
        r = body(*tiles)
        out = cnl.ndarray(r.shape, dtype=r.dtype, buffer=cnl.shared_hbm)
        cnl.store(out, value=r)
        return out
    return cnki.simulate_kernel(cnki.jit(k, platform_target=target), *arrays)


# ---- ALU operator table ------------------------------------------------------------------
def test_alu_op_outside_table_rejected():
    a = rnd(8, 16)

    def ts(op):
        def body(t):
            d = sb(t.shape)
            nisa.tensor_scalar(dst=d, data=t, op0=op, operand0=2.0)
            return d
        return body

    raises("op0=divide is not in the ALU operator table.*reciprocal", ts(nl.divide), a)
    np.testing.assert_allclose(run(ts(nl.multiply), a), a * 2)

    def tt(t):
        d = sb(t.shape)
        nisa.tensor_tensor(dst=d, data1=t, data2=t, op=nl.divide)
        return d
    raises("op=divide is not in the ALU operator table", tt, a)
    # the language-level nl.divide is not an ALU op: it is legal (several instructions)
    np.testing.assert_allclose(run(lambda t: nl.divide(t, t), a), np.ones_like(a))
    with pytest.raises(SimError, match="op0=divide is not in the ALU operator table"):
        classic(lambda t: cisa.tensor_scalar(t, np.divide, 2.0), a)
    np.testing.assert_allclose(classic(lambda t: cisa.tensor_scalar(t, np.multiply, 2.0), a),
                               a * 2)


def test_bitvec_needs_integer_dtypes():
    a = rnd(8, 16)
    ai = rng.integers(0, 100, (8, 16)).astype(np.int32)

    def body(t):
        d = sb(t.shape, t.dtype)
        nisa.tensor_tensor(dst=d, data1=t, data2=t, op=nl.bitwise_and)
        return d
    raises("bitvec operator bitwise_and needs integer", body, a)
    np.testing.assert_array_equal(run(body, ai), ai)


def test_right_shift_is_logical():
    a = np.array([[-8, 16, -1, 1 << 30]] * 2, dtype=np.int32)

    def body(t):
        d = sb(t.shape, nl.int32)
        nisa.tensor_scalar(dst=d, data=t, op0=nl.right_shift, operand0=1)
        return d
    want = (a.view(np.uint32) >> 1).view(np.int32)
    np.testing.assert_array_equal(run(body, a), want)
    assert run(body, a)[0, 0] == 0x7FFFFFFC

    def tt(t, s):
        d = sb(t.shape, nl.int32)
        nisa.tensor_tensor(dst=d, data1=t, data2=s, op=nl.right_shift)
        return d
    sh = np.full_like(a, 4)
    np.testing.assert_array_equal(run(tt, a, sh), (a.view(np.uint32) >> 4).view(np.int32))


def test_bitvec_scalar_operand():
    a = rng.integers(0, 1000, (8, 16)).astype(np.int32)

    def body(v):
        def b(t):
            d = sb(t.shape, nl.int32)
            nisa.tensor_scalar(dst=d, data=t, op0=nl.bitwise_and, operand0=v,
                               op1=nl.left_shift, operand1=2)
            return d
        return b
    np.testing.assert_array_equal(run(body(6), a), (a & 6) << 2)
    raises("operand0 must be an integer with a bitvec operator", body(6.0), a)


def test_reduction_ops_legal_table():
    a = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]], np.uint8)

    def red(op):
        def body(t):
            d = sb((t.shape[0], 1))
            nisa.tensor_reduce(dst=d, op=op, data=t, axis=1)
            return d
        return body
    np.testing.assert_array_equal(run(red(nl.logical_xor), a)[:, 0], [0, 1, 0, 1])
    raises("equal cannot be used as a reduction", red(nl.equal), a)
    raises("op=divide is not in the ALU operator table", red(nl.divide), a)


def test_power_runs_on_gpsimd_only():
    a, b = rnd(8, 16, lo=0.5, hi=2.0), rnd(8, 16, lo=0.0, hi=2.0)

    def body(engine):
        def f(x, y):
            d = sb(x.shape)
            nisa.tensor_tensor(dst=d, data1=x, data2=y, op=nl.power, engine=engine)
            return d
        return f
    raises("nl.power runs on the GpSimd engine only", body(nisa.vector_engine), a, b)
    np.testing.assert_allclose(run(body(nisa.unknown_engine), a, b), a ** b, rtol=1e-5)


def test_tensor_tensor_inputs_not_both_psum():
    a = rnd(8, 16)

    def body(t):
        p1, p2 = cast(t, nl.float32, nl.psum), cast(t, nl.float32, nl.psum)
        d = sb(t.shape)
        nisa.tensor_tensor(dst=d, data1=p1, data2=p2, op=nl.add)
        return d
    raises("data1 and data2 cannot both be in PSUM", body, a)

    def ok(t):
        p1 = cast(t, nl.float32, nl.psum)
        d = sb(t.shape)
        nisa.tensor_tensor(dst=d, data1=p1, data2=t, op=nl.add)
        return d
    np.testing.assert_allclose(run(ok, a), 2 * a)


def test_gpsimd_cannot_access_psum():
    a = rnd(8, 16)

    def body(buf):
        def f(t):
            d = nl.ndarray(t.shape, dtype=nl.float32, buffer=buf)
            nisa.tensor_copy(dst=d, src=t, engine=nisa.gpsimd_engine)
            return d
        return f
    raises("GpSimd engine cannot access PSUM", body(nl.psum), a)
    np.testing.assert_array_equal(run(body(nl.sbuf), a), a)


def test_tensor_tensor_shapes_match():
    a, b = rnd(8, 16), rnd(4, 16)

    def body(x, y):
        d = sb(x.shape)
        nisa.tensor_tensor(dst=d, data1=x, data2=y, op=nl.add)
        return d
    raises("partition dims differ", body, a, b)
    np.testing.assert_allclose(run(body, a, a), 2 * a)


# ---- tensor_scalar -----------------------------------------------------------------------
def _ts(**kw):
    def body(t):
        d = sb(t.shape, kw.pop("dtype", nl.float32))
        nisa.tensor_scalar(dst=d, data=t, **kw)
        return d
    return body


def test_tensor_scalar_gpsimd_rsqrt_only():
    a = rnd(8, 16, lo=0.5, hi=4.0)
    raises("GpSimd engine is only allowed for rsqrt",
           _ts(op0=nl.multiply, operand0=2.0, engine=nisa.gpsimd_engine), a)
    raises("GpSimd engine is only allowed for rsqrt",
           _ts(op0=nl.multiply, operand0=2.0, op1=nl.add, operand1=1.0,
               engine=nisa.gpsimd_engine), a)
    out = run(_ts(op0=nl.add, operand0=1e-5, op1=nl.rsqrt, operand1=0.0,
                  engine=nisa.gpsimd_engine), a)
    np.testing.assert_allclose(out, 1 / np.sqrt(a + 1e-5), rtol=1e-5)
    with pytest.raises(SimError, match="GpSimd engine is only allowed for rsqrt"):
        classic(lambda t: cisa.tensor_scalar(t, np.multiply, 2.0, engine=cisa.gpsimd_engine), a)


def test_tensor_scalar_scalar_engine_pairs():
    a = rnd(8, 16)
    raises(r"ScalarE on NeuronCore-v3 supports only \(multiply, add\)",
           _ts(op0=nl.subtract, operand0=1.0, engine=nisa.scalar_engine), a)
    np.testing.assert_allclose(run(_ts(op0=nl.multiply, operand0=2.0, op1=nl.add,
                                       operand1=1.0, engine=nisa.scalar_engine), a),
                               2 * a + 1, rtol=1e-6)


def test_tensor_scalar_scalar_engine_v2():
    a = rnd(8, 16, lo=0.5, hi=2.0)
    raises("ScalarE on NeuronCore-v2 supports only rsqrt, reciprocal and abs",
           _ts(op0=nl.multiply, operand0=2.0, engine=nisa.scalar_engine), a, target="trn1")
    np.testing.assert_allclose(run(_ts(op0=nl.reciprocal, operand0=None,
                                       engine=nisa.scalar_engine), a, target="trn1"),
                               1 / a, rtol=1e-6)


def test_tensor_scalar_same_op_class():
    a = rng.integers(0, 9, (8, 16)).astype(np.int32)
    raises("op0 and op1 must both be bitvec or both be arithmetic",
           _ts(op0=nl.add, operand0=1.0, op1=nl.bitwise_and, operand1=3, dtype=nl.int32), a)


def test_tensor_scalar_bitvec_vector_only():
    a = rng.integers(0, 9, (8, 16)).astype(np.int32)
    raises("bitvec operators run on the Vector engine only",
           _ts(op0=nl.bitwise_and, operand0=3, engine=nisa.gpsimd_engine, dtype=nl.int32), a)
    np.testing.assert_array_equal(
        run(_ts(op0=nl.bitwise_and, operand0=3, engine=nisa.vector_engine, dtype=nl.int32), a),
        a & 3)


def test_tensor_scalar_operands_float32():
    a = rnd(8, 16)
    raises("operand0 must be float32.*float16",
           _ts(op0=nl.multiply, operand0=np.float16(2)), a)
    raises("operand0 must be float32.*int32", _ts(op0=nl.multiply, operand0=np.int32(2)), a)
    # a Python literal is a compile-time immediate (nki-library kernels pass operand0=-1)
    np.testing.assert_allclose(run(_ts(op0=nl.multiply, operand0=-1), a), -a)

    def tile_op(dtype):
        def body(t):
            v = nl.ndarray((t.shape[0], 1), dtype=dtype, buffer=nl.sbuf)
            nisa.memset(dst=v, value=2.0)
            d = sb(t.shape)
            nisa.tensor_scalar(dst=d, data=t, op0=nl.add, operand0=1.0, op1=nl.multiply,
                               operand1=v)
            return d
        return body
    raises("operand1 must be float32.*bfloat16", tile_op(nl.bfloat16), a)
    np.testing.assert_allclose(run(tile_op(nl.float32), a), (a + 1) * 2, rtol=1e-6)
    np.testing.assert_allclose(run(_ts(op0=nl.multiply, operand0=np.float32(2)), a), a * 2)


def test_tensor_scalar_unary_operand():
    a = rnd(8, 16)
    raises("operand0 must be None or 0 when the operator is unary",
           _ts(op0=nl.abs, operand0=1.0), a)
    np.testing.assert_array_equal(run(_ts(op0=nl.abs, operand0=0), a), np.abs(a))
    np.testing.assert_array_equal(run(_ts(op0=nl.abs, operand0=None), a), np.abs(a))


def test_tensor_scalar_binary_operand_is_a_value():
    """A binary operator's operand is a scalar or a (P, 1) tile: operand0=None with nl.add
    (an operand dropped) is an error, not x + 0; 0.0 computes (isa.tensor_scalar.binary_operand,
    both APIs). The mutation campaign's None operand ran as an add of zero."""
    a = rnd(8, 16)
    raises("operand0 of the binary operator add must be a scalar or a \\(P, 1\\) tile",
           _ts(op0=nl.add, operand0=None), a)
    raises("operand1 of the binary operator multiply must be a scalar",
           _ts(op0=nl.add, operand0=1.0, op1=nl.multiply, operand1=None), a)
    np.testing.assert_array_equal(run(_ts(op0=nl.add, operand0=0.0), a), a)
    with pytest.raises(SimError, match="operand0 of the binary operator subtract"):
        classic(lambda t: cisa.tensor_scalar(t, np.subtract, None), a)
    np.testing.assert_array_equal(classic(lambda t: cisa.tensor_scalar(t, np.subtract, 1.0), a),
                                  a - np.float32(1.0))


def test_tensor_scalar_operand1_without_op1():
    a = rnd(8, 16)
    raises("operand1 must be None when op1 is None",
           _ts(op0=nl.add, operand0=1.0, operand1=2.0), a)


def test_tensor_scalar_operand_shape():
    a = rnd(8, 16)

    def body(w):
        def f(t):
            v = sb((t.shape[0], w))
            nisa.memset(dst=v, value=1.0)
            d = sb(t.shape)
            nisa.tensor_scalar(dst=d, data=t, op0=nl.add, operand0=v)
            return d
        return f
    raises(r"operand0 must be a scalar or a \(8, 1\) tile", body(2), a)
    np.testing.assert_allclose(run(body(1), a), a + 1)


def test_rsqrt_not_on_vector_engine():
    a = rnd(8, 16, lo=0.5, hi=2.0)
    raises("rsqrt does not run on the Vector engine",
           _ts(op0=nl.rsqrt, operand0=None, engine=nisa.vector_engine), a)
    np.testing.assert_allclose(run(_ts(op0=nl.rsqrt, operand0=None), a), 1 / np.sqrt(a),
                               rtol=1e-6)


# ---- activation --------------------------------------------------------------------------
def _act(op, **kw):
    def body(t):
        d = sb(t.shape)
        nisa.activation(dst=d, op=op, data=t, **kw)
        return d
    return body


def test_activation_function_table():
    a = rnd(8, 16)
    for op in (nl.cos, nl.tan, nl.floor):
        raises(f"op={op.__name__} is not in the ScalarE activation-function table", _act(op), a)
    np.testing.assert_allclose(run(_act(nl.exp), a), np.exp(a), rtol=1e-6)
    np.testing.assert_allclose(run(lambda t: nl.cos(t), a), np.cos(a), rtol=1e-6)
    with pytest.raises(SimError, match="not in the ScalarE activation-function table"):
        classic(lambda t: cisa.activation(op=np.cos, data=t), a)


def _act_reduce(op, api="activation", **kw):
    def body(t):
        d = sb(t.shape)
        r = sb((t.shape[0], 1))
        if api == "activation":
            nisa.activation(dst=d, op=nl.copy, data=t, reduce_op=op, reduce_res=r,
                            reduce_cmd=nisa.reduce_cmd.reset_reduce, **kw)
        else:
            nisa.activation_reduce(dst=d, op=nl.copy, data=t, reduce_op=op, reduce_res=r, **kw)
        return r
    return body


def test_activation_reduce_op_add_only():
    a = rnd(8, 16)
    raises("activation: reduce_op must be nl.add", _act_reduce(nl.maximum), a)
    np.testing.assert_allclose(run(_act_reduce(nl.add), a)[:, 0], a.sum(1), rtol=1e-5)


def test_activation_reduce_v2_add_only():
    a = rnd(8, 16)
    raises("activation_reduce: reduce_op must be nl.add on NeuronCore-v2",
           _act_reduce(nl.maximum, "activation_reduce"), a, target="trn1")
    np.testing.assert_array_equal(run(_act_reduce(nl.maximum, "activation_reduce"), a)[:, 0],
                                  a.max(1))


def test_activation_scale_float32():
    a = rnd(8, 16)

    def tile_scale(dtype):
        def body(t):
            s = nl.ndarray((t.shape[0], 1), dtype=dtype, buffer=nl.sbuf)
            nisa.memset(dst=s, value=2.0)
            d = sb(t.shape)
            nisa.activation(dst=d, op=nl.copy, data=t, scale=s)
            return d
        return body
    raises("scale must be float32 .err_activation_scale_invalid_type.*float16",
           tile_scale(nl.float16), a)
    raises("scale must be float32.*float16", _act(nl.copy, scale=np.float16(2)), a)
    np.testing.assert_allclose(run(_act(nl.copy, scale=2), a), 2 * a)   # literal immediate
    np.testing.assert_allclose(run(tile_scale(nl.float32), a), 2 * a)
    np.testing.assert_allclose(run(_act(nl.copy, scale=2.0), a), 2 * a)


def test_activation_bias_dtype_classic():
    a = rnd(8, 16)

    def body(dtype):
        def f(t):
            b = cisa.memset((8, 1), 1, dtype=dtype)
            return cisa.activation(op=np.exp, data=t, bias=b)
        return f
    with pytest.raises(SimError, match="bias must be a float32, float16 or bfloat16 vector"):
        classic(body(np.int8), a)
    with pytest.raises(SimError, match=r"bias must be a \(P, 1\) vector in the classic API"):
        classic(lambda t: cisa.activation(op=np.exp, data=t, bias=1.0), a)
    np.testing.assert_allclose(classic(body(cnl.bfloat16), a), np.exp(a + 1), rtol=1e-5)


def test_activation_scalar_bias_needs_v3():
    a = rnd(8, 16)
    raises("scalar bias needs NeuronCore-v3", _act(nl.exp, bias=1.0), a, target="trn1")
    np.testing.assert_allclose(run(_act(nl.exp, bias=1.0), a), np.exp(a + 1), rtol=1e-5)


def test_activation_reciprocal_bias_v2():
    a = rnd(8, 16, lo=0.5, hi=2.0)

    def body(t):
        b = sb((t.shape[0], 1))
        nisa.memset(dst=b, value=1.0)
        d = sb(t.shape)
        nisa.activation(dst=d, op=nl.reciprocal, data=t, bias=b)
        return d
    raises("reciprocal takes no bias on NeuronCore-v2", body, a, target="trn1")
    np.testing.assert_allclose(run(body, a), 1 / (a + 1), rtol=1e-6)


def test_activation_reduce_cmd_semantics():
    a = rnd(8, 16)
    rc = nisa.reduce_cmd

    def body(t):
        d = sb(t.shape)
        out = sb((t.shape[0], 4))
        for i, cmd in enumerate((rc.reset_reduce, rc.idle, rc.reduce, rc.reset)):
            # the idle call sums 3x the data: had it touched the registers, column 1 would
            # show 3s (or 4s), not s
            nisa.activation(dst=d, op=nl.copy, data=t, reduce_op=nl.add,
                            scale=3.0 if cmd is rc.idle else 1.0,
                            reduce_res=out[:, i:i + 1], reduce_cmd=cmd)
        return out
    r = run(body, a)
    s = a.sum(1)
    np.testing.assert_allclose(r[:, 0], s, rtol=1e-5)       # reset_reduce
    np.testing.assert_allclose(r[:, 1], s, rtol=1e-5)       # idle: registers untouched
    np.testing.assert_allclose(r[:, 2], 2 * s, rtol=1e-5)   # reduce: accumulate
    np.testing.assert_array_equal(r[:, 3], 0)               # reset: zero only


def test_activation_out_of_range_invalid():
    a = np.array([[0.5, 1.0, 3.0, 9.0]] * 2, F32)

    def k(x):
        t = nl.load(x)
        d = sb(t.shape)
        nisa.activation(dst=d, op=nl.sin, data=t)
        out = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out, value=d)
        return out
    res = sim.run(k, [a])
    got = res.outputs[0]
    np.testing.assert_allclose(got[:, :3], np.sin(a[:, :3]), rtol=1e-6)   # 3.0 < pi: valid
    assert np.isnan(got[:, 3]).all()                                      # 9.0 > pi: invalid
    assert any("outside its valid range" in w for w in res.warnings)


def test_nl_sin_range_reduced():
    a = np.array([[9.0, -20.0, 100.0, 0.5]] * 2, F32)
    np.testing.assert_allclose(run(lambda t: nl.sin(t), a), np.sin(a), rtol=1e-5, atol=1e-6)


def test_activation_scale_bias_numerics():
    a, s, b = rnd(8, 16), rnd(8, 1), rnd(8, 1)

    def body(t, st, bt):
        d = sb(t.shape)
        nisa.activation(dst=d, op=nl.tanh, data=t, scale=st, bias=bt)
        return d
    np.testing.assert_allclose(run(body, a, s, b), np.tanh(a * s + b), rtol=1e-5, atol=1e-6)


# ---- tensor_reduce / scalar_tensor_tensor / scan ------------------------------------------
def test_tensor_reduce_negate_bitvec():
    a = rng.integers(0, 64, (8, 16)).astype(np.int32)

    def body(neg):
        def f(t):
            d = sb((t.shape[0], 1), nl.int32)
            nisa.tensor_reduce(dst=d, op=nl.bitwise_or, data=t, axis=1, negate=neg)
            return d
        return f
    raises("negate applies only to arithmetic reduction operators", body(True), a)
    np.testing.assert_array_equal(run(body(False), a)[:, 0], np.bitwise_or.reduce(a, axis=1))


def test_tensor_reduce_axes():
    a = rnd(8, 4, 4)

    def body(axis):
        def f(t):
            d = sb((t.shape[0], 4) if axis == 2 else (t.shape[0], 1))
            nisa.tensor_reduce(dst=d, op=nl.add, data=t, axis=axis)
            return d
        return f
    raises("reduction axes must be trailing contiguous free dims", body(0), a)
    raises("reduction axes must be trailing contiguous free dims", body(1), a)
    np.testing.assert_allclose(run(body(2), a), a.sum(2), rtol=1e-5)
    np.testing.assert_allclose(run(body((1, 2)), a)[:, 0], a.sum((1, 2)), rtol=1e-5)


def test_reduction_axis_is_an_int_or_ints():
    """axis is an int or a tuple/list of ints (S25 nl.sum 'int or tuple/list of ints'; SH
    tensor_reduce axis): None or a string is an error naming the argument, not a crash inside
    the simulator (classic nl.sum(axis=None)) nor a silent int('1') (isa.reduce.axis_type)."""
    a = rnd(8, 4)

    def body(axis):
        def f(t):
            d = sb((t.shape[0], 1))
            nisa.tensor_reduce(dst=d, op=nl.add, data=t, axis=axis)
            return d
        return f
    raises("axis must be an int or a tuple/list of ints", body(None), a)
    raises("axis must be an int or a tuple/list of ints", body("1"), a)
    np.testing.assert_allclose(run(body(np.int64(1)), a)[:, 0], a.sum(1), rtol=1e-6)
    np.testing.assert_allclose(run(body([1]), a)[:, 0], a.sum(1), rtol=1e-6)
    with pytest.raises(SimError, match="nl.sum: axis must be an int or a tuple/list of ints"):
        classic(lambda t: cnl.sum(t, axis=None), a)
    np.testing.assert_allclose(classic(lambda t: cnl.sum(t, axis=[1]), a)[:, 0], a.sum(1),
                               rtol=1e-6)


def test_tensor_reduce_negate_computes():
    a = rnd(8, 16)

    def body(t):
        d = sb((t.shape[0], 1))
        nisa.tensor_reduce(dst=d, op=nl.maximum, data=t, axis=1, negate=True)
        return d
    np.testing.assert_array_equal(run(body, a)[:, 0], -a.max(1))


def test_scalar_tensor_tensor_no_bitvec():
    a, b = rnd(8, 16), rnd(8, 16)
    ai = rng.integers(0, 9, (8, 16)).astype(np.int32)

    def body(op0):
        def f(x, y):
            d = sb(x.shape, x.dtype)
            nisa.scalar_tensor_tensor(dst=d, data=x, op0=op0, operand0=3, op1=nl.add,
                                      operand1=y)
            return d
        return f
    raises("op0 must be an arithmetic operator", body(nl.bitwise_and), ai, ai)

    def ok(x, y):
        d = sb(x.shape)
        nisa.scalar_tensor_tensor(dst=d, data=x, op0=nl.subtract, operand0=1.0,
                                  op1=nl.multiply, operand1=y)
        return d
    np.testing.assert_allclose(run(ok, a, b), (a - 1) * b, rtol=1e-6)


def test_scan_ops_arithmetic_binary():
    a, b = rnd(8, 16), rnd(8, 16)

    def body(op0, initial=0.0):
        def f(x, y):
            d = sb(x.shape)
            nisa.tensor_tensor_scan(dst=d, data0=x, data1=y, initial=initial, op0=op0,
                                    op1=nl.add)
            return d
        return f
    raises("op0 must be a binary operator", body(nl.abs), a, b)
    raises("initial must be a float32 scalar", body(nl.multiply, np.int32(0)), a, b)
    assert np.array_equal(run(body(nl.multiply, 0), a, b), run(body(nl.multiply), a, b))
    got = run(body(nl.multiply), a, b)
    want = np.zeros_like(a)
    prev = np.zeros(8, F32)
    for i in range(16):
        prev = a[:, i] * prev + b[:, i]
        want[:, i] = prev
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---- TensorE / VectorE transpose ------------------------------------------------------------
def test_nc_transpose_dst_dtype_equals_data():
    a = rnd(16, 32)

    def body(dst_dtype):
        def f(t):
            tb = cast(t, nl.bfloat16)
            d = ps((32, 16), dst_dtype)
            nisa.nc_transpose(dst=d, data=tb, engine=nisa.tensor_engine)
            return d
        return f
    raises("dst dtype must equal data dtype.*float32 vs bfloat16", body(nl.float32), a)
    want = a.astype(ml_dtypes.bfloat16).T
    np.testing.assert_array_equal(run(body(nl.bfloat16), a), want)


def test_nc_transpose_fp8_tensor_engine_v3():
    """S29 trn2 arch guide (Built-in Transpose Support note): TensorE transpose of float8 data
    writes 16-bit PSUM elements on NeuronCore-v3, so no float8 dst holds it; bfloat16 (the
    documented 16-bit case) and the VectorE transpose stay legal."""
    a = rnd(32, 32)

    def body(dtype, engine):
        def f(t):
            tb = cast(t, dtype)
            d = ps((32, 32), dtype)
            nisa.nc_transpose(dst=d, data=tb, engine=engine)
            out = nl.ndarray((32, 32), dtype=dtype, buffer=nl.sbuf)
            nisa.tensor_copy(dst=out, src=d)
            return out
        return f
    want = a.astype(ml_dtypes.bfloat16).T
    np.testing.assert_array_equal(run(body(nl.bfloat16, nisa.tensor_engine), a), want)
    raises("TensorE transpose of float8_e4m3 data writes 16-bit elements to PSUM",
           body(nl.float8_e4m3, nisa.tensor_engine), a)
    raises("TensorE transpose of float8_e5m2", body(nl.float8_e5m2, nisa.tensor_engine), a)
    fp8 = a.astype(ml_dtypes.float8_e4m3).T
    np.testing.assert_array_equal(run(body(nl.float8_e4m3, nisa.vector_engine), a), fp8)


def test_nc_transpose_tensor_engine_v2_is_float32():
    """SH trn2 arch guide "Built-in Transpose Support": 16-bit PSUM output of a TensorE
    transpose is NeuronCore-v3 transpose mode; on NeuronCore-v2 the result is float32 (SH
    nc_matmul: dst float32), so with dst = data dtype (nki 0.3) only float32 data transposes
    on TensorE there. bfloat16 passes on trn2; float32 passes on both; VectorE stays legal."""
    a = rnd(32, 32)

    def body(dtype, engine):
        def f(t):
            tb = cast(t, dtype)
            d = ps((32, 32), dtype)
            nisa.nc_transpose(dst=d, data=tb, engine=engine)
            out = nl.ndarray((32, 32), dtype=nl.float32, buffer=nl.sbuf)
            nisa.tensor_copy(dst=out, src=d)
            return out
        return f
    want = a.astype(ml_dtypes.bfloat16).astype(F32).T
    np.testing.assert_array_equal(run(body(nl.bfloat16, nisa.tensor_engine), a), want)
    raises("TensorE transpose on NeuronCore-v2 writes float32 PSUM.*bfloat16 on trn1",
           body(nl.bfloat16, nisa.tensor_engine), a, target="trn1")
    raises("NeuronCore-v2 writes float32 PSUM.*float16", body(nl.float16, nisa.tensor_engine),
           a, target="trn1")
    np.testing.assert_array_equal(run(body(nl.float32, nisa.tensor_engine), a, target="trn1"),
                                  a.T)
    np.testing.assert_array_equal(run(body(nl.bfloat16, nisa.vector_engine), a, target="trn1"),
                                  want)


def test_classic_nc_transpose_dtype_casts():
    a = rnd(16, 32)

    def body(t):
        tb = cisa.tensor_copy(t, dtype=cnl.bfloat16)
        return cisa.tensor_copy(cisa.nc_transpose(tb, dtype=np.float32,
                                                  engine=cisa.tensor_engine))
    got = classic(body, a)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, a.astype(ml_dtypes.bfloat16).astype(F32).T)


def _transpose_kernels(x, eye, target):
    def nc(t, e):
        d = ps((4, 4))
        nisa.nc_transpose(dst=d, data=t, engine=nisa.tensor_engine)
        return d

    def mm(t, e):
        d = ps((4, 4))
        nisa.nc_matmul(dst=d, stationary=t, moving=e, is_transpose=True)
        return d
    return run(nc, x, eye, target=target), run(mm, x, eye, target=target)


def test_tensor_engine_transpose_nan_per_generation():
    x = rnd(4, 4)
    x[0, 1] = np.nan
    x[2, 3] = np.inf
    eye = np.eye(4, dtype=F32)
    for got in _transpose_kernels(x, eye, "trn2"):          # NeuronCore-v3: bit-accurate
        np.testing.assert_array_equal(got, x.T)
    for got in _transpose_kernels(x, eye, "trn1"):          # NeuronCore-v2: matmul, x * 0
        assert np.isnan(got[1]).all() and np.isnan(got[3, [0, 1, 3]]).all()
        assert got[3, 2] == np.inf
        np.testing.assert_array_equal(got[[0, 2]], x.T[[0, 2]])


def test_nc_transpose_size_limits():
    def body(n):
        def f(t):
            d = sb((n, n))
            nisa.nc_transpose(dst=d, data=t, engine=nisa.vector_engine)
            return d
        return f
    raises("vector engine transposes at most 32x32", body(33), rnd(33, 33))
    a = rnd(32, 32)
    np.testing.assert_array_equal(run(body(32), a), a.T)


def test_nc_transpose_tensor_engine_memory():
    a = rnd(16, 16)

    def body(t):
        d = sb((16, 16))
        nisa.nc_transpose(dst=d, data=t, engine=nisa.tensor_engine)
        return d
    raises("TensorE writes PSUM only", body, a)


# ---- nc_matmul -----------------------------------------------------------------------------
def _mm(k=16, m=8, n=32, sdt=nl.float32, mdt=None, ddt=nl.float32, dbuf=None, **kw):
    def body(s, mv):
        s2 = cast(s, sdt) if sdt is not nl.float32 else s
        m2 = cast(mv, mdt or sdt) if (mdt or sdt) is not nl.float32 else mv
        d = nl.ndarray((m, n), dtype=ddt, buffer=dbuf or nl.psum)
        nisa.nc_matmul(dst=d, stationary=s2, moving=m2, **kw)
        return d
    return body


def _ab(k=16, m=8, n=32):
    return rnd(k, m), rnd(k, n)


def test_matmul_fp8_e4m3fn_needs_v4():
    a, b = _ab()
    raises("float8_e4m3fn .OCP FP8. needs NeuronCore-v4", _mm(sdt=nl.float8_e4m3fn), a, b)
    q = lambda v: v.astype(ml_dtypes.float8_e4m3).astype(F32)   # noqa: E731
    np.testing.assert_allclose(run(_mm(sdt=nl.float8_e4m3), a, b), q(a).T @ q(b), rtol=1e-5,
                               atol=1e-5)


def test_matmul_fp32_pairs_with_fp32():
    a, b = _ab()
    raises("float32 operands must be paired with float32", _mm(mdt=nl.bfloat16), a, b)


def test_matmul_tiling_needs_both():
    a, b = _ab()
    raises("tile_position and tile_size must both be set", _mm(tile_position=(0, 0)), a, b)
    raises("tile_position and tile_size must both be set", _mm(tile_size=(64, 128)), a, b)


def test_matmul_tile_size_per_generation():
    a, b = _ab(k=32)
    kw = dict(k=32, tile_position=(0, 0), tile_size=(32, 128))
    raises(r"tile_size row size must be one of \[64, 128\] on NeuronCore-v2", _mm(**kw), a, b,
           target="trn1")
    np.testing.assert_allclose(run(_mm(**kw), a, b), a.T @ b, rtol=1e-5)
    np.testing.assert_allclose(run(_mm(k=32, tile_position=(64, 0), tile_size=(64, 128)),
                                   a, b, target="trn1"), a.T @ b, rtol=1e-5)


def test_matmul_tile_position():
    a, b = _ab()
    raises("tile_position start row must be a multiple of 64",
           _mm(tile_position=(32, 0), tile_size=(64, 128)), a, b)
    raises(r"start row must be a multiple of 64 with start \+ size <= 128",
           _mm(tile_position=(128, 0), tile_size=(64, 128)), a, b)
    np.testing.assert_allclose(run(_mm(tile_position=(64, 0), tile_size=(64, 128)), a, b),
                               a.T @ b, rtol=1e-5)


def test_matmul_stationary_fits_tile():
    a, b = _ab(k=64)
    raises(r"stationary tile \[64, 8\] exceeds tile_size \[32, 128\]",
           _mm(k=64, tile_position=(0, 0), tile_size=(32, 128)), a, b)
    np.testing.assert_allclose(run(_mm(k=64, tile_position=(0, 0), tile_size=(64, 128)), a, b),
                               a.T @ b, rtol=1e-5)


def test_classic_matmul_tiling():
    a, b = _ab(k=32)

    def body(t):
        return lambda s, mv: cisa.tensor_copy(cisa.nc_matmul(s, mv, tile_position=(0, 0),
                                                             tile_size=(t, 128)))
    with pytest.raises(SimError, match=r"one of \[64, 96, 128\] on NeuronCore-v2"):
        classic(body(32), a, b, target="trn1")
    np.testing.assert_allclose(classic(body(32), a, b), a.T @ b, rtol=1e-5)


def test_matmul_accumulate_true_needs_matmul_init():
    a, b = _ab()

    def body(init):
        def f(s, mv):
            d = ps((8, 32))
            if init == "memset":
                nisa.memset(dst=d, value=0.0)
            elif init == "matmul":
                nisa.nc_matmul(dst=d, stationary=s, moving=mv, accumulate=False)
            nisa.nc_matmul(dst=d, stationary=s, moving=mv, accumulate=True)
            return d
        return f
    raises("accumulate=True on a PSUM location no earlier nc_matmul wrote", body(None), a, b)
    raises("accumulate=True on a PSUM location no earlier nc_matmul wrote.*accumulate=False",
           body("memset"), a, b)
    np.testing.assert_allclose(run(body("matmul"), a, b), 2 * (a.T @ b), rtol=1e-5)


def test_matmul_accumulate_none_first_overwrites():
    a, b = _ab()

    def body(s, mv):
        d = ps((8, 32))
        nisa.memset(dst=d, value=5.0)
        out = sb((8, 64))
        nisa.nc_matmul(dst=d, stationary=s, moving=mv)
        nisa.tensor_copy(dst=out[:, 0:32], src=d)
        nisa.nc_matmul(dst=d, stationary=s, moving=mv)
        nisa.tensor_copy(dst=out[:, 32:64], src=d)
        return out
    got = run(body, a, b)
    np.testing.assert_allclose(got[:, :32], a.T @ b, rtol=1e-5)
    np.testing.assert_allclose(got[:, 32:], 2 * (a.T @ b), rtol=1e-5)


def test_matmul_accumulate_false_overwrites():
    a, b = _ab()

    def body(s, mv):
        d = ps((8, 32))
        nisa.nc_matmul(dst=d, stationary=s, moving=mv)
        nisa.nc_matmul(dst=d, stationary=s, moving=mv)          # accumulates (2x)
        nisa.nc_matmul(dst=d, stationary=s, moving=mv, accumulate=False)
        out = sb((8, 32))
        nisa.tensor_copy(dst=out, src=d)
        return out
    np.testing.assert_allclose(run(body, a, b), a.T @ b, rtol=1e-5)


def test_activation_reads_psum_with_reduce():
    a, b = _ab()

    def body(s, mv):
        d = ps((8, 32))
        nisa.nc_matmul(dst=d, stationary=s, moving=mv)
        bias = sb((8, 1))
        nisa.memset(dst=bias, value=-1.5)
        out = sb((8, 33))
        nisa.activation(dst=out[:, 0:32], op=nl.exp, data=d, bias=bias, scale=0.5,
                        reduce_op=nl.add, reduce_res=out[:, 32:33],
                        reduce_cmd=nisa.reduce_cmd.reset_reduce)
        return out
    got = run(body, a, b)
    want = np.exp(0.5 * (a.T @ b) - 1.5)
    np.testing.assert_allclose(got[:, :32], want, rtol=1e-5)
    np.testing.assert_allclose(got[:, 32], want.sum(axis=1), rtol=1e-5)


def test_tensor_reduce_reads_psum():
    a, b = _ab()

    def body(s, mv):
        d = ps((8, 32))
        nisa.nc_matmul(dst=d, stationary=s, moving=mv)
        out = sb((8, 1))
        nisa.tensor_reduce(dst=out, op=nl.maximum, data=d, axis=1, keepdims=True, negate=True)
        return out
    np.testing.assert_allclose(run(body, a, b)[:, 0], -(a.T @ b).max(axis=1), rtol=1e-5)


def test_matmul_size_limits():
    raises("moving free size exceeds gemm_moving_fmax=512", _mm(k=1, m=1, n=513),
           *_ab(k=1, m=1, n=513))
    a, b = _ab(k=1, m=1, n=512)
    np.testing.assert_allclose(run(_mm(k=1, m=1, n=512), a, b), a.T @ b, rtol=1e-5)
    # stationary free size 129 would give a 129-partition dst: rejected at the allocation
    raises("exceeds 128", _mm(k=1, m=129, n=8), *_ab(k=1, m=129, n=8))


def test_matmul_memory_types():
    a, b = _ab()
    raises("dst must be in PSUM", _mm(dbuf=nl.sbuf), a, b)

    def body(s, mv):
        sp = cast(s, nl.float32, nl.psum)
        d = ps((8, 32))
        nisa.nc_matmul(dst=d, stationary=sp, moving=mv)
        return d
    raises("stationary must be in SBUF", body, a, b)


def test_matmul_dst_float32():
    a, b = _ab()
    raises("dst must be float32 PSUM", _mm(sdt=nl.bfloat16, ddt=nl.bfloat16), a, b)


def test_matmul_double_row():
    a, b = rnd(16, 2, 4), rnd(16, 2, 32)
    dr = nisa.matmul_perf_mode.double_row

    def body(dtype=nl.float8_e5m2, flat=False):
        def f(s, mv):
            s2, m2 = cast(s, dtype), cast(mv, dtype)
            if flat:
                s2 = s2.reshape((16, 8))
            d = ps((4, 32))
            nisa.nc_matmul(dst=d, stationary=s2, moving=m2, perf_mode=dr)
            return d
        return f
    raises("double_row is not supported on NeuronCore-v2", body(), a, b, target="trn1")
    raises("double_row needs float8_e4m3/float8_e5m2 operands", body(nl.bfloat16), a, b)
    raises(r"needs stationary laid out \[K, 2, F\]", body(flat=True), a, b)
    q = lambda v: v.astype(ml_dtypes.float8_e5m2).astype(F32)   # noqa: E731
    np.testing.assert_allclose(run(body(), a, b), np.einsum("kli,klj->ij", q(a), q(b)),
                               rtol=1e-5, atol=1e-5)


def _mm_trace(sdt, st, mv, **kw):
    """The nc_matmul record of one [K, M] x [K, N] matmul (values simulated)."""
    def k(s, m):
        s2, m2 = cast(nl.load(s), sdt), cast(nl.load(m), sdt)
        d = ps((st.shape[-1], mv.shape[-1]))
        nisa.nc_matmul(dst=d, stationary=s2, moving=m2, **kw)
        out = nl.ndarray(d.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out, value=nl.copy(d))
        return out
    res = sim.run(k, [st, mv], target="trn2")
    return res, next(i for i in res.instrs if i.op == "nc_matmul")


def test_matmul_onezero_hint_halves_fp32_cost_and_must_be_true():
    from nkigen.hw import target
    from nkigen.sim.cost import DEFAULT_PARAMS
    from nkigen.sim.cost_rules import _matmul
    ones, mv = np.ones((128, 1), F32), rnd(128, 512)
    _, plain = _mm_trace(nl.float32, ones, mv)
    res, hinted = _mm_trace(nl.float32, ones, mv, is_stationary_onezero=True)
    t = target("trn2")
    assert _matmul(plain, t, DEFAULT_PARAMS) == 4 * 512       # fp32: 4x
    assert _matmul(hinted, t, DEFAULT_PARAMS) == 2 * 512      # hinted fp32: 2x (S25/S29 "2x")
    np.testing.assert_allclose(res.outputs[0], mv.sum(axis=0, keepdims=True), rtol=1e-5,
                               atol=1e-5)
    _, bf = _mm_trace(nl.bfloat16, ones, mv, is_stationary_onezero=True)
    assert not bf.attrs.get("onezero") and _matmul(bf, t, DEFAULT_PARAMS) == 512   # no impact
    with pytest.raises(SimError, match="is_stationary_onezero=True but the stationary"):
        _mm_trace(nl.float32, np.full((128, 1), 0.5, F32), mv, is_stationary_onezero=True)
    with pytest.raises(SimError, match="is_moving_onezero=True but the moving"):
        _mm_trace(nl.float32, ones, mv, is_moving_onezero=True)


def test_double_row_counts_the_doubled_contraction_at_the_fp8_peak():
    from nkigen.hw import target
    from nkigen.sim.cost import matmul_flops, peak_flops_per_ns
    dr = nisa.matmul_perf_mode.double_row
    _, ins = _mm_trace(nl.float8_e4m3, rnd(128, 2, 128), rnd(128, 2, 512), perf_mode=dr)
    assert ins.attrs.get("double_row") and matmul_flops(ins) == 2 * 256 * 128 * 512
    t2, t1 = target("trn2"), target("trn1")
    assert peak_flops_per_ns(t2, "float8_e4m3") == 2 * peak_flops_per_ns(t2, "bfloat16")
    assert peak_flops_per_ns(t1, "float8_e4m3") == peak_flops_per_ns(t1, "bfloat16")


# ---- DMA -----------------------------------------------------------------------------------
def _dt(src_dtype, dst_dtype=None, axes=None, **kw):
    def body(t):
        s = cast(t, src_dtype)
        d = sb((t.shape[1], t.shape[0]), dst_dtype or src_dtype)
        nisa.dma_transpose(dst=d, src=s, axes=axes, **kw)
        return d
    return body


def test_dma_transpose_dtype_sizes():
    a = rnd(16, 8)
    raises("DMA transpose supports 2-byte and 4-byte dtypes only.*float8_e4m3",
           _dt(nl.float8_e4m3), a)
    raises("DMA transpose supports 2-byte and 4-byte dtypes only.*int8", _dt(nl.int8), a)
    np.testing.assert_array_equal(run(_dt(nl.bfloat16), a),
                                  a.astype(ml_dtypes.bfloat16).T)
    np.testing.assert_array_equal(run(_dt(nl.float32), a), a.T)


def test_dma_transpose_permutations():
    raises(r"unsupported permutation", _dt(nl.float32, axes=(0, 1)), rnd(16, 8))


def test_dma_transpose_dtype_equal():
    raises("src and dst dtypes differ", _dt(nl.bfloat16, nl.float32), rnd(16, 8))


def test_dma_transpose_hwdge():
    hw = dict(dge_mode=nisa.dge_mode.hwdge)
    raises("a 2-D source must have 16 rows", _dt(nl.bfloat16, **hw), rnd(8, 8))
    raises("dge_mode=hwdge needs NeuronCore-v3", _dt(nl.bfloat16, **hw), rnd(16, 8),
           target="trn1")
    a = rnd(16, 8)
    np.testing.assert_array_equal(run(_dt(nl.bfloat16, **hw), a),
                                  a.astype(ml_dtypes.bfloat16).T)


def test_dma_copy_hwdge_v3():
    a = rnd(8, 16)

    def body(t):
        d = sb(t.shape)
        nisa.dma_copy(dst=d, src=t, dge_mode=nisa.dge_mode.hwdge)
        return d
    raises("dge_mode=hwdge needs NeuronCore-v3", body, a, target="trn1")
    np.testing.assert_array_equal(run(body, a), a)


def test_dma_cannot_access_psum():
    a = rnd(8, 16)

    def body(t):
        p = cast(t, nl.float32, nl.psum)
        d = sb(t.shape)
        nisa.dma_copy(dst=d, src=p)
        return d
    raises("DMA cannot access PSUM", body, a)


def test_dma_copy_casts():
    a = rnd(8, 16)

    def body(t):
        d = sb(t.shape, nl.bfloat16)
        nisa.dma_copy(dst=d, src=t)
        return d
    np.testing.assert_array_equal(run(body, a), a.astype(ml_dtypes.bfloat16))


def test_dma_copy_element_counts():
    a = rnd(8, 16)

    def body(t):
        d = sb((8, 15))
        nisa.dma_copy(dst=d, src=t)
        return d
    raises("dst and src element counts differ", body, a)


def test_vector_offset_row_stride_is_the_base_tensors():
    """SH nki/deep-dives/nki-aps.rst "Vector Dynamic Access" (nki 0.3): the
    hardware scales vector_offset by the base tensor's dim-0 stride and ignores the pattern's
    leading step, so the two must agree; a flat-index gather reshapes the table first."""
    table = rnd(6, 5)
    ids = np.array([[4], [0], [3]], np.int32)     # rows for the [6, 5] table
    flat = np.array([[29], [0], [17]], np.int32)  # flat element indices

    def gather(view_of, pattern):
        def k(t, i):
            it = nl.ndarray((3, 1), dtype=nl.int32, buffer=nl.sbuf)
            nisa.dma_copy(dst=it, src=i)
            g = nl.ndarray(pattern_shape(pattern), dtype=nl.float32, buffer=nl.sbuf)
            nisa.dma_copy(dst=g, src=view_of(t).ap(pattern=pattern, offset=0, vector_offset=it,
                                                   indirect_dim=0))
            out = nl.ndarray(g.shape, dtype=nl.float32, buffer=nl.shared_hbm)
            nisa.dma_copy(dst=out, src=g)
            return out
        return k

    def pattern_shape(pattern):
        return tuple(int(n) for _, n in pattern)

    # legal: step 5 = the row stride of the [6, 5] table
    got = sim.simulate(gather(lambda t: t, [[5, 3], [1, 5]]))(table, ids)
    np.testing.assert_array_equal(got, table[ids[:, 0]])
    # legal: a flat gather through a (30, 1) reshape, whose row stride is 1
    got = sim.simulate(gather(lambda t: t.reshape((30, 1)), [[1, 3], [1, 1]]))(table, flat)
    np.testing.assert_array_equal(got[:, 0], table.reshape(-1)[flat[:, 0]])
    # illegal: step 1 on the [6, 5] table (the hardware would read rows 29, 0, 17 times 5)
    with pytest.raises(SimError, match="must be the base tensor's row stride.*got step 1"):
        sim.simulate(gather(lambda t: t, [[1, 3], [1, 1]]))(table, flat)
    with pytest.raises(SimError, match="got step 4"):
        sim.simulate(gather(lambda t: t, [[4, 3], [1, 4]]))(table, ids)


# ---- tensor_copy / memset / iota / affine_select --------------------------------------------
def test_tensor_copy_scalar_engine_v2():
    a = rnd(8, 16)

    def body(t):
        d = sb(t.shape)
        nisa.tensor_copy(dst=d, src=t, engine=nisa.scalar_engine)
        return d
    raises("no ScalarE tensor_copy on NeuronCore-v2.*activation", body, a, target="trn1")
    np.testing.assert_array_equal(run(body, a), a)


def test_tensor_copy_bit_exact_same_dtype():
    a = np.array([[2**31 - 1, -(2**31), 16777217, 3]] * 2, np.int32)

    def body(t):
        d = sb(t.shape, nl.int32)
        nisa.tensor_copy(dst=d, src=t, engine=nisa.vector_engine)
        return d
    np.testing.assert_array_equal(run(body, a), a)


def test_memset_value_constant():
    a = rnd(8, 16)

    def body(v):
        def f(t):
            d = sb(t.shape)
            nisa.memset(dst=d, value=t if v is None else v)
            return d
        return f
    raises("value must be a compile-time constant number", body(None), a)
    np.testing.assert_array_equal(run(body(3.0), a), np.full_like(a, 3.0))


def test_memset_engines():
    a = rnd(8, 16)

    def body(t):
        d = sb(t.shape)
        nisa.memset(dst=d, value=1.0, engine=nisa.scalar_engine)
        return d
    raises("engine scalar not allowed", body, a)


def test_iota_dst_sbuf():
    def body(t):
        d = ps((8, 8), nl.int32)
        nisa.iota(dst=d, pattern=[[1, 8]], offset=0, channel_multiplier=8)
        return d
    raises("dst must be in SBUF", body, rnd(8, 8))


def test_iota_pattern_count():
    def body(n):
        def f(t):
            d = sb((8, 8), nl.int32)
            nisa.iota(dst=d, pattern=[[1, n]], offset=3, channel_multiplier=8)
            return d
        return f
    raises("pattern element count must equal elements per partition", body(7), rnd(8, 8))
    np.testing.assert_array_equal(run(body(8), rnd(8, 8)),
                                  3 + np.arange(64, dtype=np.int32).reshape(8, 8))


def test_affine_select_on_false_float32():
    a = rnd(8, 8)

    def body(v):
        def f(t):
            d = sb(t.shape)
            nisa.affine_select(dst=d, pattern=[[-1, 8]], channel_multiplier=1, on_true_tile=t,
                               on_false_value=v, cmp_op=nl.greater_equal)
            return d
        return f
    raises("on_false_value must be float32", body(np.int32(-9984)), a)
    want = np.where(np.arange(8)[:, None] >= np.arange(8)[None, :], a, -9984.0)
    np.testing.assert_array_equal(run(body(-9984.0), a), want)
    np.testing.assert_array_equal(run(body(-9984), a), want)          # literal immediate


def test_affine_select_sbuf_only():
    def body(t):
        p = cast(t, nl.float32, nl.psum)
        d = sb(t.shape)
        nisa.affine_select(dst=d, pattern=[[-1, 8]], channel_multiplier=1, on_true_tile=p,
                           on_false_value=0.0)
        return d
    raises("on_true_tile must be in SBUF", body, rnd(8, 8))


# ---- less common Vector / GpSimd instructions -------------------------------------------------
def _rs(bound_dtype=nl.float32, scalar=False, on_false=None, comp=None, red=None, tdt=None):
    def body(t):
        tt = cast(t, tdt) if tdt else t
        lo, hi = sb((t.shape[0], 1), bound_dtype), sb((t.shape[0], 1), bound_dtype)
        nisa.memset(dst=lo, value=4.0)
        nisa.memset(dst=hi, value=9.0)
        d = sb(t.shape)
        mx = sb((t.shape[0], 1))
        kw = {} if on_false is None else {"on_false_value": on_false}
        nisa.range_select(dst=d, on_true_tile=tt, comp_op0=comp or nl.greater_equal,
                          comp_op1=nl.less, bound0=4.0 if scalar else lo, bound1=hi,
                          reduce_res=mx, reduce_op=red or nl.maximum, **kw)
        return d
    return body


def test_range_select_arguments():
    a = rnd(8, 16)
    raises(r"bound0 must be a \(8, 1\) tile", _rs(scalar=True), a)
    raises("bound0 must be float32", _rs(bound_dtype=nl.bfloat16), a)
    raises("on_false_value must be FP32_MIN", _rs(on_false=0.0), a)
    raises("comparison ops must be", _rs(comp=nl.not_equal), a)
    raises("reduce_op must be nl.maximum", _rs(red=nl.add), a)
    raises("on_true_tile must be a float dtype", _rs(tdt=nl.int32), a)
    idx = np.arange(16)
    want = np.where((idx >= 4) & (idx < 9), a, np.finfo(F32).min)
    np.testing.assert_array_equal(run(_rs(), a), want)


def test_range_select_needs_v3():
    raises("available only on NeuronCore-v3", _rs(), rnd(8, 16), target="trn1")


def test_select_reduce_dtypes():
    a = rnd(8, 16)
    m = (rng.random((8, 16)) > 0.5).astype(np.uint8)

    def body(tdt=None, pdt=None, on_false=-1.0, rdt=nl.float32):
        def f(t, pr):
            tt = cast(t, tdt) if tdt else t
            pp = cast(pr, pdt) if pdt else pr
            d = sb(t.shape)
            r = sb((t.shape[0], 1), rdt)
            nisa.select_reduce(dst=d, predicate=pp, on_true=tt, on_false=on_false,
                               reduce_res=r, reduce_cmd=nisa.reduce_cmd.reset_reduce)
            return d
        return f
    raises("on_true must not be int32/uint32", body(tdt=nl.int32), a, m)
    raises("predicate must be int8, uint8, int16 or uint16", body(pdt=nl.uint32), a, m)
    raises("on_false must be float32 when a scalar", body(on_false=np.float16(-1)), a, m)
    raises("reduce_res must be a float dtype", body(rdt=nl.int32), a, m)
    np.testing.assert_array_equal(run(body(), a, m), np.where(m != 0, a, -1.0))


def test_tensor_scalar_reduce_arguments():
    a = rnd(8, 16)
    ai = rng.integers(0, 9, (8, 16)).astype(np.int32)

    def body(op0=nl.multiply, red=nl.maximum, cmd=None, init=None, v=2.0):
        def f(t):
            d = sb(t.shape, t.dtype)
            r = sb((t.shape[0], 1))
            kw = {} if cmd is None else {"reduce_cmd": cmd}
            nisa.tensor_scalar_reduce(dst=d, data=t, op0=op0, operand0=v, reduce_op=red,
                                      reduce_res=r, reduce_init=init, **kw)
            return r
        return f
    raises("op0 must be an arithmetic operator", body(op0=nl.bitwise_and, v=1), ai)
    raises("reduce_op must be add, multiply, maximum or minimum",
           body(red=nl.bitwise_or), a)
    raises("reduce_init is only used with reduce_cmd=load_reduce", body(init=1.0), a)
    raises("reduce_cmd=load_reduce needs reduce_init",
           body(cmd=nisa.reduce_cmd.load_reduce), a)
    raises("operand0 must be float32", body(v=np.float16(2)), a)
    np.testing.assert_allclose(run(body(), a)[:, 0], (2 * a).max(1))


def test_bn_stats_fmax():
    def body(t):
        d = sb((t.shape[0], 6))
        nisa.bn_stats(dst=d, data=t)
        return d
    raises("free size exceeds bn_stats_fmax=512", body, rnd(4, 513))
    a = rnd(4, 512)
    got = run(body, a)
    np.testing.assert_allclose(got[:, 1], a[:, 0::2].mean(1), rtol=1e-5, atol=1e-6)


def test_bn_aggr_input():
    def body(t):
        d = sb((t.shape[0], 2))
        nisa.bn_aggr(dst=d, data=t)
        return d
    raises("multiple of 3", body, rnd(4, 7))


def test_tensor_copy_predicated_rules():
    a = rnd(8, 16)
    m = (rng.random((8, 16)) > 0.5).astype(np.uint8)

    def body(pdt=None, ddt=nl.float32):
        def f(t, pr):
            pp = cast(pr, pdt) if pdt else pr
            d = sb(t.shape, ddt)
            nisa.memset(dst=d, value=0.0)
            nisa.tensor_copy_predicated(dst=d, src=t, predicate=pp)
            return d
        return f
    raises("predicate must be uint8/uint16/uint32", body(pdt=nl.float32), a, m)
    raises("src and dst dtypes differ", body(ddt=nl.bfloat16), a, m)
    np.testing.assert_array_equal(run(body(), a, m), np.where(m != 0, a, 0.0))


def test_classic_tensor_copy_predicated_mask():
    """S25 tensor_copy_predicated takes mask= (S25 nki.api.shared.rst "NKI API Masking"): the
    kept lanes are copied where the predicate holds; every other dst lane keeps its value."""
    a = rnd(8, 16)
    m = (rng.random((8, 16)) > 0.5).astype(np.uint8)

    def body(rows, cols):
        def f(t, pr):
            d = cnl.ndarray(t.shape, dtype=t.dtype, buffer=cnl.sbuf)
            d[...] = cisa.memset(t.shape, -7.0, t.dtype)
            i_p, i_f = cnl.arange(8)[:, None], cnl.arange(16)[None, :]
            cisa.tensor_copy_predicated(src=t, dst=d, predicate=pr,
                                        mask=(i_p < rows) & (i_f < cols))
            return d
        return f
    for rows, cols in ((8, 16), (5, 16), (8, 9), (1, 1)):   # whole tile .. one lane
        want = np.full_like(a, -7.0)
        box = (slice(0, rows), slice(0, cols))
        want[box] = np.where(m[box] != 0, a[box], -7.0)
        np.testing.assert_array_equal(classic(body(rows, cols), a, m), want)
    np.testing.assert_array_equal(classic(body(0, 16), a, m), np.full_like(a, -7.0))


def test_stream_shuffle_mask():
    def body(n):
        def f(t):
            d = sb(t.shape)
            nisa.nc_stream_shuffle(dst=d, src=t, shuffle_mask=list(range(n)))
            return d
        return f
    raises("shuffle_mask must be 32 entries", body(31), rnd(32, 4))
    a = rnd(32, 4)
    np.testing.assert_array_equal(run(body(32), a), a)

    def none_mask(t):          # a missing mask: a located error (a TypeError inside before)
        d = sb(t.shape)
        nisa.nc_stream_shuffle(dst=d, src=t, shuffle_mask=None)
        return d
    raises("shuffle_mask must be 32 entries", none_mask, a)


def test_max8_sizes():
    def body(t):
        d = sb((t.shape[0], 8))
        nisa.max8(dst=d, src=t)
        return d
    raises("data needs 8..16384 elements per partition", body, rnd(4, 7))
    a = rnd(4, 8)
    np.testing.assert_array_equal(run(body, a), -np.sort(-a, axis=1))


def test_find_index8_duplicates():
    data = np.array([[1, 2, 3, 4, 8, 8, 8, 8, 8, 8, 8]], F32)
    vals = np.array([[3, 8, 8, 8, 8, 8, 8, 8]], F32)

    def rep(d, v):
        out = sb(d.shape)
        idx = sb((1, 8), nl.uint32)
        nisa.nc_match_replace8(dst=out, data=d, vals=v, imm=0.0, dst_idx=idx)
        return idx

    def find(d, v):
        idx = sb((1, 8), nl.uint32)
        nisa.nc_find_index8(dst=idx, data=d, vals=v)
        return idx
    np.testing.assert_array_equal(run(rep, data, vals)[0], [2, 10, 9, 8, 7, 6, 5, 4])
    np.testing.assert_array_equal(run(find, data, vals)[0], [2, 4, 5, 6, 7, 8, 9, 10])


def test_find_index8_dst_dtype():
    def body(t):
        v = sb((t.shape[0], 8))
        nisa.tensor_copy(dst=v, src=t[:, 0:8])
        d = sb((t.shape[0], 8), nl.int32)
        nisa.nc_find_index8(dst=d, data=t, vals=v)
        return d
    raises("dst must be uint16 or uint32", body, rnd(4, 16))


def test_n_gather_rules():
    a = rnd(8, 16)
    ix = rng.integers(0, 16, (8, 4)).astype(np.int32)

    def body(idt):
        def f(t, i):
            ii = cast(i, idt)
            d = sb((8, 4))
            nisa.nc_n_gather(dst=d, data=t, indices=ii)
            return d
        return f
    raises("indices must be uint32", body(nl.int32), a, ix)
    np.testing.assert_array_equal(run(body(nl.uint32), a, ix), np.take_along_axis(a, ix, 1))


def test_nonzero_with_count_v3():
    def body(t):
        d = sb((t.shape[0], t.shape[1] + 1), nl.int32)
        nisa.nonzero_with_count(dst=d, src=t)
        return d
    raises("available only on NeuronCore-v3", body, rnd(16, 8), target="trn1")


def test_dma_compute_add_only():
    a = rnd(8, 16)

    def body(op):
        def f(t):
            d = sb(t.shape)
            nisa.dma_compute(dst=d, srcs=[t, t], reduce_op=op)
            return d
        return f
    raises("only reduce_op=add", body(nl.multiply), a)
    np.testing.assert_allclose(run(body(nl.add), a), 2 * a)


def test_tensor_partition_reduce_ops():
    def body(op):
        def f(t):
            d = sb((1, t.shape[1]))
            nisa.tensor_partition_reduce(dst=d, op=op, data=t)
            return d
        return f
    raises("op must be add, maximum, bitwise_or or bitwise_and", body(nl.subtract), rnd(8, 4))
    a = rnd(8, 4)
    np.testing.assert_array_equal(run(body(nl.maximum), a)[0], a.max(0))
    # current API: op=nl.average is the partition mean (SH tensor_partition_reduce, nki 0.3)
    np.testing.assert_allclose(run(body(nl.average), a)[0], a.mean(0), rtol=1e-6)
    raises(r"\(or nl.average\) \(got minimum\)", body(nl.minimum), a)


def test_tensor_scalar_cumulative_op1():
    def body(op1):
        def f(t):
            d = sb(t.shape)
            nisa.tensor_scalar_cumulative(dst=d, src=t, op0=nl.multiply, op1=op1, imm0=1.0)
            return d
        return f
    raises("op1 must be add, subtract, multiply, maximum or minimum", body(nl.divide),
           rnd(4, 8))
    a = rnd(4, 8)
    np.testing.assert_allclose(run(body(nl.add), a), np.cumsum(a, axis=1), rtol=1e-5,
                               atol=1e-6)


# ---- dtype promotion of scalars ----------------------------------------------------------------
def test_typed_scalar_keeps_dtype():
    a = rnd(8, 16).astype(np.float16)
    typed = run(lambda t: nl.add(t, np.float16(2)), a)
    assert typed.dtype == np.float16
    weak = run(lambda t: nl.add(t, 2.0), a)
    assert weak.dtype == np.float32
    np.testing.assert_allclose(typed, (a + np.float16(2)), rtol=1e-3)


# ---- scope notes (unmodelled rows) -------------------------------------------------------------
def test_v4_only_features_rejected():
    a = rnd(8, 16)

    def body(t):
        d = sb(t.shape)
        nisa.exponential(dst=d, src=t)
        return d
    raises("only on NeuronCore-v4", body, a)


def test_int32_tensor_tensor_exact():
    """SH tensor_tensor (nki 0.3): all-int32/uint32 tiles default to GpSimd with native
    integer math (exact); with a tile in PSUM, or engine=vector, it is VectorE float32 math
    (2**24 + 1 rounds to 2**24)."""
    a = np.array([[2**30 + 1, -(2**30) - 3, 16777217, 7]] * 2, np.int32)

    def body(psum=False, engine=nisa.engine.unknown):
        def f(x, y):
            if psum:
                y = cast(y, nl.int32, nl.psum)
            d = sb(x.shape, nl.int32)
            nisa.tensor_tensor(dst=d, data1=x, data2=y, op=nl.add, engine=engine)
            return d
        return f
    np.testing.assert_array_equal(run(body(), a, np.ones_like(a)), a + 1)
    f32 = (a.astype(np.float32) + 1).astype(np.int32)
    assert f32[0, 2] == 16777216
    np.testing.assert_array_equal(run(body(psum=True), a, np.ones_like(a)), f32)
    np.testing.assert_array_equal(run(body(engine=nisa.engine.vector), a, np.ones_like(a)), f32)

    def engine_of(**kw):
        def k(x, y):
            r = body(**kw)(nl.load(x), nl.load(y))
            out = nl.ndarray(r.shape, dtype=r.dtype, buffer=nl.shared_hbm)
            nl.store(out, value=r)
            return out
        res = sim.run(k, [a, np.ones_like(a)], target="trn2")
        return next(i.engine.value for i in res.instrs if i.op == "tensor_tensor")
    assert engine_of() == "gpsimd"
    assert engine_of(psum=True) == "vector"
    assert engine_of(engine=nisa.engine.vector) == "vector"


# ---- second batch ----------------------------------------------------------------------------
def test_dma_copy_priority_and_engine():
    a = rnd(8, 16)

    def body(**kw):
        def f(t):
            d = sb(t.shape)
            nisa.dma_copy(dst=d, src=t, **kw)
            return d
        return f
    raises("priority= is available only on NeuronCore-v4", body(priority=0), a)
    raises("engine= is only valid with dge_mode=hwdge", body(engine=nisa.engine.sync), a)
    np.testing.assert_array_equal(
        run(body(engine=nisa.engine.sync, dge_mode=nisa.dge_mode.hwdge), a), a)


def test_iota_offsets_int32():
    def body(off):
        def f(t):
            d = sb((4, 8), nl.int32)
            nisa.iota(dst=d, pattern=[[1, 8]], offset=off, channel_multiplier=8)
            return d
        return f
    raises("offset must be an int32", body(1.5), rnd(4, 8))
    raises("offset must be an int32", body(1 << 31), rnd(4, 8))
    np.testing.assert_array_equal(run(body((1 << 31) - 64), rnd(4, 8))[0, 0], (1 << 31) - 64)


def test_tensor_scalar_cumulative_args():
    def body(op0=nl.multiply, dtype=nl.float32, imm0=1.0):
        def f(t):
            tt = cast(t, dtype)
            d = sb(t.shape, dtype)
            nisa.tensor_scalar_cumulative(dst=d, src=tt, op0=op0, op1=nl.add, imm0=imm0)
            return d
        return f
    a = rnd(4, 8)
    raises("src dtype int32/uint32 is not supported", body(dtype=nl.int32), a)
    raises("op0 must be an arithmetic operator", body(op0=nl.bitwise_and, dtype=nl.int16,
                                                        imm0=1), a)
    raises("imm0 must be float32", body(imm0=np.float16(1)), a)
    np.testing.assert_allclose(run(body(imm0=2.0), a), np.cumsum(2 * a, axis=1), rtol=1e-5,
                               atol=1e-6)


def test_classic_dropout_integer_rules():
    a = rng.integers(0, 9, (8, 16)).astype(np.int32)
    with pytest.raises(SimError, match="prob must be float32 when data is an integer"):
        classic(lambda t: cisa.dropout(t, np.float16(0.5)), a)
    with pytest.raises(SimError, match="output dtype must match integer input"):
        classic(lambda t: cisa.dropout(t, 0.0, dtype=np.float32), a)
    np.testing.assert_array_equal(classic(lambda t: cisa.dropout(t, 0.0), a), a)


def test_stream_shuffle_start_partition():
    def body(lo):
        def f(t):
            d = sb((96, 4))
            nisa.memset(dst=d, value=0.0)
            nisa.nc_stream_shuffle(dst=d[lo:lo + 64, :], src=t[0:64, :],
                                   shuffle_mask=list(range(32)))
            return d
        return f
    a = rnd(96, 4)
    raises("dst starts at partition 32; with 64 active partitions the start must be one of "
           r"\[0, 64\]", body(32), a)
    got = run(body(0), a)
    np.testing.assert_array_equal(got[:64], a[:64])


def test_activation_reduce_res_shape():
    a = rnd(8, 16)

    def body(w):
        def f(t):
            d = sb(t.shape)
            r = sb((t.shape[0], w))
            nisa.activation(dst=d, op=nl.copy, data=t, reduce_op=nl.add, reduce_res=r,
                            reduce_cmd=nisa.reduce_cmd.reset_reduce)
            return r
        return f
    raises(r"reduce_res must be \(8, 1\)", body(2), a)
    np.testing.assert_allclose(run(body(1), a)[:, 0], a.sum(1), rtol=1e-5)


def test_activation_op_unary():
    raises("op must be an activation function", _act(nl.add), rnd(8, 16))


def test_copy_predicated_not_both_psum():
    a = rnd(8, 16)
    m = np.ones((8, 16), np.uint8)

    def body(t, pr):
        tp, pp = cast(t, nl.float32, nl.psum), cast(pr, nl.uint8, nl.psum)
        d = sb(t.shape)
        nisa.tensor_copy_predicated(dst=d, src=tp, predicate=pp)
        return d
    raises("src and predicate cannot both be in PSUM", body, a, m)


def test_dma_compute_sources_and_scales():
    a = rnd(8, 16)

    def body(n, scales=None):
        def f(t):
            d = sb(t.shape)
            nisa.dma_compute(dst=d, srcs=[t] * n, reduce_op=nl.add, scales=scales)
            return d
        return f
    raises("needs 1 to 16 source tensors", body(17), a)
    raises("all scales must be 1.0", body(2, [1.0, 2.0]), a)
    np.testing.assert_allclose(run(body(16), a), 16 * a, rtol=1e-6)


def test_tensor_reduce_dst_shape():
    a = rnd(8, 4, 4)

    def body(t):
        d = sb((8, 2))
        nisa.tensor_reduce(dst=d, op=nl.add, data=t, axis=2)
        return d
    raises("dst must have 8 partitions and 4 elements per partition", body, a)


def test_tensor_copy_shapes():
    a = rnd(8, 16)

    def body(t):
        d = sb((8, 15))
        nisa.tensor_copy(dst=d, src=t[:, 0:16])
        return d
    raises("elements per partition differ", body, a)


def test_bn_aggr_computes_mean_var():
    a = rnd(4, 1024)

    def body(t):
        st = sb((4, 2, 6))
        for c in range(2):
            nisa.bn_stats(dst=st[:, c, :], data=t[:, c * 512:(c + 1) * 512])
        mv = sb((4, 2))
        nisa.bn_aggr(dst=mv, data=st)
        return mv
    got = run(body, a)
    np.testing.assert_allclose(got[:, 0], a.mean(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[:, 1], a.var(1), rtol=1e-4)


def test_reciprocal_vector_engine():
    a = rnd(8, 16, lo=0.5, hi=3.0)

    def body(t):
        d = sb(t.shape)
        nisa.reciprocal(dst=d, data=t)
        return d
    np.testing.assert_array_equal(run(body, a), (np.float32(1) / a).astype(F32))


def test_scalar_tensor_tensor_memory_and_shape():
    a = rnd(8, 16)

    def body(t):
        p1, p2 = cast(t, nl.float32, nl.psum), cast(t, nl.float32, nl.psum)
        d = sb(t.shape)
        nisa.scalar_tensor_tensor(dst=d, data=p1, op0=nl.add, operand0=1.0, op1=nl.add,
                                  operand1=p2)
        return d
    raises("data and operand1 cannot both be in PSUM", body, a)


def test_dma_transpose_dst_sbuf():
    def body(t):
        s = cast(t, nl.bfloat16)
        d = nl.ndarray((8, 16), dtype=nl.bfloat16, buffer=nl.shared_hbm)
        nisa.dma_transpose(dst=d, src=s)
        return s
    raises("dst must be in SBUF", body, rnd(16, 8))


def test_matmul_partition_dims_match():
    a, b = rnd(16, 8), rnd(8, 32)

    def body(s, mv):
        d = ps((8, 32))
        nisa.nc_matmul(dst=d, stationary=s, moving=mv)
        return d
    raises("stationary and moving partition .contraction. dims differ", body, a, b)


def _local_gather_ref(src, index, e, v):
    """The NumPy semantics of S25 general/nki/test/test_nki_isa_local_gather.py (element
    offsets: the test feeds index * num_elem_per_idx)."""
    p = src.shape[0]
    flat = src.reshape(p, -1)
    out = np.empty((p, v * e), src.dtype)
    for g in range(0, p, 16):
        ids = index[g:g + 16].flatten(order="F")[:v].astype(np.int64)
        out[g:g + 16] = flat[g:g + 16][:, (ids[:, None] + np.arange(e)).reshape(-1)]
    return out


def test_local_gather():
    """local_gather (SH and S25 docstrings, S25 NumPy semantics): per 16-partition group the
    uint16 index slice flattened partition-first, num_valid_indices of them, num_elem_per_idx
    contiguous elements each, src dtype kept. Limits at their boundary: P a multiple of 16
    (16 passes, 8 fails), num_elem_per_idx 32 passes / 3 fails, num_valid_indices = the slice's
    count passes / one more fails, index uint16 (int32 fails), dst dtype = src dtype; the
    classic form returns (P, valid, e)."""
    src = rnd(32, 64, 4)
    per = rng.integers(0, 64, (16, 4)).astype(np.uint16)
    index = np.tile(per, (2, 1)) * 4                       # element offsets, as the SDK test

    def body(e=4, v=None, idx_dt=nl.uint16, dst_dt=nl.float32, vv=None):
        def f(s, ix):
            i = cast(ix, idx_dt)
            n = (vv or v or 64) * e
            d = sb((s.shape[0], n), dst_dt)
            nisa.local_gather(dst=d, src_buffer=s, index=i, num_elem_per_idx=e,
                              num_valid_indices=v)
            return d
        return f
    np.testing.assert_array_equal(run(body(v=64), src, index.astype(np.float32)),
                                  _local_gather_ref(src, index, 4, 64))
    np.testing.assert_array_equal(run(body(v=5), src, index.astype(np.float32)),
                                  _local_gather_ref(src, index, 4, 5))
    raises("num_valid_indices must be 1..64", body(v=65), src, index.astype(np.float32))
    raises("num_elem_per_idx must be 1, 2, 4, 8, 16 or 32", body(e=3, v=4), src,
           index.astype(np.float32))
    small = rnd(16, 64)
    np.testing.assert_array_equal(run(body(e=32, v=1), small, np.zeros((16, 1), np.float32)),
                                  small[:, :32])
    raises("a multiple of 16", body(e=1, v=1), rnd(8, 64), np.zeros((8, 1), np.float32))
    raises("index must be uint16", body(v=4, idx_dt=nl.int32), src, index.astype(np.float32))
    raises("dst dtype must equal src_buffer dtype", body(v=4, dst_dt=nl.bfloat16), src,
           index.astype(np.float32))
    raises("index out of range", body(e=4, v=1), rnd(16, 8),
           np.full((16, 1), 6, np.float32))

    def cl(s, ix):
        return cisa.local_gather(s, cnl.copy(ix, dtype=cnl.uint16), 4, 64)
    got = classic(cl, src, index.astype(np.float32))
    np.testing.assert_array_equal(got.reshape(32, -1), _local_gather_ref(src, index, 4, 64))


def test_classic_activation_reduce_op():
    a = rnd(8, 16)

    def body(t):
        r = cnl.ndarray((8, 1), dtype=cnl.float32, buffer=cnl.sbuf)
        cisa.activation(op=np.copy, data=t, reduce_op=np.max, reduce_res=r,
                        reduce_cmd=cisa.reduce_cmd.reset_reduce)
        return r
    np.testing.assert_array_equal(classic(body, a)[:, 0], a.max(1))
    with pytest.raises(SimError, match="reduce_op must be nl.add on NeuronCore-v2"):
        classic(body, a, target="trn1")


def test_classic_scalar_copy_v2_through_fp32():
    a = np.array([[16777217, 3, -7, 2**31 - 1]] * 2, np.int32)

    def body(t):
        return cisa.tensor_copy(t, engine=cisa.scalar_engine)
    got = classic(body, a, target="trn1")          # NeuronCore-v2 ScalarE: via float32
    np.testing.assert_array_equal(got[:, 1:3], a[:, 1:3])
    assert got[0, 0] == 16777216
    np.testing.assert_array_equal(classic(body, a), a)    # NeuronCore-v3: bit-exact


def test_classic_int_copy_without_engine_v2():
    # review 15 R15-1: S25 tensor_copy lets the compiler pick the engine (engine=unknown), and
    # ScalarE on NeuronCore-v2 copies through FP32, so an int32 copy with no engine is refused
    # on trn1; a named VectorE / GpSimd engine, trn2, 8/16-bit data and a dtype-changing copy pass
    a = np.array([[16777217, 3, -7, 2**31 - 1]] * 2, np.int32)
    for body in (lambda t: cisa.tensor_copy(t),
                 lambda t: cisa.tensor_copy(t, engine=cisa.unknown_engine),
                 lambda t: cnl.copy(t)):
        with pytest.raises(SimError, match="copy of int32 data with no engine given") as ei:
            classic(body, a, target="trn1")
        assert "engine=nisa.vector_engine" in (ei.value.diagnostics[0].fix or "")
    with pytest.raises(SimError, match="copy of uint32 data with no engine given"):
        classic(lambda t: cisa.tensor_copy(t), a.astype(np.uint32), target="trn1")
    for eng in (cisa.vector_engine, cisa.gpsimd_engine):
        got = classic(lambda t, e=eng: cisa.tensor_copy(t, engine=e), a, target="trn1")
        np.testing.assert_array_equal(got, a)                      # bit-accurate
    np.testing.assert_array_equal(classic(lambda t: cisa.tensor_copy(t), a), a)  # NC-v3
    small = a.astype(np.int16)
    np.testing.assert_array_equal(classic(lambda t: cisa.tensor_copy(t), small,
                                          target="trn1"), small)
    got = classic(lambda t: cisa.tensor_copy(t, dtype=cnl.float32), a[:, 1:3], target="trn1")
    np.testing.assert_array_equal(got, a[:, 1:3].astype(np.float32))


def test_classic_affine_select_dtypes():
    a = rng.integers(0, 9, (8, 8)).astype(np.int32)

    def body(t):
        ix, iy = cnl.mgrid[0:8, 0:8]
        return cisa.affine_select(pred=(ix >= iy), on_true_tile=t, on_false_value=0.0)
    with pytest.raises(SimError, match="on_true_tile must be a float or 8/16-bit integer"):
        classic(body, a)
    got = classic(body, a.astype(np.int16))
    np.testing.assert_array_equal(got, np.where(np.tri(8, dtype=bool), a, 0))


# ---- classic mask= on transposes and 8-wide searches (S25 nki.api.shared.rst NKI API Masking) --
def _classic_kernel(k, *arrays):
    return cnki.simulate_kernel(cnki.jit(k, platform_target="trn2"), *arrays)


def test_classic_dma_transpose_mask_reads_box_of_source():
    a = rnd(100, 48)

    def k(x):
        out = cnl.ndarray((48, 128), dtype=cnl.float32, buffer=cnl.shared_hbm)
        i_p = cnl.arange(128)[:, None]
        # rows 100..127 of the slice are past x's end: masked out, never read
        t = cisa.dma_transpose(x[0:128, 0:48], mask=(i_p < 100))
        cnl.store(out[0:48, 0:100], value=t[0:48, 0:100])
        return out
    got = _classic_kernel(k, a)
    np.testing.assert_array_equal(got[:, :100], a.T)

    def unmasked(x):
        t = cisa.dma_transpose(x[0:128, 0:48])
        out = cnl.ndarray((48, 128), dtype=cnl.float32, buffer=cnl.shared_hbm)
        cnl.store(out, value=t)
        return out
    with pytest.raises(SimError, match="out of bound"):
        _classic_kernel(unmasked, a)


def test_classic_dma_transpose_mask_lanes_outside_undefined():
    a = rnd(16, 32)

    def body(t):
        i_f = cnl.arange(32)[None, :]
        return cisa.tensor_copy(cisa.dma_transpose(t, mask=(i_f < 31)))
    got = classic(body, a)
    np.testing.assert_array_equal(got[:31], a.T[:31])     # last kept lane: column 30
    assert np.isnan(got[31]).all()                         # first masked-out lane: undefined


def test_classic_nc_transpose_mask_transposes_box():
    a = rnd(64, 96)

    def body(eng):
        def f(t):
            i_p, i_f = cnl.arange(64)[:, None], cnl.arange(96)[None, :]
            r = cisa.nc_transpose(t, mask=(i_p < 40) & (i_f < 80), engine=eng)
            return cisa.tensor_copy(r)
        return f
    got = classic(body(cisa.tensor_engine), a)
    assert got.shape == (96, 64)
    np.testing.assert_array_equal(got[:80, :40], a[:40, :80].T)
    assert np.isnan(got[80:]).all() and np.isnan(got[:, 40:]).all()
    b = rnd(32, 32)

    def small(t):
        i_p = cnl.arange(32)[:, None]
        return cisa.tensor_copy(cisa.nc_transpose(t, mask=(i_p < 32), engine=cisa.vector_engine))
    np.testing.assert_array_equal(classic(small, b), b.T)      # the whole tile: no mask effect


def test_classic_max8_mask_searches_kept_lanes():
    a = rnd(16, 64)
    a[:, 60:] = 100.0          # larger than anything kept: excluded by the mask

    def body(t):
        i_p, i_f = cnl.arange(16)[:, None], cnl.arange(64)[None, :]
        return cisa.max8(src=t, mask=(i_p < 12) & (i_f < 60))
    got = classic(body, a)
    want = -np.sort(-a[:12, :60], axis=1)[:, :8]
    np.testing.assert_array_equal(got[:12], want)
    assert np.isnan(got[12:]).all()

    def too_few(t):
        i_f = cnl.arange(64)[None, :]
        return cisa.max8(src=t, mask=(i_f < 7))
    with pytest.raises(SimError, match=r"8\.\.16384 elements per partition"):
        classic(too_few, a)
    np.testing.assert_array_equal(                          # 8 kept lanes: the last legal count
        classic(lambda t: cisa.max8(src=t, mask=(cnl.arange(64)[None, :] < 8)), a),
        -np.sort(-a[:, :8], axis=1))


def test_classic_find_index8_mask_applies_to_data():
    a = rnd(8, 64)
    a[:, 50] = 100.0            # would be the first match without the mask

    def body(t):
        i_f = cnl.arange(64)[None, :]
        m = cisa.max8(src=t, mask=(i_f < 50))
        return cisa.nc_find_index8(data=t, vals=m, mask=(i_f < 50))
    got = classic(body, a)
    want = np.argsort(-a[:, :50], axis=1, kind="stable")[:, :8]
    np.testing.assert_array_equal(got, want)


def test_pattern_is_a_list_of_step_num_pairs():
    """iota / affine_select patterns are lists of [step, num] pairs (SH nki.isa iota,
    affine_select, nki 0.3): a flat [1, n] or a three-element entry is a located error (the
    simulator raised a Python unpacking error inside itself); [[1, n]] runs
    (isa.iota.pattern_pairs)."""
    def body(pattern, select=False):
        def f(t):
            d = sb((8, 16), nl.float32 if select else nl.int32)
            if select:
                nisa.affine_select(dst=d, pattern=pattern, channel_multiplier=0,
                                   on_true_tile=t, on_false_value=0.0, cmp_op=nl.greater_equal)
            else:
                nisa.iota(dst=d, pattern=pattern, offset=0, channel_multiplier=0)
            return d
        return f
    a = rnd(8, 16)
    raises("iota: pattern must be a list of \\[step, num\\] pairs", body([1, 16]), a)
    raises("affine_select: pattern must be a list of \\[step, num\\] pairs",
           body([[1, 16, 2]], True), a)
    np.testing.assert_array_equal(run(body([[1, 16]]), a), np.broadcast_to(np.arange(16),
                                                                          (8, 16)))
    np.testing.assert_array_equal(run(body(((1, 16),), True), a), a)


def test_pattern_at_most_four_dims():
    """iota / affine_select patterns: up to four [step, num] dimensions (SH nki.isa iota and
    affine_select, nki 0.3); four pass (values as the doc's nested loops), five fail. A
    two-dimensional affine_select pattern selects a periodic column set (n % 2 == 0)."""
    def body(dims):
        def f(t):
            d = sb((8, 16), nl.int32)
            nisa.iota(dst=d, pattern=[[1, 2]] * (dims - 1) + [[1, 16 // 2 ** (dims - 1)]],
                      offset=0, channel_multiplier=0)
            return d
        return f
    got = run(body(4), rnd(8, 8))
    i = np.arange(16)
    want = (i >> 3 & 1) + (i >> 2 & 1) + (i >> 1 & 1) + (i & 1)
    np.testing.assert_array_equal(got, np.broadcast_to(want, (8, 16)))
    raises("pattern has more than 4 dimensions", body(5), rnd(8, 8))
    a = rnd(8, 16)

    def even(t):
        d = sb(t.shape)
        nisa.affine_select(dst=d, pattern=[[0, 8], [1, 2]], channel_multiplier=0,
                           on_true_tile=t, on_false_value=0.0, cmp_op=nl.equal, offset=0)
        return d
    np.testing.assert_array_equal(run(even, a), np.where(np.arange(16) % 2 == 0, a, 0.0))


# ---- sim13 audit -------------------------------------------------------------------------------
def test_topk_operand_ranks():
    """max8 / nc_find_index8 ranks per API: current (SH max8, nc_find_index8, nki 0.3) src/data
    at most 3-D, vals at most 3-D, dst a 2-D (P, 8) tile; classic (S25 max8,
    nc_find_index8, nc_match_replace8, SDK 2.25) data at most 5-D, vals at most 3-D, and
    nc_match_replace8 at most 16,384 elements per partition."""
    a = rnd(8, 16)
    top = -np.sort(-a, axis=1)[:, :8]

    def m8(src_shape, dst_shape=(8, 8)):
        def f(t):
            d = sb(dst_shape)
            nisa.max8(dst=d, src=t.reshape(src_shape))
            return d
        return f
    np.testing.assert_array_equal(run(m8((8, 2, 8)), a), top)
    raises("max8: src can be at most 3-dimensional", m8((8, 2, 2, 4)), a)
    raises(r"max8: dst must be a 2-D \(P, 8\) tile", m8((8, 16), (8, 2, 4)), a)

    def fi(data_shape, vals_shape=(8, 8), dst_shape=(8, 8)):
        def f(t):
            v = sb(vals_shape)
            nisa.tensor_copy(dst=v, src=t[:, 0:8].reshape(vals_shape))
            d = sb(dst_shape, nl.uint32)
            nisa.nc_find_index8(dst=d, data=t.reshape(data_shape), vals=v)
            return d
        return f
    want = np.broadcast_to(np.arange(8), (8, 8))
    np.testing.assert_array_equal(run(fi((8, 2, 8), (8, 2, 4)), a), want)
    raises("nc_find_index8: data can be at most 3-dimensional", fi((8, 2, 2, 4)), a)
    raises("nc_find_index8: vals can be at most 3-dimensional", fi((8, 16), (8, 2, 2, 2)), a)
    raises(r"nc_find_index8: dst must be a 2-D \(P, 8\) tile", fi((8, 16), dst_shape=(8, 2, 4)),
           a)

    b = rnd(8, 32)

    def cm8(shape):
        return lambda t: cisa.max8(src=t.reshape(shape))
    np.testing.assert_array_equal(classic(cm8((8, 2, 2, 2, 4)), b), -np.sort(-b, axis=1)[:, :8])
    with pytest.raises(SimError, match="max8: src can be at most 5-dimensional"):
        classic(cm8((8, 2, 2, 2, 2, 2)), b)

    def cmr(shape, n=32):
        def f(t):
            v = cnl.copy(t[:, 0:8])
            return cisa.nc_match_replace8(data=t[:, 0:n].reshape(shape), vals=v, imm=0.0)
        return f
    got = classic(cmr((8, 2, 2, 2, 4)), b)
    want_r = b.copy()
    want_r[:, 0:8] = 0.0
    np.testing.assert_array_equal(got.reshape(8, 32), want_r)
    with pytest.raises(SimError, match="nc_match_replace8: data can be at most 5-dimensional"):
        classic(cmr((8, 2, 2, 2, 2, 2)), b)
    big = rnd(2, 16385)
    classic(cmr((2, 16384), 16384), big)
    with pytest.raises(SimError, match="at most 16384 elements per partition"):
        classic(cmr((2, 16385), 16385), big)


def test_dge_mode_of_dynamic_and_indirect_dma():
    """SH dma_copy / nki-dge.rst (nki 0.3): a vector_offset gather runs on software DGE only
    (unknown and swdge pass, hwdge and none fail); a scalar_offset (dynamic start) needs
    sw/hw DGE (none fails, hwdge passes, also given as the integer nki-library passes); a
    direct dma_transpose takes unknown or hwdge only (swdge is the indirect transpose's)."""
    data = rnd(32, 16)
    idx = np.array([[3], [1], [0], [7], [30], [2], [5], [9]], np.uint32)

    def gather(mode):
        def k(d, ix):
            i = nl.ndarray((8, 1), dtype=nl.uint32, buffer=nl.sbuf)
            nisa.dma_copy(dst=i, src=ix)
            t = nl.ndarray((8, 16), dtype=d.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=d.ap(pattern=[[16, 8], [1, 16]], vector_offset=i,
                                          indirect_dim=0), dge_mode=mode)
            out = nl.ndarray((8, 16), dtype=d.dtype, buffer=nl.shared_hbm)
            nisa.dma_copy(dst=out, src=t)
            return out
        return sim.simulate(k, target="trn2")(data, idx)
    for ok in (nisa.dge_mode.unknown, nisa.dge_mode.swdge):
        np.testing.assert_array_equal(gather(ok), data[idx[:, 0]])
    for bad in (nisa.dge_mode.hwdge, nisa.dge_mode.none):
        with pytest.raises(SimError, match="gather/scatter .* runs on software DGE only"):
            gather(bad)

    def dynamic(mode):
        def k(d, ix):
            i = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
            nisa.dma_copy(dst=i, src=ix)
            t = nl.ndarray((8, 16), dtype=d.dtype, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=d.ap(pattern=[[16, 8], [1, 16]], scalar_offset=i,
                                          indirect_dim=0), dge_mode=mode)
            out = nl.ndarray((8, 16), dtype=d.dtype, buffer=nl.shared_hbm)
            nisa.dma_copy(dst=out, src=t)
            return out
        return sim.simulate(k, target="trn2")(data, np.array([[2]], np.int32))
    for ok in (nisa.dge_mode.hwdge, nisa.dge_mode.swdge, 2):
        np.testing.assert_array_equal(dynamic(ok), data[2:10])
    for bad in (nisa.dge_mode.none, 0):
        with pytest.raises(SimError, match="dge_mode=none cannot take a dynamic address"):
            dynamic(bad)

    def transpose(mode):
        def f(t):
            d = sb((16, 16), nl.bfloat16)
            nisa.dma_transpose(dst=d, src=cast(t, nl.bfloat16), dge_mode=mode)
            return d
        return f
    b = rnd(16, 16)
    want = b.astype(ml_dtypes.bfloat16).T
    for ok in (nisa.dge_mode.unknown, nisa.dge_mode.hwdge):
        np.testing.assert_array_equal(run(transpose(ok), b), want)
    for bad in (nisa.dge_mode.swdge, nisa.dge_mode.none):
        raises("dge_mode must be unknown or hwdge", transpose(bad), b)


def test_classic_dma_copy_rmw_and_hwdge():
    """S25 dma_copy (SDK 2.25): dst_rmw_op=np.add adds the source into the destination (also a
    plain, non-indirect one; an accumulation, so legal across nl.affine_range iterations),
    np.add is the only operator, and with it only oob_mode=error; dge_mode=hwdge needs
    NeuronCore-v3 (trn2) and is refused on trn1."""
    a = rnd(8, 16)

    def kern(op=np.add, oob=None, dge=None, n=3):
        def k(x):
            out = cnl.ndarray(x.shape, dtype=x.dtype, buffer=cnl.shared_hbm)
            cnl.store(out, cnl.zeros(x.shape, dtype=x.dtype))
            kw = {} if oob is None else {"oob_mode": oob}
            for _ in cnl.affine_range(n):
                cisa.dma_copy(dst=out, src=cnl.load(x), dst_rmw_op=op, **kw)
            return out
        return k

    def sim_c(k, target="trn2"):
        return cnki.simulate_kernel(cnki.jit(k, platform_target=target), a)
    np.testing.assert_allclose(sim_c(kern()), 3 * a, rtol=1e-6)
    with pytest.raises(SimError, match="dst_rmw_op supports only np.add"):
        sim_c(kern(op=np.multiply))
    with pytest.raises(SimError, match="with dst_rmw_op only oob_mode=oob_mode.error"):
        sim_c(kern(oob=cisa.oob_mode.skip))
    np.testing.assert_allclose(sim_c(kern(oob=cisa.oob_mode.error)), 3 * a, rtol=1e-6)

    def hw(x):
        out = cnl.ndarray(x.shape, dtype=x.dtype, buffer=cnl.shared_hbm)
        cisa.dma_copy(dst=out, src=cnl.load(x), dge_mode=cisa.dge_mode.hwdge)
        return out
    np.testing.assert_array_equal(sim_c(hw, "trn2"), a)
    with pytest.raises(SimError, match="dge_mode=hwdge needs NeuronCore-v3"):
        sim_c(hw, "trn1")


def test_tensor_scalar_reduce_documented_limits():
    """tensor_scalar_reduce: reverse0 is "(not supported yet)" in both generations (SH and S25
    docstrings): True fails, False passes. Current API (SH, nki 0.3): reduce_op is add,
    multiply, max or min (subtract fails; the classic S25 list keeps it), reduce_cmd is
    reset_reduce / reduce / load_reduce (idle and reset fail), and reduce_res_negate negates
    the read-out only (the registers keep the sum: a following reduce adds to it)."""
    a = rnd(8, 16)

    def body(red=nl.add, rev=False, **kw):
        def f(t):
            d = sb(t.shape)
            r = sb((t.shape[0], 1))
            nisa.tensor_scalar_reduce(dst=d, data=t, op0=nl.subtract, operand0=1.0,
                                      reduce_op=red, reduce_res=r, reverse0=rev, **kw)
            return r
        return f
    raises("reverse0=True is not supported yet", body(rev=True), a)
    raises("reduce_op must be add, multiply, maximum or minimum", body(red=nl.subtract), a)
    for cmd in (nisa.reduce_cmd.idle, nisa.reduce_cmd.reset):
        raises("reduce_cmd must be reset_reduce, reduce or load_reduce", body(reduce_cmd=cmd), a)
    np.testing.assert_allclose(run(body(), a)[:, 0], (a - 1).sum(1), rtol=1e-5)
    np.testing.assert_allclose(run(body(reduce_res_negate=True), a)[:, 0], -(a - 1).sum(1),
                               rtol=1e-5)

    def twice(t):
        d, r1, r2 = sb(t.shape), sb((8, 1)), sb((8, 1))
        nisa.tensor_scalar_reduce(dst=d, data=t, op0=nl.add, operand0=0.0, reduce_op=nl.add,
                                  reduce_res=r1, reduce_res_negate=True)
        nisa.tensor_scalar_reduce(dst=d, data=t, op0=nl.add, operand0=0.0, reduce_op=nl.add,
                                  reduce_res=r2, reduce_cmd=nisa.reduce_cmd.reduce)
        return r2
    np.testing.assert_allclose(run(twice, a)[:, 0], 2 * a.sum(1), rtol=1e-5)

    def classic_body(red=np.subtract, rev=False):
        def f(t):
            r = cnl.ndarray((8, 1), dtype=cnl.float32)
            cisa.tensor_scalar_reduce(data=t, op0=np.subtract, operand0=1.0, reduce_op=red,
                                      reduce_res=r, reverse0=rev)
            return r
        return f
    assert np.isfinite(classic(classic_body(), a)).all()     # subtract is legal in S25
    with pytest.raises(SimError, match="reverse0=True is not supported yet"):
        classic(classic_body(rev=True), a)


def test_current_random_numbers_and_dropout():
    """Current API (SH nl.rand, nl.random_seed, nl.dropout, nisa.dropout; nki 0.3): nl.rand
    gives uniform [0, 1) values and the same [1, 1] seed tensor the same sequence (a Python
    int seed fails: the doc takes a tensor); nisa.dropout zeroes elements with probability
    prob (1.0 all, 0.0 none; a (P, 1) prob per partition), keeps data's dtype (dst of another
    dtype fails) and needs a float32 prob for integer data (a bfloat16 prob tile fails there,
    passes for float data). Classic nl.dropout (S25) is nisa.dropout."""
    a = rnd(8, 16)

    def k(x):
        s = nl.ndarray((1, 1), dtype=nl.int32, buffer=nl.sbuf)
        nisa.memset(dst=s, value=42)
        nl.random_seed(s)
        r1 = nl.rand((8, 16), dtype=nl.float32)
        nl.random_seed(s)
        r2 = nl.rand((8, 16), dtype=nl.float32)
        t = nl.load(x)
        pp = nl.ndarray((8, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.iota(dst=pp, pattern=[[0, 1]], offset=0, channel_multiplier=1)   # 0, 1, 1, ...
        nisa.tensor_scalar(dst=pp, data=pp, op0=nl.minimum, operand0=1.0)
        half = nl.dropout(t, 0.5)
        rows = nl.ndarray((8, 16), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dropout(dst=rows, data=t, prob=pp)
        out = nl.ndarray((4, 8, 16), dtype=nl.float32, buffer=nl.shared_hbm)
        for i, v in enumerate((r1, r2, half, rows)):
            nl.store(out[i], value=v)
        return out
    got = sim.simulate(k, target="trn2")(a)
    np.testing.assert_array_equal(got[0], got[1])
    assert got[0].min() >= 0.0 and got[0].max() < 1.0 and got[0].std() > 0.1
    assert ((got[2] == 0) | (got[2] == a)).all() and 0.2 < (got[2] == 0).mean() < 0.8
    np.testing.assert_array_equal(got[3][0], a[0])          # partition 0: prob 0
    assert (got[3][1:] == 0).all()                          # the others: prob 1

    def seeded(x):
        nl.random_seed(42)
        return nl.load(x)
    raises("seed must be a \\[1, 1\\] SBUF/PSUM tensor", seeded, a)

    def drop(dst_dt=nl.float32, data_dt=nl.float32, pdt=None):
        def f(t):
            d = sb(t.shape, dst_dt)
            x = cast(t, data_dt)
            p = 0.5
            if pdt is not None:
                p = sb((8, 1), pdt)
                nisa.memset(dst=p, value=0.5)
            nisa.dropout(dst=d, data=x, prob=p)
            return d
        return f
    raises("dst dtype must match data dtype", drop(dst_dt=nl.bfloat16), a)
    ai = np.round(a * 10)
    raises("prob must be float32 when data is an integer tile",
           drop(nl.int32, nl.int32, nl.bfloat16), ai)
    got = run(drop(nl.int32, nl.int32, nl.float32), ai)
    assert ((got == 0) | (got == ai)).all()
    got = run(drop(pdt=nl.bfloat16), a)
    assert ((got == 0) | (got == a)).all()
    got = classic(lambda t: cnl.dropout(t, 1.0), a)
    assert (got == 0).all()


def test_dma_compute_read_modify_write_with_vector_offset():
    """SH dma_compute (nki 0.3) "Read-Modify-Write with vector_offset": gather RMW dst(SBUF)
    += src(HBM)[idx] and scatter RMW dst(HBM)[idx] += src(SBUF), float32 adds; exactly two
    sources, unique_indices=True (False fails, and a scatter hitting a row twice fails), scales
    1.0."""
    data = rnd(32, 16)
    acc = rnd(8, 16)
    idx = np.array([[3], [1], [0], [7], [30], [2], [5], [9]], np.uint32)

    def gather_k(unique=True, n_src=2):
        def k(d, a, ix):
            i = nl.ndarray((8, 1), dtype=nl.uint32, buffer=nl.sbuf)
            nisa.dma_copy(dst=i, src=ix)
            t = nl.ndarray((8, 16), dtype=nl.float32, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=a)
            ap = d.ap(pattern=[[16, 8], [1, 16]], vector_offset=i, indirect_dim=0)
            nisa.dma_compute(dst=t[:, :], srcs=[ap, t[:, :]] + [t] * (n_src - 2),
                             reduce_op=nl.add, unique_indices=unique)
            out = nl.ndarray((8, 16), dtype=nl.float32, buffer=nl.shared_hbm)
            nisa.dma_copy(dst=out, src=t)
            return out
        return sim.simulate(k, target="trn2")
    np.testing.assert_allclose(gather_k()(data, acc, idx), acc + data[idx[:, 0]], rtol=1e-6)
    with pytest.raises(SimError, match="unique_indices must be True"):
        gather_k(unique=False)(data, acc, idx)
    with pytest.raises(SimError, match="exactly 2 sources"):
        gather_k(n_src=3)(data, acc, idx)

    def scatter_k(ids):
        def k(d, a, ix):
            i = nl.ndarray((8, 1), dtype=nl.uint32, buffer=nl.sbuf)
            nisa.dma_copy(dst=i, src=ix)
            t = nl.ndarray((8, 16), dtype=nl.float32, buffer=nl.sbuf)
            nisa.dma_copy(dst=t, src=a)
            out = nl.ndarray(d.shape, dtype=nl.float32, buffer=nl.shared_hbm)
            nisa.dma_copy(dst=out, src=d)

            def view():
                return out.ap(pattern=[[16, 8], [1, 16]], vector_offset=i, indirect_dim=0)
            nisa.dma_compute(dst=view(), srcs=[view(), t], reduce_op=nl.add)
            return out
        return sim.simulate(k, target="trn2")(data, acc, ids)
    want = data.copy()
    want[idx[:, 0]] += acc
    np.testing.assert_allclose(scatter_k(idx), want, rtol=1e-6)
    dup = idx.copy()
    dup[1, 0] = 3
    with pytest.raises(SimError, match="scatter rows repeat"):
        scatter_k(dup)
