"""The Python API (nkigen.api): compile, run in the simulator, report, explain, save, libraries."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import relu_spec

import nkigen
from nkigen import NkigenError


@pytest.fixture(scope="module")
def relu():
    return nkigen.compile(relu_spec("relu_k"))


def test_import_is_cheap_and_names_resolve_lazily():
    code = ("import sys, nkigen; heavy = [m for m in ('numpy', 'sympy', 'nkigen.api', "
            "'nkigen.sim') if m in sys.modules]; print(heavy); "
            "print(callable(nkigen.compile), callable(nkigen.load_library))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True True"
    with pytest.raises(AttributeError):
        nkigen.no_such_name  # noqa: B018


def test_compile_text_runs_in_the_simulator(relu):
    x = np.random.default_rng(0).standard_normal((256, 7)).astype(np.float32)
    y = relu(x)
    assert y.shape == (256, 7) and y.dtype == np.float32
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(relu(a=x.astype(np.float64)), np.maximum(x, 0))  # converted
    assert "def relu_k(a)" in relu.source
    assert relu.inputs == ["a"] and relu.outputs == ["c"] and relu.target == "trn2"


def test_compile_path_gives_the_same_source_as_gen(tmp_path):
    from nkigen.codegen import generate
    from nkigen.pipeline import load_spec

    p = tmp_path / "k.yaml"
    p.write_text(relu_spec("k"))
    k = nkigen.compile(p, target="trn1", dialect="neuronxcc")
    assert k.source == generate(load_spec(p), target="trn1", dialect="neuronxcc")
    assert k.target == "trn1" and k.dialect == "neuronxcc"


def test_report_sizes_limits_at_their_boundary(relu):
    r = relu.report(M=128, N=1024)          # N max is 1024: the last legal value
    assert r.latency_us > 0 and dict(r.sizes) == {"M": 128, "N": 1024}
    assert r.bound in dict(r.utilisation) and r.bound == max(
        dict(r.utilisation), key=dict(r.utilisation).get)
    assert all(0 <= u <= 1 for _, u in r.utilisation)
    assert "not a measurement" in str(r) and "bound" in str(r)
    with pytest.raises(NkigenError) as e:
        relu.report(M=128, N=1025)          # first illegal value
    assert "N" in str(e.value) and "1025" in str(e.value)
    with pytest.raises(NkigenError, match="multiple"):
        relu.report(M=129, N=8)
    with pytest.raises(NkigenError, match="every free size"):
        relu.report(M=128)
    default = relu.report()                 # the largest test case
    assert dict(default.sizes) == {"M": 128, "N": 8}


def test_report_grows_with_the_problem(relu):
    assert relu.report(M=1024, N=1024).latency_us > relu.report(M=128, N=8).latency_us


def test_explain_and_save(relu, tmp_path):
    text = relu.explain()
    assert "kernel plan" in text and "relu_k" in text
    out = relu.save(tmp_path / "sub" / "relu_k.py")
    assert out.read_text() == relu.source


def test_schedule_hints_checked_at_the_partition_limit():
    ok = nkigen.compile(relu_spec("k"), schedule={"tiles": {"m": 128}})
    assert "128" in ok.source
    with pytest.raises(NkigenError) as e:
        nkigen.compile(relu_spec("k"), schedule={"tiles": {"m": 256}})
    assert "256" in str(e.value)
    with pytest.raises(NkigenError, match="unknown schedule key"):
        nkigen.compile(relu_spec("k"), schedule={"tile": {"m": 128}})
    with pytest.raises(NkigenError, match="unknown schedule"):
        nkigen.compile(relu_spec("k"), schedule="fast")


def test_errors_carry_located_diagnostics(relu, tmp_path):
    with pytest.raises(NkigenError) as e:
        nkigen.compile(relu_spec("k").replace("float32", "f32", 1))
    d = e.value.diagnostics[0]
    assert d.loc is not None and d.loc.path == "<string>" and d.loc.line > 0
    with pytest.raises(NkigenError, match="no such spec file"):
        nkigen.compile(tmp_path / "missing.yaml")
    with pytest.raises(NkigenError, match="unknown target"):
        nkigen.compile(relu_spec("k"), target="trn9")
    with pytest.raises(NkigenError, match="rank 2"):
        relu(np.zeros(3, np.float32))
    with pytest.raises(NkigenError, match="multiple_of|multiple of"):
        relu(np.zeros((100, 8), np.float32))
    with pytest.raises(NkigenError, match="takes 1 input"):
        relu(np.zeros((128, 8)), np.zeros((128, 8)))
    with pytest.raises(NkigenError, match="missing input"):
        relu()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from nkigen.library.build import BuildOptions, build

    d = tmp_path_factory.mktemp("lib")
    (d / "specs").mkdir()
    (d / "specs" / "relu_k.yaml").write_text(relu_spec("relu_k"))
    rep = build(BuildOptions((str(d / "specs"),), str(d / "out"), progress=False))
    assert rep.ok
    return d / "out"


def test_load_library_kernels_by_name(library):
    lib = nkigen.load_library(library)
    assert list(lib) == ["relu_k"] and len(lib) == 1
    k = lib["relu_k"]
    assert lib.relu_k is k
    x = np.linspace(-1, 1, 128 * 3, dtype=np.float32).reshape(128, 3)
    np.testing.assert_array_equal(k(x), np.maximum(x, 0))
    assert "def relu_k(a)" in k.source
    case = k.cases[0]
    r = k.report()                           # the recorded case, re-estimated
    assert dict(r.sizes) == case["sizes"]
    assert r.latency_us == pytest.approx(case["latency_us"], rel=1e-5)
    assert k.report(M=256, N=1024).latency_us > r.latency_us
    with pytest.raises(NkigenError, match="multiple of 128"):
        k.report(M=100, N=8)
    with pytest.raises(NkigenError, match="no kernel named 'nope'"):
        lib["nope"]


def test_load_library_refuses_a_folder_without_manifest(tmp_path):
    with pytest.raises(NkigenError, match="not a library"):
        nkigen.load_library(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(NkigenError, match="unreadable manifest"):
        nkigen.load_library(tmp_path)


def test_schedule_tune_is_never_slower_than_the_defaults(relu, tmp_path, monkeypatch):
    monkeypatch.setenv("NKIGEN_CACHE_DIR", str(tmp_path))
    tuned = nkigen.compile(relu_spec("relu_k"), schedule="tune")
    assert tuned.report().latency_us <= relu.report().latency_us
    assert any((tmp_path / "tune").iterdir())           # the cache went where it was told


def test_dtype_sizes_match_numpy_without_importing_it_early():
    from nkigen.dtypes import DType

    for d in DType:
        assert d.itemsize == d.np.itemsize, d



def test_report_text_carries_the_calibration_band():
    from nkigen.api import _band
    from nkigen.sim.calibration import BAND
    assert _band(12.3) == f"12.30 us model, +-{round(100 * BAND)} %"


@pytest.mark.parametrize("jobs", [-1, 257, 10**20, 1.5, "2", True, None])
def test_build_jobs_bounded_like_the_cli(jobs, tmp_path):
    """``nkigen.build(jobs=)`` takes what ``-j`` takes: 0 (all cores) or 1..256 (the first value
    over the limit, 257, is refused) before anything is built; out is not created."""
    spec = tmp_path / "relu.yaml"
    spec.write_text(relu_spec())
    with pytest.raises(NkigenError, match=r"jobs: must be an int, 0 \(all cores\) or 1\.\.256"):
        nkigen.build(spec, tmp_path / "lib", jobs=jobs)
    assert not (tmp_path / "lib").exists()


@pytest.mark.parametrize("jobs", [0, 256])
def test_build_jobs_at_the_limit_builds(jobs, tmp_path):
    spec = tmp_path / "relu.yaml"
    spec.write_text(relu_spec())
    lib = nkigen.build(spec, tmp_path / "lib", jobs=jobs)
    assert list(lib) == ["k"]
