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
import shipped  # noqa: E402
from classic_mask_forms import analyse  # noqa: E402

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))


def test_no_shipped_classic_mask_names_a_sequential_index_or_a_matmul_lane():
    seq: Counter = Counter()
    lanes = 0
    where = []
    masked = 0
    for path in SPECS:
        src = shipped.source(path, "neuronxcc")
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
    src = shipped.source(name, "neuronxcc")
    lines = src.splitlines()
    loops = [i for i, ln in enumerate(lines) if "in nl.sequential_range(" in ln]
    assert loops
    for i in loops:
        call = lines[i + 1].strip()
        fn = call.split("(")[0]
        assert fn.startswith("_") and call.endswith(")")
        ind = len(lines[i]) - len(lines[i].lstrip())
        if lines[i - 1].strip().startswith("if 0 < "):     # the trip-count guard (F2)
            ind -= 4
        after = [ln for ln in lines[i + 2:i + 8]
                 if len(ln) - len(ln.lstrip()) == ind and ln.strip().startswith(fn + "(")]
        assert len(after) == 1, (name, lines[i])


# ---- the peel transform (nkigen/codegen/classic_mask.py, _Pass.peel) on small plans -------

def _peel(body, multiples=None):
    from nkigen.codegen.classic_mask import _Pass
    return _Pass(multiples or {}).nodes(body)


def _sym(name):
    import sympy
    return sympy.Symbol(name, integer=True, positive=True)


def _ragged_loop(kind, count_extra=0, moving=True):
    """A loop over ceiling(E / 128) tiles of E (+ ``count_extra`` iterations), its ragged tile
    ``n = min(128, E - 128 i)`` a masked copy's size (and a matmul's moving size)."""
    import sympy

    from nkigen.codegen import plan as P
    E, i, n = _sym("E"), _sym("i"), _sym("n")
    t = P.Ref("t", (P.Slice(0, 128), P.Slice(0, n)))
    body = [P.Let("i0", 128 * i), P.Let("n", sympy.Min(128, E - _sym("i0"))),
            P.TensorCopy(t, t)]
    if moving:
        body.append(P.Matmul(P.Ref("ps", (P.Slice(0, 128), P.Slice(0, n))),
                             P.Ref("s", (P.Slice(0, 128), P.Slice(0, 128))),
                             P.Ref("m", (P.Slice(0, 128), P.Slice(0, n)))))
    return P.Loop("i", sympy.ceiling(E / 128) + count_extra, kind, tuple(body))


def test_a_sequential_loop_with_a_ragged_last_tile_is_peeled_exactly_when_its_count_fits():
    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import Masked, Peeled
    seq = P.LoopKind.SEQUENTIAL
    out = _peel((_ragged_loop(seq),))
    assert isinstance(out[0], Peeled) and out[0].params == ("n",)
    # the full iterations: n is the tile; the last: the index and n bound after the loop
    assert P.Let("n", 128) in out[0].body
    assert [x.name for x in out[0].last] == ["i", "i0", "n"]
    # the tile's size is the value each call passes (a trace-time int): no mask at all
    assert not any(isinstance(x, Masked) for x in out[0].body)
    # one more iteration than ceiling(E / 128): the tile is not full before the last one
    kept = _peel((_ragged_loop(seq, count_extra=1),))
    assert not isinstance(kept[0], Peeled)
    assert any("i0" in x.mask for x in kept[0].body if isinstance(x, Masked))


def test_a_peeled_tile_of_a_whole_multiple_needs_no_mask():
    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import Masked
    seq = P.LoopKind.SEQUENTIAL
    # E a multiple of 128: the tile is whole in every call, no lane can be out of range
    # (an inner tile loop over ceiling(n / 128) tiles of n: whole tiles)
    import sympy
    E = _sym("E")
    inner = P.Loop("j", sympy.ceiling(_sym("n") / 128), P.LoopKind.PARALLEL, (
        P.Let("m", sympy.Min(128, _sym("n") - 128 * _sym("j"))),
        P.TensorCopy(P.Ref("t", (P.Slice(0, _sym("m")), P.Slice(0, 1))),
                     P.Ref("t", (P.Slice(0, _sym("m")), P.Slice(0, 1))))))
    loop = P.Loop("i", sympy.ceiling(E / 1024), seq, (
        P.Let("n", sympy.Min(1024, E - 1024 * _sym("i"))), inner))
    whole = _peel((loop,), {"E": 128})
    assert not any(isinstance(x, Masked) for x in _walk(whole))
    part = _peel((loop,), {"E": 64})                  # 64: a tile may be partly filled
    assert any(isinstance(x, Masked) and "< n" in x.mask for x in _walk(part))


def _walk(nodes):
    from nkigen.codegen import plan as P
    for n in nodes:
        yield n
        if isinstance(n, P.Loop):
            yield from _walk(n.body)
        elif isinstance(n, P.If):
            yield from _walk(n.then)
            yield from _walk(n.orelse)


def test_an_affine_loop_is_peeled_only_for_a_ragged_matmul_moving_size():
    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import Peeled
    par = P.LoopKind.PARALLEL
    assert isinstance(_peel((_ragged_loop(par),))[0], Peeled)
    assert not isinstance(_peel((_ragged_loop(par, moving=False),))[0], Peeled)
    assert not isinstance(_peel((_ragged_loop(par),), {"E": 128})[0], Peeled)   # whole
    assert isinstance(_peel((_ragged_loop(par),), {"E": 64})[0], Peeled)


def test_last_iteration_branches_become_a_flag_first_iteration_ones_do_not():
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import FlagIf, Masked, Peeled
    K, J = _sym("K"), _sym("J")
    kb, ik = _sym("kb"), _sym("ik")
    nkb = sympy.ceiling(J / 1024)
    t = P.Ref("t", (P.Slice(0, 128), P.Slice(0, 1)))
    # a mixed-radix contraction index lin = kb + nkb * ik: its last value is both last
    br = P.If(kb + nkb * ik, nkb * K - 1, (P.TensorCopy(t, t),), (P.Memset(t, 0),))
    loop = P.Loop("ik", K, P.LoopKind.SEQUENTIAL, (
        P.Loop("kb", nkb, P.LoopKind.SEQUENTIAL, (br,)),))
    out = _peel((loop,))
    assert isinstance(out[0], Peeled) and out[0].flag == "last_ik"
    inner = out[0].body[0]
    assert isinstance(inner, Peeled) and inner.flag == "last_kb"
    flag = inner.body[0]
    assert isinstance(flag, FlagIf) and flag.flag == "last_ik"
    assert isinstance(flag.then[0], FlagIf) and flag.then[0].flag == "last_kb"
    # the first block (kb == 0) is no last-iteration branch: it stays a loop-index mask
    first = P.Loop("kb", nkb, P.LoopKind.SEQUENTIAL, (
        P.If(kb, 0, (P.TensorCopy(t, t),), (P.Memset(t, 0),)),))
    kept = _peel((first,))
    assert not isinstance(kept[0], Peeled)
    assert any(isinstance(x, Masked) and "kb" in x.mask for x in kept[0].body)


def test_a_peeled_contraction_tile_is_zero_filled_only_when_it_can_be_short():
    """A matmul operand written with a peeled value as its partition count (trn1 attention's
    d tiles): a trace-time ``if d < 128`` zero fill of the whole tile before the write, so the
    full-size contraction adds zeros; none when the checks make every tile whole."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import Pad, Peeled, _Pass
    D, i = _sym("D"), _sym("i")
    w = P.Ref("w", (P.Slice(0, _sym("d")), P.Slice(0, 64)))
    s = P.Ref("s", (P.Slice(0, _sym("d")), P.Slice(0, 64)))
    # (the write reads another tile: one reading w itself comes after w's first write, which
    # zero-filled it already; a second fill would wipe what it reads, fuzz9)
    loop = P.Loop("i", sympy.ceiling(D / 128), P.LoopKind.SEQUENTIAL, (
        P.Let("d", sympy.Min(128, D - 128 * i)), P.TensorCopy(w, s)))

    def run(multiples):
        return _Pass(multiples, {"w"}).nodes((loop,))

    out = run({})
    assert isinstance(out[0], Peeled)
    pad = out[0].body[1]
    assert isinstance(pad, P.If) and pad.cmp is P.Cmp.LT and str(pad.lhs) == "d"
    assert pad.rhs == 128 and isinstance(pad.then[0], Pad)
    assert pad.then[0].node.dst.dims[0].size == 128
    assert not any(isinstance(x, P.If) for x in run({"D": 128})[0].body)
    assert any(isinstance(x, P.If) for x in run({"D": 64})[0].body)
