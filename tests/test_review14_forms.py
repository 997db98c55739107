"""Review 14 (docs/review-kernels-14.md): GpSimd affine values must fit int32.

R14-1: ``iota`` computes "in 32-bit integer math" (S25 general/nki/api/nki/isa/__init__.py, SDK
2.25; SH nki/api/nki/isa/__init__.py "Data types", nki 0.3) and ``affine_select`` evaluates its
affine value "similar to nisa.iota" (SH). divcmp rewrites ``n // 4 >= k`` as ``n - 4 k >= 0``,
which leaves int32 from ``k = 2**29 + 1`` on; the simulator computed it in int64 and accepted
the wrapped-on-chip kernel. Now the simulator refuses such a pattern and the generator takes
the value path (a float32 compare of the index tile) for such a condition.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.codegen import select  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402
from nkigen.sim import isa_move  # noqa: E402
from nkigen.sim.errors import SimError  # noqa: E402

LO, HI = -(2 ** 31), 2 ** 31 - 1


def test_int32_affine_values_boundary():
    # offset + channel * (P - 1) + step * (n - 1): the extremes at the int32 limits pass
    isa_move._int32_values("iota", HI - 127 - 9, [(1, 128), (1, 10)])
    isa_move._int32_values("affine_select", LO, [(0, 128), (1, 4096)])
    isa_move._int32_values("iota", LO + 3 * 127, [(-3, 128)])
    # one past either end fails, naming the rule
    with pytest.raises(SimError, match="fit int32"):
        isa_move._int32_values("iota", HI - 127 - 8, [(1, 128), (1, 10)])
    with pytest.raises(SimError, match="fit int32"):
        isa_move._int32_values("affine_select", LO - 1, [(0, 128), (1, 4096)])
    with pytest.raises(SimError, match="fit int32"):
        isa_move._int32_values("iota", LO + 3 * 127 - 1, [(-3, 128)])


def _spec(k: int) -> object:
    return load_spec_text(f"""nkigen: 1
name: big{k}
doc: d
sizes:
  M: {{min: 1, max: 4096}}
  N: {{min: 1, max: 4096}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = where(n // 4 >= {k}, x[m, n], 0.0)
""")


COMBOS = [("nki", "trn2"), ("neuronxcc", "trn2")]


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("k,affine", [(2 ** 29, True), (2 ** 29 + 1, False),
                                      (600000000, False)])
def test_a_large_divided_bound_keeps_int32(dialect, target, k, affine):
    # n // 4 >= k is n - 4 k >= 0: its values reach -4 k, within int32 up to k = 2**29
    spec = _spec(k)
    src = generate(spec, target=target, dialect=dialect)
    assert ("affine_select" in src) is affine, src
    for sizes in ({"M": 3, "N": 7}, {"M": 130, "N": 300}):
        check_case(spec, sizes, target=target, src=src)


@pytest.mark.parametrize("dialect,target", COMBOS)
def test_the_simulator_refuses_the_wrapping_select(dialect, target, monkeypatch):
    # without the generator's check the kernel compares n - 2400000004 on GpSimd: refused
    monkeypatch.setattr(select, "_check_int32", lambda c, written: None)
    spec = _spec(2 ** 29 + 1)
    src = generate(spec, target=target, dialect=dialect)
    assert "affine_select" in src
    with pytest.raises(SimError, match="fit int32"):
        check_case(spec, {"M": 3, "N": 7}, target=target, src=src)
