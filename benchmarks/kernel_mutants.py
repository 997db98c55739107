"""Kernel mutation campaign: does the simulator catch bugs injected into NKI kernels?

Stage: benchmark (simulator strictness). Not a test: it takes minutes.

Each mutant is one small edit of a kernel's source text of the kind an engineer gets wrong (a
partition dim of 129, a slice one past the end, a PSUM tile over one bank, a matmul operand over
its free-size limit, a PSUM tile in bf16, a dropped accumulation, a loop-carried dependency in an
``affine_range`` loop, a tile reused across iterations, an uninitialised read, swapped transpose
or matmul operands, a wrong mask, a store to the wrong output slice, off-by-one loop bounds, a
missing store, an activation function or engine the docs do not allow, ...). Each mutant runs in
the simulator and is compared with its reference the way nkigen verifies:

* kernels generated from ``specs/*.yaml`` (both dialects): every test case of the spec and the
  cases the build derives for size branches no test case reaches (``--no-derived``: only the
  spec's own), plus one larger stress case (``--no-stress``: without it), inputs
  from ``nkigen.testdata``, the float64 ``nkigen.reference``, the spec's tolerance and the
  build's comparison (``nkigen.library.unit.mismatches``), under the build's simulator profile
  (``nkigen.library.stages._sim_run``);
* hand-written kernels (``tests/sim_kernels``, ``tests/classic_kernels``, ``benchmarks/kernels``):
  fixed inputs, the unmutated kernel's own simulator output as the reference (those kernels are
  checked against NumPy by the test suite), rtol/atol 1e-3 (2^-7 relative for bf16 outputs).

Classes: ``KILLED-error`` (a located simulator error; the line says whether the location is the
kernel file and line), ``KILLED-wrong`` (an output outside the tolerance), ``KILLED-python`` (the
kernel itself raised a Python error: the mutant is not a valid program), ``SURVIVED`` (still
verified), ``EQUIVALENT`` (a survivor listed in :data:`NOTES` with a one-line argument why the
edit does not change semantics or legality). A survivor with a NOTES entry of class SURVIVED
prints why the simulator is not at fault (an untested size, the tolerance). A survivor also
says whether ``nkigen lint`` flags the mutant
(the build lints generated kernels; the simulator is what ``nkigen sim`` users rely on).

Usage (from the repository root)::

    python benchmarks/kernel_mutants.py [-k SUBSTR] [--ops a,b] [--sites N] [--quick] [-v]
        [--no-stress] [--no-derived] [--survivors] [--all-specs]

What a build verifies is ``--no-stress`` (declared and derived cases): a survivor there is a
coverage hole of the spec's cases.

``-k`` keeps kernels whose label contains SUBSTR; ``--quick`` a smaller kernel set;
``--all-specs`` every spec of specs/ instead of the :data:`SPECS` list.
Prints one line per mutant, then totals per class and per operator.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ---------------------------------------------------------------------------------------------
# kernels

SPECS = ["add", "softmax", "rmsnorm", "layernorm", "matmul_bias_gelu", "matmul_f32",
         "matmul_bt", "transpose", "attention", "causal_scores", "cumsum_rows", "row_argmax",
         "col_sum", "conv1d", "sgd_step", "mamba_scan", "avgpool2x2", "leaky_relu_where",
         "embedding_lookup", "row_max"]
QUICK_SPECS = ["add", "softmax", "rmsnorm", "matmul_bias_gelu", "transpose", "cumsum_rows",
               "attention"]


def _rng(seed: int = 0):
    return np.random.default_rng(seed)


def _f32(*shape, seed=0):
    return _rng(seed).standard_normal(shape).astype(np.float32)


def _bf16(*shape, seed=0):
    import ml_dtypes
    return _rng(seed).standard_normal(shape).astype(ml_dtypes.bfloat16)


def _pos(*shape, seed=0):
    return (_rng(seed).random(shape) * 0.5 + 0.1).astype(np.float32)


# (file, kernel, inputs builder, grid or None)
HAND: list[tuple[str, str, Callable[[], list], tuple | None]] = [
    ("tests/sim_kernels/basic.py", "tiled_add", lambda: [_f32(256, 512), _f32(256, 512, seed=1)],
     None),
    ("tests/sim_kernels/basic.py", "isa_add", lambda: [_f32(300, 64), _f32(300, 64, seed=1)],
     None),
    ("tests/sim_kernels/basic.py", "spmd_add", lambda: [_f32(256, 512), _f32(256, 512, seed=1)],
     (2, 2)),
    ("tests/sim_kernels/basic.py", "softmax", lambda: [_f32(256, 300)], None),
    ("tests/sim_kernels/basic.py", "softmax_nl", lambda: [_f32(256, 300)], None),
    ("tests/sim_kernels/basic.py", "rmsnorm", lambda: [_f32(256, 1024), _f32(1, 1024, seed=1)],
     None),
    ("tests/sim_kernels/basic.py", "layernorm",
     lambda: [_f32(128, 1024) * 3 + 1, _f32(1, 1024, seed=1), _f32(1, 1024, seed=2)], None),
    ("tests/sim_kernels/matmul.py", "matmul_tiled",
     lambda: [_bf16(256, 256), _bf16(256, 1024, seed=1)], None),
    ("tests/sim_kernels/matmul.py", "matmul_hoisted",
     lambda: [_bf16(256, 256), _bf16(256, 1024, seed=1)], None),
    ("tests/sim_kernels/matmul.py", "matmul_blocked",
     lambda: [_bf16(256, 256), _bf16(256, 1024, seed=1)], None),
    ("tests/sim_kernels/matmul.py", "matmul_nl", lambda: [_f32(64, 128), _f32(128, 512, seed=1)],
     None),
    ("tests/sim_kernels/matmul.py", "transpose_pe", lambda: [_f32(96, 128)], None),
    ("tests/sim_kernels/matmul.py", "transpose_dma", lambda: [_f32(96, 128)], None),
    ("tests/classic_kernels/basic.py", "exp_ragged", lambda: [_f32(300, 64) * 0.5], None),
    ("tests/classic_kernels/basic.py", "matmul_psum",
     lambda: [_f32(256, 128), _f32(256, 512, seed=1)], None),
    ("tests/classic_kernels/basic.py", "softmax", lambda: [_f32(300, 200)], None),
    ("tests/classic_kernels/basic.py", "layernorm_v1",
     lambda: [_f32(300, 256), _f32(1, 256, seed=1), _f32(1, 256, seed=2)], None),
    ("benchmarks/kernels/matmul_tutorial.py", "matmul_tiled",
     lambda: [_bf16(256, 256), _bf16(256, 1024, seed=1)], None),
    ("benchmarks/kernels/matmul_tutorial.py", "matmul_hoisted",
     lambda: [_bf16(256, 256), _bf16(256, 1024, seed=1)], None),
    ("benchmarks/kernels/matmul_tutorial.py", "matmul_block_free",
     lambda: [_bf16(256, 256), _bf16(256, 1024, seed=1)], None),
    ("benchmarks/kernels/row_tutorials.py", "rmsnorm_tutorial",
     lambda: [_f32(300, 256), _f32(256, seed=1)], None),
    ("benchmarks/kernels/row_tutorials.py", "layernorm_tutorial",
     lambda: [_f32(300, 700), _f32(700, seed=1), _f32(700, seed=2)], None),
    ("benchmarks/kernels/layernorm_tutorial.py", "layernorm_v2",
     lambda: [_f32(300, 700), _f32(1, 700, seed=1), _f32(1, 700, seed=2)], None),
    ("benchmarks/kernels/mamba_tutorial.py", "ssm_v2",
     lambda: [_pos(1, 128, 64), _f32(1, 128, 64, seed=1), -_pos(128, 4, seed=2),
              _f32(1, 4, 64, seed=3), _f32(1, 4, 64, seed=4)], None),
    ("tests/classic_kernels/basic.py", "iota_select", lambda: [_f32(128, 64)], None),
    ("benchmarks/kernels/attention_expert.py", "attention_expert",
     lambda: [_bf16(128, 64), _bf16(512, 64, seed=1), _bf16(512, 64, seed=2)], None),
]
QUICK_HAND = {"tiled_add", "isa_add", "matmul_tiled", "transpose_pe", "exp_ragged",
              "matmul_psum", "rmsnorm_tutorial"}


@dataclass
class Kernel:
    label: str            # spec:NAME:DIALECT or FILE::NAME
    name: str             # the kernel function
    source: str
    dialect: str          # nki | neuronxcc
    spec: object = None   # the Spec for generated kernels
    inputs: Callable[[], list] | None = None
    grid: tuple | None = None


def spec_kernels(names: list[str]) -> list[Kernel]:
    from nkigen.frontend import load_spec
    from nkigen.library.stages import _generate

    out = []
    for n in names:
        spec = load_spec(str(ROOT / "specs" / f"{n}.yaml"))
        for d in ("nki", "neuronxcc"):
            src, _ = _generate(spec, spec.target or "trn2", d, None)
            out.append(Kernel(f"spec:{n}:{d}", spec.name, src, d, spec=spec))
    return out


def hand_kernels(keep: Callable[[str], bool]) -> list[Kernel]:
    out = []
    for f, name, inputs, grid in HAND:
        if not keep(name):
            continue
        src = (ROOT / f).read_text()
        d = "neuronxcc" if "neuronxcc" in src else "nki"
        out.append(Kernel(f"{f}::{name}", name, src, d, inputs=inputs, grid=grid))
    return out


# ---------------------------------------------------------------------------------------------
# mutation operators: each maps (lines, i) -> the mutated line (or None: no site here)

@dataclass(frozen=True)
class Op:
    name: str
    what: str
    site: Callable[[list[str], int, Kernel], str | None]


def _sub(pat: str, repl: str | Callable, count: int = 1, when: str | None = None):
    rx, wx = re.compile(pat), re.compile(when) if when else None

    def f(lines: list[str], i: int, k: Kernel) -> str | None:
        code, comment = _split_comment(lines[i])
        if not code.strip() or (wx and not wx.search(code)):
            return None
        new = rx.sub(repl, code, count=count)
        return new + comment if new != code else None
    return f


def _split_comment(ln: str) -> tuple[str, str]:
    """(code, trailing comment) of a line; a '#' inside a string literal is code."""
    quote = None
    for j, ch in enumerate(ln):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return ln[:j], ln[j:]
    return ln, ""


def _code(ln: str) -> bool:
    s = ln.strip()
    return bool(s) and not s.startswith(("#", '"', "'", "assert", "def ", "@", "import",
                                          "from "))


def _delete(pat: str):
    rx = re.compile(pat)

    def f(lines: list[str], i: int, k: Kernel) -> str | None:
        ln = lines[i]
        if not _code(ln) or not rx.search(ln) or ln.rstrip().endswith(("(", ",")):
            return None
        # a call spread over several lines: only when it closes on this line
        if ln.count("(") != ln.count(")"):
            return None
        ind = ln[:len(ln) - len(ln.lstrip())]
        return f"{ind}pass  # mutant: deleted"
    return f


def _realloc_delete(lines: list[str], i: int, k: Kernel) -> str | None:
    """Delete a re-allocation `X = nl.ndarray(...)` inside a loop when X was bound before: the
    old tile is reused across iterations."""
    m = re.match(r"^(\s+)(\w+) = nl\.(ndarray|zeros)\(.*\)\s*$", lines[i])
    if not m:
        return None
    ind, name = m.group(1), m.group(2)
    loop = any(re.match(rf"^{lines[j][:len(lines[j]) - len(lines[j].lstrip())]}for ", lines[j])
               and len(lines[j]) - len(lines[j].lstrip()) < len(ind)
               for j in range(i - 1, max(-1, i - 40), -1))
    before = any(re.match(rf"^\s+{name} = nl\.", lines[j]) for j in range(max(0, i - 60), i))
    return f"{ind}pass  # mutant: {name} not re-allocated" if loop and before else None


def _swap_kw(call: str, a: str, b: str):

    def f(lines: list[str], i: int, k: Kernel) -> str | None:
        ln = lines[i]
        if call not in ln or f"{a}=" not in ln or f"{b}=" not in ln:
            return None
        return ln.replace(f"{a}=", "\0").replace(f"{b}=", f"{a}=").replace("\0", f"{b}=")
    return f


def _swap_matmul(lines: list[str], i: int, k: Kernel) -> str | None:
    ln = lines[i]
    if "nc_matmul(" not in ln:
        return None
    if "stationary=" in ln and "moving=" in ln:
        return ln.replace("stationary=", "\0").replace("moving=", "stationary=").replace(
            "\0", "moving=")
    head, _, tail = ln.partition("nc_matmul(")
    args = _split_args(tail)
    if args is None:
        return None
    parts, rest = args
    pos = [j for j, p in enumerate(parts) if "=" not in p.split("[")[0]]
    # current API: (dst, stationary, moving); classic: (stationary, moving)
    ia, ib = (pos[1], pos[2]) if k.dialect == "nki" and len(pos) >= 3 else (
        (pos[0], pos[1]) if len(pos) >= 2 else (None, None))
    if ia is None:
        return None
    parts[ia], parts[ib] = parts[ib], parts[ia]
    return head + "nc_matmul(" + ", ".join(p.strip() for p in parts) + rest


def _split_args(tail: str):
    """Split `a, b[c, d], e=f)rest` at top-level commas up to the closing paren."""
    depth, cur, parts = 0, "", []
    for j, ch in enumerate(tail):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                parts.append(cur)
                return parts, tail[j:]
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    return None


def _store_slice(lines: list[str], i: int, k: Kernel) -> str | None:
    """A store to the wrong output slice: the tile offsets (p0, r0, c0, ...) of the HBM side of
    a store set to 0, so every tile lands on the first one."""
    ln = lines[i]
    m = re.search(r"(dma_copy\(dst=|nl\.store\()(\w+)\[([^\]]*)\]", ln)
    if not m or not _is_hbm_out(m.group(2), lines):
        return None
    idx = m.group(3)
    new = re.sub(r"\b([a-z]{1,3}\d*0|i \* \w+|\w+ \* TILE_\w+|\w+ \* P(MAX)?)\b(?! *:)", "0",
                 idx, count=1)
    if new == idx:
        return None
    return ln[:m.start(3)] + new + ln[m.end(3):]


def _is_hbm_out(name: str, lines: list[str]) -> bool:
    return any(re.search(rf"\b{name} = nl\.ndarray\(.*shared_hbm", ln) for ln in lines) or \
        any(re.search(rf"def \w+\(.*\b{name}\b", ln) for ln in lines if "stage" in ln)


def _psum_double(lines: list[str], i: int, k: Kernel) -> str | None:
    ln = lines[i]
    if "buffer=nl.psum" not in ln:
        return None
    m = re.search(r"\(\(([^()]*?),\s*([^(),]+?),?\)", ln)
    if not m:
        return None
    return ln[:m.start()] + f"(({m.group(1)}, 2 * {m.group(2)})" + ln[m.end():]


def _loop_bound(delta: str):
    rx = re.compile(r"^(\s*for \w+ in (?:nl\.)?(?:affine_|sequential_|static_)?range\()(.*)(\):)")

    def f(lines: list[str], i: int, k: Kernel) -> str | None:
        m = rx.match(lines[i])
        if not m:
            return None
        return f"{m.group(1)}{m.group(2)} {delta}{m.group(3)}" + lines[i][m.end():]
    return f


def _seq_to_affine(lines: list[str], i: int, k: Kernel) -> str | None:
    ln = lines[i]
    if "nl.sequential_range(" in ln:
        return ln.replace("nl.sequential_range(", "nl.affine_range(")
    # current API kernels print loops as Python range: a loop with a carried dependency
    if k.dialect == "nki" and re.match(r"^\s*for \w+ in range\(", ln):
        return ln.replace(" range(", " nl.affine_range(", 1)
    return None


def _insert_after_psum(lines: list[str], i: int, k: Kernel) -> str | None:
    """An extra PSUM tile of 16 KiB per partition next to an existing one: more than 8 banks."""
    ln = lines[i]
    if "buffer=nl.psum" not in ln or not re.match(r"^\s+\w+ = nl\.", ln):
        return None
    ind = ln[:len(ln) - len(ln.lstrip())]
    return (f"{ln}\n{ind}_extra = nl.zeros((128, 4096), dtype=nl.float32, buffer=nl.psum)")


OPS: list[Op] = [
    Op("pmax+1", "partition tile size 128 -> 129",
       _sub(r"nl\.tile_size\.pmax\b(?! *\+)", "(nl.tile_size.pmax + 1)")),
    Op("lit128+1", "literal 128 in a shape -> 129",
       _sub(r"(\(\s*|,\s*)128(?=\s*[,)])", r"\g<1>129", when=r"nl\.(ndarray|zeros)|^\w+ = 128")),
    Op("stat+1", "matmul stationary free size 128 -> 129",
       _sub(r"nl\.tile_size\.gemm_stationary_fmax\b", "(nl.tile_size.gemm_stationary_fmax + 1)")),
    Op("mov+1", "matmul moving free size 512 -> 513",
       _sub(r"nl\.tile_size\.gemm_moving_fmax\b", "(nl.tile_size.gemm_moving_fmax + 1)")),
    Op("mov*2", "matmul moving free size 512 -> 1024 (BANK/TN constants)",
       _sub(r"^(\s*(?:BANK|TN|TILE_N|SEQ_TILE)\s*=\s*)(\S.*?)(\s*(#.*)?)$", r"\g<1>2 * (\2)\3")),
    Op("psum*2", "PSUM tile free size doubled (over one 2 KiB bank)", _psum_double),
    Op("psum+16K", "an extra 16 KiB/partition PSUM tile (more than 8 banks)", _insert_after_psum),
    Op("psum-bf16", "PSUM accumulation tile fp32 -> bf16",
       _sub(r"nl\.float32(?=.*buffer=nl\.psum)", "nl.bfloat16")),
    Op("sbuf-int", "an fp32 SBUF tile -> int32",
       _sub(r"dtype=nl\.float32(?=.*buffer=nl\.sbuf)", "dtype=nl.int32")),
    Op("acc-drop", "classic `+= nc_matmul` -> `=` (accumulation dropped)",
       _sub(r"\] \+= nisa\.nc_matmul\(", "] = nisa.nc_matmul(")),
    Op("acc-false", "nc_matmul accumulate forced False",
       _sub(r"(nisa\.nc_matmul\(.*)\)\s*$", r"\1, accumulate=False)", when=r"^(?!.*accumulate)")),
    Op("acc-true", "nc_matmul accumulate forced True",
       _sub(r"(nisa\.nc_matmul\(.*)\)\s*$", r"\1, accumulate=True)", when=r"^(?!.*accumulate)")),
    Op("psum-zeros", "zeroed PSUM accumulator -> uninitialised nl.ndarray",
       _sub(r"nl\.zeros\((?=.*buffer=nl\.psum)", "nl.ndarray(")),
    Op("seq->affine", "a sequential loop (carried dependency) -> affine_range", _seq_to_affine),
    Op("no-realloc", "tile not re-allocated in a loop (reused across iterations)",
       _realloc_delete),
    Op("del-memset", "memset deleted (uninitialised read)", _delete(r"\bmemset\(|nl\.zeros\(")),
    Op("del-load", "an HBM->SBUF load deleted (uninitialised read)",
       _delete(r"dma_copy\(dst=\w+\[0:|dma_copy\(dst=\w+,|= nl\.load\(")),
    Op("del-store", "a store to the output deleted", _delete(r"dma_copy\(dst=[a-z]\w*\[(?!0:)"
                                                             r"|nl\.store\(")),
    Op("swap-mm", "matmul stationary and moving swapped", _swap_matmul),
    Op("swap-T", "transpose dst and src/data swapped",
       lambda ls, i, k: (_swap_kw("nc_transpose", "dst", "data")(ls, i, k)
                         or _swap_kw("dma_transpose", "dst", "src")(ls, i, k))),
    Op("mask<=", "mask `<` -> `<=` (one lane too many)",
       _sub(r"(mask=.*?) < ", r"\1 <= ", when=r"mask=")),
    Op("mask-drop", "mask= removed",
       _sub(r", mask=\((?:[^()]|\([^()]*\)|\([^()]*\([^()]*\)[^()]*\))*\)", "")),
    Op("store-slice", "store to the wrong output slice (tile offset 0)", _store_slice),
    Op("range-1", "loop bound one short", _loop_bound("- 1")),
    Op("range+1", "loop bound one long", _loop_bound("+ 1")),
    Op("slice+1", "an on-chip slice shifted one partition past the end",
       _sub(r"\[0:(TILE_\w+|PMAX|P|psz|rsz|\w+sz)(?=[,\]])", r"[1:\1 + 1")),
    Op("hbm+1", "an HBM read slice shifted one row (past the end on the last tile)",
       _sub(r"src=(\w+)\[(\w+):(\w+) \+ (\w+),", r"src=\1[\2 + 1:\3 + \4 + 1,")),
    Op("act-bad", "activation function not in the documented table (ALU op as activation)",
       _sub(r"(activation(?:_reduce)?\((?:dst=\w+\[[^\]]*\], )?op=)nl\.\w+", r"\1nl.maximum")),
    Op("op-swap", "ALU add -> subtract", _sub(r"op=nl\.add\b", "op=nl.subtract")),
    Op("eng-gpsimd", "vector engine -> gpsimd for an ALU op (documented for few ops)",
       _sub(r"engine=nisa\.(engine\.vector|vector_engine)", r"engine=nisa.\1")),
    Op("eng-scalar-tt", "tensor_tensor issued on ScalarE",
       _sub(r"(tensor_tensor\(.*engine=nisa\.)(engine\.vector|vector_engine)",
            lambda m: m.group(1) + ("engine.scalar" if "engine." in m.group(2)
                                    else "scalar_engine"))),
    Op("axis0", "reduction over the partition axis (axis=1 -> axis=0)",
       _sub(r"axis=1\b", "axis=0")),
    Op("psum->sbuf", "a PSUM tile (matmul/transpose destination) allocated in SBUF",
       _sub(r"buffer=nl\.psum", "buffer=nl.sbuf")),
    Op("sbuf->psum", "an SBUF work tile allocated in PSUM",
       _sub(r"buffer=nl\.sbuf", "buffer=nl.psum", when=r"= nl\.(ndarray|zeros)\(")),
    Op("out-sbuf", "the kernel output allocated on chip instead of HBM",
       _sub(r"buffer=nl\.shared_hbm", "buffer=nl.sbuf")),
    Op("dma->copy", "a DMA replaced by an engine copy (engines cannot reach HBM)",
       _sub(r"nisa\.dma_copy\((?=dst=)", "nisa.tensor_copy(")),
    Op("copy->dma", "an engine copy replaced by a DMA (DMA cannot reach PSUM)",
       _sub(r"nisa\.tensor_copy\((?=dst=)", "nisa.dma_copy(")),
    Op("act-sigmoid", "GELU -> gelu_apprx_sigmoid (a current-API-only table entry)",
       _sub(r"op=nl\.gelu\b", "op=nl.gelu_apprx_sigmoid")),
    Op("alu-absmax", "ALU maximum -> abs_max (NeuronCore-v4 only)",
       _sub(r"op=nl\.maximum\b", "op=nl.abs_max")),
    Op("iota-float", "iota into a float tile", _sub(r"(iota\(.*dtype=)nl\.int32", r"\1nl.float32")),
    Op("sbuf-f32", "a bf16 SBUF tile -> fp32 (mixed matmul operands, wider copies)",
       _sub(r"dtype=nl\.bfloat16(?=.*buffer=nl\.sbuf)", "dtype=nl.float32")),
    Op("dtype-out-bf16", "output allocated bf16 instead of fp32",
       _sub(r"dtype=nl\.float32(?=, buffer=nl\.shared_hbm)", "dtype=nl.bfloat16")),
]
# eng-gpsimd's replacement above is the identity on purpose for the regex; fixed here:
OPS[[o.name for o in OPS].index("eng-gpsimd")] = Op(
    "eng-gpsimd", "vector engine -> gpsimd for an ALU op (documented for few ops)",
    _sub(r"engine=nisa\.(engine\.vector|vector_engine)",
         lambda m: "engine=nisa." + ("engine.gpsimd" if "engine." in m.group(1)
                                      else "gpsimd_engine")))


# ---- operators for shape, axis and dtype slips (mutants15) --------------------------------

def _allocated(name: str, lines: list[str]) -> bool:
    """``name`` is a tile the file allocates or loads (not a Python number)."""
    return any(re.search(rf"\b{name}(\s*:[^=]+)?\s*=\s*(nl\.(ndarray|zeros|ones|full|load|"
                         rf"empty_like)|nisa\.\w+)\(", ln) for ln in lines)


def _axis_names(lines: list[str]) -> tuple[list[str], list[str]]:
    """Names bound to a partition index (``nl.arange(n)[:, None]``, ``.p`` of an mgrid) and to
    a free index (``nl.arange(n)[None, :]``), in file order."""
    part, free = [], []
    for ln in lines:
        m = re.match(r"^\s*(\w+)\s*=\s*.*nl\.arange\([^()]*\)\[(:, None|None, :)\]\s*$", ln)
        if m:
            (part if m.group(2) == ":, None" else free).append(m.group(1))
    return part, free


def _first_partition(kws: str, call: str, positional: int | None = None):
    """The first operand named by ``kws`` (a keyword of a ``call`` line, or its ``positional``
    argument) narrowed to the tile's first partition: ``x[a:b, c]`` -> ``x[0:1, c]``, a bare
    allocated tile ``x`` -> ``x[0:1]`` (a [1, F] operand where [P, F] / [P, 1] is needed: a
    partition broadcast the engines do not do)."""
    rx = re.compile(rf"\b({kws})=(\w+)(\[[^\[\]]*\])?")

    def narrow(name: str, idx: str | None, lines: list[str]) -> str | None:
        if idx:
            parts = idx[1:-1].split(",")
            if ":" not in parts[0] or parts[0].strip() == "0:1":
                return None
            return f"{name}[" + ",".join(["0:1", *parts[1:]]) + "]"
        return f"{name}[0:1]" if _allocated(name, lines) else None

    def f(lines: list[str], i: int, k: Kernel) -> str | None:
        code, comment = _split_comment(lines[i])
        if call not in code:
            return None
        m = rx.search(code)
        if m:
            new = narrow(m.group(2), m.group(3), lines)
            return None if new is None else (code[:m.start(2)] + new + code[m.end():] + comment)
        if positional is None:
            return None
        head, _, tail = code.partition(call)
        args = _split_args(tail)
        if args is None:
            return None
        parts, rest = args
        pos = [j for j, p in enumerate(parts) if "=" not in p.split("[")[0]]
        if len(pos) <= positional:
            return None
        j = pos[positional]
        mm = re.fullmatch(r"\s*(\w+)(\[[^\[\]]*\])?\s*", parts[j])
        if not mm:
            return None
        new = narrow(mm.group(1), mm.group(2), lines)
        if new is None:
            return None
        parts[j] = (" " if j else "") + new
        return head + call + ",".join(parts) + rest + comment
    return f


def _bias_data(lines: list[str], i: int, k: Kernel) -> str | None:
    """activation's bias (a (P, 1) column) replaced by its data tile ([P, F])."""
    code, comment = _split_comment(lines[i])
    if "activation" not in code:
        return None
    b = re.search(r"\bbias=(\w+(?:\[[^\[\]]*\])?)", code)
    d = re.search(r"\bdata=(\w+(?:\[[^\[\]]*\])?)", code)
    if not b or not d:
        return None
    return code[:b.start(1)] + d.group(1) + code[b.end(1):] + comment


def _bcast_drop(lines: list[str], i: int, k: Kernel) -> str | None:
    """An explicit partition broadcast removed: ``x.broadcast_to((P, F))`` -> ``x`` and
    ``nl.broadcast_to(x, shape=...)`` -> ``x``."""
    code, comment = _split_comment(lines[i])
    new = re.sub(r"\.broadcast_to\(\((?:[^()]|\([^()]*\))*\)\)", "", code, count=1)
    if new == code:
        m = re.search(r"nl\.broadcast_to\(", code)
        if not m:
            return None
        args = _split_args(code[m.end():])
        if args is None:
            return None
        parts, rest = args
        new = code[:m.start()] + parts[0].strip() + rest[1:]
    return new + comment if new != code else None


def _mask_axis(lines: list[str], i: int, k: Kernel) -> str | None:
    """A mask's partition index put on the free axis: in ``mask=(...)`` the first
    ``nl.arange(n)[:, None]`` -> ``nl.arange(n)[None, :]``."""
    code, comment = _split_comment(lines[i])
    j = code.find("mask=")
    if j < 0:
        return None
    if "[:, None]" in code[j:]:
        return code[:j] + code[j:].replace("[:, None]", "[None, :]", 1) + comment
    part, free = _axis_names(lines)      # mask=(i_p < n): the partition name -> a free one
    for p in part:
        m = re.search(rf"\b{p}\b", code[j:])
        if m and free:
            return code[:j + m.start()] + free[0] + code[j + m.end():] + comment
    return None


def _shape_items(tail: str):
    """Top-level items of a shape tuple ``(a, b, ...)`` at the start of ``tail``."""
    if not tail.startswith("("):
        return None
    return _split_args(tail[1:])


def _tpose_dst(lines: list[str], i: int, k: Kernel) -> str | None:
    """The allocation of a transpose destination (nc_transpose / dma_transpose dst) with its
    partition and last dimensions exchanged: the tile has the source's [P, F] shape."""
    m = re.match(r"^(\s*)(\w+) = nl\.ndarray\(", lines[i])
    if not m:
        return None
    name = m.group(2)
    dst = re.compile(rf"(nc_transpose|dma_transpose)\(dst={name}\b|\b{name}\[[^\]]*\] = "
                     rf"nisa\.(nc_transpose|dma_transpose)\(")
    if not any(dst.search(ln) for ln in lines):
        return None
    tail = lines[i][m.end():]
    got = _shape_items(tail)
    if got is None:
        return None
    parts, rest = got
    items = [p.strip() for p in parts if p.strip()]
    if len(items) < 2 or items[0] == items[-1]:
        return None
    items[0], items[-1] = items[-1], items[0]
    return lines[i][:m.end()] + "(" + ", ".join(items) + ("," if len(items) == 1 else "") + rest


def _sel_axis(lines: list[str], i: int, k: Kernel) -> str | None:
    """iota / affine_select with the partition and free coefficients exchanged: current API
    ``channel_multiplier=a, pattern=[[b, n]]`` -> ``channel_multiplier=b, pattern=[[a, n]]``;
    classic: the predicate's ``[:, None]`` and ``[None, :]`` aranges exchanged."""
    code, comment = _split_comment(lines[i])
    if not re.search(r"\b(affine_select|iota)\(", code):
        return None
    cm = re.search(r"channel_multiplier=(-?\w+)", code)
    pt = re.search(r"pattern=\[\[(-?\w+),", code)
    if cm and pt:
        a, b = cm.group(1), pt.group(1)
        if a == b:
            return None
        new = code[:pt.start(1)] + a + code[pt.end(1):]
        new = re.sub(r"channel_multiplier=-?\w+", f"channel_multiplier={b}", new, count=1)
        return new + comment
    if "[:, None]" in code and "[None, :]" in code:
        new = code.replace("[:, None]", "\0").replace("[None, :]", "[:, None]").replace(
            "\0", "[None, :]")
        return new + comment
    part, free = _axis_names(lines)      # pred=(iy < ix) over named aranges: exchange them
    pm = re.search(r"pred=\(([^()]*)\)", code)
    if pm:
        ps = [p for p in part if re.search(rf"\b{p}\b", pm.group(1))]
        fs = [f for f in free if re.search(rf"\b{f}\b", pm.group(1))]
        if ps and fs:
            body = re.sub(rf"\b{ps[0]}\b", "\0", pm.group(1))
            body = re.sub(rf"\b{fs[0]}\b", ps[0], body).replace("\0", fs[0])
            return code[:pm.start(1)] + body + code[pm.end(1):] + comment
    return None


def _cmp_strict(lines: list[str], i: int, k: Kernel) -> str | None:
    """affine_select's comparison made strict (the diagonal flips): ``greater_equal`` ->
    ``greater``, ``less_equal`` -> ``less``; classic ``>= 0`` -> ``> 0``, ``<= 0`` -> ``< 0``."""
    code, comment = _split_comment(lines[i])
    if "affine_select(" not in code:
        return None
    new = re.sub(r"cmp_op=nl\.(greater|less)_equal\b", r"cmp_op=nl.\1", code, count=1)
    if new == code:
        new = re.sub(r" ([<>])= ", r" \1 ", code, count=1)
    if new == code:                      # pred=(iy < ix): strict -> not strict
        new = re.sub(r"(pred=\([^()<>]*)([<>])(?!=)", r"\1\2=", code, count=1)
    return new + comment if new != code else None


def _pstart16(lines: list[str], i: int, k: Kernel) -> str | None:
    """An engine operand's partition range moved 16 partitions down (``t[0:n, ..]`` ->
    ``t[16:n + 16, ..]``): a start partition that is not a multiple of 32."""
    code, comment = _split_comment(lines[i])
    if not re.search(r"nisa\.(?!dma)\w+\(", code):
        return None
    m = re.search(r"(\w+)\[0:([^\[\],:]+),", code)
    if not m:
        return None
    return code[:m.start(2) - 2] + f"16:{m.group(2).strip()} + 16," + code[m.end():] + comment


def _operand_names(lines: list[str]) -> set[str]:
    """Names of the tiles passed to nc_matmul as stationary or moving."""
    out: set[str] = set()
    for ln in lines:
        if "nc_matmul(" not in ln:
            continue
        out.update(re.findall(r"\b(?:stationary|moving)=(\w+)", ln))
        tail = ln.partition("nc_matmul(")[2]
        args = _split_args(tail)
        if args:
            pos = [p for p in args[0] if "=" not in p.split("[")[0]]
            for p in pos[-2:]:
                mm = re.match(r"\s*(\w+)", p)
                if mm:
                    out.add(mm.group(1))
    return out


def _mm_int8(lines: list[str], i: int, k: Kernel) -> str | None:
    """A matmul operand tile allocated (or loaded) as int8: an operand dtype TensorE does not
    take (SH/S25 nc_matmul Data types: fp8, bf16, fp16, tf32, fp32)."""
    code, comment = _split_comment(lines[i])
    m = re.match(r"^\s*(\w+) = nl\.(ndarray|zeros|load)\(.*\bdtype=(nl\.\w+|\w+\.dtype)", code)
    if m and m.group(1) in _operand_names(lines):
        return code[:m.start(3)] + "nl.int8" + code[m.end(3):] + comment
    m = re.match(r"^\s*(\w+)(\s*:[^=]+)? = nl\.load\((.*)\)\s*$", code)
    if m and m.group(1) in _operand_names(lines) and "dtype=" not in code:
        return code[:m.end(3)] + ", dtype=nl.int8" + code[m.end(3):] + comment
    return None


def _cur_next(lines: list[str], i: int, k: Kernel) -> str | None:
    """A pipelined kernel reads the tile being prefetched for the next iteration instead of the
    current one (``x_t_c[...]`` -> ``x_t[...]``)."""
    code, comment = _split_comment(lines[i])
    for m in re.finditer(r"\b(\w+)_c\[", code):
        if _allocated(m.group(1), lines) and not code.lstrip().startswith(m.group(0)):
            return code[:m.start()] + m.group(1) + "[" + code[m.end():] + comment
    return None


def _idx_swap(lines: list[str], i: int, k: Kernel) -> str | None:
    """A wrong loop offset in an HBM access: the first tile offset (``r0``, ``p0``, ``c0``,
    ...) of a DMA's HBM index replaced by another offset the kernel computes."""
    code, comment = _split_comment(lines[i])
    m = re.search(r"(dma_copy\(|nl\.(?:load|store)\()(.*)", code)
    if not m:
        return None
    offs = []
    for ln in lines:
        a = re.match(r"^\s*([a-z]{1,3}\d*0\d*) = ", ln)
        if a and a.group(1) not in offs:
            offs.append(a.group(1))
    for v in re.finditer(r"\b([a-z]{1,3}\d*0\d*)\b", m.group(2)):
        if v.group(1) in offs:
            other = next((o for o in offs if o != v.group(1)), None)
            if other is None:
                return None
            j = m.start(2) + v.start()
            return code[:j] + other + code[j + len(v.group(1)):] + comment
    return None


OPS += [
    Op("tt-prow", "tensor_tensor's second operand narrowed to its first partition ([1, F]: "
                  "a partition broadcast)", _first_partition("data2", "tensor_tensor(", 1)),
    Op("col-p1", "a (P, 1) operand (operand0/1, bias, scale, scan initial) narrowed to one "
                 "partition", _first_partition("operand0|operand1|bias|scale|initial", "nisa.")),
    Op("bias-data", "activation bias (P, 1) replaced by the [P, F] data tile", _bias_data),
    Op("bcast-drop", "an explicit partition broadcast_to removed", _bcast_drop),
    Op("mask-axis", "a mask's partition arange put on the free axis", _mask_axis),
    Op("tpose-dst", "a transpose destination allocated with the source's shape", _tpose_dst),
    Op("sel-axis", "iota/affine_select partition and free coefficients exchanged", _sel_axis),
    Op("cmp-strict", "affine_select comparison made strict (>= -> >)", _cmp_strict),
    Op("pstart16", "an engine operand's partitions moved to start at 16", _pstart16),
    Op("psum-int", "a PSUM tile fp32 -> int32 (matmul accumulates into an integer tile)",
       _sub(r"nl\.float32(?=.*buffer=nl\.psum)", "nl.int32")),
    Op("mm-int8", "a matmul operand tile int8 (no integer TensorE operands)", _mm_int8),
    Op("ragged+1", "a ragged tile size one too large (min(T, n - o) -> min(T, n - o + 1))",
       _sub(r"^(\s*\w+ = min\((?:[^(),]|\([^()]*\))+,\s*)(.+)\)\s*$", r"\1\2 + 1)")),
    Op("tx-drop", "classic nl.matmul transpose_x=True dropped",
       _sub(r",\s*transpose_x=True", "")),
    Op("operand-none", "tensor_scalar's operand0 of a binary operator dropped (None)",
       _sub(r"(tensor_scalar\(.*\bop0=nl\.(?:add|subtract|multiply|maximum|minimum|divide)\b.*"
            r"\boperand0=)(?!None\b)[^,()\[\]]+(?:\[[^\[\]]*\])?", r"\1None")),
    Op("cur-next", "the prefetched (next) tile read instead of the current one", _cur_next),
    Op("idx-swap", "a DMA's HBM tile offset replaced by another loop offset", _idx_swap),
    Op("scale-drop", "activation scale= dropped",
       _sub(r",\s*scale=(?:[^,()\[\]]|\([^()]*\)|\[[^\[\]]*\])+(?=[,)])", "",
            when=r"activation")),
    # bugs of nkigen's own kernel shapes: the PSUM group flag of a contraction's first tile,
    # a ragged tile left unclipped, a pipeline's prefetch of the wrong tile, a dropped rescale
    # or normaliser factor, the online softmax's running max combined the wrong way, an
    # exp bias with the wrong sign
    Op("acc-flip", "current nc_matmul accumulate=False <-> True (the PSUM group's first tile)",
       lambda ls, i, k: _sub(r"accumulate=False", "accumulate=True")(ls, i, k)
       or _sub(r"accumulate=True", "accumulate=False")(ls, i, k)),
    Op("ragged-full", "a ragged tile size left unclipped (min(T, n - o) -> T)",
       _sub(r"^(\s*\w+ = )min\(((?:[^(),]|\([^()]*\))+),\s*(.+)\)\s*$", r"\1\2")),
    Op("prefetch-same", "a pipeline head issued for the current tile again, not the next one",
       _sub(r"(_head\d*\(.*, )(\w+) \+ 1\)", r"\1\2)")),
    Op("mul-one", "a per-row multiplier tile (rescale factor, normaliser) replaced by 1.0",
       _sub(r"(op0=nl\.multiply, operand0=)\w+\[[^\[\]]*\]", r"\g<1>1.0")),
    Op("minmax-swap", "ALU minimum <-> maximum (a running max/min combined the wrong way)",
       lambda ls, i, k: _sub(r"op=nl\.minimum\b", "op=nl.maximum")(ls, i, k)
       or _sub(r"op=nl\.maximum\b", "op=nl.minimum")(ls, i, k)),
    Op("scale-sign", "a negated activation scale made positive (scale=-s -> scale=s)",
       _sub(r"scale=-(?=[\w(])", "scale=")),
]



# ---- operators for register state, flags, dtypes, API drift and access forms (mutants17) ----

def _add_kw(call: str, kw: str, dialect: str | None = None, unless: str | None = None):
    """Append keyword argument ``kw`` to a one-line ``call(...)`` (only in ``dialect`` when
    given; not when the call already names ``unless``)."""
    rx = re.compile(rf"\b{call}\(")

    def f(lines: list[str], i: int, k: Kernel) -> str | None:
        if dialect is not None and k.dialect != dialect:
            return None
        code, comment = _split_comment(lines[i])
        m = rx.search(code)
        if not m or (unless and re.search(unless, code)):
            return None
        args = _split_args(code[m.end():])
        if args is None:
            return None
        parts, rest = args
        j = len(code) - len(rest)
        return code[:j] + f", {kw}" + code[j:] + comment
    return f


def _rcmd(to: str):
    """An explicit ``reduce_cmd=...reset_reduce`` -> ``to``; current-API tensor_scalar_reduce /
    select_reduce without reduce_cmd get ``reduce_cmd=nisa.reduce_cmd.<to>`` (their default
    resets)."""
    def f(lines: list[str], i: int, k: Kernel) -> str | None:
        code, comment = _split_comment(lines[i])
        new = re.sub(r"(reduce_cmd=(?:nisa\.)?reduce_cmd\.)reset_reduce\b", rf"\g<1>{to}", code,
                     count=1)
        if new != code:
            return new + comment
        return _add_kw("nisa.tensor_scalar_reduce", f"reduce_cmd=nisa.reduce_cmd.{to}", "nki",
                       "reduce_cmd")(lines, i, k)
    return f


def _iota_narrow(lines: list[str], i: int, k: Kernel) -> str | None:
    """An iota's integer destination narrowed to int8 (iota values past 127 do not fit): the
    dst tile's allocation (current API) or the classic ``dtype=`` of the call."""
    code, comment = _split_comment(lines[i])
    if "iota(" in code:
        new = re.sub(r"(dtype=)nl\.u?int(32|16)\b", r"\1nl.int8", code, count=1)
        return new + comment if new != code else None
    m = re.match(r"^\s*(\w+) = nl\.(ndarray|zeros)\(.*\bdtype=(nl\.u?int(?:32|16))\b", code)
    if m and any(re.search(rf"iota\((dst=)?{m.group(1)}\b", ln) for ln in lines):
        return code[:m.start(3)] + "nl.int8" + code[m.end(3):] + comment
    return None


def _step2(lines: list[str], i: int, k: Kernel) -> str | None:
    """An on-chip tile's free-dim slice given a step of 2 (``t[0:p, 0:n]`` -> ``t[0:p, 0:n:2]``):
    half the elements, a shape the other operands do not have."""
    code, comment = _split_comment(lines[i])
    if not re.search(r"nisa\.\w+\(|nl\.\w+\(", code):
        return None
    for m in re.finditer(r"\b(\w+)\[([^\[\],:]+:[^\[\],:]+), ([^\[\],:]+:[^\[\],:]+)\]", code):
        if _allocated(m.group(1), lines) and not _is_hbm_out(m.group(1), lines):
            return code[:m.end(3)] + ":2" + code[m.end(3):] + comment
    return None


def _range_step2(lines: list[str], i: int, k: Kernel) -> str | None:
    """A tile loop given a step of 2 (every other tile skipped)."""
    m = re.match(r"^(\s*for \w+ in (?:nl\.)?(?:affine_|sequential_)?range\()"
                 r"([^,()]+|[^,()]*\([^()]*\)[^,()]*)(\):.*)$", lines[i])
    if not m:
        return None
    return f"{m.group(1)}0, {m.group(2)}, 2{m.group(3)}"


def _tpose_copy(lines: list[str], i: int, k: Kernel) -> str | None:
    """A TensorE/VectorE transpose replaced by a plain copy (the transpose forgotten)."""
    code, comment = _split_comment(lines[i])
    if "nisa.nc_transpose(" not in code:
        return None
    new = code.replace("nisa.nc_transpose(", "nisa.tensor_copy(", 1)
    new = re.sub(r"\bdata=", "src=", new, count=1)
    return new + comment


def _flip(a: str, b: str):
    def f(lines: list[str], i: int, k: Kernel) -> str | None:
        code, comment = _split_comment(lines[i])
        new = re.sub(rf"\b{a}\b", "\0", code, count=1)
        if new == code:
            new = re.sub(rf"\b{b}\b", a, code, count=1)
        else:
            new = new.replace("\0", b)
        return new + comment if new != code else None
    return f


def _load_cast(to: str):
    """``nl.load(src)`` -> ``nl.load(src, dtype=<to>)``: the DMA casts on the way."""
    return _add_kw("nl.load", f"dtype={to}", None, r"dtype=")


def _cur_form(lines: list[str], i: int, k: Kernel) -> str | None:
    """Classic ``t[idx] = nisa.op(args)`` -> ``nisa.op(args, dst=t[idx])`` (API drift)."""
    if k.dialect != "neuronxcc":
        return None
    code, comment = _split_comment(lines[i])
    m = re.match(r"^(\s*)(\w+\[[^\[\]=]*\]) = nisa\.(\w+)\((.*)\)\s*$", code)
    if not m or m.group(3) in ("dma_copy", "nc_matmul") or not m.group(4).strip():
        return None
    return f"{m.group(1)}nisa.{m.group(3)}({m.group(4)}, dst={m.group(2)})" + comment


def _classic_form(lines: list[str], i: int, k: Kernel) -> str | None:
    """Current ``nisa.op(dst=t[idx], args)`` -> ``t[idx] = nisa.op(args)`` (API drift)."""
    if k.dialect != "nki":
        return None
    code, comment = _split_comment(lines[i])
    m = re.match(r"^(\s*)nisa\.(\w+)\(dst=(\w+(?:\[[^\[\]]*\])?), (.*)\)\s*$", code)
    if not m or m.group(2) == "dma_copy":
        return None
    return f"{m.group(1)}{m.group(3)} = nisa.{m.group(2)}({m.group(4)})" + comment


def _psum_inner(lines: list[str], i: int, k: Kernel) -> str | None:
    """A PSUM accumulator allocated inside its contraction loop instead of before it: every
    iteration starts a fresh tile (its first matmul overwrites), so only the last K tile
    survives. The site is the loop line; the allocation (a PSUM ``nl.ndarray`` / ``nl.zeros``
    within the 6 lines above) is repeated as the loop body's first statement."""
    m = re.match(r"^(\s*)for \w+ in .*:\s*$", lines[i])
    if not m or i + 1 >= len(lines):
        return None
    body = lines[i + 1][:len(lines[i + 1]) - len(lines[i + 1].lstrip())]
    if len(body) <= len(m.group(1)):
        return None
    for j in range(i - 1, max(-1, i - 7), -1):
        a = re.match(r"^\s*(\w+) = nl\.(ndarray|zeros)\(.*buffer=nl\.psum.*\)\s*$", lines[j])
        if a:
            name = a.group(1)
            uses = any(re.search(rf"(nc_matmul\((dst=)?{name}\b|\b{name}\[.*\] \+= |"
                                 rf"\b{name} \+= )", ln) for ln in lines[i + 1:i + 12])
            return f"{lines[i]}\n{body}{lines[j].strip()}" if uses else None
    return None


OPS += [
    Op("rcmd-reduce", "reduce_cmd reset_reduce -> reduce (accumulate onto registers no "
                      "instruction reset)", _rcmd("reduce")),
    Op("rcmd-idle", "reduce_cmd reset_reduce -> idle (reduce_res reads registers this "
                    "instruction did not update)", _rcmd("idle")),
    Op("negate-flip", "tensor_reduce negate=True <-> False", _flip("negate=True", "negate=False")),
    Op("reverse-flip", "tensor_scalar's subtract operands swapped (reverse0=True added to "
                       "op0=subtract, or an explicit reverse0/1 negated)",
       lambda ls, i, k: _flip("reverse0=True", "reverse0=False")(ls, i, k)
       or _flip("reverse1=True", "reverse1=False")(ls, i, k)
       or _sub(r"(op0=n[lp]\.subtract)\b(?!.*reverse0)", r"\1, reverse0=True")(ls, i, k)),
    Op("load-int", "nl.load(..., dtype=nl.int32): float data cast to integers on the way",
       _load_cast("nl.int32")),
    Op("load-fp8", "nl.load(..., dtype=nl.float8_e4m3): the input cast to fp8 on the way",
       _load_cast("nl.float8_e4m3")),
    Op("iota-int8", "an iota's integer destination narrowed to int8", _iota_narrow),
    Op("double-row", "current nc_matmul perf_mode=double_row on non-fp8 operands",
       _add_kw("nisa.nc_matmul", "perf_mode=nisa.matmul_perf_mode.double_row", "nki",
               "perf_mode")),
    Op("onezero", "nc_matmul is_stationary_onezero=True on a general operand",
       _add_kw("nisa.nc_matmul", "is_stationary_onezero=True", None, "onezero")),
    Op("pe-tile", "nc_matmul PE tiling tile_position=(0, 0), tile_size=(64, 64) on a "
                  "128-row operand",
       _add_kw("nisa.nc_matmul", "tile_position=(0, 0), tile_size=(64, 64)", None,
               "tile_position")),
    Op("tpose-vector", "nc_transpose forced onto VectorE (32 x 32 limit)",
       lambda ls, i, k: _add_kw("nisa.nc_transpose", "engine=" + (
           "nisa.engine.vector" if k.dialect == "nki" else "nisa.vector_engine"), None,
           "engine=")(ls, i, k)),
    Op("tpose->copy", "nc_transpose replaced by tensor_copy (the transpose forgotten)",
       _tpose_copy),
    Op("dma-engine", "current dma_copy engine=scalar without dge_mode=hwdge",
       _add_kw("nisa.dma_copy", "engine=nisa.engine.scalar", "nki", "engine=|dge_mode")),
    Op("dtype-kw", "classic dtype= passed to a current dst-first ISA call (API drift)",
       lambda ls, i, k: None if k.dialect != "nki" else next(
           (r for c in ("nisa.activation", "nisa.tensor_tensor", "nisa.tensor_scalar",
                        "nisa.tensor_reduce", "nisa.tensor_copy")
            if (r := _add_kw(c, "dtype=nl.bfloat16", "nki", r"dtype=|\bdst=\w+\[[^\]]*\], "
                             r"dtype")(ls, i, k)) is not None), None)),
    Op("axis-neg", "a reduction axis=1 -> axis=-1", _sub(r"\baxis=1\b", "axis=-1")),
    Op("keepdims-drop", "keepdims=True dropped", _sub(r",\s*keepdims=True", "")),
    Op("step2", "an on-chip free slice given a step of 2", _step2),
    Op("range-step2", "a tile loop stepping by 2 (every other tile skipped)", _range_step2),
    Op("cur-form", "a classic `t[...] = nisa.X(...)` written in the current API's dst= form",
       _cur_form),
    Op("classic-form", "a current `nisa.X(dst=t[...], ...)` written in the classic returned "
                       "form", _classic_form),
    Op("psum-inner", "a PSUM accumulator re-allocated inside its contraction loop",
       _psum_inner),
    Op("sbuf-fp8", "an fp32/bf16 SBUF tile allocated float8_e4m3",
       _sub(r"dtype=nl\.(float32|bfloat16)(?=.*buffer=nl\.sbuf)", "dtype=nl.float8_e4m3",
            when=r"= nl\.(ndarray|zeros)\(")),
    Op("int-narrow", "a 32-bit integer tile (indices, ids, iota) allocated int8",
       _sub(r"dtype=nl\.u?int32\b(?=.*buffer=nl\.(sbuf|psum))", "dtype=nl.int8",
            when=r"= nl\.(ndarray|zeros)\(")),
]


# Survivors explained. Consulted only for a mutant that ran and still verified: (operator,
# kernel-label regex, mutated-line regex, class, one-line argument). EQUIVALENT: the edit does
# not change semantics or legality (argued). SURVIVED notes say why the simulator is not at
# fault (an untested size, the tolerance, dead code) or what is left.
NOTES: list[tuple[str, str, str, str, str]] = [
    ("seq->affine", r":nki$|tests/sim_kernels|::attention_expert", r"", "EQUIVALENT",
     "current nki: affine_range is an alias of range(), in order (SH nki/api/nki/language "
     "affine_range, nki 0.3; deprecated, `nkigen lint` flags it)"),
    ("seq->affine", r"causal_scores:neuronxcc", r"for kb in", "EQUIVALENT",
     "D is fixed at 128 = one contraction block, so this 'all but the last block' loop is "
     "empty at every legal size"),
    ("psum*2", r"", r"", "EQUIVALENT",
     "the wider PSUM tile is legal (classic: free size still <= psum_fmax 512; current: PSUM "
     "tensors may span banks, SH nki.language.tile_size) and only its original region is used"),
    ("eng-gpsimd", r":nki$|tests/sim_kernels|::attention_expert", r"", "EQUIVALENT",
     "current tensor_tensor documents engine=gpsimd with no per-operator engine column (SH "
     "nki/api/nki/isa tensor_tensor, nki 0.3); same fp32 math"),
    ("eng-gpsimd", r":neuronxcc$|classic_kernels|benchmarks/kernels", r"op=nl\.(add|multiply)",
     "EQUIVALENT", "tbl-aluop lists GpSIMD for add and multiply (S25 nki.api.shared.rst, "
     "SDK 2.25); same fp32 math"),
    ("acc-false", r":neuronxcc$|classic_kernels", r"\+= nisa\.nc_matmul", "EQUIVALENT",
     "classic nc_matmul has no accumulate parameter (S25 signature ends in **kwargs): PSUM "
     "accumulation is the `+=`, unchanged"),
    ("acc-true", r":neuronxcc$|classic_kernels", r"\+= nisa\.nc_matmul", "EQUIVALENT",
     "classic nc_matmul has no accumulate parameter (S25 signature ends in **kwargs): PSUM "
     "accumulation is the `+=`, unchanged"),
    ("acc-false", r":nki$|sim_kernels|attention_expert", r"", "EQUIVALENT",
     "this matmul is the first of its accumulation group (one contraction tile, or tap 0), "
     "where accumulate=None already resets"),
    ("acc-true", r":nki$", r"", "EQUIVALENT",
     "this matmul is never the first of its accumulation group, where None already "
     "accumulates"),
    ("psum-zeros", r":neuronxcc$|classic_kernels", r"", "EQUIVALENT",
     "assumed (modelled in sim/classic/fresh.py): the first `+=` matmul into a PSUM tile no "
     "instruction wrote starts the accumulation group (S25 arch guide, PSUM near-memory "
     "accumulation), as with nl.zeros; not stated for nl.ndarray in the docs"),
    ("range+1", r":neuronxcc$|classic_kernels|row_tutorials", r"affine_range", "EQUIVALENT",
     "the extra iteration's every instruction has a mask= that keeps no lane (offset >= the "
     "size), so nothing is issued (S25 nki.api.shared.rst 'NKI API Masking')"),
    ("mask<=", r":neuronxcc$", r"nc_matmul|memset|tensor_copy", "EQUIVALENT",
     "the added lanes are outside the loop's live tiles or rows no later instruction stores: "
     "another conjunct, the loop range or the masked eviction already excludes them"),
    ("mask<=", r":neuronxcc$", r"dma_copy", "EQUIVALENT",
     "the other conjunct of the mask (offset + i < size) still excludes the added lane"),
    ("mask-drop", r":neuronxcc$", r"nc_matmul|memset", "EQUIVALENT",
     "the unmasked matmul/memset touches only PSUM/SBUF rows the masked eviction and stores "
     "never read (M is a multiple of 128 there)"),
    ("no-realloc", r"", r"", "EQUIVALENT",
     "every read of the old tile precedes the next write in program order (the dependency "
     "tracking of both APIs orders them); the re-allocation only enables overlap"),
    ("sbuf-int", r"sim_kernels/basic.py::softmax|attention(_heads|_probs)?:nki", r"mx =|neg_max =",
     "EQUIVALENT",
     "softmax is invariant to the shift: an integer row max still cancels exactly"),
    ("sbuf-int", r"leaky_relu_where", r"mask1", "EQUIVALENT",
     "the tile holds 0/1 comparison results, exact in int32"),
    ("dtype-out-bf16", r"leaky_relu_where", r"pos =", "EQUIVALENT",
     "the output holds 0/1 (x >= 0 as a number), exact in bf16"),
    ("sbuf-int", r"", r"const2? =|ss =|acc1 =", "SURVIVED",
     "tolerance: the truncation (an eps constant or a sum of squares) stays inside the "
     "spec's tolerance; no rule is broken (causal_scores' truncated scores, once inside it "
     "through the -30000 fills' atol, are killed since where-fills no longer set it)"),
    ("store-slice", r"^(?!spec:)", r"", "SURVIVED",
     "untested size: the zeroed offset is nonzero only past the largest simulated case "
     "(a second 2048-row block, or a second free chunk)"),
    ("range-1", r"^(?!spec:)", r"", "SURVIVED",
     "untested size: the loop is the 'all but the last block' loop, empty at every "
     "simulated case"),
    ("range+1", r"^(?!spec:)", r"", "SURVIVED",
     "untested size: the loop runs 0 times at every simulated case"),
    ("op-swap", r"^(?!spec:)", r"reduce", "SURVIVED",
     "tolerance/size: a subtract reduction differs from add by 2*x0 over a long row (inside "
     "the bf16 tolerance) or reduces a single column"),
    ("pmax+1", r"exp_ragged", r"ceil", "SURVIVED",
     "untested size: ceil(rows / 129) == ceil(rows / 128) at the simulated rows"),
    ("acc-drop", r"(attention(_heads|_probs)?|causal_scores|gqa_scores|conv1d|mamba_scan):"
     r"neuronxcc", r"", "EQUIVALENT",
     "the contraction is one tile at every legal size (D <= 128, C <= 128, S <= 16), so the "
     "`+=` loop runs once and `=` writes the same value"),
    ("sbuf-f32", r"", r"", "EQUIVALENT",
     "a wider (fp32) intermediate where bf16 was chosen is legal (no matmul operand here) "
     "and only more precise"),
    ("iota-float", r"", r"", "EQUIVALENT",
     "iota casts its integer pattern to any dtype (SH nki/api/nki/isa iota, nki 0.3); the "
     "values are exact in fp32"),
    ("del-memset", r"row_argmax", r"N:8", "SURVIVED",
     "simulator: the case N = 5 runs it, but the unpadded columns keep the simulator's NaN "
     "sentinel, which max8 / nc_find_index8 rank below every value (a warning, not an error: "
     "NKI documents no NaN order), so the indices match; no input distribution changes that"),
    ("sbuf->psum", r"", r"^(?!.*\bones\b)", "EQUIVALENT",
     "every engine touching this small tile reads and writes PSUM as well (activation, "
     "tensor_reduce, tensor_scalar, bn_stats: 'SBUF or PSUM', SH/S25 nki.isa); not a matmul "
     "operand"),
    ("psum->sbuf", r":neuronxcc$|classic_kernels", r"", "EQUIVALENT",
     "classic: the ISA call returns a PSUM tile and `sbuf_tile += / = result` is an engine "
     "add/copy into SBUF (the result-tile convention of S25 nki.isa), same values"),
    ("copy->dma", r"row_argmax", r"idx8", "EQUIVALENT",
     "an SBUF -> SBUF DMA casting uint32 indices to int32 is a documented DMA (SH nki/api/"
     "nki/isa dma_copy: SBUF or HBM on both sides, dtypes cast); same values"),
    ("act-sigmoid", r":nki$", r"", "SURVIVED",
     "tolerance: the sigmoid GELU approximation is legal in the current API (SH tbl-act-func) "
     "and within the spec's tolerance of gelu"),
    ("mov*2", r"mamba_tutorial.py::ssm_v2", r"SEQ_TILE", "EQUIVALENT",
     "SEQ_TILE is read only by ssm_v3"),
    ("", r"attention_expert", r"row_t|tp =|tp, |src=tp|src\[r0", "EQUIVALENT",
     "dead code for these inputs: the TensorE-transpose branch of _load_transposed runs only "
     "for more than 2048 rows"),
    ("cur-next", r"row_argmax", r"N:8", "SURVIVED",
     "simulator: the current tile's columns N..8 stay the NaN sentinel (see del-memset), "
     "which max8 ranks below every value"),
    ("sbuf-int", r"leaky_relu_where", r"mask3", "EQUIVALENT",
     "the tile holds 0/1 comparison results, exact in int32 (the ragged tail's copy of mask1)"),
    ("mask<=", r"transpose:neuronxcc", r"mb0 \+ nl\.arange\(TILE\)\[(:, None|None, :)\] "
     r"<=? SUPER", "EQUIVALENT",
     "the conjunct mb0 + i < SUPER holds on every lane whatever its axis or bound (mb < "
     "SUPER / TILE by the loop range, so mb0 + TILE <= SUPER); the row bound m0 + mb0 + i < M "
     "is the conjunct that masks"),
    ("mask-axis", r"transpose:neuronxcc", r"mb0 \+ nl\.arange\(TILE\)\[(:, None|None, :)\] "
     r"<=? SUPER", "EQUIVALENT",
     "the conjunct mb0 + i < SUPER holds on every lane whatever its axis or bound (mb < "
     "SUPER / TILE by the loop range, so mb0 + TILE <= SUPER); the row bound m0 + mb0 + i < M "
     "is the conjunct that masks"),
    ("ragged+1", r"matmul_(bias_gelu|f32|bt|at|bf16|fp8|int8_dequant|lhst_bf16):|bmm:|"
     r"causal_scores:|gqa_scores:|swiglu:|mlp_gelu_tanh:",
     r"(rtsz|ktsz2?) = ", "EQUIVALENT",
     "the size is never ragged: the spec fixes M and K (causal_scores, gqa_scores: M, and D at "
     "128; swiglu, mlp_gelu_tanh: M and D) to multiples of 128, so the min() stays at the tile "
     "size"),
    ("ragged+1", r"(matmul_(bias_gelu|f32|bt|at|fp8|2k|int8_dequant)|bmm|(causal|gqa)_scores|"
     r"swiglu|mlp_gelu_tanh|"
     r"attention(_heads|_probs)?)"
     r":neuronxcc|col_sum:", r"(ctsz|csz|qsz) = ", "EQUIVALENT",
     "the extra column is computed from a full-size on-chip tile into a PSUM/SBUF column no "
     "later instruction reads: the eviction and the store use the block's own size (csz / "
     "fsz, recomputed before them), and min() keeps it within one bank"),
    ("ragged-full", r"matmul_(bias_gelu|f32|bt|at|bf16|fp8|int8_dequant|lhst_bf16):|bmm:|"
     r"causal_scores:|gqa_scores:|swiglu:|mlp_gelu_tanh:",
     r"(rtsz|ktsz2?) = ",
     "EQUIVALENT", "the size is never ragged: the spec fixes M and K (causal_scores: M and N) "
     "to multiples of 128, so the min() stays at the tile size"),
    ("ragged-full", r"(matmul_(bias_gelu|f32|bt|at|fp8|2k|int8_dequant)|bmm|(causal|gqa)_scores|"
     r"swiglu|mlp_gelu_tanh|"
     r"attention(_heads|_probs)?)"
     r":neuronxcc|col_sum:", r"(ctsz|csz|qsz) = ", "EQUIVALENT",
     "the extra columns are computed from a full-size on-chip tile into PSUM/SBUF columns no "
     "later instruction reads: the eviction and the store use the block's own size (csz / "
     "fsz, recomputed before them), and the tile size is one bank"),
    ("prefetch-same", r"spec:(add|sgd_step|silu_ragged):nki", r"_head2\(", "EQUIVALENT",
     "the flat pass's tail is shorter than one row of the flat view (< FREE_TILE elements), so "
     "nfc1 == 1 and the prefetch under `it1 + 1 < nfc1` never runs"),
    ("prefetch-same", r"spec:layernorm:nki", r"_stage1_head\(", "SURVIVED",
     "size limit: the split form (D > 7781) reaches a second row tile only at M > 128, over "
     "1,000,000 elements per tensor, past tests/test_specs.py's 300,000 per case"),
    ("minmax-swap", r"spec:attention(_heads|_probs)?:",
     r"block_neg_max|neg_max\[0:qsz, kb:kb|bank_max\[0:TILE_P, [1-9]",
     "SURVIVED",
     "softmax is shift invariant: a different but consistent running shift changes the output "
     "only where exp overflows, which needs key blocks whose maxima differ by over 88 / scale "
     "(inputs that make every row one-hot and blunt the other checks)"),
    ("mov+1", r"spec:conv2d:", r"TILE_W = ", "EQUIVALENT",
     "W <= 512, so OW <= 510 < TILE_W: the block width min(OW, TILE_W) is OW whatever TILE_W "
     ">= 510 (one block per output row)"),
    ("range-1", r"spec:conv2d:neuronxcc", r"nbw - 1", "EQUIVALENT",
     "nbw = ceil(OW / wb) is 1 at every legal size (wb = OW, see mov+1), so this 'all but the "
     "last block' loop is always empty"),
    ("del-memset", r"spec:gqa_scores:neuronxcc", r"s_blk\[", "EQUIVALENT",
     "the memset's mask keeps only a ragged contraction tile's lanes, and D is fixed at 128: "
     "no lane at any legal size"),
    ("", r"spec:gqa_scores:", r"dst=s\[i_h, (r0|0|c0) ", "SURVIVED",
     "size limit: the row offset is nonzero from a second 2048-row block (M > 2048) and "
     "differs from the column offset from a second 1024-column block (N > 1024): s has "
     "4 KV x M x N elements, over tests/test_specs.py's 300,000 per case either way"),
    ("op-swap", r"spec:attention_probs:", r"block_sum", "SURVIVED",
     "size limit: the second 2048-key block spans two banks only at N > 2560, p (M x N, "
     "M >= 128) then over tests/test_specs.py's 300,000 elements per case"),
    ("seq->affine", r"spec:attention_probs:neuronxcc", r"for kb in", "SURVIVED",
     "size limit: the loop runs twice only at three key blocks (N > 4096), p (M x N, "
     "M >= 128) then over tests/test_specs.py's 300,000 elements per case"),
    ("range+1", r"spec:matmul_\w+:nki", r"for rb in range\(-\(-M // BLOCK_M\)", "EQUIVALENT",
     "the extra row block has rsz = M - r0 < 0, so its tile count is negative and every loop "
     "of the block (a range of a negative count) runs no iteration"),
    ("range+1", r"spec:transpose:nki", r"for nt in range\(-\(-N // SUPER\)", "EQUIVALENT",
     "the extra super-block has nsz = N - n0 <= 0, so its block count is not positive and its "
     "loops (a range of a count <= 0) run no iteration"),
    ("", r"spec:matmul_(lhst_)?bf16:", r"acc\b|acc\[|dst=c\[|for kb in", "SURVIVED",
     "size limit: N is a multiple of 512, so a second 1024-deep contraction block (K > 1024: b "
     "over 589,000 elements) or a second 2048-row block (M > 2048: c over 1,100,000) is past "
     "tests/test_specs.py's 300,000 elements per case"),
    ("sbuf-int", r"spec:residual_rmsnorm:", r"row_sum = ", "SURVIVED",
     "tolerance: a sum of squares of ~2 * D truncated to an integer moves rsqrt by under "
     "1 / (4 D), inside the bf16 output's tolerance"),
    ("", r"spec:layernorm3d:nki", r"^\s+x_t2 = nl\.ndarray|_stage1_head\(", "SURVIVED",
     "size limit: the split form (D > 7781) reaches a second row tile only at B * S > 128, "
     "over 1,000,000 elements per tensor, past tests/test_specs.py's 300,000 per case"),
    ("seq->affine", r"spec:matvec:neuronxcc", r"for kb in", "EQUIVALENT",
     "every block writes a fresh operand tile and only accumulates into the PSUM tile with "
     "`+=` (an affine_range loop may: PSUM accumulation is its documented reduction, S25 "
     "nki.language affine_range); nothing else carries between iterations"),
    ("bcast-drop", r"classic_kernels/basic.py::layernorm_v1|row_tutorials|layernorm_tutorial",
     r"broadcast_to|^\s*(g|b|bt|g_b|b_b|g_bcast) = ", "EQUIVALENT",
     "the [1, F] row reaches only nl.multiply / nl.add, which broadcast along the partition "
     "axis (S25 nki_known_issues.rst: partition broadcasting is supported by the nki.language "
     "APIs, not by the operator overloads), the same values"),
    # mutants17
    ("axis-neg", r"", r"", "EQUIVALENT",
     "axis=-1 is the last free axis of these 2-D tiles, the same as axis=1 (NumPy's negative "
     "axes: SH nki/api/nki/language softmax defaults to axis=-1)"),
    ("keepdims-drop", r"", r"", "EQUIVALENT",
     "a free-axis reduction without keepdims is a [P] result that behaves as [P, 1] (the "
     "public kernels' x - nl.max(x, axis=1)); the explicit dst / the assignment target is "
     "(P, 1) either way, the same values"),
    ("negate-flip", r"softmax|attention", r"neg_?max|\bmx\b|negate=", "SURVIVED",
     "tolerance: the negated row max is an exp bias and softmax is shift invariant; exp(x + "
     "max) overflows only for scores above ~44, which the simulated inputs never reach"),
    ("dtype-kw", r"", r"", "SURVIVED",
     "accepted on purpose (nkigen/sim/nki/isa.py _cast_to): nki-samples tutorials "
     "matrix_multiplication_nki_kernels.py pass dtype= to the dst-first nisa.tensor_copy; the "
     "result rounds through bf16, inside the tolerance here (`nkigen lint` flags "
     "sig.unknown-keyword)"),
    ("step2", r"", r"0:1:2\]", "EQUIVALENT",
     "a step over a one-element range (0:1:2) selects the same element as 0:1"),
    ("step2", r"", r"\b(\w+):\1 \+ 1:2\]", "EQUIVALENT",
     "a step over a one-element range (i:i + 1:2) selects the same element as i:i + 1"),
    ("psum-inner", r"spec:(attention(_heads|_probs)?|causal_scores|gqa_scores|conv1d|"
     r"mamba_scan):", r"", "EQUIVALENT",
     "the contraction is one tile at every legal size (D <= 128, C <= 128), so the loop runs "
     "once and a tile allocated inside it is the same tile"),
    ("sbuf-fp8", r"leaky_relu_where", r"mask\d", "EQUIVALENT",
     "the tile holds 0/1 comparison results, exact in float8_e4m3"),
    ("sbuf-fp8", r"", r"^\s*const2? = ", "SURVIVED",
     "tolerance: the eps constant rounds to float8 (1e-5 -> 0 or 2^-9 scale), a change inside "
     "the spec's tolerance for rows of non-negligible norm"),
    ("sbuf-fp8", r"softmax", r"^\s*mx = ", "SURVIVED",
     "tolerance: the row max (an exp bias) rounded to float8 is still a consistent shift; "
     "softmax is shift invariant"),
    # specmut17: range-step2 / ragged survivors that no legal size reaches (the others are
    # killed by the specs' second-iteration cases)
    ("range-step2", r"", r"range\(0, 1, 2\)", "EQUIVALENT",
     "range(0, 1, 2) and range(1) run the same single iteration 0"),
    ("range-step2", r"spec:(add|sgd_step|silu_ragged):nki", r"for it1 in", "EQUIVALENT",
     "the flat pass's tail is shorter than one row of the flat view (< FREE_TILE elements), so "
     "nfc1 == 1 and range(0, 1, 2) runs the same iteration"),
    ("range-step2", r"spec:attention(_heads|_probs)?:", r"for (md|kd) in", "EQUIVALENT",
     "D <= 128 (the spec's max): ndt = ceil(D / 128) is 1 at every legal size"),
    ("range-step2", r"spec:conv1d:", r"for ct1 in", "EQUIVALENT",
     "C <= 128 (the spec's max): nkt = ceil(C / 128) is 1 at every legal size"),
    ("range-step2", r"spec:(causal|gqa)_scores:", r"for kt[23] in", "EQUIVALENT",
     "D is fixed at 128: nkt = ceil(D / 128) is 1 at every legal size"),
    ("range-step2", r"spec:col_sum:nki", r"for q in", "EQUIVALENT",
     "fsz = min(COLS, N - f0) <= COLS, so ceil(fsz / COLS) is 1 at every size"),
    ("range-step2", r"spec:rope_half:", r"for fc in", "EQUIVALENT",
     "H <= 256 (the spec's max) < FREE_TILE: nfc = ceil(H / FREE_TILE) is 1 at every legal size"),
    ("range-step2", r"spec:conv2d:neuronxcc", r"nbw - 1", "EQUIVALENT",
     "nbw = ceil(OW / wb) is 1 at every legal size (wb = OW, see mov+1), so this 'all but the "
     "last block' loop is always empty"),
    ("ragged+1", r"spec:conv2d:", r"wb = |wsz = ", "EQUIVALENT",
     "W <= 512, so OW <= 510 < TILE_W: wb = min(OW, TILE_W + 1) is OW, and the one block "
     "(w0 = 0) has wsz = min(OW, OW + 1) = OW"),
    ("ragged-full", r"spec:conv2d:", r"wb = |wsz = ", "EQUIVALENT",
     "W <= 512, so OW <= 510 < TILE_W: wb = min(OW, TILE_W) is OW, and the one block (w0 = 0) "
     "has wsz = min(wb, OW) = wb"),
    ("range-step2", r"spec:layernorm:nki", r"for pt2 in", "SURVIVED",
     "size limit: the split form (D > 7781) reaches a second row tile only at M > 128, over "
     "1,000,000 elements per tensor, past tests/test_specs.py's 300,000 per case"),
    ("range-step2", r"spec:matmul_(lhst_)?bf16:", r"for (rb|cb) in", "SURVIVED",
     "size limit: N is a multiple of 512, so three 1024-column blocks need N >= 2560 (c: "
     "M x N >= 327,680 elements) and a second 2048-row block M > 2048 (c over 1,100,000), past "
     "tests/test_specs.py's 300,000 elements per case"),
    ("range-step2", r"spec:gqa_scores:neuronxcc", r"for cb in", "SURVIVED",
     "size limit: three 1024-column blocks need N > 2048, s (4 KV x M x N, M >= 128) then over "
     "1,000,000 elements, past tests/test_specs.py's 300,000 per case"),
    ("range-step2", r"", r"", "SURVIVED",
     "untested size: the loop runs once at every simulated case (one tile), where "
     "range(0, n, 2) and range(n) agree; a second tile is past the cases run here"),
]


def explain(m: Mutant) -> tuple[str, str] | None:
    """(class, argument) for a surviving mutant from :data:`NOTES`, or None."""
    for op, lab, line, cls, why in NOTES:
        if op and op != m.op.name:
            continue
        if re.search(lab, m.kernel.label) and (re.search(line, m.new)
                                               or re.search(line, m.old)):
            return cls, why
    return None


@dataclass
class Mutant:
    kernel: Kernel
    op: Op
    line: int        # 1-based
    old: str
    new: str


def kernel_lines(k: Kernel) -> set[int]:
    """0-based lines that belong to kernel ``k``: the kernel function, the module-level helper
    functions it calls (transitively) and the module-level statements (constants). A generated
    kernel's file is all its own."""
    import ast

    lines = k.source.splitlines()
    if k.spec is not None:
        return set(range(len(lines)))
    tree = ast.parse(k.source)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    keep: set[int] = set()
    for n in tree.body:
        if not isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom,
                              ast.Expr)):
            keep.update(range(n.lineno - 1, n.end_lineno or n.lineno))
    todo, seen = [k.name], set()
    while todo:
        f = funcs.get(todo.pop())
        if f is None or f.name in seen:
            continue
        seen.add(f.name)
        keep.update(range(f.lineno - 1, f.end_lineno or f.lineno))
        todo += [c.func.id for c in ast.walk(f) if isinstance(c, ast.Call)
                 and isinstance(c.func, ast.Name) and c.func.id in funcs]
    return keep


def mutants(k: Kernel, ops: list[Op], sites: int) -> list[Mutant]:
    lines = k.source.splitlines()
    mine = kernel_lines(k)
    out = []
    for op in ops:
        found = []
        for i in sorted(mine):
            try:
                new = op.site(lines, i, k)
            except Exception:     # an operator bug must not stop the campaign
                new = None
            if new is not None and new != lines[i]:
                found.append(Mutant(k, op, i + 1, lines[i], new))
        if len(found) > sites:     # first and last site (then evenly spread)
            step = (len(found) - 1) / (sites - 1) if sites > 1 else 0
            found = [found[round(j * step)] for j in range(sites)]
        out.extend(found)
    return out


def mutated_source(m: Mutant) -> str:
    lines = m.kernel.source.splitlines()
    lines[m.line - 1] = m.new
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# running

@dataclass
class Outcome:
    cls: str          # KILLED-error | KILLED-wrong | KILLED-python | SURVIVED | EQUIVALENT
    detail: str
    located: bool = False


class _Ref:
    """Per-kernel reference data, computed once."""

    def __init__(self, k: Kernel):
        self.k = k
        self.cases: list = []
        if k.spec is not None:
            from nkigen.library import autocase
            from nkigen.library.stages import real_stages
            from nkigen.library.unit import kernel_args
            st = real_stages()
            declared = [{a: int(b) for a, b in c.items()} for c in st.cases(k.spec)]
            # the build also verifies a derived case for each side of a trace-time size branch
            # no declared case reaches (nkigen.library.unit: autocase.derive on the unmutated
            # kernel); --no-derived leaves them out (what the spec's own cases cover)
            derived = [] if not DERIVED else [
                d.sizes for d in autocase.derive(k.spec, k.source, k.dialect, declared).derived
                if d.sizes not in declared]
            for c in declared + derived + ([stress_case(k.spec, declared)] if STRESS else []):
                if c is None:
                    continue
                c = {a: int(b) for a, b in c.items()}
                inputs = st.make_inputs(k.spec, c)
                ref = st.evaluate(k.spec, inputs, c)
                exp = {t.name: np.asarray(ref[t.name], np.float64) for t in k.spec.outputs}
                tol = st.tolerance(k.spec, c)
                rtol = k.spec.tests.rtol if k.spec.tests.rtol is not None else tol[0]
                atol = k.spec.tests.atol if k.spec.tests.atol is not None else tol[1]
                self.cases.append((c, kernel_args(k.spec, inputs), exp, rtol, atol))
        else:
            assert k.inputs is not None
            args = k.inputs()
            outs = run_kernel(k, k.source, args, Path(tempfile.mkdtemp()) / "orig.py")
            exp = {str(j): np.asarray(o).astype(np.float64) for j, o in enumerate(outs)}
            bf = any(str(np.asarray(o).dtype) == "bfloat16" for o in outs)
            self.cases.append(({}, args, exp, 2**-7 if bf else 1e-3, 1e-3))


STRESS = True
DERIVED = True


def stress_case(spec, cases: list[dict]) -> dict | None:
    """One size assignment beyond the spec's test cases (each free size about twice its largest
    tested value plus a ragged part, past one 2048-row block where the constraints allow), so a
    mutant that only matters at a second block or a ragged tile is exercised; None when no
    such assignment passes the spec's size checks."""
    from nkigen.analysis import check_sizes

    big = max(cases, key=lambda c: sum(c.values())) if cases else {}
    out: dict[str, int] = {}
    for s in spec.free_sizes:
        v = int(big.get(s.name, max(s.min, 1)))
        m = s.multiple_of or 1
        want = 2 * v + (m if m > 1 else 37)
        if m > 1 and want < 2048 + m:
            want = 2048 + m
        want = -(-want // m) * m
        if s.max is not None and want > s.max:
            want = s.max // m * m
        out[s.name] = max(want, s.min)
    # keep the case small enough to simulate quickly: shrink the largest sizes until the
    # inputs hold at most ~6M elements
    try:
        from nkigen.library import shapes
        for _ in range(8):
            n = sum(int(np.prod(x)) for x in shapes.input_shapes(spec, out).values())
            if n <= 6_000_000:
                break
            s = max(spec.free_sizes, key=lambda s: out[s.name])
            m = s.multiple_of or 1
            out[s.name] = max(s.min, (out[s.name] // 2) // m * m or m)
    except Exception:
        return None
    try:
        if check_sizes(spec, out):
            return None
    except Exception:
        return None
    return out if out not in cases else None


def run_kernel(k: Kernel, source: str, args: list, path: Path) -> list:
    from nkigen import sim
    from nkigen.library.stages import _sim_run

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    kern = sim.load(str(path), k.name)
    if k.grid is not None:
        kern = kern[k.grid]
    res = _sim_run(kern, args, "trn2") if k.spec is not None else sim.run(kern, args, "trn2")
    outs = res.outputs
    if isinstance(outs, dict):
        outs = [outs[t.name] for t in k.spec.outputs]
    elif not isinstance(outs, (tuple, list)):
        outs = [outs]
    return list(outs)


def classify(m: Mutant, ref: _Ref, work: Path) -> Outcome:
    from nkigen.library.unit import mismatches
    from nkigen.sim.errors import SimError

    src = mutated_source(m)
    path = work / f"{m.kernel.name}.py"
    for c, args, exp, rtol, atol in ref.cases:
        try:
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                outs = run_kernel(m.kernel, src, args, path)
        except SimError as e:
            d = e.diagnostics[0]
            loc = d.loc
            located = loc is not None and Path(loc.path).name == path.name and loc.line > 0
            where = f"{Path(loc.path).name}:{loc.line}" if loc is not None else "?"
            return Outcome("KILLED-error", f"{where}: {d.rule[:110]}", located)
        except Exception as e:    # a Python error: in the kernel (not a valid program) or ours
            tb = traceback.extract_tb(e.__traceback__)
            inside = [f for f in tb if "nkigen/sim" in f.filename]
            last = tb[-1] if tb else None
            where = f"{Path(last.filename).name}:{last.lineno}" if last else "?"
            cls = "KILLED-crash" if inside and inside[-1] is last else "KILLED-python"
            return Outcome(cls, f"{where}: {type(e).__name__}: {str(e)[:100]}")
        names = list(exp)
        for n, g in zip(names, outs):
            g = np.asarray(g).astype(np.float64)
            e = exp[n]
            if g.shape != e.shape:
                return Outcome("KILLED-wrong", f"output shape {g.shape} != {e.shape}")
            bad, _ = mismatches(g, e, rtol, atol)
            if bad.any():
                case = ",".join(f"{a}={b}" for a, b in sorted(c.items())) or "fixed"
                return Outcome("KILLED-wrong", f"{int(bad.sum())}/{bad.size} elements off "
                                               f"({case})")
    note = explain(m)
    if note is not None:
        return Outcome(note[0], note[1] if note[0] == "EQUIVALENT" else f"verified; {note[1]}")
    return Outcome("SURVIVED", "verified")


def lint_flags(m: Mutant) -> str:
    try:
        from nkigen.lint.checker import lint_source
        from nkigen.lint.table import Api, Level
        res = lint_source(mutated_source(m), "k.py", Api(m.kernel.dialect))
        base = {(f.rule, f.message) for f in lint_source(m.kernel.source, "k.py",
                                                          Api(m.kernel.dialect)).findings}
        new = [f for f in res.findings if f.level is not Level.DISCOURAGED
               and (f.rule, f.message) not in base]
        return f"lint: {new[0].rule}" if new else "lint: clean"
    except Exception as e:
        return f"lint: n/a ({type(e).__name__})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="keep kernels whose label contains this")
    ap.add_argument("--ops", default="", help="comma-separated operator names")
    ap.add_argument("--sites", type=int, default=2, help="sites per operator and kernel")
    ap.add_argument("--quick", action="store_true", help="a smaller kernel set")
    ap.add_argument("--all-specs", action="store_true",
                    help="every spec in specs/, not only the SPECS list")
    ap.add_argument("--no-hand", action="store_true")
    ap.add_argument("--no-specs", action="store_true")
    ap.add_argument("-v", action="store_true", help="print the mutated line too")
    ap.add_argument("--no-stress", action="store_true",
                    help="only the spec's own test cases (no extra larger case)")
    ap.add_argument("--no-derived", action="store_true",
                    help="without the build's derived cases (only the spec's declared cases)")
    ap.add_argument("--survivors", action="store_true", help="print only survivors")
    a = ap.parse_args(argv)

    global STRESS, DERIVED
    STRESS = not a.no_stress
    DERIVED = not a.no_derived
    ops = [o for o in OPS if not a.ops or o.name in a.ops.split(",")]
    names = QUICK_SPECS if a.quick else SPECS
    if a.all_specs:
        names = sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
    kernels: list[Kernel] = []
    if not a.no_specs:
        kernels += spec_kernels([n for n in names if a.k in f"spec:{n}:" or a.k in n
                                 or not a.k])
    if not a.no_hand:
        kernels += hand_kernels(lambda n: not a.quick or n in QUICK_HAND)
    kernels = [k for k in kernels if a.k in k.label]
    totals: Counter = Counter()
    per_op: dict[str, Counter] = {}
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix="kmut-"))
    for k in kernels:
        try:
            ref = _Ref(k)
        except Exception as e:
            print(f"{k.label}: reference failed: {type(e).__name__}: {e}")
            continue
        for m in mutants(k, ops, a.sites):
            o = classify(m, ref, work)
            totals[o.cls] += 1
            per_op.setdefault(m.op.name, Counter())[o.cls] += 1
            extra = ""
            if o.cls == "KILLED-error":
                extra = " [located]" if o.located else " [NOT located at the kernel line]"
            if o.cls == "SURVIVED":
                extra = f" [{lint_flags(m)}]"
            if a.survivors and o.cls not in ("SURVIVED", "KILLED-crash"):
                continue
            print(f"{o.cls:13} {k.label}:{m.line} {m.op.name}: {o.detail}{extra}", flush=True)
            if a.v or o.cls in ("SURVIVED", "KILLED-crash"):
                print(f"{'':14}- {m.old.strip()[:150]}\n{'':14}+ {m.new.strip()[:150]}")
    n = sum(totals.values())
    print(f"\n{n} mutants over {len(kernels)} kernels in {time.time() - t0:.0f} s")
    for cls in ("KILLED-error", "KILLED-wrong", "KILLED-python", "KILLED-crash", "SURVIVED",
                "EQUIVALENT"):
        print(f"  {cls:14} {totals[cls]}")
    print("per operator (error/wrong/python/crash/survived/equivalent):")
    for opn, c in per_op.items():
        print(f"  {opn:14} {c['KILLED-error']}/{c['KILLED-wrong']}/{c['KILLED-python']}/"
              f"{c['KILLED-crash']}/{c['SURVIVED']}/{c['EQUIVALENT']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
