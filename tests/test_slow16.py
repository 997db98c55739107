"""Interleaved pairs read swapped (codegen/tailmerge.py, codegen/tilexpr.py ``swapped_load``):
the GPT-J rotary form with a ``[M, K, 2]`` output, ``y[m, k, s] = x[m, 2 k + s] * cos[m, k] +
where(s == 0, -sin[m, k], sin[m, k]) * x[m, 2 k + 1 - s]`` (fuzz15 p15_rope_interleaved), is
written through ``y.reshape((M, 2 K))`` with ``f = 2 k + s``: ``x[m, 2 k + s]`` is the flat read
``x[m, f]`` and the partner ``x[m, 2 k + 1 - s]`` the same contiguous run with each pair
swapped on chip by two strided SBUF copies (the HBM side an ascending pattern).

Before (cost model, M 127, K 64 fp32): 114.90 us trn1 / 98.67 us trn2 (nki), 114.57 / 98.52
(neuronxcc): the row lowering looped over k with 2-element tiles. After: 7.06 / 5.04 (nki),
7.22 / 4.90 (neuronxcc).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.codegen import tailmerge  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

COMBOS = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]


def _spec(name: str, inputs: str, out: str, stmt: str) -> str:
    return f"""nkigen: 1
name: {name}
doc: d
sizes:
  M: {{min: 1, max: 8192}}
  K: {{min: 1, max: 4096}}
inputs:
{inputs}outputs:
  y: {{shape: {out}, dtype: float32}}
compute:
  - {stmt}
"""


ROPE_IN = ("  x: {shape: [M, \"2 * K\"], dtype: float32}\n"
           "  cos: {shape: [M, K], dtype: float32}\n  sin: {shape: [M, K], dtype: float32}\n")
ROPE = _spec("rope_il", ROPE_IN, "[M, K, 2]",
             "y[m, k, s] = x[m, 2 * k + s] * cos[m, k] + where(s == 0, -sin[m, k], sin[m, k])"
             " * x[m, 2 * k + 1 - s]")
PAIR_IN = "  x: {shape: [M, \"2 * K\"], dtype: float32}\n"
SWAP = _spec("swap", PAIR_IN, "[M, K, 2]", "y[m, k, s] = x[m, 2 * k + 1 - s]")
# the next pair's partner: the run starts two elements on
NEXT = _spec("swap_next", "  x: {shape: [M, \"2 * K + 2\"], dtype: float32}\n", "[M, K, 2]",
             "y[m, k, s] = x[m, 2 * k + 3 - s] - x[m, 2 * k + s]")
BGR_FLAT = _spec("bgr_flat", "  x: {shape: [M, \"3 * K\"], dtype: float32}\n", "[M, K, 3]",
                 "y[m, k, s] = x[m, 3 * k + 2 - s]")
BGR = _spec("bgr", "  x: {shape: [M, K, 3], dtype: float32}\n", "[M, K, 3]",
            "y[m, k, s] = x[m, k, 2 - s] * 0.5")
FORMS = {"rope": ROPE, "swap": SWAP, "next": NEXT, "bgr_flat": BGR_FLAT, "bgr": BGR}


def _merged(text: str) -> bool:
    spec = load_spec_text(text)
    return tailmerge.rewrite(spec) is not spec


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("form,sizes", [
    pytest.param("rope", {"M": 1, "K": 1}, id="rope-1x1"),
    pytest.param("rope", {"M": 130, "K": 1}, id="rope-130x1"),
    pytest.param("rope", {"M": 1, "K": 129}, id="rope-1x129"),
    pytest.param("rope", {"M": 130, "K": 129}, id="rope-130x129"),
    pytest.param("rope", {"M": 3, "K": 1100}, id="rope-3x1100"),   # 2200 columns: two chunks
    pytest.param("swap", {"M": 130, "K": 129}, id="swap-130x129"),
    pytest.param("swap", {"M": 1, "K": 1}, id="swap-1x1"),
    pytest.param("next", {"M": 130, "K": 129}, id="next-130x129"),
    pytest.param("bgr_flat", {"M": 130, "K": 129}, id="bgr-flat-130x129"),
    pytest.param("bgr_flat", {"M": 2, "K": 700}, id="bgr-flat-2x700"),   # 2100 columns
    pytest.param("bgr", {"M": 130, "K": 129}, id="bgr-130x129"),
    pytest.param("bgr", {"M": 1, "K": 1}, id="bgr-1x1")])
def test_swapped_reads_match_the_reference(dialect, target, form, sizes):
    spec = load_spec_text(FORMS[form])
    check_case(spec, sizes, target=target, src=generate(spec, target=target, dialect=dialect))


def test_what_merges():
    assert all(_merged(t) for t in FORMS.values())
    # the flat read of the digits, scaled: x[m, 4 k + 2 s] is x[m, 2 f]
    assert _merged(_spec("s", "  x: {shape: [M, \"4 * K\"], dtype: float32}\n", "[M, K, 2]",
                         "y[m, k, s] = x[m, 4 * k + 2 * s]"))
    # digits in one dimension in any other proportion: no form
    assert not _merged(_spec("p", "  x: {shape: [M, \"3 * K\"], dtype: float32}\n",
                             "[M, K, 2]", "y[m, k, s] = x[m, 3 * k + s]"))
    assert not _merged(_spec("p", "  x: {shape: [M, \"4 * K\"], dtype: float32}\n",
                             "[M, K, 2]", "y[m, k, s] = x[m, 4 * k + 3 - 2 * s]"))
    # the reversed digit in a dimension that is not c long, or not after q's
    assert not _merged(_spec("n", "  x: {shape: [M, K, 3], dtype: float32}\n", "[M, K, 2]",
                             "y[m, k, s] = x[m, k, 1 - s]"))
    assert not _merged(_spec("n", "  x: {shape: [M, 2, K], dtype: float32}\n", "[M, K, 2]",
                             "y[m, k, s] = x[m, 1 - s, k]"))


def test_the_partner_is_the_same_run_swapped_on_chip():
    spec = load_spec_text(ROPE)
    src = generate(spec, target="trn2")
    # one load of x, ascending on HBM, serves both reads
    assert src.count("src=x[") == 1
    assert "src=x[p0:p0 + psz, f0:f0 + fsz]" in src
    assert "nisa.tensor_copy(dst=x_w[0:psz, 0:2 * (fsz // 2) - 1:2], " \
           "src=x_t_c[0:psz, 1:2 * (fsz // 2):2]" in src
    assert "nisa.tensor_copy(dst=x_w[0:psz, 1:2 * (fsz // 2):2], " \
           "src=x_t_c[0:psz, 0:2 * (fsz // 2) - 1:2]" in src
    classic = generate(spec, target="trn2", dialect="neuronxcc")
    assert "x_w[i_p, 2 * i_f_1024] = nisa.tensor_copy(x_t[i_p, 1 + 2 * i_f_1024]" in classic
    assert "x_w[i_p, 1 + 2 * i_f_1024] = nisa.tensor_copy(x_t[i_p, 2 * i_f_1024]" in classic


@pytest.mark.parametrize("dialect,target,before", [
    ("nki", "trn1", 114.90), ("nki", "trn2", 98.67),
    ("neuronxcc", "trn1", 114.57), ("neuronxcc", "trn2", 98.52)])
def test_interleaved_rope_costs_a_tenth(dialect, target, before):
    import nkigen.sim as sim
    spec = load_spec_text(ROPE)
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    shapes = [(127, 128), (127, 64), (127, 64)]
    res = sim.run(kernel, [sim.placeholder(s, "float32") for s in shapes], target=target,
                  numerics=False)
    assert res.report.latency_us < before / 10


# (found on the way: the classic dialect put the row offset of a window read over rows of
# 2 K + 2 elements, p0 * (2 K + 2) expanded to 2 p0 + 2 K p0, into the column index:
# x[i_p, f0 + 2 p0 + 2 K p0 + 1 + i_f], out of bounds from the second row tile on; the build
# failed in the simulator at M 130 in the base, codegen/classic_index.py _split_rows)
WINDOW = _spec("win", "  x: {shape: [M, \"2 * K + 2\"], dtype: float32}\n", "[M, \"2 * K\"]",
               "y[m, n] = x[m, n + 2] - x[m, n + 1]")


@pytest.mark.parametrize("dialect,target", COMBOS)
def test_a_window_read_over_long_rows_keeps_its_row_offset(dialect, target):
    spec = load_spec_text(WINDOW)
    src = generate(spec, target=target, dialect=dialect)
    if dialect == "neuronxcc":
        assert "src=x[p0 + i_p, f0 + 1 + i_f_2049]" in src
    for sizes in ({"M": 130, "K": 129}, {"M": 1, "K": 1}, {"M": 257, "K": 3}):
        check_case(spec, sizes, target=target, src=src)


# a contraction with a gathered expert weight (fuzz15 min/moe2, p15_moe_expert_ffn_gathered_w):
# with k on the free axis and n a loop, every tile gathered w[eid[t], k0:k0 + K, n] one
# element per descriptor (step N): 619.04 us trn2 / 1,829.38 us trn1 at T 130, K 129, N 40
# (both dialects); the placement with the gathered rows contiguous (n free, k a loop) goes
# first among those with the ids on the partitions (codegen/rows.py _strided_gathers):
# 90.58 / 171.24 us; with the ids column loaded once per row tile before the loop over k
# (tilexpr.loop_reduce: row_hoist outside the loop for a column not naming k): 65.01 / 108.70
MOE = """nkigen: 1
name: moe
doc: d
sizes:
  T: {min: 1, max: 512}
  E: {min: 1, max: 8}
  K: {min: 1, max: 256}
  N: {min: 1, max: 256}
inputs:
  x: {shape: [T, K], dtype: float32}
  eid: {shape: [T], dtype: int32}
  w: {shape: [E, K, N], dtype: float32}
outputs:
  y: {shape: [T, N], dtype: float32}
compute:
  - y[t, n] = sum(x[t, k] * w[eid[t], k, n], k)
tests:
  inputs:
    eid: {dist: integers, low: 0, high: "E - 1"}
"""


@pytest.mark.parametrize("dialect,target", COMBOS)
@pytest.mark.parametrize("sizes", [
    {"T": 1, "E": 1, "K": 1, "N": 1}, {"T": 130, "E": 3, "K": 129, "N": 40},
    {"T": 130, "E": 2, "K": 1, "N": 1}, {"T": 1, "E": 2, "K": 129, "N": 256}],
    ids=["1-1-1-1", "130-3-129-40", "130-2-1-1", "1-2-129-256"])
def test_gathered_weight_contraction_matches_the_reference(dialect, target, sizes):
    spec = load_spec_text(MOE)
    check_case(spec, sizes, target=target, src=generate(spec, target=target, dialect=dialect))


@pytest.mark.parametrize("dialect,target,before", [
    ("nki", "trn1", 1829.38), ("nki", "trn2", 619.04),
    ("neuronxcc", "trn1", 1829.38), ("neuronxcc", "trn2", 619.04)])
def test_gathered_weight_contraction_reads_whole_rows(dialect, target, before):
    import nkigen.sim as sim
    spec = load_spec_text(MOE)
    src = generate(spec, target=target, dialect=dialect)
    if dialect == "nki":
        # one run of N elements per partition per k, not K elements a step N apart per n
        assert "w.ap(pattern=[[K * N, psz], [1, fsz1]]" in src
        # the ids column once per row tile, before the loop over k
        assert src.index("src=eid.ap(") < src.index("for i_k in range(K):")
    kernel = load_source(src, spec.name)
    shapes = [((130, 129), "float32"), ((130,), "int32"), ((3, 129, 40), "float32")]
    res = sim.run(kernel, [sim.placeholder(s, d) for s, d in shapes], target=target,
                  numerics=False)
    assert res.report.latency_us < before / 8
