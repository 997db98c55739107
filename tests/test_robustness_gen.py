"""Robustness of generated code: hostile names and docs either get a located error from `check`
or produce a kernel that parses, has an inert docstring and no extra top-level statements, and
verifies against the float64 reference in the simulator (via `nkigen build`). Also `gen -o`
into bad destinations: a clear error, non-zero exit, no partial file.
"""

from __future__ import annotations

import ast
import os
import re
import stat
from pathlib import Path

import pytest
import yaml
from cli_helpers import run

LOCATED = re.compile(r":\d+:\d+: ")



def _const(n: ast.stmt) -> bool:
    """A module-level tile constant (``TILE_P = nl.tile_size.pmax``, ``BLOCK_M = 16 * TILE_M``):
    one upper-case name bound to a number, an nl.tile_size attribute or arithmetic of those."""
    if not (isinstance(n, ast.Assign) and len(n.targets) == 1
            and isinstance(n.targets[0], ast.Name) and n.targets[0].id.isupper()):
        return False
    for x in ast.walk(n.value):
        if isinstance(x, ast.Name) and not (x.id.isupper() or x.id == "nl"):
            return False
        if isinstance(x, ast.Call):
            return False
        if isinstance(x, ast.Attribute) and not ast.unparse(x).startswith("nl.tile_size"):
            return False
    return True

def elementwise(kernel="k", size_m="M", size_n="N", param="alpha", inp="a", out="c", im="m",
                in_="n", doc="c = relu(alpha * a)") -> dict:
    return {
        "nkigen": 1, "name": kernel, "doc": doc,
        "sizes": {size_m: {"multiple_of": 128}, size_n: {"min": 1, "max": 1024}},
        "params": {param: 0.5},
        "inputs": {inp: {"shape": [size_m, size_n], "dtype": "float32"}},
        "outputs": {out: {"shape": [size_m, size_n], "dtype": "float32"}},
        "compute": [f"{out}[{im}, {in_}] = relu({param} * {inp}[{im}, {in_}])"],
        "tests": {"cases": [{size_m: 128, size_n: 8}]},
    }


def matmul(kernel="k", a="a", b="b", c="c", acc="acc", im="m", ik="k2", in_="n", size_k="K"):
    return {
        "nkigen": 1, "name": kernel,
        "sizes": {"M": {"multiple_of": 128}, size_k: {"multiple_of": 128}, "N": {"max": 512}},
        "inputs": {a: {"shape": ["M", size_k], "dtype": "float32"},
                   b: {"shape": [size_k, "N"], "dtype": "float32"}},
        "outputs": {c: {"shape": ["M", "N"], "dtype": "float32"}},
        "temps": {acc: {"shape": ["M", "N"], "dtype": "float32"}},
        "compute": [f"{acc}[{im}, {in_}] += {a}[{im}, {ik}] * {b}[{ik}, {in_}]",
                    f"{c}[{im}, {in_}] = {acc}[{im}, {in_}] - sum({a}[{im}, {ik}], {ik})"],
        "tests": {"cases": [{"M": 128, size_k: 256, "N": 40}]},
    }


def _write(tmp_path: Path, data, name="spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return p


def _shape(src: str) -> list[str]:
    """Top-level statement kinds of a module (imports and defs, never anything else)."""
    return [type(n).__name__ + (f":{n.name}" if isinstance(n, ast.FunctionDef) else "")
            for n in ast.parse(src).body]


def _base_shape(kernel: str = "k") -> list[str]:
    src = _gen_src(elementwise(kernel=kernel))
    return _shape(src)


_GEN_CACHE: dict[str, str] = {}


def _gen_src(data: dict) -> str:
    import nkigen.codegen as cg
    from nkigen.frontend import load_spec
    key = yaml.safe_dump(data)
    if key not in _GEN_CACHE:
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(key)
        try:
            _GEN_CACHE[key] = cg.generate(load_spec(f.name))
        finally:
            os.unlink(f.name)
    return _GEN_CACHE[key]


def check_or_verify(tmp_path: Path, capsys, data: dict) -> str:
    """Rejected with a located error by check and gen, or generated, parsed and verified in the
    simulator against the float64 reference on every test case."""
    p = _write(tmp_path, data)
    code, out, err = run(capsys, "check", str(p))
    assert code in (0, 1), (code, err)
    if code == 1:
        assert str(p) in err and LOCATED.search(err), err
        assert "internal error" not in err, err
        code, out, err = run(capsys, "gen", str(p))
        assert code == 1 and out == "", (code, out, err)
        return "rejected"
    kpy = tmp_path / "kernel.py"
    code, out, err = run(capsys, "gen", str(p), "-o", str(kpy))
    assert code == 0, err
    src = kpy.read_text()
    tree = ast.parse(src)
    # the @nki.jit kernel, after its stage helpers (module-level `_<name>_stage<i>` functions;
    # the kernel name's own leading underscores dropped, so no helper name starts with `__`)
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.decorator_list]
    assert [f.name for f in fns] == [data["name"]]
    helpers = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.decorator_list]
    prefix = "_" + (data["name"].lstrip("_") or "kernel") + "_stage"
    assert all(h.startswith(prefix) and not h.startswith("__") for h in helpers), helpers
    assert all(isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef)) or _const(n)
               for n in tree.body)
    assert [a.arg for a in fns[0].args.args] == list(data["inputs"])
    verify_numerics(p, kpy, data["name"])
    return "verified"


def verify_numerics(spec_path: Path, kernel_path: Path, name: str) -> None:
    """Run the generated kernel in the simulator on each test case; compare with the reference."""
    import numpy as np

    from nkigen import reference, sim, testdata
    from nkigen.frontend import load_spec

    spec = load_spec(spec_path)
    kernel = sim.load(kernel_path, name)
    for sizes in testdata.cases(spec):
        inputs = testdata.make_inputs(spec, sizes)
        expected = reference.evaluate(spec, inputs, sizes)
        rtol, atol = testdata.tolerance(spec, sizes, expected)
        res = sim.run(kernel, list(inputs.values()), numerics=True, report=False)
        for t, got in zip(spec.outputs, res.outputs):
            g = np.asarray(got, dtype=np.float64)
            e = expected[t.name]
            assert g.shape == e.shape
            ok = (np.abs(g - e) <= atol + rtol * np.abs(e)) | (g == e)
            assert ok.all(), (t.name, sizes, float(np.nanmax(np.abs(g - e))))


# ---- hostile docs ------------------------------------------------------------------------------

DOCS = {
    "triple_quote": 'ends """ here; import os; """ again',
    "single_triple": "ends ''' here",
    "trailing_quote": 'ends with a quote"',
    "backslash": "a \\ b \\\\ c \\n d \\x00 \\N{BULLET} \\u2028",
    "trailing_backslash": "ends in a backslash \\",
    "nul": "nul \x00 byte",
    "controls": "bell \x07 esc \x1b del \x7f cr \r tab \t vt \x0b ff \x0c",
    "u2028": "line\u2028sep and para\u2029sep",
    "nel": "next\x85line",
    "bom": "\ufeffbom inside",
    "rtl": "rtl \u202e override \u2066 isolate",
    "astral": "emoji \U0001F600 and \U000E0041 tag",
    "surrogate_escape": "\\ud800 escaped text",
    "jinja": "{{ 7 * 7 }} {% for x in y %}{{ x }}{% endfor %} {# c #} {{ k.name }}",
    "format": "{} {0} {name} %s %(x)s",
    "noqa": "x  # noqa: E501\n# type: ignore\nimport os  # noqa",
    "multiline": "first\n\nsecond line\n    indented\nlast",
    "code_like": "\"\"\"\nimport os\nos.system('x')\n\"\"\"",
    "long": "word " * 20000,
    "only_space": "   ",
    "empty": "",
}


@pytest.mark.parametrize("case", sorted(DOCS))
def test_hostile_doc(case, tmp_path, capsys):
    doc = DOCS[case]
    data = elementwise(doc=doc)
    p = _write(tmp_path, data)
    code, out, err = run(capsys, "check", str(p))
    if code == 1:  # a doc may be refused (e.g. control characters), but located and clean
        assert str(p) in err and LOCATED.search(err), err
        return
    code, src, err = run(capsys, "gen", str(p))
    assert code == 0, err
    assert _shape(src) == _base_shape(), "the doc added or removed top-level statements"
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.decorator_list)
    got = ast.get_docstring(fn, clean=False)
    expected = doc.replace("\n", "\n    ").rstrip(" \n") or "Generated kernel."
    assert got == expected
    # the kernel body is the same as with a plain doc: the doc changed nothing but itself
    base = _gen_src(elementwise())
    base_fn = next(n for n in ast.parse(base).body if isinstance(n, ast.FunctionDef)
                   and n.decorator_list)
    assert [ast.dump(s) for s in fn.body[1:]] == [ast.dump(s) for s in base_fn.body[1:]]
    assert "import os" not in "\n".join(line for line in src.splitlines()
                                       if not line.startswith(" "))


def test_hostile_doc_kernel_runs(tmp_path, capsys):
    """One kernel with every hostile doc glued together still verifies in the simulator."""
    doc = " | ".join(v for k, v in sorted(DOCS.items()) if k not in ("long",))
    assert check_or_verify(tmp_path, capsys, elementwise(doc=doc)) in ("verified", "rejected")


# ---- legal edge values that check accepts: they must generate and verify -----------------------

def _edge(**over):
    d = elementwise()
    for k, v in over.items():
        d[k] = v
    return d


EDGES = {
    "multiple_of_float": _edge(sizes={"M": {"multiple_of": 128.0}, "N": {"max": 1024}}),
    "tiles_float": _edge(schedule={"tiles": {"n": 8.0}}),
    "seed_huge": _edge(tests={"cases": [{"M": 128, "N": 8}], "seed": 10 ** 40}),
    "fullwidth_ident": _edge(compute=["c[m, n] = relu(alpha * ａ[m, n])"]),
    "comment_noqa": _edge(compute=["c[m, n] = relu(alpha * a[m, n])  # noqa\nimport os"]),
    "comment_jinja": _edge(compute=["c[m, n] = relu(alpha * a[m, n])  # {{ 7*7 }} \"\"\" \\"]),
    "param_tiny": _edge(params={"alpha": 5e-324}),
    "param_negative_zero": _edge(params={"alpha": -0.0}),
    "param_int": _edge(params={"alpha": 3}),
    "ragged_n": _edge(tests={"cases": [{"M": 128, "N": 1}, {"M": 256, "N": 1023}]}),
    "unicode_doc_only": _edge(doc="ünïcødé 名前 \u2028"),
}


@pytest.mark.parametrize("case", sorted(EDGES))
def test_legal_edge(case, tmp_path, capsys):
    result = check_or_verify(tmp_path, capsys, EDGES[case])
    if case == "comment_noqa":
        src = (tmp_path / "kernel.py").read_text() if result == "verified" else ""
        assert not any(line.strip().startswith("import os") for line in src.splitlines())


# ---- gen -o into bad destinations --------------------------------------------------------------

@pytest.fixture
def good_spec(tmp_path):
    return _write(tmp_path, elementwise(), "good.yaml")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_gen_o_new_nested_folder(good_spec, tmp_path, capsys):
    """A missing parent folder is created (documented: written atomically), file complete."""
    out = tmp_path / "new" / "deeper" / "k.py"
    code, _, err = run(capsys, "gen", str(good_spec), "-o", str(out))
    if code == 0:
        ast.parse(out.read_text())
        assert _leftovers(out.parent) == ["k.py"]
    else:
        assert code == 1 and str(out) in err
        assert not out.exists()


def test_gen_o_parent_is_a_file(good_spec, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    code, out, err = run(capsys, "gen", str(good_spec), "-o", str(blocker / "k.py"))
    assert code == 1 and str(blocker) in err
    assert blocker.read_text() == "keep me"


def test_gen_o_onto_existing_folder(good_spec, tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    code, out, err = run(capsys, "gen", str(good_spec), "-o", str(folder))
    assert code == 1 and str(folder) in err
    assert _leftovers(folder) == ["keep.txt"]
    assert _leftovers(tmp_path) == ["existing", "good.yaml"]


def test_gen_o_dotdot_path(good_spec, tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    out = tmp_path / "sub" / ".." / "k.py"
    code, _, err = run(capsys, "gen", str(good_spec), "-o", str(out))
    assert code == 0, err
    ast.parse((tmp_path / "k.py").read_text())
    assert _leftovers(tmp_path / "sub") == []


def test_gen_o_missing_then_dotdot(good_spec, tmp_path, capsys):
    out = tmp_path / "nope" / ".." / "k2.py"
    code, _, err = run(capsys, "gen", str(good_spec), "-o", str(out))
    assert code in (0, 1)
    if code == 0:
        ast.parse((tmp_path / "k2.py").read_text())
    else:
        assert not (tmp_path / "k2.py").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_gen_o_readonly_folder(good_spec, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, out, err = run(capsys, "gen", str(good_spec), "-o", str(ro / "k.py"))
        assert code == 1 and str(ro) in err
        assert _leftovers(ro) == []
    finally:
        ro.chmod(0o755)


def _device(tmp_path: Path, name: str, minor: int) -> Path:
    """A private copy of a memory device (1, minor) in tmp_path: the tests never touch /dev."""
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except (OSError, AttributeError):
        pytest.skip("cannot create a device node here (needs root)")
    return path


def test_gen_o_device_full(good_spec, tmp_path, capsys):
    full = _device(tmp_path, "full", 7)
    code, out, err = run(capsys, "gen", str(good_spec), "-o", str(full))
    assert code == 1 and str(full) in err
    assert full.is_char_device(), "gen -o replaced a full device with a file"


def test_gen_o_dev_null(good_spec, tmp_path, capsys):
    """An existing device is written in place, never replaced by a regular file."""
    null = _device(tmp_path, "null", 3)
    code, out, err = run(capsys, "gen", str(good_spec), "-o", str(null))
    assert code == 0, err
    assert null.is_char_device()


@pytest.mark.parametrize("how", ["same", "dot", "symlink"])
def test_gen_o_is_the_spec_itself(how, good_spec, tmp_path, capsys, monkeypatch):
    before = good_spec.read_bytes()
    if how == "same":
        target = str(good_spec)
    elif how == "dot":
        monkeypatch.chdir(tmp_path)
        target = "./good.yaml"
    else:
        (tmp_path / "link.py").symlink_to(good_spec)
        target = str(tmp_path / "link.py")
    code, out, err = run(capsys, "gen", str(good_spec), "-o", target)
    assert code == 1 and "spec file itself" in err, err
    assert good_spec.read_bytes() == before


def test_gen_o_new_file_is_not_private(good_spec, tmp_path, capsys):
    out = tmp_path / "k.py"
    old = os.umask(0o022)
    try:
        code, _, err = run(capsys, "gen", str(good_spec), "-o", str(out))
    finally:
        os.umask(old)
    assert code == 0, err
    assert out.stat().st_mode & 0o777 == 0o644


def test_gen_bad_dialect_is_a_usage_error(good_spec, tmp_path, capsys):
    code, out, err = run(capsys, "gen", str(good_spec), "--dialect", "nope", "-o",
                         str(tmp_path / "k.py"))
    assert code == 2 and "--dialect" in err
    assert not (tmp_path / "k.py").exists()


def test_gen_o_failure_leaves_previous_file(tmp_path, capsys):
    """A bad spec never truncates or replaces an existing output file."""
    bad = _write(tmp_path, elementwise(inp="c"), "bad.yaml")
    out = tmp_path / "k.py"
    out.write_text("previous contents\n")
    code, _, err = run(capsys, "gen", str(bad), "-o", str(out))
    assert code == 1 and LOCATED.search(err)
    assert out.read_text() == "previous contents\n"
    assert _leftovers(tmp_path) == ["bad.yaml", "k.py"]


def test_gen_stdout_failure_prints_nothing(tmp_path, capsys):
    bad = _write(tmp_path, elementwise(inp="c"), "bad.yaml")
    code, out, err = run(capsys, "gen", str(bad))
    assert code == 1 and out == ""


def test_gen_unknown_dialect(good_spec, capsys):
    for dialect in ("nope", "../../etc", "nki/../nki", ""):
        code, out, err = run(capsys, "gen", str(good_spec), "--dialect", dialect)
        assert code in (1, 2), (dialect, code, err)
        assert out == "" and err


# ---- the classic dialect escapes docs and avoids spec names too ---------------------------------

@pytest.mark.parametrize("data", [
    elementwise(doc=DOCS["triple_quote"] + DOCS["jinja"] + DOCS["nul"] + DOCS["u2028"]),
    elementwise(inp="nfc", out="psz_n", param="i_f", im="i_p"),
    matmul(a="kt", b="nkt", c="acc1", acc="a_t", ik="k20"),
], ids=["docs", "elementwise_names", "matmul_names"])
def test_classic_dialect_hostile(data, tmp_path, capsys):
    p = _write(tmp_path, data)
    code, out, err = run(capsys, "check", str(p))
    assert code == 0, err
    kpy = tmp_path / "classic.py"
    code, out, err = run(capsys, "gen", str(p), "--dialect", "neuronxcc", "-o", str(kpy))
    assert code == 0, err
    tree = ast.parse(kpy.read_text())
    assert all(isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef)) or _const(n)
               for n in tree.body)
    verify_numerics(p, kpy, data["name"])
