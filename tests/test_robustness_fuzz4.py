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
