"""Review 17 (docs/review-kernels-17.md): the forms no earlier review read, pinned against the
documented rules they rely on.

R17-1 swapped reads (codegen/tilexpr.py ``swapped_load``): the partner ``x[m, 2 k + 1 - s]`` of
interleaved RoPE, and RGB -> BGR ``x[m, k, 2 - s]``, are an ascending HBM run and ``c`` VectorE
copies between strided SBUF views. Each view is a free-axis slice with a step, which SH
nki/api/nki/language/__init__.py (NkiTensor ``__getitem__`` "slice with step", ``slice``:
``0 <= start < end <= t.shape[dim]``, ``step >= 1``; nki 0.3) documents; the copies are
same-dtype VectorE copies, bit-accurate (SH ``tensor_copy``).

R17-2 the gathered-weight contraction ``y[t, n] = sum(x[t, k] * w[eid[t], k, n], k)``: the
indirect DMA's leading step is the base tensor's dim-0 stride (SH nki/deep-dives/nki-aps.rst
"Vector Dynamic Access": the hardware scales ``vector_offset`` by that stride and ignores the
pattern's step), and a table gathered along a later dimension is reshaped first.

R17-3 (fixed) the same contraction's ``x[t, k]``, read at the loop index, is one row block
loaded before the loop over k, its column sliced per iteration (codegen/tilexpr.py
``_row_blocks``), not one 4-byte DMA a partition per k.

R17-4 decode16's hoisted broadcast rows (codegen/rows.py ``hoist_rows``): ``w.ap([[0,
min(M, TILE_P)], [1, D]])``, a zero partition step on an HBM pattern (R8-5, R10-3), at the
sizes test_decode_rows.py does not reach: layernorm's trace-time split form (D 8000) and
scale_bias_relu's column chunks (N 2100) at one and two rows.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen.frontend import load_spec, load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402
from nkigen.sim.errors import SimError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ALL4 = [("nki", "trn2"), ("nki", "trn1"), ("neuronxcc", "trn2"), ("neuronxcc", "trn1")]


def _spec(name: str, x_shape: str, dtype: str, out: str, stmt: str) -> str:
    return f"""nkigen: 1
name: {name}
doc: d
sizes:
  M: {{min: 1, max: 8192}}
  K: {{min: 1, max: 4096}}
inputs:
  x: {{shape: {x_shape}, dtype: {dtype}}}
outputs:
  y: {{shape: {out}, dtype: {dtype}}}
compute:
  - {stmt}
"""


SWAPS = {
    "pair": ("[M, \"2 * K\"]", "[M, K, 2]", "y[m, k, s] = x[m, 2 * k + 1 - s]"),
    "next": ("[M, \"2 * K + 2\"]", "[M, K, 2]", "y[m, k, s] = x[m, 2 * k + 3 - s]"),
    "bgr": ("[M, K, 3]", "[M, K, 3]", "y[m, k, s] = x[m, k, 2 - s]"),
    "bgr_flat": ("[M, \"3 * K\"]", "[M, K, 3]", "y[m, k, s] = x[m, 3 * k + 2 - s]"),
}


def _swap_spec(form: str, dtype: str = "float32"):
    x_shape, out, stmt = SWAPS[form]
    return load_spec_text(_spec(f"sw_{form}", x_shape, dtype, out, stmt))


_COPY = re.compile(r"nisa\.tensor_copy\(dst=(\w+)\[0:psz, ([^\]]+)\], src=(\w+)\[0:psz, "
                   r"([^\]]+)\], engine=nisa\.engine\.vector\)")


def _allocs(src: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+) = nl\.ndarray\(\(TILE_P, (\w+)\)", src))


@pytest.mark.parametrize("form", sorted(SWAPS))
def test_swapped_copies_keep_the_slice_rule_at_every_chunk_width(form):
    """R17-1. Every strided view of the current API's swap copies satisfies SH ``slice``'s
    ``0 <= start < end <= width`` with ``step = c``, and the two views of a copy hold the
    same ``fsz // c`` elements, for every chunk width a multiple of ``c`` from ``c`` (the
    first width: one group, where ``start < end`` is tightest) to the whole tile."""
    spec = _swap_spec(form)
    src = generate(spec, target="trn2")
    got = re.search(r"^FREE_TILE = (\d+)", src, re.M)
    assert got is not None
    free_tile = int(got.group(1))
    allocs = _allocs(src)
    copies = _COPY.findall(src)
    c = 3 if form.startswith("bgr") else 2
    assert len(copies) == c, copies
    for fsz in range(c, free_tile + 1, c):
        for dst, dsl, s, ssl in copies:
            counts = []
            for name, sl in ((dst, dsl), (s, ssl)):
                name = name[:-2] if name.endswith("_c") else name
                alloc = allocs[name]
                width = free_tile if alloc == "FREE_TILE" else int(alloc)
                lo, hi, step = (eval(p, {"fsz": fsz}) for p in sl.split(":"))  # noqa: S307
                assert step == c
                assert 0 <= lo < hi <= width, (form, fsz, name, sl)
                counts.append(-(-(hi - lo) // step))
            assert counts == [fsz // c, fsz // c], (form, fsz, dsl, ssl)


def test_an_empty_step_slice_is_refused_at_its_boundary():
    """R17-1, the simulator's side of the rule: ``2:3:3`` (one element) is a view, ``2:2:3``
    (start == end, the first value over) is refused, located, with the rule and the value."""
    import nkigen.sim as sim
    with sim.installed():
        import nki.isa as nisa
        import nki.language as nl

    def k(a):
        t = nl.ndarray((4, 6), dtype=nl.float32, buffer=nl.sbuf)
        u = nl.ndarray((4, 6), dtype=nl.float32, buffer=nl.sbuf)
        nisa.memset(dst=t[0:4, 0:6], value=1.0)
        nisa.tensor_copy(dst=u[0:4, 2:3:3], src=t[0:4, 0:1:3], engine=nisa.engine.vector)
        nisa.tensor_copy(dst=u[0:4, 2:2:3], src=t[0:4, 0:1:3], engine=nisa.engine.vector)

    with pytest.raises(SimError, match=r"slice out of bounds.*2:2 on dim 1 of size 6") as ei:
        sim.run(k, [np.zeros((4, 6), np.float32)], "trn2", numerics=True)
    line = k.__code__.co_firstlineno + 5
    assert f":{line}:" in str(ei.value)


def _run(spec, dialect, target, *arrays):
    import nkigen.sim as sim
    kernel = load_source(generate(spec, target=target, dialect=dialect), spec.name)
    return np.asarray(sim.simulate(kernel, target)(*arrays))


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("form", ["pair", "bgr"])
def test_swapped_int32_copies_are_bit_exact(dialect, target, form):
    """R17-1: the swap copies are same-dtype VectorE copies (bit-accurate, SH/S25
    ``tensor_copy``), so int32 values past 2**24, which a float32 pass would round, come out
    exactly; 130 rows (a second, ragged row tile) and 129 groups."""
    spec = _swap_spec(form, "int32")
    src = generate(spec, target=target, dialect=dialect)
    eng = "engine=nisa.engine.vector" if dialect == "nki" else "engine=nisa.vector_engine"
    assert all(eng in line for line in src.splitlines() if "nisa.tensor_copy(" in line)
    m, k, c = 130, 129, 2 if form == "pair" else 3
    x = (2 ** 30 + 1 + np.arange(m * k * c, dtype=np.int64) * 7).astype(np.int32)
    x = x.reshape((m, 2 * k) if form == "pair" else (m, k, 3))
    y = _run(spec, dialect, target, x)
    want = x.reshape(m, k, c)[:, :, ::-1]
    assert y.dtype == np.int32 and np.array_equal(y, want)


MOE = """nkigen: 1
name: {name}
doc: d
sizes:
  T: {{min: 1, max: 512}}
  E: {{min: 1, max: 8}}
  K: {{min: 1, max: 256}}
  N: {{min: 1, max: 256}}
inputs:
  x: {{shape: [T, K], dtype: float32}}
  eid: {{shape: [T], dtype: int32}}
  w: {{shape: {w}, dtype: float32}}
outputs:
  y: {{shape: [T, N], dtype: float32}}
compute:
  - y[t, n] = sum(x[t, k] * {read}, k)
tests:
  inputs:
    eid: {{dist: integers, low: 0, high: "E - 1"}}
"""
MOE_FIRST = MOE.format(name="moe", w="[E, K, N]", read="w[eid[t], k, n]")
MOE_MID = MOE.format(name="moe_mid", w="[K, E, N]", read="w[k, eid[t], n]")


def test_gathered_weight_steps_by_the_base_row():
    """R17-2. ``w[eid[t], k, n]``: the leading step is ``K * N``, the stride of w's dim 0;
    ``w[k, eid[t], n]``: the table is viewed as rows of N first, so its leading step N is
    the reshaped base's dim-0 stride and ``E * N * i_k`` is a static offset."""
    src = generate(load_spec_text(MOE_FIRST), target="trn2")
    assert "src=w.ap(pattern=[[K * N, psz], [1, fsz1]], offset=f01 + N * i_k, " \
           "vector_offset=eid_t1_c[0:psz, 0:1], indirect_dim=0)" in src
    mid = generate(load_spec_text(MOE_MID), target="trn2")
    assert "src=w.reshape((E * K * N // N, N)).ap(pattern=[[N, psz], [1, fsz1]], " \
           "offset=f01 + E * N * i_k, vector_offset=" in mid


@pytest.mark.parametrize("dialect,target", ALL4)
@pytest.mark.parametrize("sizes", [{"T": 130, "E": 3, "K": 5, "N": 40},
                                   {"T": 1, "E": 1, "K": 1, "N": 1}],
                         ids=["130-3-5-40", "1-1-1-1"])
def test_weight_gathered_along_a_later_dimension(dialect, target, sizes):
    """R17-2, the neighbour of slow16's placement: ``w[k, eid[t], n]`` (the ids pick a row
    inside each k block) matches the reference in the four combinations."""
    spec = load_spec_text(MOE_MID)
    check_case(spec, sizes, target=target, src=generate(spec, target=target, dialect=dialect))


def test_a_leading_step_other_than_the_row_is_refused():
    """R17-2, the simulator's rule at its value: the same kernel with the leading step N
    instead of K * N (what the hardware would ignore) is refused, rule + value + fix."""
    spec = load_spec_text(MOE_FIRST)
    src = generate(spec, target="trn2")
    bad = src.replace("w.ap(pattern=[[K * N, psz]", "w.ap(pattern=[[N, psz]")
    assert bad != src
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs
    ins = make_inputs(spec, {"T": 3, "E": 2, "K": 4, "N": 5})
    with pytest.raises(SimError, match=r"partition step of a vector_offset access pattern.*"
                                       r"step 5, base \[2, 4, 5\] has row stride 20"):
        sim.run(load_source(bad, "moe"), list(ins.values()), "trn2", numerics=True)


# R17-3: x[t, k] of the same contraction, read at the loop index itself, is one row block
# loaded before the loop over k (codegen/tilexpr.py _row_blocks), not one 4-byte DMA a
# partition per k; modelled (nki, T 130, E 3, K 129, N 40) before the fix
MOE_BEFORE = {"trn1": 108.70, "trn2": 65.01}


@pytest.mark.parametrize("target", ["trn1", "trn2"])
def test_x_row_block_loaded_once_before_the_k_loop(target):
    import nkigen.sim as sim
    from nkigen.testdata import make_inputs
    spec = load_spec_text(MOE_FIRST)
    src = generate(spec, target=target)
    assert "src=x[p0:p0 + psz, 0:K]" in src
    assert "scale=x_t_c[0:psz, i_k:i_k + 1]" in src
    assert "x.ap([[K, psz], [1, 1]]" not in src
    assert src.index("src=x[p0:p0 + psz, 0:K]") < src.index("for i_k in range(K):")
    sizes = {"T": 130, "E": 3, "K": 129, "N": 40}
    check_case(spec, sizes, target=target, src=src)
    res = sim.run(load_source(src, "moe"), list(make_inputs(spec, sizes).values()), target,
                  numerics=False)
    assert res.report.latency_us < 0.8 * MOE_BEFORE[target]  # type: ignore[attr-defined]


def test_row_block_budget_boundary():
    """ROW_BLOCK_BYTES (16 KiB a partition): K max 4096 fp32 takes the block, 4097 keeps the
    column per k; the classic dialect keeps the column (its loop index is not a trace-time
    int)."""
    at = MOE_FIRST.replace("K: {min: 1, max: 256}", "K: {min: 1, max: 4096}")
    over = MOE_FIRST.replace("K: {min: 1, max: 256}", "K: {min: 1, max: 4097}")
    assert at != MOE_FIRST and over != MOE_FIRST
    assert "src=x[p0:p0 + psz, 0:K]" in generate(load_spec_text(at), target="trn2")
    src = generate(load_spec_text(over), target="trn2")
    assert "x.ap([[K, psz], [1, 1]], offset=i_k + K * p0)" in src
    classic = generate(load_spec_text(MOE_FIRST), target="trn2", dialect="neuronxcc")
    assert "src=x[p0 + i_p, i_k + i_col]" in classic


BAG = """nkigen: 1
name: bag
doc: d
sizes:
  B: {min: 1, max: 512}
  L: {min: 1, max: 64}
  V: {min: 1, max: 1000}
  D: {min: 1, max: 256}
inputs:
  ids: {shape: [B, L], dtype: int32}
  emb: {shape: [V, D], dtype: float32}
  wt: {shape: [B, L], dtype: float32}
outputs:
  y: {shape: [B, D], dtype: float32}
compute:
  - y[b, d] = sum(emb[ids[b, l], d] * wt[b, l], l)
tests:
  inputs:
    ids: {dist: integers, low: 0, high: "V - 1"}
"""


@pytest.mark.parametrize("dialect,target", ALL4)
def test_gather_ids_keep_their_own_column_tile(dialect, target):
    """R17-3's boundary: in a weighted embedding bag the weight wt[b, l] takes the row block,
    but the ids ids[b, l] of the gather keep one (P, 1) tile loaded per l, the documented
    ``vector_offset`` form (SH dma_copy "Indirect addressing": "an SBUF tensor of shape
    (P, 1)"), not a column view of a wider tile."""
    spec = load_spec_text(BAG)
    src = generate(spec, target=target, dialect=dialect)
    if dialect == "nki":
        assert "src=wt[p0:p0 + psz, 0:L]" in src
        assert "vector_offset=ids_t[0:psz, 0:1]" in src
        assert "ids_t = nl.ndarray((TILE_P, 1)" in src
    for sizes in ({"B": 130, "L": 5, "V": 40, "D": 70}, {"B": 1, "L": 1, "V": 1, "D": 1}):
        check_case(spec, sizes, target=target, src=src)


# R17-4: decode16's broadcast rows where test_decode_rows.py (D 96) does not reach
HOIST_CASES = [("layernorm", {"M": 1, "D": 8000}), ("layernorm", {"M": 2, "D": 8000}),
               ("scale_bias_relu", {"M": 2, "N": 2100}), ("rmsnorm", {"M": 1, "D": 8192})]


@pytest.mark.parametrize("dialect,target", [("nki", "trn2"), ("nki", "trn1"),
                                            ("neuronxcc", "trn2")])
@pytest.mark.parametrize("name,sizes", HOIST_CASES,
                         ids=[f"{n}-{'-'.join(map(str, s.values()))}" for n, s in HOIST_CASES])
def test_hoisted_rows_at_split_and_chunked_forms(dialect, target, name, sizes):
    """R17-4: the hoisted broadcast fills min(M, 128) partitions (current API) in layernorm's
    split form and scale_bias_relu's column chunks, at one and two rows."""
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    src = generate(spec, target=target, dialect=dialect)
    if dialect == "nki":
        assert ".ap([[0, min(M, TILE_P)], [1, " in src
    check_case(spec, sizes, target=target, src=src)


def test_a_broadcast_one_partition_short_fails_verification():
    """R17-4, the boundary of the hoisted count: the rmsnorm kernel with ``min(M, TILE_P) - 1``
    broadcast partitions reads an unwritten partition at M = 2 (the simulator's NaN-filled
    new tile) and fails verification; at M = 1 it moves no partition and is refused."""
    spec = load_spec(ROOT / "specs" / "rmsnorm.yaml")
    src = generate(spec, target="trn2")
    bad = src.replace("min(M, TILE_P)", "(min(M, TILE_P) - 1)")
    assert bad.count("(min(M, TILE_P) - 1)") == 2
    check_case(spec, {"M": 2, "D": 64}, src=src)
    with pytest.raises(AssertionError):
        check_case(spec, {"M": 2, "D": 64}, src=bad)
    with pytest.raises(SimError):
        check_case(spec, {"M": 1, "D": 64}, src=bad)


# R17-5: the census of call forms (docs/review-kernels-17.md): every nisa / nl function the
# goldens call is one a review read against the docs; a new function needs a review line
CONFIRMED = {
    "nisa.activation", "nisa.activation_reduce", "nisa.affine_select", "nisa.dma_copy",
    "nisa.dma_transpose", "nisa.iota", "nisa.max8", "nisa.memset", "nisa.nc_find_index8",
    "nisa.nc_matmul", "nisa.nc_transpose", "nisa.reciprocal", "nisa.scalar_tensor_tensor",
    "nisa.tensor_copy", "nisa.tensor_copy_predicated", "nisa.tensor_reduce",
    "nisa.tensor_scalar", "nisa.tensor_scalar_reduce", "nisa.tensor_tensor",
    "nisa.tensor_tensor_scan", "nl.affine_range", "nl.arange", "nl.load", "nl.ndarray",
    "nl.sequential_range", "nl.static_range", "nl.zeros", "nki.jit",
}


def test_goldens_call_only_reviewed_functions():
    seen: set[str] = set()
    for path in sorted((ROOT / "tests" / "golden").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in ("nl", "nisa", "nki") and callable_name(node):
                seen.add(f"{node.value.id}.{node.attr}")
    assert seen, "no goldens"
    assert seen <= CONFIRMED, sorted(seen - CONFIRMED)


def callable_name(node: ast.Attribute) -> bool:
    """A function of the three modules (not a constant such as nl.float32 or nl.sbuf)."""
    return node.attr[0].islower() and node.attr not in _CONSTANTS


_CONSTANTS = {"float32", "bfloat16", "float16", "int32", "uint32", "int8", "uint8", "int16",
              "uint16", "float8_e4m3", "float8_e5m2", "bool_", "sbuf", "psum", "hbm",
              "shared_hbm", "private_hbm", "tile_size", "engine", "reduce_cmd", "copy",
              "exp", "log", "add", "subtract", "multiply", "maximum", "minimum", "greater",
              "greater_equal", "less", "less_equal", "equal", "not_equal", "rsqrt", "square",
              "relu", "gelu", "gelu_apprx_tanh", "silu", "sigmoid", "tanh", "bitwise_and",
              "bitwise_or", "right_shift", "left_shift", "vector_engine", "gpsimd_engine",
              "tensor_engine", "scalar_engine", "matmul_perf_mode", "abs", "divide"}


# R17-6: the documented parameters (the names in the signatures of SH nki/api/nki/isa/__init__.py
# and nki/api/nki/language/__init__.py, nki 0.3; S25 general/nki/api/nki/isa/__init__.py and
# language/__init__.py, SDK 2.25), as (positional-or-keyword, keyword-only), ``name`` left out:
# every keyword a generated call passes is one of them, and no call passes more positional
# arguments than the signature takes before its ``*``
SH_PARAMS = {
    "nisa.activation": ('dst op data bias scale reduce_op reduce_res reduce_cmd', ''),
    "nisa.affine_select": ('dst pattern channel_multiplier on_true_tile on_false_value '
        'cmp_op offset',
        ''),
    "nisa.dma_copy": ('dst src priority oob_mode dge_mode engine', ''),
    "nisa.dma_transpose": ('dst src axes priority dge_mode oob_mode', ''),
    "nisa.iota": ('dst pattern offset channel_multiplier', ''),
    "nisa.max8": ('dst src', ''),
    "nisa.memset": ('dst value engine', ''),
    "nisa.nc_find_index8": ('dst data vals', ''),
    "nisa.nc_matmul": ('dst stationary moving is_stationary_onezero '
        'is_moving_onezero is_transpose accumulate tile_position '
        'tile_size perf_mode',
        ''),
    "nisa.nc_transpose": ('dst data engine', ''),
    "nisa.reciprocal": ('dst data', ''),
    "nisa.scalar_tensor_tensor": ('dst data op0 operand0 op1 operand1 reverse0 reverse1', ''),
    "nisa.tensor_copy": ('dst src engine', ''),
    "nisa.tensor_copy_predicated": ('dst src predicate reverse_pred', ''),
    "nisa.tensor_reduce": ('dst op data axis negate keepdims', ''),
    "nisa.tensor_scalar": ('dst data op0 operand0 reverse0 op1 operand1 reverse1 engine', ''),
    "nisa.tensor_scalar_reduce": ('dst data op0 operand0 reduce_op reduce_res reverse0 '
        'reduce_cmd reduce_init reduce_res_negate',
        ''),
    "nisa.tensor_tensor": ('dst data1 data2 op engine', ''),
    "nisa.tensor_tensor_scan": ('dst data0 data1 initial op0 op1 reverse0 reverse1', ''),
    "nl.ndarray": ('shape dtype buffer address', ''),
}
S25_PARAMS = {
    "nisa.activation": ('op data', 'bias scale reduce_op reduce_res reduce_cmd mask dtype'),
    "nisa.activation_reduce": ('op data', 'reduce_op reduce_res bias scale mask dtype'),
    "nisa.affine_select": ('pred on_true_tile on_false_value', 'mask dtype'),
    "nisa.dma_copy": ('', 'dst src mask dst_rmw_op oob_mode dge_mode'),
    "nisa.dma_transpose": ('src', 'mask dtype'),
    "nisa.iota": ('expr dtype', 'mask'),
    "nisa.max8": ('', 'src mask dtype'),
    "nisa.memset": ('shape value dtype', 'mask engine'),
    "nisa.nc_find_index8": ('', 'data vals mask dtype'),
    "nisa.nc_matmul": ('stationary moving',
        'is_stationary_onezero is_moving_onezero is_transpose '
        'tile_position tile_size mask'),
    "nisa.nc_transpose": ('data', 'mask dtype engine'),
    "nisa.reciprocal": ('data', 'dtype mask'),
    "nisa.scalar_tensor_tensor": ('',
        'data op0 operand0 op1 operand1 reverse0 reverse1 dtype mask'),
    "nisa.tensor_copy": ('src', 'mask dtype engine'),
    "nisa.tensor_copy_predicated": ('', 'src dst predicate mask dtype reverse_pred'),
    "nisa.tensor_reduce": ('op data axis', 'mask dtype negate keepdims'),
    "nisa.tensor_scalar": ('data op0 operand0 reverse0 op1 operand1 reverse1', 'dtype mask engine'),
    "nisa.tensor_tensor": ('data1 data2 op', 'dtype mask engine'),
    "nisa.tensor_tensor_scan": ('data0 data1 initial op0 op1 reverse0 reverse1', 'dtype mask'),
    "nl.load": ('src', 'mask dtype'),
    "nl.ndarray": ('shape dtype', 'buffer'),
    "nl.zeros": ('shape dtype', 'buffer'),
}


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and node.func.value.id in ("nl", "nisa"):
            yield f"{node.func.value.id}.{node.func.attr}", node


@pytest.mark.parametrize("golden", sorted(p.name for p in (ROOT / "tests" / "golden").glob("*.py")))
def test_golden_calls_pass_documented_parameters(golden):
    path = ROOT / "tests" / "golden" / golden
    params = S25_PARAMS if golden.endswith(".neuronxcc.py") else SH_PARAMS
    checked = 0
    for fn, call in _calls(path):
        if fn.startswith("nisa.") or fn in params:
            assert fn in params, f"{golden}:{call.lineno}: {fn} has no documented signature here"
            pos, kwonly = (x.split() for x in params[fn])
            assert len(call.args) <= len(pos), f"{golden}:{call.lineno}: {fn} positional"
            for k in call.keywords:
                assert k.arg in set(pos) | set(kwonly) | {"name"}, \
                    f"{golden}:{call.lineno}: {fn}({k.arg}=...) is not a documented parameter"
            checked += 1
    assert checked
