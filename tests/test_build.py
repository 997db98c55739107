"""Tests of `nkigen build` machinery (nkigen.library) on fake stages: incremental, deterministic,
atomic, failure reporting, duplicate names, output-folder safety, manifest schema, goldens."""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import test_build_fakes as fakes
from test_build_fakes import FAKE, spec_text

from nkigen.cli import main
from nkigen.diagnostics import NkigenError
from nkigen.library import build as buildmod
from nkigen.library import golden, manifest
from nkigen.library.build import BuildOptions, build
from nkigen.library.progress import Progress, summary


def write_specs(root: Path, **specs: str) -> Path:
    d = root / "specs"
    d.mkdir(exist_ok=True)
    for fname, text in specs.items():
        (d / f"{fname}.yaml").write_text(text)
    return d


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".nkigen-" in p.name)


@pytest.fixture
def calls(tmp_path, monkeypatch) -> Path:
    f = tmp_path / "calls.txt"
    monkeypatch.setenv(fakes.CALLS_FILE_ENV, str(f))
    return f


def generated(calls: Path) -> list[str]:
    text = calls.read_text() if calls.exists() else ""
    calls.write_text("")
    return sorted(text.split())


def test_build_writes_library_layout(tmp_path):
    specs = write_specs(tmp_path, a=spec_text("alpha"), b=spec_text("beta", 3.0, (4,)))
    out = tmp_path / "lib"
    rep = build(BuildOptions((str(specs),), str(out)), FAKE)
    assert rep.ok and rep.written
    assert [r.status for r in rep.results] == ["built", "built"]
    assert sorted(snapshot(out)) == [
        ".nkigen-cache.json", ".nkigen-library", "README.md",
        "golden/alpha/N16.npz", "golden/alpha/N8.npz", "golden/beta/N4.npz",
        "kernels/alpha.py", "kernels/beta.py", "manifest.json",
        "tests/conftest.py", "tests/test_alpha.py", "tests/test_beta.py",
    ]
    man = json.loads((out / "manifest.json").read_text())
    manifest.validate(man)
    assert [k["name"] for k in man["kernels"]] == ["alpha", "beta"]
    alpha = man["kernels"][0]
    assert [c["name"] for c in alpha["cases"]] == ["N8", "N16"]
    assert alpha["cases"][1]["latency_us"] == pytest.approx(1.6)
    assert alpha["invalid_cases"][0]["message"] == "size N = 6 must be a multiple of 4"
    assert alpha["signature"]["inputs"] == [{"name": "x", "shape": ["N"], "dtype": "float32"}]
    assert alpha["target"] == "trn2" and alpha["spec"] == "a.yaml"
    readme = (out / "README.md").read_text()
    assert "| `beta` | scale x by 3.0 | `beta(x: float32[N]) -> y: float32[N]` | N4 |" in readme
    inputs, outputs = golden.load(out / "golden/alpha/N8.npz")
    np.testing.assert_array_equal(outputs["y"], inputs["x"].astype(np.float64) * 2.0)
    assert leftovers(tmp_path) == []


def test_second_build_is_all_cached_and_edit_rebuilds_only_that_spec(tmp_path, calls):
    specs = write_specs(tmp_path, a=spec_text("alpha"), b=spec_text("beta"), c=spec_text("gamma"))
    out = tmp_path / "lib"
    opts = BuildOptions((str(specs),), str(out))
    build(opts, FAKE)
    assert generated(calls) == ["alpha", "beta", "gamma", "generate", "generate", "generate"]
    before = snapshot(out)
    inode = (out / "kernels/alpha.py").stat().st_ino

    rep = build(opts, FAKE)
    assert [r.status for r in rep.results] == ["cached"] * 3
    assert generated(calls) == []
    assert snapshot(out) == before
    assert (out / "kernels/alpha.py").stat().st_ino == inode   # carried over, not rewritten

    (specs / "b.yaml").write_text(spec_text("beta", factor=5.0))
    rep = build(opts, FAKE)
    assert [r.status for r in rep.results] == ["cached", "built", "cached"]
    assert generated(calls) == ["beta", "generate"]
    assert "* 5.0" in (out / "kernels/beta.py").read_text()
    assert snapshot(out)["kernels/alpha.py"] == before["kernels/alpha.py"]

    rep = build(replace(opts, rebuild=True), FAKE)
    assert [r.status for r in rep.results] == ["built"] * 3


def test_cache_invalidated_by_options_and_damaged_outputs(tmp_path, calls):
    specs = write_specs(tmp_path, a=spec_text("alpha"))
    out = tmp_path / "lib"
    build(BuildOptions((str(specs),), str(out)), FAKE)
    generated(calls)
    rep = build(BuildOptions((str(specs),), str(out), target="trn1"), FAKE)
    assert rep.results[0].status == "built"
    assert json.loads((out / "manifest.json").read_text())["kernels"][0]["target"] == "trn1"
    (out / "golden/alpha/N8.npz").write_bytes(b"damaged")
    rep = build(BuildOptions((str(specs),), str(out), target="trn1"), FAKE)
    assert rep.results[0].status == "built"
    assert golden.load(out / "golden/alpha/N8.npz")[0]["x"].shape == (8,)


def test_rebuild_from_scratch_is_byte_identical(tmp_path):
    specs = write_specs(tmp_path, a=spec_text("alpha"), b=spec_text("beta", 3.0, (4, 12)))
    build(BuildOptions((str(specs),), str(tmp_path / "one")), FAKE)
    build(BuildOptions((str(specs),), str(tmp_path / "two"), jobs=2), FAKE)
    one, two = snapshot(tmp_path / "one"), snapshot(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) == 13
    for rel in one:
        assert one[rel] == two[rel], rel


def test_parallel_build_collects_results_in_spec_order(tmp_path):
    specs = write_specs(tmp_path, **{f"s{i}": spec_text(f"k{i}") for i in range(4)})
    (specs / "s2.yaml").write_text("name: [unclosed\n")
    rep = build(BuildOptions((str(specs),), str(tmp_path / "lib"), jobs=2), FAKE)
    assert [r.spec for r in rep.results] == ["s0.yaml", "s1.yaml", "s2.yaml", "s3.yaml"]
    assert [r.status for r in rep.results] == ["built", "built", "failed", "built"]
    assert not rep.written and not (tmp_path / "lib").exists()


def _good_library(tmp_path) -> tuple[Path, Path, dict[str, bytes]]:
    specs = write_specs(tmp_path, a=spec_text("alpha"), b=spec_text("beta"))
    out = tmp_path / "lib"
    build(BuildOptions((str(specs),), str(out)), FAKE)
    (specs / "a.yaml").write_text(spec_text("alpha", factor=7.0))
    return specs, out, snapshot(out)


def test_failure_mid_build_leaves_out_unchanged(tmp_path, monkeypatch):
    specs, out, before = _good_library(tmp_path)

    def boom(m):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(manifest, "validate", boom)
    with pytest.raises(RuntimeError, match="injected"):
        build(BuildOptions((str(specs),), str(out)), FAKE)
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


def test_keyboard_interrupt_leaves_out_unchanged(tmp_path):
    specs, out, before = _good_library(tmp_path)

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(BuildOptions((str(specs),), str(out)), replace(FAKE, generate=interrupt))
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


def test_failed_swap_restores_out(tmp_path, monkeypatch):
    specs, out, before = _good_library(tmp_path)
    real_rename = os.rename

    def rename(src, dst):
        if Path(dst) == out and ".nkigen-tmp-" in str(src):
            raise OSError("injected rename failure")
        real_rename(src, dst)

    monkeypatch.setattr(buildmod.atomic.os, "rename", rename)
    monkeypatch.setattr(buildmod.atomic, "_exchange", lambda a, b: False)   # the 2-rename path
    with pytest.raises(NkigenError, match="cannot write the library.*injected"):
        build(BuildOptions((str(specs),), str(out)), FAKE)
    monkeypatch.undo()
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


def test_broken_spec_fails_build_others_still_built(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(buildmod, "real_stages", lambda: FAKE)
    specs = write_specs(tmp_path, a=spec_text("alpha"), b="name: [unclosed\n",
                        c=spec_text("gamma", bug=1))
    out = tmp_path / "lib"
    assert main(["build", str(specs), "-o", str(out)]) == 1
    cap = capsys.readouterr()
    assert f"{specs / 'b.yaml'}:1:1: name: not a fake spec" in cap.err
    assert "kernel output 'y' differs from the float64 reference in case N8" in cap.err
    assert f"{specs / 'c.yaml'}:1:1: tests.cases[0]" in cap.err
    assert "max abs error 1" in cap.err
    assert "left unchanged" in cap.err
    assert "alpha   built" in cap.out and "failed" in cap.out
    assert not out.exists() and leftovers(tmp_path) == []

    assert main(["build", str(specs), "-o", str(out), "--keep-going"]) == 1
    man = json.loads((out / "manifest.json").read_text())
    assert [k["name"] for k in man["kernels"]] == ["alpha"]
    assert sorted(p.name for p in (out / "kernels").iterdir()) == ["alpha.py"]


def test_duplicate_kernel_names_name_both_files(tmp_path):
    specs = write_specs(tmp_path, a=spec_text("same"), b=spec_text("same", 3.0), c=spec_text("x"))
    rep = build(BuildOptions((str(specs),), str(tmp_path / "lib")), FAKE)
    assert [r.status for r in rep.results] == ["failed", "failed", "built"]
    msg = rep.results[0].diagnostics[0]
    assert "kernel names must be unique" in msg
    assert str(specs / "a.yaml") in msg and str(specs / "b.yaml") in msg
    assert not (tmp_path / "lib").exists()


def test_refuses_dangerous_output_folders(tmp_path, monkeypatch):
    specs = write_specs(tmp_path, a=spec_text("alpha"))
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "docs"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    afile = tmp_path / "file"
    afile.write_text("x")
    for out, words in [("/", "filesystem root"), (str(Path.home()), "home folder"),
                       (str(specs), "holds the specs"), (str(tmp_path), "current folder"),
                       (str(other), "not written by nkigen"), (str(afile), "not a folder")]:
        with pytest.raises(NkigenError, match=words):
            build(BuildOptions((str(specs),), out), FAKE)
    assert (other / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build(BuildOptions((str(specs),), str(empty)), FAKE).written


def test_missing_specs_are_a_located_error(tmp_path):
    with pytest.raises(NkigenError, match="no such spec file or folder"):
        build(BuildOptions((str(tmp_path / "nope.yaml"),), str(tmp_path / "lib")), FAKE)
    (tmp_path / "emptyspecs").mkdir()
    with pytest.raises(NkigenError, match="no spec files found"):
        build(BuildOptions((str(tmp_path / "emptyspecs"),), str(tmp_path / "lib")), FAKE)


def test_manifest_schema_rejects_bad_manifests(tmp_path):
    specs = write_specs(tmp_path, a=spec_text("alpha"))
    build(BuildOptions((str(specs),), str(tmp_path / "lib")), FAKE)
    man = json.loads((tmp_path / "lib/manifest.json").read_text())
    manifest.validate(man)
    bad = json.loads(json.dumps(man))
    del bad["kernels"][0]["cases"][0]["latency_us"]
    with pytest.raises(jsonschema.ValidationError):
        manifest.validate(bad)
    bad = json.loads(json.dumps(man))
    bad["kernels"][0]["spec_sha256"] = "xyz"
    with pytest.raises(jsonschema.ValidationError):
        manifest.validate(bad)


def test_golden_npz_is_deterministic_and_roundtrips(tmp_path):
    import ml_dtypes

    x = np.arange(12, dtype=np.float32).reshape(3, 4).astype(ml_dtypes.bfloat16)
    arrays = golden.golden_arrays({"a": x}, {"c": np.linspace(0, 1, 7)})
    data = golden.npz_bytes(arrays)
    assert data == golden.npz_bytes(arrays)
    (tmp_path / "g.npz").write_bytes(data)
    ins, outs = golden.load(tmp_path / "g.npz")
    assert ins["a"].dtype == np.float32
    np.testing.assert_array_equal(ins["a"].astype(ml_dtypes.bfloat16), x)
    np.testing.assert_array_equal(outs["c"], np.linspace(0, 1, 7))   # not float32-exact
    assert arrays["output.c"].dtype == np.float64
    exact = golden.golden_arrays({}, {"c": np.array([0.5, 1.25, -3.0])})["output.c"]
    assert exact.dtype == np.float32
    assert golden.case_name({"N": 700, "M": 256, "K": 384}, ["M", "K", "N"]) == "M256_K384_N700"


def test_progress_only_on_terminals_and_summary():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = Progress(2, stream)
        p.step("alpha")
        p.step("beta")
        p.close()
    assert "\r[" in tty.getvalue() and "2/2 beta" in tty.getvalue()
    assert pipe.getvalue() == ""
    assert "0 built, 0 cached, 0 failed" in summary([])


def test_recovers_from_a_killed_build(tmp_path):
    specs, out, before = _good_library(tmp_path)
    dead = 2**22 + 12345   # above the default pid_max: no such process
    # killed between the swap's renames: OUT sits in its backup, a temp folder is left over
    os.rename(out, tmp_path / f".lib.nkigen-old-{dead}")
    (tmp_path / f".lib.nkigen-tmp-{dead}" / "kernels").mkdir(parents=True)
    rep = build(BuildOptions((str(specs),), str(out)), FAKE)
    assert [r.status for r in rep.results] == ["built", "cached"]
    assert snapshot(out)["kernels/beta.py"] == before["kernels/beta.py"]
    assert leftovers(tmp_path) == []


def test_refuses_symlinked_output(tmp_path):
    specs = write_specs(tmp_path, a=spec_text("alpha"))
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(NkigenError, match="symbolic link"):
        build(BuildOptions((str(specs),), str(tmp_path / "link")), FAKE)


def test_auto_schedules_are_tuned_at_the_largest_case(tmp_path, calls):
    specs = write_specs(tmp_path, a=spec_text("alpha", cases=(8, 32, 16)))
    out = tmp_path / "lib"
    build(BuildOptions((str(specs),), str(out)), replace(FAKE, tune=fakes.fake_tune))
    assert "tune alpha N=32" in calls.read_text()
    sched = json.loads((out / "manifest.json").read_text())["kernels"][0]["schedule"]
    assert sched["tuned_at"] == {"N": 32}


def test_dead_worker_process_fails_the_build_cleanly(tmp_path):
    specs = write_specs(tmp_path, a=spec_text("alpha"), b=spec_text("crash"))
    stages = replace(FAKE, generate=fakes.fake_generate_crash)
    rep = build(BuildOptions((str(specs),), str(tmp_path / "lib"), jobs=2), stages)
    assert "failed" in [r.status for r in rep.results]
    crashed = [r for r in rep.results if r.spec == "b.yaml"][0]
    assert crashed.status == "failed" and "worker process" in crashed.diagnostics[0]
    assert not rep.written and leftovers(tmp_path) == []
