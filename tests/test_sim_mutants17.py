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

from test_sim_mutants import classic, current  # noqa: E402 (the one-tile kernel wrappers)

rng = np.random.default_rng(17)
RC = nisa.reduce_cmd


def rnd(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


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


# ---- malformed operands: located errors, not Python exceptions inside the simulator ----------
_CLASSIC_HEAD = '''import numpy as np
import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl
from neuronxcc import nki


@nki.jit
def k(a, b):
    out = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
    x = nl.load(a)
    w = nl.load(b)
    pred = nl.load(a, dtype=nl.uint8)
    y = CALL
    nl.store(out, value=x)
    return out
'''
_CURRENT_HEAD = '''import numpy as np
import nki
import nki.isa as nisa
import nki.language as nl


@nki.jit
def k(a, b):
    out = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.shared_hbm)
    x = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    nisa.dma_copy(dst=x, src=a)
    d = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
    pred = nl.ndarray((128, 64), dtype=nl.uint8, buffer=nl.sbuf)
    nisa.memset(dst=pred, value=1)
    y = CALL
    nisa.dma_copy(dst=out, src=x)
    return out
'''


@pytest.mark.parametrize("head,call,match", [
    (_CLASSIC_HEAD, "nisa.tensor_tensor('x', x, op=np.add)", "tensor_tensor: data1 must be a tile"),
    (_CLASSIC_HEAD, "nisa.tensor_tensor(x, None, op=np.add)",
     "tensor_tensor: data2 must be a tile"),
    (_CLASSIC_HEAD, "nisa.nc_matmul('x', w)", "nc_matmul: stationary must be a tile"),
    (_CLASSIC_HEAD, "nisa.nc_matmul(w, 1.5)", "nc_matmul: moving must be a tile"),
    (_CLASSIC_HEAD, "nisa.tensor_scalar_reduce(data=[1], op0=np.add, operand0=1.0, "
                    "reduce_op=np.add, reduce_res=x)", "tensor_scalar_reduce: data must be a tile"),
    (_CLASSIC_HEAD, "nisa.tensor_partition_reduce(np.add, 'x')",
     "tensor_partition_reduce: data must be a tile"),
    (_CLASSIC_HEAD, "nisa.dropout(1.5, 0.5)", "dropout: data must be a tile"),
    (_CLASSIC_HEAD, "nl.matmul('x', w, transpose_x=True)", "nl.matmul: x must be a tile"),
    (_CLASSIC_HEAD, "nisa.tensor_copy_predicated(src='x', dst=x, predicate=pred)",
     "tensor_copy_predicated: src must be a tile or a number"),
    (_CURRENT_HEAD, "nisa.dma_transpose(dst=d, src='x')", "dma_transpose: src must be a tensor"),
    (_CURRENT_HEAD, "nisa.affine_select(dst=d, pattern=[[1, 64]], channel_multiplier=0, "
                    "on_true_tile=x, on_false_value='x')",
     "affine_select: on_false_value must be a number"),
    (_CURRENT_HEAD, "nisa.tensor_copy_predicated(dst=d, src=[1, 2], predicate=pred)",
     "tensor_copy_predicated: src must be a tile or a number"),
    (_CURRENT_HEAD, "nl.program_id('x')", "program_id: a grid axis must be an integer"),
    (_CURRENT_HEAD, "nl.program_id(np.ones(3))", "program_id: a grid axis must be an integer"),
    (_CURRENT_HEAD, "nl.num_programs(1.5)", "num_programs: a grid axis must be an integer"),
    (_CURRENT_HEAD, "nl.num_programs(['x'])", "num_programs: a grid axis must be an integer"),
    (_CURRENT_HEAD, "nl.shared_identity_matrix('x')",
     "nl.shared_identity_matrix: n must be an integer"),
])
def test_malformed_operand_is_a_located_error(tmp_path, head, call, match):
    src = head.replace("CALL", call)
    path = tmp_path / "kern.py"
    path.write_text(src)
    line = src.splitlines().index(f"    y = {call}") + 1
    with pytest.raises(SimError, match=match) as e:
        sim.run(sim.load(str(path), "k"), [np.ones((128, 64), np.float32),
                                            np.ones((128, 128), np.float32)], "trn2")
    d = e.value.diagnostics[0]
    assert d.loc is not None and Path(d.loc.path).name == "kern.py" and d.loc.line == line


@pytest.mark.parametrize("call", [
    "nisa.tensor_copy_predicated(dst=d, src=2.0, predicate=pred)",    # a scalar src (SH)
    "nl.program_id(np.int64(0))", "nl.num_programs((0,))", "nl.shared_identity_matrix(64.0)",
])
def test_well_formed_neighbours_still_run(tmp_path, call):
    src = _CURRENT_HEAD.replace("CALL", call)
    path = tmp_path / "kern.py"
    path.write_text(src)
    sim.run(sim.load(str(path), "k"), [np.ones((128, 64), np.float32),
                                        np.ones((128, 128), np.float32)], "trn2")


# ---- exact int32 arithmetic (GpSimd): the result must fit the destination --------------------
@pytest.mark.parametrize("b,ok", [(2**30 - 1, True), (2**30, False)])
def test_int32_exact_add_overflow(b, ok):
    """2**30 + (2**30 - 1) = 2**31 - 1 fits int32; 2**30 + 2**30 wrapped to -2**31 silently."""
    x = np.full((4, 8), 2**30, np.int32)
    y = np.full((4, 8), b, np.int32)

    def body(s, t):
        d = nl.ndarray(s.shape, dtype=nl.int32, buffer=nl.sbuf)
        nisa.tensor_tensor(dst=d, data1=s, data2=t, op=nl.add)  # the line
        return d
    line = sys._getframe().f_lineno - 2
    if ok:
        np.testing.assert_array_equal(current(body, x, y), x.astype(np.int64) + y)
        return
    with pytest.raises(SimError, match=r"tensor_tensor add: a value written to a int32 tile .* "
                                       r"outside \[-2147483648, 2147483647\]") as e:
        current(body, x, y)
    assert _line_of(e.value) == line


# ---- API drift: keywords of the other API generation ---------------------------------------
def test_classic_isa_call_with_current_dst_keyword():
    """dtype-less classic calls ended in **kwargs: nisa.tensor_tensor(dst=t, ...) in a
    neuronxcc.nki kernel left t unwritten silently; the returned form still runs."""
    a = rnd(8, 16)

    def drift(t):
        y = cnl.ndarray(t.shape, dtype=cnl.float32, buffer=cnl.sbuf)
        cisa.tensor_tensor(dst=y, data1=t, data2=t, op=np.add)  # the line
        return y
    line = sys._getframe().f_lineno - 2
    with pytest.raises(SimError, match=r"nisa.tensor_tensor: dst= is the current nki API.*"
                                       r"has no dst and returns its result") as e:
        classic(drift, a)
    assert _line_of(e.value) == line
    np.testing.assert_allclose(classic(lambda t: cisa.tensor_tensor(t, t, op=np.add), a), 2 * a)
    # the classic calls whose S25 signature has dst keep it
    np.testing.assert_allclose(classic(lambda t: _dma(t), a), a)


def _dma(t):
    y = cnl.ndarray(t.shape, dtype=cnl.float32, buffer=cnl.sbuf)
    cisa.dma_copy(dst=y, src=t)
    return y


def test_current_dma_copy_unknown_keyword():
    """dma_copy took **kw: an unknown keyword was ignored silently; dtype= (the other dst-first
    calls' public form) and mask=None still run."""
    a = rnd(8, 16)

    def body(kw):
        def f(t):
            y = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.sbuf)
            nisa.dma_copy(dst=y, src=t, **kw)
            return y
        return f
    with pytest.raises(SimError, match=r"dma_copy: unexpected keyword argument 'bogus'"):
        current(body({"bogus": 1}), a)
    with pytest.raises(SimError, match=r"dma_copy\(mask=...\) \(removed in the current API\)"):
        current(body({"mask": True}), a)
    for ok in ({"dtype": nl.float32}, {"mask": None}, {}):
        np.testing.assert_allclose(current(body(ok), a), a)


def test_current_isa_call_in_classic_returned_form():
    """classic-form: ``t[...] = nisa.tensor_tensor(data1=..., ...)`` in a current kernel (no dst)
    was Python's TypeError; it is a located error naming the nki 0.3 signature. A classic
    keyword (mask=) on a dst-first call is the same error."""
    a = rnd(8, 16)

    def returned(t):
        y = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.sbuf)
        y[...] = nisa.tensor_tensor(data1=t, data2=t, op=nl.add)  # the line
        return y
    line = sys._getframe().f_lineno - 2
    with pytest.raises(SimError, match=r"nisa.tensor_tensor: the call does not match the nki "
                                       r"0.3 signature .*missing 1 required positional "
                                       r"argument: 'dst'") as e:
        current(returned, a)
    assert _line_of(e.value) == line

    def masked(t):
        y = nl.ndarray(t.shape, dtype=nl.float32, buffer=nl.sbuf)
        nisa.nc_transpose(dst=y, data=t, mask=None)
        return y
    with pytest.raises(SimError, match=r"nisa.nc_transpose: the call does not match.*"
                                       r"unexpected keyword argument 'mask'"):
        current(masked, a)
