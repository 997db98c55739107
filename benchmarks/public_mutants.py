"""Mutation campaign over the PUBLIC current-API kernels: does the simulator catch bugs injected
into kernels nkigen did not write?

Stage: benchmark (simulator strictness). Not a test: it takes minutes.

The kernels are the cases of ``benchmarks/public_kernels_run.py`` that run and match their
NumPy reference unmodified (SDK examples, SDK document blocks, nki-samples, nki-library). Each
mutant is one edit of one line of the kernel's own file (the operators of
``benchmarks/kernel_mutants.py`` plus the public-style operators below), written into a copy of
the public tree, and classified by that driver's ``classify`` against the same reference and
tolerance, made stricter where the unmutated kernel still matches under it (relative to
the output's scale when that is below 1, see :func:`strict`, and 1e-3 instead of a looser case
tolerance).

Only lines the unmutated run executes are mutated (and no allocation of a tensor that no
executed line names): other sites are counted as ``DEAD`` and not run.

``KILLED-error`` a simulator error (``[located]`` when it names the mutated file, ``@line``
when also the mutated line), ``KILLED-wrong`` outputs outside the tolerance, ``KILLED-python``
the kernel itself raised, ``KILLED-crash`` a Python exception inside nkigen, ``SURVIVED`` still
matches (tagged with whether its outputs equal the unmutated run's; a survivor with a
:data:`NOTES` entry prints why the simulator is not at fault: an untested size or output, the
tolerance, a weak public test), ``EQUIVALENT`` a survivor listed in :data:`NOTES` with the
argument why the edit changes neither semantics nor legality. The totals say where the
located errors point.

``--classic DIR`` runs the same operators over the jitted kernels of the classic
(``neuronxcc.nki``) public test files ``DIR/test_*.py`` whose tests pass unmutated (e.g.
aws-neuron-sdk ``v2.25.0`` ``general/nki/test``), each mutant judged by the file's own tests
(:func:`classic_main`; about 8 minutes).

The public sources stay outside the project (see public_kernels_run.py); this driver copies
``--root`` to a scratch folder and edits only the copy::

    python benchmarks/public_mutants.py --root /tmp/pub10 [-k SUBSTR] [--ops a,b] [--sites N]
    python benchmarks/public_mutants.py --classic /tmp/pub10c/sdk/general/nki/test

Prints one line per mutant (``--survivors``: survivors only), then totals per class and per
operator.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import kernel_mutants as km  # noqa: E402
import public_kernels_run as pkr  # noqa: E402

# ---------------------------------------------------------------------------------------------
# public-style operators (the public kernels spell shapes, dtypes and calls differently from
# nkigen's own output: positional nc_matmul, dtype=x.dtype, bare `result` outputs)


def _params(lines: list[str], i: int) -> list[str]:
    """Parameter names of the nearest enclosing ``def`` above line ``i``."""
    for j in range(i, -1, -1):
        m = re.match(r"^\s*def \w+\((.*)", lines[j])
        if m:
            head = m.group(1)
            k = j
            while ")" not in head and k + 1 < len(lines):
                k += 1
                head += lines[k]
            head = head.split(")")[0]
            return [p.split(":")[0].split("=")[0].strip().lstrip("*") for p in head.split(",")
                    if p.strip() and not p.strip().startswith("*")]
    return []


def _alloc_insert(text: Callable[[str, str], str], buffer: str):
    """After an allocation in ``buffer`` (a line ``X = nl.ndarray(..., buffer=...)``), insert
    ``text(indent, X)``."""
    rx = re.compile(rf"^(\s+)(\w+) = nl\.(ndarray|zeros)\(.*buffer=nl\.{buffer}\b.*\)\s*$")

    def f(lines: list[str], i: int, k: km.Kernel) -> str | None:
        m = rx.match(lines[i])
        return f"{lines[i]}\n{text(m.group(1), m.group(2))}" if m else None
    return f


def _write_input(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """A store into the kernel's first input instead of its output."""
    m = re.search(r"(dma_copy\(\s*dst=|nl\.store\(\s*(?:dst=)?)(\w+)\b", lines[i])
    if not m or not km._is_hbm_out(m.group(2), lines) and m.group(2) not in (
            "result", "out", "output", "out_tensor"):
        return None
    ps = [p for p in _params(lines, i) if p not in (m.group(2), "self")]
    if not ps:
        return None
    return lines[i][:m.start(2)] + ps[0] + lines[i][m.end(2):]


def _slice_shift(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """The first slice ``a:b`` of an access in a DMA/compute call shifted by one (same size, one
    element past the end on the last tile)."""
    code, comment = km._split_comment(lines[i])
    if not re.search(r"nisa\.\w+\(|nl\.(load|store)\(", code):
        return None
    m = re.search(r"\[([^\[\]:,]+):([^\[\]:,]+)[,\]]", code)
    if not m:
        return None
    a, b = m.group(1).strip(), m.group(2).strip()
    new = f"[{a} + 1:{b} + 1" if a else f"[1:{b} + 1"
    return code[:m.start()] + new + code[m.end(2):] + comment


def _slice_end(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """The first slice ``a:b`` of an access in a DMA/compute call one element longer."""
    code, comment = km._split_comment(lines[i])
    if not re.search(r"nisa\.\w+\(|nl\.(load|store)\(", code):
        return None
    m = re.search(r"\[([^\[\]:,]*):([^\[\]:,]+)[,\]]", code)
    if not m:
        return None
    return code[:m.start(2)] + f"{m.group(2).strip()} + 1" + code[m.end(2):] + comment


def _scalar_for_tensor(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """tensor_tensor's second operand replaced by a Python scalar."""
    code, comment = km._split_comment(lines[i])
    if "tensor_tensor(" not in code:
        return None
    new = re.sub(r"data2=\w+(\[[^\]]*\])?", "data2=1.0", code, count=1)
    return new + comment if new != code else None


def _tensor_for_scalar(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """tensor_scalar's operand0 replaced by its full data tile (a [P, F] tensor where a scalar
    or a [P, 1] column is required)."""
    code, comment = km._split_comment(lines[i])
    if "tensor_scalar(" not in code:
        return None
    d = re.search(r"data=(\w+(?:\[[^\]]*\])?)", code)
    if not d:
        return None
    new = re.sub(r"operand0=[^,)]+(\[[^\]]*\])?", f"operand0={d.group(1)}", code, count=1)
    return new + comment if new != code else None


def _bcast_column(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """tensor_tensor's second operand narrowed to its first column (a shape NumPy broadcasting
    accepts)."""
    code, comment = km._split_comment(lines[i])
    if "tensor_tensor(" not in code:
        return None
    m = re.search(r"data2=(\w+)(?![\w\[])", code)
    if m:
        return code[:m.end()] + "[:, 0:1]" + code[m.end():] + comment
    m = re.search(r"data2=(\w+)\[([^\]]*),\s*([^,\]]+)\]", code)
    if not m:
        return None
    return code[:m.start(3)] + "0:1" + code[m.end(3):] + comment


def _dtype_any(to: str, when: str):
    """An allocation's dtype (literal or ``x.dtype``) in ``when`` buffers -> ``to``."""
    rx = re.compile(r"(dtype=)(nl\.\w+|\w+\.dtype|\w+)")

    def f(lines: list[str], i: int, k: km.Kernel) -> str | None:
        code, comment = km._split_comment(lines[i])
        if not re.search(rf"nl\.(ndarray|zeros)\(.*buffer=nl\.{when}\b", code):
            return None
        new = rx.sub(rf"\g<1>{to}", code, count=1)
        if new == code:          # positional dtype: nl.ndarray(shape, nl.float32, buffer=...)
            new = re.sub(r"(nl\.ndarray\((?:\([^()]*\)|[\w.]+),\s*)(nl\.\w+|\w+\.dtype)",
                         rf"\g<1>{to}", code, count=1)
        return new + comment if new != code else None
    return f


def _act_op_alu(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """tensor_tensor / tensor_scalar ALU op replaced by an activation function (exp is no ALU
    op)."""
    code, comment = km._split_comment(lines[i])
    if not re.search(r"tensor_(tensor|scalar)\(", code):
        return None
    new = re.sub(r"\bop0?=nl\.(add|multiply|subtract|maximum|minimum)\b", "op=nl.exp", code,
                 count=1)
    if "op0=" in code:
        new = re.sub(r"\bop0=nl\.\w+", "op0=nl.exp", code, count=1)
    return new + comment if new != code else None


def _act_on_gpsimd(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """activation issued with engine=gpsimd (activation runs on ScalarE only)."""
    code, comment = km._split_comment(lines[i])
    if not re.search(r"nisa\.activation\(", code) or "engine=" in code or not code.rstrip(
            ).endswith(")"):
        return None
    return code.rstrip()[:-1] + ", engine=nisa.engine.gpsimd)" + comment


def _matmul_fp32_psum_bf16(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """A PSUM allocation's dtype (literal, positional or x.dtype) -> bfloat16."""
    return _dtype_any("nl.bfloat16", "psum")(lines, i, k)


def _out_buffer(to: str):
    return km._sub(r"buffer=nl\.shared_hbm", f"buffer={to}")


def _psum_read_dma(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """The PSUM -> SBUF eviction (tensor_copy of a PSUM tile) done by a DMA into the output
    instead (DMA cannot access PSUM)."""
    code, comment = km._split_comment(lines[i])
    m = re.search(r"nisa\.tensor_copy\(dst=\w+(\[[^\]]*\])?, *src=(\w+)", code)
    if not m:
        return None
    if not any(re.search(rf"\b{m.group(2)} = nl\.(ndarray|zeros)\(.*buffer=nl\.psum", ln)
               for ln in lines):
        return None
    return code.replace("nisa.tensor_copy(", "nisa.dma_copy(", 1) + comment


def _engine_swap(to: str):
    """An explicit ``engine=`` of a compute call -> ``to``."""
    def f(lines: list[str], i: int, k: km.Kernel) -> str | None:
        code, comment = km._split_comment(lines[i])
        m = re.search(r"engine=nisa\.(?:engine\.)?(vector|scalar|gpsimd)(?:_engine)?\b", code)
        if not m or m.group(1) == to or "dma" in code:
            return None
        return code[:m.start()] + f"engine=nisa.engine.{to}" + code[m.end():] + comment
    return f


def _acc_flip(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """An explicit ``accumulate=`` of nc_matmul negated."""
    code, comment = km._split_comment(lines[i])
    m = re.search(r"accumulate=(True|False|\([^()]*\)|[\w.]+)", code)
    if not m:
        return None
    v = m.group(1)
    new = {"True": "False", "False": "True"}.get(v, f"(not {v})")
    return code[:m.start(1)] + new + code[m.end(1):] + comment


def _swap_tt(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """tensor_tensor's data1 and data2 swapped (a non-commutative op changes)."""
    code, comment = km._split_comment(lines[i])
    if "tensor_tensor(" not in code or not re.search(r"op=nl\.(subtract|divide|power)", code):
        return None
    return km._swap_kw("tensor_tensor(", "data1", "data2")([code], 0, k)


def _program_id_zero(lines: list[str], i: int, k: km.Kernel) -> str | None:
    """``nl.program_id(0)`` -> 0: every program of an SPMD grid does program 0's work."""
    code, comment = km._split_comment(lines[i])
    new = re.sub(r"nl\.program_id\(\s*(axis=)?0\s*\)", "0", code, count=1)
    return new + comment if new != code else None


OPS: list[km.Op] = [
    *km.OPS,
    km.Op("lit512+1", "literal 512 in a PSUM/SBUF shape -> 513",
          km._sub(r"(\(\s*|,\s*)512(?=\s*[,)])", r"\g<1>513", when=r"nl\.(ndarray|zeros)")),
    km.Op("psum-dt-bf16", "PSUM tile dtype (literal, positional or x.dtype) -> bfloat16",
          _matmul_fp32_psum_bf16),
    km.Op("sbuf-dt-int", "an SBUF tile's dtype (any spelling) -> int32", _dtype_any("nl.int32",
                                                                                  "sbuf")),
    km.Op("sbuf-dt-fp8", "an SBUF tile's dtype (any spelling) -> float8_e4m3",
          _dtype_any("nl.float8_e4m3", "sbuf")),
    km.Op("psum-9bank", "an extra 2 KiB + 4 B/partition PSUM tile (over one bank)",
          _alloc_insert(lambda ind, x: f"{ind}_extra = nl.ndarray((128, 513), "
                                       f"dtype=nl.float32, buffer=nl.psum)\n"
                                       f"{ind}nisa.memset(dst=_extra, value=0.0)", "psum")),
    km.Op("sbuf-224K+", "an extra SBUF tile of 224 KiB + 4 B per partition (over trn2's 28 MiB "
                        "SBUF, SH nki/guides/architecture/trainium2_arch.rst)",
          _alloc_insert(lambda ind, x: f"{ind}_extra = nl.ndarray((128, 57345), "
                                       f"dtype=nl.float32, buffer=nl.sbuf)\n"
                                       f"{ind}nisa.memset(dst=_extra, value=0.0)", "sbuf")),
    km.Op("sbuf-p129", "an extra 129-partition SBUF tile",
          _alloc_insert(lambda ind, x: f"{ind}_extra = nl.ndarray((129, 4), "
                                       f"dtype=nl.float32, buffer=nl.sbuf)\n"
                                       f"{ind}nisa.memset(dst=_extra, value=0.0)", "sbuf")),
    km.Op("slice-shift", "an access slice shifted one element (past the end at the last tile)",
          _slice_shift),
    km.Op("slice-end+1", "an access slice one element longer", _slice_end),
    km.Op("write-input", "a store into the kernel's first input instead of its output",
          _write_input),
    km.Op("tt-scalar", "tensor_tensor's tensor operand replaced by a scalar",
          _scalar_for_tensor),
    km.Op("ts-tensor", "tensor_scalar's scalar operand replaced by the data tile",
          _tensor_for_scalar),
    km.Op("tt-bcast", "tensor_tensor's second operand narrowed to one column (NumPy broadcast)",
          _bcast_column),
    km.Op("alu-exp", "an ALU op of tensor_tensor/tensor_scalar replaced by nl.exp", _act_op_alu),
    km.Op("act-gpsimd", "activation with engine=gpsimd", _act_on_gpsimd),
    km.Op("out-hbm", "the output allocated in nl.hbm (private) instead of nl.shared_hbm",
          _out_buffer("nl.hbm")),
    km.Op("out-private", "the output allocated in nl.private_hbm", _out_buffer("nl.private_hbm")),
    km.Op("psum-dma", "PSUM eviction by a DMA (DMA cannot access PSUM)", _psum_read_dma),
    km.Op("ds-shift", "nl.ds(start, size) -> nl.ds(start + 1, size)",
          km._sub(r"nl\.ds\(([^,()]+(?:\([^()]*\))?[^,()]*),", r"nl.ds(\1 + 1,")),
    km.Op("ds-size+1", "nl.ds(start, size) -> nl.ds(start, size + 1)",
          km._sub(r"(nl\.ds\([^,()]+(?:\([^()]*\))?[^,()]*,\s*)([^()]+?)\)", r"\1\2 + 1)")),
    km.Op("acc-flip", "an explicit nc_matmul accumulate= negated", _acc_flip),
    km.Op("eng->vector", "an explicit engine= -> vector", _engine_swap("vector")),
    km.Op("eng->scalar", "an explicit engine= -> scalar", _engine_swap("scalar")),
    km.Op("eng->gpsimd", "an explicit engine= -> gpsimd", _engine_swap("gpsimd")),
    km.Op("drop-transpose", "nc_matmul is_transpose=True dropped (a plain matmul)",
          km._sub(r",\s*is_transpose=True", "")),
    km.Op("add-transpose", "is_transpose=True added to a plain nc_matmul",
          km._sub(r"(nisa\.nc_matmul\(.*)\)\s*$", r"\1, is_transpose=True)",
                  when=r"^(?!.*is_transpose)")),
    km.Op("reduce-op", "tensor_reduce add -> maximum",
          km._sub(r"op=nl\.add\b", "op=nl.maximum", when=r"tensor_reduce\(")),
    km.Op("memset-val", "a memset value changed (0 -> 1, else -> 0)",
          km._sub(r"(memset\(.*value=)(0(?:\.0)?|[^,)]+)", lambda m: m.group(1) + (
              "1.0" if m.group(2) in ("0", "0.0") else "0.0"))),
    km.Op("swap-tt", "tensor_tensor data1/data2 swapped (non-commutative op)", _swap_tt),
    km.Op("sbuf->hbm", "an SBUF work tile allocated in HBM (engines cannot reach HBM)",
          km._sub(r"buffer=nl\.sbuf", "buffer=nl.shared_hbm", when=r"= nl\.(ndarray|zeros)\(")),
    km.Op("out-dt-int", "the output allocated int32 instead of its float dtype",
          km._sub(r"dtype=[\w.]+(?=, buffer=nl\.shared_hbm)", "dtype=nl.int32")),
    km.Op("del-barrier", "an SPMD core_barrier deleted (programs race)",
          km._delete(r"nisa\.core_barrier\(")),
    km.Op("pid-0", "nl.program_id(0) -> 0 (programs duplicate work)", _program_id_zero),
]

# Survivors explained: (operator regex, case-id regex, mutated-line regex, class, argument).
# EQUIVALENT: the mutant is a legal program computing the same outputs at every size these
# cases reach (argued; the line's "[outputs identical ...]" tag shows it for the inputs run).
# SURVIVED notes say why the simulator is not at fault (an untested size or output, the
# tolerance).
_DT = r"sbuf-dt-int|sbuf-dt-fp8|sbuf-int"
NOTES: list[tuple[str, str, str, str, str]] = [
    ("seq->affine", r"", r"", "EQUIVALENT",
     "current nki: affine_range is an alias of Python range(), loops run in order (SH nki/api/"
     "nki/language affine_range, nki 0.3+; deprecated)"),
    ("psum-9bank", r"", r"", "EQUIVALENT",
     "a 513-fp32 PSUM tile only memset writes is legal: current PSUM tensors may span banks (the "
     "simulator charges both); only a matmul output must fit one bank (SH nc_matmul 'Tile "
     "size'), and the 16 KiB total is checked (psum+16K mutants are killed)"),
    ("sbuf->psum", r"", r"", "EQUIVALENT",
     "only Vector/Scalar instructions touch the tile, and they read and write PSUM (SH "
     "nki/api/nki/isa tensor_tensor, tensor_scalar, activation 'Memory types'); a DMA, TensorE "
     "operand or GpSimd access is refused (the other sites of this operator are killed)"),
    (_DT, r"cumsum", r"init_sb|ones_sb", "EQUIVALENT",
     "the tile holds 0 or 1 (memset), exact in int32 and float8; tensor_tensor_scan computes in "
     "fp32"),
    (_DT, r"isa\.dma_copy\.indirect", r"idx =", "EQUIVALENT",
     "row indices < 2^31 are the same in int32; a vector_offset is an SBUF (P, 1) index tensor "
     "of no fixed dtype (SH dma_copy 'Indirect addressing')"),
    (_DT, r"transpose2d", r"in_tile", "EQUIVALENT",
     "the DMA widens int8 to int32 and narrows back exactly (SH dma_copy 'Data types')"),
    (_DT, r"cascaded_max", r"mask =|final_index|offset_r", "EQUIVALENT",
     "the tile holds a 0/1 mask or small integer indices, exact in int32 and float8"),
    (_DT, r"cross_entropy_backward", r"batch_chunk_indices_and_mask", "EQUIVALENT",
     "the tile holds vocabulary indices < 2048, then a 0/1 mask: exact in int32"),
    (_DT, r"cross_entropy_backward", r"batch_correction", "EQUIVALENT",
     "the tile holds 0 or the mean scale 1/64 = 2^-6, exact in float8_e4m3"),
    (_DT, r"cross_entropy_forward", r"batch_chunk_max|batch_m_diff|batch_correction",
     "SURVIVED", "untested size: with one vocabulary chunk (chunk_size = vocabulary) the "
     "running-max correction multiplies the initial sum 0 and the max is a softmax shift"),
    (_DT, r"router_topk", r"local_negmax_sb", "EQUIVALENT",
     "the negated max is the softmax shift: exp(x - c) / sum exp(x - c) for any c (a truncated "
     "shift changes the outputs by ~1e-7 of their scale)"),
    (_DT, r"router_topk", r"router_logits_topk_sb|router_indexes_topk_truek_sb_fp32",
     "EQUIVALENT", "the top-k values reach no output in this configuration (every expert's "
     "affinity is stored, no scatter, no norm) and the top-k indexes are integers"),
    (r"range\+1", r"cross_entropy", r"for batch_idx", "EQUIVALENT",
     "the extra batch stops at the kernel's `if actual_batch_size <= 0: break`"),
    (r"range\+1", r"matmul_fully_optimized", r"TILES_IN_BLOCK", "EQUIVALENT",
     "the extra iteration only allocates and memsets a tile no later instruction reads"),
    (r"range[+-]1", r"conv1d|rope_hf|router_topk", r"", "SURVIVED",
     "untested size: the loop runs once (C_in <= 128, one sequence tile) or not at all (one "
     "PE column tile) whatever the step or bound"),
    (r"pmax\+1", r"", r"assert ", "EQUIVALENT",
     "the kernel's own precondition is relaxed; the simulator still refuses a 129-partition "
     "tile (lit128+1 / sbuf-p129 mutants are killed)"),
    (r"pmax\+1", r"conv1d|qkv_tkg|rope_hf", r"", "SURVIVED",
     "untested size: the constant only bounds sizes <= 128 here (C_in, B * S, the sequence)"),
    (r"mov\+1", r"rope", r"is_relayout_in_sbuf_supported", "SURVIVED",
     "untested size: B * n_heads * S is far from 512 or 513 here"),
    (r"mov\*2", r"tensor_addition", r"TILE_N", "EQUIVALENT",
     "1024-column tensor_tensor tiles are legal (engine access up to 64K elements per "
     "partition in SBUF, SH trainium_inferentia2_arch.rst); no matmul here"),
    (r"memset-val", r"cross_entropy_forward", r"batch_d", "EQUIVALENT",
     "the initial running sum is multiplied by exp(-inf - m) = 0 at the first chunk"),
    (r"memset-val|del-memset", r"isa\.dma_transpose\.gather", r"", "EQUIVALENT",
     "the gather-transpose writes every element of the tile afterwards"),
    (r"memset-val", r"rmsnorm_tkg", r"eps", "SURVIVED",
     "tolerance: eps = 1e-6 against mean squares ~1 (outputs move by ~5e-7 of their scale)"),
    (r"acc-false", r"", r"", "EQUIVALENT",
     "the matmul is the first write of its PSUM location, where accumulate=None already "
     "overwrites (SH nc_matmul 'Accumulation mode')"),
    (r"copy->dma", r"", r"", "EQUIVALENT",
     "an SBUF -> SBUF DMA is legal (SH dma_copy 'Memory types'); same values"),
    (r"sbuf-f32", r"", r"", "EQUIVALENT",
     "a float32 intermediate where bfloat16 was chosen is legal (no matmul operand) and exact "
     "here"),
    (r"out-dt-int", r"cascaded_max", r"max_indices", "EQUIVALENT",
     "the output holds integer indices"),
    (r"out-dt-int", r"cross_entropy_forward", r"lse_state", "SURVIVED",
     "untested output: the driver compares the loss only (the log-sum-exp state is for the "
     "backward kernel)"),
    (r"drop-transpose", r"cascaded_max", r"", "EQUIVALENT",
     "float32 data times an identity is the same finite values as transpose mode; a float32 "
     "PSUM dst is legal for both"),
    (r"tt-bcast", r"cross_entropy_forward|rope_hf", r"", "EQUIVALENT",
     "the operand already has that shape (a (P, 1) column; a single tile along the sliced "
     "dim)"),
    (r"lit512\+1", r"sb_blocks", r"", "EQUIVALENT",
     "a wider allocation whose extra column no instruction touches"),
    (r"write-input|del-load", r"dynamic_elementwise_add", r"dst=result, src=result", "EQUIVALENT",
     "the line copies the output onto itself; writing an input is legal (SH guides/"
     "nki_simulator.rst: inputs are updated in place when the kernel writes them)"),
    (r"sbuf->hbm", r"dynamic_elementwise_add", r"num_m_tiles_sbuf", "EQUIVALENT",
     "register_load reads its scalar from HBM or SBUF (SH register_load); only DMAs touch "
     "the tensor"),
    # classic public tests (--classic; labels are the test file stems)
    (r"out-hbm", r"^test_", r"", "EQUIVALENT",
     "classic kernels may return nl.hbm tensors (S25 general/nki/api/nki.language hbm / "
     "shared_hbm; conformance row lang.outputs_hbm_classic)"),
    (r"acc-true", r"^test_", r"", "EQUIVALENT",
     "classic nc_matmul has no accumulate parameter (S25 signature ends in **kwargs): the "
     "keyword is ignored, accumulation is the `+=`"),
    (r"add-transpose", r"^test_(psum|sbuf)_modulo_alloc", r"identity_load", "EQUIVALENT",
     "the moving operand is an identity: a true transpose, same values"),
    (r"eng-gpsimd|eng->gpsimd", r"^test_nki_isa_tensor_copy", r"", "EQUIVALENT",
     "GpSimd copies SBUF tiles bit-accurately (S25 tensor_copy); no PSUM operand here"),
    (r"mask-drop", r"^test_nki_mask", r"", "EQUIVALENT",
     "the store keeps the same mask, so the lanes the square now also computes are never "
     "stored"),
    (r"del-load", r"^test_nki_nl_dslice", r"", "EQUIVALENT",
     "the example loads the same tile twice (slice and nl.ds forms); either load suffices"),
    (r"del-load", r"^test_nki_isa_copypredicated", r"", "SURVIVED",
     "weak public test: its golden is np.where(pred, a, <the kernel's own output>), so it "
     "cannot fail (the simulator's output is zeros where the predicate is false)"),
    (r"del-store", r"^test_nki_isa_nc_stream_shuffle", r"", "SURVIVED",
     "weak public test: test_broadcast_partition overwrites the whole output with the "
     "expected rows before comparing"),
    (r"out-dt-int|dtype-out-bf16", r"^test_nki_isa_(iota|max8)|^test_nki_simulate_kernel",
     r"", "SURVIVED", "weak public test or exact values: iota writes integers, max8's test "
     "checks only the range and the order, simulate_kernel's output is zeros"),
    (r"out-dt-int|dtype-out-bf16", r"^test_nki_isa_nc_matmul", r"", "SURVIVED",
     "weak public test: the products are ~3e5 (inputs * 100), where truncation to int32 is "
     "inside np.allclose's rtol 1e-5; the double-row output is 256 (exact in bf16)"),
    (r"psum-zeros|psum->sbuf", r"^test_nki_isa_nc_matmul", r"f_psum", "EQUIVALENT",
     "the classic `f_psum += nc_matmul(...)` starts its accumulation group at the first write "
     "(sim/classic/fresh.py); in SBUF the `+=` is an engine add onto the zeros, same values"),
    (r"iota-float", r"", r"", "EQUIVALENT",
     "iota casts its integer pattern to any dtype (SH nki/api/nki/isa iota; S25 iota); the "
     "values are exact in fp32"),
    (r"lit512\+1", r"^test_nki_nl_load_store", r"data_tile", "EQUIVALENT",
     "a wider zeros tile whose extra column no instruction reads"),
    (r"eng->scalar", r"", r"tensor_copy", "EQUIVALENT",
     "ScalarE tensor_copy is legal on NeuronCore-v3 (SH tensor_copy: not on v2 only, which "
     "the simulator refuses on trn1)"),
    (r"ragged\+1", r"lib/(cascaded_max|rope_hf|cross_entropy|output_projection_tkg|conv1d)", r"",
     "SURVIVED",
     "untested size: the cases run only sizes where the min() is not ragged (the per-program "
     "or per-chunk remainder is a whole block, or the bound equals the size), so the + 1 never "
     "reaches the min(); the outputs are bit-identical"),
    (r"tpose-dst", r"isa\.dma_transpose\.gather", r"dst_sb", "SURVIVED",
     "untested size: the case gathers a square block (P == F = 128), where the swapped shape "
     "is the same shape"),
    # mutants17
    (r"axis-neg", r"", r"", "EQUIVALENT",
     "axis=-1 is the last free axis of the reduced tile, the same axis as 1 (NumPy's negative "
     "axes; SH nki/api/nki/language softmax defaults to axis=-1)"),
    (r"keepdims-drop", r"", r"", "EQUIVALENT",
     "the reduction's dst is given ((P, 1)); keepdims only names the reduced axis' size-1 "
     "dimension, the same values"),
    (r"negate-flip", r"router_topk", r"negate=", "SURVIVED",
     "tolerance: the negated row max is the exp bias of a softmax, which is shift invariant "
     "(outputs differ by ~1e-7 of their scale)"),
    (r"dtype-kw", r"", r"", "SURVIVED",
     "accepted on purpose (nkigen/sim/nki/isa.py _cast_to): nki-samples' matrix_multiplication "
     "tutorial passes dtype= to dst-first calls; the bf16 rounding stays inside the tolerance "
     "(`nkigen lint` flags sig.unknown-keyword)"),
    (r"step2", r"", r"(\w+)-1:\1:2\]|0:1:2\]", "EQUIVALENT",
     "a step over a one-element range (n-1:n:2) selects the same element"),
    (r"range-step2", r"", r"", "SURVIVED",
     "untested size: the loop runs once at the public case's inputs (one tile), where "
     "range(0, n, 2) and range(n) agree; the outputs are bit-identical"),
    (r"pe-tile", r"cascaded_max", r"is_transpose=True", "EQUIVALENT",
     "the transposed operand is a (n, 1) column with n <= 64 at the case's sizes: it fits the "
     "64 x 64 PE tile at (0, 0), the same result"),
    (r"load-int|load-fp8", r"test_nki_isa_nc_matmul", r"a_input\.view", "SURVIVED",
     "weak public test: test_double_row_gen3's inputs are all ones, exact in int32 and "
     "float8_e4m3, so the cast load changes nothing it checks"),
    (r"load-int|load-fp8", r"test_nki_nl_dslice", r"\(i \* 512\):", "EQUIVALENT",
     "a dead load: the tile is reassigned on the next line (the nl.ds form) before any use"),
    (r"load-int", r"test_nki_nl_load_store_indirect", r"idx_tile = ", "EQUIVALENT",
     "the index tensor is int32 already: dtype=nl.int32 is the identity"),
    (r"sbuf-fp8", r"cumsum", r"init_sb|ones_sb", "EQUIVALENT",
     "the tile holds 0 or 1 (memset), exact in float8; tensor_tensor_scan computes in fp32"),
    (r"int-narrow", r"dynamic_elementwise_add", r"num_m_tiles_sbuf", "EQUIVALENT",
     "the (1, 1) tile holds the tile count (small), exact in int8; register_load reads it as "
     "a 32-bit integer"),
]


# ---------------------------------------------------------------------------------------------
# where each case's kernel lives, and running one mutant


def source_file(case: pkr.Case, root: Path) -> Path:
    kind, _, where = case.src.partition(":")
    if kind == "lib":
        base = root / "lib" / "src" / Path(*where.split("."))
        return base.with_suffix(".py") if base.with_suffix(".py").exists() \
            else base / "__init__.py"
    if kind == "doc":
        return pkr._doc_block(root, where)
    return root / kind / where


_DOC_OVERRIDE: dict[str, Path] = {}
_orig_doc_block = pkr._doc_block


def _doc_block(root: Path, where: str) -> Path:
    """The document block as already written (and possibly mutated) by this driver."""
    return _DOC_OVERRIDE.get(where) or _orig_doc_block(root, where)


def run_case(case: pkr.Case, root: Path, cover: Path | None = None) -> tuple[str, str]:
    """public_kernels_run.classify, with the case's library module re-imported from the copy.
    With ``cover``, the lines of that file the run executes are collected in :data:`COVERED`."""
    kind, _, where = case.src.partition(":")
    if kind == "lib":
        for name in [n for n in sys.modules if n == where or n.startswith(where + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()
    tracer = None
    if cover is not None:
        want = str(cover)
        COVERED.clear()

        def tracer(frame, event, arg):
            if frame.f_code.co_filename != want:
                return None

            def local(frame, event, arg):
                if event == "line":
                    COVERED.add(frame.f_lineno)
                return local
            COVERED.add(frame.f_lineno)
            return local
    old = sys.gettrace()
    outs = case.outs
    OUTPUTS.clear()

    def keep(o):
        OUTPUTS.append([np.array(x, np.float64) for x in (o if isinstance(o, tuple) else (o,))])
        return outs(o)
    sys.settrace(tracer)
    try:
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            return pkr.classify(replace(case, outs=keep), root)
    finally:
        sys.settrace(old)


COVERED: set[int] = set()
OUTPUTS: list[list[np.ndarray]] = []       # the outputs of the last run_case (when it ran)


def same_outputs(base: list[np.ndarray]) -> str:
    """How the last run's outputs compare with the unmutated kernel's ``base``."""
    if not OUTPUTS:
        return ""
    got = OUTPUTS[-1]
    if len(got) == len(base) and all(g.shape == b.shape and np.array_equal(g, b, equal_nan=True)
                                      for g, b in zip(got, base)):
        return " [outputs identical to the unmutated run]"
    diff = max((float(np.nanmax(np.abs(g - b)) / (np.nanmax(np.abs(b)) or 1.0))
                for g, b in zip(got, base) if g.shape == b.shape and g.size), default=0.0)
    return f" [outputs differ from the unmutated run by {diff:.2g} of their scale]"


_LOC = re.compile(r"^(/[^:]+):(\d+):\d+: ")


def outcome(kind: str, detail: str, path: Path, line: int) -> tuple[str, str]:
    if kind == "match":
        return "SURVIVED", "matches the reference"
    if kind in ("reject", "reject (expected)", "unsupported"):
        m = _LOC.match(detail)
        tag = ""
        if m and Path(m.group(1)) == path:
            tag = " [located@line]" if int(m.group(2)) == line else \
                f" [located, line {m.group(2)}]"
        elif m:
            tag = f" [NOT located: {Path(m.group(1)).name}:{m.group(2)}]"
        else:
            tag = " [NOT located]"
        rule = _LOC.sub("", detail)
        return "KILLED-error", f"{rule[:130]}{tag}"
    if kind == "wrong":
        return "KILLED-wrong", detail
    if kind == "crash":
        return "KILLED-crash", detail
    return "KILLED-python", f"{kind}: {detail[:140]}"


def _unused_alloc(m: km.Mutant, lines: list[str], covered: set[int]) -> bool:
    """The mutated line allocates a tensor no other executed line of the file names (an
    allocation kept for a branch these inputs do not take): editing it changes nothing run."""
    g = re.match(r"^\s*(\w+)\s*=\s*nl\.(ndarray|zeros)\(", m.old)
    if not g:
        return False
    rx = re.compile(rf"\b{g.group(1)}\b")
    return not any(rx.search(lines[n - 1]) for n in covered
                   if n != m.line and 0 < n <= len(lines))


def strict(case: pkr.Case) -> pkr.Case:
    """The case with each compared output and its reference divided by min(1, max |reference|):
    the driver's error |got - want| / (1 + |want|) then counts relative to the output's scale,
    so a mutant is not hidden by outputs much smaller than 1 (a mean cross-entropy gradient is
    ~1e-5 everywhere). Never looser than the case's own comparison."""
    if case.ref is None:
        return case
    try:
        args, kwargs = case.args(np.random.default_rng(0))
        want = case.ref(*args, **kwargs)
        scales = [min(1.0, float(np.max(np.abs(np.asarray(w, np.float64))))) or 1.0
                  for w in want]
    except Exception:                                   # noqa: BLE001 - keep the case as is
        return case
    if all(sc == 1.0 for sc in scales):
        return replace(case)
    outs, ref = case.outs, case.ref

    def scaled_outs(o):
        return tuple(np.asarray(g, np.float64) / sc for g, sc in zip(outs(o), scales))

    def scaled_ref(*a, **k):
        return tuple(np.asarray(w, np.float64) / sc for w, sc in zip(ref(*a, **k), scales))
    return replace(case, outs=scaled_outs, ref=scaled_ref)


def _spread(found: list, sites: int) -> list:
    """At most ``sites`` of ``found``: the first and the last, then evenly spread."""
    if len(found) <= sites:
        return found
    step = (len(found) - 1) / (sites - 1) if sites > 1 else 0
    return [found[round(j * step)] for j in range(sites)]


def explain(op: str, case_id: str, old: str, new: str) -> tuple[str, str] | None:
    for o, lab, line, cls, why in NOTES:
        if o and not re.fullmatch(o, op):
            continue
        if re.search(lab, case_id) and (re.search(line, new) or re.search(line, old)):
            return cls, why
    return None


class Tally:
    """Counts per class and operator, and the printing of one line per mutant."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.totals: Counter = Counter()
        self.per_op: dict[str, Counter] = {}
        self.placed: Counter = Counter()
        self.explained = 0
        self.units = 0

    def dead(self, op: str, n: int) -> None:
        self.totals["DEAD"] += n
        self.per_op.setdefault(op, Counter())["DEAD"] += n

    def add(self, label: str, m: km.Mutant, cls: str, det: str) -> None:
        if cls == "KILLED-error":
            self.placed[("at the mutated line" if "[located@line]" in det else
                         "in the kernel file" if "[located," in det else "elsewhere")] += 1
        if cls == "SURVIVED":
            note = explain(m.op.name, label, m.old, m.new)
            if note:
                cls, det = note[0], (note[1] if note[0] == "EQUIVALENT"
                                     else f"verified; {note[1]}")
                self.explained += cls == "SURVIVED"
        self.totals[cls] += 1
        self.per_op.setdefault(m.op.name, Counter())[cls] += 1
        if self.a.survivors and cls not in ("SURVIVED", "KILLED-crash"):
            return
        print(f"{cls:13} {label}:{m.line} {m.op.name}: {det}", flush=True)
        if self.a.v or cls in ("SURVIVED", "KILLED-crash"):
            print(f"{'':14}- {m.old.strip()[:150]}\n{'':14}+ {m.new.strip()[:150]}")

    def report(self, what: str, seconds: float) -> None:
        t = self.totals
        n = sum(v for c, v in t.items() if c != "DEAD")
        print(f"\n{n} mutants over {self.units} {what} in {seconds:.0f} s "
              f"(DEAD: candidate sites on lines the unmutated run never executes, not run)")
        for cls in ("KILLED-error", "KILLED-wrong", "KILLED-python", "KILLED-crash", "SURVIVED",
                    "EQUIVALENT", "DEAD"):
            print(f"  {cls:14} {t[cls]}")
        print(f"  (SURVIVED with a NOTES argument: {self.explained}; KILLED-error located "
              + ", ".join(f"{k} {v}" for k, v in sorted(self.placed.items())) + ")")
        print("per operator (error/wrong/python/crash/survived/equivalent/dead):")
        for opn, c in self.per_op.items():
            print(f"  {opn:14} {c['KILLED-error']}/{c['KILLED-wrong']}/{c['KILLED-python']}/"
                  f"{c['KILLED-crash']}/{c['SURVIVED']}/{c['EQUIVALENT']}/{c['DEAD']}")


def mutate_unit(tally: Tally, label: str, kernels: list[str], dialect: str, path: Path,
                text: str, covered: set[int], ops: list[km.Op],
                run: Callable[[km.Mutant], tuple[str, str]]) -> None:
    """Every operator's live sites in ``kernels`` of ``path`` (``text``), spread to at most
    ``--sites`` per operator and kernel, each written into ``path``, run by ``run`` (which
    returns the class and detail) and restored."""
    lines = text.splitlines()
    tally.units += 1
    for name in kernels:
        kern = km.Kernel(f"{label}::{name}", name, text, dialect)
        for op in ops:
            try:
                found = km.mutants(kern, [op], 10**9)
            except SyntaxError:
                found = []
            live = [m for m in found if tally.a.dead or m.line in covered
                    and not _unused_alloc(m, lines, covered)]
            tally.dead(op.name, len(found) - len(live))
            for m in _spread(live, tally.a.sites):
                path.write_text(km.mutated_source(m), encoding="utf-8")
                try:
                    cls, det = run(m)
                finally:
                    path.write_text(text, encoding="utf-8")
                tally.add(label, m, cls, det)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="/tmp/pub10", help="folder holding lib/, ns/, sdk/")
    ap.add_argument("-k", default="", help="only cases whose id contains this")
    ap.add_argument("--ops", default="", help="comma-separated operator names")
    ap.add_argument("--sites", type=int, default=2, help="sites per operator and kernel")
    ap.add_argument("--survivors", action="store_true", help="print only survivors")
    ap.add_argument("-v", action="store_true", help="print the mutated line of every mutant")
    ap.add_argument("--dead", action="store_true",
                    help="also run mutants of lines the unmutated run never executes (by "
                         "default they are counted as DEAD: no input here reaches them)")
    ap.add_argument("--classic", metavar="DIR", default="",
                    help="instead: mutate the jitted kernels of the classic (neuronxcc.nki) "
                         "public test files test_*.py in DIR whose tests pass unmutated, each "
                         "mutant judged by the file's own tests (see classic_main)")
    a = ap.parse_args(argv)
    ops = [o for o in OPS if not a.ops or o.name in a.ops.split(",")]
    if a.classic:
        return classic_main(a, ops)

    src_root = Path(a.root)
    root = Path(tempfile.mkdtemp(prefix="pubmut-"))
    for sub in ("lib", "ns", "sdk"):
        shutil.copytree(src_root / sub, root / sub, symlinks=True)
    sys.path.insert(0, str(root / "lib" / "src"))
    pkr._doc_block = _doc_block      # type: ignore[assignment]
    tally = Tally(a)
    t0 = time.time()
    seen_files: dict[Path, str] = {}
    for case in pkr.CASES:
        if a.k not in case.id or case.expect_reject:
            continue
        if case.src.startswith("doc:"):
            where = case.src.partition(":")[2]
            _DOC_OVERRIDE.pop(where, None)
            _DOC_OVERRIDE[where] = _orig_doc_block(root, where)
        path = source_file(case, root)
        if run_case(case, root)[0] != "match":
            continue
        for tight in (replace(strict(case), tol=min(case.tol, 1e-3)), strict(case)):
            if tight != case and run_case(tight, root)[0] == "match":
                case = tight
                break
        run_case(case, root, cover=path)
        base_outputs = OUTPUTS[-1] if OUTPUTS else []
        text = seen_files.setdefault(path, path.read_text(encoding="utf-8"))

        def run(m: km.Mutant, case=case, path=path, base=base_outputs) -> tuple[str, str]:
            cls, det = outcome(*run_case(case, root), path, m.line)
            return cls, det + (same_outputs(base) if cls == "SURVIVED" else "")
        mutate_unit(tally, case.id, [case.kernel], "nki", path, text, set(COVERED), ops, run)
    tally.report("public kernels", time.time() - t0)
    shutil.rmtree(root, ignore_errors=True)
    return 0


# ---------------------------------------------------------------------------------------------
# classic public tests


class _Reports:
    """pytest plugin: the outcome and failure text of each test."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            self.failed.append(str(report.longrepr))
        elif report.when == "call" and report.passed:
            self.passed += 1

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self.failed.append(str(report.longrepr))


def _pytest_file(path: Path, cover: bool = False) -> _Reports:
    """Run the tests of one file in-process under the simulator (``neuronxcc`` installed)."""
    import pytest

    from nkigen import sim
    for name in [n for n, mod in list(sys.modules.items())
                 if getattr(mod, "__file__", None) == str(path)]:
        del sys.modules[name]
    rep = _Reports()
    want = str(path)
    COVERED.clear()

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != want:
            return None

        def local(frame, event, arg):
            if event == "line":
                COVERED.add(frame.f_lineno)
            return local
        return local
    old = sys.gettrace()
    if cover:
        sys.settrace(tracer)
    try:
        with sim.installed(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            pytest.main([str(path), "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly",
                         "--rootdir", str(path.parent), "--import-mode=importlib"],
                        plugins=[rep])
    finally:
        sys.settrace(old)
    return rep


_SIM_LOC = re.compile(r"(/[^\s:]+\.py):(\d+):\d+: (sim|unsupported): ([^\n]*)")


def _classic_outcome(rep: _Reports, path: Path, line: int) -> tuple[str, str]:
    if not rep.failed:
        return "SURVIVED", "the file's tests pass"
    text = "\n".join(rep.failed)
    m = _SIM_LOC.search(text)
    if m:
        tag = (" [located@line]" if int(m.group(2)) == line else
               f" [located, line {m.group(2)}]") if Path(m.group(1)) == path else \
            f" [NOT located: {Path(m.group(1)).name}:{m.group(2)}]"
        return "KILLED-error", f"{m.group(3)}: {m.group(4)[:130]}{tag}"
    if "AssertionError" in text or "assert" in text.splitlines()[-1]:
        return "KILLED-wrong", "a test assertion fails"
    inside = re.findall(r"nkigen/sim/[\w/]+\.py:\d+: \w+", text)
    last = text.strip().splitlines()[-1][:140]
    return ("KILLED-crash", last) if inside and "Error" in last and \
        "nkigen/sim" in text.strip().splitlines()[-2] else ("KILLED-python", last)


def classic_main(a: argparse.Namespace, ops: list[km.Op]) -> int:
    """The classic public tests (e.g. aws-neuron-sdk v2.25.0 ``general/nki/test``): each file
    holds ``@nki.jit`` kernels and unittest/pytest tests comparing them with NumPy. A file whose
    tests pass unmutated is copied to a scratch folder; each mutant of one of its jitted kernels
    runs the file's tests there: a simulator error is KILLED-error, a failed assertion
    KILLED-wrong, passing tests SURVIVED."""
    import ast

    src = Path(a.classic)
    work = Path(tempfile.mkdtemp(prefix="pubmut-classic-"))
    tally = Tally(a)
    t0 = time.time()
    for f in sorted(src.glob("test_*.py")):
        if a.k not in f.name:
            continue
        path = work / f.name
        text = f.read_text(encoding="utf-8")
        path.write_text(text, encoding="utf-8")
        if _pytest_file(path).failed or not _pytest_file(path, cover=True).passed:
            continue
        covered = set(COVERED)
        tree = ast.parse(text)
        kernels = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and any(
            "jit" in ast.unparse(d) for d in n.decorator_list)]

        def run(m: km.Mutant, path=path) -> tuple[str, str]:
            return _classic_outcome(_pytest_file(path), path, m.line)
        mutate_unit(tally, f.stem, kernels, "neuronxcc", path, text, covered, ops, run)
    tally.report("classic public test files", time.time() - t0)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
