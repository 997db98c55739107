"""Numeric mismatches found by fuzzing dtypes and test-data ranges of conv1d / layernorm
(fuzznum): each class is pinned where it lives (codegen intermediate dtype, simulator engine
semantics, verification tolerance) with the neighbour that must keep working.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import run

from nkigen.codegen import generate
from nkigen.frontend import load_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _build(capsys, tmp_path: Path, files: dict[str, str], *extra: str) -> tuple[int, str, str]:
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return run(capsys, "build", str(d), "-o", str(tmp_path / "lib"), "--no-lint", *extra)


# ---- class: a 16-bit result rounded a term of a sum before the add (codegen) ----------------

def _layernorm_bf16(tests: str) -> str:
    text = (SPECS / "layernorm.yaml").read_text()
    text = text.replace("name: layernorm", "name: layernorm_bf16")
    text = text.replace("y: {shape: [M, D], dtype: float32}", "y: {shape: [M, D], dtype: bfloat16}")
    return text[:text.index("tests:")] + tests


# gamma * (x - mu) of magnitude ~1e2 cancels against beta ~ N(0, 1) for some elements: a bf16
# rounding of the term before `+ beta` is an error of many bf16 ulps of y there
LN_CANCEL = """\
tests:
  cases:
    - {M: 128, D: 256}
  inputs:
    x: {dist: uniform, low: -0.001, high: 0.001}
    gamma: {dist: uniform, low: -1000.0, high: 1000.0}
"""


def _alloc_dtypes(src: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+) = nl\.ndarray\(\([^)]*\), dtype=nl\.(\w+)", src))


def test_bf16_layernorm_keeps_the_summed_term_in_fp32(tmp_path):
    """`(x - mu) * rsqrt(var + eps) * gamma + beta` with a bfloat16 y: the row product that
    is then added to beta is a float32 tile; only the final add writes bfloat16."""
    p = tmp_path / "ln.yaml"
    p.write_text(_layernorm_bf16(LN_CANCEL))
    src = generate(load_spec(p), dialect="nki")
    stts = re.findall(r"nisa\.scalar_tensor_tensor\(dst=(\w+)\[.*?op1=nl\.(\w+)", src)
    dtypes = _alloc_dtypes(src)
    assert [op for _, op in stts] == ["multiply", "add"], stts
    assert dtypes[stts[0][0]] == "float32"          # was bfloat16: rounded before `+ beta`
    assert dtypes[stts[1][0]] == "bfloat16"


def test_bf16_layernorm_with_cancelling_beta_builds_verified(tmp_path, capsys):
    """Failed verification before (2 of 32768 elements, max abs error 2 at a value of 0.25)."""
    code, out, err = _build(capsys, tmp_path, {"ln.yaml": _layernorm_bf16(LN_CANCEL)})
    assert code == 0, err
    assert "1 built, 0 cached, 0 failed" in out


AFFINE_BF16 = """\
nkigen: 1
name: {name}
sizes:
  M: {{min: 1, max: 1024}}
  N: {{min: 1, max: 1024}}
inputs:
  x: {{shape: [M, N], dtype: bfloat16}}
  s: {{shape: [M], dtype: float32}}
  b: {{shape: [M, N], dtype: bfloat16}}
outputs:
  y: {{shape: [M, N], dtype: bfloat16}}
compute:
  - y[m, n] = x[m, n] * s[m] {op} b[m, n]
tests:
  cases:
    - {{M: 130, N: 64}}
"""


@pytest.mark.parametrize("op, split", [("*", True), ("+", False), ("-", False)])
def test_bf16_row_split_only_before_a_multiply(tmp_path, op, split):
    """The 16-bit split (tensor_scalar to bf16, then a 16-bit tensor_tensor) rounds `x * s`
    to bfloat16 first: kept before a multiply (a relative error), refused before `+`/`-`
    (one scalar_tensor_tensor computes the whole row in fp32 and rounds once)."""
    p = tmp_path / "a.yaml"
    p.write_text(AFFINE_BF16.format(name="aff", op=op))
    src = generate(load_spec(p), dialect="nki")
    assert ("scalar_tensor_tensor" not in src) is split, src
    if split:
        m = re.search(r"nisa\.tensor_scalar\(dst=(\w+)\[", src)
        assert m and _alloc_dtypes(src)[m.group(1)] == "bfloat16"
