"""Simulator rules added for survivors of the mutants17 campaign (benchmarks/kernel_mutants.py,
operators rcmd-reduce, rcmd-idle, iota-int8): each test pins one rule at its boundary (the
legal form runs, the first illegal one is a SimError located at the kernel line). The rows
citing these tests are in nkigen/sim/conformance/isa.py."""

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

rng = np.random.default_rng(17)
RC = nisa.reduce_cmd


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


# ---- accumulation registers: undefined until an instruction resets them ----------------------
@pytest.mark.parametrize("first", [RC.reduce, RC.idle])
def test_activation_registers_read_before_any_reset(first):
    """rcmd-reduce / rcmd-idle: the first accumulation of a kernel says reduce (or idle) and
    reads reduce_regs out; it ran with registers silently starting at 0."""
    a = rnd(8, 16)

    def body(t):
        d = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.sbuf)
        s = nl.ndarray((8, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(dst=d, op=nl.exp, data=t, reduce_op=nl.add, reduce_res=s,
                        reduce_cmd=first)  # the line
        return s
    line = sys._getframe().f_lineno - 3
    with pytest.raises(SimError, match=r"activation: reads the engine's accumulation registers "
                                       r"of partitions \[0, 8\) that no instruction reset.*"
                                       r"reduce_cmd=reset_reduce") as e:
        current(body, a)
    assert _line_of(e.value) == line


def test_activation_registers_reset_boundary():
    """After a reset of partitions [0, 4) those partitions read out (reduce accumulates onto
    them); a read-out of [0, 5) names partition 4, the first never reset."""
    a = rnd(8, 16)

    def body(n):
        def f(t):
            d = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.sbuf)
            s = nl.ndarray((8, 2), dtype=nl.float32, buffer=nl.sbuf)
            nisa.activation(dst=d[0:4], op=nl.copy, data=t[0:4], reduce_op=nl.add,
                            reduce_res=s[0:4, 0:1], reduce_cmd=RC.reset_reduce)
            nisa.activation(dst=d[0:n], op=nl.copy, data=t[0:n], reduce_op=nl.add,
                            reduce_res=s[0:n, 1:2], reduce_cmd=RC.reduce)
            return s[0:4]
        return f
    got = current(body(4), a)
    np.testing.assert_allclose(got[:, 0], a[0:4].sum(1), rtol=1e-5)
    np.testing.assert_allclose(got[:, 1], 2 * a[0:4].sum(1), rtol=1e-5)
    with pytest.raises(SimError, match=r"partitions \[4, 5\) that no instruction reset"):
        current(body(5), a)


def test_classic_activation_registers_need_a_reset():
    a = rnd(8, 16)

    def body(cmd):
        def f(t):
            s = cnl.ndarray((8, 1), dtype=cnl.float32, buffer=cnl.sbuf)
            cisa.activation(op=np.exp, data=t, reduce_op=np.add, reduce_res=s,
                            reduce_cmd=cmd)
            return s
        return f
    np.testing.assert_allclose(classic(body(cisa.reduce_cmd.reset_reduce), a)[:, 0],
                               np.exp(a).sum(1), rtol=1e-5)
    with pytest.raises(SimError, match="that no instruction reset"):
        classic(body(cisa.reduce_cmd.reduce), a)


def test_vector_registers_need_a_reset():
    """tensor_scalar_reduce / tensor_scalar_cumulative with reduce_cmd=reduce as the first
    VectorE accumulation: an error; after a reset_reduce the same call accumulates."""
    a = rnd(8, 16)

    def tsr(first_reset):
        def f(t):
            d = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.sbuf)
            s = nl.ndarray((8, 1), dtype=nl.float32, buffer=nl.sbuf)
            if first_reset:
                nisa.tensor_scalar_reduce(dst=d, data=t, op0=nl.multiply, operand0=1.0,
                                          reduce_op=nl.add, reduce_res=s)
            nisa.tensor_scalar_reduce(dst=d, data=t, op0=nl.multiply, operand0=1.0,
                                      reduce_op=nl.add, reduce_res=s, reduce_cmd=RC.reduce)
            return s
        return f
    np.testing.assert_allclose(current(tsr(True), a)[:, 0], 2 * a.sum(1), rtol=1e-5)
    with pytest.raises(SimError, match="tensor_scalar_reduce: reads the engine's accumulation"):
        current(tsr(False), a)

    def cum(t):
        d = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar_cumulative(dst=d, src=t, op0=nl.multiply, op1=nl.add, imm0=1.0,
                                      reduce_cmd=RC.reduce)
        return d
    with pytest.raises(SimError, match="tensor_scalar_cumulative: reads the engine's"):
        current(cum, a)


# ---- iota into an integer tile: the pattern's values must fit ------------------------------
@pytest.mark.parametrize("n,ok", [(128, True), (129, False)])
def test_iota_int8_dst_range(n, ok):
    """iota-int8: values 0..n-1 into int8 wrapped (128 -> -128) silently."""
    a = rnd(4, n)

    def body(t):
        d = nl.ndarray((4, n), dtype=nl.int8, buffer=nl.sbuf)
        nisa.iota(dst=d, pattern=[[1, n]], offset=0, channel_multiplier=0)  # the line
        return d
    line = sys._getframe().f_lineno - 2
    if ok:
        np.testing.assert_array_equal(current(body, a), np.tile(np.arange(n), (4, 1)))
        return
    with pytest.raises(SimError, match=r"iota: a value written to a int8 tile .* outside "
                                       r"\[-128, 127\].*got 128\.0 at \[0, 128\]") as e:
        current(body, a)
    assert _line_of(e.value) == line


def test_iota_uint8_negative_and_float_dst():
    """A negative iota value in a uint8 tile is an error; a float dst takes any value (a cast,
    SH iota)."""
    a = rnd(4, 8)

    def body(dtype):
        def f(t):
            d = nl.ndarray((4, 8), dtype=dtype, buffer=nl.sbuf)
            nisa.iota(dst=d, pattern=[[1, 8]], offset=-1, channel_multiplier=0)
            return d
        return f
    with pytest.raises(SimError, match=r"uint8 tile .* outside \[0, 255\].*got -1\.0"):
        current(body(nl.uint8), a)
    np.testing.assert_array_equal(current(body(nl.float32), a),
                                  np.tile(np.arange(-1, 7), (4, 1)))
