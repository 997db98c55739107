"""Robustness of `nkigen build`: dangerous or unrelated OUT folders are refused with a clear error
and left untouched; a failing build leaves a previous library byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_helpers import RELU_TEMPLATE, run

LOCATED = re.compile(r":\d+:\d+: ")

GOOD = RELU_TEMPLATE


def tree_hash(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (files), 'dir' (folders), 'link:<target>' (symlinks)."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            p = Path(dirpath) / d
            out[str(p.relative_to(root))] = "link:" + os.readlink(p) if p.is_symlink() else "dir"
        for f in files:
            p = Path(dirpath) / f
            rel = str(p.relative_to(root))
            out[rel] = ("link:" + os.readlink(p) if p.is_symlink()
                        else hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture
def specs(tmp_path):
    d = tmp_path / "specs"
    d.mkdir()
    (d / "one.yaml").write_text(GOOD.format(name="one"))
    (d / "two.yaml").write_text(GOOD.format(name="two"))
    return d


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


def test_out_is_root(specs, capsys):
    before = sorted(os.listdir("/"))
    code, out, err = run(capsys, "build", str(specs), "-o", "/")
    assert code == 1 and "refus" in err, err
    assert sorted(os.listdir("/")) == before


def test_out_is_home(specs, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("keep")
    monkeypatch.setenv("HOME", str(home))
    before = tree_hash(home)
    code, out, err = run(capsys, "build", str(specs), "-o", str(home))
    assert code == 1 and str(home) in err, err
    assert tree_hash(home) == before


def test_out_is_home_with_trailing_slash_and_dot(specs, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for out in (str(home) + "/", str(home) + "/.", str(home / "x" / "..")):
        code, _, err = run(capsys, "build", str(specs), "-o", out)
        assert code == 1 and "refus" in err, (out, err)
    assert sorted(os.listdir(home)) == []


def test_out_is_specs_folder(specs, capsys):
    before = tree_hash(specs)
    code, out, err = run(capsys, "build", str(specs), "-o", str(specs))
    assert code == 1 and str(specs) in err, err
    assert tree_hash(specs) == before


def test_out_is_parent_of_specs(specs, tmp_path, capsys):
    before = tree_hash(tmp_path)
    code, out, err = run(capsys, "build", str(specs / "one.yaml"), "-o", str(tmp_path))
    assert code == 1, err
    assert tree_hash(tmp_path) == before


def test_out_is_current_folder(specs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(specs)
    before = tree_hash(tmp_path)
    for out in (".", "./", "..", str(specs)):
        code, _, err = run(capsys, "build", "one.yaml", "-o", out)
        assert code == 1, (out, err)
    assert tree_hash(tmp_path) == before


def test_out_is_a_file(specs, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    code, out, err = run(capsys, "build", str(specs), "-o", str(f))
    assert code == 1 and str(f) in err, err
    assert f.read_text() == "keep me"
    assert _siblings(f) == ["file.txt", "specs"]


def test_out_is_a_spec_file(specs, capsys):
    spec = specs / "one.yaml"
    before = spec.read_bytes()
    code, out, err = run(capsys, "build", str(specs), "-o", str(spec))
    assert code == 1, err
    assert spec.read_bytes() == before


def test_out_is_unrelated_nonempty_folder(specs, tmp_path, capsys):
    other = tmp_path / "photos"
    (other / "2024").mkdir(parents=True)
    (other / "2024" / "a.jpg").write_bytes(b"\xff\xd8jpeg")
    (other / "notes.txt").write_text("keep")
    before = tree_hash(other)
    code, out, err = run(capsys, "build", str(specs), "-o", str(other))
    assert code == 1 and str(other) in err, err
    assert tree_hash(other) == before
    assert _siblings(other) == ["photos", "specs"]


def test_out_is_folder_with_only_hidden_file(specs, tmp_path, capsys):
    other = tmp_path / "git"
    other.mkdir()
    (other / ".git").write_text("gitdir: elsewhere")
    code, out, err = run(capsys, "build", str(specs), "-o", str(other))
    assert code == 1, err
    assert tree_hash(other) == {".git": hashlib.sha256(b"gitdir: elsewhere").hexdigest()}


def test_out_is_symlink_to_folder(specs, tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(real)
    code, out, err = run(capsys, "build", str(specs), "-o", str(link))
    assert code == 1, err
    assert link.is_symlink() and tree_hash(real) == {"keep.txt": hashlib.sha256(b"x").hexdigest()}


def test_out_under_a_file(specs, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("keep")
    code, out, err = run(capsys, "build", str(specs), "-o", str(f / "lib"))
    assert code == 1 and err, err
    assert f.read_text() == "keep"


def test_out_with_odd_name(specs, tmp_path, capsys):
    out_dir = tmp_path / "lib with space\nand newline ü"
    code, out, err = run(capsys, "build", str(specs), "-o", str(out_dir))
    assert code == 0, err
    assert (out_dir / "kernels" / "one.py").exists()


def test_failed_build_leaves_previous_library_identical(specs, tmp_path, capsys):
    lib = tmp_path / "lib"
    code, out, err = run(capsys, "build", str(specs), "-o", str(lib))
    assert code == 0, err
    before = tree_hash(lib)
    assert any(k.startswith("kernels/") for k in before)
    siblings = _siblings(lib)
    (specs / "three.yaml").write_text(GOOD.format(name="three").replace("relu(", "rleu("))
    (specs / "one.yaml").write_text(GOOD.format(name="one").replace("relu", "exp"))
    code, out, err = run(capsys, "build", str(specs), "-o", str(lib))
    assert code == 1
    assert str(specs / "three.yaml") in err and LOCATED.search(err), err
    assert tree_hash(lib) == before
    assert _siblings(lib) == siblings, "the failed build left a temporary folder behind"


@pytest.mark.parametrize("bad", ["binary", "bomb", "deep", "duplicate_name", "empty"])
def test_one_hostile_spec_among_good_ones(bad, specs, tmp_path, capsys):
    lib = tmp_path / "lib"
    code, _, err = run(capsys, "build", str(specs), "-o", str(lib))
    assert code == 0, err
    before = tree_hash(lib)
    p = specs / "zz_bad.yaml"
    if bad == "binary":
        p.write_bytes(bytes(range(256)))
    elif bad == "bomb":
        p.write_bytes((Path(__file__).parent / "hostile" / "bomb.yaml").read_bytes())
    elif bad == "deep":
        p.write_text("[" * 10000 + "]" * 10000)
    elif bad == "duplicate_name":
        p.write_text(GOOD.format(name="one"))
    else:
        p.write_text("")
    code, out, err = run(capsys, "build", str(specs), "-o", str(lib))
    assert code == 1
    assert str(p) in err, err
    assert "internal error" not in err
    assert tree_hash(lib) == before
    assert _siblings(lib) == ["lib", "specs"]


def test_keep_going_writes_only_good_kernels(specs, tmp_path, capsys):
    (specs / "bad.yaml").write_text(GOOD.format(name="bad").replace("relu(", "rleu("))
    lib = tmp_path / "lib"
    code, out, err = run(capsys, "build", str(specs), "-o", str(lib), "--keep-going")
    assert code == 1
    kernels = sorted(p.name for p in (lib / "kernels").iterdir())
    assert kernels == ["one.py", "two.py"]


def test_build_no_specs_in_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "build", str(empty), "-o", str(tmp_path / "lib"))
    assert code in (1, 2) and err
    assert not (tmp_path / "lib").exists()


def test_build_missing_spec(tmp_path, capsys):
    code, out, err = run(capsys, "build", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "l"))
    assert code in (1, 2) and "nope.yaml" in err
    assert not (tmp_path / "l").exists()


@pytest.mark.parametrize("jobs", ["-1", "-5", "100000"])
def test_build_odd_jobs(jobs, specs, tmp_path, capsys):
    code, out, err = run(capsys, "build", str(specs), "-o", str(tmp_path / "lib"), "-j", jobs)
    assert code in (0, 2), err


# ---- a kernel whose outputs overflow: inf == inf is a match, and atol stays finite --------------

def test_tolerance_is_finite_when_reference_overflows():
    import tempfile

    from nkigen import testdata
    from nkigen.frontend import load_spec

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "k.yaml"
        data = yaml.safe_load(GOOD.format(name="k"))
        p.write_text(yaml.safe_dump(data))
        spec = load_spec(p)
    sizes = {"M": 128, "N": 8}
    ref = {"c": np.array([[np.inf, -np.inf, np.nan, 3.0, 4.0]])}
    rtol, atol = testdata.tolerance(spec, sizes, ref)
    assert np.isfinite(rtol) and np.isfinite(atol) and atol > 0
    big = {"c": np.array([[1e300, -1e300]])}
    assert np.isfinite(testdata.tolerance(spec, sizes, big)[1])
    nothing_finite = {"c": np.array([[np.nan, np.inf]])}
    assert np.isfinite(testdata.tolerance(spec, sizes, nothing_finite)[1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_build_accepts_matching_infinities(tmp_path, capsys):
    d = tmp_path / "specs"
    d.mkdir()
    data = yaml.safe_load(GOOD.format(name="big"))
    data["params"] = {"alpha": 1.7e308}
    data["compute"] = ["c[m, n] = relu(alpha * a[m, n])"]
    data.setdefault("tests", {})["nonfinite"] = True    # the overflow to inf is expected
    (d / "big.yaml").write_text(yaml.safe_dump(data))
    code, out, err = run(capsys, "build", str(d), "-o", str(tmp_path / "lib"))
    assert code == 0, err


# ---- hostile spec file names reach the generated library ----------------------------------------

def _names_in_calls(tree) -> set[str]:
    import ast
    return {n.func.attr for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}


def test_spec_file_name_cannot_inject_code_into_suite(tmp_path, capsys):
    import ast
    d = tmp_path / "specs"
    d.mkdir()
    (d / 'a"""; import os; os.system("touch PWNED"); """.yaml').write_text(GOOD.format(name="k"))
    lib = tmp_path / "lib"
    code, out, err = run(capsys, "build", str(d), "-o", str(lib))
    if code == 1:  # refusing such a file name is fine too
        assert "Traceback" not in err and not lib.exists()
        return
    for py in sorted((lib / "tests").glob("*.py")) + sorted((lib / "kernels").glob("*.py")):
        tree = ast.parse(py.read_text())
        assert "system" not in _names_in_calls(tree), py
        assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and
                       any(a.name == "os" for a in n.names) for n in tree.body[:2]), py


@pytest.mark.parametrize("fname", ['q"uote.yaml', "new\nline.yaml", "tab\t{{ x }}.yaml",
                                   "ünï cødé.yaml", "'single'.yaml"])
def test_spec_file_odd_names_build_a_working_suite(fname, tmp_path, capsys):
    import ast
    d = tmp_path / "specs"
    d.mkdir()
    (d / fname).write_text(GOOD.format(name="k"))
    lib = tmp_path / "lib"
    code, out, err = run(capsys, "build", str(d), "-o", str(lib))
    assert code == 0, err
    for py in sorted((lib / "tests").glob("*.py")):
        ast.parse(py.read_text())


def test_spec_file_name_with_backslash(tmp_path, capsys):
    d = tmp_path / "specs"
    d.mkdir()
    (d / "back\\slash.yaml").write_text(GOOD.format(name="k"))
    lib = tmp_path / "lib"
    code, out, err = run(capsys, "build", str(d), "-o", str(lib))
    assert code in (0, 1), err
    assert not any(p.name.startswith(".lib") for p in tmp_path.iterdir())
