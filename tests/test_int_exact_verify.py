"""Build verification of integer outputs computed by integer arithmetic (review 6, R1).

The classic dialect runs an int32 ``maximum`` on VectorE in float32 (S25
general/nki/api/nki.api.shared.rst: Max is a Vector-only operator; arithmetic operators convert
their inputs to float32), so 2**25 + 1 comes back as 2**25. The default tolerance is relative
(``rtol ~ 1e-6``, ``atol ~ 1e-6 x rms``), which at 2**25 allows an error of about 64: the build
called that kernel verified. An integer output of integer arithmetic is now compared exactly,
so the build fails and names the int32 input beyond +-2**24 (the existing diagnostic).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run

SPEC = """\
nkigen: 1
name: imax
sizes:
  M: {{min: 1, max: 1024}}
  N: {{min: 1, max: 1024}}
inputs:
  x: {{shape: [M, N], dtype: int32}}
  z: {{shape: [M, N], dtype: int32}}
outputs:
  y: {{shape: [M, N], dtype: int32}}
compute:
  - y[m, n] = maximum(x[m, n], z[m, n])
tests:
  cases:
    - {{M: 130, N: 64}}
  inputs:
    x: {{dist: integers, low: {low}, high: {high}}}
    z: {{dist: integers, low: -3, high: 3}}
"""


def _build(capsys, tmp_path: Path, text: str, dialect: str) -> tuple[int, str, str]:
    d = tmp_path / "specs"
    d.mkdir(exist_ok=True)
    (d / "s.yaml").write_text(text)
    return run(capsys, "build", str(d), "-o", str(tmp_path / "lib"), "--no-lint",
               "--dialect", dialect)


@pytest.mark.parametrize("low, high, ok", [
    (2**24 - 7, 2**24, True),             # every value float32 holds exactly: builds
    (2**24 - 7, 2**24 + 1, False),        # 2**24 + 1 rounds to 2**24 on VectorE: refused
    (2**25, 2**25 + 8, False),            # off by up to 2 (was within the old tolerance, 64)
])
def test_classic_int32_maximum_is_compared_exactly(tmp_path, capsys, low, high, ok):
    code, out, err = _build(capsys, tmp_path, SPEC.format(low=low, high=high), "neuronxcc")
    if ok:
        assert code == 0, err
        return
    assert code == 1 and "internal error" not in err, err
    assert "tests.inputs.x: kernel output 'y' differs from the float64 reference" in err, err
    assert "int32 input 'x' holds values beyond +-16777216" in err, err


def test_nki_int32_maximum_beyond_2_24_is_exact(tmp_path, capsys):
    """The nki dialect runs it on GpSimd (native integer arithmetic, S29
    nki/api/nki/isa/__init__.py tensor_tensor, nki 0.3): exact, so the exact comparison
    passes."""
    code, out, err = _build(capsys, tmp_path, SPEC.format(low=2**25, high=2**25 + 8), "nki")
    assert code == 0, err
