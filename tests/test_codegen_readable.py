"""Readable generated kernels (issue 12 "Readable output"): named tile constants, one matmul
accumulate pattern, pipelined row kernels written once, no repeated index computations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import shipped
import sympy

from nkigen.codegen import consts, cse, generate
from nkigen.codegen import plan as P
from nkigen.frontend import load_spec

SPECS = Path(__file__).resolve().parent.parent / "specs"
DIALECTS = ("nki", "neuronxcc")
ALL = sorted(p.stem for p in SPECS.glob("*.yaml"))


def _src(name: str, dialect: str) -> str:
    return shipped.source(name, dialect)


def _bodies(src: str) -> list[str]:
    """Code lines of the helper functions (no docstrings, comments or the kernel's asserts)."""
    out, inside, doc = [], False, False
    for line in src.splitlines():
        if line.startswith("def _"):
            inside = True
            continue
        if line.startswith("@nki.jit"):
            inside = False
        if not inside:
            continue
        s = line.strip()
        if s.startswith('"""'):
            doc = not (s.endswith('"""') and len(s) > 3)
            continue
        if doc:
            doc = not s.endswith('"""')
            continue
        if s and not s.startswith("#"):
            out.append(s)
    return out


@pytest.mark.parametrize("dialect", DIALECTS)
def test_matmul_tiles_are_named_constants(dialect):
    src = _src("matmul_bias_gelu", dialect)
    assert "TILE_M = nl.tile_size.gemm_stationary_fmax  # 128" in src
    assert "TILE_K = nl.tile_size.pmax  # 128" in src
    assert "TILE_N = nl.tile_size.gemm_moving_fmax  # 512" in src
    assert "BLOCK_M = 16 * TILE_M  # 2048" in src
    assert "BLOCK_K = 8 * TILE_K  # 1024" in src
    body = "\n".join(_bodies(src))
    assert not re.search(r"\b(128|512|1024|2048|16384)\b", body), body
    # the equal-valued constants are told apart by what they size
    if dialect == "nki":
        assert "ktsz = min(TILE_K, ksz - TILE_K * kt)" in body
        assert "min(TILE_M, rsz - TILE_M * rt)" in body
    else:                         # classic: peeled blocks and column tiles, exact sizes
        # (the row blocks are affine, masked on r0 = BLOCK_M * rb: review12 F4)
        assert "ksz = min(BLOCK_K, K - k0)" in body and "r0 = BLOCK_M * rb" in body
        assert "ctsz = min(TILE_N, csz - cc0)" in body
    assert "c0 = BLOCK_N * cb" in body and "k0 = BLOCK_K * kb" in body


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", ALL)
def test_no_tile_literal_left_in_any_body(name, dialect):
    body = "\n".join(_bodies(_src(name, dialect)))
    assert not re.search(r"\b(128|512|1024|2048)\b", body)


def test_constants_are_deterministic():
    assert _src("matmul_bias_gelu", "nki") == _src("matmul_bias_gelu", "nki")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", [n for n in ALL if n.startswith("matmul")] + ["bmm", "swiglu"])
def test_matmul_one_accumulate_pattern(name, dialect):
    src = _src(name, dialect)
    assert "== 0:" not in src                       # no first-contraction-block branch
    assert "tensor_copy" not in "\n".join(l for l in src.splitlines() if "acc" in l)
    assert "memset" in src and "gpsimd" in src      # zeroed once per output block, on GpSimd
    # at most one branch level on the contraction index (plain products: which tile the add
    # writes on the last block)
    for line in src.splitlines():
        if re.match(r"\s+if kb\d* ", line):
            assert line.rstrip().endswith(":") and "- 1:" in line


def test_softmax_pipeline_head_written_once():
    # trn1: the one-row-per-partition pass alone (trn2 adds the decode-shaped split form of
    # codegen/rowsplit.py, a max needing NeuronCore-v3, with a pipeline head of its own)
    src = shipped.source("softmax", "nki", "trn1")
    assert src.count("def _softmax_stage0_head(") == 1
    assert src.count("_softmax_stage0_head(") == 3          # def + prologue + prefetch
    assert src.count("nisa.tensor_reduce(") == 1
    assert re.search(r"^    _softmax_stage0_head\(.*, 0\)$", src, re.M)
    assert re.search(r"^            _softmax_stage0_head\(.*, pt \+ 1\)$", src, re.M)


@pytest.mark.parametrize("name", ALL)
def test_every_pipelined_kernel_has_one_head(name):
    src = _src(name, "nki")
    if "+ 1 <" not in src:
        pytest.skip("not pipelined")
    heads = re.findall(r"^def (_\w+_head\d*)\(", src, re.M)
    assert heads
    for h in heads:
        assert src.count(f"{h}(") == 3


def test_repeated_index_lets_collapse():
    src = _src("matmul_bias_gelu", "nki")
    assert src.count("kk0 = ") == 1 and "kk01" not in src and "ktsz1" not in src


def _sym(n):
    return sympy.Symbol(n, integer=True, nonnegative=True)


def test_cse_keeps_rebound_and_atomic_values():
    kt, k0 = _sym("kt"), _sym("k0")
    v = k0 + 128 * kt
    body = (P.Loop("kt", sympy.Integer(4), P.LoopKind.PARALLEL, (
        P.Let("a", v), P.Let("b", v),                 # same value: b dropped, reads a
        P.Let("z0", sympy.Integer(0)), P.Let("z1", sympy.Integer(0)),   # numbers: both kept
        P.Dma(P.Ref("t", (P.Slice(_sym("b"), _sym("z1")),)), P.Ref("u")),
    )),)
    out = cse.collapse(body)
    lets = [n.name for n in out[0].body if isinstance(n, P.Let)]
    assert lets == ["a", "z0", "z1"]
    dma = out[0].body[-1]
    assert dma.dst.dims[0].start == _sym("a") and dma.dst.dims[0].size == _sym("z1")
    # a value computed from a name rebound in between is not reused
    body2 = (P.Let("a", k0 + 1), P.Let("k0", sympy.Integer(5)), P.Let("b", k0 + 1))
    assert [n.name for n in cse.collapse(body2)] == ["a", "k0", "b"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_constant_names_avoid_spec_names(tmp_path, dialect):
    # a spec size called TILE_P: the module constant takes another name, the size keeps its own
    text = (SPECS / "softmax.yaml").read_text().replace("M", "TILE_P")
    p = tmp_path / "softmax.yaml"
    p.write_text(text)
    src = generate(load_spec(p), dialect=dialect)
    assert "TILE_P_2 = nl.tile_size.pmax" in src
    assert "TILE_P = x.shape[0]" in src
    assert ("min(TILE_P_2, TILE_P - p0)" if dialect == "nki"
            else "mask=(p0 + nl.arange(TILE_P_2)[:, None] < TILE_P)") in src


def test_classic_masks_read_constants_by_name():
    # the mask pass's predicates: a factor by the name it multiplies, a divisor by the names
    # of its comparison (K's block, not the equal-valued column block)
    rows = _src("row_max", "neuronxcc")
    assert "mask=(p0 + nl.arange(TILE_P)[:, None] < M)" in rows
    assert "_nc(x, M, p0, acc, nc, REDUCE_CHUNK)" in rows      # a peeled loop's full value
    # bank offsets of the unrolled classic bank loop: multiples of the bank
    probs = _src("attention_probs", "neuronxcc")
    assert "c0 = 2 * BANK" in probs and "csz = min(BANK, nsz - c0)" in probs
    assert not re.search(r"c0 = \d{3,}", probs)


def test_mask_multiple_is_parenthesised_after_a_tighter_operator():
    bank = P.Const("BANK", 512, "bank", "gemm_moving_fmax")
    namer = consts.Namer([bank], {"BANK": "BANK"})
    assert namer.mask("(x < N - 1024)") == "(x < N - 2 * BANK)"
    assert namer.mask("(x // 1024 < N)") == "(x // (2 * BANK) < N)"
    assert namer.mask("(512 * t < N) & (x < 1)") == "(BANK * t < N) & (x < 1)"
    assert namer.mask("(x < 1000)") == "(x < 1000)"            # no multiple: a number


@pytest.mark.parametrize("name,expect", [
    ("conv1d", ("TILE_K = nl.tile_size.pmax", "TILE_M = nl.tile_size.gemm_stationary_fmax",
                "TILE_W = nl.tile_size.gemm_moving_fmax")),
    ("matvec", ("TILE_K = nl.tile_size.pmax", "TILE_M = nl.tile_size.gemm_moving_fmax",
                "BLOCK_K = 16 * TILE_K", "K_TILES = BLOCK_K // TILE_K")),
    ("avgpool2x2", ("TILE_P = nl.tile_size.pmax", "BLOCK_ELEMS = 1024")),
    ("attention", ("TILE_P = nl.tile_size.pmax", "BANK = nl.tile_size.gemm_moving_fmax",
                   "KEY_BLOCK = 8 * BANK", "Q_BLOCK = 16 * TILE_P", "K_LOAD = 2048")),
])
def test_new_lowerings_declare_their_constants(name, expect):
    for dialect in DIALECTS:
        src = _src(name, dialect)
        for e in expect:
            if dialect == "neuronxcc" and e.startswith("KEY_BLOCK"):
                # classic: one-bank PSUM-held blocks, a quarter as wide (the current API
                # evicts each bank to SBUF, codegen/attention.evicts)
                e = "KEY_BLOCK = 2 * BANK"
            assert e in src, (dialect, e)
