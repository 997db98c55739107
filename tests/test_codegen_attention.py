"""Attention lowering (nkigen/codegen/attention.py, issue 14 item 1): the scores stay on chip,
PSUM is consumed directly, the online softmax is exact across key blocks (ragged last block
included), the classic dialect keeps the generic plan, and the modeled latency stays within
1.05x of the hand-written expert kernels (benchmarks/kernels/attention_expert.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from codegen_check import check_case, load_source

import nkigen.sim as sim
from nkigen.analysis import analyze
from nkigen.codegen import attention, generate, plan_kernel
from nkigen.frontend import load_spec
from nkigen.hw import target as hw_target

ROOT = Path(__file__).parent.parent
PROBS = ROOT / "specs" / "attention_probs.yaml"
FULL = ROOT / "specs" / "attention.yaml"


def _spec(tmp_path: Path, src: Path, edit=None):
    text = src.read_text()
    if edit is not None:
        old, new = edit
        assert old in text
        text = text.replace(old, new)
    p = tmp_path / src.name
    p.write_text(text)
    return load_spec(p)


def _strategies(spec, dialect="nki"):
    plan = plan_kernel(spec, analyze(spec, target="trn2"), "trn2", dialect=dialect)
    return [s.strategy for s in plan.stages]


@pytest.mark.parametrize("path,strategy", [(PROBS, "attention-softmax"),
                                           (FULL, "attention-flash")])
def test_scores_stay_on_chip_and_psum_is_read_directly(path, strategy):
    spec = load_spec(path)
    assert _strategies(spec) == [strategy]
    src = generate(spec, target="trn2")
    assert "nl.hbm)" not in src                      # no HBM scratch at all
    assert "negate=True" in src                      # the banks' maxima combined, negated
    if path == PROBS:
        # row max straight from PSUM; exp with fused bias and the row sum in one activation
        # reading PSUM
        assert re.search(r"tensor_reduce\(dst=bank_max\[[^\]]*\], op=nl\.maximum, "
                         r"data=scores\[", src)
        assert re.search(r"activation\([^\n]*op=nl\.exp, data=scores\[[^\n]*bias=exp_bias"
                         r"[^\n]*reduce_res=bank_sum", src)
        return
    # full attention (N up to 16384): each PSUM bank of scores, a tile of its own, is evicted
    # to SBUF with its row max by one tensor_scalar_reduce; exp + row sum read the SBUF copy;
    # key blocks of 4096
    assert "KEY_BLOCK = 8 * BANK" in src
    assert re.search(r"scores = nl\.ndarray\(\(TILE_P, BANK\), dtype=nl\.float32, "
                     r"buffer=nl\.psum\)", src)
    assert re.search(r"tensor_scalar_reduce\(dst=scores_sb\[[^\n]*data=scores\[[^\n]*"
                     r"reduce_op=nl\.maximum, reduce_res=bank_max\[", src)
    assert re.search(r"activation\([^\n]*op=nl\.exp, data=scores_sb\[[^\n]*bias=exp_bias"
                     r"[^\n]*reduce_res=bank_sum", src)


def test_full_attention_with_short_keys_keeps_the_psum_block(tmp_path):
    # N at most 2048 (one PSUM-held block of 4 banks): no eviction; 2049 evicts
    for nmax, evicts in ((2048, False), (2049, True)):
        text = FULL.read_text().replace("N: {min: 1, max: 16384}", f"N: {{min: 1, max: {nmax}}}")
        p = tmp_path / f"attention_{nmax}.yaml"
        text = text.replace("{M: 128, N: 2100, D: 96}", "{M: 128, N: 2000, D: 96}")
        p.write_text(text.replace("{M: 60, N: 4700, D: 32}", "{M: 64, N: 2000, D: 32}"))
        src = generate(load_spec(p), target="trn2")
        assert ("tensor_scalar_reduce" in src) is evicts, nmax
        assert ("KEY_BLOCK = 8 * BANK" in src) is evicts, nmax


# N = 2048 is the last single-block size (one key block of 2048), 2049 the first with a
# second (one-key) block; 5000 has three blocks, the last ragged; M ragged in the full spec.
@pytest.mark.parametrize("sizes", [{"M": 128, "N": 2048, "D": 64},
                                   {"M": 128, "N": 2049, "D": 128},
                                   {"M": 256, "N": 5000, "D": 64}])
def test_probs_online_softmax_matches_reference(sizes):
    check_case(load_spec(PROBS), sizes, target="trn2")


# full attention: key blocks of 4096 (evicted scores); 4096 is the last single-block size,
# 4097 the first with a second (one-key) block
@pytest.mark.parametrize("sizes", [{"M": 130, "N": 2048, "D": 128},
                                   {"M": 1, "N": 2049, "D": 32},
                                   {"M": 129, "N": 4096, "D": 64},
                                   {"M": 1, "N": 4097, "D": 32},
                                   {"M": 200, "N": 4500, "D": 128}])
def test_flash_attention_matches_reference(sizes):
    check_case(load_spec(FULL), sizes, target="trn2")


@pytest.mark.parametrize("path", [PROBS, FULL])
def test_spec_cases_pass_on_trn1(path):
    # trn1 (no DMA transpose unit) turns q and k on TensorE through one shared PSUM tile
    spec = load_spec(path)
    assert "row-major q/k turned on TensorE" in " ".join(
        plan_kernel(spec, analyze(spec, target="trn1"), "trn1").stages[0].notes)
    for case in spec.tests.cases:
        check_case(spec, dict(case), target="trn1")


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("path", [PROBS, FULL])
def test_second_query_block(path, target):
    # M = 2176: a second 2048-query block (q^T reloaded, the shared PSUM tiles reused)
    check_case(load_spec(path), {"M": 2176, "N": 300, "D": 64}, target=target)


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("path", [PROBS, FULL, ROOT / "specs" / "attention_heads.yaml"])
def test_classic_dialect_fuses_with_one_psum_tile_per_bank(path, target):
    # trn1 adds the shared PSUM tile of the q/k transposes (the head loop then sequential)
    spec = load_spec(path)
    assert _strategies(spec, "neuronxcc")[0].startswith("attention")
    src = generate(spec, target=target, dialect="neuronxcc")
    assert "nl.hbm)" not in src
    assert "(TILE_P, BANK,), dtype=nl.float32, buffer=nl.psum)" in src   # psum_fmax per tile
    assert "TILE_P = nl.tile_size.pmax  # 128" in src
    assert "BANK = nl.tile_size.gemm_moving_fmax  # 512" in src
    for case in spec.tests.cases:
        check_case(spec, dict(case), target=target, src=src)


def test_negative_scale_is_not_fused(tmp_path):
    spec = _spec(tmp_path, PROBS, ("scale: 0.125", "scale: -0.125"))
    assert not any(s.startswith("attention") for s in _strategies(spec))


def test_unbounded_keys_are_not_fused(tmp_path):
    # k^T must stay resident: without a max on N the generic plan runs
    spec = _spec(tmp_path, PROBS, ("N: {min: 1, max: 8192}", "N: {min: 1}"))
    assert not any(s.startswith("attention") for s in _strategies(spec))


N_DECL = {PROBS: "N: {min: 1, max: 8192}", FULL: "N: {min: 1, max: 16384}"}


def _with_n_max(tmp_path, path, n_max):
    return _spec(tmp_path, path, (N_DECL[path], f"N: {{min: 1, max: {n_max}}}"))


@pytest.mark.parametrize("path", [PROBS, FULL])
def test_resident_keys_budget_boundary(tmp_path, path):
    # the largest N max whose on-chip tiles fit the planning budget fuses, the next one falls
    # back; the kernel at that largest N runs within the simulator's SBUF (the budget is not
    # too loose)
    def fused(n):
        return _strategies(_with_n_max(tmp_path, path, n))[0].startswith("attention")

    lo, hi = 8192, 1 << 17
    assert fused(lo) and not fused(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fused(mid) else (lo, mid)
    spec = _with_n_max(tmp_path, path, lo)
    kern = load_source(generate(spec, target="trn2"), spec.name)
    shapes = [(128, 128), (lo, 128), (lo, 128)][:len(spec.inputs)]
    res = sim.run(kern, [sim.placeholder(s, "bfloat16") for s in shapes], target="trn2",
                  numerics=False)
    assert res.peak_sbuf_bytes <= hw_target("trn2").sbuf_bytes_per_partition


def test_probabilities_read_elsewhere_are_not_fused(tmp_path):
    text = FULL.read_text().replace(
        "  - o[m, j] += p[m, n] * v[n, j]\n",
        "  - o[m, j] += p[m, n] * v[n, j]\n  - z[m] = sum(p[m, n], n)\n").replace(
        "  o: {shape: [M, D], dtype: bfloat16}\n",
        "  o: {shape: [M, D], dtype: bfloat16}\n  z: {shape: [M], dtype: float32}\n").replace(
        "N: {min: 1, max: 16384}", "N: {min: 1, max: 8192}")      # e and p rows on chip
    p = tmp_path / "attention.yaml"
    p.write_text(text)
    spec = load_spec(p)
    # p is needed after the second product: only the softmax part fuses (p goes to an HBM
    # temp, read by the generic plan of the two later statements)
    assert _strategies(spec)[0] == "attention-softmax"
    assert "attention-flash" not in _strategies(spec)
    check_case(spec, {"M": 128, "N": 700, "D": 64}, target="trn2")


def test_scale_parameter_value_is_used(tmp_path):
    spec = _spec(tmp_path, PROBS, ("scale: 0.125", "scale: 0.5"))
    src = generate(spec, target="trn2")
    assert "scale = 0.5" in src and "scale=-scale" in src    # the param, by name
    check_case(spec, {"M": 128, "N": 600, "D": 64}, target="trn2")


def test_match_needs_the_whole_pattern():
    from nkigen.codegen.context import Build
    spec = load_spec(PROBS)
    b = Build.create(spec, analyze(spec, target="trn2"), hw_target("trn2"))
    sts = list(spec.statements)
    assert attention.match(b, sts, 0) is not None
    assert attention.match(b, sts, 1) is None          # starts at the contraction only
    assert attention.match(b, sts[:4], 0) is None      # normalisation missing


@pytest.mark.parametrize("path,expert,shapes", [
    (PROBS, "attention_probs_expert", [(2048, 128), (2048, 128)]),
    # cost15: the scores are evicted bank by bank to SBUF (tensor_scalar_reduce), so the key
    # block is 4096 keys, not 2048: one block at seqlen 4096 (was 501.5 us, 1.13x; now
    # 465.6 vs 444.6 us modelled, 1.047x)
    (FULL, "attention_expert", [(4096, 128)] * 3),
])
def test_modeled_latency_within_5_percent_of_the_expert(path, expert, shapes):
    spec = load_spec(path)
    ours = load_source(generate(spec, target="trn2"), spec.name)
    ref = sim.load(ROOT / "benchmarks" / "kernels" / "attention_expert.py", expert)
    args = [sim.placeholder(s, "bfloat16") for s in shapes]
    a = sim.run(ours, args, target="trn2", numerics=False).report.latency_us
    e = sim.run(ref, args, target="trn2", numerics=False).report.latency_us
    assert a <= 1.05 * e, (a, e)


@pytest.mark.parametrize("target", ["trn1", "trn2"])
@pytest.mark.parametrize("edits", [
    # the tutorial's layout: q and k stored d-major (plain loads, no transposes)
    (("q: {shape: [M, D]", "q: {shape: [D, M]"), ("k: {shape: [N, D]", "k: {shape: [D, N]"),
     ("q[m, d] * k[n, d]", "q[d, m] * k[d, n]")),
    # only k d-major (q still turned)
    (("k: {shape: [N, D]", "k: {shape: [D, N]"), ("q[m, d] * k[n, d]", "q[m, d] * k[d, n]")),
    # factors in the other order, the scale after the difference
    (("q[m, d] * k[n, d]", "k[n, d] * q[m, d]"), ("p[m, n] * v[n, j]", "v[n, j] * p[m, n]"),
     ("exp(scale * (s[m, n] - mx[m]))", "exp((s[m, n] - mx[m]) * scale)")),
], ids=["qk_dmajor", "k_dmajor", "swapped"])
def test_other_spellings_and_layouts_fuse(tmp_path, edits, target):
    text = FULL.read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    p = tmp_path / "attention.yaml"
    p.write_text(text)
    spec = load_spec(p)
    assert _strategies(spec) == ["attention-flash"]
    for case in spec.tests.cases:
        check_case(spec, dict(case), target=target)


HEADS = ROOT / "specs" / "attention_heads.yaml"


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_heads_become_a_batch_loop(target):
    spec = load_spec(HEADS)
    plan = plan_kernel(spec, analyze(spec, target=target), target)
    assert [(s.strategy, s.loops) for s in plan.stages] == [("attention-flash", ("h",))]
    src = generate(spec, target=target)
    assert "nl.hbm)" not in src
    for case in spec.tests.cases:
        check_case(spec, dict(case), target=target)


def test_keys_shared_by_all_heads_are_not_fused(tmp_path):
    # k without the head index (one key head for all query heads): h is not a leading index
    # of every tensor, so the generic plan runs
    text = HEADS.read_text().replace("k[h, n, d]", "k[n, d]").replace(
        "k: {shape: [H, N, D]", "k: {shape: [N, D]")
    p = tmp_path / "attention_heads.yaml"
    p.write_text(text)
    spec = load_spec(p)
    assert not any(s.startswith("attention") for s in _strategies(spec))
