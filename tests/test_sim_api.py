"""Simulator API surface: installed()/load, nki.jit forms, SPMD ids, cost-only runs, dtypes and
rounding, views (slices, nl.ds, strides, .ap, reshape), ISA ops, the trace, and the CLI."""

import sys
import types
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import nkigen.sim.nki as nki
import nkigen.sim.nki.isa as nisa
import nkigen.sim.nki.language as nl
from nkigen import sim
from nkigen.cli import main
from nkigen.hw import Engine
from nkigen.sim import SimError

rng = np.random.default_rng(1)
KDIR = Path(__file__).parent / "sim_kernels"


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# ---- module injection ------------------------------------------------------------------------
def test_installed_injects_and_restores(monkeypatch):
    fake = types.ModuleType("nki")
    monkeypatch.setitem(sys.modules, "nki", fake)
    monkeypatch.delitem(sys.modules, "nki.language", raising=False)
    with sim.installed():
        import nki as inside
        import nki.isa as nisa_inside
        import nki.language as nl_inside
        assert inside is nki and nl_inside is nl and nisa_inside is nisa
        assert sys.modules["nki.typing"] is nki.typing
    assert sys.modules["nki"] is fake
    assert "nki.language" not in sys.modules
    assert "nki.typing" not in sys.modules


def test_installed_restores_on_error():
    before = {k: sys.modules.get(k) for k in ("nki", "nki.isa")}
    with pytest.raises(RuntimeError), sim.installed():
        raise RuntimeError
    assert {k: sys.modules.get(k) for k in ("nki", "nki.isa")} == before


def test_load_errors(tmp_path):
    f = tmp_path / "k.py"
    f.write_text("import nki\n\n@nki.jit\ndef good(a):\n    return a\n")
    with pytest.raises(SimError, match="no kernel named 'bad'.*available: good"):
        sim.load(f, "bad")
    with pytest.raises(SimError, match="cannot read kernel file"):
        sim.load(tmp_path / "missing.py", "k")
    (tmp_path / "s.py").write_text("def k(:\n")
    with pytest.raises(SimError, match=r"s.py:1:.*syntax error"):
        sim.load(tmp_path / "s.py", "k")


# ---- jit forms, SPMD -------------------------------------------------------------------------
def _copy_kernel(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nl.store(out, value=nl.load(a))
    return out


def test_jit_forms_run_in_simulator():
    a = randn(128, 64)
    for k in (nki.jit(_copy_kernel), nki.jit()(_copy_kernel),
              nki.jit(mode="simulation")(_copy_kernel),
              nki.jit(nki.jit(_copy_kernel))):
        np.testing.assert_array_equal(k(a), a)
    np.testing.assert_array_equal(nki.simulate(nki.jit(_copy_kernel))(a), a)
    np.testing.assert_array_equal(sim.simulate(_copy_kernel)(a), a)


def test_platform_target_selects_tile_sizes_and_version(monkeypatch):
    # nki 0.3 selects the target with NEURON_PLATFORM_TARGET_OVERRIDE (SH nki/migration);
    # nki.jit(platform_target=...) is an error there (tests/test_conformance_lang.py)
    seen = {}

    def k(a):
        seen["v"] = nisa.get_nc_version()
        seen["sbuf"] = nl.tile_size.total_available_sbuf_size
        return _copy_kernel(a)

    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", "trn1")
    nki.jit(k)(randn(128, 4))
    monkeypatch.delenv("NEURON_PLATFORM_TARGET_OVERRIDE")
    assert seen == {"v": nisa.nc_version.gen2, "sbuf": 180224}
    sim.run(k, [randn(128, 4)], target="trn2")
    assert seen == {"v": nisa.nc_version.gen3, "sbuf": 212984}


def test_spmd_ids_and_shared_output():
    ids = []

    @nki.jit
    def k(a):
        out = nl.ndarray((8, 4), dtype=nl.float32, buffer=nl.shared_hbm)
        i, j = nl.program_id(0), nl.program_id(1)
        ids.append((i, j, nl.num_programs(0), nl.num_programs(1), nl.num_programs(),
                    nl.num_programs((0, 1)), nl.program_ndim()))
        t = nl.full((1, 4), float(10 * i + j), dtype=nl.float32)
        nl.store(out[i * 2 + j:i * 2 + j + 1, :], value=t)
        return out

    out = k[4, 2](np.zeros(1, np.float32))
    # nki 0.3: num_programs() defaults to axes=0 (SH nki/migration)
    assert ids[0] == (0, 0, 4, 2, 4, 8, 2) and ids[-1] == (3, 1, 4, 2, 4, 8, 2)
    np.testing.assert_array_equal(out[:, 0], [10 * i + j for i in range(4) for j in range(2)])


def test_kernel_calls_jitted_helper():
    @nki.jit
    def helper(t):
        return nl.multiply(t, 2.0)

    @nki.jit
    def k(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(out, value=helper(nl.load(a)))
        return out

    a = randn(128, 8)
    np.testing.assert_array_equal(k(a), 2 * a)


# ---- cost-only -------------------------------------------------------------------------------
def test_cost_only_trace_equals_numeric_trace_without_data():
    matmul_kernel = sim.load(KDIR / "small.py", "matmul_kernel")
    a, b = randn(256, 128), randn(256, 512)
    full = sim.run(matmul_kernel, [a, b])
    cheap = sim.run(matmul_kernel, [sim.placeholder(a.shape, "float32"),
                                    sim.placeholder(b.shape, "float32")], numerics=False)
    assert [(i.op, i.engine, i.reads, i.writes) for i in cheap.instrs] == \
        [(i.op, i.engine, i.reads, i.writes) for i in full.instrs]
    assert cheap.outputs == (sim.Placeholder((128, 512), np.dtype(np.float32)),)
    with pytest.raises(SimError, match="placeholder inputs need a cost-only run"):
        sim.run(matmul_kernel, [sim.placeholder(a.shape, "float32"), b])


def test_nki_typing_placeholder():
    p = nki.typing.tensor[[8192, 4096], nl.bfloat16]
    assert p == sim.placeholder((8192, 4096), ml_dtypes.bfloat16)


# ---- dtypes and rounding ---------------------------------------------------------------------
def test_store_rounds_to_bf16_and_dma_casts():
    def k(a):
        out = nl.ndarray(a.shape, dtype=nl.bfloat16, buffer=nl.shared_hbm)
        t = nl.load(a)                        # fp32 tile
        nisa.dma_copy(dst=out, src=t)         # cast fp32 -> bf16 on the way
        return out

    a = randn(128, 64)
    np.testing.assert_array_equal(sim.simulate(k)(a), a.astype(ml_dtypes.bfloat16))


def test_engine_math_fp32_and_storage_rounding():
    def k(a):
        out = nl.ndarray(a.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(a, dtype=nl.bfloat16)     # rounded on load
        y = nl.multiply(t, 3.0)               # weak float scalar -> fp32 result
        assert y.dtype == nl.float32
        nl.store(out, value=y)
        return out

    a = randn(128, 32)
    ref = a.astype(ml_dtypes.bfloat16).astype(np.float32) * np.float32(3.0)
    np.testing.assert_array_equal(sim.simulate(k)(a), ref)


def test_promotion_rules():
    from nkigen.sim import dt
    assert dt.promote(dt.F16, dt.BF16) == dt.F32
    assert dt.promote(dt.FP8_E4M3, dt.FP8_E5M2) == dt.BF16
    assert dt.promote(np.dtype(np.int8), np.dtype(np.uint8)) == np.dtype(np.int16)
    assert dt.promote(np.dtype(np.int32), np.dtype(np.uint32)) == dt.F32
    assert dt.promote(dt.BF16, np.dtype(np.int32)) == dt.BF16


# ---- views -----------------------------------------------------------------------------------
def _view_kernel(view):
    def k(a):
        t = nl.load(a)
        v = view(t)
        out = nl.ndarray(v.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        s = nl.ndarray(v.shape, dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=s, src=v)       # DMA: views may start on any partition
        nl.store(out, value=s)
        return out
    return k


@pytest.mark.parametrize("view,ref", [
    (lambda t: t[:, 0:16:2], lambda a: a[:, 0:16:2]),
    (lambda t: t[3, :], lambda a: a[3:4, :]),                    # int on P keeps size 1
    (lambda t: t[:, 5], lambda a: a[:, 5:6]),                    # int on F: per-partition
    (lambda t: t[nl.ds(8, 16), nl.ds(4, 8)], lambda a: a[8:24, 4:12]),
    (lambda t: t.reshape((128, 4, 8)), lambda a: a.reshape(128, 4, 8)),
    (lambda t: t.ap([[32, 128], [1, 4]], offset=2), lambda a: a[:, 2:6]),
    (lambda t: t.ap([[32, 64], [4, 8], [1, 2]], offset=64),
     lambda a: a[2:66, :].reshape(64, 8, 4)[:, :, 0:2]),
])
def test_views(view, ref):
    a = np.arange(128 * 32, dtype=np.float32).reshape(128, 32)
    np.testing.assert_array_equal(sim.simulate(_view_kernel(view))(a), ref(a))


def test_ap_rules():
    def k(a):
        t = nl.load(a)
        t.ap([[16, 64], [1, 32]])
    with pytest.raises(SimError, match="partition-dim striding"):
        sim.run(k, [randn(128, 32)])

    def k2(a):
        # .ap() on a view is allowed since SDK 2.31 (SH nki/api/nki/language NkiTensor.ap,
        # nki-aps.rst "Composition and .ap on a view"); the start is the view's
        t = nl.load(a)
        t[64:128].ap([[32, 64], [1, 32]], offset=32 * 64 + 32)
    with pytest.raises(SimError, match="access pattern out of bounds"):
        sim.run(k2, [randn(128, 32)])


def test_hbm_reshape_and_3d_slices():
    def k(a):
        out = nl.ndarray((128, 64), dtype=a.dtype, buffer=nl.shared_hbm)
        a3 = a.reshape((2, 128, 32))
        t = nl.ndarray((128, 2, 32), dtype=a.dtype, buffer=nl.sbuf)
        for i in nl.affine_range(2):
            nisa.dma_copy(dst=t[:, i, :], src=a3[i])
        nl.store(out, value=t.reshape((128, 64)))
        return out

    a = randn(256, 32)
    ref = a.reshape(2, 128, 32).transpose(1, 0, 2).reshape(128, 64)
    np.testing.assert_array_equal(sim.simulate(k)(a), ref)


# ---- ISA ops ---------------------------------------------------------------------------------
def _run_tile(body, a):
    def k(x):
        t = nl.load(x)
        r = body(t)
        out = nl.ndarray(r.shape, dtype=r.dtype, buffer=nl.shared_hbm)
        nl.store(out, value=r)
        return out
    return sim.simulate(k)(a)


def test_iota_and_affine_select_causal_mask():
    def body(t):
        io = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        nisa.iota(io, [[1, 64]], offset=3, channel_multiplier=100)
        sel = nl.ndarray((128, 64), dtype=nl.float32, buffer=nl.sbuf)
        # keep where p - f >= 0 (causal), else -9984
        nisa.affine_select(sel, [[-1, 64]], 1, io, -9984.0, cmp_op=nl.greater_equal)
        return sel

    out = _run_tile(body, randn(128, 64))
    p, f = np.arange(128)[:, None], np.arange(64)[None, :]
    np.testing.assert_array_equal(out, np.where(p >= f, 3 + 100 * p + f, -9984.0))


def test_tensor_tensor_scan_with_initial():
    def body(t):
        o = nl.ndarray((128, 16), dtype=nl.float32, buffer=nl.sbuf)
        ones = nl.full((128, 16), 0.5, dtype=nl.float32)
        nisa.tensor_tensor_scan(o, ones, t, t[:, 0], np.multiply, np.add)
        return o

    a = randn(128, 16)
    r = a[:, 0].astype(np.float64).copy()
    ref = np.empty_like(a, dtype=np.float64)
    for i in range(16):
        r = r * 0.5 + a[:, i]
        ref[:, i] = r
    np.testing.assert_allclose(_run_tile(body, a), ref, rtol=1e-5, atol=1e-6)


def test_tensor_scalar_reverse_and_reduce_negate():
    def body(t):
        o = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_scalar(o, t, np.subtract, 1.0, reverse0=True, op1=nl.multiply, operand1=2.0)
        r = nl.ndarray((128, 1), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_reduce(r, np.add, o, axis=1, negate=True)
        return r

    a = randn(128, 8)
    np.testing.assert_allclose(_run_tile(body, a)[:, 0], -((1.0 - a) * 2).sum(1), rtol=1e-5)


def test_bn_stats_values():
    def body(t):
        s = nl.ndarray((128, 6), dtype=nl.float32, buffer=nl.sbuf)
        nisa.bn_stats(s, t)
        return s

    a = randn(128, 10)
    out = _run_tile(body, a)
    ev, od = a[:, 0::2], a[:, 1::2]
    np.testing.assert_allclose(out[:, 0], 5)
    np.testing.assert_allclose(out[:, 1], ev.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 5], od.var(1) * 5, rtol=1e-4, atol=1e-5)


def test_numpy_ufuncs_as_ops_and_activation_scale_bias():
    def body(t):
        o = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.sbuf)
        nisa.activation(o, np.exp, t, bias=t[:, 1], scale=t[:, 0])
        return o

    a = randn(128, 8) * 0.1
    ref = np.exp(a * a[:, 0:1] + a[:, 1:2])
    np.testing.assert_allclose(_run_tile(body, a), ref, rtol=1e-6)


# ---- trace -----------------------------------------------------------------------------------
def test_trace_records_engines_lines_regions_and_loops():
    matmul_kernel = sim.load(KDIR / "small.py", "matmul_kernel")
    res = sim.run(matmul_kernel, [randn(256, 128), randn(256, 512)])
    dma = [i for i in res.instrs if i.engine is Engine.DMA]
    mm = [i for i in res.instrs if i.engine is Engine.TENSOR]
    assert len(mm) == 2 and len(dma) == 5
    load = dma[0]
    assert load.hbm_bytes == load.nbytes == 128 * 128 * 4 and load.chunk_bytes == 512
    assert load.file.endswith("small.py") and load.line > 0
    assert mm[0].loops == (("sequential", 0, 2),) and mm[1].accumulate
    assert mm[0].reads[0].mem.value == "sbuf" and mm[0].writes[0].mem.value == "psum"
    assert mm[0].writes[0].b1 - mm[0].writes[0].b0 == 2048


# ---- CLI -------------------------------------------------------------------------------------
KFILE = "tests/sim_kernels/basic.py"


def test_cli_runs_and_prints_stats(capsys):
    assert main(["sim", f"{KFILE}::tiled_add", "-i", "a=256x64:bfloat16",
                 "-i", "b=256x64:bfloat16", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "output 0: shape [256, 64] bfloat16" in out and "min " in out


def test_cli_cost_only(capsys):
    assert main(["sim", "tests/sim_kernels/matmul.py::matmul_tiled", "-i", "lhsT=256x128",
                 "-i", "rhs=256x512", "--cost-only", "--target", "trn1"]) == 0
    assert "(cost-only)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    ([f"{KFILE}::nope", "-i", "a=1x1"], "no kernel named 'nope'"),
    ([f"{KFILE}::tiled_add", "-i", "a=128x4"], "missing --input for kernel parameter 'b'"),
    ([f"{KFILE}::tiled_add", "-i", "a=256x4", "-i", "b=128x4"], "basic.py:16:"),
    ([f"{KFILE}::tiled_add", "-i", "a=12y4"], "bad --input"),
    ([f"{KFILE}::tiled_add", "-i", "a=128x4:int64", "-i", "b=128x4"], "unsupported dtype"),
])
def test_cli_errors_exit_1_without_traceback(capsys, argv, msg):
    assert main(["sim", *argv]) == 1
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_cli_python_error_in_kernel_is_located(tmp_path, capsys):
    f = tmp_path / "bad.py"
    f.write_text("import nki\nimport nki.language as nl\n\n@nki.jit\ndef k(a):\n"
                 "    x = nl.load(a)\n    return x.nonexistent\n")
    assert main(["sim", f"{f}::k", "-i", "a=128x4"]) == 1
    err = capsys.readouterr().err
    assert "bad.py:7:" in err and "AttributeError" in err and "Traceback" not in err


def test_regions_do_not_leak_between_runs():
    def make(buf, dtype):
        def k(a):
            t = nl.ndarray((128, 64), dtype=dtype, buffer=buf)
            nisa.memset(t, 0.0)
        return k

    r1 = sim.run(make(nl.sbuf, nl.float32), [np.zeros((1, 1), np.float32)])
    r2 = sim.run(make(nl.psum, nl.bfloat16), [np.zeros((1, 1), np.float32)])
    (w1,), (w2,) = r1.instrs[0].writes, r2.instrs[0].writes
    assert w1.tensor == w2.tensor                       # ids restart per run ...
    assert (w1.mem.value, w1.b1) == ("sbuf", 256)       # ... regions do not
    assert (w2.mem.value, w2.b1) == ("psum", 128)


def test_isa_dtype_kwarg_rounds_through_it():
    def k(a):
        out = nl.ndarray(a.shape, dtype=nl.float32, buffer=nl.shared_hbm)
        t = nl.load(a)
        s = nl.ndarray(a.shape, dtype=nl.float32)
        nisa.tensor_copy(dst=s, src=t, dtype=nl.bfloat16)    # public tutorials do this
        nl.store(out, value=s)
        return out

    a = randn(128, 16)
    np.testing.assert_array_equal(sim.simulate(k)(a),
                                  a.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_library_style_names():
    assert issubclass(type("H", (nl.NKIObject,), {}), nl.NKIObject)
    assert nl.tensor is nl.ndarray_type and nl.float8_e4m3fn != nl.float8_e4m3
    with pytest.raises(SimError, match="unsupported dtype"):
        sim.run(lambda a: nl.ndarray((128, 4), dtype=nl.float8_e4m3fn_x4),
                [np.zeros((1, 1), np.float32)])


def test_direct_allocation_aliases_physical_memory():
    def k(a):
        out = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.shared_hbm)
        x = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.sbuf, address=(0, 1024))
        y = nl.ndarray((128, 4), dtype=nl.float32, buffer=nl.sbuf, address=(0, 1040))
        nisa.dma_copy(x, a)
        nisa.memset(y, 7.0)                      # overwrites x[:, 4:8] (same bytes)
        z = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.sbuf, address=(0, 4096))
        nisa.tensor_copy(z[:, 0:4], x.ap([[8, 128], [1, 4]], offset=4))
        nisa.tensor_copy(z[:, 4:8], x[:, 0:4])
        nl.store(out, value=z)
        return out

    a = randn(128, 8)
    res = sim.run(k, [a])
    np.testing.assert_array_equal(res.outputs[0][:, :4], 7.0)
    np.testing.assert_array_equal(res.outputs[0][:, 4:], a[:, :4])
    w_x, w_y = res.instrs[0].writes[0], res.instrs[1].writes[0]
    assert w_x.tensor == w_y.tensor == 0 and (w_y.b0, w_y.b1) == (1040, 1056)
    assert res.peak_sbuf_bytes == 0                      # direct allocations are not pooled


def test_direct_allocation_checks():
    def k(a):
        nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.sbuf, address=(0, 212984 - 16))
    with pytest.raises(SimError, match="direct sbuf allocation out of range"):
        sim.run(k, [randn(1, 1)])

    def k2(a):
        nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.psum, address=(0, 6))
    with pytest.raises(SimError, match="4-byte aligned"):
        sim.run(k2, [randn(1, 1)])

    def k3(a):
        t = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.sbuf, address=(0, 64))
        o = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(o, t)                              # never written: NaN
        out = nl.ndarray((128, 8), dtype=nl.float32, buffer=nl.shared_hbm)
        nl.store(out, value=o)
        return out
    assert np.isnan(sim.simulate(k3)(randn(1, 1))).all()


def test_nkiobject_records():
    from dataclasses import dataclass, field

    @dataclass
    class Rec(nl.NKIObject):
        a = None
        b: int = 3
        c: list = field(default_factory=list)

    r = Rec(a=1)
    assert (r.a, r.b, r.c) == (1, 3, [])


def test_reinterpret_casts():
    def k(a):
        out = nl.ndarray((128, 8), dtype=nl.uint16, buffer=nl.shared_hbm)
        t = nl.load(a)                                        # [128, 4] fp32
        bits = nl.ndarray((128, 8), dtype=nl.uint16)
        nisa.tensor_copy(bits, t.view(nl.uint16))             # same bytes as uint16
        nisa.tensor_copy(bits[:, 0:2], t.ap([[8, 128], [1, 2]], dtype=nl.uint16))
        nl.store(out, value=bits)
        return out

    a = randn(128, 4)
    np.testing.assert_array_equal(sim.simulate(k)(a), a.view(np.uint16))


def test_cli_writes_trace(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["sim", "tests/sim_kernels/matmul.py::matmul_tiled", "-i", "lhsT=256x128",
                 "-i", "rhs=256x512", "--trace", str(out)]) == 0
    import json
    events = json.loads(out.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    assert any("nc_matmul" in str(e.get("name", "")) for e in events)
    assert "latency" in capsys.readouterr().out


def test_load_sees_sibling_modules(tmp_path):
    (tmp_path / "helpers_for_k.py").write_text("SCALE = 3.0\n")
    (tmp_path / "k.py").write_text(
        "import nki\nimport nki.language as nl\nfrom helpers_for_k import SCALE\n\n"
        "@nki.jit\ndef k(a):\n    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)\n"
        "    nl.store(out, value=nl.multiply(nl.load(a), SCALE))\n    return out\n")
    a = randn(128, 4)
    np.testing.assert_array_equal(sim.load(tmp_path / "k.py", "k")(a), a * 3)
    assert str(tmp_path) not in sys.path


def test_array_kwargs_are_kernel_inputs_and_versions_are_ordered():
    def k(a, bias=None):      # no '*' separator in nki 0.3 kernels (SH nki/migration)
        assert nisa.get_nc_version() >= nisa.nc_version.gen3
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(out, value=nl.add(nl.load(a), nl.load(bias)))
        return out

    a, b = randn(128, 4), randn(128, 4)
    np.testing.assert_array_equal(sim.simulate(k)(a, bias=b), a + b)


def test_float8_formats_saturate_at_their_own_range():
    """NKI float8_e4m3 is IEEE-style (max 240); float8_e4m3fn is the OCP format (max 448)."""
    import ml_dtypes

    assert float(ml_dtypes.finfo(nl.float8_e4m3).max) == 240.0
    assert float(ml_dtypes.finfo(nl.float8_e4m3fn).max) == 448.0
