"""Every shipped classic kernel uses only the documented mask forms.

S25 = aws-neuron-sdk v2.25.0 general/nki/api/nki.api.shared.rst, "NKI API Masking" (neuronxcc,
SDK 2.25): each side of each comparison in a mask is an affine expression of ``nl.arange()``,
``nl.affine_range()`` or ``nl.program_id()`` (an ``nl.sequential_range`` index is not listed);
a matmul lane mask cannot tell the result's two free axes apart (the section introduces operand
masking instead), so an ``nc_matmul`` mask carries loop-index predicates only, which skip the
whole instruction (use case 2, "Skip ineffectual instructions"). The analysis
(tests/classic_mask_forms.py) follows names through assignments and helper-function arguments.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from classic_mask_forms import analyse  # noqa: E402

from nkigen.codegen import generate  # noqa: E402
from nkigen.frontend import load_spec  # noqa: E402

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))


def test_no_shipped_classic_mask_names_a_sequential_index_or_a_matmul_lane():
    seq: Counter = Counter()
    lanes = 0
    where = []
    masked = 0
    for path in SPECS:
        src = generate(load_spec(path), dialect="neuronxcc")
        masked += src.count(", mask=")
        r = analyse(src)
        seq += r.seq_masks
        lanes += r.matmul_lane_masks
        where += [f"{path.stem}: {w}" for w in r.where]
    assert not seq and lanes == 0, "\n".join(where[:20])
    assert masked > 300          # the kernels do use masks (ragged tiles, skipped matmuls)


_HEAD = """
import neuronxcc.nki.language as nl
import neuronxcc.nki.isa as nisa
"""


def _one(body: str):
    return analyse(_HEAD + body)


def test_a_mask_on_an_affine_index_passes_a_sequential_one_fails():
    ok = _one("""
def k(x, t, M):
    for i in nl.affine_range(4):
        r0 = 128 * i
        t[...] = nisa.tensor_copy(x, mask=(r0 + nl.arange(128)[:, None] < M))
""")
    assert not ok.seq_masks and not ok.where
    bad = _one("""
def k(x, t, M):
    for i in nl.sequential_range(4):
        r0 = 128 * i
        t[...] = nisa.tensor_copy(x, mask=(r0 + nl.arange(128)[:, None] < M))
""")
    assert bad.seq_masks == Counter({"tensor_copy": 1})


def test_a_sequential_index_through_a_helper_argument_fails_a_rebound_last_index_passes():
    src = """
def body(x, t, kb, ksz):
    t[...] = nisa.tensor_copy(x, mask=(nl.arange(128)[:, None] < ksz))
    t[...] = nisa.tensor_copy(x, mask=(kb < 3))

def k(x, t, K):
    for kb in nl.sequential_range(3):
        body(x, t, kb, 512)
    kb = 3
    ksz = min(512, K - 512 * kb)
    body(x, t, kb, ksz)
"""
    r = _one(src)
    # the predicate on kb is flagged (the loop passes a sequential index), the one on ksz is
    # not: the last call binds it from a trace-time int, the loop from a constant
    assert r.seq_masks == Counter({"tensor_copy": 1}) and r.loop_min == 0
    assert _one(src.replace("kb = 3\n", "")).loop_min == 1    # min() of the loop's index


def test_a_matmul_lane_mask_fails_a_loop_index_predicate_passes():
    r = _one("""
def k(a, b, ps, K):
    for kt in nl.affine_range(4):
        ps[...] += nisa.nc_matmul(a, b, mask=(128 * kt < K))
        ps[...] += nisa.nc_matmul(a, b, mask=(128 * kt + nl.arange(128)[:, None] < K))
""")
    assert r.matmul_lane_masks == 1 and not r.seq_masks


@pytest.mark.parametrize("name", ["matmul_bf16", "attention", "row_max"])
def test_peeled_loops_run_their_full_iterations_then_the_last_once(name):
    """A sequential loop whose ragged last iteration (or last-iteration branch) needs its
    index runs nl.sequential_range over all but the last iteration, calling one helper; the
    last iteration calls it once more after the loop (classic_mask.Peeled)."""
    src = generate(load_spec(Path(__file__).parent.parent / "specs" / f"{name}.yaml"),
                   dialect="neuronxcc")
    lines = src.splitlines()
    loops = [i for i, ln in enumerate(lines) if "in nl.sequential_range(" in ln]
    assert loops
    for i in loops:
        call = lines[i + 1].strip()
        fn = call.split("(")[0]
        assert fn.startswith("_") and call.endswith(")")
        ind = len(lines[i]) - len(lines[i].lstrip())
        after = [ln for ln in lines[i + 2:i + 8]
                 if len(ln) - len(ln.lstrip()) == ind and ln.strip().startswith(fn + "(")]
        assert len(after) == 1, (name, lines[i])
