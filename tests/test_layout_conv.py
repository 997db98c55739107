"""Layout-aware lowering (issue 14 item 2): contiguous row loads with strided SBUF views for
strided reads (nkigen.codegen.coalesce), the partition choice of rank-3 row statements
(nkigen.codegen.layout) and convolutions as implicit GEMM on TensorE (nkigen.codegen.conv)."""

from __future__ import annotations

from pathlib import Path

import pytest
from codegen_check import check_case, load_source

from nkigen.analysis import analyze
from nkigen.codegen import coalesce, conv, generate
from nkigen.codegen import plan as P
from nkigen.codegen.planner import plan_kernel
from nkigen.frontend import load_spec, load_spec_text

SPECS = Path(__file__).resolve().parent.parent / "specs"


def spec(name: str):
    return load_spec(SPECS / f"{name}.yaml")


def walk(nodes):
    for n in nodes:
        yield n
        if isinstance(n, P.Loop):
            yield from walk(n.body)
        elif isinstance(n, P.If):
            yield from walk(n.then)
            yield from walk(n.orelse)


def strided_spec(step: int, dtype: str = "float32") -> str:
    return f"""nkigen: 1
name: stride{step}
doc: every {step}-th element
sizes:
  M: {{min: 1, max: 256}}
  O: {{min: 1, max: 256}}
  W: {{value: "{step} * O"}}
inputs:
  x: {{shape: [M, W], dtype: {dtype}}}
outputs:
  y: {{shape: [M, O], dtype: {dtype}}}
compute:
  - y[m, o] = x[m, {step} * o] * 2.0
tests:
  cases:
    - {{M: 3, O: 5}}
"""


def window_spec(extent: int) -> str:
    return f"""nkigen: 1
name: win{extent}
doc: sliding window sum
sizes:
  M: {{min: 1, max: 256}}
  W: {{min: {extent}, max: 512}}
  O: {{value: "W - {extent} + 1"}}
inputs:
  x: {{shape: [M, W], dtype: float32}}
outputs:
  y: {{shape: [M, O], dtype: float32}}
ranges:
  r: {extent}
compute:
  - y[m, o] = sum(x[m, o + r], r)
tests:
  cases:
    - {{M: 3, W: {extent + 4}}}
"""


def dmas(sp, dialect="nki"):
    plan = plan_kernel(sp, analyze(sp), "trn2", None, dialect)
    return plan, [n for n in walk(plan.body) if isinstance(n, P.Dma)]


def element_strided_loads(sp) -> list:
    _, ds = dmas(sp)
    return [d for d in ds if isinstance(d.src, P.ApRef)
            and any(sympy_int(s) not in (0, 1) for s, _ in d.src.pattern[1:])]


def sympy_int(e) -> int | None:
    import sympy
    e = sympy.sympify(e)
    return int(e) if e.is_Integer else None


# ---- coalesced strided reads ------------------------------------------------------------

@pytest.mark.parametrize("name", ["maxpool1d", "avgpool2_rows"])
def test_pooling_loads_contiguous_rows(name):
    sp = spec(name)
    assert element_strided_loads(sp) == []
    _, ds = dmas(sp)
    views = [d for d in ds if isinstance(d.src, P.ApRef) and d.src.name == "x"]
    assert views and all(sympy_int(d.src.pattern[-1][0]) == 1 for d in views)
    src = generate(sp)
    assert ":2]" in src             # the taps are stride-2 SBUF views


def test_maxpool_taps_share_one_load():
    _, ds = dmas(spec("maxpool1d"))
    x_loads = {d.src.offset for d in ds if isinstance(d.src, P.ApRef) and d.src.name == "x"}
    # one prologue load + one prefetch load (the same expression at the next tile)
    assert len(x_loads) == 2


@pytest.mark.parametrize("extent", [3, 8])
def test_sliding_window_taps_share_one_load(extent):
    # stride-1 taps at constant offsets (x[m, o + r]) share one contiguous load of
    # fsz + extent - 1 elements (the window is unrolled up to UNROLL_MAX taps)
    sp = load_spec_text(window_spec(extent))
    _, ds = dmas(sp)
    x_loads = [d for d in ds if getattr(d.src, "name", None) == "x"]
    per_tile = len(x_loads) // 2          # the prologue load and the prefetch of the next tile
    assert per_tile == 1
    assert all(isinstance(d.src, P.ApRef) and str(d.src.pattern[1][1]).endswith(
        f"+ {extent - 1}") for d in x_loads)
    check_case(sp, {"M": 3, "W": extent + 4})


@pytest.mark.parametrize("step,coalesced", [(4, True), (5, False)])
def test_gap_limit_boundary(step, coalesced, monkeypatch):
    # MAX_GAP_BYTES = 16: a 4-element fp32 stride (16 B) is loaded contiguously, 5 is not
    assert coalesce.MAX_GAP_BYTES == 16
    monkeypatch.setattr(coalesce, "MAX_TILE_BYTES", 1 << 30)
    sp = load_spec_text(strided_spec(step))
    assert (element_strided_loads(sp) == []) is coalesced
    check_case(sp, {"M": 3, "O": 5})


@pytest.mark.parametrize("extent,unrolled", [(8, True), (9, False)])
def test_unroll_limit_boundary(extent, unrolled):
    assert coalesce.UNROLL_MAX == 8
    sp = load_spec_text(window_spec(extent))
    plan, _ = dmas(sp)
    loops = [n for n in walk(plan.body) if isinstance(n, P.Loop) and n.var.startswith("i_r")]
    assert (loops == []) is unrolled
    check_case(sp, {"M": 3, "W": extent + 4})


def offset_spec(o_max: int) -> str:
    return f"""nkigen: 1
name: far_taps
doc: two taps O apart
sizes:
  M: {{min: 1, max: 256}}
  O: {{min: 1, max: {o_max}}}
  W: {{value: "3 * O"}}
inputs:
  x: {{shape: [M, W], dtype: float32}}
outputs:
  y: {{shape: [M, O], dtype: float32}}
compute:
  - y[m, o] = x[m, 2 * o] + x[m, 2 * o + O]
tests:
  cases:
    - {{M: 3, O: 5}}
"""


@pytest.mark.parametrize("o_max,coalesced", [(4097, True), (4098, False)])
def test_tile_budget_boundary(o_max, coalesced):
    # MAX_TILE_BYTES = 32 KiB at the largest sizes: the tile holds O + 2 * 2047 + 1 fp32 elements
    # per row (both taps of a 2048-output chunk, O apart)
    assert coalesce.MAX_TILE_BYTES == 32 * 1024
    sp = load_spec_text(offset_spec(o_max))
    assert (element_strided_loads(sp) == []) is coalesced
    check_case(sp, {"M": 3, "O": 5})


# ---- 2-D plane tiles ----------------------------------------------------------------------

POOL_STMT = ("  - y[c, i, j] = (x[c, 2 * i, 2 * j] + x[c, 2 * i, 2 * j + 1]"
             " + x[c, 2 * i + 1, 2 * j] + x[c, 2 * i + 1, 2 * j + 1]) * 0.25")
WINDOW_FORMS = {
    "avgpool2x2": None,
    "avgsum": (POOL_STMT, "ranges:\n  a: 2\n  b: 2\ncompute:\n"
                          "  - y[c, i, j] += x[c, 2 * i + a, 2 * j + b] * 0.25"),
    "maxpool3x3": (POOL_STMT, "ranges:\n  a: 3\n  b: 3\ncompute:\n"
                              "  - y[c, i, j] = max(x[c, 2 * i + a, 2 * j + b], a, b) - 1.0"),
}


def window_form(name: str, ow_max: int = 1024) -> str:
    text = (SPECS / "avgpool2x2.yaml").read_text().replace(
        "OW: {min: 1, max: 1024}", f"OW: {{min: 1, max: {ow_max}}}")
    form = WINDOW_FORMS[name]
    if form is not None:
        old, new = form
        text = text.replace("compute:\n" + old, new).replace("name: avgpool2x2", f"name: {name}")
        if name == "maxpool3x3":
            text = text.replace('"2 * OH"', '"2 * OH + 1"').replace('"2 * OW"', '"2 * OW + 1"')
    return text


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("name", sorted(WINDOW_FORMS))
def test_window_forms_use_plane_tiles(name, dialect):
    sp = load_spec_text(window_form(name))
    plan = plan_kernel(sp, analyze(sp), "trn2", None, dialect)
    assert plan.stages[0].strategy == "planes" and plan.stages[0].partition == "c"
    ds = [n for n in walk(plan.body) if isinstance(n, P.Dma)]
    assert len(ds) == 2                       # one whole-rows load, one store per block
    assert all(isinstance(d.src, P.Ref) and isinstance(d.dst, P.Ref) for d in ds)
    last = ds[0].src.dims[-1]                 # whole input rows: contiguous per channel
    assert last.start == 0 and last.step == 1 and str(last.size) == "W"
    src = generate(sp, dialect=dialect)
    for case in ({"C": 130, "OH": 5, "OW": 7}, {"C": 3, "OH": 40, "OW": 30}):
        check_case(sp, case, src=src)


@pytest.mark.parametrize("ow_max,planes", [(2048, True), (2049, False)])
def test_plane_block_budget_boundary(ow_max, planes):
    # BLOCK_BYTES = 64 KiB at the largest sizes: one output row's block holds 2 + 2 input rows
    # of W = 2 * OW fp32 elements (the next block row included)
    from nkigen.codegen import planes as PL
    assert PL.BLOCK_BYTES == 64 * 1024
    sp = load_spec_text(window_form("avgpool2x2", ow_max))
    plan = plan_kernel(sp, analyze(sp), "trn2")
    assert (plan.stages[0].strategy == "planes") is planes
    check_case(sp, {"C": 3, "OH": 3, "OW": 5})


# ---- partition choice ---------------------------------------------------------------------

def test_pooling_puts_channels_on_partitions():
    plan = plan_kernel(spec("avgpool2x2"), analyze(spec("avgpool2x2")), "trn2")
    assert plan.stages[0].partition == "c"


def test_partition_follows_the_sizes():
    text = (SPECS / "avgpool2x2.yaml").read_text()
    cases = text[text.index("  cases:"):]
    tall = text.replace(cases, "  cases:\n    - {C: 4, OH: 256, OW: 8}\n")
    sp = load_spec_text(tall)
    plan = plan_kernel(sp, analyze(sp), "trn2")
    assert plan.stages[0].partition == "i"          # 2 row tiles x 4 channels, not 256
    check_case(sp, {"C": 4, "OH": 256, "OW": 8})


# ---- implicit GEMM ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["conv2d", "conv1d"])
def test_conv_is_implicit_gemm(name):
    sp = spec(name)
    plan = plan_kernel(sp, analyze(sp), "trn2")
    assert plan.stages[0].strategy == "implicit-gemm"
    nodes = list(walk(plan.body))
    mms = [n for n in nodes if isinstance(n, P.Matmul)]
    assert mms and not any(isinstance(n, P.TensorTensor) for n in nodes)
    taps = 9 if name == "conv2d" else 3
    assert len(mms) == taps                   # one matmul per tap, in one PSUM tile
    assert len({m.dst for m in mms}) == 1
    assert element_strided_loads(sp) == []


def test_conv_window_limit():
    # MAX_TAPS = 64: an 8 x 8 filter is implicit GEMM, a 9 x 8 one is not (CI up to 128, so
    # the turned filter, 64 taps x 128 output channels, fits the SBUF budget)
    assert conv.MAX_TAPS == 64

    def text(r: int, s: int) -> str:
        return (SPECS / "conv2d.yaml").read_text().replace("r: 3", f"r: {r}").replace(
            "s: 3", f"s: {s}").replace("[CO, CI, 3, 3]", f"[CO, CI, {r}, {s}]").replace(
            '"H - 2"', f'"H - {r - 1}"').replace('"W - 2"', f'"W - {s - 1}"').replace(
            "H: {min: 3", f"H: {{min: {r}").replace("W: {min: 3", f"W: {{min: {s}").replace(
            "{CI: 3, CO: 5, H: 3, W: 3}", "{CI: 3, CO: 5, H: 9, W: 9}").replace(
            "CI: {min: 1, max: 512}", "CI: {min: 1, max: 128}").replace(
            "CI: 130", "CI: 100").replace("{CI: 3, CO: 130, H: 5, W: 6}",
                                          "{CI: 3, CO: 130, H: 9, W: 9}")

    for (r, s), want in (((8, 8), "implicit-gemm"), ((9, 8), "matmul")):
        sp = load_spec_text(text(r, s))
        plan = plan_kernel(sp, analyze(sp), "trn2")
        assert plan.stages[0].strategy == want


def test_conv2d_hfu_over_half():
    import nkigen.sim as sim
    sp = spec("conv2d")
    kernel = load_source(generate(sp), "conv2d")
    res = sim.run(kernel, (sim.placeholder((128, 34, 34), "float32"),
                           sim.placeholder((128, 128, 3, 3), "float32")), "trn2",
                  numerics=False)
    assert res.report.hfu >= 0.5


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("name", ["conv2d", "avgpool2x2"])
def test_new_specs_match_reference(name, dialect):
    from nkigen.testdata import cases
    sp = spec(name)
    for case in cases(sp):
        check_case(sp, dict(case), src=generate(sp, dialect=dialect))


@pytest.mark.parametrize("name,hoisted", [("conv1d", True), ("conv2d", False)])
def test_conv_filter_kept_for_all_output_tiles_when_it_fits(name, hoisted):
    # conv1d (C <= 128, F <= 512, 3 taps): every turned filter tile fits the budget, so each
    # input block is loaded once for all output-channel tiles; conv2d at CI = CO = 512 with 9
    # taps (295 KB per partition) is not, so the m tiles stay outermost
    sp = spec(name)
    plan = plan_kernel(sp, analyze(sp), "trn2")
    turned = [n for n in walk(plan.body) if isinstance(n, P.Alloc) and n.name.endswith("_T")]
    assert len(turned) == 1 and (len(turned[0].shape) == 5) is hoisted
    assert (turned[0] in plan.body) is hoisted
