"""Failure classes found by fuzzing every CLI command with mutated specs and options (fuzz4):
each input gets a located error (spec ``file:line:col``, or the option it came from), a
non-zero exit, no traceback and no "internal error"; the classes whose valid neighbours must
keep working are pinned at their boundary.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import run

from nkigen.diagnostics import Loc

ADD = """\
nkigen: 1
name: k
sizes:
  M: {{multiple_of: 128{mmin}}}
  N: {{min: {nmin}, max: 1024}}
params:
  z: {z}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = {rhs}
tests:
  cases:
    - {{M: 256, N: 8}}
"""


def spec(tmp_path: Path, rhs: str, nmin: int = 1, mmin: str = "", z: str = "0.5",
         name: str = "s.yaml") -> str:
    p = tmp_path / name
    p.write_text(ADD.format(rhs=rhs, nmin=nmin, mmin=mmin, z=z))
    return str(p)


def clean(code: int, out: str, err: str) -> None:
    """A user error: exit 1, no internal error."""
    assert code == 1, out + err
    assert "internal error" not in out + err


# ---- class: a tensor-free sub-expression with no finite value (crashed gen: zoo/complex) ----

@pytest.mark.parametrize("rhs, col, got", [
    ("x[m, n] / 0", 25, "'0'"),
    ("x[m, n] / 0.0", 25, "'0.0'"),
    ("x[m, n] / (M - M)", 26, "'M - M'"),
    ("x[m, n] * (1 / (N * 0))", 31, "'N * 0'"),
    ("x[m, n] / z", 25, "'z'"),                   # a param that is 0
])
def test_division_by_zero_is_located(tmp_path, capsys, rhs, col, got):
    path = spec(tmp_path, rhs, z="0.0")
    for cmd in (["check"], ["gen"], ["gen", "--dialect", "neuronxcc"], ["explain"]):
        code, out, err = run(capsys, *cmd, path)
        clean(code, out, err)
        assert f"{path}:13:{col}: compute[0]: division by zero: the divisor is 0 for every " \
               f"allowed size (got {got}); divide by a nonzero number" in err, err


@pytest.mark.parametrize("rhs, got", [
    ("x[m, n] * log(0.0)", "log(0.0)"),
    ("x[m, n] * sqrt(-1.0)", "sqrt(-1.0)"),
    ("x[m, n] * reciprocal(0.0)", "reciprocal(0.0)"),
    ("x[m, n] * rsqrt(M - M)", "rsqrt(M - M)"),
    ("x[m, n] * log(-M)", "log(-M)"),
    ("maximum(x[m, n], log(0.0))", "log(0.0)"),
])
def test_undefined_constant_is_located(tmp_path, capsys, rhs, got):
    path = spec(tmp_path, rhs)
    col = 5 + len("y[m, n] = ") + rhs.index(got)
    for cmd in ("check", "gen"):
        code, out, err = run(capsys, cmd, path)
        clean(code, out, err)
        assert f"{path}:13:{col}: compute[0]: this expression reads no tensor and has no " \
               f"finite real value for any allowed size (got '{got}')" in err, err


@pytest.mark.parametrize("rhs, nmin, what", [
    ("x[m, n] / (N - 1)", 1, "the divisor is nonzero"),
    ("x[m, n] / (M - 128)", 1, "the divisor is nonzero"),
    ("x[m, n] * reciprocal(N - 2)", 2, "the argument of reciprocal is nonzero"),
    ("x[m, n] * sqrt(N - 3)", 2, "the argument of sqrt is nonnegative"),
    ("x[m, n] * log(N - 1)", 1, "the argument of log is positive"),
    ("x[m, n] * rsqrt(N - 2)", 2, "the argument of rsqrt is positive"),
])
def test_divisor_zero_for_some_sizes(tmp_path, capsys, rhs, nmin, what):
    """A tensor-free divisor or argument that is out of its domain for some allowed size:
    located error at the statement; one `min` more (the boundary) makes it provable."""
    path = spec(tmp_path, rhs, nmin=nmin)
    code, out, err = run(capsys, "check", path)
    clean(code, out, err)
    assert re.search(rf"{re.escape(path)}:13:5: compute\[0\]: cannot prove {what} for every "
                     r"allowed size \(got [MN] - \d+\); constrain the sizes", err), err
    ok = spec(tmp_path, rhs, nmin=nmin + 1, mmin=", min: 256" if "M - 128" in rhs else "",
              name="ok.yaml")
    code, out, err = run(capsys, "check", ok)
    assert code == 0, err


def test_size_divisor_that_is_positive_passes(tmp_path, capsys):
    """`/ N`, `/ (2 * N)`, `/ (N + M)` and a positive param stay valid (no false alarm)."""
    path = spec(tmp_path, "x[m, n] / N + x[m, n] / (2 * N + M) - x[m, n] / z * rsqrt(N + 0.5)")
    code, out, err = run(capsys, "check", path)
    assert code == 0, err


# ---- class: an index divided by a constant larger than its extent (classic codegen crash) ----

def test_floor_index_huge_divisor_generates_in_both_dialects(tmp_path, capsys):
    p = tmp_path / "mm.yaml"
    text = (Path(__file__).resolve().parents[1] / "specs" / "matmul_bias_gelu.yaml").read_text()
    p.write_text(text.replace("a[m, k]", "a[m // 99999999999, k]"))
    for dialect in ("nki", "neuronxcc"):
        code, out, err = run(capsys, "gen", str(p), "--dialect", dialect)
        assert code == 0, err
        assert "99999999999" in out


# ---- class: `nkigen sim` options and environment --------------------------------------------

KERNEL = """\
import nki
import nki.language as nl
import nki.isa as nisa

NOT_A_KERNEL = 3


@nki.jit
def copy(x):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t, src=x)
    nisa.dma_copy(dst=out, src=t)
    return out
"""


@pytest.fixture
def kfile(tmp_path):
    p = tmp_path / "k.py"
    p.write_text(KERNEL)
    return str(p)


@pytest.mark.parametrize("seed, code", [("0", 0), ("12345678901234567890", 0), ("-1", 2),
                                        ("1.5", 2), ("٣", 2)])
def test_sim_seed_boundary(capsys, kfile, seed, code):
    """--seed -1 was an internal error (NumPy refuses negative seeds): now a usage error."""
    got, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "x=128x4", "--seed", seed)
    assert got == code, err
    if code == 2:
        assert f"argument --seed: must be a non-negative integer, got '{seed}'" in err


@pytest.mark.parametrize("inp", ["x=128x4:", "x=1_28x4", "x=٣x4", "x=+128x4", "x=128x 4"])
def test_sim_input_strict_digits(capsys, kfile, inp):
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", inp)
    clean(code, out, err)
    assert f"<command line>: --input: bad --input (got {inp}); use NAME=SHAPE[:DTYPE]" in err


def test_sim_input_twice(capsys, kfile):
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "x=128x4", "-i", "x=128x8")
    clean(code, out, err)
    assert "<command line>: --input: --input names a parameter twice (got x=128x8)" in err


@pytest.mark.parametrize("name, kind", [("NOT_A_KERNEL", "int"), ("nl", "module"),
                                        ("nisa", "module")])
def test_sim_name_that_is_not_a_function(capsys, kfile, name, kind):
    """Was located inside nkigen's own source (nkigen/commands/sim.py) or an input error."""
    code, out, err = run(capsys, "sim", f"{kfile}::{name}", "-i", "x=128x4")
    clean(code, out, err)
    assert err.startswith(f"{kfile}: kernel: '{name}' is not a kernel function (got {kind})")
    assert "nkigen/" not in err


def test_sim_bad_target_env_is_blamed_on_the_environment(capsys, kfile, monkeypatch):
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", "trn9")
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "x=128x4")
    clean(code, out, err)
    assert err.startswith("<environment>: NEURON_PLATFORM_TARGET_OVERRIDE: unknown target "
                          "(got 'trn9'); set NEURON_PLATFORM_TARGET_OVERRIDE to trn1 or trn2")
    monkeypatch.setenv("NEURON_PLATFORM_TARGET_OVERRIDE", "TRN1")   # an alias: accepted
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "x=128x4")
    assert code == 0 and " on trn1 " in out, err


def test_sim_trace_destination_errors_are_located(capsys, kfile, tmp_path):
    (tmp_path / "f").write_text("x")
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "x=128x4", "--trace",
                         str(tmp_path))
    clean(code, out, err)
    assert f"{tmp_path}: --trace: cannot write the trace (got is a folder)" in err
    assert out == ""                       # refused before simulating
    bad = tmp_path / "f" / "t.json"
    code, out, err = run(capsys, "sim", f"{kfile}::copy", "-i", "x=128x4", "--trace", str(bad))
    clean(code, out, err)
    assert f"{bad}: --trace: cannot write the trace (got Not a directory); pass a writable " \
           "file path" in err


# ---- class: test data a stage cannot draw or evaluate (were "internal error while building") --

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _lib(tmp_path: Path, capsys) -> tuple[Path, dict[str, bytes]]:
    """A library holding `add`, and its files' bytes."""
    lib = tmp_path / "lib"
    code, out, err = run(capsys, "build", str(SPECS / "add.yaml"), "-o", str(lib), "--no-lint")
    assert code == 0, err
    return lib, _files(lib)


def _files(lib: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lib)): p.read_bytes() for p in sorted(lib.rglob("*"))
            if p.is_file()}


def _build_fails(tmp_path, capsys, text: str, lib: Path, before: dict) -> str:
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    (d / "m.yaml").write_text(text)
    code, out, err = run(capsys, "build", str(d), "-o", str(lib), "--no-lint")
    clean(code, out, err)
    assert _files(lib) == before            # the previous library, byte for byte
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lib")]
    return err


def test_build_gather_ids_out_of_table_is_located(tmp_path, capsys):
    """embedding_lookup without its ids distribution: the default integers [-8, 8] fall
    outside the table; the reference's IndexError is the test data's problem, at its case."""
    lib, before = _lib(tmp_path, capsys)
    text = (SPECS / "embedding_lookup.yaml").read_text()
    text = text.replace('  inputs:\n    ids: {dist: integers, low: 0, high: "V - 1"}\n', "")
    assert "dist: integers" not in text
    err = _build_fails(tmp_path, capsys, text, lib, before)
    m = tmp_path / "specs" / "m.yaml"
    assert re.search(rf"{re.escape(str(m))}:\d+:\d+: tests.cases\[0\]: the reference cannot "
                     r"evaluate case T1_V1_D1: .*table dim 0 id from ids reaches -?\d+, outside "
                     r"\[0, 0\]; draw the ids inside the table", err), err


def test_build_integers_bounds_crossing_at_a_case_is_located(tmp_path, capsys):
    """`high: "V - 2"` is below `low: 0` at the case V=1 only: refused before any data is
    drawn (analysis/checktime.case_input_diagnostics, which `nkigen check` reports too)."""
    lib, before = _lib(tmp_path, capsys)
    text = (SPECS / "embedding_lookup.yaml").read_text().replace(
        'high: "V - 1"}', 'high: "V - 2"}')
    err = _build_fails(tmp_path, capsys, text, lib, before)
    assert re.search(r"m.yaml:\d+:\d+: tests.inputs.ids: the integers range of ids is empty "
                     r"\(low > high\) at tests.cases\[0\] \(D=1, T=1, V=1\), so its test data "
                     r"cannot be drawn \(got low 0, high V - 2 = -1\); give low <= high", err), err


@pytest.mark.parametrize("dist, ok", [
    ("{dist: uniform, low: -8.0e307, high: 8.0e307}", True),      # width 1.6e308: finite
    ("{dist: uniform, low: -1.0e308, high: 1.0e308}", False),
    ("{dist: positive, low: 1.0e-300, high: 1.7e308}", True),
    ("{dist: integers, low: 0, high: 9223372036854774784}", True),   # the largest float < 2**63-1
    ("{dist: integers, low: 0, high: 9223372036854775807}", False),
])
def test_dist_width_boundary(tmp_path, capsys, dist, ok):
    path = spec(tmp_path, "x[m, n] * 2.0")
    text = Path(path).read_text() + f"  inputs:\n    x: {dist}\n"
    Path(path).write_text(text)
    code, out, err = run(capsys, "check", path)
    if ok:
        assert code == 0, err
    else:
        clean(code, out, err)
        assert re.search(rf"{re.escape(path)}:18:8: tests.inputs.x: (uniform range is too wide "
                         r"to draw: high - low overflows float64|integers range must lie within "
                         r"int64) \(got low", err), err


def test_build_sim_error_in_generated_kernel_is_at_the_spec(tmp_path, capsys, monkeypatch):
    """A simulator error inside the generated kernel was located in the staging folder, which
    is gone after the build: now the spec's case first, then kernels/<name>.py:LINE:COL."""
    from nkigen.sim import runner
    from nkigen.sim.errors import SimError

    def refuse(kernel, args, target=None, **kw):
        raise SimError("a rule", "a value", "a fix",
                       loc=Loc(kernel.fn.__code__.co_filename, 7, 3))

    lib, before = _lib(tmp_path, capsys)
    monkeypatch.setattr(runner, "run", refuse)
    err = _build_fails(tmp_path, capsys, (SPECS / "softmax.yaml").read_text(), lib, before)
    m = tmp_path / "specs" / "m.yaml"
    lines = [ln for ln in err.splitlines() if "a rule" in ln or "fails in the simulator" in ln]
    assert re.match(rf"{re.escape(str(m))}:\d+:\d+: tests.cases\[0\]: the generated kernel "
                    r"fails in the simulator in case \w+; reproduce with `nkigen gen ", lines[0])
    assert lines[1] == "kernels/softmax.py:7:3: sim: a rule (got a value); a fix"
    assert "nkigen-tmp" not in err


# ---- class: dtypes a TensorE matmul cannot pair (the generated kernel failed in the simulator) -

@pytest.mark.parametrize("b_dtype", ["float32", "bfloat16", "int8", "int32"])
def test_matmul_fp32_pairing(tmp_path, capsys, b_dtype):
    # a 16-/8-bit operand beside a float32 one is widened to float32 in its loading DMA
    # (fuzz13), so every pair generates in both dialects (it was refused, located, before)
    p = tmp_path / "mm.yaml"
    p.write_text((SPECS / "matmul_f32.yaml").read_text().replace(
        "b: {shape: [K, N], dtype: float32}", f"b: {{shape: [K, N], dtype: {b_dtype}}}"))
    for dialect in ("nki", "neuronxcc"):
        code, out, err = run(capsys, "gen", str(p), "--dialect", dialect)
        assert code == 0, err


# ---- class: an activation scale/bias tile that is not float32 (the kernel failed in the sim) --

@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_non_fp32_activation_scale_builds_verified(tmp_path, capsys, dialect):
    """A bfloat16 runtime scalar (`lr[0]`) and an int32 per-row factor inside exp(): the
    activation's scale tile is copied to float32 first; both kernels verify."""
    d = tmp_path / "specs"
    d.mkdir()
    (d / "sgd.yaml").write_text((SPECS / "sgd_step.yaml").read_text().replace(
        "lr: {shape: [1], dtype: float32}", "lr: {shape: [1], dtype: bfloat16}"))
    (d / "mamba.yaml").write_text((SPECS / "mamba_scan.yaml").read_text().replace(
        "A: {shape: [C, S], dtype: float32}", "A: {shape: [C, S], dtype: int32}").replace(
        "    A: {dist: uniform, low: -2.0, high: -0.1}\n", "    A: {dist: integers, low: -2, "
        "high: 0}\n").replace("    - {C: 130, S: 4, T: 200}\n", "    - {C: 3, S: 2, T: 5}\n"))
    for f in d.iterdir():
        assert "float32}" in f.read_text() and f.read_text().count("bfloat16}") + \
            f.read_text().count("int32}") == 1
    code, out, err = run(capsys, "build", str(d), "-o", str(tmp_path / "lib"), "--no-lint",
                         "--dialect", dialect)
    assert code == 0, err
    assert "2 built, 0 cached, 0 failed" in out


# ---- class: `nkigen tune` options that were silently ignored ---------------------------------

@pytest.mark.parametrize("sizes, rule", [
    ("", "no size given (got '')"),
    ("  ", "no size given (got '  ')"),
    ("M=128,,N=5", "empty entry (two commas, or a trailing one) (got M=128,,N=5)"),
    ("M=128,", "empty entry (two commas, or a trailing one) (got M=128,)"),
])
def test_tune_empty_sizes_entries(capsys, sizes, rule):
    code, out, err = run(capsys, "tune", str(SPECS / "add.yaml"), "--sizes", sizes, "-q",
                         "--no-cache")
    clean(code, out, err)
    assert err.startswith(f"<command line>: --sizes: {rule}"), err


def test_tune_cache_that_is_a_file_is_said(tmp_path, capsys):
    """An unusable --cache only costs time (tests/test_robustness_sim.py), but is no longer
    silent: one warning line naming the file in the way; exit 0; the file untouched."""
    f = tmp_path / "c"
    f.write_text("x")
    for cache in (f, f / "sub"):
        code, out, err = run(capsys, "tune", str(SPECS / "add.yaml"), "--cache", str(cache),
                             "-q", "--sizes", "M=128,N=8")
        assert code == 0, err
        assert err.startswith(f"{cache}: warning: --cache: the tuning cache must be a folder "
                              f"(got {f} is a file); tuning without it"), err
    assert f.read_text() == "x"
    code, out, err = run(capsys, "tune", str(SPECS / "add.yaml"), "--cache",
                         str(tmp_path / "new" / "c"), "-q", "--sizes", "M=128,N=8")
    assert code == 0 and err == "" and (tmp_path / "new" / "c").is_dir(), err


# ---- class: a library folder whose manifest.json was edited (report/API: internal errors) ---

@pytest.mark.parametrize("edit, field, got", [
    (lambda m: m["kernels"][0].pop("target"), "manifest.kernels[0]",
     "'target' is a required property"),
    (lambda m: m["kernels"][0].update(kernel="../../etc/passwd"), "manifest.kernels[0].kernel",
     "'../../etc/passwd' does not match"),
    (lambda m: m["kernels"][0]["cases"][0].update(golden="golden/../../x.npz"),
     "manifest.kernels[0].cases[0].golden", "'golden/../../x.npz' does not match"),
    (lambda m: m.update(kernels=[{"name": 1}]), "manifest", "'format' is a required property"),
])
def test_report_of_an_edited_manifest(tmp_path, capsys, edit, field, got):
    import json

    lib, _ = _lib(tmp_path, capsys)
    man = json.loads((lib / "manifest.json").read_text())
    edit(man)
    if "format" in got:
        man = {"kernels": man["kernels"]}
    (lib / "manifest.json").write_text(json.dumps(man))
    code, out, err = run(capsys, "report", str(lib))
    clean(code, out, err)
    assert err.startswith(f"{lib / 'manifest.json'}: {field}: breaks manifest.schema.json "
                          f"(got {got}"), err
    assert not (lib / "report.html").exists()


# ---- class: schedule hints that passed check and failed only in gen --------------------------

@pytest.mark.parametrize("k, ok", [(64, True), (65, False), (10000, False)])
def test_block_factor_upper_bound_at_check(tmp_path, capsys, k, ok):
    p = tmp_path / "mm.yaml"
    p.write_text((SPECS / "matmul_bias_gelu.yaml").read_text().replace(
        "  tiles: {m: 128, n: 512, k: 128}", f"  block: {{k: {k}}}"))
    # the analysis' limit (--no-plan: without the planner's SBUF budget, which k: 64 breaks
    # with the default m block; test_block_footprint_error_names_the_indices)
    code, out, err = run(capsys, "check", "--no-plan", str(p))
    if ok:
        assert code == 0, err
        code, out, err = run(capsys, "check", str(p))    # planned, as build plans it
        assert code == 1 and "schedule.block: blocks need 897024 SBUF bytes" in err, err
        return
    clean(code, out, err)
    assert re.search(rf"{re.escape(str(p))}:\d+:\d+: schedule.block.k: block factor must be at "
                     rf"most 64 \(got {k}\); use 8", err), err


def test_block_footprint_error_names_the_indices(tmp_path, capsys):
    p = tmp_path / "mm.yaml"
    p.write_text((SPECS / "matmul_bias_gelu.yaml").read_text().replace(
        "  tiles: {m: 128, n: 512, k: 128}", "  block: {m: 9, n: 9}"))
    code, out, err = run(capsys, "gen", str(p))
    clean(code, out, err)
    assert "blocks need 409600 SBUF bytes per partition, over the trn2 budget of 212984 " \
           "(got {'m': 9, 'n': 9, 'k': 8})" in err, err


# ---- class: `nkigen lint` on files that are not plain UTF-8 Python -------------------------

LINT_HEAD = b"import nki\nimport nki.language as nl\n"


@pytest.mark.parametrize("data, want, code_", [
    (b"\xef\xbb\xbf" + LINT_HEAD + b"x = 1\n", None, 0),      # a BOM: valid Python source
    (LINT_HEAD + b'x = "\xe9"\n', ":3:6: lint[encoding]: the file is not UTF-8 text (got byte "
     "0xe9 at offset 42)", 1),
    (LINT_HEAD + b"def f(:\n", ":3:7: lint[syntax]: invalid Python", 1),
])
def test_lint_encodings_and_syntax(tmp_path, capsys, data, want, code_):
    p = tmp_path / "k.py"
    p.write_bytes(data)
    code, out, err = run(capsys, "lint", str(p))
    assert code == code_, out + err
    assert "internal error" not in err
    if want is not None:
        assert f"{p}{want}" in out + err, out + err
        assert "imports no NKI API" not in err    # the file was not understood, not API-free


def test_lint_and_sim_accept_a_bom_and_locate_a_bad_byte_after_it(tmp_path, capsys, kfile):
    p = tmp_path / "bom.py"
    p.write_bytes(b"\xef\xbb\xbf" + Path(kfile).read_bytes())
    code, out, err = run(capsys, "sim", f"{p}::copy", "-i", "x=128x4")
    assert code == 0, err
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"\xef\xbb\xbf" + LINT_HEAD + b"x = '\xff'\n")
    code, out, err = run(capsys, "lint", str(bad))
    assert code == 1 and err.startswith(f"{bad}:3:6: lint[encoding]: the file is not UTF-8 "
                                        "text (got byte 0xff at offset 42)"), err


# ---- class: output paths of `report -o` / `gen -o` (internal errors, silent stdout) ----------

def test_report_output_destinations(tmp_path, capsys):
    lib, _ = _lib(tmp_path, capsys)
    (tmp_path / "f").write_text("x")
    cases = [
        ("", "<command line>: -o/--output: empty path (got '')"),
        (str(tmp_path), f"{tmp_path}: -o/--output: is a folder; pass a file name"),
        (str(tmp_path / "f" / "r.html"), f"{tmp_path / 'f' / 'r.html'}: -o/--output: cannot "
         f"create its folder (got {tmp_path / 'f'} is a file)"),
    ]
    for dest, want in cases:
        code, out, err = run(capsys, "report", str(lib), "-o", dest)
        clean(code, out, err)
        assert err.startswith(want), err
    assert not (tmp_path / "traces").exists() and not Path("traces").exists()
    code, out, err = run(capsys, "report", str(lib), "-o", str(tmp_path / "new" / "r.html"))
    assert code == 0 and (tmp_path / "new" / "traces" / "add.json").is_file(), err


def test_gen_empty_output_path(capsys):
    code, out, err = run(capsys, "gen", str(SPECS / "add.yaml"), "-o", "")
    clean(code, out, err)
    assert out == ""
    assert err.startswith("<command line>: -o/--output: empty path (got '')")


# ---- class: integers too long for Python's int <-> text conversion (internal errors) --------

@pytest.mark.parametrize("literal, ok_message", [
    ("9" * 1233, "sizes.N.max: must be at most 2147483647"),   # 4094 bits: the validator's
    ("9" * 1234, None),                                        # 4097 bits: too large to load
    ("9" * 5000, None),                                        # past the 4300-digit limit
    ("0x" + "f" * 4000, None),                                 # parses, but cannot be printed
])
def test_huge_integer_literals(tmp_path, capsys, literal, ok_message):
    p = tmp_path / "s.yaml"
    p.write_text((SPECS / "add.yaml").read_text().replace("16384", literal))
    code, out, err = run(capsys, "check", str(p))
    clean(code, out, err)
    if ok_message is not None:
        assert f"{p}:7:20: {ok_message}" in err, err
    else:
        assert err.startswith(f"{p}:7:20: number is too large (got an integer of "
                              f"{len(literal)} characters)"), err


# ---- class: an output written by two `=` statements (the reference added them up) ----------

def test_second_assignment_overwrites_in_the_reference(capsys):
    from nkigen import reference, testdata
    from nkigen.frontend import load_spec_text

    text = ADD.format(rhs="x[m, n] + 1.0", nmin=1, mmin="", z="0.5").replace(
        "  - y[m, n] = x[m, n] + 1.0\n",
        "  - y[m, n] = x[m, n] + 1.0\n  - y[m, n] = x[m, n] * 2.0\n  - y[m, n] += x[m, n]\n")
    spec = load_spec_text(text, "s.yaml")
    sizes = {"M": 128, "N": 3}
    x = testdata.make_inputs(spec, sizes)["x"]
    y = reference.evaluate(spec, {"x": x}, sizes)["y"]
    want = (x * 2.0 + x).astype("float32").astype("float64")   # 2x, then += x (fp32 stores)
    assert (y == want).all()          # was (x + 1) + 2x + x: the second `=` added itself on


# ---- class: control characters in file names forging extra diagnostic lines ----------------

def test_a_diagnostic_is_one_line_whatever_the_file_name(tmp_path, capsys):
    d = tmp_path / "specs"
    d.mkdir()
    text = (SPECS / "add.yaml").read_text()
    (d / "a.yaml").write_text(text)
    (d / "b\nok  forged.yaml").write_text(text)            # same kernel name: both fail
    (d / "c\x1b[2Jd.yaml").write_text(text.replace("name: add", "name: c"))
    code, out, err = run(capsys, "check", str(d))
    clean(code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 3 and lines[-1] == "3 specs: 1 ok, 2 with problems", err
    assert all("kernel names must be unique" in ln for ln in lines[:2])
    assert "b\\nok  forged.yaml:" in err
    assert out == f"ok  {d}/c\\x1b[2Jd.yaml\n"


# ---- class: tiny tile hints on a large case (a build that simulates for hours: a hang) -------

@pytest.mark.parametrize("n, ok", [(256, True), (257, False)])
def test_tile_count_budget_boundary(tmp_path, capsys, n, ok):
    """tiles {m: 1, n: 1} at M=256: 256 * N tiles; 65,536 (N=256) is the last allowed."""
    p = tmp_path / "s.yaml"
    text = (SPECS / "add.yaml").read_text()
    # only the shipped spec's first two cases (its later ones are larger than this boundary)
    text = re.sub(r"(    - \{M: 256, N: 1000\}\n)(    - .*\n)+", r"\1", text)
    p.write_text(text.replace("    - {M: 256, N: 1000}", f"    - {{M: 256, N: {n}}}")
                 + "schedule:\n  tiles: {m: 1, n: 1}\n")
    code, out, err = run(capsys, "check", str(p))
    if ok:
        assert code == 0, err
        return
    clean(code, out, err)
    assert re.search(rf"{re.escape(str(p))}:\d+:\d+: tests.cases\[1\]: schedule.tiles make one "
                     r"statement run 65,792 tiles at this case, over the 65,536 a verified test "
                     r"case may simulate \(got M=256, N=257\); use larger tiles", err), err


# ---- class: Python API arguments of the wrong type (were TypeError/ValueError) -------------

def test_api_wrong_types_are_nkigen_errors():
    import numpy as np

    import nkigen

    for bad in (5, b"nkigen: 1", None):
        with pytest.raises(nkigen.NkigenError, match="spec: must be a spec file path or the "
                           "spec's YAML text"):
            nkigen.compile(bad)                       # type: ignore[arg-type]
    k = nkigen.compile(str(SPECS / "add.yaml"))
    for v in ("x", 128.0, True, None):
        with pytest.raises(nkigen.NkigenError, match=r"sizes.M: a size must be an integer"):
            k.report(M=v, N=8)
    assert k.report(M=np.int64(128), N=8).latency_us > 0       # NumPy integers are integers
    with pytest.raises(nkigen.NkigenError, match=r"inputs.x: not convertible .*complex"):
        k(np.zeros((128, 4), complex), np.zeros((128, 4)))


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_row_factor_and_bf16_column_operand_build_verified(tmp_path, capsys, dialect):
    """`x * (m < 3)`: an index condition uniform along the free axis compiled to a row tile and
    was passed as an activation scale; `y = a[0, 0]` (a bfloat16 runtime scalar) broadcast by
    a tensor_scalar with a bfloat16 operand. Both kernels failed in the simulator."""
    d = tmp_path / "specs"
    d.mkdir()
    (d / "cond.yaml").write_text(ADD.format(rhs="x[m, n] * (m < 3)", nmin=1, mmin="", z="0.5"))
    (d / "bcast.yaml").write_text(ADD.format(rhs="x[0, 0]", nmin=1, mmin="",
                                             z="0.5").replace("name: k", "name: k2").replace(
        "x: {shape: [M, N], dtype: float32}", "x: {shape: [M, N], dtype: bfloat16}"))
    code, out, err = run(capsys, "build", str(d), "-o", str(tmp_path / "lib"), "--no-lint",
                         "--dialect", dialect)
    assert code == 0, err
    assert "2 built, 0 cached, 0 failed" in out
