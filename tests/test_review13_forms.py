"""Review 13 (docs/review-kernels-13.md): the forms of the last session's classic residues, period
copies, merged outputs and cliff lowerings, read against the docs.

R13-1: the classic pixel shuffle (codegen/shuffle.py, ``[P, rows, run]`` tiles: three-pair
access patterns) read and wrote HBM through the flattened 1-D view
``x.reshape((math.prod(x.shape),))[a + s * nl.arange(P)[:, None, None] + ...]``, which no
classic document shows (review 8 R8-6, review 9 R9-8); codegen/classic_index.py
``_multi_axis`` gives it one ``nl.arange`` expression per axis.
R13-2: the shuffle's on-chip copies of integer data named no engine; ScalarE copies through
float32 (S25 / SH ``tensor_copy``), so an int32 beyond 2**24 could round; they name VectorE.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402
from test_classic_views import mixed_flat_views  # noqa: E402

from nkigen.codegen import classic_index as CI  # noqa: E402
from nkigen.codegen import plan as P  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402

PS5 = """nkigen: 1
name: ps5
doc: pixel shuffle with mixed output dims
sizes: {C: {min: 1, max: 256}, H: {min: 1, max: 64}, W: {min: 1, max: 64}, C4: {value: "4 * C"}}
inputs: {x: {shape: [C4, H, W], dtype: DT}}
outputs: {y: {shape: [C, H, 2, W, 2], dtype: DT}}
compute:
  - y[c, h, a, w, b] = x[4 * c + 2 * a + b, h, w]
"""

PS4 = """nkigen: 1
name: ps4
doc: interleave 4 planes along the last axis
sizes: {H: {min: 1, max: 300}, W: {min: 1, max: 64}}
inputs: {x: {shape: [4, H, W], dtype: DT}}
outputs: {y: {shape: [H, W, 4], dtype: DT}}
compute:
  - y[h, w, b] = x[b, h, w]
"""

CLASSIC = [("neuronxcc", "trn2"), ("neuronxcc", "trn1")]
ALL4 = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]


# ---- R13-1 ------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect,target", CLASSIC)
@pytest.mark.parametrize("dt", ["float32", "bfloat16"])
def test_classic_pixel_shuffle_indexes_hbm_per_axis(dialect, target, dt):
    spec = load_spec_text(PS5.replace("DT", dt))
    src = generate(spec, target=target, dialect=dialect)
    assert "math.prod" not in src
    assert mixed_flat_views(src) == []
    # the read: x's own axes, the partition index stepping by 4 (one load per digit pair)
    assert "src=x[4 * c0 + 3 + 4 * i_p, h0 + i_f1, i_f2_w]" in src, src
    # the write: y viewed as (C, H, 2 * W * 2), one index per axis
    assert "y.reshape((y.shape[0], y.shape[1], y.shape[2] * y.shape[3] * y.shape[4]))" \
        "[c0 + i_p, h0 + i_f1, i_f2_4_w]" in src, src
    for sizes in ({"C": 1, "H": 1, "W": 1}, {"C": 3, "H": 5, "W": 7},
                  {"C": 130, "H": 3, "W": 40}, {"C": 2, "H": 64, "W": 33}):
        check_case(spec, sizes, target=target, src=src)


def _ap(offset, pattern):
    return P.ApRef("x", sympy.sympify(offset),
                   tuple((sympy.sympify(s), sympy.sympify(n)) for s, n in pattern))


def test_multi_axis_view_at_its_boundaries():
    C, H, W, c0, h0, nb = sympy.symbols("C H W c0 h0 nb", integer=True, positive=True)
    x4 = (4 * C, H, W)
    # the shuffle's read: partition step 4 * H * W = 4 x the (H, W) plane, rows step W, run 1
    v = CI.as_view(_ap(H * W + W * h0 + 4 * H * W * c0,
                       [(4 * H * W, 128), (W, nb), (1, W)]), x4)
    assert v.view == ()                             # x's own axes
    assert v.dims == (P.Slice(4 * c0 + 1, 128, 4), P.Slice(h0, nb), P.Slice(0, W))
    # the write: y (C, H, 2, W, 2) as (C, H, 4 W)
    y5 = (C, H, 2, W, 2)
    v = CI.as_view(_ap(4 * W * h0 + 4 * H * W * c0, [(4 * H * W, 128), (4 * W, nb), (1, 4 * W)]),
                   y5)
    assert v.view == ((0,), (1,), (2, 3, 4))
    assert v.dims == (P.Slice(c0, 128), P.Slice(h0, nb), P.Slice(0, 4 * W))
    # a free step of 2 on the innermost axis (the last legal step is below its extent)
    v = CI.as_view(_ap(0, [(2 * W, 128), (W, 2), (2, W // 2)]), (C, 2, W))
    assert v is None or v.dims[2].step == 2
    v = CI.as_view(_ap(0, [(12, 128), (4, 3), (2, 2)]), (8, 3, 4))
    assert v is not None and v.dims == (P.Slice(0, 128), P.Slice(0, 3), P.Slice(0, 2, 2))
    assert CI.as_view(_ap(0, [(12, 128), (4, 3), (4, 2)]), (8, 3, 4)) is None   # step = extent
    # a middle step that is no trailing product (W + 1), a broadcast (step 0), a reversed axis
    assert CI.as_view(_ap(0, [(4 * H * W, 128), (W + 1, nb), (1, W)]), x4) is None
    assert CI.as_view(_ap(0, [(0, 128), (W, nb), (1, W)]), x4) is None
    assert CI.as_view(_ap(H * W - W, [(H * W, 128), (-W, nb), (1, W)]), x4) is None
    # more pairs than dims: no view (the flat form stays)
    assert CI.as_view(_ap(0, [(C, 2), (1, 4), (1, 1)]), (sympy.Symbol("M"), C)) is None


# ---- R13-2 ------------------------------------------------------------------------------
def _copies(src: str) -> list[str]:
    return [ln for ln in src.splitlines() if "tensor_copy(" in ln]


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("text,sizes", [(PS4, {"H": 130, "W": 5}),
                                        (PS5, {"C": 3, "H": 2, "W": 5})], ids=["ps4", "ps5"])
def test_integer_shuffle_copies_run_on_vector_engine_and_are_exact(dialect, target, text, sizes):
    import nkigen.sim as sim
    from nkigen.reference import evaluate
    from nkigen.testdata import make_inputs

    spec = load_spec_text(text.replace("DT", "int32"))
    src = generate(spec, target=target, dialect=dialect)
    eng = "nisa.engine.vector" if dialect == "nki" else "nisa.vector_engine"
    copies = _copies(src)
    assert copies and all(f"engine={eng}" in ln for ln in copies), copies
    inputs = make_inputs(spec, sizes)
    x = inputs["x"]
    # 2**24 + 1 is the first int32 float32 cannot hold
    inputs["x"] = (2 ** 24 + 1 + np.arange(x.size, dtype=np.int64) * 7919 % (2 ** 30)) \
        .astype(np.int32).reshape(x.shape)
    got = sim.simulate(load_source(src, spec.name), target)(*inputs.values())
    want = evaluate(spec, inputs, sizes)["y"]
    assert np.array_equal(np.asarray(got, dtype=np.int64), want.astype(np.int64))


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_float_shuffle_copies_keep_the_compilers_engine(dialect):
    src = generate(load_spec_text(PS4.replace("DT", "float32")), target="trn2", dialect=dialect)
    copies = _copies(src)
    assert copies and not any(re.search(r"engine=", ln) for ln in copies), copies


# ---- R13-3 ------------------------------------------------------------------------------
def _rows_spec(name: str, stmt: str, dtype: str, extra: str) -> str:
    return f"""nkigen: 1
name: {name}
doc: d
sizes:
  M: {{min: 1, max: 4096}}
  N: {{min: 1, max: 4096}}
inputs:
  x: {{shape: [M, N], dtype: {dtype}}}
{extra}outputs:
  y: {{shape: [M, N], dtype: {dtype}}}
compute:
  - {stmt}
"""


PERIOD = _rows_spec("period", "y[m, n] = x[m, n] * w[n % 3]", "float32",
                    "  w: {shape: [3], dtype: float32}\n")
PERIOD_BF16 = _rows_spec("period_bf16", "y[m, n] = x[m, n] * w[n % 3]", "bfloat16",
                         "  w: {shape: [3], dtype: bfloat16}\n")
PERIOD_ROW = _rows_spec("period_row", "y[m, n] = x[m, n] * w[m, n % 3]", "float32",
                        "  w: {shape: [M, 3], dtype: float32}\n")


def _latency(src: str, name: str, shapes, dtype: str, target: str) -> float:
    import nkigen.sim as sim
    kernel = load_source(src, name)
    return sim.run(kernel, [sim.placeholder(s, dtype) for s in shapes], target=target,
                   numerics=False).report.latency_us


@pytest.mark.parametrize("target", ["trn2", "trn1"])
@pytest.mark.parametrize("text", [PERIOD, PERIOD_BF16], ids=["fp32", "bf16"])
def test_classic_period_expansion_is_built_once_before_the_tile_loops(target, text):
    spec = load_spec_text(text)
    src = generate(spec, target=target, dialect="neuronxcc")
    body = src[src.index(f"def _{spec.name}_stage0"):]
    loop = body.index("for pt in")
    assert body.index("nisa.memset(") < loop and body.rindex("reverse0=True") < loop, body
    # only the periods the row has (a 1 x 1 input pays for one period: 3.47 us, as before)
    assert re.search(r"fszc\w* = min\(\d+, -\(-N // 3\)\)", body[:loop]), body
    for sizes in ({"M": 1, "N": 1}, {"M": 130, "N": 300}, {"M": 3, "N": 2050},
                  {"M": 129, "N": 4096}):
        check_case(spec, sizes, target=target, src=src)
    # before (per tile: a memset and c residue copies beside the product): 168.30 us (trn2),
    # 145.52 us (trn1) fp32, 95.67 us (bf16, trn1) at 1024 x 4096; after 123.67 / 115.24 /
    # 54.72 us, within 1.1 x of the current API's stride-0 copy (121.58 / 112.97 us fp32)
    dt = spec.tensor("x").dtype.value
    shapes = [(1024, 4096), (3,)]
    classic = _latency(src, spec.name, shapes, dt, target)
    current = _latency(generate(spec, target=target, dialect="nki"), spec.name, shapes, dt,
                       target)
    assert classic < 1.1 * current, (classic, current)


def test_a_per_row_period_keeps_its_per_tile_expansion():
    # the boundary: w[m, n % 3] depends on the row tile, so its load is not hoisted and the
    # expansion stays inside the loops (under the tile's masks)
    spec = load_spec_text(PERIOD_ROW)
    src = generate(spec, target="trn2", dialect="neuronxcc")
    body = src[src.index("def _period_row_stage0"):]
    assert body.index("for pt in") < body.index("nisa.memset(")
    for sizes in ({"M": 1, "N": 1}, {"M": 130, "N": 2050}):
        check_case(spec, sizes, target="trn2", src=src)


# ---- R13-1 / R13-4: the simulator's rule -----------------------------------------------------
FLAT_SRC = """
from neuronxcc import nki
import math
import neuronxcc.nki.language as nl
import neuronxcc.nki.isa as nisa


@nki.jit
def flat(x):
    out = nl.ndarray((4, 6), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((4, 6), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t[0:4, 0:6], src=x.reshape((math.prod(x.shape),))[
        6 * nl.arange(4)[:, None] + 1 * nl.arange(6)[None, :]])
    nisa.dma_copy(dst=out[nl.arange(4)[:, None], nl.arange(6)[None, :]], src=t[0:4, 0:6])
    return out


@nki.jit
def axes(x):
    out = nl.ndarray((4, 6), dtype=x.dtype, buffer=nl.shared_hbm)
    t = nl.ndarray((4, 6), dtype=x.dtype, buffer=nl.sbuf)
    nisa.dma_copy(dst=t[0:4, 0:6], src=x.reshape((4, 6))[nl.arange(4)[:, None],
                                                         nl.arange(6)[None, :]])
    nisa.dma_copy(dst=out[nl.arange(4)[:, None], nl.arange(6)[None, :]], src=t[0:4, 0:6])
    return out
"""


def test_a_flat_hbm_view_is_warned_in_both_profiles():
    import types

    import nkigen.sim as sim
    from nkigen.sim.classic import forms

    mod = types.ModuleType("_r13_flat")
    with sim.installed():
        exec(compile(FLAT_SRC, "<r13 flat>", "exec"), mod.__dict__)
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    for prof in (forms.USER, forms.GENERATED):
        with forms.profile(prof):
            got = sim.run(mod.flat, [x], target="trn2")
            assert np.array_equal(np.asarray(got.outputs[0]), x.reshape(4, 6))
            assert any("index.flat-view" in w for w in got.warnings), got.warnings
            # the per-axis view of the same elements: no warning
            ok = sim.run(mod.axes, [x], target="trn2")
            assert not any("index.flat-view" in w for w in ok.warnings), ok.warnings
    assert "index.flat-view" in forms.WARN_ONLY
    assert "index.flat-view" not in forms.GENERATED_ERRORS


@pytest.mark.parametrize("text,sizes,flat", [
    (PS5.replace("DT", "float32"), {"C": 3, "H": 5, "W": 7}, False),
    ("""nkigen: 1
name: channels_last
doc: planes to channels-last
sizes: {B: {min: 1, max: 9}, H: {min: 1, max: 256}, W: {min: 1, max: 256}}
inputs: {x: {shape: [B, H, W], dtype: float32}}
outputs: {y: {shape: [H, W, B], dtype: float32}}
compute:
  - y[h, w, b] = x[b, h, w]
""", {"B": 9, "H": 5, "W": 7}, True),
], ids=["pixel_shuffle", "channels_last"])
def test_which_generated_classic_kernels_still_take_the_flat_view(text, sizes, flat):
    # R13-1 fixed the shuffle; channels_last (a partition step W below the free step H * W)
    # has no per-axis view with the partition index first: R13-4, open
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs

    spec = load_spec_text(text)
    src = generate(spec, target="trn2", dialect="neuronxcc")
    inputs = make_inputs(spec, sizes)
    got = sim.run(load_source(src, spec.name), list(inputs.values()), target="trn2")
    assert any("index.flat-view" in w for w in got.warnings) is flat, got.warnings


BATCHED_PERIODS = """nkigen: 1
name: bper
doc: d
sizes:
  B: {min: 1, max: 4}
  M: {min: 1, max: 300}
  N: {min: 1, max: 3000}
inputs:
  x: {shape: [B, M, N], dtype: float32}
  w: {shape: [B, 3], dtype: float32}
  v: {shape: [3], dtype: bfloat16}
outputs:
  y: {shape: [B, M, N], dtype: float32}
compute:
  - y[b, m, n] = x[b, m, n] * w[b, n % 3] + v[n % 3]
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_a_batch_dependent_period_is_expanded_inside_its_batch_loop(dialect, target):
    # w[b, n % 3] is loaded once per b (inside the group's outer loop); its classic expansion
    # reads that tile, so it goes inside the same loop (codegen/rows.py _dependents: a hoisted
    # node reading a tile written from an outer index stays inside, transitively), while
    # v[n % 3]'s goes before every loop
    spec = load_spec_text(BATCHED_PERIODS)
    src = generate(spec, target=target, dialect=dialect)
    if dialect == "neuronxcc":
        body = src[src.index("def _bper_stage0"):]
        outer = body.index("for i_b in")
        assert body.index("v_t_e[0:TILE_P, 0:FREE_TILE] = nisa.memset(") < outer
        assert outer < body.index("w_t_e[0:TILE_P, 0:FREE_TILE] = nisa.memset(") \
            < body.index("for pt in")
    for sizes in ({"B": 1, "M": 1, "N": 1}, {"B": 3, "M": 130, "N": 2050}):
        check_case(spec, sizes, target=target, src=src)


# ---- R13-6 ------------------------------------------------------------------------------
DW_BIAS = """nkigen: 1
name: dw
doc: depthwise 3x3 convolution with a per-channel bias and an activation
sizes:
  C: {min: 1, max: 1024}
  H: {min: 3, max: 256}
  W: {min: 3, max: 256}
  OH: {value: "H - 2"}
  OW: {value: "W - 2"}
inputs:
  x: {shape: [C, H, W], dtype: float32}
  k: {shape: [C, 3, 3], dtype: bfloat16}
  bias: {shape: [C], dtype: float32}
outputs:
  y: {shape: [C, OH, OW], dtype: float32}
ranges: {r: 3, s: 3}
compute:
  - y[c, h, w] = RHS
"""


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("rhs,fused", [
    ("relu(sum(k[c, r, s] * x[c, h + r, w + s], r, s) + bias[c])", True),
    ("sigmoid(bias[c] + sum(k[c, r, s] * x[c, h + r, w + s], r, s))", True),
    # the boundary: a subtracted column is not a bias (the add stays a VectorE instruction)
    ("relu(sum(k[c, r, s] * x[c, h + r, w + s], r, s) - bias[c])", False),
], ids=["relu_add", "sigmoid_add_first", "relu_sub"])
def test_depthwise_bias_rides_on_the_activation(dialect, target, rhs, fused):
    spec = load_spec_text(DW_BIAS.replace("RHS", rhs))
    src = generate(spec, target=target, dialect=dialect)
    assert ("bias=bias_cols[" in src) is fused, src
    assert ("operand0=bias_cols[" in src) is not fused, src
    for sizes in ({"C": 1, "H": 3, "W": 3}, {"C": 130, "H": 10, "W": 12}):
        check_case(spec, sizes, target=target, src=src)


def test_depthwise_bias_fusion_saves_the_vector_add():
    # C 128, H = W = 64, bf16 filter: 87.09 -> 82.67 us (nki trn2), 76.79 -> 73.00 us
    # (neuronxcc trn1)
    spec = load_spec_text(DW_BIAS.replace(
        "RHS", "relu(sum(k[c, r, s] * x[c, h + r, w + s], r, s) + bias[c])"))
    for dialect, target, bound in (("nki", "trn2", 85.0), ("neuronxcc", "trn1", 75.0)):
        import nkigen.sim as sim
        kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
        ph = [sim.placeholder((128, 64, 64), "float32"), sim.placeholder((128, 3, 3), "bfloat16"),
              sim.placeholder((128,), "float32")]
        got = sim.run(kernel, ph, target=target, numerics=False).report.latency_us
        assert got < bound, (dialect, target, got)
