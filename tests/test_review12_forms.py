"""Review 12 (docs/review-kernels-12.md): index tiles of gathers and integer turned copies.

* R12-2: every documented index tile of an indirect DMA is 32-bit (SH
  nki/api/nki/isa/__init__.py dma_copy "Indirect addressing": uint32; SH
  nki/deep-dives/nki-aps.rst "Vector Dynamic Access": int32, nki 0.3; S25
  general/nki/test/test_nki_nl_load_store_indirect.py: int32, SDK 2.25). Generated gathers
  load int8 / uint8 ids into an int32 column (the DMA casts, exact), or widen a tile another
  load form made on VectorE; the simulator warns for a narrower index tile.
* R12-1: a classic TensorE ``nc_transpose`` is a matmul with the identity, and S25 nc_matmul
  takes float data only (float32 results): integer turned copies of the classic dialect run on
  VectorE (as on trn1), the simulator's classic forms rule ``transpose.tensor-integer`` flags
  the TensorE form, and the current API's integer PSUM eviction names VectorE (a bit-accurate
  same-dtype copy; ScalarE copies through float32, SH tensor_copy).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codegen_check import check_case, load_source  # noqa: E402

from nkigen import sim  # noqa: E402
from nkigen.frontend import load_spec_text  # noqa: E402
from nkigen.pipeline import generate  # noqa: E402
from nkigen.sim.classic import forms  # noqa: E402
from nkigen.sim.errors import SimError  # noqa: E402

with sim.installed():
    import neuronxcc.nki.isa as cnisa  # noqa: E402
    import neuronxcc.nki.language as cnl  # noqa: E402
    from neuronxcc import nki as cnki  # noqa: E402


def gather_spec(dtype: str, ids: str = "ids[t]", n_ids: str = "T") -> str:
    return f"""nkigen: 1
name: g
doc: d
sizes:
  T: {{min: 4, max: 512}}
  V: {{min: 1, max: 100}}
  D: {{min: 1, max: 300}}
inputs:
  ids: {{shape: [{n_ids}], dtype: {dtype}}}
  table: {{shape: [V, D], dtype: float32}}
outputs:
  y: {{shape: [T, D], dtype: float32}}
compute:
  - y[t, d] = table[{ids}, d] * 2.0
tests:
  inputs: {{ids: {{dist: integers, low: 0, high: "V - 1"}}}}
"""


def index_tiles(src: str) -> set[str]:
    """The dtypes of the tiles a generated kernel passes as gather indices."""
    names = set(re.findall(r"vector_offset=(\w+)\[", src))
    names |= set(re.findall(r"\.reshape\([^)]*\)\)\[(\w+)\[", src))
    out = set()
    for n in names:
        (dt,) = set(re.findall(rf"\b{n} = nl\.ndarray\(\([^)]*\),? dtype=nl\.(\w+)", src))
        out.add(dt)
    return out


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32"])
def test_gather_ids_are_read_into_an_int32_index_tile(dialect, dtype):
    spec = load_spec_text(gather_spec(dtype))
    src = generate(spec, target="trn2", dialect=dialect)
    assert index_tiles(src) == {"int32"}
    # loaded straight into int32 (the DMA casts): no extra copy
    assert "_i32" not in src and "tensor_copy" not in src
    check_case(spec, {"T": 130, "V": 100, "D": 33}, target="trn2", src=src)
    check_case(spec, {"T": 4, "V": 1, "D": 1}, target="trn2", src=src)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("ids", ["ids[t // 2]", "ids[t % 4]"])
def test_ids_of_another_load_form_are_widened_on_vector_engine(dialect, ids):
    spec = load_spec_text(gather_spec("int8", ids, "2 * T"))
    src = generate(spec, target="trn2", dialect=dialect)
    assert index_tiles(src) == {"int32"}
    assert re.search(r"ids_i32\[[^\]]*\] = nisa\.tensor_copy\(ids_t|tensor_copy\(dst=ids_i32", src)
    assert "engine=nisa.engine.vector" in src or "engine=nisa.vector_engine" in src
    check_case(spec, {"T": 130, "V": 100, "D": 33}, target="trn2", src=src)


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("dtype, warns", [("int8", True), ("int16", True), ("int32", False),
                                          ("uint32", False)])
def test_narrow_index_tile_is_warned(dialect, dtype, warns):
    """The old generated form (an int8 index tile) runs, with a located warning; 32-bit index
    tiles are the documented form."""
    spec = load_spec_text(gather_spec("int32"))
    src = generate(spec, target="trn2", dialect=dialect)
    old = re.sub(r"(ids_t = nl\.ndarray\(\([^)]*\),? dtype=nl\.)int32", rf"\g<1>{dtype}", src)
    assert old != src or dtype == "int32"
    kernel = load_source(old, "g")
    ids = np.array([3, 0, 99, 7, 5], dtype=np.int32)
    table = np.arange(100 * 33, dtype=np.float32).reshape(100, 33)
    res = sim.run(kernel, [ids, table], target="trn2", report=False)
    np.testing.assert_array_equal(res.outputs[0], table[ids] * 2.0)
    got = [w for w in res.warnings if "indirect DMA index tile" in w]
    assert bool(got) == warns
    if warns:
        assert f"index tile of {dtype}" in got[0] and "<nkigen g>:" in got[0]
        assert "Vector Dynamic Access" in got[0]


INT_TURN = """nkigen: 1
name: tint
doc: d
sizes:
  M: {min: 1, max: 1024}
  N: {min: 1, max: 1024}
inputs:
  x: {shape: [M, N], dtype: DT}
outputs:
  y: {shape: [N, M], dtype: DT}
compute:
  - y[n, m] = x[m, n]
"""


def big_ints(m: int, n: int) -> np.ndarray:
    """Odd int32 values above 2**24 (float32 cannot hold them)."""
    return (np.arange(m * n, dtype=np.int64).reshape(m, n) * 2 + 2 ** 24 + 1).astype(np.int32)


@pytest.mark.parametrize("dtype", ["int32", "uint8"])
@pytest.mark.parametrize("target", ["trn2", "trn1"])
def test_classic_integer_turned_copy_is_off_tensor_engine(target, dtype):
    """trn2: the DMA transpose (2- and 4-byte dtypes), else VectorE 32 x 32 pieces."""
    src = generate(load_spec_text(INT_TURN.replace("DT", dtype)), target=target,
                   dialect="neuronxcc")
    assert "nisa.tensor_engine" not in src and "nl.psum" not in src
    if target == "trn2" and dtype == "int32":
        assert "nisa.dma_transpose(" in src and "nc_transpose(" not in src
    else:
        assert "nc_transpose(" in src and "engine=nisa.vector_engine" in src
    if dtype == "uint8":
        return
    x = big_ints(130, 300)
    with forms.profile(forms.GENERATED):
        res = sim.run(load_source(src, "tint"), [x], target=target, report=False)
    np.testing.assert_array_equal(res.outputs[0], x.T)


# float8: a float dtype trn2 still turns on TensorE (2- and 4-byte floats take the DMA
# transpose there, nkigen.codegen.matmul.choose_transpose)
def test_classic_float_turned_copy_stays_on_tensor_engine():
    src = generate(load_spec_text(INT_TURN.replace("DT", "float8_e4m3")), target="trn2",
                   dialect="neuronxcc")
    assert "engine=nisa.tensor_engine" in src


def test_current_api_integer_eviction_names_vector_engine():
    # int32 on trn2: the DMA transpose moves the bits (4-byte data, choose_transpose): exact
    src = generate(load_spec_text(INT_TURN.replace("DT", "int32")), target="trn2")
    assert "dma_transpose(" in src and "src=turned_psum" not in src
    x = big_ints(130, 300)
    res = sim.run(load_source(src, "tint"), [x], target="trn2", report=False)
    np.testing.assert_array_equal(res.outputs[0], x.T)
    # int8 turns on TensorE (1-byte data): its PSUM eviction names VectorE
    src8 = generate(load_spec_text(INT_TURN.replace("DT", "int8")), target="trn2")
    (ev,) = [ln for ln in src8.splitlines() if "src=turned_psum" in ln]
    assert "nisa.tensor_copy(" in ev and ev.rstrip().endswith("engine=nisa.engine.vector)")
    x8 = (np.arange(130 * 300).reshape(130, 300) % 255 - 127).astype(np.int8)
    res = sim.run(load_source(src8, "tint"), [x8], target="trn2", report=False)
    np.testing.assert_array_equal(res.outputs[0], x8.T)
    # a float turned copy keeps the compiler's choice of evicting engine
    fsrc = generate(load_spec_text(INT_TURN.replace("DT", "float8_e4m3")), target="trn2")
    (fev,) = [ln for ln in fsrc.splitlines() if "src=turned_psum" in ln]
    assert "engine=" not in fev


def _classic_turn(dtype, engine):
    @cnki.jit
    def kern(x):
        out = cnl.ndarray((32, 32), dtype=x.dtype, buffer=cnl.shared_hbm)
        t = cnl.load(x)
        r = cnisa.nc_transpose(t, engine=engine)
        cnl.store(out, value=cnl.copy(r, dtype=x.dtype))
        return out
    return kern


@pytest.mark.parametrize("dtype, engine, flagged", [
    (np.int32, "tensor", True), (np.int8, "tensor", True), (np.float32, "tensor", False),
    (np.int32, "vector", False)])
def test_classic_integer_tensor_transpose_fails_a_generated_kernel(dtype, engine, flagged):
    x = (np.arange(32 * 32) % 100).reshape(32, 32).astype(dtype)
    eng = cnisa.tensor_engine if engine == "tensor" else cnisa.vector_engine
    kern = _classic_turn(dtype, eng)
    res = sim.run(kern, [x], target="trn2", report=False)       # user profile: runs
    np.testing.assert_array_equal(res.outputs[0], x.T)
    assert bool([w for w in res.warnings if "[transpose.tensor-integer;" in w]) == flagged
    with forms.profile(forms.GENERATED):
        if flagged:
            with pytest.raises(SimError, match=r"transpose\.tensor-integer.*nc_matmul"):
                sim.run(kern, [x], target="trn2", report=False)
        else:
            sim.run(kern, [x], target="trn2", report=False)


def indicator_spec(branches: str, op: str = ">", out: str = "float32") -> str:
    return f"""nkigen: 1
name: ind
doc: d
sizes:
  M: {{min: 1, max: 1024}}
  N: {{min: 1, max: 1024}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  y: {{shape: [M, N], dtype: {out}}}
compute:
  - y[m, n] = where(x[m, n] {op} 0.0, {branches})
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("op, out", [(">", "float32"), ("!=", "uint8"), ("<=", "int32")])
def test_where_one_zero_is_the_comparison(dialect, op, out):
    """R12-3: where(c, 1, 0) is one comparison instruction (was: mask, two memsets and a
    predicated copy); NaN operands give what the reference gives."""
    spec = load_spec_text(indicator_spec("1.0, 0.0", op, out))
    src = generate(spec, target="trn2", dialect=dialect)
    assert "tensor_copy_predicated" not in src and "memset" not in src
    assert set(re.findall(r"nisa\.(\w+)\(", src)) == {"dma_copy", "tensor_scalar"}
    check_case(spec, {"M": 130, "N": 77}, target="trn2", src=src)
    x = np.array([[np.nan, 0.0, -0.0, 1.5, -2.0, np.inf, -np.inf]], dtype=np.float32)
    res = sim.run(load_source(src, "ind"), [x], target="trn2", report=False)
    ref = {">": x > 0, "!=": x != 0, "<=": x <= 0}[op].astype(np.float64)
    np.testing.assert_array_equal(np.asarray(res.outputs[0], dtype=np.float64), ref)


@pytest.mark.parametrize("branches", ["2.0, 0.0", "0.0, 1.0", "1.0, 0.5", "1.0, x[m, n]"])
def test_other_where_branches_keep_the_predicated_copy(branches):
    spec = load_spec_text(indicator_spec(branches))
    src = generate(spec, target="trn2")
    assert "tensor_copy_predicated" in src
    check_case(spec, {"M": 130, "N": 77}, target="trn2", src=src)


def argmax_spec(top: str, axis: str = "n") -> str:
    out = "[M]" if axis == "n" else "[N]"
    lhs = "i[m]" if axis == "n" else "i[n]"
    rows = "N: {min: 1, max: 64}" if axis == "m" else "M: {min: 1, max: 300}"
    long = "N" if axis == "n" else "M"
    return f"""nkigen: 1
name: am
doc: d
sizes:
  {rows}
  {long}: {{min: 1{top}}}
inputs:
  x: {{shape: [M, N], dtype: float32}}
outputs:
  i: {{shape: {out}, dtype: int32}}
compute:
  - {lhs} = argmax(x[m, n], {axis})
"""


@pytest.mark.parametrize("axis", ["n", "m"])
@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
def test_argmax_row_limit_is_checked_on_the_declared_max(axis, dialect):
    """R12-5: max8 / nc_find_index8 read 8..16384 elements per partition; a symbolic extent is
    bounded by its declared max: up to 16384 the row is one operand, from 16385 it streams in
    ARG_CHUNK pieces (codegen/argext.py _chunked; was a refusal), whose float32 index
    arithmetic is exact up to 2**24: 2**24 builds, 2**24 + 1 and no max are located errors."""
    from nkigen.diagnostics import NkigenError
    long = "N" if axis == "n" else "M"
    spec = load_spec_text(argmax_spec(", max: 16384", axis))
    src = generate(spec, target="trn2", dialect=dialect)
    assert "max8(" in src and "ARG_CHUNK" not in src
    if axis == "n" and dialect == "nki":
        check_case(spec, {"M": 3, "N": 16384}, target="trn2", src=src)
    for top in (", max: 16385", f", max: {2 ** 24}"):
        src = generate(load_spec_text(argmax_spec(top, axis)), target="trn2", dialect=dialect)
        assert "max8(" in src and "ARG_CHUNK" in src
    for top in (f", max: {2 ** 24 + 1}", ""):
        with pytest.raises(NkigenError) as ei:
            generate(load_spec_text(argmax_spec(top, axis)), target="trn2", dialect=dialect)
        msg = str(ei.value)
        assert "computed in float32" in msg and "Supported Math Operators" in msg
        assert f"bound {long} to at most {2 ** 24}" in msg
        assert (f"up to {2 ** 24 + 1}" if top else "no max") in msg


@pytest.mark.parametrize("kmax, chunked", [(4096, False), (4097, True)])
def test_argmax_row_limit_of_a_derived_size(kmax, chunked):
    """A derived extent N = 4 K is bounded through its formula: K <= 4096 gives N <= 16384,
    one max8 operand; K = 4097 (N up to 16388) streams the row in chunks."""
    text = argmax_spec(", max: 1").replace("N: {min: 1, max: 1}", f"K: {{min: 1, max: {kmax}}}\n"
                                           "  N: {value: 4 * K}")
    src = generate(load_spec_text(text), target="trn2")
    assert "max8(" in src and ("ARG_CHUNK" in src) == chunked


def cumsum_spec(top: str, dtype: str = "float32") -> str:
    return f"""nkigen: 1
name: cs
doc: d
sizes:
  M: {{min: 1, max: 300}}
  N: {{min: 1{top}}}
inputs:
  x: {{shape: [M, N], dtype: {dtype}}}
outputs:
  y: {{shape: [M, N], dtype: float32}}
compute:
  - y[m, n] = cumsum(x[m, n], n)
"""


@pytest.mark.parametrize("dialect", ["nki", "neuronxcc"])
@pytest.mark.parametrize("target, dtype, last", [("trn2", "float32", 17748),
                                                 ("trn1", "float32", 15018),
                                                 ("trn2", "bfloat16", 21298)])
def test_scan_rows_must_fit_one_sbuf_partition(dialect, target, dtype, last):
    """R12-6: one tensor_tensor_scan holds two operand rows and its result row in SBUF at once:
    (itemsizes) x N at the declared max within the target's partition (212984 B on trn2, 180224
    on trn1); the last fitting max scans whole rows, the next one (and no max) scans the row in
    SCAN_TILE chunks, each started from the previous chunk's last value (rows.scan_chunks; was
    a refusal)."""
    src = generate(load_spec_text(cumsum_spec(f", max: {last}", dtype)), target=target,
                   dialect=dialect)
    assert "tensor_tensor_scan(" in src and "SCAN_TILE" not in src
    for top in (f", max: {last + 1}", ""):
        src = generate(load_spec_text(cumsum_spec(top, dtype)), target=target, dialect=dialect)
        assert "tensor_tensor_scan(" in src and "SCAN_TILE" in src and "carry" in src


def test_scan_at_the_largest_fitting_row_runs():
    spec = load_spec_text(cumsum_spec(", max: 17748"))
    check_case(spec, {"M": 2, "N": 17748}, target="trn2")


def _three_rows(n: int, op: str):
    """Three SBUF rows of n fp32 elements (live at once: they overflow the partition, so the
    run spills), then one instruction on two (copy) or three (add) of them."""
    import nkigen.sim.nki.isa as nisa
    import nkigen.sim.nki.language as nl

    def k(x):
        a = nl.ndarray((1, n), dtype=nl.float32, buffer=nl.sbuf)
        b = nl.ndarray((1, n), dtype=nl.float32, buffer=nl.sbuf)
        c = nl.ndarray((1, n), dtype=nl.float32, buffer=nl.sbuf)
        nisa.dma_copy(dst=a, src=x)
        nisa.dma_copy(dst=b, src=x)
        if op == "add":
            nisa.tensor_tensor(dst=c, data1=a, data2=b, op=nl.add)
        else:
            nisa.tensor_copy(dst=c, src=a)
        out = nl.ndarray((1, n), dtype=nl.float32, buffer=nl.shared_hbm)
        nisa.dma_copy(dst=out, src=c)
        return out
    return k


@pytest.mark.parametrize("target, cap", [("trn2", 212984), ("trn1", 180224)])
def test_operands_of_one_instruction_must_fit_sbuf_at_once(target, cap):
    """R12-6 (simulator): spilled tiles are accepted, but one instruction's SBUF operands must
    be resident together: 2 rows of cap // 8 fp32 elements fit, 3 do not; 3 rows of cap // 12
    fit (the boundary), 3 of cap // 12 + 1 do not."""
    x = np.ones((1, cap // 8), np.float32)
    res = sim.run(_three_rows(cap // 8, "copy"), [x], target=target, report=False)
    assert any("exceed" in w for w in res.warnings)          # the rows spilled
    np.testing.assert_array_equal(res.outputs[0], x)
    with pytest.raises(SimError, match=r"operands of one instruction must fit"):
        sim.run(_three_rows(cap // 8, "add"), [x], target=target, report=False)
    for n, ok in ((cap // 12, True), (cap // 12 + 1, False)):
        x = np.ones((1, n), np.float32)
        if ok:
            sim.run(_three_rows(n, "add"), [x], target=target, report=False)
        else:
            with pytest.raises(SimError, match=rf"{3 * 4 * n} B/partition"):
                sim.run(_three_rows(n, "add"), [x], target=target, report=False)


@pytest.mark.parametrize("branches", ["0.0, 0.9", "-30000.0, 2.5", "0.0, 1.0"])
def test_two_constant_where_copies_a_scalar_source(branches):
    """R12-3b: with two constants (other than 1, 0) the current API copies the true constant
    as a scalar src of tensor_copy_predicated (SH, nki 0.3): one memset (the false constant)
    instead of two; the classic dialect keeps a tile src (S25 shows no scalar src)."""
    spec = load_spec_text(indicator_spec(branches))
    src = generate(spec, target="trn2")
    a = branches.split(",")[0].strip()
    assert f"src={a}, predicate=" in src and src.count("nisa.memset(") == 2   # main + tail
    csrc = generate(spec, target="trn2", dialect="neuronxcc")
    assert "tensor_copy_predicated(src=out" in csrc
    for s in (src, csrc):
        check_case(spec, {"M": 130, "N": 77}, target="trn2", src=s)
    x = np.array([[np.nan, 0.0, -0.0, 1.5, -2.0, np.inf, -np.inf]], dtype=np.float32)
    res = sim.run(load_source(src, "ind"), [x], target="trn2", report=False)
    av, bv = (float(v) for v in branches.split(","))
    np.testing.assert_array_equal(np.asarray(res.outputs[0], dtype=np.float64),
                                  np.where(x > 0, np.float32(av), np.float32(bv)))
