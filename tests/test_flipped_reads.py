"""Reversed free-axis reads take a flipped copy (nkigen/codegen/flipped.py).

``cumsum(x[m, N - 1 - n], n)`` loaded its tiles with a free step of -1, one element per DMA
descriptor: 124.12 us modelled at 130 x 300 float32 on trn2, 17.02 us with the flipped copy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.codegen import flipped  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

SPEC = """nkigen: 1
name: rev
doc: d
sizes:
  M: {min: 1, max: 1024}
  N: {min: 1, max: 2048}
inputs:
  x: {shape: [M, N], dtype: float32}
outputs:
  y: {shape: [M, N], dtype: float32}
compute:
  - STATEMENT
tests:
  cases:
    - {M: 130, N: 300}
"""
CUMSUM = "y[m, n] = cumsum(x[m, N - 1 - n], n)"
SCALED = "y[m, n] = 2.0 * x[m, N - 1 - n] + x[m, n]"
COPY = "y[m, n] = x[m, N - 1 - n]"     # a plain reversed copy (fuzz7: 210.43 -> 21.75 us)


def _added(statement: str, max_m: int = 1024, max_n: int = 2048) -> list[tuple[str, tuple]]:
    text = SPEC.replace("STATEMENT", statement).replace("{M: 130, N: 300}", "{M: 8, N: 8}")
    spec = load_spec_text(text.replace("max: 1024}", f"max: {max_m}}}").replace(
        "max: 2048}", f"max: {max_n}}}"))
    new = flipped.rewrite(spec, "trn2")
    names = {t.name for t in spec.tensors}
    return [(s.target, s.lhs) for s in new.statements if s.target not in names]


def test_a_reversed_free_read_takes_a_flipped_copy():
    assert _added(CUMSUM) == [("x_t", ("n", "m")), ("x_f", ("n", "m")), ("x_r", ("m", "n"))]
    assert _added(SCALED) == [("x_t", ("n", "m")), ("x_f", ("n", "m")), ("x_r", ("m", "n"))]
    assert _added(COPY) == [("x_t", ("n", "m")), ("x_f", ("n", "m")), ("x_r", ("m", "n"))]


def test_threshold_and_other_reads():
    # MIN_ELEMENTS (4096) at the largest allowed sizes: max 64 x 64 flipped, 63 x 65 not
    assert _added(CUMSUM, max_m=64, max_n=64) != []
    assert _added(CUMSUM, max_m=63, max_n=65) == []
    assert _added("y[m, n] = 2.0 * x[M - 1 - m, n]") == []     # reversed rows: already whole rows
    assert _added("y[m, n] = 2.0 * x[m, n]") == []


@pytest.mark.parametrize("statement", [CUMSUM, SCALED, COPY])
@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("neuronxcc", "trn1")])
def test_flipped_kernels_match_the_reference(statement, dialect, target):
    spec = load_spec_text(SPEC.replace("STATEMENT", statement))
    src = generate(spec, target=target, dialect=dialect)
    assert "x_r" in src
    check_case(spec, {"M": 130, "N": 300}, target=target, src=src)


@pytest.mark.parametrize("statement", [CUMSUM, COPY])
def test_the_flipped_copy_is_far_cheaper_in_the_cost_model(monkeypatch, statement):
    import nkigen.sim as sim

    def latency() -> float:
        spec = load_spec_text(SPEC.replace("STATEMENT", statement))
        kernel = load_source(generate(spec, target="trn2"), spec.name)
        res = sim.run(kernel, [sim.placeholder((130, 300), "float32")], target="trn2",
                      numerics=False)
        return res.report.latency_us

    fast = latency()
    monkeypatch.setattr(flipped, "rewrite", lambda spec, target, schedule=None: spec)
    slow = latency()
    assert fast * 5 < slow, (fast, slow)
