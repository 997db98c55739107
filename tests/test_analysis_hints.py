"""analyze (schedule hints): hardware limits of tiles, block, order; index roles."""

from __future__ import annotations

import pytest
from analysis_builders import matmul

from nkigen.analysis import IndexRole, analyze, check_schedule, default_tiles
from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec_text
from nkigen.ir import Schedule

MM = """\
nkigen: 1
name: mm
sizes:
  M: {multiple_of: 128}
  K: {multiple_of: 128}
  N: {}
inputs:
  a: {shape: [M, K], dtype: bfloat16}
  b: {shape: [K, N], dtype: bfloat16}
outputs:
  c: {shape: [M, N], dtype: float32}
compute:
  - c[m, n] += a[m, k] * b[k, n]
schedule:
"""

EW = """\
nkigen: 1
name: ew
sizes:
  P: {}
  F: {}
inputs:
  x: {shape: [P, F], dtype: float32}
outputs:
  y: {shape: [P, F], dtype: float32}
compute:
  - y[p, f] = relu(x[p, f])
schedule:
"""


def diags(text: str, schedule: str) -> list[str]:
    with pytest.raises(NkigenError) as e:
        analyze(load_spec_text(text + schedule, "s.yaml"))
    return [str(d) for d in e.value.diagnostics]


@pytest.mark.parametrize("schedule, needle", [
    ("  tiles: {k: 256}\n",
     "s.yaml:15:14: schedule.tiles.k: partition tile 256 exceeds 128 partitions (got 256); "
     "use 128"),
    ("  tiles: {m: 256}\n", "schedule.tiles.m: matmul stationary tile 256 exceeds the "
     "stationary free size 128 (got 256); use 128"),
    ("  tiles: {n: 1024}\n", "schedule.tiles.n: matmul moving tile 1024 exceeds 512"),
    ("  block: {m: 16, n: 64}\n", "schedule: SBUF footprint estimate"),
    ("  tiles: {m: 128, n: 512}\n  block: {n: 60}\n",
     "schedule: SBUF footprint estimate"),
])
def test_impossible_matmul_hints(schedule, needle):
    assert any(needle in d for d in diags(MM, schedule)), diags(MM, schedule)


@pytest.mark.parametrize("schedule, needle", [
    (Schedule(False, tiles=(("n", 0),)), "schedule.tiles.n: tile size must be >= 1"),
    (Schedule(False, block=(("n", 0),)), "schedule.block.n: block factor must be >= 1"),
    (Schedule(False, order=("m", "q")), "schedule.order: q is not a loop index of the main"),
    (Schedule(False, order=("m", "m")), "schedule.order: m appears twice"),
    (Schedule(False, tiles=(("z", 4),)), "schedule.tiles.z: z is not an index of any statement"),
])
def test_hints_the_front_end_may_let_through(schedule, needle):
    with pytest.raises(NkigenError) as e:
        analyze(matmul(schedule=schedule))
    assert any(needle in str(d) for d in e.value.diagnostics)


def test_legal_hints_pass_and_roles():
    a = analyze(load_spec_text(MM + "  tiles: {m: 128, n: 512, k: 128}\n  block: {n: 2}\n"
                               "  order: [n, m, k]\n", "s.yaml"))
    assert a.role("k") is IndexRole.PARTITION
    assert default_tiles(a) == {"m": 128, "n": 512, "k": 128}


def test_elementwise_partition_is_first_lhs_index():
    assert any("schedule.tiles.p: partition tile 512 exceeds 128 partitions" in d
               for d in diags(EW, "  tiles: {p: 512}\n"))
    a = analyze(load_spec_text(EW + "  tiles: {f: 2048}\n", "s.yaml"))
    assert a.role("p") is IndexRole.PARTITION and a.role("f") is IndexRole.FREE
    assert default_tiles(a) == {"p": 128, "f": 2048}


def test_target_trn1_has_smaller_sbuf():
    sched = "  tiles: {p: 128, f: 6000}\n  buffers: 4\n"
    ok = analyze(load_spec_text(EW + sched, "s.yaml"))   # trn2: 2*6000*4*4 = 192000 bytes
    assert ok.target == "trn2"
    assert any("exceeds trn1's 180224" in d for d in diags("target: trn1\n" + EW, sched))


def test_batch_and_second_contraction_indices_default_to_tile_1():
    text = """\
nkigen: 1
name: bmm
sizes:
  B: {max: 8}
  M: {}
  K: {}
  J: {max: 4}
  N: {}
inputs:
  x: {shape: [B, M, K, J], dtype: float32}
  y: {shape: [B, K, J, N], dtype: float32}
outputs:
  z: {shape: [B, M, N], dtype: float32}
compute:
  - z[b, m, n] += x[b, m, k, j] * y[b, k, j, n]
"""
    a = analyze(load_spec_text(text, "b.yaml"))
    assert a.role("b") is IndexRole.BATCH and a.role("j") is IndexRole.BATCH
    assert default_tiles(a) == {"b": 1, "m": 128, "n": 512, "k": 128, "j": 1}


def test_check_schedule_matches_analyze():
    a = analyze(load_spec_text(MM + "  tiles: {m: 128}\n", "s.yaml"))
    assert check_schedule(a, Schedule(False, tiles=(("n", 512), ("k", 128)))) == []
    (d,) = check_schedule(a, Schedule(False, tiles=(("k", 256),)))
    assert d.rule == "partition tile 256 exceeds 128 partitions" and d.fix == "use 128"
    big = Schedule(False, tiles=(("n", 512),), block=(("n", 60),))
    assert any("SBUF" in x.rule for x in check_schedule(a, big, "trn1"))


def test_tutorial_blocking_is_a_legal_hint():
    """The fully blocked tutorial structure (m 16, n 2, k 8) accumulates one PSUM bank per tile
    pair into an SBUF block accumulator: the hint must be accepted."""
    analyze(load_spec_text(MM + "  tiles: {m: 128, n: 512, k: 128}\n"
                           "  block: {m: 16, n: 2, k: 8}\n", "s.yaml"))


def test_footprint_is_checked_only_for_size_hints():
    """Without tiles/block hints the planner sizes its tiles to fit: a large row must pass."""
    text = MM.replace("schedule:\n", "") .replace("N: {}", "N: {max: 1000000}")
    analyze(load_spec_text(text, "s.yaml"))
    with pytest.raises(NkigenError, match="SBUF footprint"):
        analyze(load_spec_text(text + "schedule:\n  block: {m: 16, n: 64}\n", "s.yaml"))
