"""Hardening of the CLI and `nkigen build`: the last-resort catch of internal errors in
nkigen.cli.main, OS errors on user paths, hostile spec file names in the generated library,
and verification of non-finite outputs.
"""

from __future__ import annotations

import pytest
from cli_helpers import RELU_TEMPLATE, run

from nkigen import cli
from nkigen.cli import main

GOOD = RELU_TEMPLATE


# ---- the last-resort catch in cli.main -----------------------------------------------------------

@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "k.yaml"
    p.write_text(GOOD.format(name="k"))
    return p


def _break_pipeline(monkeypatch, exc: BaseException):
    from nkigen import pipeline

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(pipeline, "check", boom)
    monkeypatch.setattr(pipeline, "load_spec", boom)


@pytest.mark.parametrize("cmd", ["gen", "explain", "tune"])
def test_internal_error_is_one_line(cmd, spec, monkeypatch, capsys):
    monkeypatch.delenv("NKIGEN_DEBUG", raising=False)
    _break_pipeline(monkeypatch, RuntimeError("kaput\nsecond line"))
    code, out, err = run(capsys, cmd, str(spec))
    assert code == 1
    assert err.count("\n") == 1, err
    assert f"{spec}: internal error in nkigen (RuntimeError: kaput second line); please " \
           "report it \u2014 set NKIGEN_DEBUG=1 for the traceback" in err


def test_internal_error_without_a_spec(monkeypatch, capsys):
    monkeypatch.delenv("NKIGEN_DEBUG", raising=False)
    import nkigen.commands.schema as schema

    def boom(args):
        raise KeyError("x")

    monkeypatch.setattr(schema, "run", boom)
    code, out, err = run(capsys, "schema")
    assert code == 1
    assert err == ("nkigen: internal error (KeyError: 'x'); please report it \u2014 set "
                   "NKIGEN_DEBUG=1 for the traceback\n")


def test_internal_error_reraised_with_debug(spec, monkeypatch):
    monkeypatch.setenv("NKIGEN_DEBUG", "1")
    _break_pipeline(monkeypatch, RuntimeError("kaput"))
    with pytest.raises(RuntimeError, match="kaput"):
        main(["gen", str(spec)])


def test_too_deep_is_not_an_internal_error(spec, monkeypatch, capsys):
    monkeypatch.delenv("NKIGEN_DEBUG", raising=False)
    _break_pipeline(monkeypatch, RecursionError("maximum recursion depth exceeded"))
    code, out, err = run(capsys, "explain", str(spec))
    assert code == 1 and err == f"{spec}: spec is too deeply nested to explain\n"


def test_check_uses_the_same_wording(spec, monkeypatch, capsys):
    monkeypatch.delenv("NKIGEN_DEBUG", raising=False)
    _break_pipeline(monkeypatch, RuntimeError("kaput"))
    code, out, err = run(capsys, "check", str(spec))
    assert code == 1
    assert cli.internal_error(RuntimeError("kaput"), str(spec)) in err


def test_user_errors_are_not_internal(spec, tmp_path, capsys):
    code, out, err = run(capsys, "gen", str(tmp_path / "missing.yaml"))
    assert code == 2 and "internal error" not in err   # a missing path is a usage error


# ---- OS errors and unsafe spec names in `nkigen build` -------------------------------------------

def _lib_siblings(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".lib"))


def test_build_out_two_levels_under_a_file(spec, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("keep")
    code, out, err = run(capsys, "build", str(spec), "-o", str(f / "a" / "lib"))
    assert code == 1 and f"{f} is a file" in err, err
    assert f.read_text() == "keep"


def test_build_os_error_names_the_path(spec, tmp_path, capsys, monkeypatch):
    import os

    from nkigen.library import build as buildmod
    lib = tmp_path / "lib"
    code, _, err = run(capsys, "build", str(spec), "-o", str(lib))
    assert code == 0, err
    before = sorted(p.name for p in lib.rglob("*"))
    real_rename = os.rename

    def full(src, dst):
        if str(dst) == str(lib) and "nkigen-tmp" in str(src):
            raise OSError(28, "No space left on device", str(dst))
        return real_rename(src, dst)

    monkeypatch.setattr(buildmod.atomic.os, "rename", full)
    monkeypatch.setattr(buildmod.atomic, "_exchange", lambda a, b: False)   # the 2-rename path
    code, _, err = run(capsys, "build", str(spec), "-o", str(lib), "--rebuild")
    assert code == 1 and f"{lib}: -o/--out: cannot write the library" in err, err
    assert "No space left on device" in err
    assert sorted(p.name for p in lib.rglob("*")) == before
    assert _lib_siblings(tmp_path) == []


@pytest.mark.parametrize("fname", ["back\\slash.yaml", b"bad\xff.yaml"])
def test_build_refuses_unsafe_spec_names(fname, tmp_path, capsys):
    import os
    d = tmp_path / "specs"
    d.mkdir()
    raw = os.fsencode(str(d)) + b"/" + (fname if isinstance(fname, bytes) else fname.encode())
    with open(raw, "w") as f:
        f.write(GOOD.format(name="k"))
    lib = tmp_path / "lib"
    code, out, err = run(capsys, "build", str(d), "-o", str(lib))
    assert code == 1 and "SPECS: a spec file name must not hold" in err, err
    assert str(d) in err
    assert not lib.exists() and _lib_siblings(tmp_path) == []


def test_manifest_schema_failure_is_a_located_error(tmp_path, monkeypatch):
    from test_build_fakes import FAKE, spec_text

    from nkigen.diagnostics import NkigenError
    from nkigen.library import manifest
    from nkigen.library.build import BuildOptions, build
    real_make = manifest.make

    def bad_make(entries, target, dialect):
        man = real_make(entries, target, dialect)
        man["kernels"][0]["spec"] = "/absolute.yaml"
        return man

    monkeypatch.setattr(manifest, "make", bad_make)
    p = tmp_path / "k.yaml"
    p.write_text(spec_text("k"))
    with pytest.raises(NkigenError) as ei:
        build(BuildOptions((str(p),), str(tmp_path / "lib")), FAKE)
    text = str(ei.value)
    assert text.startswith(f"{p}: manifest.kernels[0].spec: the library manifest breaks"), text
    assert not (tmp_path / "lib").exists() and _lib_siblings(tmp_path) == []


# ---- spec-derived strings in the generated suite and README: escaped, never code ----------------

HOSTILE_NAMES = [
    'a"""; import os; os.system("touch PWNED"); """.yaml',
    "a'''; import os; os.system('touch PWNED'); '''.yaml",
    'end".yaml',
    "n\nl\r\x0b\x1b[31m\u2028\u2029\U0001f600.yaml",
    'q"uote".yaml',
    'x"".yaml',
]

ALLOWED_NAMES = {"KERNEL", "TARGET", "DIALECT", "INPUTS", "OUTPUTS", "CASES", "INVALID"}


def assert_inert_test_module(src: str) -> None:
    """The generated test module: a docstring, the two imports, literal constants, tests."""
    import ast

    tree = ast.parse(src)
    body = list(tree.body)
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    assert isinstance(body[0].value.value, str)
    for node in body[1:]:
        if isinstance(node, ast.ImportFrom):
            assert node.module == "__future__" and [a.name for a in node.names] == ["annotations"]
        elif isinstance(node, ast.Import):
            assert [a.name for a in node.names] == ["pytest"]
        elif isinstance(node, ast.Assign):
            assert [t.id for t in node.targets if isinstance(t, ast.Name)] == \
                [node.targets[0].id] and node.targets[0].id in ALLOWED_NAMES
            ast.literal_eval(node.value)   # data only: no calls, names or operators
        elif isinstance(node, ast.FunctionDef):
            assert node.name.startswith("test_")
        else:
            raise AssertionError(f"unexpected statement {ast.dump(node)[:200]}")


@pytest.mark.parametrize("fname", HOSTILE_NAMES)
def test_hostile_spec_name_is_inert_in_the_suite(fname, tmp_path, capsys, monkeypatch):
    import ast
    import subprocess
    import sys

    from test_build_fakes import FAKE, spec_text

    from nkigen.library import build as buildmod

    monkeypatch.setattr(buildmod, "real_stages", lambda: FAKE)
    d = tmp_path / "specs"
    d.mkdir()
    (d / fname).write_text(spec_text("k"))
    lib = tmp_path / "lib"
    code, out, err = run(capsys, "build", str(d), "-o", str(lib))
    assert code == 0, err
    test_py = lib / "tests" / "test_k.py"
    src = test_py.read_text()
    assert_inert_test_module(src)
    doc = ast.get_docstring(ast.parse(src), clean=False)
    assert f"(spec {fname})" in doc      # the name is recorded exactly, as text
    # importing the module runs nothing but its constants
    monkeypatch.chdir(tmp_path)
    subprocess.run([sys.executable, "-c", "import runpy, sys; "
                    f"runpy.run_path({str(test_py)!r})"], check=True, cwd=tmp_path,
                   capture_output=True)
    assert not (tmp_path / "PWNED").exists()
    readme = (lib / "README.md").read_text()
    rows = [ln for ln in readme.splitlines() if ln.startswith("| `k`")]
    assert len(rows) == 1


def test_suite_doc_filter_round_trips():
    import ast

    from nkigen.library.suite import doc_text
    for s in HOSTILE_NAMES + ['"', '""', '"""', "\\", "\\\\\"", "\x00", "\udcff", "tail\\"]:
        lit = f'"""{doc_text(s)}"""'
        assert ast.literal_eval(lit) == s
        assert "\n" not in lit


@pytest.mark.parametrize("doc, cell", [
    ("a | b", "a \\| b"),
    ("line1\nline2\r\n\tline3", "line1 line2 line3"),
    ("back\\slash \\| pipe", "back\\\\slash \\\\\\| pipe"),
    ("<script>x</script> & `code`", "&lt;script>x&lt;/script> &amp; \\`code\\`"),
    ("ctl\x1b[31m\x00", "ctl [31m"),
])
def test_readme_doc_cell_is_escaped(doc, cell):
    from nkigen.library.readme import _cell
    assert _cell(doc) == cell


def test_readme_row_stays_one_row():
    from nkigen.library import readme
    entry = {
        "name": "k", "doc": "x | y\n| z |\n\n## heading",
        "signature": {"inputs": [{"name": "a", "dtype": "float32", "shape": ["N"]}],
                      "outputs": [{"name": "c", "dtype": "float32", "shape": ["N"]}]},
        "cases": [{"name": "N8", "sizes": {"N": 8}, "latency_us": 1.0}],
    }
    man = {"kernels": [entry], "nkigen": "0", "dialect": "nki", "target": None,
           "cost_model": "m"}
    text = readme.render(man)
    rows = [ln for ln in text.splitlines() if ln.startswith("| `k`")]
    assert len(rows) == 1
    assert rows[0].replace("\\|", "").count("|") == 6
    assert "## heading" not in text.split("| `k`")[0] and "\n## heading" not in text


# ---- verification of non-finite outputs ----------------------------------------------------------

@pytest.mark.filterwarnings("error")
def test_mismatches_non_finite():
    import numpy as np

    from nkigen.library.unit import mismatches
    inf, nan = np.inf, np.nan
    got = np.array([inf, -inf, nan, inf, 5.0, inf, nan, 1.0, 1.0 + 1e-9, 1e308, -inf])
    want = np.array([inf, -inf, nan, -inf, inf, 5.0, 1.0, nan, 1.0, -1e308, inf])
    bad, err = mismatches(got, want, rtol=1e-6, atol=1e-6)
    assert bad.tolist() == [False, False, False, True, True, True, True, True, False, True, True]
    assert err[:3].tolist() == [0.0, 0.0, 0.0]


def test_build_with_overflowing_outputs_has_no_warnings(tmp_path):
    import subprocess
    import sys

    import yaml
    d = tmp_path / "specs"
    d.mkdir()
    data = yaml.safe_load(GOOD.format(name="big"))
    data["params"] = {"alpha": 1.7e308}
    data["compute"] = ["c[m, n] = relu(alpha * a[m, n])"]
    data.setdefault("tests", {})["nonfinite"] = True     # spec language 1.1: declared overflow
    (d / "big.yaml").write_text(yaml.safe_dump(data))
    r = subprocess.run([sys.executable, "-m", "nkigen", "build", str(d), "-o",
                        str(tmp_path / "lib")], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr, r.stderr


def test_summary_shows_odd_spec_names_on_one_line():
    from nkigen.library.progress import summary
    from nkigen.library.unit import UnitResult
    text = summary([UnitResult("new\nline\x1b[31m.yaml", "", "failed")])
    assert len(text.splitlines()) == 3 and "\x1b" not in text
    assert "new\\nline\\x1b[31m.yaml" in text
