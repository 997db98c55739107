"""The simulator's and the cost model's fast paths change nothing observable.

Every shipped spec's generated kernel (both dialects, every test case), the public-structure
benchmark kernels and the hand kernels run twice: on the fast path and on the reference path
(``NKIGEN_SIM_REFERENCE=1``, nkigen/sim/mode.py). Outputs must be equal bit for bit; the
instruction trace record for record; warnings, peak memory, the cost report and its timeline
(every start/busy/end time and DMA piece) exactly; a rejected kernel must be rejected with the
same message. Cost-only runs (placeholders) are compared the same way.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from nkigen import sim
from nkigen.sim import emit, mode
from nkigen.sim.errors import SimError

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
KDIR = Path(__file__).parent / "sim_kernels"
BENCH = ROOT / "benchmarks" / "kernels"
sys.path.insert(0, str(Path(__file__).parent))


def _run(monkeypatch, reference: bool, kernel, args, target: str, numerics: bool,
         worker: bool = True):
    from nkigen.sim import batch
    monkeypatch.setenv(mode.ENV, "1" if reference else "0")
    # the fast path with the TensorE worker deferring matmul products whatever the load, or
    # without it (the default: products straight into PSUM, classic fresh products on read)
    monkeypatch.setattr(batch, "FORCE", worker)
    try:
        return sim.run(kernel, args, target=target, numerics=numerics)
    except SimError as e:           # a rejected kernel: rejected the same way on both paths
        return str(e)
    finally:
        monkeypatch.delenv(mode.ENV)


def _report_fields(rep) -> dict:
    d = {f.name: getattr(rep, f.name) for f in dataclasses.fields(rep) if f.name != "timeline"}
    tl = rep.timeline
    d["timeline"] = (list(tl.start), list(tl.busy), list(tl.end), list(tl.pieces),
                     dict(tl.engine_busy_ns), list(tl.elided))
    return d


def assert_same(fast, ref) -> None:
    if isinstance(fast, str) or isinstance(ref, str):
        assert fast == ref
        return
    assert len(fast.outputs) == len(ref.outputs)
    for f, r in zip(fast.outputs, ref.outputs):
        if isinstance(r, sim.Placeholder):
            assert f == r
            continue
        f, r = np.asarray(f), np.asarray(r)
        assert f.dtype == r.dtype and f.shape == r.shape
        assert f.tobytes() == r.tobytes(), "outputs differ bit for bit"
    assert len(fast.instrs) == len(ref.instrs)
    assert fast.instrs == ref.instrs
    assert fast.warnings == ref.warnings
    assert (fast.peak_sbuf_bytes, fast.peak_psum_bytes) == \
        (ref.peak_sbuf_bytes, ref.peak_psum_bytes)
    assert _report_fields(fast.report) == _report_fields(ref.report)


def check(monkeypatch, kernel, args, target: str = "trn2", runs: bool = False,
          workers: tuple[bool, ...] = (True, False)) -> None:
    """Numerics and cost-only runs agree between the fast and the reference path (``runs``:
    the numerics run must succeed, not be rejected the same way on both)."""
    for numerics in (True, False):
        a = args if numerics else [sim.placeholder(x.shape, x.dtype)
                                   if isinstance(x, np.ndarray) else x for x in args]
        ref = _run(monkeypatch, True, kernel, a, target, numerics)
        if runs and numerics:
            assert not isinstance(ref, str), ref
        for worker in workers if numerics else (False,):
            assert_same(_run(monkeypatch, False, kernel, a, target, numerics, worker), ref)


def test_widen_is_exact_for_every_bfloat16_encoding(monkeypatch):
    monkeypatch.setattr(mode, "FAST", True)
    x = np.arange(1 << 16, dtype=np.uint16).view(ml_dtypes.bfloat16)
    got = emit.widen(x)
    assert got.dtype == np.float32
    assert (got.view(np.uint32) == x.astype(np.float32).view(np.uint32)).all()
    y = x.reshape(256, 256)[:, 3:200:3]          # a strided view keeps its shape and values
    np.testing.assert_array_equal(emit.widen(y).view(np.uint32),
                                  y.astype(np.float32).view(np.uint32))


def test_reference_switch_is_read_per_run(monkeypatch):
    monkeypatch.setenv(mode.ENV, "1")
    assert mode.configure() is False and mode.reference()
    monkeypatch.setenv(mode.ENV, "0")
    assert mode.configure() is True and not mode.reference()


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_spec_kernels_identical(path, dialect, monkeypatch):
    import shipped
    from codegen_check import load_source

    from nkigen.testdata import cases, make_inputs

    spec = shipped.spec(path)
    kernel = load_source(shipped.source(path, dialect), spec.name)
    for case in cases(spec):
        inputs = list(make_inputs(spec, case).values())
        # the default fast path (the opt-in TensorE worker has its own tests below and runs
        # on every public and hand kernel)
        check(monkeypatch, kernel, inputs, runs=True, workers=(False,))


@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, np.float32])
@pytest.mark.parametrize("name", ["tiled", "hoisted", "block_free", "fully_blocked"])
def test_tutorial_matmuls_identical(name, dtype, monkeypatch):
    rng = np.random.default_rng(1)
    lhsT = rng.standard_normal((512, 256)).astype(dtype)
    rhs = rng.standard_normal((512, 1024)).astype(dtype)
    lhsT[3, 5] = np.nan          # NaN/Inf propagate the same way
    rhs[7, 9] = np.inf
    check(monkeypatch, sim.load(BENCH / "matmul_tutorial.py", "KERNELS")[name], [lhsT, rhs],
          target="trn1", runs=True)


@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, np.float32])
@pytest.mark.parametrize("name", ["nl", "isa"])
def test_classic_tutorial_matmuls_identical(name, dtype, monkeypatch):
    rng = np.random.default_rng(2)
    lhsT = rng.standard_normal((256, 256)).astype(dtype)
    rhs = rng.standard_normal((256, 1024)).astype(dtype)
    lhsT[3, 5] = np.nan
    rhs[7, 9] = -np.inf
    check(monkeypatch, sim.load(BENCH / "matmul_classic.py", "KERNELS")[name], [lhsT, rhs],
          target="trn1", runs=True)


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_mamba_tutorial_identical(version, monkeypatch):
    rng = np.random.default_rng(3)
    ch, seq, states = 128, 256, 16
    f = np.float32
    args = [rng.random((1, ch, seq), f), rng.standard_normal((1, ch, seq), f),
            -rng.random((ch, states), f), rng.standard_normal((1, states, seq), f),
            rng.standard_normal((1, states, seq), f)]
    check(monkeypatch, sim.load(BENCH / "mamba_tutorial.py", "KERNELS")[version], args,
          target="trn1", runs=True)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_layernorm_tutorial_identical(version, monkeypatch):
    rng = np.random.default_rng(4)
    f = np.float32
    args = [rng.standard_normal((300, 1000), f), rng.standard_normal((1, 1000), f),
            rng.standard_normal((1, 1000), f)]
    check(monkeypatch, sim.load(BENCH / "layernorm_tutorial.py", "KERNELS")[version], args,
          target="trn1", runs=True)


def test_row_tutorials_identical(monkeypatch):
    rng = np.random.default_rng(5)
    f = np.float32
    path = BENCH / "row_tutorials.py"
    check(monkeypatch, sim.load(path, "rmsnorm_tutorial"),
          [rng.standard_normal((256, 512), f), rng.standard_normal((512,), f)], runs=True)
    check(monkeypatch, sim.load(path, "layernorm_tutorial"),
          [rng.standard_normal((256, 512), f), rng.standard_normal((512,), f),
           rng.standard_normal((512,), f)], runs=True)


HAND = {
    ("basic.py", "tiled_add"): [(256, 512), (256, 512)],
    ("basic.py", "isa_add"): [(200, 96), (200, 96)],
    ("basic.py", "spmd_add"): [(256, 512), (256, 512)],
    ("basic.py", "softmax"): [(256, 300)],
    ("basic.py", "softmax_nl"): [(256, 300)],
    ("basic.py", "rmsnorm"): [(256, 384), (1, 384)],
    ("basic.py", "layernorm"): [(256, 1024), (1, 1024), (1, 1024)],
    ("matmul.py", "matmul_tiled"): [(256, 256), (256, 1024)],
    ("matmul.py", "matmul_hoisted"): [(256, 256), (256, 1024)],
    ("matmul.py", "matmul_blocked"): [(256, 256), (256, 1024)],
    ("matmul.py", "matmul_nl"): [(128, 128), (128, 512)],
    ("matmul.py", "transpose_pe"): [(128, 96)],
    ("matmul.py", "transpose_dma"): [(128, 96)],
    ("small.py", "matmul_kernel"): [(128, 128), (128, 512)],
}


@pytest.mark.parametrize("key", list(HAND), ids=lambda k: f"{k[0]}::{k[1]}")
def test_hand_kernels_identical(key, monkeypatch):
    rng = np.random.default_rng(2)
    args = [rng.standard_normal(s).astype(np.float32) for s in HAND[key]]
    kernel = sim.load(KDIR / key[0], key[1])
    if key[1].startswith("spmd_"):
        kernel = kernel[2, 2]
    check(monkeypatch, kernel, args, runs=True)


# tests/classic_kernels/basic.py (classic API), at the sizes tests/test_classic_sim.py uses;
# a dtype other than float32 is given as (shape, dtype), an int32 index tile as an array,
# plain Python values as themselves; a grid as ("grid", n).
CDIR = Path(__file__).parent / "classic_kernels"
_IDX = np.array([5, 0, 63, 7, 8, 31, 2, 40], np.int32)
CLASSIC = {
    "exp_ragged": [[(300, 96)], [(5, 96)]],
    "add_mgrid": [[(128, 512), (128, 512)]],
    "even_odd_cols": [[(64, 40)]],
    "ragged_cols_rows": [[(200, 300), 1.5], [(7, 9), 1.5]],
    "matmul_psum": [[((384, 256), "bfloat16"), ((384, 1024), "bfloat16")]],
    "matmul_nl": [[(64, 256), (256, 512)]],
    "sbuf_accumulate": [[(256, 64), (256, 128)]],
    "softmax": [[(250, 128)]],
    "layernorm_v1": [[(300, 1000), (1000,), (1000,)]],
    "maxpool2d": [[(16, 8, 12)]],
    "iota_select": [[(64, 64)]],
    "bn_layernorm": [[(128, 700)]],
    "add_out_arg": [[(128, 64), (128, 64), (128, 64)]],
    "add_mutable": [[(128, 32), (128, 32)]],
    "transposes": [[(128, 96)]],
    "isa_zoo": [[(77, 16), (77, 16)]],
    "transposing_store": [[(64, 48)]],
    "spmd_scale": [[("grid", 3), (384, 32)]],
    "zero_read": [[(128, 128), (128, 512)]],
    "rmsnorm_rows": [[(200, 96), (96,)]],
    "matmul_masked": [[(128, 64), (128, 96)]],
    "topk_where": [[(16, 40)]],
    "avgpool_axes_2_4": [[(16, 8, 12)]],
    "gather_scatter": [[(64, 16), _IDX]],
}


def _args(specs: list, seed: int) -> tuple[int | None, list]:
    rng = np.random.default_rng(seed)
    grid, out = None, []
    for a in specs:
        if isinstance(a, tuple) and a and a[0] == "grid":
            grid = a[1]
        elif isinstance(a, tuple) and len(a) == 2 and isinstance(a[1], str):
            out.append(rng.standard_normal(a[0]).astype(np.float32).astype(a[1]))
        elif isinstance(a, tuple):
            out.append(rng.standard_normal(a).astype(np.float32))
        else:
            out.append(a)
    return grid, out


def _kernel_names(path: Path) -> list[str]:
    """Every kernel a file defines: module-level functions with no leading underscore."""
    import ast
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef)
            and not n.name.startswith("_")]


def test_every_public_kernel_is_compared():
    """The tables above name every kernel of the hand, classic and benchmark kernel files."""
    hand = {name for _, name in HAND}
    for f in sorted(KDIR.glob("*.py")):
        assert set(_kernel_names(f)) <= hand, f
    assert set(_kernel_names(CDIR / "basic.py")) == set(CLASSIC)
    bench = {"matmul_tutorial.py": {"matmul_tiled", "matmul_hoisted", "matmul_block_free",
                                    "matmul_fully_blocked"},
             "matmul_classic.py": {"matmul_nl", "matmul_isa"},
             "mamba_tutorial.py": None, "layernorm_tutorial.py": None,
             "row_tutorials.py": {"rmsnorm_tutorial", "layernorm_tutorial"},
             "attention_expert.py": {"attention_probs_expert", "attention_expert"}}
    assert {f.name for f in BENCH.glob("*.py")} == set(bench)
    for name, want in bench.items():
        if want is not None:
            assert set(_kernel_names(BENCH / name)) == want, name


@pytest.mark.parametrize("name", list(CLASSIC))
def test_classic_kernels_identical(name, monkeypatch):
    for i, specs in enumerate(CLASSIC[name]):
        grid, args = _args(specs, 7 + i)
        kernel = sim.load(CDIR / "basic.py", name)
        if grid is not None:
            kernel = kernel[grid]
        check(monkeypatch, kernel, args, runs=True)


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("name,shapes", [
    ("attention_probs_expert", [(512, 128), (1024, 128)]),
    ("attention_expert", [(256, 64), (1024, 64), (1024, 64)]),
])
def test_attention_experts_identical(name, shapes, target, monkeypatch):
    rng = np.random.default_rng(8)
    args = [rng.standard_normal(s).astype(np.float32).astype(ml_dtypes.bfloat16)
            for s in shapes]
    check(monkeypatch, sim.load(BENCH / "attention_expert.py", name), args, target=target,
          runs=True)


def _index_results(monkeypatch, reference: bool) -> list:
    """(offset, shape, strides) of many index forms, or the error text, on both memories."""
    from nkigen.sim.nki import language as nl

    keys = [0, 127, 128, -1, -128, -129, slice(None), slice(0, 128), slice(0, 129),
            slice(5, 5), slice(-3, None), slice(0, 10, 2), slice(None, -1), (slice(0, 64), 3),
            (slice(0, 64), slice(0, 512)), (slice(0, 64), slice(0, 513)), (0, 0), (0, 511),
            (0, 512), Ellipsis, (Ellipsis, 3), (slice(0, 32), nl.ds(0, 512)),
            (slice(0, 32), nl.ds(1, 512)), (slice(0, 32), nl.ds(0, 0)), np.int64(3),
            (np.int64(1), slice(np.int64(0), np.int64(4))), True, (1, 2, 3),
            (slice(0, 4), slice(None, None, 3)), (slice(None), 0),
            # the forms spelled out without the loop (t[a:b, c:d], t[a:b, i, c:d]) at and
            # past their bounds, with other types in each place
            (slice(0, 128), slice(0, 512)), (slice(127, 128), slice(511, 512)),
            (slice(128, 128), slice(0, 1)), (slice(0, 1), slice(512, 512)),
            (slice(1, 129), slice(0, 8)), (slice(0, 8), slice(0, 513)), (slice(-1, None), 0),
            (slice(0, 8, 1), slice(0, 8)), (slice(0, 8), slice(True, 8)),
            (slice(0, 8), slice(0, np.int64(8))), (slice(0, 64), 3, slice(0, 32)),
            (slice(None), 7, slice(None)), (slice(None), 8, slice(None)),
            (slice(0, 64), -1, slice(0, 32)), (slice(0, 64), True, slice(0, 32)),
            (slice(0, 64), np.int64(2), slice(0, 32)), (slice(0, 64), 3, slice(0, 65)),
            (slice(0, 128), 0, slice(63, 64)), (slice(0, 128), 0, slice(64, 64)),
            (slice(0, 64), slice(1, 3), slice(0, 32)), (slice(0, 64), nl.ds(1, 2), slice(0, 8)),
            (nl.ds(0, 64), 3, slice(0, 32)), (slice(0, 64), 3, nl.ds(0, 32))]
    out: list = []

    def kernel(x):
        tiles = [x, nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf),
                 nl.ndarray((128, 8, 64), nl.bfloat16, buffer=nl.sbuf),
                 nl.ndarray((4, 6, 8), nl.float32, buffer=nl.shared_hbm)]
        tiles.append(tiles[2][:, 2:6, :])       # a view at an offset, with a view's strides
        tiles.append(tiles[1][0:64, 128:384])
        for t in tiles:
            for k in keys:
                try:
                    v = t[k]
                    out.append((v.offset, v.shape, v.strides, v.bcast))
                except SimError as e:
                    out.append(str(e))
        return None

    monkeypatch.setenv(mode.ENV, "1" if reference else "0")
    sim.run(kernel, [sim.placeholder((256, 512), "float32")], numerics=False)
    return out


def test_indexing_fast_path_matches_the_general_path(monkeypatch):
    fast = _index_results(monkeypatch, False)
    ref = _index_results(monkeypatch, True)
    assert fast == ref
    assert sum(isinstance(r, str) for r in ref) >= 10          # the errors are exercised too


def test_indexing_fast_forms_match_the_general_path_randomised():
    """The loop-free forms of ``Tensor._index_fast`` give what ``Tensor._index`` gives (or
    decline, leaving the error to it) for random bounds in and around each dim's range."""
    import random

    from nkigen.sim.nki import language as nl

    rng = random.Random(5)
    got: list = []

    def pick(n):
        return rng.choice([None, 0, 1, n - 1, n, n + 1, -1, 2, True, np.int64(1)])

    def kernel(x):
        tiles = [x, nl.ndarray((128, 512), nl.float32, buffer=nl.sbuf),
                 nl.ndarray((128, 8, 64), nl.bfloat16, buffer=nl.sbuf),
                 nl.ndarray((4, 6, 8), nl.float32, buffer=nl.shared_hbm)]
        tiles.append(tiles[2][:, 2:6, :])
        for t in tiles:
            for _ in range(1500):
                key = [slice(pick(n), pick(n)) for n in t.shape]
                if len(t.shape) == 3:
                    key[1] = pick(t.shape[1])
                key = tuple(key)
                fast = t._index_fast(key)
                try:
                    v = t._index(key)
                    ref: object = (v.offset, v.shape, v.strides, v.bcast)
                except SimError as e:
                    ref = str(e)
                got.append((key, fast, ref))

    sim.run(kernel, [sim.placeholder((256, 512), "float32")], numerics=False)
    for key, fast, ref in got:
        if fast is not None:
            assert (fast.offset, fast.shape, fast.strides, fast.bcast) == ref, key
            assert fast.strides is not fast.alloc.strides0      # (a fresh view's own)
    assert sum(fast is not None for _, fast, _ in got) > 100    # the fast forms are taken
    assert sum(isinstance(r, str) for _, _, r in got) > 1000    # both outcomes drawn often
    assert sum(not isinstance(r, str) for _, _, r in got) > 500


def test_run_pauses_the_cyclic_gc_and_restores_it():
    import gc

    seen: list[bool] = []

    def kernel(x):
        seen.append(gc.isenabled())

    def bad(x):
        raise SimError("kernel failed on purpose")

    x = sim.placeholder((128, 4), "float32")
    assert gc.isenabled()
    sim.run(kernel, [x], numerics=False)
    assert seen == [False] and gc.isenabled()
    with pytest.raises(SimError):
        sim.run(bad, [x], numerics=False)
    assert gc.isenabled()
    gc.disable()                        # a caller's own setting is kept
    try:
        sim.run(kernel, [x], numerics=False)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("name", ["tiled", "fully_blocked"])
def test_runs_leave_no_cyclic_garbage(name):
    """Pausing the collector cannot delay a tile's release: a run makes no reference cycles."""
    import gc

    rng = np.random.default_rng(6)
    args = [rng.standard_normal((256, 128), np.float32).astype(ml_dtypes.bfloat16),
            rng.standard_normal((256, 512), np.float32).astype(ml_dtypes.bfloat16)]
    kernel = sim.load(BENCH / "matmul_tutorial.py", "KERNELS")[name]
    gc.collect()
    sim.run(kernel, args, target="trn1")
    assert gc.collect() == 0


def test_matmul_check_memo_never_hides_a_per_call_error(monkeypatch):
    """nc_matmul's operand checks are passed once per operand shape; the PSUM-bank rule depends
    on where dst lies and is checked on every call: the same shapes one bank further fail."""
    from nkigen.sim.nki import isa as nisa
    from nkigen.sim.nki import language as nl

    def kernel(x, start):
        a = nl.ndarray((128, 128), nl.bfloat16, buffer=nl.sbuf)
        b = nl.ndarray((128, 512), nl.bfloat16, buffer=nl.sbuf)
        nisa.memset(a, 0.0)
        nisa.memset(b, 0.0)
        ps = nl.ndarray((128, 1024), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps[:, 0:512], a, b)              # legal: one bank
        nisa.nc_matmul(ps[:, start:start + 512], a, b)  # same shapes, maybe across banks

    x = sim.placeholder((128, 4), "float32")
    for ref in (False, True):
        monkeypatch.setenv(mode.ENV, "1" if ref else "0")
        sim.run(kernel, [x, 512], numerics=False)       # the second bank: legal
        with pytest.raises(SimError, match="must fit one PSUM bank"):
            sim.run(kernel, [x, 256], numerics=False)
        with pytest.raises(SimError, match="must fit one PSUM bank"):
            sim.run(kernel, [x, 256], numerics=False)   # again, after a memoised success


def test_sentinel_fill_on_first_access_is_invisible(monkeypatch):
    """The fast path writes a new tile's NaN sentinel on its first access, or never when that
    access overwrites the whole tile: a partly written tile, a tile read through a reinterpret
    cast, a PSUM tile a matmul writes a part of, and an output nothing writes all still show
    the sentinel exactly where the reference path does."""
    from nkigen.sim.nki import isa as nisa
    from nkigen.sim.nki import language as nl

    def kernel(x):
        half = nl.ndarray((128, 64), nl.float32, buffer=nl.shared_hbm)
        whole = nl.ndarray((128, 64), nl.float32, buffer=nl.shared_hbm)
        bits = nl.ndarray((128, 64), nl.int32, buffer=nl.shared_hbm)
        ps_out = nl.ndarray((128, 64), nl.float32, buffer=nl.shared_hbm)
        untouched = nl.ndarray((4, 8), nl.bfloat16, buffer=nl.shared_hbm)
        t = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=t[:, 0:32], src=x[:, 0:32])           # a part: the rest stays NaN
        nisa.dma_copy(dst=half, src=t)
        w = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=w, src=x)                            # the whole tile: no fill
        nisa.dma_copy(dst=whole, src=w)
        u = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=bits, src=u.view(nl.int32))          # the sentinel's bits
        a = nl.ndarray((32, 128), nl.bfloat16, buffer=nl.sbuf)
        b = nl.ndarray((32, 32), nl.bfloat16, buffer=nl.sbuf)
        nisa.memset(a, 1.0)
        nisa.memset(b, 2.0)
        ps = nl.ndarray((128, 64), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps[:, 0:32], a, b)                       # half the PSUM tile
        s = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        nisa.tensor_copy(s, ps)
        nisa.dma_copy(dst=ps_out, src=s)
        return half, whole, bits, ps_out, untouched

    x = np.random.default_rng(9).standard_normal((128, 64)).astype(np.float32)
    check(monkeypatch, kernel, [x], runs=True)
    half, whole, bits, ps_out, untouched = sim.run(kernel, [x]).outputs
    assert np.isnan(half[:, 32:]).all() and (half[:, :32] == x[:, :32]).all()
    assert (whole == x).all()
    assert (bits == np.full((128, 64), np.nan, np.float32).view(np.int32)).all()
    assert (ps_out[:, :32] == 64.0).all() and np.isnan(ps_out[:, 32:]).all()
    assert np.isnan(untouched.astype(np.float32)).all()


@pytest.mark.parametrize("batch_on", [True, False])
def test_deferred_matmuls_flush_at_every_access(batch_on, monkeypatch):
    """Deferred nc_matmul products (batch.py) land before every later access of their PSUM
    tile: a read in the middle of a group, an overwrite (memset) then more accumulation, a
    reinterpret cast, matmuls into two column ranges of one tile, a group longer than the
    queue bound, fp32 operands (never deferred) mixed in; bit for bit as the reference path."""
    from nkigen.sim import batch
    from nkigen.sim.nki import isa as nisa
    from nkigen.sim.nki import language as nl

    monkeypatch.setattr(batch, "FORCE", batch_on)
    deferred: list[int] = []
    defer = batch.defer
    monkeypatch.setattr(batch, "defer", lambda *a: (deferred.append(1), defer(*a)))

    def kernel(x, y, x32, y32):
        outs = [nl.ndarray((64, 96), nl.float32, buffer=nl.shared_hbm) for _ in range(5)]
        a = nl.ndarray((128, 64), nl.bfloat16, buffer=nl.sbuf)
        b = nl.ndarray((128, 96), nl.bfloat16, buffer=nl.sbuf)
        a32 = nl.ndarray((128, 64), nl.float32, buffer=nl.sbuf)
        b32 = nl.ndarray((128, 96), nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=a, src=x)
        nisa.dma_copy(dst=b, src=y)
        nisa.dma_copy(dst=a32, src=x32)
        nisa.dma_copy(dst=b32, src=y32)
        s = nl.ndarray((64, 96), nl.float32, buffer=nl.sbuf)
        ps = nl.ndarray((64, 96), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(ps, a, b)
        nisa.nc_matmul(ps, a, b)
        nisa.tensor_copy(s, ps)                         # read mid-group
        nisa.dma_copy(dst=outs[0], src=s)
        nisa.nc_matmul(ps, a32, b32)                    # fp32: computed at once, in order
        nisa.nc_matmul(ps, a, b)
        nisa.memset(ps, 0.5)                            # overwrite
        nisa.nc_matmul(ps, a, b, accumulate=False)
        for _ in range(batch.MAX_QUEUED + 3):           # longer than the queue bound
            nisa.nc_matmul(ps, a, b, accumulate=True)
        nisa.tensor_copy(s, ps)
        nisa.dma_copy(dst=outs[1], src=s)
        wide = nl.ndarray((64, 192), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(wide[:, 0:96], a, b)             # two column ranges of one tile
        nisa.nc_matmul(wide[:, 96:192], a, b)
        nisa.nc_matmul(wide[:, 0:96], a, b)
        nisa.tensor_copy(s, wide[:, 96:192])
        nisa.dma_copy(dst=outs[2], src=s)
        nisa.tensor_copy(s, wide[:, 0:96])
        nisa.dma_copy(dst=outs[3], src=s)
        cast = nl.ndarray((64, 96), nl.float32, buffer=nl.psum)
        nisa.nc_matmul(cast, a, b)
        bits = cast.view(nl.int32)                      # a reinterpret cast reads the bytes
        nisa.tensor_copy(s, bits.view(nl.float32))
        nisa.dma_copy(dst=outs[4], src=s)
        return tuple(outs)

    rng = np.random.default_rng(10)
    x = rng.standard_normal((128, 64)).astype(ml_dtypes.bfloat16)
    y = rng.standard_normal((128, 96)).astype(ml_dtypes.bfloat16)
    x32 = rng.standard_normal((128, 64)).astype(np.float32)
    y32 = rng.standard_normal((128, 96)).astype(np.float32)
    check(monkeypatch, kernel, [x, y, x32, y32], runs=True)
    deferred.clear()
    monkeypatch.setattr(batch, "FORCE", batch_on)
    outs = sim.run(kernel, [x, y, x32, y32]).outputs
    assert (len(deferred) > batch.MAX_QUEUED) == batch_on    # the fast run deferred them
    p = x.astype(np.float32).T @ y.astype(np.float32)
    np.testing.assert_allclose(outs[0], 2 * p, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(outs[1], (batch.MAX_QUEUED + 4) * p, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(outs[2], p, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(outs[3], 2 * p, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(outs[4], p, rtol=1e-5, atol=1e-4)


def test_narrow_is_exact_for_every_bfloat16_neighbourhood(monkeypatch):
    """emit.narrow (float32 -> bfloat16 bits on the fast path) equals ml_dtypes' conversion:
    for every bfloat16 encoding, the float32 values just above it, at the rounding tie, just
    below and above the tie and at the top of its interval (ties to even, carries into the
    exponent, overflow to infinity, subnormals, every NaN class with either sign)."""
    hi = np.arange(1 << 16, dtype=np.uint32) << 16
    lows = np.array([0, 1, 0x7FFE, 0x7FFF, 0x8000, 0x8001, 0xC000, 0xFFFF], np.uint32)
    rng = np.random.default_rng(11)
    u = np.concatenate([(hi[:, None] | lows[None, :]).ravel(),
                        rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32)])
    x = u.view(np.float32).reshape(-1, 64)
    got = np.empty(x.shape, np.uint16)
    emit.narrow(x, got)
    with np.errstate(invalid="ignore"):
        want = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    assert (got == want).all()
    strided = np.empty((x.shape[0], 128), np.uint16)[:, ::2]     # a strided destination
    emit.narrow(x, strided)
    assert (strided == want).all()


def test_tensore_worker_only_while_a_cpu_is_free(monkeypatch):
    """batch.wanted: opt-in (NKIGEN_SIM_WORKER=1), then 2+ CPUs and a load average below their
    number (the last free-CPU value uses the worker, a load equal to the CPU count does not);
    FORCE overrides."""
    import os

    from nkigen.sim import batch

    monkeypatch.setattr(batch, "FORCE", None)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (1.99, 0.0, 0.0))
    monkeypatch.delenv("NKIGEN_SIM_WORKER", raising=False)
    assert not batch.wanted()
    monkeypatch.setenv("NKIGEN_SIM_WORKER", "0")
    assert not batch.wanted()
    monkeypatch.setenv("NKIGEN_SIM_WORKER", "1")
    assert batch.wanted()
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 0.0, 0.0))
    assert not batch.wanted()
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert not batch.wanted()
    monkeypatch.setattr(batch, "FORCE", True)
    assert batch.wanted()


def test_classic_fresh_matmul_products_computed_once_where_needed(monkeypatch):
    """A classic ``nisa.nc_matmul`` result is computed when its tile is read, or straight into
    the PSUM tile it is accumulated into (batch.Later / batch.take): the result read after the
    ``+=``, assigned, masked (computed at once), with fp32 operands (computed at once) and
    accumulated into a 3-D PSUM view (shape differs: through the tile) gives the reference
    path's bits."""
    from nkigen.sim import batch
    with sim.installed():
        import neuronxcc.nki.isa as cisa
        import neuronxcc.nki.language as cl
        from neuronxcc import nki as cnki

    taken: list[bool] = []
    take = batch.take
    monkeypatch.setattr(batch, "take", lambda *a: (taken.append(take(*a)), taken[-1])[1])

    def kernel(x, y, x32, y32):
        o0 = cl.ndarray((64, 96), dtype=cl.float32, buffer=cl.shared_hbm)
        o1 = cl.ndarray((64, 96), dtype=cl.float32, buffer=cl.shared_hbm)
        o2 = cl.ndarray((64, 96), dtype=cl.float32, buffer=cl.shared_hbm)
        o3 = cl.ndarray((64, 96), dtype=cl.float32, buffer=cl.shared_hbm)
        o4 = cl.ndarray((64, 96), dtype=cl.float32, buffer=cl.shared_hbm)
        outs = (o0, o1, o2, o3, o4)
        a, b = cl.load(x), cl.load(y)
        a32, b32 = cl.load(x32), cl.load(y32)
        acc = cl.zeros((64, 96), cl.float32, buffer=cl.psum)
        p = cisa.nc_matmul(a, b)
        acc += p                                         # into acc directly ...
        acc += cisa.nc_matmul(a, b)
        cl.store(outs[0], value=cl.copy(acc))
        cl.store(outs[1], value=cl.copy(p))              # ... and p itself when read
        res = cl.ndarray((64, 96), cl.float32, buffer=cl.psum)
        res[...] = cisa.nc_matmul(a, b)                  # assigned
        res += cisa.nc_matmul(a32, b32)                  # fp32 operands
        cl.store(outs[2], value=cl.copy(res))
        i_p, i_f = cl.arange(128)[:, None], cl.arange(96)[None, :]
        m = cl.zeros((64, 96), cl.float32, buffer=cl.psum)
        m += cisa.nc_matmul(a, b[i_p, i_f], mask=(i_f < 50))  # masked: a box of the tile
        cl.store(outs[3], value=cl.copy(m))
        v = cl.zeros((64, 2, 48), cl.float32, buffer=cl.psum)
        v += cisa.nc_matmul(a, b)                        # a 3-D view of the same free size
        cl.store(outs[4], value=cl.copy(v).reshape((64, 96)))
        return tuple(outs)

    rng = np.random.default_rng(11)
    x = rng.standard_normal((128, 64)).astype(ml_dtypes.bfloat16)
    y = rng.standard_normal((128, 96)).astype(ml_dtypes.bfloat16)
    x32 = rng.standard_normal((128, 64)).astype(np.float32)
    y32 = rng.standard_normal((128, 96)).astype(np.float32)
    kern = cnki.jit(kernel)
    check(monkeypatch, kern, [x, y, x32, y32], runs=True)
    taken.clear()
    with monkeypatch.context() as mp:
        mp.setenv(mode.ENV, "0")
        mp.setattr(batch, "FORCE", False)           # (the TensorE worker defers otherwise)
        outs = sim.run(kern, [x, y, x32, y32]).outputs
    assert taken.count(True) == 3, taken       # acc += p, acc += ..., res[...] = ...
    with monkeypatch.context() as mp:
        mp.setenv(mode.ENV, "1")
        ref = sim.run(kern, [x, y, x32, y32]).outputs
    for got, want in zip(outs, ref):                 # bit for bit as the reference path
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    p = x.astype(np.float32).T @ y.astype(np.float32)
    np.testing.assert_allclose(outs[0], 2 * p, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(outs[1], p, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(outs[2], p + x32.T @ y32, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(outs[3][:, :50], p[:, :50], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(outs[3][:, 50:], 0)
    np.testing.assert_allclose(outs[4], p, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("worker_fails", [None, 0, 3])
def test_worker_and_flush_share_products_once(worker_fails, monkeypatch):
    """batch._Worker.settle: the worker applies queued products from the front, the flushing
    thread computes the ones nobody started from the back; each product is computed exactly
    once and the PSUM tile gets the per-instruction store/add sequence bit for bit. A product
    that raises in the worker (``worker_fails``: its index) leaves it and every later one of
    its tile to the flushing thread, still in order."""
    import threading

    from nkigen.sim import batch

    rng = np.random.default_rng(12)

    def bf16ish(shape):
        return rng.standard_normal(shape).astype(ml_dtypes.bfloat16).astype(np.float32)

    n = 12
    ss = [bf16ish((128, 64)) for _ in range(n)]
    ms = [bf16ish((128, 96)) for _ in range(n)]
    want = np.empty((64, 96), np.float32)
    for i in range(n):
        r = np.matmul(ss[i].T, ms[i])
        if i:
            want += r
        else:
            want[...] = r
    calls: list[int] = []
    main = threading.get_ident()
    apply, product = batch._apply, batch._product
    gate, started = threading.Event(), threading.Event()

    def slow_apply(view, s, m, acc):
        i = next(j for j in range(n) if ss[j] is s)
        if threading.get_ident() != main:
            started.set()
            gate.wait(5)                        # the worker starts, then waits for the flush
            if i == worker_fails:
                raise MemoryError("injected")
        calls.append(i)
        apply(view, s, m, acc)

    def counted_product(s, m):
        calls.append(next(j for j in range(n) if ss[j] is s))
        gate.set()                              # the flush is taking products: release
        return product(s, m)

    monkeypatch.setattr(batch, "_apply", slow_apply)
    monkeypatch.setattr(batch, "_product", counted_product)
    w = batch._Worker()
    q = batch.Queue()
    view = np.full((64, 96), np.nan, np.float32)
    for i in range(n):
        p = batch.Product(view, ss[i], ms[i], i > 0, q)
        q.ops.append(p)
        w.submit(p)
    assert started.wait(5)                      # the worker holds product 0
    w.settle(q.ops)
    assert view.view(np.uint32).tolist() == want.view(np.uint32).tolist()
    assert sorted(calls) == list(range(n))      # each product once, by one of the threads
    assert q.broken == (worker_fails == 0 or (worker_fails is not None and
                                              q.ops[worker_fails].owner == 1))
    w.drop()
