"""Gaps left by the fuzz4 pass, fixed by fix5: each input gets a located error (spec
``file:line:col``, or the option it came from) at the earliest command that can see it, a
non-zero exit and no traceback; every limit is pinned at its boundary.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import run

SPECS = Path(__file__).resolve().parent.parent / "specs"


def clean(code: int, out: str, err: str) -> None:
    """A user error: exit 1, no internal error, no traceback."""
    assert code == 1, out + err
    assert "internal error" not in out + err and "Traceback" not in out + err


# ---- 1. a TensorE matmul mixing float32 with a 16-/8-bit operand: `check` reports it ---------

@pytest.mark.parametrize("b_dtype", ["float32", "bfloat16", "float8_e4m3", "int8", "int32"])
def test_check_accepts_matmul_fp32_pairing(tmp_path, capsys, b_dtype):
    """A float32 operand with a 16-/8-bit (or int32) one: the narrow operand is widened to
    float32 in its loading DMA (fuzz13: analysis.contraction.operand_dtypes), so `check` and
    `gen` accept every pair (they refused the 16-/8-bit ones, citing the nc_matmul dtype rule,
    which the widened operands now meet)."""
    p = tmp_path / "mm.yaml"
    p.write_text((SPECS / "matmul_f32.yaml").read_text().replace(
        "b: {shape: [K, N], dtype: float32}", f"b: {{shape: [K, N], dtype: {b_dtype}}}"))
    code, out, err = run(capsys, "check", str(p))
    assert code == 0, err
    assert "float32 operand only" not in err
    gcode, gout, gerr = run(capsys, "gen", str(p))
    assert gcode == 0, gerr


def test_check_pairing_only_for_matmul_statements(tmp_path, capsys):
    """An element-wise product of float32 and bfloat16 (no contraction: VectorE, not TensorE)
    is not a matmul and stays legal."""
    p = tmp_path / "mul.yaml"
    p.write_text("""\
nkigen: 1
name: k
sizes:
  M: {multiple_of: 128}
  N: {min: 1, max: 1024}
inputs:
  x: {shape: [M, N], dtype: float32}
  w: {shape: [M, N], dtype: bfloat16}
outputs:
  y: {shape: [M], dtype: float32}
compute:
  - y[m] += x[m, n] * w[m, n]
tests:
  cases:
    - {M: 128, N: 8}
""")
    code, out, err = run(capsys, "check", str(p))
    assert code == 0, err


# ---- 2. -j / --jobs is bounded (an absurd pool size was accepted) ---------------------------

@pytest.mark.parametrize("cmd", ["build", "tune"])
@pytest.mark.parametrize("flag", ["-j", "--jobs"])
@pytest.mark.parametrize("jobs, ok", [("256", True), ("257", False), ("1" + "0" * 19, False),
                                      ("9" * 5000, False), ("0", True)])
def test_jobs_bounded(capsys, cmd, flag, jobs, ok):
    """MAX_JOBS (256) is the last legal -j; 257 and any longer number are usage errors (exit
    2) naming the option, the range and the value (cut to 40 characters)."""
    from nkigen import cli

    assert cli.MAX_JOBS == 256
    argv = [cmd, "spec.yaml", flag, jobs] + (["-o", "out"] if cmd == "build" else [])
    parser = cli.build_parser(cmd)
    if ok:
        assert 1 <= parser.parse_args(argv).jobs <= 256
        return
    with pytest.raises(SystemExit) as e:
        parser.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument -j/--jobs: must be 0 (all cores) or 1..256, got" in err
    assert len(err.splitlines()[-1]) < 200


@pytest.mark.parametrize("cmd", ["build", "tune"])
def test_jobs_maximum_in_help(capsys, cmd):
    from nkigen import cli

    with pytest.raises(SystemExit):
        cli.build_parser(cmd).parse_args([cmd, "--help"])
    assert re.search(r"at\s+most\s+256", capsys.readouterr().out)


# ---- 3. `sim` on a plain (undecorated) function: accepted, as nki.simulate documents --------

PLAIN = '''\
import nki
import nki.language as nl


def copy(a):
    out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
    nl.store(out, value=nl.load(a))
    return out
'''


def test_sim_runs_a_plain_function_like_nki_simulate(tmp_path, capsys):
    """Kept on purpose: ``nki.simulate(kernel)`` takes "NKI kernel function, typically decorated
    with @nki.jit. If a plain function is passed, it is automatically wrapped" (SH
    nki/api/nki/__init__.py simulate, nki 0.3), so `nkigen sim` (the simulator) does the same;
    the result equals the decorated kernel's."""
    p = tmp_path / "plain.py"
    p.write_text(PLAIN)
    code, out, err = run(capsys, "sim", f"{p}::copy", "-i", "a=128x8")
    assert code == 0, err
    assert "output 0: shape [128, 8]" in out
    d = tmp_path / "jit.py"
    d.write_text(PLAIN.replace("def copy", "@nki.jit\ndef copy"))
    dcode, dout, derr = run(capsys, "sim", f"{d}::copy", "-i", "a=128x8")
    assert dcode == 0, derr
    assert dout.replace(str(d), "") == out.replace(str(p), "")


# ---- 4. integer results outside the dtype's range: undefined in NKI, rejected -----------------

COPY_U8 = """\
nkigen: 1
name: k
sizes:
  M: {{min: 1, max: 8}}
  N: {{min: 1, max: 1024}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  z: {{shape: [M, N], dtype: {dtype}}}
compute:
  - z[m, n] = x[m, n]{shift}
tests:
  inputs:
    x: {{dist: arange}}
  cases:
    - {{M: 1, N: {n}}}
"""


@pytest.mark.parametrize("dtype, shift, n, bad", [
    ("uint8", "", 256, None),            # 0..255: the last legal value
    ("uint8", "", 257, "256"),           # 256: the first illegal one
    ("uint8", " - 0.5", 1, None),        # -0.5 rounds (half to even) to 0
    ("uint8", " - 0.6", 1, "-0.6"),      # -0.6 rounds to -1
    ("int8", " - 128", 256, None),       # -128..127
    ("int8", " - 127", 256, "128"),
])
def test_integer_overflow_is_found_at_its_boundary(tmp_path, dtype, shift, n, bad):
    from nkigen import pipeline
    from nkigen.reference import first_integer_overflow
    from nkigen.testdata import make_inputs

    p = tmp_path / "s.yaml"
    p.write_text(COPY_U8.format(dtype=dtype, shift=shift, n=n))
    spec = pipeline.load_spec(p)
    sizes = {"M": 1, "N": n}
    over = first_integer_overflow(spec, make_inputs(spec, sizes), sizes)
    if bad is None:
        assert over is None
        return
    assert over is not None and over.statement.position == 0 and over.count == 1
    assert f"{over.value:g}" == bad


def test_no_integer_target_means_no_extra_evaluation(tmp_path):
    from nkigen import pipeline, reference
    from nkigen.testdata import make_inputs

    p = tmp_path / "s.yaml"
    p.write_text(COPY_U8.format(dtype="float32", shift=" * 1e9", n=4))
    spec = pipeline.load_spec(p)
    assert reference.first_integer_overflow(spec, make_inputs(spec, {"M": 1, "N": 4}),
                                            {"M": 1, "N": 4}) is None


@pytest.mark.parametrize("n, ok", [(256, True), (257, False)])
def test_build_rejects_out_of_range_integer_results(tmp_path, capsys, n, ok):
    """The add-like copy into uint8: in range the kernel builds and verifies; one value out of
    range is a located error at the statement naming the rule, the value and the fix (was: a
    mismatch report blaming the kernel, the reference saturating and the kernel wrapping)."""
    p = tmp_path / "s.yaml"
    p.write_text(COPY_U8.format(dtype="uint8", shift="", n=n))
    code, out, err = run(capsys, "build", str(p), "-o", str(tmp_path / "lib"))
    if ok:
        assert code == 0, err
        return
    clean(code, out, err)
    assert re.search(rf"{re.escape(str(p))}:11:5: compute\[0\]: statement 0 `z\[m, n\] = "
                     r"x\[m, n\]` gives z \(uint8\) 1 of 257 values outside \[0, 255\] in case "
                     r"\w+; NKI documents no conversion of an out-of-range value to an integer "
                     r"dtype \(SH nki/api/nki.api.shared.rst, nki 0.3\).*\(got 256 at \(0, 256\)"
                     r"\); keep the values in range", err), err
    assert "differs from the float64 reference" not in err


ARGMAX = """\
nkigen: 1
name: k
sizes:
  M: {{min: 1, max: 64}}
  N: {{min: 1, max: {nmax}}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  idx: {{shape: [M], dtype: {dtype}}}
compute:
  - idx[m] = {op}(x[m, n], n)
tests:
  cases:
    - {{M: 2, N: 5}}
"""


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype, nmax, ok", [
    ("uint8", 256, True), ("uint8", 257, False), ("int8", 128, True), ("int8", 129, False),
    ("int32", 16384, True),
])
def test_check_rejects_an_index_too_wide_for_its_integer_target(tmp_path, capsys, op, dtype,
                                                                 nmax, ok):
    p = tmp_path / "a.yaml"
    p.write_text(ARGMAX.format(nmax=nmax, dtype=dtype, op=op))
    code, out, err = run(capsys, "check", str(p))
    if ok:
        assert code == 0, err
        return
    clean(code, out, err)
    hi = 255 if dtype == "uint8" else 127
    assert re.search(rf"{re.escape(str(p))}:11:5: compute\[0\]: statement 0 `idx\[m\] = {op}"
                     rf"\(x\[m, n\], n\)`: {op} gives indices up to N - 1, which idx \({dtype}, "
                     rf"at most {hi}\) cannot hold at every allowed size; NKI documents no "
                     rf"conversion .*; declare idx int32, or bound N to at most {hi + 1}", err), err


def test_check_rejects_an_unbounded_index_into_uint8(tmp_path, capsys):
    p = tmp_path / "a.yaml"
    p.write_text(ARGMAX.format(nmax=16384, dtype="uint8", op="argmax").replace(
        "N: {min: 1, max: 16384}", "N: {min: 1}"))
    code, out, err = run(capsys, "check", str(p))
    clean(code, out, err)
    assert "cannot hold at every allowed size" in err


# ---- 5. a float8 transpose: turned in bfloat16, as a float8 matmul operand is ---------------

@pytest.mark.parametrize("x_dt, y_dt, target, dialect", [
    ("float8_e5m2", "float8_e5m2", "trn2", "nki"),
    ("float8_e4m3", "float8_e4m3", "trn2", "neuronxcc"),
    ("float8_e5m2", "float32", "trn2", "nki"),
    ("float8_e5m2", "float8_e5m2", "trn1", "nki"),
])
def test_fp8_transpose_builds_verified(tmp_path, capsys, x_dt, y_dt, target, dialect):
    """The simulator refused nc_transpose of float8 data into a float8 PSUM tile (16-bit PSUM
    elements on NeuronCore-v3); the loading DMA now casts to bfloat16, the transpose runs in
    that dtype and the eviction casts to y's dtype (on trn1 VectorE turns y's dtype, SBUF to
    SBUF); the kernel verifies against the reference (the case 300 x 200 has partial blocks
    on both sides)."""
    d = tmp_path / "specs"
    d.mkdir()
    text = (SPECS / "transpose.yaml").read_text().replace(
        "x: {shape: [M, N], dtype: float32}", f"x: {{shape: [M, N], dtype: {x_dt}}}").replace(
        "y: {shape: [N, M], dtype: float32}", f"y: {{shape: [N, M], dtype: {y_dt}}}").replace(
        "    - {M: 512, N: 512}\n", "")
    (d / "t.yaml").write_text(text)
    code, out, err = run(capsys, "build", str(d), "-o", str(tmp_path / "lib"), "--target",
                         target, "--dialect", dialect)
    assert code == 0, out + err
    code, out, err = run(capsys, "gen", str(d / "t.yaml"), "--target", target, "--dialect",
                         dialect)
    assert code == 0, err
    if target == "trn1":
        # NeuronCore-v2: VectorE 32x32 transposes in y's dtype, no PSUM (exact for NaN/Inf,
        # nkigen.codegen.transpose.exact_turn_needed)
        assert "nl.psum" not in out and "engine=nisa.engine.vector" in out, out
    else:
        assert re.search(r"bfloat16, buffer=nl.psum", out), out
