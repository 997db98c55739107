"""Classic dialect (``--dialect neuronxcc``): every shipped spec renders through
templates/neuronxcc, matches the float64 reference in the simulator, agrees with the current-API
kernel of the same plan, and issues the same instruction stream (the nl.zeros of its PSUM
accumulators elided, see nkigen/sim/classic/zeroing.py) except for partition-broadcast loads:
the current API reads the row onto every partition with one DMA (a step-0 access pattern), the
classic kernel loads the row once and broadcasts it (nl.load + broadcast_to: a one-row DMA and
a TensorE broadcast whose tile the name is bound to), the documented classic form; in a
loop with a ragged last tile it broadcasts to the tile's full partition count (no mask= on a
copy).

The classic plan differs from the current-API one in its row kernels: nested (row tile, free
chunk) loops and no Python-level prefetch (affine_range traces its body once, S25
general/nki/api/nki/language/__init__.py, SDK 2.25). So the classic stream is compared in order
with the current-API rendering of the classic plan, and that one, as a multiset, with the
current-API kernel of its own plan (same instructions, another order)."""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nkigen import sim
from nkigen.codegen import API_VERSION, generate
from nkigen.codegen.render import EMITTERS, _ops
from nkigen.frontend import load_spec

sys.path.insert(0, str(Path(__file__).parent))
import shipped  # noqa: E402
from classic_mask_forms import analyse  # noqa: E402
from codegen_check import assert_matches_reference, check_case, load_source  # noqa: E402

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))


def _cases(spec):
    from nkigen.testdata import cases
    return cases(spec)


def _sig(ins) -> tuple:
    """An instruction without allocation ids: what the cost model sees of it."""
    op = ins.op.rsplit(".", 1)[-1]
    return (ins.engine, op, ins.partitions, ins.free, ins.dtype, ins.out_dtype,
            ins.stationary_free, ins.moving_free, ins.nbytes, ins.chunk_bytes, ins.transpose,
            ins.accumulate, ins.in_psum, len(ins.reads),
            tuple((r.mem, r.p0, r.p1, r.b0, r.b1) for r in ins.writes))


# Lowerings only the current API's plan uses (review4 F4), and the instructions they change:
# embedding_lookup stores its (prefetched) gathered tile without the ScalarE copy
# (rows._compile_store). (rope_half's two halves are unrolled in both dialects now,
# rows.unrolled_envs, so its sign is decided at plan time in both.)
NKI_ONLY_LOWERINGS: dict[str, tuple[str, ...]] = {
    "embedding_lookup": ("activation",),
}


def _narrowed_broadcasts(mine: Counter, cur: Counter) -> Counter:
    """The classic plan's hoisted partition broadcast fills all 128 partitions of its tile (the
    classic load binds the whole broadcast tile), the current API's the rows a row tile uses,
    ``min(M, 128)`` (rows.hoist_rows): each classic-plan-only DMA counts as the current-API
    DMA that is the same but for fewer partitions (and bytes in proportion)."""
    out = Counter(mine)
    spare = cur - mine
    for k in list((mine - cur).elements()):
        if k[0].name != "DMA":
            continue
        for c in spare.elements():
            if c[:2] == k[:2] and c[2] < k[2] and c[3:8] == k[3:8] \
                    and c[8] * k[2] == k[8] * c[2] and c[9:14] == k[9:14]:
                out[k] -= 1
                out[c] += 1
                spare[c] -= 1
                break
    return +out


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_both_dialects(path):
    from nkigen.codegen import _analyze, plan_kernel, render
    from nkigen.reference import evaluate
    from nkigen.testdata import make_inputs, tolerance

    spec = shipped.spec(path)
    src = {d: shipped.source(path, d) for d in ("nki", "neuronxcc")}
    # the current API rendering the classic plan: same loops, same order as the classic kernel
    plans = {d: plan_kernel(spec, _analyze(spec), None, None, d) for d in ("nki", "neuronxcc")}
    src["nki/classic-plan"] = render(plans["neuronxcc"], "nki")
    ast.parse(src["nki"])
    ast.parse(src["neuronxcc"])
    kern = {d: load_source(s, spec.name) for d, s in src.items()}
    for case in _cases(spec):
        inputs = list(make_inputs(spec, case).values())
        res = {d: sim.run(k, inputs, target="trn2", report=False) for d, k in kern.items()}
        ref = evaluate(spec, make_inputs(spec, case), case)
        # both dialects' kernels against the float64 reference (what check_case does, on the
        # runs made here rather than second simulations of them; the nki one is the check
        # test_codegen.py's test_spec_matches_reference made on the same kernel, inputs and
        # target)
        assert_matches_reference(spec, case, res["neuronxcc"].outputs, ref=ref)
        assert_matches_reference(spec, case, res["nki"].outputs, ref=ref)
        rtol, atol = tolerance(spec, case, ref)
        for got, want in zip(res["neuronxcc"].outputs, res["nki"].outputs):
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                       rtol=rtol, atol=atol)
        same = [_sig(i) for i in res["nki/classic-plan"].instrs]
        cls = [_sig(i) for i in res["neuronxcc"].instrs]
        _same_but_broadcasts(same, cls, f"{spec.name} {case}")
        if not any(s[1] == "broadcast_to" for s in cls):
            # a masked kernel also runs the iterations its mask empties (the min()-sized one
            # does not): a loop-body tile re-created there overlaps the previous one while the
            # name is rebound, at most one more of each such tile; a peeled loop's iteration
            # is a helper function, whose tiles die when it returns (less, never more)
            extra = res["neuronxcc"].peak_sbuf_bytes - res["nki/classic-plan"].peak_sbuf_bytes
            assert extra <= 0 or extra <= (
                _loop_tile_bytes(plans["neuronxcc"].body, case)
                if "mask=" in src["neuronxcc"] else 0), \
                f"{spec.name} {case}: classic SBUF peak {extra:+d} bytes"
        # no prefetch changes the order of the instructions, not which ones are issued; with
        # one buffer instead of two a row group may fit the SBUF that did not (layernorm's
        # three statements in one pass): then its HBM temps' loads and stores drop out
        # (not for the attention plan, which the classic dialect builds differently: one-bank
        # key blocks, neutral fills of the bank columns its masks may leave unwritten, one
        # transpose per key tile; see nkigen/codegen/attention.py)
        if any(s_.strategy.startswith("attention") for s_ in plans["nki"].stages):
            continue
        if _split_taken(src["nki"], case) != _split_taken(src["neuronxcc"], case):
            continue    # one dialect's kernel takes its trace-time split form here (planner.py)
        if "codegen/flatten.py" in src["nki"]:
            continue    # the current API runs the maps over flat views (another tiling)
        cur, mine = Counter(_sig(i) for i in res["nki"].instrs), Counter(same)
        if "perf_mode=" in src["nki"]:
            # fp8 double_row (nki only: the classic API documents no perf_mode) issues other
            # matmuls; everything else must still agree
            cur, mine = (Counter({k: v for k, v in c.items() if k[1] != "nc_matmul"})
                         for c in (cur, mine))
        # the accumulator's zeroing: one memset in the current API's plan, one per row tile
        # (masked) in the classic plan (matmul.py); the same bytes
        zc, zm = (sum(k[3] * v for k, v in c.items() if k[1] == "memset" and k[0].name == "GPSIMD"
                      and not k[4].startswith("bfloat") and k[14][0][1] == 0)
                  for c in (cur, mine))
        assert zm == zc, f"{spec.name} {case}: accumulator zeroing {zm} vs {zc} elements"
        cur, mine = (Counter({k: v for k, v in c.items() if k[1] != "memset"})
                     for c in (cur, mine))
        if spec.name in NKI_ONLY_LOWERINGS:
            # the current API's plan issues fewer instructions there, by design; the rest
            # must still agree
            assert cur.total() < mine.total(), f"{spec.name} {case}: no fewer instructions"
            cur, mine = (Counter({k: v for k, v in c.items()
                                  if k[1] not in NKI_ONLY_LOWERINGS[spec.name]})
                         for c in (cur, mine))
        mine = _narrowed_broadcasts(mine, cur)
        assert not mine - cur, f"{spec.name} {case}: classic plan only: {mine - cur}"
        if len(plans["nki"].stages) == len(plans["neuronxcc"].stages) and \
                not _split_taken(src["nki"], case) and not _chunk_pipelined(src["nki"], case):
            # (in a split form the classic plan loads a per-row column once per row tile, the
            # current API's once per free chunk of its pipelined loop: rows.py)
            assert mine == cur, f"{spec.name} {case}: current-API plan only: {cur - mine}"


def _chunk_pipelined(src: str, case: dict) -> bool:
    """Whether the current-API kernel runs its pipelined loop over row tiles x free chunks
    (``nfc = -(-N // FREE_TILE)`` above 1 at ``case``): it reloads a per-column operand for
    every (row tile, chunk) pair, the classic plan once per chunk outside its row loop (the
    same bytes per row tile; scale_bias_relu at 130 x 2100)."""
    m = re.search(r"^\s*nfc = -\(-(\w+) // FREE_TILE\)$", src, re.M)
    free = re.search(r"^FREE_TILE = (\d+)", src, re.M)
    if m is None or free is None or m.group(1) not in case:
        return False
    return -(-case[m.group(1)] // int(free.group(1))) > 1


def _split_taken(src: str, case: dict) -> bool:
    """Whether a trace-time fuse choice of the kernel (``if <peak> < <budget + 1>:``, the
    planner's fused pass) takes its split form at ``case``'s sizes."""
    for expr, bound in re.findall(r"^\s*if (.+) < (\d+):$", src, re.M):
        try:
            peak = eval(expr, {"max": max, "min": min}, dict(case))
        except NameError:
            continue                   # a test on names other than the sizes
        if isinstance(peak, int) and peak >= int(bound):
            return True
    return False


def _loop_tile_bytes(nodes, case: dict, inside: bool = False) -> int:
    """Bytes per partition of the SBUF tiles allocated inside loop bodies (sizes of ``case``)."""
    import sympy

    from nkigen.codegen import plan as P
    total = 0
    for n in nodes:
        if isinstance(n, P.Alloc) and inside and n.mem is P.Mem.SBUF:
            sizes = [sympy.sympify(x) for x in n.shape[1:]]
            total += int(np.prod([int(x.subs({v: case[v.name] for v in x.free_symbols}))
                                  for x in sizes])) * n.dtype.itemsize
        elif isinstance(n, P.Loop):
            total += _loop_tile_bytes(n.body, case, True)
        elif isinstance(n, P.If):
            total += _loop_tile_bytes(n.then, case, inside) \
                + _loop_tile_bytes(n.orelse, case, inside)
    return total


def _same_but_broadcasts(cur: list, cls: list, what: str) -> None:
    """The two streams are identical, except that each classic (one-row DMA, TensorE
    broadcast_to) pair, plus a copy when the broadcast fills only a corner of its tile, stands
    where the current API issues one DMA that writes the broadcast rows (same free size; as
    many or, in a masked ragged loop, more partitions); a ragged contraction tile, which
    the classic kernel zeroes (a memset) and contracts whole (a matmul of more partitions), and
    ragged result rows / columns, which it computes whole (no lane mask on a matmul); and
    an affine_select on loop indices only, a masked copy or fill in the classic kernel; and the
    accumulator's zeroing, one memset per row tile in the classic kernel."""
    i = j = 0
    while i < len(cur) and j < len(cls):
        if cls[j][0].name == "DMA" and j + 1 < len(cls) and cls[j + 1][1] == "broadcast_to":
            dma, bc = cls[j:j + 2]
            assert dma[2] == 1, f"{what}: broadcast at {j}: {cls[j:j + 2]}"
            assert cur[i][0].name == "DMA" and cur[i][1] == dma[1], f"{what}: {cur[i]} vs {dma}"
            # a ragged last tile broadcasts to the tile's full partitions (classic_mask.py)
            assert cur[i][2] <= bc[6] and cur[i][3] == dma[3], \
                f"{what}: broadcast rows {cur[i]} vs {bc}"
            j += 2
            if j < len(cls) and cls[j][1] == "tensor_copy" and cls[j][2] == bc[6] \
                    and (i + 1 == len(cur) or cur[i + 1] != cls[j]):
                j += 1          # the copy into a tile corner (a broadcast not bound whole)
            i += 1
            continue
        if cur[i][1] == "affine_select" and cls[j][1] in ("tensor_copy", "memset") \
                and cls[j][2:4] == cur[i][2:4]:
            # a predicate of loop indices only: the classic kernel copies or fills the tile
            # under a loop-index mask (classic_mask.loop_select), one of the two per iteration
            i, j = i + 1, j + 1
            continue
        if cls[j][1] == cur[i][1] == "memset" and cls[j][:3] == cur[i][:3]:
            # the accumulator's zeroing: one memset in the current API, one per row tile
            # (masked, matmul.py) in the classic kernel; the further ones are skipped below
            i, j = i + 1, j + 1
            continue
        if cls[j][1] == "memset" and cls[j] != cur[i]:
            j += 1     # the zero pad of a ragged contraction tile (classic_mask.zero_pad)
            continue
        if cls[j][1] == cur[i][1] == "nc_matmul" and cls[j] != cur[i]:
            # a ragged contraction tile: the classic matmul contracts the full (zero-padded)
            # tile, the current API the rows there are; ragged result rows / columns: the
            # classic matmul has no lane mask (S25 general/nki/api/nki.api.shared.rst "NKI
            # API Masking", the matmul paragraph) and computes the full tile, the lanes past
            # the bound don't-care (its masked eviction drops them)
            grow = (2, 3, 6, 7)
            assert all(cls[j][k] >= cur[i][k] for k in grow) and all(
                cls[j][k] == cur[i][k] for k in range(14) if k not in grow), \
                f"{what}: matmuls differ: {cur[i]} vs {cls[j]}"
            i, j = i + 1, j + 1
            continue
        if cls[j][1] == cur[i][1] == "tensor_reduce" and cls[j][3] > cur[i][3] \
                and what.startswith("attention"):
            # the reduction over a key block's PSUM-bank columns: the classic attention kernel
            # reads all of them, the banks past N holding the neutral value (attention.py)
            assert cls[j][:3] + cls[j][4:] == cur[i][:3] + cur[i][4:], \
                f"{what}: reductions differ: {cur[i]} vs {cls[j]}"
            i, j = i + 1, j + 1
            continue
        assert cls[j] == cur[i], \
            f"{what}: instruction streams differ at {i}/{j}: {cur[i]} vs {cls[j]}"
        i, j = i + 1, j + 1
    assert (i, j) == (len(cur), len(cls)), f"{what}: stream lengths differ ({len(cur)}, {len(cls)})"


def test_header_and_imports():
    spec = load_spec(SPECS[0])
    a = generate(spec, target="trn1", dialect="neuronxcc")
    assert a == generate(spec, target="trn1", dialect="neuronxcc")
    head = a.splitlines()[:6]
    assert head[2] == f"# dialect: neuronxcc ({API_VERSION['neuronxcc']})"
    assert "SDK 2.21-2.26" in head[2] and "trn1" in head[3]
    lines = a.splitlines()
    for imp in ("from neuronxcc import nki", "import neuronxcc.nki.language as nl",
                "import neuronxcc.nki.isa as nisa"):
        assert imp in lines
    assert "import nki" not in lines and "dst=" not in a.replace("dma_copy(dst=", "")


def test_isa_calls_return_tiles_and_psum_accumulates():
    spec = load_spec(Path(__file__).parent.parent / "specs" / "matmul_bias_gelu.yaml")
    src = generate(spec, dialect="neuronxcc")
    assert "+= nisa.nc_matmul(" in src and "buffer=nl.psum)" in src
    assert "nl.zeros(" in src
    # the tile loops are affine_range; no min() of a loop index is left (min() only of a
    # peeled loop's trace-time last index); N = 700 is no multiple of the 512-column tile, so
    # the last column tile is its own call, its matmul issued at its size (no lane mask)
    assert "in nl.affine_range(" in src and analyse(src).loop_min == 0
    assert "        ctsz = min(TILE_N, csz - cc0)\n" in src
    assert "_stage0_ct(M, nkt, r0, rt, s_blk, m_blk, acc1, ct, ctsz)" in src
    assert "ps[0:TILE_M, 0:ctsz] += nisa.nc_matmul(" in src
    assert ".ap(" not in src


def test_every_plan_node_has_a_classic_emitter():
    ops = _ops("neuronxcc")
    for kind, macro in EMITTERS.items():
        assert callable(getattr(ops, macro, None)), f"{kind.__name__}: no macro {macro}"
    assert callable(getattr(ops, "else_", None))


def test_classic_size_checks_are_asserts():
    spec = load_spec(Path(__file__).parent.parent / "specs" / "matmul_bias_gelu.yaml")
    k = load_source(generate(spec, dialect="neuronxcc"), spec.name)
    a = np.zeros((100, 128), np.float32)
    with pytest.raises(AssertionError, match="size M"):
        sim.simulate(k)(a, np.zeros((128, 64), np.float32), np.zeros((64,), np.float32))


def test_cli_gen_and_sim_classic(tmp_path, capsys):
    from nkigen.cli import main
    out = tmp_path / "softmax_classic.py"
    spec = Path(__file__).parent.parent / "specs" / "softmax.yaml"
    assert main(["gen", str(spec), "--dialect", "neuronxcc", "-o", str(out)]) == 0
    assert "from neuronxcc import nki" in out.read_text()
    kern = sim.load(out, "softmax")
    x = np.random.default_rng(0).standard_normal((130, 70)).astype(np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(sim.simulate(kern)(x), e / e.sum(axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    assert main(["sim", f"{out}::softmax", "-i", "x=256x100", "--cost-only"]) == 0
    assert "not a measurement" in capsys.readouterr().out


def _emit(node) -> str:
    from nkigen.codegen.render import _view
    return str(getattr(_ops("neuronxcc"), EMITTERS[type(node)])(_view(node)))


def test_classic_macros_render_tile_returning_calls():
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.dtypes import DType

    s = sympy.Symbol
    t = P.Ref("t", (P.Slice(0, s("n")), P.Slice(0, 512)))
    col = P.Ref("c", (P.Slice(0, s("n")), P.Slice(0, 1)))
    ps = P.Ref("ps", (P.Slice(0, 128), P.Slice(0, 512)))
    st = P.Ref("a", (P.Slice(0, 128), P.Index(s("k")), P.Slice(0, 128)))
    mv = P.Ref("b", (P.Slice(0, 128), P.Index(s("k")), P.Slice(0, 512)))
    assert _emit(P.Alloc("ps", (128, 512), DType.float32, P.Mem.PSUM)) == \
        "ps = nl.zeros((128, 512,), dtype=nl.float32, buffer=nl.psum)"
    assert _emit(P.Alloc("t", (128, 512), DType.bfloat16, P.Mem.SBUF)) == \
        "t = nl.ndarray((128, 512,), dtype=nl.bfloat16, buffer=nl.sbuf)"
    assert _emit(P.Loop("k", s("nk"), P.LoopKind.PARALLEL, ())) == \
        "for k in nl.affine_range(nk):"
    assert _emit(P.Loop("k", s("nk"), P.LoopKind.SEQUENTIAL, ())) == \
        "for k in nl.sequential_range(nk):"
    assert _emit(P.Matmul(ps, st, mv)) == \
        "ps[0:128, 0:512] += nisa.nc_matmul(a[0:128, k, 0:128], b[0:128, k, 0:512])"
    assert _emit(P.Activation(t, P.ActFunc.EXP, t, P.Scalar(sympy.Float(0.5)), col)) == (
        "t[0:n, 0:512] = nisa.activation(op=nl.exp, data=t[0:n, 0:512], bias=c[0:n, 0:1], "
        "scale=0.5, dtype=t.dtype)")
    assert _emit(P.TensorScalar(t, t, P.AluOp.SUBTRACT, col, reverse0=True)) == (
        "t[0:n, 0:512] = nisa.tensor_scalar(t[0:n, 0:512], op0=nl.subtract, "
        "operand0=c[0:n, 0:1], reverse0=True, dtype=t.dtype, engine=nisa.vector_engine)")
    assert _emit(P.Memset(P.Ref("t"), sympy.Float(0.0))) == \
        "t[...] = nisa.memset(t.shape, 0.0, t.dtype)"
    dma = _emit(P.Dma(t, P.ApRef("bias", s("c0"), ((0, s("n")), (1, 512)))))
    assert dma == ("t[0:n, 0:512] = nl.load(bias.reshape((math.prod(bias.shape),))"
                   "[c0 + nl.arange(1)[:, None] + 1 * nl.arange(512)[None, :]], dtype=t.dtype)"
                   ".broadcast_to((n, 512))")
    one = _emit(P.Dma(t, P.ApRef("bias", s("c0"), ((0, 1), (1, 512)))))
    assert one == ("nisa.dma_copy(dst=t[0:n, 0:512], src=bias.reshape((math.prod(bias.shape),))"
                   "[c0 + nl.arange(1)[:, None] + 1 * nl.arange(512)[None, :]])")
    row = _emit(P.Dma(t, P.ApRef("bias", s("c0"), ((512, s("n")), (1, 512)))))
    assert "nisa.dma_copy(" in row and "512 * nl.arange(n)[:, None]" in row


@pytest.mark.parametrize("name", ["matmul_bias_gelu", "matmul_at", "softmax", "conv1d"])
def test_trn1_classic_matches_and_agrees(name):
    spec = load_spec(Path(__file__).parent.parent / "specs" / f"{name}.yaml")
    case = _cases(spec)[0]
    src = generate(spec, target="trn1", dialect="neuronxcc")
    check_case(spec, case, target="trn1", src=src)
    from nkigen.testdata import make_inputs
    inputs = list(make_inputs(spec, case).values())
    a = sim.run(load_source(generate(spec, target="trn1"), spec.name), inputs, target="trn1")
    b = sim.run(load_source(src, spec.name), inputs, target="trn1")
    cls = [_sig(i) for i in b.instrs]
    _same_but_broadcasts([_sig(i) for i in a.instrs], cls, name)
    pads = sum(s[1] == "memset" for s in cls) - sum(i.op.endswith("memset") for i in a.instrs)
    if not any(s[1] == "broadcast_to" for s in cls) and not pads:
        assert a.report.latency_us == b.report.latency_us
    elif not any(s[1] == "broadcast_to" for s in cls):
        # zero pads of a ragged contraction tile: work the min()-sized kernel does not do
        assert a.report.latency_us < b.report.latency_us


# ---- ragged tiles: full tiles + mask= (nkigen/codegen/classic_mask.py) -----------------------
def _both(name: str, inputs: list) -> dict:
    """Simulator runs of both dialects' kernels, and ("same") of the current API rendering the
    classic plan (the classic kernel's instruction order)."""
    from nkigen.codegen import _analyze, plan_kernel, render
    spec = load_spec(Path(__file__).parent.parent / "specs" / f"{name}.yaml")
    src = {d: generate(spec, dialect=d) for d in ("nki", "neuronxcc")}
    src["same"] = render(plan_kernel(spec, _analyze(spec), None, None, "neuronxcc"), "nki")
    res: dict = {d: sim.run(load_source(s, spec.name), inputs, report=False)
                 for d, s in src.items()}
    res["flat"] = "codegen/flatten.py" in src["nki"]
    return res


def _same_stream(res: dict) -> None:
    """The classic stream is the current-API stream of the same plan, and issues what the
    current-API kernel issues (in another order: no prefetch)."""
    cls = [_sig(i) for i in res["neuronxcc"].instrs]
    assert cls == [_sig(i) for i in res["same"].instrs]
    if not res.get("flat"):     # (flat maps: the current API tiles them otherwise, flatten.py)
        assert Counter(cls) == Counter(_sig(i) for i in res["nki"].instrs)


def test_classic_row_kernel_masks_ragged_rows_instead_of_min():
    spec = load_spec(Path(__file__).parent.parent / "specs" / "softmax.yaml")
    src = generate(spec, dialect="neuronxcc")
    loops = src[src.index("_range("):]
    assert "min(" not in loops.split("@nki.jit")[0]
    assert "mask=(p0 + nl.arange(TILE_P)[:, None] < M)" in src
    assert "TILE_P = nl.tile_size.pmax" in src
    # a full tile, clipped by its mask, read through index tiles (never a slice past M)
    assert "i_p = nl.arange(TILE_P)[:, None]" in src and "y[p0 + i_p, i_f]" in src
    assert "Ragged last tiles are full tiles clipped with mask=" in src


@pytest.mark.parametrize("rows", [127, 128, 129, 255, 256, 257])
def test_classic_masked_rows_at_tile_boundaries(rows):
    # last tile of 127 / 128 (full) / 1 rows: identical numerics and instruction stream
    x = np.random.default_rng(rows).standard_normal((rows, 70)).astype(np.float32)
    res = _both("softmax", [x])
    np.testing.assert_array_equal(res["neuronxcc"].outputs[0], res["nki"].outputs[0])
    _same_stream(res)


AFFINE_ROW_SPECS = ["add", "avgpool2_rows", "cumsum_rows", "ema_rows", "glu", "layernorm",
                    "layernorm3d", "leaky_relu_where", "log_softmax", "maxpool1d",
                    "residual_rmsnorm", "rmsnorm", "row_max", "row_mean", "row_sum",
                    "rsqrt_scale", "scale_bias_relu", "sgd_step", "silu_ragged", "softmax"]


@pytest.mark.parametrize("name", AFFINE_ROW_SPECS)
def test_classic_row_kernels_trace_once(name):
    """The classic row kernels nest (row tile, free chunk) loops without Python prefetch, so
    every loop is affine/sequential (traced once): no static_range, no if, no floor division of
    a loop index; the current-API kernel of the same spec keeps its prefetch."""
    spec = load_spec(Path(__file__).parent.parent / "specs" / f"{name}.yaml")
    src = generate(spec, dialect="neuronxcc")
    body = src[src.index("\ndef "):]
    assert "nl.static_range(" not in body and "nl.affine_range(" in body
    # (the one if allowed: a peeled loop's trip-count guard, ``if 0 < count:``, review12 F2)
    unguarded = re.sub(r"\n +if 0 < [^\n]* - 1:", "", body)
    assert "_c = " not in body and "\n        if " not in unguarded and " // nfc" not in body
    if name in ("add", "silu_ragged"):       # streamed free chunks: nested, row tile outer
        assert "for fc in nl.affine_range(nfc):" in body and "f0 = FREE_TILE * fc" in body
        assert "if it + 1 <" in generate(spec)


@pytest.mark.parametrize("cols", [2047, 2048, 2049])
def test_classic_masked_free_chunks_at_tile_boundaries(cols):
    # silu_ragged chunks the free axis by 2048: the mask clips both axes of the last tile
    spec = load_spec(Path(__file__).parent.parent / "specs" / "silu_ragged.yaml")
    src = generate(spec, dialect="neuronxcc")
    loop = src[src.index("_range("):].split("@nki.jit")[0]
    assert "nl.arange(FREE_TILE)[None, :] <" in loop and "min(" not in loop   # prologue: plain ints
    x = np.random.default_rng(cols).standard_normal((130, cols)).astype(np.float32)
    res = _both("silu_ragged", [x])
    np.testing.assert_array_equal(res["neuronxcc"].outputs[0], res["nki"].outputs[0])
    _same_stream(res)


def test_classic_mask_pass_covers_matmuls_and_names_what_it_cannot():
    # the matmul family: full tiles + mask= on dma_transpose / dma_copy / nc_matmul; with K a
    # multiple of the 128-row tile every contraction tile is whole or empty, so the empty ones
    # are skipped by a loop-index condition and nothing is zero-padded
    import sympy

    from nkigen.codegen import _analyze, plan_kernel
    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import apply
    spec = load_spec(Path(__file__).parent.parent / "specs" / "matmul_bf16.yaml")
    plan = plan_kernel(spec, _analyze(spec), None, None)
    assert apply(plan)[1] is None
    src = generate(spec, dialect="neuronxcc")
    # the one memset is the accumulator's zeroing (one accumulate pattern), never a masked pad
    assert src.count("nisa.memset(") == 1 and "= nisa.memset(acc[0:TILE_M, BLOCK_N * rt" in src
    assert not re.search(r"nisa\.memset\([a-z_]*blk.*mask=", src)      # no operand pad
    # each output block allocates its accumulator, so the block loops are affine (review12
    # F4): the row block (M = 1024 < BLOCK_M) is masked on its affine index r0; the column
    # block loop is peeled (the last block's matmuls issued at their size), the contraction
    # loop sequential and peeled; min() is only of a peeled loop's trace-time last index
    assert "for rb in nl.affine_range(" in src and "for cb in nl.affine_range(" in src
    assert src.count(" in nl.sequential_range(") == 1 and "for kb in nl.sequential_range(" in src
    assert src.index("acc = nl.ndarray(") > src.index("def _matmul_bf16_stage0_cb(")
    assert analyse(src).loop_min == 0 and "mask=(r0 + TILE_M * rt < M)" in src
    assert "    ksz = min(BLOCK_K, K - k0)\n" in src
    assert "_kb(a, b, c, M, r0, csz, c0, nrt, nct, acc, kb, BLOCK_K, False)" in src
    # C <= 128 is no multiple of the tile: the partly filled tile's operands are zeroed first
    # (the whole partitions: an engine access of > 64 partitions starts at 0), only there
    conv = generate(load_spec(Path(__file__).parent.parent / "specs" / "conv1d.yaml"),
                    dialect="neuronxcc")
    pads = [ln for ln in conv.splitlines() if "nisa.memset(" in ln]
    # the three weight taps' transposed tiles and the input block's channel tile
    assert len(pads) == 4 and all(
        re.search(r"mask=\((c0\d*) < C\) & \(\1 \+ TILE_K > C\)(?: & |, )", ln)
        and ln.endswith(", engine=nisa.gpsimd_engine)") for ln in pads)
    # what the pass cannot write with masks is left min()-sized, with the reason
    S = sympy.Symbol
    body = (P.Alloc("t", (128, 512), spec.tensor("a").dtype, P.Mem.SBUF),
            P.Loop("i", 4, P.LoopKind.PARALLEL, (
                P.Let("n", sympy.Min(128, 300 - 128 * S("i"))),
                P.If(S("n"), sympy.Integer(128), ()),)))
    odd = replace(plan, body=body)
    same, why = apply(odd)
    assert same is odd and why == "branch on a ragged size"
    rows = load_spec(Path(__file__).parent.parent / "specs" / "rmsnorm.yaml")
    assert apply(plan_kernel(rows, _analyze(rows), None, None))[1] is None


def test_trace_time_loop_vars():
    """A classic loop is static exactly when a Python computation needs its index: min() / floor
    division of it (directly or through a Let), an if on it, or an inner loop count."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.render import _static_where_needed, _trace_time_loop_vars
    S = sympy.Symbol
    par = P.LoopKind.PARALLEL
    body = (
        P.Loop("a", 4, par, (P.Let("x", 128 * S("a")),)),                      # affine: fine
        P.Loop("b", 4, par, (P.Let("y", 128 * S("b")),
                             P.Let("z", sympy.Min(128, 1000 - S("y"))),)),      # min via y
        P.Loop("c", 4, par, (P.If(S("c"), sympy.Integer(0), ()),)),            # if on c
        P.Loop("d", 4, par, (P.Loop("e", S("d") + 1, par, ()),)),              # count uses d
        P.Loop("f", 4, par, (P.Let("g", sympy.floor(S("f") / 3)),)),           # floor division
    )
    assert _trace_time_loop_vars(body) == {"b", "c", "d", "f"}
    kinds = {n.var: n.kind for n in _static_where_needed(body)}
    assert kinds == {"a": par, "b": P.LoopKind.STATIC, "c": P.LoopKind.STATIC,
                     "d": P.LoopKind.STATIC, "f": P.LoopKind.STATIC}


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_classic_loops_and_ragged_sizes(path):
    """Inside an nl.affine_range / nl.sequential_range body (traced once with a symbolic index)
    nothing needs the index as a Python int: no min() and no if; such loops are static_range
    instead. A kernel that keeps min() says why in its header."""
    import re
    spec = shipped.spec(path)
    try:
        src = shipped.source(path, "neuronxcc")
    except Exception as e:      # planner failures are the planner's tests' business
        pytest.skip(f"{spec.name}: does not generate ({type(e).__name__})")
    traced: list[tuple[int, str]] = []      # (indent, var) of the enclosing traced-once loops
    for line in src.splitlines():
        ind = len(line) - len(line.lstrip())
        if line.strip():
            traced = [(i, v) for i, v in traced if i < ind]
        m = re.match(r"\s*for (\w+) in nl\.(affine|sequential)_range\(", line)
        if m:
            traced.append((ind, m.group(1)))
        elif traced and ("min(" in line or line.strip().startswith("if ")):
            used = [v for _, v in traced if re.search(rf"\b{v}\b", line)]
            assert not used, f"{spec.name}: {used} needed at trace time: {line.strip()}"
    if "# Ragged last tiles are full tiles clipped with mask=" not in src:
        assert "# Ragged tiles are sized with Python min() of static_range indices" in src


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_classic_no_tensor_created_inside_an_if_block(path):
    """A tensor created inside an `if` / `else` is out of scope after it (S25 nki.errors
    err_local_variable_used_out_of_scope, whose example is exactly `if ...: t = nl.load(...)`
    read after the block): loads under the prefetch guard write into a tile allocated before
    the block, and a tensor created in a branch (the planner's trace-time fuse choice: each
    branch a whole pass) is read only inside that branch."""
    spec = shipped.spec(path)
    try:
        src = shipped.source(path, "neuronxcc")
    except Exception as e:      # planner failures are the planner's tests' business
        pytest.skip(f"{spec.name}: does not generate ({type(e).__name__})")
    _no_branch_tensor_read_after(spec.name, src)


def _no_branch_tensor_read_after(name: str, src: str) -> None:
    import re
    blocks: list[tuple[int, set[str]]] = []     # (indent of the if/else line, names made inside)
    gone: set[str] = set()                       # names whose branch has ended
    for line in src.splitlines():
        if not line.strip():
            continue
        ind = len(line) - len(line.lstrip())
        if line.lstrip().startswith("def "):
            blocks, gone = [], set()
        while blocks and blocks[-1][0] >= ind:
            gone |= blocks.pop()[1]
        made = re.match(r"\s*(\w+) = nl\.(load|ndarray|zeros)\(", line)
        text = line.split(" = ", 1)[-1] if made else line
        # a read of the name (not nl.<name>, not a keyword argument <name>=)
        used = [v for v in sorted(gone) if re.search(rf"(?<![.\w]){v}\b(?!\s*=(?!=))", text)]
        assert not used, f"{name}: {used} read outside the branch that created it: " \
                         f"{line.strip()}"
        if made:
            gone.discard(made.group(1))
            if blocks:
                blocks[-1][1].add(made.group(1))
        if line.strip().startswith(("if ", "else:")):
            blocks.append((ind, set()))


def test_branch_tensor_scope_check_fails_on_the_docs_example():
    """The check above rejects S25 nki.errors' err_local_variable_used_out_of_scope example
    and accepts its fix (a tile allocated before the branches)."""
    bad = ("def k():\n    for i in range(4):\n        if i < 2:\n"
           "            tmp = nl.load(a)\n        else:\n            tmp = nl.load(b)\n"
           "        nl.store(c, tmp)\n")
    with pytest.raises(AssertionError, match="tmp"):
        _no_branch_tensor_read_after("doc", bad)
    good = ("def k():\n    for i in range(4):\n        tmp = nl.ndarray(shape=a.shape)\n"
            "        if i < 2:\n            tmp[...] = nl.load(a)\n        else:\n"
            "            tmp[...] = nl.load(b)\n        nl.store(c, tmp)\n")
    _no_branch_tensor_read_after("doc", good)
    inside = ("def k():\n    if D < 9:\n        t = nl.ndarray((4, D))\n"
              "        nl.store(c, t)\n    else:\n        t = nl.ndarray((4, 8))\n"
              "        nl.store(c, t)\n")
    _no_branch_tensor_read_after("doc", inside)


def test_no_shipped_classic_kernel_needs_static_range():
    """Every loop of every shipped spec's classic kernel is affine_range or sequential_range
    (benchmarks/classic_loops.py counts them), with no min() of a loop index left."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    from classic_loops import loop_kinds
    total: Counter = Counter()
    for path in SPECS:
        src = shipped.source(path, "neuronxcc")
        total += loop_kinds(src)
        # min() only of trace-time values (block sizes from the input shapes, a peeled
        # loop's last index), never of a loop index
        assert analyse(src).loop_min == 0, path.stem
    assert total["static_range"] == 0 and total["other"] == 0
    # the sequential loops are the accumulating ones (contraction blocks, scans, online
    # softmax); the matmul family's output block loops are affine (review12 F4)
    assert total["affine_range"] > 200 and 15 < total["sequential_range"] < 40


def test_branch_and_select_on_loop_indices_become_masks():
    """``if lin == v`` on loop indices is one loop-index mask per branch exactly when v is
    lin's least or greatest value; otherwise the branch stays (its loops static_range)."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import _Pass
    from nkigen.codegen.plan_ext import AffineSelect
    S = sympy.Symbol
    p = _Pass()
    p.dep |= {"i", "j"}
    p.counts.update(i=sympy.Integer(4), j=S("n", integer=True, nonnegative=True))
    lin = S("i") + 4 * S("j")
    assert p.branch_masks(P.If(lin, sympy.Integer(0), ())) == ("(i + 4 * j < 1)",
                                                               "(i + 4 * j >= 1)")
    last = 4 * S("n", integer=True, nonnegative=True) - 1       # the greatest value
    assert p.branch_masks(P.If(lin, last, ())) == ("(i + 4 * j >= 4 * n - 1)",
                                                   "(i + 4 * j < 4 * n - 1)")
    assert p.branch_masks(P.If(lin, sympy.Integer(1), ())) is None     # a middle value
    assert p.branch_masks(P.If(lin, last - 1, ())) is None
    assert p.branch_masks(P.If(S("i"), sympy.Integer(3), (), (), P.Cmp.LT)) is None
    t = P.Ref("t", (P.Slice(0, 128), P.Slice(0, 64)))
    sel = AffineSelect(t, t, "equal", S("i"), sympy.Integer(0), sympy.Integer(0),
                       sympy.Integer(128), sympy.Integer(64), sympy.Float(0.0))
    guards, (copy, fill) = p.loop_select(sel)
    assert guards == ("(i < 1)", "(i >= 1)")
    assert isinstance(copy, P.TensorCopy) and isinstance(fill, P.Memset)
    assert p.loop_select(replace(sel, pcoef=sympy.Integer(1))) is None   # a lane term


def test_parity_branch_becomes_a_loop_over_index_pairs():
    """``if i % 2 == 0`` in a loop of an even (full) trip count: a loop over index pairs, even
    body then odd body; an odd count, or a branch on another parity, is left alone."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import _Pass
    S = sympy.Symbol
    t = P.Ref("t", (P.Slice(0, 128), P.Index(S("i"))))
    even, odd = P.Memset(t, sympy.Float(0.0)), P.Memset(t, sympy.Float(1.0))
    loop = P.Loop("i", sympy.Integer(16), P.LoopKind.PARALLEL,
                  (P.If(sympy.Mod(S("i"), 2), sympy.Integer(0), (even,), (odd,)),))
    got = _Pass().parity_pairs(loop)
    assert got is not None and got.var == "i_pair" and got.count == 8
    assert got.body == (P.Let("i", 2 * S("i_pair")), even, P.Let("i", 2 * S("i_pair") + 1), odd)
    assert _Pass().parity_pairs(replace(loop, count=sympy.Integer(15))) is None   # odd count
    three = P.If(sympy.Mod(S("i"), 3), sympy.Integer(0), (even,), (odd,))
    assert _Pass().parity_pairs(replace(loop, body=(three,))) is None


def test_floor_and_mod_of_an_index_become_two_nested_loops():
    """A loop over c * d blocks read only as i // d and i % d: outer loop over i // d (c
    iterations), inner over i % d (d); any other use of i keeps the loop as it is."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import _Pass
    i = sympy.Symbol("blk", integer=True, nonnegative=True)
    d, c = sympy.Symbol("nbw"), sympy.Symbol("nbh")
    body = (P.Let("h0", sympy.floor(i / d) * 4), P.Let("w0", sympy.Mod(i, d) * 512))
    loop = P.Loop("blk", d * c, P.LoopKind.PARALLEL, body)
    got = _Pass().delinearize(loop)
    assert got is not None and (got.var, got.count) == ("blk_hi", c)
    inner = got.body[0]
    assert isinstance(inner, P.Loop) and (inner.var, inner.count) == ("blk_lo", d)
    assert [str(x.value) for x in inner.body] == ["4*blk_hi", "512*blk_lo"]
    assert _Pass().delinearize(replace(loop, body=body + (P.Let("z", i),))) is None
    assert _Pass().delinearize(replace(loop, count=d * c + 1)) is None


def test_loop_count_of_a_ragged_block_is_bounded_by_the_tensor():
    """The row-tile loop of a 2048-row block of M rows runs ceil(min(2048, M) / 128) times:
    no iteration its mask would empty when M < 2048; the tiles are still masked at M."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import _Pass
    S = sympy.Symbol
    M = S("M", integer=True, positive=True)
    p = _Pass()
    out = p.nodes((P.Loop("rb", sympy.ceiling(M / 2048), P.LoopKind.PARALLEL, (
        P.Let("rsz", sympy.Min(2048, M - 2048 * S("rb"))),
        P.Loop("rt", sympy.ceiling(S("rsz") / 128), P.LoopKind.PARALLEL, ()),)),))
    inner = out[0].body[0]
    assert inner.count == sympy.ceiling(sympy.Min(2048, M) / 128)
    # an index with a positive coefficient and no numeric count: the full tile
    q = _Pass()
    out = q.nodes((P.Loop("rb", sympy.ceiling(M / 2048), P.LoopKind.PARALLEL, (
        P.Let("rsz", sympy.Min(2048, M + 2048 * S("rb"))),
        P.Loop("rt", sympy.ceiling(S("rsz") / 128), P.LoopKind.PARALLEL, ()),)),))
    assert out[0].body[0].count == 16


def test_three_axis_tiles_and_trace_time_block_sizes_are_masked():
    """avgpool2x2's [channels, nb rows, OW] tiles, nb a size the kernel computes from the
    shapes: full nb-row tiles with one nl.arange axis per tile axis in the mask; conv2d's
    [CO, rows, cols] matmul has only loop-index predicates (no lane term: its result is
    clipped where evicted and stored)."""
    pool = generate(load_spec(Path(__file__).parent.parent / "specs" / "avgpool2x2.yaml"),
                    dialect="neuronxcc")
    assert "for ib in nl.affine_range(-(-OH // nb)):" in pool
    assert "(i0 + nl.arange(nb)[None, :, None] < OH)" in pool
    assert "(c0 + nl.arange(TILE_P)[:, None, None] < C)" in pool     # TILE_P = pmax
    conv = generate(load_spec(Path(__file__).parent.parent / "specs" / "conv2d.yaml"),
                    dialect="neuronxcc")
    mm = [ln for ln in conv.splitlines() if "nisa.nc_matmul(" in ln]
    assert mm and all(ln.endswith("mask=(co0 < CO) & (TILE_K * cit1 < CI))") for ln in mm)
    # the output-column blocks are peeled (their width is the matmul's moving size): the last
    # one is a call with its trace-time width, no mask on OW
    assert "        wsz = min(wb, OW - w0)\n" in conv and "< OW)" not in conv


def test_peeled_loops_never_run_zero_trips():
    """review12 F2: a peeled loop's full iterations (trip count - 1) are 0 when the loop has one
    iteration (K <= BLOCK_K); no documented kernel runs nl.affine_range(0) /
    nl.sequential_range(0), so the loop is guarded by a trace-time ``if 0 < count:`` (a count
    of input sizes) or dropped (a count known to be 0)."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.ahead import _full_loop
    loop = P.Loop("kb", sympy.Integer(0), P.LoopKind.SEQUENTIAL, ())
    assert _full_loop(loop) == []                                   # 0 trips: no loop
    one = replace(loop, count=sympy.Integer(1))
    assert _full_loop(one) == [one]                                 # 1 trip: the loop
    K = sympy.Symbol("K", integer=True, positive=True)
    sym = replace(loop, count=sympy.ceiling(K / 1024) - 1)
    (guard,) = _full_loop(sym)
    assert isinstance(guard, P.If) and guard.cmp is P.Cmp.LT and guard.then == (sym,)
    assert guard.lhs == 0 and guard.rhs == sym.count
    for path in SPECS:
        lines = shipped.source(path, "neuronxcc").splitlines()
        for i, ln in enumerate(lines):
            m = re.search(r"for \w+ in nl\.(?:affine|sequential)_range\((.*) - 1\):$", ln)
            if m:
                assert lines[i - 1].strip() == f"if 0 < {m.group(1)} - 1:", (path.stem, ln)
    src = shipped.source("matmul_bf16", "neuronxcc")
    assert "    if 0 < -(-K // BLOCK_K) - 1:\n        for kb in nl.sequential_range(" in src
    # K = 128 <= BLOCK_K: the guard skips the loop at trace time, the last call does the
    # block; K = 2048: two blocks, the loop runs once (both against the float64 reference)
    spec = shipped.spec("matmul_bf16")
    for k in (128, 2048):
        check_case(spec, {"M": 128, "K": k, "N": 512}, src=src)
