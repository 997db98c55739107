"""Valid specs of the fuzz17 campaign (corpus /tmp/fuzz17: batched contractions, reductions over
leading and middle axes, norms, gating, scans, gathers, mixed dtypes, degenerate sizes) that
nkigen refused without need, built wrong or failed on. Each test generates the minimal spec and
checks the kernel against the float64 reference in the simulator; limits are pinned at their
boundaries.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case  # noqa: E402

from nkigen.diagnostics import NkigenError  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

ALL4 = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]

LAST_TOKEN = """nkigen: 1
name: last_token_pool
sizes:
  B: {{min: 1, max: {bmax}}}
  T: {{min: 1, max: 4096}}
  D: {{min: 1, max: 4096}}
inputs:
  h: {{shape: [B, T, D], dtype: float32}}
  pos: {{shape: [B], dtype: int32}}
outputs:
  y: {{shape: [B, D], dtype: float32}}
compute:
  - y[b, d] = h[b, pos[b], d]
tests:
  inputs:
    pos: {{dist: integers, low: 0, high: "T - 1"}}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_a_row_gather_bounds_its_row_ids_not_the_table_elements(dialect, target):
    # h[b, pos[b], d] (the last token of each sequence) gathers row b * T + pos[b] of h viewed
    # as [B * T, D]: the DMA scales the id by the row stride D itself, so int32 ids bound
    # B * T, not B * T * D. A [256, 4096, 4096] table (2**32 elements, 2**20 rows) was refused
    spec = load_spec_text(LAST_TOKEN.format(bmax=256))
    src = generate(spec, target=target, dialect=dialect)
    for sizes in ({"B": 1, "T": 1, "D": 1}, {"B": 5, "T": 70, "D": 130}):
        check_case(spec, sizes, target=target, src=src)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_a_row_gather_needs_its_row_ids_in_int32(dialect):
    # B * T = 524288 * 4096 = 2**31 rows: every row id fits int32; one batch more is refused,
    # located, with the row count and a fix
    generate(load_spec_text(LAST_TOKEN.format(bmax=524288)), target="trn2", dialect=dialect)
    with pytest.raises(NkigenError) as ei:
        generate(load_spec_text(LAST_TOKEN.format(bmax=524289)), target="trn2",
                 dialect=dialect)
    (d,) = ei.value.diagnostics
    assert d.loc is not None and d.field == "compute[0]"
    assert "2147487744 rows (dimensions 0..1), more than the 2147483648" in d.rule
    assert "lower the max" in d.fix
