"""Library builds and symbolic links, file permissions and the suite's real-device path (issue 17).

- ``OUT/tune`` (or a cached file) that is a symbolic link is never followed: nothing outside OUT
  enters the new library;
- a spec path that is a link to a file that is not a spec does not have that file echoed: not at
  all when the link leaves the spec folder, a short escaped prefix otherwise;
- tuner cache files honour the umask (they ship inside libraries);
- the generated suite's ``run_neuron`` path runs against a stand-in ``nki`` package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_build_fakes import FAKE, spec_text
from test_build_suite import PLUGIN

from nkigen.library.build import BuildOptions, build
from nkigen.tune.cache import TuneCache

SECRET = "root:x:0:0:TOP-SECRET-LINE-do-not-print:/root:/bin/bash"


def _library(tmp_path: Path) -> tuple[Path, Path]:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "a.yaml").write_text(spec_text("alpha"))
    out = tmp_path / "lib"
    assert build(BuildOptions((str(specs),), str(out)), FAKE).written
    return specs, out


def test_tune_symlink_out_of_the_library_is_not_followed(tmp_path):
    specs, out = _library(tmp_path)
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.json").write_text(SECRET)
    (out / "tune").symlink_to(outside, target_is_directory=True)
    assert build(BuildOptions((str(specs),), str(out), rebuild=True), FAKE).written
    assert not (out / "tune").is_symlink()
    assert SECRET not in "".join(p.read_text(errors="replace")
                                 for p in out.rglob("*") if p.is_file())
    assert (outside / "secret.json").read_text() == SECRET      # untouched


def test_links_inside_the_tune_folder_are_not_followed(tmp_path):
    specs, out = _library(tmp_path)
    (tmp_path / "secret.json").write_text(SECRET)
    (out / "tune").mkdir()
    (out / "tune" / "ok.json").write_text("{}")
    (out / "tune" / "link.json").symlink_to(tmp_path / "secret.json")
    (out / "tune" / "dir").symlink_to(tmp_path, target_is_directory=True)
    # --rebuild: an up-to-date library is not rewritten at all (nothing is copied then)
    assert build(BuildOptions((str(specs),), str(out), rebuild=True), FAKE).written
    assert sorted(p.name for p in (out / "tune").iterdir()) == ["ok.json"]


def test_cached_file_replaced_by_a_link_is_rebuilt_not_linked(tmp_path):
    specs, out = _library(tmp_path)
    kernel = out / "kernels" / "alpha.py"
    copy = tmp_path / "alpha-copy.py"
    copy.write_bytes(kernel.read_bytes())          # same bytes: the hash alone would pass
    kernel.unlink()
    kernel.symlink_to(copy)
    rep = build(BuildOptions((str(specs),), str(out)), FAKE)
    assert [r.status for r in rep.results] == ["built"]
    assert not kernel.is_symlink() and kernel.read_bytes() == copy.read_bytes()


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_spec_link_to_a_non_spec_file_is_not_echoed(tmp_path, where, capsys):
    from nkigen.cli import main

    specs = tmp_path / "specs"
    specs.mkdir()
    target = (tmp_path if where == "outside" else specs) / "passwd"
    target.write_text(SECRET + "\nsecond line\n")
    (specs / "evil.yaml").symlink_to(target)
    assert main(["build", str(specs), "-o", str(tmp_path / "lib")]) == 1
    out, err = capsys.readouterr()
    assert "TOP-SECRET" not in out + err, err
    assert "Traceback" not in err
    if where == "outside":
        assert "content not shown" in err and "root:x" not in err
    else:
        assert "'root:x:0:0:TOP-...)" in err      # a short prefix, marked as cut


def test_spec_diagnostics_of_real_specs_keep_their_details(tmp_path, capsys):
    from nkigen.cli import main

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "k.yaml").write_text("nkigen: 1\nname: k\nsizes: {N: {min: 1}}\n"
                                  "inputs: {a: {shape: [N], dtype: float32}}\n"
                                  "outputs: {c: {shape: [N], dtype: float32}}\n"
                                  "compute:\n  - c[n] = a_very_long_undeclared_name[n]\n")
    assert main(["build", str(specs), "-o", str(tmp_path / "lib")]) == 1
    err = capsys.readouterr().err
    assert "a_very_long_undeclared_name" in err, err


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_tuner_cache_files_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        c = TuneCache(tmp_path / "tune", "sha", "N=8", "trn2", "nki")
        c.put("default", {"legal": True})
        c.save()
    finally:
        os.umask(old)
    (f,) = (tmp_path / "tune").glob("*.json")
    assert f.stat().st_mode & 0o777 == 0o666 & ~umask
    assert json.loads(f.read_text())["candidates"] == {"default": {"legal": True}}
    assert [p.name for p in (tmp_path / "tune").iterdir()] == [f.name]   # no temporary left


# ---- the generated suite's real-device path, against a stand-in nki ------------------------

FAKE_NKI = """
import os

def baremetal(fn):
    def run(*args):
        with open(os.environ["FAKE_NKI_LOG"], "a") as f:
            f.write(fn.__name__ + "\\n")
        out = fn(*args)
        return out * float(os.environ.get("FAKE_NKI_SCALE", "1"))
    return run
"""


def _run_suite_with_fake_nki(tmp_path: Path, lib: Path, scale: str):
    root = tmp_path / "fake_sdk"
    (root / "nki").mkdir(parents=True, exist_ok=True)
    (root / "nki" / "__init__.py").write_text(FAKE_NKI)
    (tmp_path / "fake_sim_plugin.py").write_text(PLUGIN)
    log = tmp_path / f"nki-calls-{scale}.log"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", FAKE_NKI_LOG=str(log),
               FAKE_NKI_SCALE=scale,
               PYTHONPATH=os.pathsep.join([str(root), str(tmp_path),
                                           os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider",
                        "-p", "fake_sim_plugin", str(lib / "tests"), "-k", "on_neuron"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    calls = log.read_text().split() if log.exists() else []
    return r, calls


@pytest.mark.slow
def test_run_neuron_path_with_a_stand_in_nki(tmp_path):
    _, lib = _library(tmp_path)
    r, calls = _run_suite_with_fake_nki(tmp_path, lib, "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout and "skipped" not in r.stdout, r.stdout
    assert calls == ["alpha", "alpha"]                  # both golden cases went through nki
    # a device that computes something else fails the same golden cases
    r, calls = _run_suite_with_fake_nki(tmp_path, lib, "1.5")
    assert r.returncode == 1 and "2 failed" in r.stdout, r.stdout
    assert "test_matches_reference_on_neuron[N8]" in r.stdout


FORWARDING_NKI = """
import sys
import nkigen.sim
import nkigen.sim.nki as _sim_nki
from nkigen.sim.nki import *  # noqa: F401,F403
for _sub in ("language", "isa", "typing"):
    sys.modules[__name__ + "." + _sub] = getattr(_sim_nki, _sub)
jit = _sim_nki.jit


def baremetal(fn):
    def run(*args):
        with open(__import__("os").environ["FAKE_NKI_LOG"], "a") as f:
            f.write("baremetal\\n")
        return nkigen.sim.run(fn, list(args)).outputs
    return run
"""


@pytest.mark.skipif(not __import__("test_build_suite")._real_pipeline(),
                    reason="the real pipeline stages have not landed yet")
def test_run_neuron_path_of_a_real_kernel_with_a_forwarding_nki(tmp_path):
    from test_build_suite import REAL_SPEC

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "scale_add.yaml").write_text(REAL_SPEC)
    lib = tmp_path / "lib"
    assert build(BuildOptions((str(specs),), str(lib))).ok
    root = tmp_path / "sdk"
    (root / "nki").mkdir(parents=True)
    (root / "nki" / "__init__.py").write_text(FORWARDING_NKI)
    log = tmp_path / "calls.log"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", FAKE_NKI_LOG=str(log),
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider",
                        str(lib / "tests"), "-k", "on_neuron"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # the two cases and the derived one that reaches the flat map's partial-row branch
    # (codegen/flatten.py: a trace-time branch of the current-API kernel)
    assert "3 passed" in r.stdout and "skipped" not in r.stdout, r.stdout
    assert log.read_text().split() == ["baremetal"] * 3
