"""Classic dialect: the HBM views of masked ragged tiles (codegen/classic_index.py). A view
that can run past its tensor's end at some legal size reads nl.arange index tiles
(``x[p0 + i_p, i_f]``), the form of the docs' ragged example (S25
general/nki/api/nki.api.shared.rst "NKI API Masking"); one that provably stays inside stays a
slice. The shipped kernels are checked in the simulator; the prover and the printing at their
boundaries."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from nkigen import sim
from nkigen.codegen.render import _ops

sys.path.insert(0, str(Path(__file__).parent))
import shipped  # noqa: E402
from codegen_check import load_source  # noqa: E402

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))


def _cases(spec):
    from nkigen.testdata import cases
    return cases(spec)


def _smallest_case(spec) -> dict[str, int]:
    """Each free size at its smallest legal value: every block loop has a ragged (or fully
    masked) last tile, where a slice would run past its tensor's end."""
    return {s.name: -(-max(s.min, 1) // (s.multiple_of or 1)) * (s.multiple_of or 1)
            for s in spec.free_sizes}


class _PastTheEnd:
    """Records each basic slice of an HBM tensor that runs past the tensor's end: the
    simulator's classic indexing accepts one only as an arange index in disguise
    (nkigen/sim/classic/tile.py CTensor.__getitem__ -> _slices_as_index), so that is where
    every such slice passes."""

    def __init__(self, monkeypatch) -> None:
        from nkigen.sim.classic import tile
        self.sites: list[tuple[str, int]] = []
        orig = tile._slices_as_index

        def record(base, key):
            f = sys._getframe(1)
            while f is not None and not f.f_code.co_filename.startswith("<nkigen "):
                f = f.f_back
            self.sites.append((f.f_code.co_filename, f.f_lineno) if f else ("?", 0))
            return orig(base, key)
        monkeypatch.setattr(tile, "_slices_as_index", record)


def test_past_the_end_recorder_sees_a_masked_slice(monkeypatch):
    """The recorder of the test below is live: a masked slice past an HBM tensor's end (legal
    in the simulator, test_classic_sim) is recorded; the same tile read through an nl.arange
    index tile is not."""
    rec = _PastTheEnd(monkeypatch)
    src = '''
from neuronxcc import nki
import neuronxcc.nki.isa as nisa
import neuronxcc.nki.language as nl

@nki.jit
def k(x, arange):
    out = nl.ndarray(x.shape, dtype=x.dtype, buffer=nl.shared_hbm)
    i_p = nl.arange(128)[:, None]
    i_f = nl.arange(x.shape[1])[None, :]
    for t in nl.affine_range((x.shape[0] + 127) // 128):
        v = nl.ndarray((128, x.shape[1]), dtype=x.dtype, buffer=nl.sbuf)
        src = x[128 * t + i_p, i_f] if arange else x[128 * t:128 * t + 128, 0:x.shape[1]]
        nisa.dma_copy(dst=v[0:128, 0:x.shape[1]], src=src, mask=(128 * t + i_p < x.shape[0]))
        nisa.dma_copy(dst=out[128 * t + i_p, i_f], src=v, mask=(128 * t + i_p < x.shape[0]))
    return out
'''
    kern = load_source(src, "k")
    x = np.arange(200 * 3, dtype=np.float32).reshape(200, 3)
    for arange, want in ((True, 0), (False, 1)):
        rec.sites.clear()
        res = sim.run(kern, [x, arange], report=False)
        np.testing.assert_array_equal(res.outputs[0], x)
        assert len(rec.sites) == want, (arange, rec.sites)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_no_hbm_slice_past_the_end(path, monkeypatch):
    """No shipped classic kernel slices an HBM tensor past its end at its test sizes or at its
    smallest legal sizes (every block ragged): a masked ragged tile reads and writes HBM through
    nl.arange index tiles (codegen/classic_index.py), the form of the docs' ragged example (S25
    general/nki/api/nki.api.shared.rst "NKI API Masking"); an index range past the end is legal
    only under a mask (S25 general/nki/api/nki.errors.rst err_tensor_access_out_of_bound).
    Dynamic, so it fails on any such slice the sizes reach: on the kernels of main 9bc70c6 it
    records 120 sites in all 48 specs. SBUF slices past a tile's end are errors in the
    simulator (no fallback), so a passing run rules those out too."""
    from nkigen.testdata import make_inputs
    spec = shipped.spec(path)
    kern = load_source(shipped.source(path, "neuronxcc"), spec.name)
    rec = _PastTheEnd(monkeypatch)
    for case in [*_cases(spec), _smallest_case(spec)]:
        sim.run(kern, list(make_inputs(spec, case).values()), report=False)
    assert not rec.sites, f"{spec.name}: HBM slices past the end at kernel lines " \
        f"{sorted({ln for _, ln in rec.sites})}"


def test_hbm_view_stays_a_slice_exactly_when_it_provably_fits():
    """A masked instruction's HBM view stays a slice only when its end stays inside the tensor
    for every legal size and loop index (the loop ranges and the multiple_of checks); else it
    is an nl.arange index view (LaneRef). Boundaries: the multiple_of that makes the last tile
    whole, and a strided slice's last element at the tensor's last index."""
    import sympy

    from nkigen.codegen import classic_index as CI
    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_mask import Masked

    S, M, N = sympy.Symbol, sympy.Symbol("M", integer=True, positive=True), sympy.Symbol("N")
    par = P.LoopKind.PARALLEL

    def kinds(multiple: int, count, start, size, step=1, shape=(M, N)):
        checks = (P.SizeCheck("M", P.Rule.MULTIPLE_OF, multiple),) if multiple else ()
        x = P.Ref("x", (P.Slice(start, size, sympy.Integer(step)), P.Slice(0, N)))
        body = (P.Loop("p", count, par, (
            P.Let("p0", 128 * S("p")),
            Masked(P.Dma(P.Ref("t", (P.Slice(0, 128), P.Slice(0, N))), x), "m"),)),)
        prove = CI._Prover(checks, (), {"x": shape})
        (loop,) = CI._Pass(prove).nodes(body)
        return type(loop.body[1].node.src).__name__

    tiles = sympy.ceiling(M / 128)
    assert kinds(128, tiles, S("p0"), 128) == "Ref"             # M % 128 == 0: whole tiles
    assert kinds(64, tiles, S("p0"), 128) == "LaneRef"          # M = 64: 0:128 passes M
    assert kinds(0, tiles, S("p0"), 128) == "LaneRef"           # no check: ragged last tile
    assert kinds(128, tiles + 1, S("p0"), 128) == "LaneRef"     # one tile too many
    # a 2048-row block of 16 row tiles, M % 128 == 0 only: the block's tail passes M
    assert kinds(128, sympy.ceiling(M / 2048), 2048 * S("p"), 2048) == "LaneRef"
    assert kinds(2048, sympy.ceiling(M / 2048), 2048 * S("p"), 2048) == "Ref"
    # a strided slice: elements start, start + 2, ..., start + 2 (size - 1)
    assert kinds(128, 1, 0, 64, 2, shape=(128, N)) == "Ref"      # last element 126
    assert kinds(128, 1, 1, 64, 2, shape=(128, N)) == "Ref"      # last element 127
    assert kinds(128, 1, 2, 64, 2, shape=(128, N)) == "LaneRef"  # last element 128
    # an index tile needs the loop's range: no count -> no proof
    assert kinds(128, S("n"), S("p0"), 128) == "LaneRef"


def test_index_tiles_are_defined_once_after_the_sizes_they_read():
    """Each HBM index tile is defined once per function, before the first top-level statement
    that reads it and after a size the function computes first (``nb``); a name the kernel
    already uses is not taken; a strided slice reads ``start + step * i``."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_index import LaneRef
    from nkigen.codegen.classic_mask import Masked
    from nkigen.codegen.render import _body

    S = sympy.Symbol
    t = P.Ref("t", (P.Slice(0, 128), P.Slice(0, 64)))

    def load(rows, step=1):
        x = LaneRef("x", (P.Slice(S("p0"), rows), P.Slice(S("f0"), 64, sympy.Integer(step))))
        return Masked(P.Dma(t, x), "(p0 + nl.arange(128)[:, None] < M)")

    nodes = (load(128), P.Let("nb", S("M") // 2), load(S("nb"), 2), load(128))
    lines = [s.strip() for s in _body(nodes, _ops("neuronxcc"), {"i_f"})]
    defs = [s for s in lines if "= nl.arange(" in s]
    assert defs == ["i_p_128 = nl.arange(128)[:, None]", "i_f_2 = nl.arange(64)[None, :]",
                    "i_p_nb = nl.arange(nb)[:, None]"]
    assert lines.index(defs[2]) > lines.index("nb = M // 2")
    assert "src=x[p0 + i_p_nb, f0 + 2 * i_f_2]" in lines[-2]
    assert "src=x[p0 + i_p_128, f0 + i_f_2]" in lines[-1]
    assert sum(s.startswith("# HBM index tiles") for s in lines) == 1


def test_a_body_rendered_without_index_tiles_spells_them_inline():
    """A LaneRef in a function rendered by plain ``_lines`` (no tiles defined there, e.g. a
    helper another pass adds) reads ``nl.arange`` inline, never a name of another function."""
    import sympy

    from nkigen.codegen import plan as P
    from nkigen.codegen.classic_index import LaneRef
    from nkigen.codegen.classic_mask import Masked
    from nkigen.codegen.render import _body, _lines

    x = LaneRef("x", (P.Slice(sympy.Symbol("p0"), 128), P.Slice(0, 64)))
    node = Masked(P.Dma(P.Ref("t", (P.Slice(0, 128), P.Slice(0, 64))), x), "(p0 < M)")
    ops = _ops("neuronxcc")
    assert any("x[p0 + i_p, i_f]" in s for s in _body((node,), ops, set()))
    (line,) = _lines((node,), ops, 1)
    assert "src=x[p0 + nl.arange(128)[:, None], nl.arange(64)[None, :]]" in line


REVERSED = """nkigen: 1
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
  - y[m, n] = 2.0 * x[m, SHIFT - n]
"""


@pytest.mark.parametrize("shift,sizes", [("N - 1", {"M": 130, "N": 300}),
                                         ("N - 1", {"M": 1, "N": 1}),
                                         ("5", {"M": 3, "N": 6})])
def test_a_reversed_free_axis_reads_inside_the_tensor(shift, sizes, tmp_path):
    # x[m, N - 1 - n] was indexed [p0 + 1 + i_p, -f0 - 1 - i_f] (negative columns) in the
    # classic dialect; now [p0 + i_p, N - f0 - 1 - i_f]. A constant start (5 - n) stays as is.
    from nkigen.codegen import generate
    from nkigen.frontend import load_spec_text
    from nkigen.reference import evaluate
    text = REVERSED.replace("SHIFT", shift)
    if shift == "5":
        text = text.replace("N: {min: 1, max: 2048}", "N: {min: 6, max: 6}")
    spec = load_spec_text(text)
    src = generate(spec, target="trn2", dialect="neuronxcc")
    assert "-f0 - 1" not in src
    kernel = load_source(src, spec.name)
    x = np.random.default_rng(0).standard_normal((sizes["M"], sizes["N"])).astype(np.float32)
    got = sim.simulate(kernel, "trn2")(x)
    assert np.array_equal(np.asarray(got, np.float64), evaluate(spec, {"x": x}, sizes)["y"])
