"""Golden generated sources: byte-for-byte comparison with tests/golden/<spec>.py.

Regenerate after an intended change with::

    NKIGEN_UPDATE_GOLDEN=1 pytest tests/test_codegen_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nkigen.codegen import generate
from nkigen.frontend import load_spec

ROOT = Path(__file__).parent.parent
GOLDEN = Path(__file__).parent / "golden"
NAMES = ["matmul_bias_gelu", "matmul_at", "bmm", "softmax", "layernorm", "conv1d",
         "silu_ragged", "maxpool1d", "conv2d", "avgpool2x2"]
UPDATE = os.environ.get("NKIGEN_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("name", NAMES)
def test_golden(name):
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    src = generate(spec, target="trn2")
    assert src == generate(spec, target="trn2"), "generation is not deterministic"
    path = GOLDEN / f"{name}.py"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(src, encoding="utf-8", newline="\n")
    assert path.exists(), f"missing golden {path}; run with NKIGEN_UPDATE_GOLDEN=1"
    assert src == path.read_text(encoding="utf-8"), (
        f"{name}: generated source differs from {path}; if intended, regenerate with "
        "NKIGEN_UPDATE_GOLDEN=1")


CLASSIC = ["softmax", "layernorm", "silu_ragged", "matmul_bias_gelu"]


@pytest.mark.parametrize("name", CLASSIC)
def test_golden_classic(name):
    """Classic dialect goldens (tests/golden/<spec>.neuronxcc.py): masked row kernels and a
    matmul that keeps min() (see nkigen/codegen/classic_mask.py)."""
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    src = generate(spec, target="trn2", dialect="neuronxcc")
    path = GOLDEN / f"{name}.neuronxcc.py"
    if UPDATE:
        path.write_text(src, encoding="utf-8", newline="\n")
    assert path.exists(), f"missing golden {path}; run with NKIGEN_UPDATE_GOLDEN=1"
    assert src == path.read_text(encoding="utf-8"), (
        f"{name} (neuronxcc): generated source differs from {path}; if intended, regenerate "
        "with NKIGEN_UPDATE_GOLDEN=1")
