"""Mutation benchmark (issue 17): do the tests catch deliberate bugs?

Each mutant is one small source edit (a sign flip, an off-by-one, a loosened limit, a swapped
dtype, a skipped check) in the simulator, the reference, codegen, the library builder or the
cost model. For each, a copy of the package and tests is edited and only the test files relevant
to that module run, with ``-x``; a mutant is *killed* when they fail. Prints one line per mutant
and the kill rate. A mutant whose edit no longer applies (the code moved) is reported as
``stale`` and left out of the rate.

Usage: ``python benchmarks/mutate.py [-k SUBSTRING[|SUBSTRING...]] [--timeout S]`` from the
repository root; the baseline runs the test groups of the chosen mutants only. Not a test: it
takes minutes (152 mutants x a few targeted test files; the 109 of the modules added in the
last two stops, helper kill10, about 25 minutes on the 2-core machine). A mutant a comment marks
equivalent survives by design.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SIM = ["tests/test_boundaries.py", "tests/test_sim_strict.py", "tests/test_sim_api.py",
       "tests/test_sim_isa_extra.py", "tests/test_sim_kernels.py"]
REF = ["tests/test_boundaries_tolerance.py", "tests/test_reference.py",
       "tests/test_reference_testdata.py"]
CODEGEN = ["tests/test_codegen_golden.py", "tests/test_codegen.py"]   # ~2 min when none fails
LIB = ["tests/test_boundaries_tolerance.py", "tests/test_faults.py", "tests/test_build.py",
       "tests/test_build_suite.py", "tests/test_build_hardening.py",
       "tests/test_security_build.py"]
COST = ["tests/test_boundaries_cost.py", "tests/test_cost.py", "tests/test_cost_sim.py"]
# the modules added in the last two stops (helper kill10)
FLAT = ["tests/test_flatmap.py", "tests/test_flatmap_edges.py"]
DIVIDED = ["tests/test_divided_rows.py", "tests/test_review10_forms.py",
           "tests/test_divided_rows_edges.py"]
REVERSED = ["tests/test_reversed_reads_doc.py", "tests/test_flipped_reads.py",
            "tests/test_review9_forms.py"]
GATHER = ["tests/test_lang_v11.py", "tests/test_divided_rows.py", "tests/test_review10_forms.py",
          "tests/test_fuzz7_lowering.py", "tests/test_divided_rows_edges.py"]
TURNED = ["tests/test_turned_reads.py"]
RESIDUE = ["tests/test_classic_residues.py"]
OPERANDS = ["tests/test_fuzz9_lowering.py", "tests/test_fuzz9_cliffs.py"]
PERIOD = ["tests/test_divided_rows.py", "tests/test_residue_views.py",
          "tests/test_review9_forms.py", "tests/test_fuzz9_lowering.py",
          "tests/test_divided_rows_edges.py"]
SIM9 = ["tests/test_sim_public9.py", "tests/test_conformance_lang.py",
        "tests/test_sim_nki_edges.py"]
LOOPS = ["tests/test_sim_strict.py", "tests/test_conformance_lang.py",
         "tests/test_sim_public9.py", "tests/test_classic_sim.py", "tests/test_sim_nki_edges.py"]
CLASSIC_IDX = ["tests/test_review10_forms.py", "tests/test_classic_extents.py",
               "tests/test_classic_index.py"]
DIVCMP = ["tests/test_divided_compare.py"]
SHIFTED = ["tests/test_shifted_periods.py"]
PROVER = ["tests/test_prover_exact_floor.py"]
INNER = ["tests/test_inner_sums.py"]
R15 = ["tests/test_review15_forms.py", "tests/test_conformance_isa.py"]
R16 = ["tests/test_review16_forms.py"]
R17 = ["tests/test_review17_forms.py"]
BATCH = ["tests/test_sim_equivalence.py", "tests/test_batch_settle.py"]
LONG = ["tests/test_long_rows.py"]
TOL = ["tests/test_boundaries_tolerance.py", "tests/test_numerics_fuzznum.py",
       "tests/test_flatmap.py", "tests/test_tolerance_edges.py"]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


def m(name: str, file: str, old: str, new: str, tests: list[str]) -> Mutant:
    return Mutant(name, file, old, new, tuple(tests))


MUTANTS = [
    # ---- simulator limits and numerics ----
    m("sim: stationary limit +1", "nkigen/sim/isa_move.py",
      "if m > hw.GEMM_STATIONARY_FMAX:", "if m > hw.GEMM_STATIONARY_FMAX + 1:", SIM),
    m("sim: moving limit x2", "nkigen/sim/isa_move.py",
      "if n > hw.GEMM_MOVING_FMAX:", "if n > 2 * hw.GEMM_MOVING_FMAX:", SIM),
    m("sim: partition limit +1", "nkigen/sim/tensor.py",
      "if shape[0] > hw.PMAX:", "if shape[0] > hw.PMAX + 1:", SIM),
    m("sim: SBUF capacity +20%", "nkigen/sim/state.py",
      "Pool(Mem.SBUF, self.target.sbuf_bytes_per_partition)",
      "Pool(Mem.SBUF, int(self.target.sbuf_bytes_per_partition * 1.2))", SIM),
    m("sim: PSUM/SBUF engine limits swapped", "nkigen/sim/emit.py",
      "lim = hw.PSUM_FMAX_ELEMS_ENGINE if mem is _PSUM else hw.SBUF_FMAX_ELEMS",
      "lim = hw.SBUF_FMAX_ELEMS if mem is _PSUM else hw.SBUF_FMAX_ELEMS", SIM),
    m("sim: PSUM bank edge off by 4 B", "nkigen/sim/isa_move.py",
      "(reg.b1 - 1) // hw.PSUM_BANK_BYTES:", "(reg.b1 - 5) // hw.PSUM_BANK_BYTES:", SIM),
    m("sim: bn_stats limit +1", "nkigen/sim/isa_compute.py",
      "if n > hw.BN_STATS_FMAX:", "if n > hw.BN_STATS_FMAX + 1:", SIM),
    m("sim: vector transpose 33x33", "nkigen/sim/isa_move.py",
      "lim = hw.PMAX if eng is _E_TENSOR else 32",
      "lim = hw.PMAX if eng is _E_TENSOR else 33", SIM),
    m("sim: matmul sign flip", "nkigen/sim/isa_move.py",
      "s, mv = read(stationary), read(moving)",
      "s, mv = -read(stationary), read(moving)", SIM),
    m("sim: exp is expm1", "nkigen/sim/ops.py",
      '"exp": np.exp,', '"exp": np.expm1,', SIM),
    m("sim: AP free dims 5", "nkigen/sim/emit.py",
      "_ap_dims(t.shape[1:], t.strides[1:]) > hw.MAX_AP_FREE_DIMS:",
      "_ap_dims(t.shape[1:], t.strides[1:]) > hw.MAX_AP_FREE_DIMS + 1:", SIM),
    # ---- reference and tolerances ----
    m("ref: accumulate subtracts", "nkigen/reference.py",
      "data = values[stmt.target] + data", "data = values[stmt.target] - data", REF),
    m("ref: mean off by one", "nkigen/reference.py",
      "v = _Val(v.data / self.ftype(count), v.axes)",
      "v = _Val(v.data / self.ftype(count + 1), v.axes)", REF),
    m("ref: relu is abs", "nkigen/reference.py",
      "Func.RELU: lambda x: np.maximum(x, 0),", "Func.RELU: lambda x: np.abs(x),", REF),
    m("ref: sigmoid sign", "nkigen/reference.py",
      "z = np.exp(-np.abs(x))", "z = np.exp(np.abs(x))", REF),
    m("ref: outputs not rounded to dtype", "nkigen/reference.py",
      "return decl.dtype.round(data).astype(ftype)", "return data.astype(ftype)", REF),
    m("dtypes: bfloat16 rounds as float16", "nkigen/dtypes.py",
      "DType.bfloat16: np.dtype(ml_dtypes.bfloat16),",
      "DType.bfloat16: np.dtype(np.float16),", REF),
    m("tol: storage flips x10", "nkigen/testdata.py",
      "STORE_FLIPS = 4.0", "STORE_FLIPS = 40.0", REF),
    m("tol: accumulation slack x10", "nkigen/testdata.py",
      "ACC_FACTOR = 8.0", "ACC_FACTOR = 80.0", REF),
    m("tol: transcendental allowance x512", "nkigen/testdata.py",
      "**{f: 2.0**-16 for f in", "**{f: 2.0**-7 for f in", REF),
    # ---- codegen ----
    m("codegen: classic affine loops sequential", "nkigen/templates/neuronxcc/ops.j2",
      '"parallel": "nl.affine_range"', '"parallel": "nl.sequential_range"', CODEGEN),
    m("codegen: matmul cost model cycles", "nkigen/codegen/matmul.py",
      "+ 128 / t.tensor_ghz", "+ 256 / t.tensor_ghz",
      ["tests/test_boundaries_cost.py", *CODEGEN]),
    m("codegen: slice stop off by one", "nkigen/codegen/render.py",
      "stop = sympy.expand(start + (size - 1) * step + 1)",
      "stop = sympy.expand(start + size * step + 1)", CODEGEN),
    m("codegen: column-reduce tile Min -> Max", "nkigen/codegen/colreduce.py",
      "P.Let(qsz, Min(sympy.Integer(GEMM_MOVING_FMAX), S(fsz) - S(q0))),",
      "P.Let(qsz, Max(sympy.Integer(GEMM_MOVING_FMAX), S(fsz) - S(q0))),", CODEGEN),
    # ---- library ----
    m("lib: tolerance x10 looser", "nkigen/library/unit.py",
      "(err <= atol + rtol * np.abs(want))", "(err <= 10 * (atol + rtol * np.abs(want)))", LIB),
    m("lib: goldens from the kernel output", "nkigen/library/unit.py",
      "{t.name: a for t, a in zip(spec.inputs, args)}, expected))",
      "{t.name: a for t, a in zip(spec.inputs, args)}, got))", LIB),
    m("lib: lax kernel dropped from invalid cases", "nkigen/library/unit.py",
      '    raise NkigenError(Diagnostic(\n        loc, "sizes", f"kernel accepted invalid sizes',
      '    return None\n    raise NkigenError(Diagnostic(\n        loc, "sizes", '
      'f"kernel accepted invalid sizes', LIB),
    m("lib: golden outputs always float32", "nkigen/library/golden.py",
      'out[f"output.{name}"] = f32 if exact else ref', 'out[f"output.{name}"] = f32', LIB),
    m("lib: suite rtol x1000", "nkigen/templates/library/conftest.py.j2",
      "rtol=rtol, atol=atol,", "rtol=rtol * 1000, atol=atol * 1000,", LIB),
    m("lib: suite ignores a missing golden output", "nkigen/templates/library/conftest.py.j2",
      "if sorted(expected) != sorted(outputs):", "if False:", LIB),
    m("lib: cache skips the hash check", "nkigen/library/cache.py",
      "or sha256_file(p) != digest:", "or False:", LIB),
    m("lib: cache key ignores the target", "nkigen/library/cache.py",
      "for part in (hashlib.sha256(spec_bytes).hexdigest(), version, str(target), dialect,",
      "for part in (hashlib.sha256(spec_bytes).hexdigest(), version, dialect,", LIB),
    m("lib: failures written without --keep-going", "nkigen/library/build.py",
      'if any(r.status == "failed" for r in results) and not options.keep_going:',
      'if any(r.status == "failed" for r in results) and options.keep_going:', LIB),
    m("lib: duplicate names allowed", "nkigen/library/build.py",
      "if r.status != \"failed\" and len(same) > 1:",
      "if r.status != \"failed\" and len(same) > 2:", LIB),
    m("lib: shared lock", "nkigen/library/atomic.py",
      "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
      "fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)", LIB),
    m("lib: OS error is a spec failure", "nkigen/library/build.py",
      "broken = next((r for r in results if r.os_error), None)", "broken = None", LIB),
    m("lib: no re-check at link time", "nkigen/library/build.py",
      'if r.status == "cached" and cache.sha256_file(tmp / rel) != digest:', "if False:", LIB),
    m("lib: tune symlink followed", "nkigen/library/build.py",
      "if src.is_symlink() or not src.is_dir():", "if not src.is_dir():", LIB),
    # ---- cost model ----
    m("cost: DMA in-flight 8", "nkigen/sim/cost_rules.py",
      "dma_inflight: int = 4", "dma_inflight: int = 8", COST),
    m("cost: small-chunk efficiency 0.3", "nkigen/sim/cost_rules.py",
      "dma_small_chunk_eff: float = 0.25", "dma_small_chunk_eff: float = 0.3", COST),
    m("cost: fp32 matmul 2x not 4x", "nkigen/sim/cost_rules.py",
      'return cyc * (2.0 if ins.attrs.get("onezero") else 4.0)',
      'return cyc * (2.0 if ins.attrs.get("onezero") else 2.0)', COST),
    m("cost: no MIN_II floor", "nkigen/sim/cost_rules.py",
      "return max(float(p.min_ii), cycles)", "return cycles", COST),
    m("cost: DMA fixed cost dropped from latency", "nkigen/sim/cost_rules.py",
      "return k, occ, xfer + target.dma_fixed_ns", "return k, occ, xfer", COST),
    # ---- codegen/flatmap.py ----
    m("flatmap: applies at exactly 128 elements", "nkigen/codegen/flatmap.py",
      "return not ext.is_Number or int(ext) > PMAX", "return not ext.is_Number or int(ext) >= PMAX",
      FLAT),
    m("flatmap: taken by the classic dialect", "nkigen/codegen/flatmap.py",
      "if b.classic or len(st.lhs) != 1 or", "if len(st.lhs) != 1 or", FLAT),
    m("flatmap: divided indices admitted", "nkigen/codegen/flatmap.py",
      "            if e.atoms(sympy.floor, sympy.Mod, sympy.ceiling):\n                return "
      "False\n",
      "", FLAT),
    m("flatmap: gathers admitted", "nkigen/codegen/flatmap.py",
      "        if a.indirect:\n            return False\n", "", FLAT),
    m("flatmap: row width rounded up", "nkigen/codegen/flatmap.py",
      "Min(sympy.Integer(FREE_TILE), sympy.floor(extent / rows_for))",
      "Min(sympy.Integer(FREE_TILE), sympy.ceiling(extent / rows_for))", FLAT),
    m("flatmap: last row starts one row early", "nkigen/codegen/flatmap.py",
      "(sympy.Integer(1), extent - width * whole, width * whole))",
      "(sympy.Integer(1), extent - width * whole, width * (whole - 1)))", FLAT),
    m("flatmap: last partial row unguarded", "nkigen/codegen/flatmap.py",
      "nodes = [P.If(sympy.Integer(0), cols, tuple(nodes), (), P.Cmp.LT)]",
      "nodes = [P.If(sympy.Integer(0), cols, tuple(nodes), (), P.Cmp.LE)]", FLAT),
    m("flatmap: group rows as single", "nkigen/codegen/flatmap.py",
      "ROWS_FOR_GROUP = 128", "ROWS_FOR_GROUP = 256", FLAT),
    m("flatmap: resident read anywhere", "nkigen/codegen/flatmap.py",
      "                        if tuple(sympy.sympify(x) for x in e.indices) != (isym,):\n"
      "                            raise Unsupported", "                        if False:\n"
      "                            raise Unsupported", FLAT),
    # equivalent as far as found: the planner takes back a failed group's constants itself
    # (planner.py, del b.consts[mark:]) and no single rank-1 statement was found whose flat
    # lowering fails (reversed, strided, integer, 2-D table and transcendental reads probed)
    m("flatmap: failed attempt keeps its constants", "nkigen/codegen/flatmap.py",
      "        del b.consts[mark:]\n", "", FLAT),
    # ---- codegen/flatten.py ----
    # equivalent: the frontend refuses a ranges entry that disagrees with a direct use
    # (ranges.n: ... disagrees), so a ranged left-hand index covers its dimension
    m("flatten: ranges indices admitted", "nkigen/codegen/flatten.py",
      "if len(st.lhs) < 2 or st.sum_indices or any(i in dict(spec.ranges) for i in st.lhs):",
      "if len(st.lhs) < 2 or st.sum_indices:", FLAT),
    # equivalent: every direct use of an index must agree with its dimension symbolically
    # (spec-language.md, Index extents), so x[m, n] beside y[m, n] has y's shape
    m("flatten: other shapes admitted", "nkigen/codegen/flatten.py",
      "if ix != own or tuple(sympy.sympify(s) for s in t.shape) != shape:", "if ix != own:", FLAT),
    m("flatten: keep ignored", "nkigen/codegen/flatten.py",
      "if keep or not spec.statements", "if not spec.statements", FLAT),
    m("flatten: tensor-free element refused", "nkigen/codegen/flatten.py",
      "            continue                # a tensor-free element (s[0]): read as it is",
      "            return False", FLAT),
    m("flatten: reductions admitted", "nkigen/codegen/flatten.py",
      "    if any(isinstance(x, (Reduce, Scan, IndexValue)) for x in walk(st.rhs)):\n"
      "        return False\n    decls",
      "    decls", FLAT),
    # ---- codegen/revrows.py ----
    m("revrows: floor lead not scaled by c", "nkigen/codegen/revrows.py",
      "start = sympy.expand(start + lead * cval)", "start = sympy.expand(start + lead)", DIVIDED),
    m("revrows: residue mask is c", "nkigen/codegen/revrows.py",
      "(P.AluOp.BITWISE_AND,\n                                                                 "
      "cval - 1)",
      "(P.AluOp.BITWISE_AND,\n                                                                 "
      "cval)",
      DIVIDED),
    m("revrows: residue lead dropped (nki)", "nkigen/codegen/revrows.py",
      "    elif not c.classic:\n        offset = sympy.expand(cols + lead * row_step)",
      "    elif not c.classic:\n        offset = cols", DIVIDED),
    m("revrows: classic residue lead not added", "nkigen/codegen/revrows.py",
      "add_lead = not is_floor and c.classic and lead != 0", "add_lead = False", DIVIDED),
    m("revrows: counted span without the phase", "nkigen/codegen/revrows.py",
      "span = (PMAX - 1 + cval - 1) // cval", "span = (PMAX - 1) // cval", DIVIDED),
    m("revrows: counted compare strict", "nkigen/codegen/revrows.py",
      "P.AluOp.GREATER_EQUAL,\n                               P.Scalar(ZERO)),",
      "P.AluOp.GREATER,\n                               P.Scalar(ZERO)),", DIVIDED),
    m("revrows: counted residue sign", "nkigen/codegen/revrows.py",
      "P.Scalar(sympy.Integer(-cval)), P.AluOp.ADD,", "P.Scalar(sympy.Integer(cval)), P.AluOp.ADD,",
      DIVIDED),
    m("revrows: counted in classic", "nkigen/codegen/revrows.py",
      "    if shift is None and c.classic:\n        return None",
      "    if False:\n        return None", DIVIDED),
    m("revrows: fp32-exact check skipped", "nkigen/codegen/revrows.py",
      "    if shift is None or add_lead:\n", "    if False:\n", DIVIDED),
    m("revrows: reversed base sign", "nkigen/codegen/revrows.py",
      "base = sympy.expand(src.offset - first * row_step)",
      "base = sympy.expand(src.offset + first * row_step)",
      REVERSED),
    m("revrows: reversed free axis one element off", "nkigen/codegen/revrows.py",
      "ahead = P.ApRef(src.name, sympy.expand(src.offset + (count - 1) * fstep),",
      "ahead = P.ApRef(src.name, sympy.expand(src.offset + count * fstep),", REVERSED),
    # equivalent: the classic dialect never mixes the partition and free indices in one
    # dimension (Compiler.mixed_dims is current-API only: 'access x[...] mixes m and n in one
    # dimension'), so dims[pd] never holds the free index there
    m("revrows: classic reversed free index below the rows", "nkigen/codegen/revrows.py",
      "any(fsym in dims[d].free_symbols for d in range(pd + 1)):",
      "any(fsym in dims[d].free_symbols for d in range(pd)):", REVERSED),
    # ---- codegen/gather.py ----
    m("gather: fp32-exact bound off by one", "nkigen/codegen/gather.py",
      "    if bound > FP32_EXACT_INT:", "    if bound > FP32_EXACT_INT + 1:", GATHER),
    m("gather: derived sizes not resolved", "nkigen/codegen/gather.py",
      "for _ in range(len(derived)):", "for _ in range(0):", GATHER),
    m("gather: classic row shift in nki", "nkigen/codegen/gather.py",
      "shift = sympy.expand(outer / row_step) if c.classic else ZERO",
      "shift = sympy.expand(outer / row_step) if not c.classic else ZERO", GATHER),
    m("gather: shift offset sign", "nkigen/codegen/gather.py",
      "offset = sympy.expand(base - ctx.p0 * pstep - shift * row_step)",
      "offset = sympy.expand(base - ctx.p0 * pstep + shift * row_step)", GATHER),
    m("gather: table never reshaped", "nkigen/codegen/gather.py",
      "fcount, sympy.simplify(row_step - row) != 0)", "fcount, False)", GATHER),
    m("gather: classic cross-row free index allowed", "nkigen/codegen/gather.py",
      "            if c.classic and fc != 0:\n                raise",
      "            if False:\n                raise", GATHER),
    # ---- codegen/turned.py ----
    m("turned: threshold +1", "nkigen/codegen/turned.py",
      "MIN_ELEMENTS = 4096 ", "MIN_ELEMENTS = 4097 ", TURNED),
    m("turned: a side of one turned", "nkigen/codegen/turned.py",
      "MIN_SIDE = 2 ", "MIN_SIDE = 1 ", TURNED),
    m("turned: integer inputs turned", "nkigen/codegen/turned.py",
      "a.indirect or a in got or \\\n                t.dtype.is_integer:",
      "a.indirect or a in got:", TURNED),
    m("turned: copy not swapped", "nkigen/codegen/turned.py",
      "swapped = (*lead, p, q)         # x_t", "swapped = (*lead, q, p)         # x_t", TURNED),
    m("turned: epilogue copy after the contraction", "nkigen/codegen/turned.py",
      "at = len(out) - 1 if k in epilogues else len(out)", "at = len(out)", TURNED),
    m("turned: scan along the wrong index", "nkigen/codegen/turned.py",
      "found[0].index != st.lhs[0]:", "found[0].index != st.lhs[1]:", TURNED),
    # ---- codegen/operands.py ----
    # not a bug: the split temp reads the target's pre-statement values, the reference's
    # semantics (c[m, n] += relu(a[m, k] * c[m, 0]) * b[k, n] matched at 130 x 129 x 65);
    # the real code refuses that spec instead (rows.check_self_reads), so it survives
    m("operands: target-reading factor split", "nkigen/codegen/operands.py",
      "                a.indirect or a.tensor == st.target for a in accs):",
      "                a.indirect for a in accs):", OPERANDS),
    m("operands: temp in bfloat16", "nkigen/codegen/operands.py",
      "tuple(ext[i] for i in order), DType.float32,",
      "tuple(ext[i] for i in order), DType.bfloat16,", OPERANDS),
    m("operands: no re-match", "nkigen/codegen/operands.py",
      "    if match(names, new) is None:\n        return None\n", "", OPERANDS),
    # ---- codegen/rows.py _period_chunk / tilexpr._free_division ----
    m("rows: period chunk not shortened", "nkigen/codegen/rows.py",
      "return fchunk - fchunk % step if step <= fchunk else fchunk", "return fchunk", PERIOD),
    m("rows: period chunk overrides a hint", "nkigen/codegen/rows.py",
      "if pl.f is None or (b.schedule is not None and b.schedule.tile(pl.f) is not None):",
      "if pl.f is None:", PERIOD),
    m("tilexpr: chunk width not a multiple of the period", "nkigen/codegen/tilexpr.py",
      "if not (width.is_Integer and int(width) % c == 0):\n"
      "            return None             # a chunk",
      "if not width.is_Integer:\n            return None             # a chunk", PERIOD),
    m("tilexpr: ragged period needs > c", "nkigen/codegen/tilexpr.py",
      "and int(least) >= c)", "and int(least) > c)", PERIOD),
    # equivalent: the bounds prover takes f % c + e up to c - 1 + e whatever the sizes (w[n % 4]
    # over w of N elements is refused: 'cannot prove Mod(n, 4) <= N - 1'), so every table a
    # period is read from holds the whole period e .. e + c - 1
    m("tilexpr: ragged period of any width", "nkigen/codegen/tilexpr.py",
      "whole = kind is sympy.floor or (inner == fcs and least.is_Integer\n"
      "                                            and int(least) >= c)",
      "whole = True", PERIOD),
    # ---- sim/spmd.py ----
    m("spmd: no deadlock check", "nkigen/sim/spmd.py",
      "        if done:\n            p = waiting[0]",
      "        if False:\n            p = waiting[0]", SIM9),
    m("spmd: mixed sync points", "nkigen/sim/spmd.py",
      "if len(kinds) > 1:", "if len(kinds) > 2:", SIM9),
    m("spmd: pipe ids unchecked", "nkigen/sim/spmd.py",
      "if q is None or q.sync[1][\"send_to\"] != p.k or \\\n"
      "                        q.sync[1][\"pipe_id\"] != info[\"pipe_id\"]:",
      "if q is None or q.sync[1][\"send_to\"] != p.k:", SIM9),
    m("spmd: received shape unchecked", "nkigen/sim/spmd.py",
      "if q.sync[1][\"shape\"] != info[\"dst_shape\"] or \\\n"
      "                        q.sync[1][\"dtype\"] != info[\"dst_dtype\"]:",
      "if q.sync[1][\"dtype\"] != info[\"dst_dtype\"]:", SIM9),
    m("spmd: SBUF peak of the first program", "nkigen/sim/spmd.py",
      "r.sbuf = max(pools, key=lambda q: q.peak)", "r.sbuf = min(pools, key=lambda q: q.peak)",
      SIM9),
    # ---- sim/nki/registers.py ----
    m("registers: 2**32 fits", "nkigen/sim/nki/registers.py",
      "if not -(1 << 31) <= v < (1 << 32):", "if not -(1 << 31) <= v <= (1 << 32):", SIM9),
    m("registers: -2**31-1 fits", "nkigen/sim/nki/registers.py",
      "if not -(1 << 31) <= v < (1 << 32):", "if not -(1 << 31) - 1 <= v < (1 << 32):", SIM9),
    m("registers: dynamic step 0", "nkigen/sim/nki/registers.py",
      "or step < 1:", "or step < 0:", SIM9),
    m("registers: uninitialised load", "nkigen/sim/nki/registers.py",
      "    if v == dt.fill_value(t.dtype):\n", "    if False:\n", SIM9),
    # equivalent: no legal simulator dtype is wider than 4 bytes (sim/dt.py BY_NAME; an int64
    # input is refused as an unsupported dtype before register_load sees it)
    m("registers: 64-bit tensor", "nkigen/sim/nki/registers.py",
      "if t.dtype.itemsize > 4:", "if t.dtype.itemsize > 8:", SIM9),
    m("registers: two-element tensor", "nkigen/sim/nki/registers.py",
      "if t.size != 1:", "if t.size > 2:", SIM9),
    m("registers: while on negative", "nkigen/sim/nki/registers.py",
      "return self.get(\"while reg\") != 0", "return self.get(\"while reg\") > 0", SIM9),
    # ---- sim/nki/views.py ----
    m("views: slice end past the dim", "nkigen/sim/nki/views.py",
      "if not 0 <= start < end <= t.shape[d]:", "if not 0 <= start < end <= t.shape[d] + 1:", SIM9),
    m("views: slice step 0", "nkigen/sim/nki/views.py",
      "    if step < 1:\n        raise SimError(\"slice",
      "    if step < 0:\n        raise SimError(\"slice", SIM9),
    m("views: select index == size", "nkigen/sim/nki/views.py",
      "        if not 0 <= i < t.shape[d]:\n            raise SimError(\"select: 0 <= index",
      "        if not 0 <= i <= t.shape[d]:\n            raise SimError(\"select: 0 <= index",
      SIM9),
    m("views: dynamic select index == size", "nkigen/sim/nki/views.py",
      "        if not 0 <= i < t.shape[d]:\n            raise SimError(\"select: dynamic",
      "        if not 0 <= i <= t.shape[d]:\n            raise SimError(\"select: dynamic", SIM9),
    m("views: broadcast on the partitions", "nkigen/sim/nki/views.py",
      "    _not_partition(t, d, \"broadcast\")\n", "", SIM9),
    m("views: flatten non-contiguous", "nkigen/sim/nki/views.py",
      "                t.strides[i] != t.strides[i + 1] * t.shape[i + 1]:",
      "                False:", SIM9),
    m("views: reshape_dim -1 non-dividing", "nkigen/sim/nki/views.py",
      "if known <= 0 or t.shape[d] % known:", "if known <= 0:", SIM9),
    m("views: permute moves the partitions", "nkigen/sim/nki/views.py",
      "if t.on_chip and dims[0] != 0:", "if False:", SIM9),
    m("views: squeeze to rank 1 on chip", "nkigen/sim/nki/views.py",
      "(t.on_chip and len(t.shape) == 2)", "(t.on_chip and len(t.shape) == 1)", SIM9),
    # ---- sim/nki/indirect.py ----
    m("indirect: address == size in bounds", "nkigen/sim/nki/indirect.py",
      "ok = (addr >= 0) & (addr < size)", "ok = (addr >= 0) & (addr <= size)", SIM9),
    m("indirect: negative address in bounds", "nkigen/sim/nki/indirect.py",
      "ok = (addr >= 0) & (addr < size)", "ok = (addr >= -1) & (addr < size)", SIM9),
    m("indirect: partition step unchecked", "nkigen/sim/nki/indirect.py",
      "if pattern and int(pattern[0][0]) != row:", "if False:", SIM9),
    m("indirect: rows row-major", "nkigen/sim/nki/indirect.py",
      "return idx.T.reshape(-1)[: self.nums[0]].astype(np.int64)",
      "return idx.reshape(-1)[: self.nums[0]].astype(np.int64)", SIM9),
    # equivalent: dst has src.shape[-1] partitions for every legal permutation, and no SBUF
    # tile has more than 128 (the partition-dim rule refuses it at nl.ndarray)
    m("indirect: transpose last dim 129", "nkigen/sim/nki/indirect.py",
      "elif s[-1] > 128:", "elif s[-1] > 129:", SIM9),
    m("indirect: transpose rows multiple of 8", "nkigen/sim/nki/indirect.py",
      "elif s[0] % 16:", "elif s[0] % 8:", SIM9),
    m("indirect: transpose on trn1", "nkigen/sim/nki/indirect.py",
      "elif run.target.nc_version < 3:\n        why",
      "elif run.target.nc_version < 2:\n        why", SIM9),
    m("indirect: transpose hwdge", "nkigen/sim/nki/indirect.py",
      "if dge_mode not in (\"unknown\", \"swdge\"):",
      "if dge_mode not in (\"unknown\", \"swdge\", \"hwdge\"):", SIM9),
    m("indirect: transpose indices 8", "nkigen/sim/nki/indirect.py",
      "elif not (16 <= idx.shape[0] <= 128 and idx.shape[0] % 16 == 0):",
      "elif not (8 <= idx.shape[0] <= 128 and idx.shape[0] % 8 == 0):", SIM9),
    # equivalent: vector_ap already refuses a pattern with more rows than idx.size, and
    # src.shape[0] is that row count
    m("indirect: transpose too few indices", "nkigen/sim/nki/indirect.py",
      "elif idx.size < s[0]:", "elif idx.size < s[0] - 16:", SIM9),
    m("indirect: gather count unchecked", "nkigen/sim/nki/indirect.py",
      "    n = math.prod(src.nums)\n    if n != dst.size:",
      "    n = math.prod(src.nums)\n    if False:", SIM9),
    m("indirect: pattern rows exceed the index tile", "nkigen/sim/nki/indirect.py",
      "if not pattern or int(pattern[0][1]) > idx.size:",
      "if not pattern or int(pattern[0][1]) > idx.size + 1:", SIM9),
    # ---- classic loop indices (loops.traced_extent, loops.float_of_index) ----
    m("classic: float() of a loop index", "nkigen/sim/classic/index.py",
      "    def __float__(self) -> float:\n",
      "    def __float__(self) -> float:\n        return float(int(self))\n", CLASSIC_IDX),
    m("classic: extent of a loop index allowed", "nkigen/sim/classic/index.py",
      "if (sc or tc) and _merge(tc, sc, -1):", "if False:", CLASSIC_IDX),
    m("classic: moving start refused", "nkigen/sim/classic/index.py",
      "if (sc or tc) and _merge(tc, sc, -1):", "if (sc or tc):", CLASSIC_IDX),
    # ---- testdata tolerance ----
    m("tol: fills count in rms", "nkigen/testdata.py",
      "    lits = fills(spec, name)\n    if not lits:",
      "    lits = fills(spec, name)\n    if True:", TOL),
    m("tol: inf in rms", "nkigen/testdata.py",
      "    a = a[np.isfinite(a)]\n", "", TOL),
    m("tol: integer flip 2", "nkigen/testdata.py",
      "INTEGER_FLIP = 1.0", "INTEGER_FLIP = 2.0", TOL),
    m("tol: output read later not an intermediate", "nkigen/testdata.py",
      "[t.dtype.eps for t in spec.outputs if t.name in read]", "[]", TOL),
    m("tol: scans not a reduction", "nkigen/testdata.py",
      "    groups += [(r.index,) for r in walk(stmt.rhs) if isinstance(r, Scan)]", "    pass", TOL),
    m("tol: accumulation linear in L", "nkigen/testdata.py",
      "ENGINE_EPS * math.sqrt(length)", "ENGINE_EPS * length", TOL),
    # ---- sim/batch.py ----
    m("batch: queue overflow drops products", "nkigen/sim/batch.py",
      "    elif len(q.ops) >= MAX_QUEUED:\n        flush(alloc)\n",
      "    elif len(q.ops) >= MAX_QUEUED:\n        pass\n", BATCH),
    m("batch: later accumulates", "nkigen/sim/batch.py",
      "        _apply(view, p.s, p.m, False)\n        return",
      "        _apply(view, p.s, p.m, True)\n        return", BATCH),
    m("batch: flush stores instead of adding", "nkigen/sim/batch.py",
      "            if p.acc:\n                p.view += r\n            else:\n"
      "                p.view[...] = r",
      "            p.view[...] = r", BATCH),
    m("batch: broken worker leaves products", "nkigen/sim/batch.py",
      "            if last.q.broken:       # a product raised",
      "            if False:       # a product raised", BATCH),
    m("batch: flush does not wait for the worker", "nkigen/sim/batch.py",
      "            if not last.done:\n                with lock:",
      "            if False:\n                with lock:", BATCH),
    m("batch: worker applies taken products", "nkigen/sim/batch.py",
      "                    if not p.owner:     # (taken by a flushing thread: skipped)\n"
      "                        break",
      "                    break", BATCH),
    m("batch: take ignores the shape", "nkigen/sim/batch.py",
      "    if d.dtype != np.float32 or \\\n            d.shape != (p.s.shape[1], p.m.shape[1]):",
      "    if d.dtype != np.float32:", BATCH),
    m("batch: FORCE ignored", "nkigen/sim/batch.py",
      "    if FORCE is not None:\n        return FORCE", "    if False:\n        return FORCE",
      BATCH),
    # ---- more of the same modules (second pass) ----
    m("loops: a two-iteration affine loop unchecked", "nkigen/sim/loops.py",
      "if kind == AFFINE and checked and run.numerics and trip > 1:",
      "if kind == AFFINE and checked and run.numerics and trip > 2:", LOOPS),
    m("loops: current affine_range checked", "nkigen/sim/loops.py",
      "return _loop(AFFINE, start, stop, step, checked=False)",
      "return _loop(AFFINE, start, stop, step, checked=True)", LOOPS),
    m("loops: program_id axis == grid rank", "nkigen/sim/loops.py",
      "if not 0 <= axis < max(len(run.grid), 1):", "if not 0 <= axis <= max(len(run.grid), 1):",
      LOOPS),
    m("loops: current num_programs defaults to the grid", "nkigen/sim/loops.py",
      "def num_programs_current(axes=0) -> int:", "def num_programs_current(axes=None) -> int:",
      LOOPS),
    m("registers: dynamic_range(stop) alone", "nkigen/sim/nki/registers.py",
      "    if stop is None:\n        start, stop = 0, start\n    a, b =",
      "    a, b =", SIM9),
    m("views: select drops the view offset", "nkigen/sim/nki/views.py",
      "offset=t.offset + i * t.strides[d])", "offset=i * t.strides[d])", SIM9),
    m("views: flatten_dims takes the outer stride", "nkigen/sim/nki/views.py",
      "t.strides[:a] + (t.strides[keep[-1]],) + t.strides[b + 1:])",
      "t.strides[:a] + (t.strides[keep[0]],) + t.strides[b + 1:])", SIM9),
    m("indirect: scalar offset not scaled by the stride", "nkigen/sim/nki/indirect.py",
      "return base.ap(pattern, int(offset or 0) + value * int(base.strides[d]))",
      "return base.ap(pattern, int(offset or 0) + value)", SIM9),
    m("spmd: sendrecv receives its own tile", "nkigen/sim/spmd.py",
      "p.inbox = q.sync[1][\"values\"]", "p.inbox = p.sync[1][\"values\"]", SIM9),
    m("tilexpr: shifted free division admitted", "nkigen/codegen/tilexpr.py",
      "if num != fsym or not den.is_Integer or int(den) < 2:",
      "if not den.is_Integer or int(den) < 2:", PERIOD),
    m("revrows: divided rows with the free index outside", "nkigen/codegen/revrows.py",
      "if len(fd) > 1 or (fd and fd[0] < d):", "if len(fd) > 1:", DIVIDED),
    m("gather: element count of the first dimension", "nkigen/codegen/gather.py",
      "    for s in t.shape:\n        numel = numel * sympy.sympify(s)",
      "    for s in t.shape[:1]:\n        numel = numel * sympy.sympify(s)", GATHER),
    # ---- classic period reads, classic merged outputs, residue conditions (this stop) ----
    m("residue: period column add (sign of zero)", "nkigen/codegen/tilexpr.py",
      "P.AluOp.SUBTRACT, col, reverse0=True))", "P.AluOp.ADD, col))", RESIDUE),
    m("residue: period step off by one", "nkigen/codegen/tilexpr.py",
      "P.Slice(sympy.Integer(j), reps, sympy.Integer(c))))\n            col = P.Ref(cols,",
      "P.Slice(sympy.Integer(j), reps, sympy.Integer(c + 1))))\n            col = P.Ref(cols,",
      RESIDUE),
    m("residue: classic integer period through float32", "nkigen/codegen/tilexpr.py",
      "        exact = period.dtype.is_integer\n", "        exact = False\n", RESIDUE),
    m("residue: no float32 operand copy", "nkigen/codegen/tilexpr.py",
      "        if not exact and period.dtype != F32:\n            # a tensor_scalar",
      "        if False:\n            # a tensor_scalar", RESIDUE),
    m("residue: condition value shift ignored", "nkigen/codegen/select.py",
      "sympy.Integer((j + k_) % den + r_)", "sympy.Integer(j % den + r_)", RESIDUE),
    m("residue: floor value without the chunk base", "nkigen/codegen/select.py",
      "Iota(view, base + (j + k_) // den + r_,", "Iota(view, (j + k_) // den + r_,", RESIDUE),
    m("residue: chunks inside a period", "nkigen/codegen/select.py",
      "    if not (width.is_Integer and int(width) % den == 0):\n        return None\n    f0",
      "    if not width.is_Integer:\n        return None\n    f0", RESIDUE),
    m("residue: classic integer period added, not OR-ed", "nkigen/codegen/tilexpr.py",
      "P.TensorScalar(view, view, P.AluOp.BITWISE_OR, col)",
      "P.TensorScalar(view, view, P.AluOp.ADD, col)", RESIDUE),
    # ---- classic counted rows (codegen/revrows.py _counted) ----
    m("revrows: classic lead as a scalar operand", "nkigen/codegen/revrows.py",
      "    if c.classic and not (is_floor and lead.is_Integer):\n        on_chip = lead",
      "    if False:\n        on_chip = lead", DIVIDED),
    m("revrows: classic residue rows counted twice", "nkigen/codegen/revrows.py",
      "        if not c.classic:\n            offset = sympy.expand(cols + lead * row_step)",
      "        if True:\n            offset = sympy.expand(cols + lead * row_step)", DIVIDED),
    # ---- shifted period reads (codegen/tilexpr.py periodic_load) ----
    m("period: shift dropped", "nkigen/codegen/tilexpr.py",
      "return c, fc, dims, q, int(shift) % c", "return c, fc, dims, q, 0", SHIFTED),
    m("period: classic shift column", "nkigen/codegen/tilexpr.py",
      "P.Slice(sympy.Integer((j + shift) % c),\n", "P.Slice(sympy.Integer(j % c),\n",
      SHIFTED),
    m("period: doubled window from its start", "nkigen/codegen/tilexpr.py",
      "sympy.Integer(shift), 2 * row", "ZERO, 2 * row", SHIFTED),
    # ---- contractions inside element-wise statements (codegen/einsum.py _inner_sums) ----
    m("einsum: inner sum without the contraction check", "nkigen/codegen/einsum.py",
      "    if match(names | {name}, pre) is None:\n        return None\n    taken.add(name)",
      "    taken.add(name)", INNER),
    # (the check that the sum's indices are the body's indices off the left-hand side is
    # defensive: the parser already refuses a sum over a left-hand index or an unused one, so
    # a mutant dropping it is equivalent)
    # ---- review 15: integer copies name VectorE (R15-1), no trn1 reciprocal bias (R15-2) ----
    m("review15: integer row copy without an engine", "nkigen/codegen/tilexpr.py",
      "P.Eng.VECTOR if same_int else None))", "None))", R15),
    m("review15: simulator lets the classic int32 copy pass", "nkigen/sim/isa_move.py",
      "    if run.classic and nc < 3 and (direct == \"classic\" or api == \"nl.copy\"):",
      "    if False:", R15),
    m("review15: simulator refuses int32 copies on trn2 too", "nkigen/sim/isa_move.py",
      "    if run.classic and nc < 3 and (direct == \"classic\" or api == \"nl.copy\"):",
      "    if run.classic and (direct == \"classic\" or api == \"nl.copy\"):", R15),
    m("review15: plane reciprocal keeps its bias on trn1", "nkigen/codegen/planes.py",
      "and not no_bias:", ":", R15),
    # ---- review 16: no turned copy of an access read only as gather ids (R16-1) ----
    m("review16: gather ids turned again", "nkigen/codegen/turned.py",
      "        if reads.count(a) == ids.count(a):\n            continue\n", "", R16),
    m("review16: ids also read as a value lose their turned copy", "nkigen/codegen/turned.py",
      "if reads.count(a) == ids.count(a):", "if a in ids:", R16),
    # ---- review 17: forms pinned to their doc rules (R17-1/2/4); R17-3's row block ----
    m("review17: swapped groups copied unreversed", "nkigen/codegen/tilexpr.py",
      "P.Slice(run.off + c - 1 - j, each, sympy.Integer(c)))),",
      "P.Slice(run.off + j, each, sympy.Integer(c)))),", R17),
    m("review17: swap copies without an engine", "nkigen/codegen/tilexpr.py",
      "P.Slice(run.off + c - 1 - j, each, sympy.Integer(c)))),\n                P.Eng.VECTOR))",
      "P.Slice(run.off + c - 1 - j, each, sympy.Integer(c)))),\n                None))", R17),
    m("review17: gather table never viewed as rows first", "nkigen/codegen/gather.py",
      "sympy.simplify(row_step - row) != 0)", "False)", R17),
    m("review17: hoisted broadcast fills one partition", "nkigen/codegen/rows.py",
      "    return Min(sympy.Integer(tp), pext)", "    return sympy.Integer(1)", R17),
    m("review17: x column loaded per k again", "nkigen/codegen/tilexpr.py",
      "        if self.classic:\n            return\n        ext = sympy.sympify(self.extents[j])",
      "        if True:\n            return\n        ext = sympy.sympify(self.extents[j])", R17),
    m("review17: row block budget boundary", "nkigen/codegen/tilexpr.py",
      "top * t.dtype.itemsize > ROW_BLOCK_BYTES:", "top * t.dtype.itemsize >= ROW_BLOCK_BYTES:",
      R17),
    m("review17: gather ids take the row block", "nkigen/codegen/tilexpr.py",
      "            if a in ids or a.indirect or a.tensor in ctx.bound",
      "            if a.indirect or a.tensor in ctx.bound", R17),
    m("review17: classic takes the row block", "nkigen/codegen/tilexpr.py",
      "        if self.classic:\n            return\n        ext = sympy.sympify(self.extents[j])",
      "        if False:\n            return\n        ext = sympy.sympify(self.extents[j])", R17),
    # ---- the prover's exact floor (analysis/prover.py) ----
    m("prover: floor upper bound off by one", "nkigen/analysis/prover.py",
      "else q * (b + 1) - p - 1)", "else q * (b + 1) - p)", PROVER),
    m("prover: ceiling lower bound off by one", "nkigen/analysis/prover.py",
      "p + q * (b + 1) - 1 if a == 1", "p + q * (b + 1) if a == 1", PROVER),
    # ---- comparisons through a floor division (codegen/divcmp.py) ----
    m("divcmp: strict less keeps the bound", "nkigen/codegen/divcmp.py",
      "CmpOp.LT: (CmpOp.LE, lambda c: -1)", "CmpOp.LT: (CmpOp.LE, lambda c: 0)", DIVCMP),
    m("divcmp: greater as greater-equal", "nkigen/codegen/divcmp.py",
      "CmpOp.GT: (CmpOp.GE, lambda c: c)", "CmpOp.GT: (CmpOp.GE, lambda c: 0)", DIVCMP),
    m("divcmp: upper bound past the period", "nkigen/codegen/divcmp.py",
      "CmpOp.LE: (CmpOp.LE, lambda c: c - 1)", "CmpOp.LE: (CmpOp.LE, lambda c: c)", DIVCMP),
    m("divcmp: negated floor keeps the operator", "nkigen/codegen/divcmp.py",
      "(_FLIP[cmp.op], rest)", "(cmp.op, rest)", DIVCMP),
    m("divcmp: '!=' branches not swapped", "nkigen/codegen/divcmp.py",
      "                if x.cond.op is CmpOp.NE:\n                    a, b = b, a",
      "                if False:\n                    a, b = b, a", DIVCMP),
    m("divcmp: coefficient two taken as one", "nkigen/codegen/divcmp.py",
      "if s not in (1, -1) or", "if s not in (1, -1, 2) or", DIVCMP),
    # ---- rows longer than one instruction or partition (codegen/argext.py _chunked,
    # codegen/rows.py scan_chunks; helper argchunk) ----
    m("argchunk: a tie in a later chunk wins", "nkigen/codegen/argext.py",
      "P.TensorTensor(col(gt), first(top), col(best), P.AluOp.GREATER)",
      "P.TensorTensor(col(gt), first(top), col(best), P.AluOp.GREATER_EQUAL)", LONG),
    m("argchunk: chunk start not advanced", "nkigen/codegen/argext.py",
      "P.Scalar(sympy.Float(float(ARG_CHUNK)))", "P.Scalar(sympy.Float(0.0))", LONG),
    m("argchunk: scan carry never updated", "nkigen/codegen/rows.py",
      "    body += carry.updates\n", "", LONG),
    m("argchunk: scan carry from the chunk's first column", "nkigen/codegen/scan.py",
      "P.Slice(ctx.fsz - 1, ONE)", "P.Slice(ZERO, ONE)", LONG),
]


def run_mutant(mu: Mutant, timeout: float) -> tuple[str, float, str]:
    with tempfile.TemporaryDirectory(prefix="nkigen-mutant-") as d:
        work = Path(d)
        work = work / "repo"     # the tests read specs/, examples/... next to the package
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(
            "__pycache__", ".git", "*.egg-info", ".mypy_cache", ".ruff_cache"))
        if mu.file:
            target = work / mu.file
            src = target.read_text()
            if src.count(mu.old) != 1:
                return "stale", 0.0, f"edit applies {src.count(mu.old)} times"
            target.write_text(src.replace(mu.old, mu.new))
        tests = [t for t in mu.tests if (work / t).exists()]
        env = dict(os.environ, PYTHONPATH=str(work), PYTHONDONTWRITEBYTECODE="1")
        t0 = time.perf_counter()
        try:
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                                "no:cacheprovider", *tests], cwd=work, env=env,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "killed", time.perf_counter() - t0, "timeout"
        dt = time.perf_counter() - t0
        if r.returncode == 0:
            return "SURVIVED", dt, ""
        fail = next((ln for ln in r.stdout.splitlines() if ln.startswith("FAILED")),
                    r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "")
        return "killed", dt, fail[:120]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only mutants whose name contains this (several: "
                    "separated by |)")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    chosen = [mu for mu in MUTANTS if any(k in mu.name for k in args.k.split("|"))]
    # baseline: every test group of the chosen mutants passes unmutated, else a "kill" would
    # mean nothing
    for group in dict.fromkeys(mu.tests for mu in chosen):
        status, dt, why = run_mutant(Mutant("baseline", "", "", "", tuple(group)), args.timeout)
        print(f"baseline {dt:6.1f}s  {' '.join(group)}  {why}", flush=True)
        if status != "SURVIVED":
            print("baseline fails: fix the tests first", file=sys.stderr)
            return 1
    counts = {"killed": 0, "SURVIVED": 0, "stale": 0}
    survivors = []
    for mu in chosen:
        status, dt, why = run_mutant(mu, args.timeout)
        counts[status] += 1
        if status == "SURVIVED":
            survivors.append(mu.name)
        print(f"{status:8s} {dt:6.1f}s  {mu.name}  {why}", flush=True)
    live = counts["killed"] + counts["SURVIVED"]
    rate = 100.0 * counts["killed"] / live if live else 0.0
    print(f"\nkill rate: {counts['killed']}/{live} = {rate:.1f} %  (stale: {counts['stale']})")
    for s in survivors:
        print(f"  survived: {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
