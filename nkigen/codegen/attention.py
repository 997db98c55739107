"""Attention lowering: a contraction feeding a row softmax (and optionally a second contraction)
becomes one fused kernel whose scores never leave the chip.

Stage: plan (Statements -> plan nodes). Recognised pattern (names are the spec's own; ``c`` is
a positive trace-time factor, absent meaning 1):

    s[m, n] += q[m, d] * k[n, d]            # q may be stored [d, m], k [d, n]
    mx[m]    = max(s[m, n], n)
    e[m, n]  = exp(c * (s[m, n] - mx[m]))
    l[m]     = sum(e[m, n], n)
    p[m, n]  = e[m, n] / l[m]
    o[m, j] += p[m, n] * v[n, j]            # optional: full attention

with ``s``, ``mx``, ``e``, ``l`` (and ``p`` when the last statement is present) temps read by
nothing else. Leading indices every tensor carries first, in the same order (heads, batch:
``s[h, m, n] += q[h, m, d] * k[h, n, d]``), become loops around the kernel. Lowering, per
128-query tile (k^T and v loaded once and kept on chip, q^T loaded per block of 2048 queries;
row-major q/k are turned by DMA transposes, or on TensorE where
:func:`nkigen.codegen.matmul.choose_transpose` finds that cheaper, e.g. NeuronCore-v2, which
has no DMA transpose unit):

* the keys are taken in blocks of ``W`` columns; each block's scores ``q k^T`` go into PSUM
  (one bank per 512 keys) and are consumed there: the row max is read straight from PSUM
  (``tensor_reduce`` per bank, then ``tensor_reduce(negate=True)`` over the banks), and one
  ScalarE ``activation`` per bank computes ``exp(c * s - c * max)`` reading PSUM with the bias
  fused and the row sum in ``reduce_res`` (S29 nki/api/nki/isa/__init__.py ``tensor_reduce``:
  data in SBUF or PSUM, ``negate``; ``activation``: data in SBUF or PSUM,
  ``op(data * scale + bias)``, ``reduce_op=nl.add`` with ``reduce_cmd.reset_reduce``);
* full attention in the current API with more than 2048 keys allowed (:func:`evicts`): each
  bank of scores has a PSUM tile of its own and is evicted to SBUF as soon as its matmuls end,
  by one VectorE ``tensor_scalar_reduce`` (a copy, ``* 1.0``) that also writes the bank's row
  max (S29 ``tensor_scalar_reduce``: data in SBUF or PSUM, ``reduce_res``); the exp reads the
  SBUF copy. The block is then bounded by the SBUF, not the PSUM: 4096 keys instead of 2048,
  half the online-softmax blocks (the nki-samples ``attention_fwd_performance`` "evict PSUM
  early" step);
* online softmax across key blocks: the running (negated) max after each block is kept in a
  column per block; a later block rescales the running sum (and the output accumulator) by
  ``exp(c * (m_old - m_new))`` (one ScalarE ``activation`` on a column, one VectorE
  ``scalar_tensor_tensor``);
* softmax only (no ``o``): the exponentials stay in SBUF; at the end one ``reciprocal`` of the
  sum, one ``activation`` giving each block's factor ``exp(c * (m_block - m_final)) / l``, and
  one ``tensor_scalar`` per block produce ``p`` (with a single block this is exactly the
  expert's ``reciprocal`` + ``tensor_scalar``);
* full attention: each block's probabilities (in ``p``'s dtype) are turned on TensorE in
  128 x 128 tiles (``nc_transpose`` into PSUM of the data's dtype, S29 ``nc_transpose``), copied
  to SBUF and multiplied by the resident ``v`` tiles, accumulating over the block's key tiles in
  one PSUM tile; the output accumulator is ``acc * alpha + pv`` (``scalar_tensor_tensor`` reading
  PSUM), and the end multiplies by ``1 / l`` in the eviction (``tensor_scalar``).

PSUM (8 banks of 2 KiB per partition): a tile allocated in a loop body is charged again before
the previous iteration's dies, so where a per-block score tile (4 banks, twice) would not fit
next to the transposes and p @ v, the kernel allocates its score and p @ v tiles once and each
block starts a new accumulation group with ``accumulate=False`` (S29 ``nc_matmul``).

Masked keys (scores of ``-inf``, e.g. left padding): a row whose first key blocks are all
``-inf`` has a block max of ``-inf``, and ``exp(c * s - c * max)`` would be ``-inf + inf = NaN``.
The exp bias ``c * (-max)`` is therefore kept at most ``BIAS_CEIL`` (the largest fp32), so
such blocks contribute ``exp(-inf) = 0`` and the first finite block's ``alpha`` drops them; a
row of all ``-inf`` is NaN, as in the reference (tests/test_attention_inf.py).

Ragged sizes (any ``M``, ``N`` the spec allows): every view is sized with ``min()``, so the
last key block, bank and 128-key tile cover only the real keys (the padded keys never enter a
max, a sum or a matmul).

Not matched (the generic plan runs instead, scores through HBM): other statement shapes, a
negative or non-constant ``c``, 1-byte q/k (``dma_transpose`` needs 2 or 4 bytes, S29
``dma_transpose``), q and k of different dtypes, sizes without a ``max`` bounding the resident
k^T/v (or too large for the SBUF), ``j`` over 512 (one PSUM bank), ``v`` stored ``[j, n]``, a
``p`` dtype differing from ``v``'s, and a head index missing from (or not leading in) a tensor
(grouped-query sharing).

The classic dialect gets the same kernel with one PSUM tile per bank and smaller blocks where
the PSUM needs it (see :func:`block_width`); still nothing in HBM.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.names import checked
from nkigen.codegen.plan_ext import TensorScalarReduce
from nkigen.codegen.symcache import Min
from nkigen.dtypes import DType
from nkigen.hw import GEMM_MOVING_FMAX, PMAX
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Call,
    Const,
    Expr,
    Func,
    ParamRef,
    Reduce,
    ReduceKind,
    Role,
    Statement,
    index_symbol,
)

F32 = DType.float32
ZERO = sympy.Integer(0)
ONE = sympy.Integer(1)
BANK = GEMM_MOVING_FMAX          # fp32 score columns per PSUM bank (one matmul's moving width)
QBLOCK = 2048                    # queries per q^T load (one DMA transpose per d tile)
KLOAD = 2048                     # keys per k^T DMA transpose
BLOCK_PROBS = 2048               # key block of the softmax-only kernel: 4 PSUM banks
BLOCK_FLASH = 2048               # key block of full attention: 4 banks (+ transposes, pv)
# key block of full attention when each bank of scores is evicted to SBUF as soon as it is
# computed (:func:`evicts`): the block is held in SBUF, not PSUM (8 banks' worth of keys)
BLOCK_EVICT = 4096
TGROUP = 4                       # 128 x 128 transposes per PSUM tile / eviction copy
SBUF_SHARE = 0.9                 # share of the usable SBUF the resident tiles may take
# ceiling of the exponent's bias c * (-max): the largest finite float32. A key block whose
# scores are all -inf (masked keys) has -max = +inf, and exp(c * s + inf) with s = -inf is
# NaN; with the bias at most FLT_MAX it is exp(-inf) = 0 (see _lower)
BIAS_CEIL = 3.4028234663852886e38


@dataclass(frozen=True)
class Pattern:
    """The matched statements, in spec names."""

    sts: tuple[Statement, ...]
    q: Access
    k: Access
    q_dmajor: bool               # q stored [d, m]
    k_dmajor: bool               # k stored [d, n]
    m: str
    n: str
    d: str
    scale: float                 # c (times the contraction's trace-time factors)
    scale_expr: sympy.Expr       # the same, params by name (as printed)
    p: str
    o: str | None = None
    v: Access | None = None
    j: str | None = None
    batch: tuple[str, ...] = ()  # leading indices of every tensor: loops around the kernel


# ---- matching ----------------------------------------------------------------------------

def _idx(a: Expr, tensor: str | None = None) -> tuple[str, ...] | None:
    """The plain index names of an access (None unless every index is a bare index)."""
    if not isinstance(a, Access) or a.indirect or (tensor is not None and a.tensor != tensor):
        return None
    out = []
    for e in a.indices:
        e = sympy.sympify(e)
        if not (e.is_Symbol and e == index_symbol(e.name)):
            return None
        out.append(e.name)
    return tuple(out)


def _const(e: Expr) -> float | None:
    """The value of a trace-time factor (constants, params and their products)."""
    if isinstance(e, Const):
        return float(e.value)
    if isinstance(e, ParamRef) and isinstance(e.value, (int, float)):
        return float(e.value)
    if isinstance(e, BinOp) and e.op is BinOpKind.MUL:
        a, b = _const(e.lhs), _const(e.rhs)
        return None if a is None or b is None else a * b
    return None


def _sym(e: Expr) -> sympy.Expr:
    """The same factor as printed in the kernel: params by name (``_const(e)`` is not None)."""
    if isinstance(e, Const):
        v = float(e.value)
        return sympy.Integer(int(v)) if v.is_integer() else sympy.Float(v)
    if isinstance(e, ParamRef):
        return sympy.Symbol(checked(e.name, "param"))
    assert isinstance(e, BinOp)
    return _sym(e.lhs) * _sym(e.rhs)


def _factors(e: Expr) -> list[Expr]:
    if isinstance(e, BinOp) and e.op is BinOpKind.MUL:
        return _factors(e.lhs) + _factors(e.rhs)
    return [e]


def _product(e: Expr) -> tuple[list[Access], float] | None:
    """Accesses and the trace-time factor of a product (None if anything else appears)."""
    accs: list[Access] = []
    c = 1.0
    for f in _factors(e):
        if isinstance(f, Access):
            accs.append(f)
            continue
        v = _const(f)
        if v is None:
            return None
        c *= v
    return accs, c


def _product_sym(e: Expr) -> sympy.Expr:
    out: sympy.Expr = sympy.Integer(1)
    for f in _factors(e):
        if not isinstance(f, Access):
            out = out * _sym(f)
    return out


def _exp_arg(e: Expr, s: str, mx: str, smn: tuple[str, ...],
             mxm: tuple[str, ...]) -> tuple[float, sympy.Expr] | None:
    """``c`` (value, printed form) if ``e`` is ``c * (s[m, n] - mx[m])`` (either factor
    order) or ``s - mx``."""
    c, cs = 1.0, sympy.Integer(1)
    if isinstance(e, BinOp) and e.op is BinOpKind.MUL:
        a, b = _const(e.lhs), _const(e.rhs)
        if a is not None:
            c, cs, e = a, _sym(e.lhs), e.rhs
        elif b is not None:
            c, cs, e = b, _sym(e.rhs), e.lhs
        else:
            return None
    if not (isinstance(e, BinOp) and e.op is BinOpKind.SUB):
        return None
    if _idx(e.lhs, s) != smn or _idx(e.rhs, mx) != mxm:
        return None
    return c, cs


def _temp_only_here(b: Build, name: str, sts: list[Statement]) -> bool:
    spec = b.spec
    if spec.tensor(name).role is not Role.TEMP or b.writers(name) != 1:
        return False
    here = {st.position for st in sts}
    return all(r in here for r in b.readers(name))


def match(b: Build, sts: list[Statement], i: int) -> Pattern | None:
    """The attention pattern starting at statement ``i`` (None if it is not one). Leading
    indices shared by every tensor of the pattern in the same order (heads, batch) become
    batch loops around the kernel."""
    if i + 5 > len(sts):
        return None
    s0, s1, s2, s3, s4 = sts[i:i + 5]
    if s0.op is not AssignOp.ACCUMULATE or len(s0.sum_indices) != 1 or len(s0.lhs) < 2:
        return None
    B = tuple(s0.lhs[:-2])
    m, n = s0.lhs[-2:]
    d = s0.sum_indices[0]
    prod = _product(s0.rhs)
    if prod is None or len(prod[0]) != 2:
        return None
    (a0, a1), c0 = prod
    f0, f1 = _idx(a0), _idx(a1)
    if f0 is None or f1 is None or f0[:len(B)] != B or f1[:len(B)] != B:
        return None
    i0, i1 = f0[len(B):], f1[len(B):]
    if m in i1 and n in i0:
        a0, a1, i0, i1 = a1, a0, i1, i0
    if sorted(i0) != sorted((m, d)) or sorted(i1) != sorted((n, d)) or m == n:
        return None
    s = s0.target
    # mx[m] = max(s[m, n], n)
    if s1.op is not AssignOp.ASSIGN or s1.lhs != B + (m,) or not isinstance(s1.rhs, Reduce):
        return None
    if s1.rhs.op is not ReduceKind.MAX or s1.rhs.indices != (n,) \
            or _idx(s1.rhs.body, s) != B + (m, n):
        return None
    mx = s1.target
    # e[m, n] = exp(c * (s[m, n] - mx[m]))
    if s2.op is not AssignOp.ASSIGN or s2.lhs != B + (m, n) or not isinstance(s2.rhs, Call) \
            or s2.rhs.func is not Func.EXP:
        return None
    ce = _exp_arg(s2.rhs.args[0], s, mx, B + (m, n), B + (m,))
    if ce is None or not ce[0] > 0 or not c0 > 0:
        return None
    c = ce[0]
    c_sym = ce[1] * _product_sym(s0.rhs)
    e = s2.target
    # l[m] = sum(e[m, n], n)
    if s3.op is not AssignOp.ASSIGN or s3.lhs != B + (m,) or not isinstance(s3.rhs, Reduce) \
            or s3.rhs.op is not ReduceKind.SUM or s3.rhs.indices != (n,) \
            or _idx(s3.rhs.body, e) != B + (m, n):
        return None
    lsum = s3.target
    # p[m, n] = e[m, n] / l[m]
    r4 = s4.rhs
    if s4.op is not AssignOp.ASSIGN or s4.lhs != B + (m, n) or not isinstance(r4, BinOp) \
            or r4.op is not BinOpKind.DIV or _idx(r4.lhs, e) != B + (m, n) \
            or _idx(r4.rhs, lsum) != B + (m,):
        return None
    p = s4.target
    group = [s0, s1, s2, s3, s4]
    pat = Pattern(tuple(group), a0, a1, i0 == (d, m), i1 == (d, n), m, n, d, c * c0, c_sym, p,
                  batch=B)
    # o[m, j] += p[m, n] * v[n, j]
    if i + 5 < len(sts):
        s5 = sts[i + 5]
        prod5 = _product(s5.rhs) if s5.op is AssignOp.ACCUMULATE else None
        if prod5 is not None and len(prod5[0]) == 2 and prod5[1] == 1.0 \
                and s5.sum_indices == (n,) and len(s5.lhs) == len(B) + 2 \
                and s5.lhs[:-1] == B + (m,):
            j = s5.lhs[-1]
            pa, va = prod5[0]
            if _idx(pa) != B + (m, n):
                pa, va = va, pa
            if _idx(pa, p) == B + (m, n) and _idx(va) == B + (n, j) \
                    and j not in (m, n, d) + B and _temp_only_here(b, p, group + [s5]):
                pat = Pattern(tuple(group + [s5]), a0, a1, pat.q_dmajor, pat.k_dmajor, m, n,
                              d, pat.scale, pat.scale_expr, p, s5.target, va, j, batch=B)
    temps = [s, mx, e, lsum] + ([p] if pat.o is not None else [])
    if not all(_temp_only_here(b, t, list(pat.sts)) for t in temps):
        return None
    return pat


# ---- sizes -------------------------------------------------------------------------------

def _max_of(b: Build, ext: sympy.Expr) -> int | None:
    ext = sympy.sympify(ext)
    if ext.is_Integer:
        return int(ext)
    if ext.is_Symbol:
        for sd in b.spec.sizes:
            if sd.name == ext.name and sd.max is not None and sd.value is None:
                return int(sd.max)
    return None


def _fits(b: Build, pat: Pattern, evict: bool = False) -> bool:
    spec = b.spec
    qd, kd = spec.tensor(pat.q.tensor).dtype, spec.tensor(pat.k.tensor).dtype
    if qd is not kd or qd.itemsize not in (2, 4):
        return False
    nmax, dmax = _max_of(b, b.extents[pat.n]), _max_of(b, b.extents[pat.d])
    if nmax is None or dmax is None:
        return False
    ndt = -(-dmax // PMAX)
    # a tile allocated in a loop body is charged again before the previous iteration's dies:
    # per-tile buffers count twice, the resident ones too when batch loops rebind them
    copies = 2 if pat.batch else 1
    need = copies * ndt * nmax * qd.itemsize + 2 * ndt * QBLOCK * qd.itemsize  # k^T, q^T
    if pat.o is None:
        pd = spec.tensor(pat.p).dtype
        need += 2 * (nmax * 4 + (0 if pd is F32 else nmax * pd.itemsize))  # e, p rows
    else:
        assert pat.v is not None and pat.j is not None
        jmax = _max_of(b, b.extents[pat.j])
        vd = spec.tensor(pat.v.tensor).dtype
        if jmax is None or jmax > BANK or vd is not spec.tensor(pat.p).dtype:
            return False
        need += copies * -(-nmax // PMAX) * jmax * vd.itemsize           # v tiles
        need += 2 * (2 * BLOCK_FLASH * vd.itemsize + 2 * jmax * 4)       # p, p^T, acc, o
        if evict:
            # the evicted scores (fp32) and probabilities (at most fp32: the TensorE
            # transpose dtype on NeuronCore-v2) of a BLOCK_EVICT block instead, charged twice
            need += 2 * ((4 + 4 + vd.itemsize) * BLOCK_EVICT
                         - 2 * BLOCK_FLASH * vd.itemsize)
    return need <= SBUF_SHARE * b.target.sbuf_bytes_per_partition


def evicts(b: Build, pat: Pattern) -> bool:
    """Full attention (current API) whose keys may exceed one PSUM-held block
    (``BLOCK_FLASH``, 4 banks): each bank of scores is copied to SBUF as soon as its matmuls
    end, by one VectorE ``tensor_scalar_reduce`` that also writes the bank's row maximum (S29
    nki/api/nki/isa/__init__.py tensor_scalar_reduce: data in SBUF or PSUM, ``reduce_res``;
    cost ``max(MIN_II, N) + MIN_II``, S25 general/nki/api/nki/isa/__init__.py), into a PSUM
    tile made per bank. The key block is then bounded by the SBUF, not the 8 PSUM banks:
    ``BLOCK_EVICT`` keys, half the blocks of the online softmax, each of which adds a
    dependent chain (running max, rescale of the sum and the output) per query tile (the
    nki-samples attention_fwd_performance tutorial's "evict PSUM early" step; at seqlen 4096,
    d 128, trn2: 501.5 -> 465.6 us modelled against the expert's 444.6,
    tests/test_codegen_attention.py). Sizes up to ``BLOCK_FLASH`` keep the PSUM-held block
    (one block either way; the eviction would only add VectorE work)."""
    if b.classic or pat.o is None:
        return False
    nmax = _max_of(b, b.extents[pat.n])
    if nmax is None or nmax <= BLOCK_FLASH:
        return False
    return _fits(b, pat, evict=True)


def block_width(b: Build, flash: bool, pe: bool = False, evict: bool = False) -> int:
    """Keys per online-softmax block. The classic dialect holds a block's scores in one
    ``[128, 512]`` PSUM tile per bank (a classic PSUM tile's free size is at most
    ``nl.tile_size.psum_fmax``; S25 general/nki/api/nki.language.rst psum_fmax) made fresh
    for every block: its matmuls always accumulate (``+=`` on a tile made by ``nl.zeros``), so
    a score tile cannot be reused across blocks."""
    if b.classic:
        # no hoisted tiles: a block's banks are charged twice (the next block's before this
        # one's die), next to p^T and p @ v (full attention) and the q/k transposes (``pe``)
        w = BLOCK_FLASH // 2 if flash else BLOCK_PROBS
        return w // 2 if pe else w
    if evict:
        return BLOCK_EVICT
    return BLOCK_FLASH if flash else BLOCK_PROBS


def try_lower(b: Build, sts: list[Statement], i: int):
    """``(nodes, statements used, StagePlan)`` for the attention pattern at ``i``, else None."""
    pat = match(b, sts, i)
    if pat is None or not _fits(b, pat):
        return None
    for st in pat.sts[:-1]:
        b.resident.add(st.target)
    if pat.o is not None:
        b.resident.add(pat.p)
    nodes = _lower(b, pat)
    return nodes, len(pat.sts), _stage(b, pat)


# ---- lowering ----------------------------------------------------------------------------

def _S(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, nonnegative=True)


def _sl(start, size) -> P.Slice:
    return P.Slice(sympy.sympify(start), sympy.sympify(size))


def _at(i) -> P.Slice:
    return P.Slice(sympy.sympify(i), ONE)


def pe_transpose_dtype(dt: DType, target) -> DType:
    """:func:`nkigen.codegen.matmul.pe_transpose_dtype` (float32 on NeuronCore-v2)."""
    from nkigen.codegen.matmul import pe_transpose_dtype as pe_dt
    return pe_dt(dt, target)


def _pe_transposes(b: Build, pat: Pattern) -> bool:
    """Turn row-major q/k on TensorE instead of the DMA transpose when the cost comparison of
    :func:`nkigen.codegen.matmul.choose_transpose` says so (NeuronCore-v2 has no DMA
    transpose unit)."""
    from nkigen.codegen.matmul import choose_transpose
    if pat.q_dmajor and pat.k_dmajor:
        return False
    dt = b.spec.tensor(pat.q.tensor).dtype
    dmax = _max_of(b, b.extents[pat.d])
    return choose_transpose(b.target, dt.itemsize, dmax if dmax is not None else PMAX) == "pe"


def _pe_load(b: Build, dst: str, src: str, r0: sympy.Expr, rsz: sympy.Expr, D: sympy.Expr,
             ndt: sympy.Expr, dt: DType, tps: str, pre: tuple = ()) -> P.Node:
    """``dst[0:dsz, kd, 0:rsz] = src[r0:r0 + rsz, d0:d0 + dsz]^T`` for every d tile: whole
    rows loaded 128 at a time (contiguous), each 128 x 128 block turned on TensorE into PSUM
    (of the data's dtype, S29 nki/api/nki/isa/__init__.py nc_transpose; it overwrites) and
    copied out. ``tps`` is one PSUM tile shared by every such load of the kernel."""
    fresh = b.namer.fresh
    tt, t0, tsz, rows = fresh("lt"), fresh("lt0"), fresh("ltsz"), fresh("rows")
    kd, d0, dsz = fresh("ld"), fresh("ld0"), fresh("ldsz")
    # every iteration rewrites the one shared PSUM tile after the previous one read it: a
    # loop-carried dependency, so the classic loops are sequential_range (S25
    # general/nki/api/nki/language/__init__.py sequential_range, SDK 2.25)
    kind = P.LoopKind.SEQUENTIAL if b.classic else P.LoopKind.PARALLEL
    return P.Loop(tt, sympy.ceiling(rsz / PMAX), kind, (
        P.Let(t0, _S(tt) * PMAX), P.Let(tsz, Min(PMAX, rsz - _S(t0))),
        # classic: whole 128-column d tiles (their columns past D masked off when read)
        P.Alloc(rows, (sympy.Integer(PMAX), PMAX * sympy.ceiling(D / PMAX) if b.classic else D),
                pe_transpose_dtype(dt, b.target), P.Mem.SBUF),
        P.Dma(P.Ref(rows, (_sl(0, _S(tsz)), _sl(0, D))),
              P.Ref(src, pre + (_sl(r0 + _S(t0), _S(tsz)), _sl(0, D)))),
        P.Loop(kd, ndt, kind, (
            P.Let(d0, _S(kd) * PMAX), P.Let(dsz, Min(PMAX, D - _S(d0))),
            P.PeTranspose(P.Ref(tps, (_sl(0, _S(dsz)), _sl(0, _S(tsz)))),
                          P.Ref(rows, (_sl(0, _S(tsz)), _sl(_S(d0), _S(dsz))))),
            P.TensorCopy(P.Ref(dst, (_sl(0, _S(dsz)), P.Index(_S(kd)), _sl(_S(t0), _S(tsz)))),
                         P.Ref(tps, (_sl(0, _S(dsz)), _sl(0, _S(tsz))))),
        )),
    ))


def _lower(b: Build, pat: Pattern) -> list:
    spec, fresh = b.spec, b.namer.fresh
    M, N, D = (sympy.sympify(b.extents[x]) for x in (pat.m, pat.n, pat.d))
    dt = spec.tensor(pat.q.tensor).dtype
    flash = pat.o is not None
    pe = _pe_transposes(b, pat)
    ev = evicts(b, pat)
    W = block_width(b, flash, pe, ev)
    nbank = W // BANK
    c = pat.scale_expr
    # the tile sizes and block factors by name (render.consts; nl.tile_size values: nkigen.hw,
    # S25 general/nki/api/nki.language.rst "tile_size"); an unowned 128 reads as TILE_P, an
    # unowned 512 as BANK, an unowned 2048 as KEY_BLOCK
    b.const("TILE_P", PMAX, "rows per tile: one per partition (a tile's queries, a transposed "
            "tile's keys, a contraction tile's d)", "pmax")
    b.const("BANK", BANK, "score columns per matmul: the moving operand's free size, one PSUM "
            "bank of fp32", "gemm_moving_fmax")
    b.const("KEY_BLOCK", W, f"keys per online-softmax block: {nbank} "
            + ("banks of scores, each evicted from PSUM to SBUF with its row max"
               if ev else "PSUM bank(s) of scores")
            + ", one running-max update per block", None, (), expr=f"{nbank} * BANK")
    b.const("Q_BLOCK", QBLOCK, f"queries per q^T load: {QBLOCK // PMAX} query tiles share one "
            "transposing load per d tile", None, (), owned_only=True,
            expr=f"{QBLOCK // PMAX} * TILE_P")
    b.const("K_LOAD", KLOAD, "keys per k^T DMA transpose (large transfers)", None, (),
            owned_only=True)
    nodes: list = []
    top: list = []      # kernel-level PSUM tiles (outside the batch loops)
    bvars = [fresh(x) for x in pat.batch]
    pre = tuple(P.Index(_S(v)) for v in bvars)

    def hbm(name: str, dims: tuple) -> P.Ref:
        """A view of a kernel tensor at the current batch indices."""
        return P.Ref(name, pre + dims)

    # k^T resident: [d tile partitions, d tile, N]
    ndt = fresh("ndt")
    nodes.append(P.Let(ndt, sympy.ceiling(D / PMAX)))
    kT = fresh("kT")
    # the classic dialect loads k^T in whole KLOAD chunks clipped with mask= (classic_mask):
    # the tile holds the last chunk whole (no more bytes at the largest N, a KLOAD multiple)
    nk = KLOAD * sympy.ceiling(N / KLOAD) if b.classic and not pat.k_dmajor else N
    nodes.append(P.Alloc(kT, (sympy.Integer(PMAX), _S(ndt), nk), dt, P.Mem.SBUF))
    # one score tile for the whole kernel (each block starts a new accumulation group) where
    # a per-block tile, double-buffered by the Python rebinding, would not fit the 8 PSUM
    # banks next to the transposes and p @ v; the classic dialect keeps one-bank blocks
    hoist = (flash or pe) and not b.classic
    tps = fresh("rows_t_psum")
    if pe:
        top.append(P.Alloc(tps, (sympy.Integer(PMAX), sympy.Integer(PMAX)),
                           pe_transpose_dtype(dt, b.target), P.Mem.PSUM))
    if pe and not pat.k_dmajor:
        nodes.append(_pe_load(b, kT, pat.k.tensor, ZERO, N, D, _S(ndt), dt, tps, pre))
    else:
        kd, d0, dsz = fresh("kd"), fresh("d0"), fresh("dsz")
        dlets = [P.Let(d0, _S(kd) * PMAX), P.Let(dsz, Min(PMAX, D - _S(d0)))]
        if pat.k_dmajor:
            load_k: list = [P.Dma(P.Ref(kT, (_sl(0, _S(dsz)), P.Index(_S(kd)), _sl(0, N))),
                                  hbm(pat.k.tensor, (_sl(_S(d0), _S(dsz)), _sl(0, N))))]
        else:
            kb_, n0_, nsz_ = fresh("kl"), fresh("kl0"), fresh("klsz")
            b.own("K_LOAD", kb_, n0_, nsz_, kT)
            load_k = [P.Loop(kb_, sympy.ceiling(N / KLOAD), P.LoopKind.PARALLEL, (
                P.Let(n0_, _S(kb_) * KLOAD), P.Let(nsz_, Min(KLOAD, N - _S(n0_))),
                P.DmaTranspose(P.Ref(kT, (_sl(0, _S(dsz)), P.Index(_S(kd)),
                                          _sl(_S(n0_), _S(nsz_)))),
                               hbm(pat.k.tensor, (_sl(_S(n0_), _S(nsz_)),
                                                    _sl(_S(d0), _S(dsz))))),
            ))]
        nodes.append(P.Loop(kd, _S(ndt), P.LoopKind.PARALLEL, tuple(dlets + load_k)))

    # v resident (full attention): [128 keys, key tile, J]
    if flash:
        assert pat.v is not None and pat.j is not None
        J = sympy.sympify(b.extents[pat.j])
        vd = spec.tensor(pat.v.tensor).dtype
        nvt, vsb, vt, vt0, vtsz = (fresh(x) for x in ("nvt", "v_sb", "vt", "vt0", "vtsz"))
        nodes.append(P.Let(nvt, sympy.ceiling(N / PMAX)))
        # classic: whole key blocks of tiles (p @ v runs over a block's full tile count,
        # the tiles past N skipped by a loop-index mask; no more bytes at the largest N)
        nvt_alloc = (W // PMAX) * sympy.ceiling(N / W) if b.classic else _S(nvt)
        nodes.append(P.Alloc(vsb, (sympy.Integer(PMAX), nvt_alloc, J), vd, P.Mem.SBUF))
        nodes.append(P.Loop(vt, _S(nvt), P.LoopKind.PARALLEL, (
            P.Let(vt0, _S(vt) * PMAX), P.Let(vtsz, Min(PMAX, N - _S(vt0))),
            P.Dma(P.Ref(vsb, (_sl(0, _S(vtsz)), P.Index(_S(vt)), _sl(0, J))),
                  hbm(pat.v.tensor, (_sl(_S(vt0), _S(vtsz)), _sl(0, J)))),
        )))

    nkb = fresh("nkb")
    nodes.append(P.Let(nkb, sympy.ceiling(N / W)))
    # the block's bank maxima [P, bank]. nki dialect, c = 1: the exp bias is the running -max
    # itself; one tile for the kernel whose column 0 holds -BIAS_CEIL (filled once, on GpSimd,
    # S25 general/nki/api/nki/isa/__init__.py memset: Vector or GpSimd engine) and the banks
    # after it, so the block's -max is at most BIAS_CEIL and a block of all -inf scores gives
    # no NaN (see the running max below); a fill per block would wait on VectorE's chain
    bmax = fresh("bank_max")
    floor = not b.classic and pat.scale == 1.0
    fl = 1 if floor else 0
    if floor:
        nodes += [P.Alloc(bmax, (sympy.Integer(PMAX), sympy.Integer(nbank + 1)), F32,
                          P.Mem.SBUF),
                  P.Memset(P.Ref(bmax, (_sl(0, PMAX), _sl(0, ONE))), sympy.Float(-BIAS_CEIL),
                           P.Eng.GPSIMD)]

    # query blocks: q^T [d tile partitions, d tile, QBLOCK]
    rb, r0, rsz, qT = fresh("rb"), fresh("r0"), fresh("rsz"), fresh("qT")
    b.own("Q_BLOCK", rb, r0, rsz, qT)
    rbody: list = [P.Let(r0, _S(rb) * QBLOCK), P.Let(rsz, Min(QBLOCK, M - _S(r0))),
                   P.Alloc(qT, (sympy.Integer(PMAX), _S(ndt), sympy.Integer(QBLOCK)), dt,
                           P.Mem.SBUF)]
    if pe and not pat.q_dmajor:
        rbody.append(_pe_load(b, qT, pat.q.tensor, _S(r0), _S(rsz), D, _S(ndt), dt, tps, pre))
    else:
        qd, qd0, qdsz = fresh("qd"), fresh("qd0"), fresh("qdsz")
        qdst = P.Ref(qT, (_sl(0, _S(qdsz)), P.Index(_S(qd)), _sl(0, _S(rsz))))
        if pat.q_dmajor:
            qload: P.Node = P.Dma(qdst, hbm(pat.q.tensor, (_sl(_S(qd0), _S(qdsz)),
                                                             _sl(_S(r0), _S(rsz)))))
        else:
            qload = P.DmaTranspose(qdst, hbm(pat.q.tensor, (_sl(_S(r0), _S(rsz)),
                                                             _sl(_S(qd0), _S(qdsz)))))
        rbody.append(P.Loop(qd, _S(ndt), P.LoopKind.PARALLEL, (
            P.Let(qd0, _S(qd) * PMAX), P.Let(qdsz, Min(PMAX, D - _S(qd0))), qload)))

    # one 128-query tile
    rt, q0, qsz = fresh("rt"), fresh("q0"), fresh("qsz")
    b.own("Q_BLOCK", rt)
    Q = _S(qsz)
    tbody: list = [P.Let(q0, _S(r0) + _S(rt) * PMAX),
                   P.Let(qsz, Min(PMAX, _S(rsz) - _S(rt) * PMAX))]
    negmax = fresh("neg_max")          # running -max after each key block: [P, nkb]
    # the classic dialect keeps column 0 unused and block kb's column at kb + 1: the first /
    # later block branches become loop-index masks there (classic_mask), and the later
    # blocks' read of the previous column must stay an in-bounds slice at kb = 0 too
    sh = 1 if b.classic else 0
    rsum = fresh("row_sum")
    tbody += [P.Alloc(negmax, (sympy.Integer(PMAX), _S(nkb) + sh), F32, P.Mem.SBUF),
              P.Alloc(rsum, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF)]
    ex = fresh("exp_s")
    if not flash:
        # classic: whole key blocks (their columns past N masked off when written)
        nex = W * sympy.ceiling(N / W) if b.classic else N
        tbody.append(P.Alloc(ex, (sympy.Integer(PMAX), nex), F32, P.Mem.SBUF))
    else:
        acc = fresh("o_acc")
        tbody.append(P.Alloc(acc, (sympy.Integer(PMAX), J), F32, P.Mem.SBUF))

    kb, n0, nsz, ncb = fresh("kb"), fresh("n0"), fresh("nsz"), fresh("ncb")
    b.own("KEY_BLOCK", kb, n0, nsz, nkb)
    bbody: list = [P.Let(n0, _S(kb) * W), P.Let(nsz, Min(W, N - _S(n0))),
                   P.Let(ncb, sympy.ceiling(_S(nsz) / BANK))]
    ps = fresh("scores")
    cb, c0, csz = fresh("cb"), fresh("c0"), fresh("csz")
    b.own("BANK", cb, c0, csz, ncb)
    md, mdsz = fresh("md"), fresh("mdsz")
    if b.classic:
        # one [128, 512] PSUM tile per bank (a classic PSUM tile's free size is at most
        # psum_fmax), the bank loop unrolled over them
        banks = [fresh(f"{ps}_{i}") for i in range(nbank)]
        bbody += [P.Alloc(x, (sympy.Integer(PMAX), sympy.Integer(BANK)), F32, P.Mem.PSUM)
                  for x in banks]
    elif not ev:
        ps_alloc = P.Alloc(ps, (sympy.Integer(PMAX), sympy.Integer(nbank),
                                sympy.Integer(BANK)), F32, P.Mem.PSUM)
        (top if hoist else bbody).append(ps_alloc)
    ssb = fresh("scores_sb")

    def bank_loop(make, pre_body: tuple = ()) -> list:
        """``make(bank index, view of the bank)`` for every bank of the block: its scores in
        PSUM, or (evicting) in SBUF; ``pre_body`` starts each bank's body."""
        if not b.classic:
            view = (P.Ref(ssb, (_sl(0, Q), _sl(_S(c0), _S(csz)))) if ev
                    else P.Ref(ps, (_sl(0, Q), P.Index(_S(cb)), _sl(0, _S(csz)))))
            return [P.Loop(cb, _S(ncb), P.LoopKind.PARALLEL, (
                P.Let(c0, _S(cb) * BANK), P.Let(csz, Min(BANK, _S(nsz) - _S(c0))),
                *pre_body, *make(_S(cb), view)))]
        out: list = []
        for i, x in enumerate(banks):
            body = [P.Let(c0, sympy.Integer(i * BANK)),
                    P.Let(csz, Min(BANK, _S(nsz) - _S(c0))),
                    *make(sympy.Integer(i), P.Ref(x, (_sl(0, Q), _sl(0, _S(csz)))))]
            out += body if i == 0 else [P.If(sympy.Integer(i), _S(ncb), tuple(body), (),
                                             P.Cmp.LT)]
        return out

    def qk(view, acc_flag):
        return P.Matmul(view,
                        P.Ref(qT, (_sl(0, _S(mdsz)), P.Index(_S(md)), _sl(_S(rt) * PMAX, Q))),
                        P.Ref(kT, (_sl(0, _S(mdsz)), P.Index(_S(md)),
                                   _sl(_S(n0) + _S(c0), _S(csz)))), accumulate=acc_flag)

    # a reused score tile: the first d tile starts a new accumulation group
    def mm(i, view):
        return [P.Loop(md, _S(ndt), P.LoopKind.PARALLEL, (
            P.Let(mdsz, Min(PMAX, D - _S(md) * PMAX)),
            P.If(_S(md), ZERO, (qk(view, False),), (qk(view, True),)) if hoist
            else qk(view, None),
        ))]

    bmax_alloc = [] if floor else [P.Alloc(bmax, (sympy.Integer(PMAX), sympy.Integer(nbank)),
                                           F32, P.Mem.SBUF)]
    if ev:
        # a PSUM tile per bank (the next bank's matmuls need not wait for this bank's
        # readers), evicted at once into the block's SBUF scores with its row max
        bank_ps = P.Ref(ps, (_sl(0, Q), _sl(0, _S(csz))))
        bbody += bmax_alloc
        bbody.append(P.Alloc(ssb, (sympy.Integer(PMAX), sympy.Integer(W)), F32, P.Mem.SBUF))
        bbody += bank_loop(lambda i, view: [
            *mm(i, bank_ps),
            TensorScalarReduce(view, bank_ps, P.AluOp.MULTIPLY, P.Scalar(sympy.Float(1.0)),
                               P.AluOp.MAXIMUM, P.Ref(bmax, (_sl(0, Q), _at(i + fl))))],
            (P.Alloc(ps, (sympy.Integer(PMAX), sympy.Integer(BANK)), F32, P.Mem.PSUM),))
    else:
        bbody += bank_loop(mm)
        bbody += bmax_alloc
    if b.classic:
        # classic: every bank's instructions are issued, a bank wholly past N skipped by its
        # mask; its column holds the reductions' neutral values (the fp32 lowest for the max,
        # 0 for the sum below) so the block reductions over all banks read defined values
        bbody.append(P.Memset(P.Ref(bmax, (_sl(0, Q), _sl(0, nbank))), sympy.Float(-3.0e38)))
    if not ev:
        bbody += bank_loop(lambda i, view: [
            P.TensorReduce(P.Ref(bmax, (_sl(0, Q), _at(i + fl))), P.AluOp.MAXIMUM, view)])
    col = _S(kb) + sh
    prev = col - 1

    def nm(at):
        return P.Ref(negmax, (_sl(0, Q), _at(at)))

    bnm = fresh("block_neg_max")
    first: list[P.Node] = [P.TensorReduce(nm(col), P.AluOp.MAXIMUM,
                                          P.Ref(bmax, (_sl(0, Q), _sl(0, _S(ncb) + fl))),
                                          negate=True)]
    later: list[P.Node] = [P.Alloc(bnm, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF),
             P.TensorReduce(P.Ref(bnm, (_sl(0, Q), _sl(0, ONE))), P.AluOp.MAXIMUM,
                            P.Ref(bmax, (_sl(0, Q), _sl(0, _S(ncb) + fl))), negate=True),
             P.TensorTensor(nm(col), nm(prev), P.Ref(bnm, (_sl(0, Q), _sl(0, ONE))),
                            P.AluOp.MINIMUM)]
    # classic: the running statistics start before the loop (-max at +3e38, the sum and the
    # output at 0) and every block takes the later-block path, so no instruction depends on
    # the sequential block index (a mask= may not name an nl.sequential_range index, S25
    # general/nki/api/nki.api.shared.rst "NKI API Masking"); the first block's correction
    # factor exp(c * (-3e38 - m)) is 0 (c > 0, the scores' softmax scale); the fills run on
    # GpSimd (S25 general/nki/api/nki/isa/__init__.py memset: Vector or GpSimd engine), off
    # VectorE, which carries the block statistics
    inits: list = []
    # Masked keys (-inf scores): a row whose blocks so far are all -inf has -max = +inf, and
    # the exponent c * s + c * (-max) would be -inf + inf = NaN (SH nki/api/nki/isa/__init__.py
    # activation, nki 0.3: ``op(data * scale + bias)``, IEEE float32). The exp bias is kept
    # at most BIAS_CEIL, so those blocks give exp(-inf) = 0, and the next finite block's
    # alpha = exp(-c * (+inf) + bias) = 0 drops them; a row of all -inf ends with a zero sum
    # and NaN probabilities, as the reference's exp(-inf - (-inf)). c != 1: the clamp is the
    # bias instruction's second operator, ``(-max * c) min BIAS_CEIL`` (SH tensor_scalar:
    # ``(data <op0> operand0) <op1> operand1``, one operator costs the same as two; S25
    # general/nki/api/nki/isa/__init__.py tensor_scalar, the same); -max itself may stay
    # +inf (min(+inf, x) = x in the later blocks' running minimum). c = 1: the bias is -max
    # itself, kept at most BIAS_CEIL by the -BIAS_CEIL column of the bank maxima (nki) or the
    # running -max starting at 3e38 (classic).
    if b.classic:
        inits.append(P.Memset(nm(ZERO), sympy.Float(3.0e38), P.Eng.GPSIMD))
        bbody += later
    else:
        bbody.append(P.If(_S(kb), ZERO, tuple(first), tuple(later)))
    # exp bias = min(c * (-max), BIAS_CEIL)
    if pat.scale == 1.0:
        bias = nm(col)
    else:
        bname = fresh("exp_bias")
        bbody += [P.Alloc(bname, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF),
                  P.TensorScalar(P.Ref(bname, (_sl(0, Q), _sl(0, ONE))), nm(col),
                                 P.AluOp.MULTIPLY, P.Scalar(c), op1=P.AluOp.MINIMUM,
                                 operand1=P.Scalar(sympy.Float(BIAS_CEIL)))]
        bias = P.Ref(bname, (_sl(0, Q), _sl(0, ONE)))
    bsum = fresh("bank_sum")
    bbody.append(P.Alloc(bsum, (sympy.Integer(PMAX), sympy.Integer(nbank)), F32, P.Mem.SBUF))
    if b.classic:
        bbody.append(P.Memset(P.Ref(bsum, (_sl(0, Q), _sl(0, nbank))), sympy.Float(0.0)))
    if flash:
        pd = spec.tensor(pat.p).dtype
        # the probabilities are transposed on TensorE: float32 on NeuronCore-v2
        # (matmul.pe_transpose_dtype); p^T, the matmul operand, stays pd
        ptd = pe_transpose_dtype(pd, b.target) if pd is not F32 else pd
        pblk = fresh("probs")
        bbody.append(P.Alloc(pblk, (sympy.Integer(PMAX), sympy.Integer(W)), ptd, P.Mem.SBUF))

        def exdst():
            return P.Ref(pblk, (_sl(0, Q), _sl(_S(c0), _S(csz))))
    else:
        def exdst():
            return P.Ref(ex, (_sl(0, Q), _sl(_S(n0) + _S(c0), _S(csz))))
    bbody += bank_loop(lambda i, view: [
        P.Activation(exdst(), P.ActFunc.EXP, view, P.Scalar(c), bias,
                     P.Ref(bsum, (_sl(0, Q), _at(i))))])
    bsums = P.Ref(bsum, (_sl(0, Q), _sl(0, _S(ncb))))
    rs = P.Ref(rsum, (_sl(0, Q), _sl(0, ONE)))
    alpha, bs1 = fresh("alpha"), fresh("block_sum")
    a_ref = P.Ref(alpha, (_sl(0, Q), _sl(0, ONE)))
    later = [P.Alloc(bs1, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF),
             P.TensorReduce(P.Ref(bs1, (_sl(0, Q), _sl(0, ONE))), P.AluOp.ADD, bsums),
             P.Alloc(alpha, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF),
             # alpha = exp(c * (m_old - m_new)) = exp(-c * (-m_old) + c * (-m_new))
             P.Activation(a_ref, P.ActFunc.EXP, nm(prev), P.Scalar(-c), bias),
             P.ScalarTensorTensor(rs, rs, P.AluOp.MULTIPLY, a_ref, P.AluOp.ADD,
                                  P.Ref(bs1, (_sl(0, Q), _sl(0, ONE))))]
    if b.classic:
        inits.append(P.Memset(rs, sympy.Float(0.0), P.Eng.GPSIMD))
        bbody += later
    else:
        bbody.append(P.If(_S(kb), ZERO, (P.TensorReduce(rs, P.AluOp.ADD, bsums),),
                          tuple(later)))

    if flash:
        assert pat.o is not None
        nkt, t, tsz = fresh("nkt"), fresh("t"), fresh("tsz")
        tp, pT, pv = fresh("probs_t_psum"), fresh("probs_t"), fresh("pv")
        ntile = W // PMAX
        bbody += [P.Let(nkt, sympy.ceiling(_S(nsz) / PMAX)),
                  P.Alloc(pT, (sympy.Integer(PMAX), sympy.Integer(ntile), sympy.Integer(PMAX)),
                          pd, P.Mem.SBUF)]
        tlet = P.Let(tsz, Min(PMAX, _S(nsz) - _S(t) * PMAX))
        # transposes in groups of TGROUP tiles sharing one PSUM tile and one eviction copy
        # (fewer fixed instruction costs); a ragged last tile is copied on its own, so only
        # written PSUM partitions are read
        g, gn, gi, gf = fresh("tg"), fresh("tgn"), fresh("ti"), fresh("tgfull")
        tin = _S(g) * TGROUP + _S(gi)
        g0 = _S(g) * TGROUP
        rest = _S(nsz) - (g0 + _S(gf)) * PMAX          # keys of the ragged tile, if any
        if b.classic:
            # one PSUM tile and one eviction per key tile: its ragged rows are clipped with
            # mask= and zero-filled (classic_mask), where a group's whole/ragged split would
            # need min() of the loop indices
            ct, ctp = fresh("ct"), fresh("probs_t_psum")
            ctsz = fresh("ctsz")
            bbody.append(P.Loop(ct, _S(nkt), P.LoopKind.PARALLEL, (
                P.Let(ctsz, Min(PMAX, _S(nsz) - _S(ct) * PMAX)),
                P.Alloc(ctp, (sympy.Integer(PMAX), sympy.Integer(PMAX)), ptd, P.Mem.PSUM),
                P.PeTranspose(P.Ref(ctp, (_sl(0, _S(ctsz)), _sl(0, Q))),
                              P.Ref(pblk, (_sl(0, Q), _sl(_S(ct) * PMAX, _S(ctsz))))),
                P.TensorCopy(P.Ref(pT, (_sl(0, _S(ctsz)), P.Index(_S(ct)), _sl(0, Q))),
                             P.Ref(ctp, (_sl(0, _S(ctsz)), _sl(0, Q)))),
            )))
        else:
            bbody.append(P.Loop(g, sympy.ceiling(_S(nkt) / TGROUP), P.LoopKind.PARALLEL, (
                P.Let(gn, Min(TGROUP, _S(nkt) - g0)),
                P.Let(gf, Min(_S(gn), sympy.floor((_S(nsz) - g0 * PMAX) / PMAX))),
                P.Alloc(tp, (sympy.Integer(PMAX), sympy.Integer(TGROUP), sympy.Integer(PMAX)), ptd,
                        P.Mem.PSUM),
                P.Loop(gi, _S(gn), P.LoopKind.PARALLEL, (
                    P.Let(tsz, Min(PMAX, _S(nsz) - tin * PMAX)),
                    P.PeTranspose(P.Ref(tp, (_sl(0, _S(tsz)), P.Index(_S(gi)), _sl(0, Q))),
                                  P.Ref(pblk, (_sl(0, Q), _sl(tin * PMAX, _S(tsz))))),
                )),
                P.If(ZERO, _S(gf), (
                    P.TensorCopy(P.Ref(pT, (_sl(0, PMAX), _sl(g0, _S(gf)), _sl(0, Q))),
                                 P.Ref(tp, (_sl(0, PMAX), _sl(0, _S(gf)), _sl(0, Q)))),), (),
                     P.Cmp.LT),
                P.If(_S(gf), _S(gn), (
                    P.TensorCopy(P.Ref(pT, (_sl(0, rest), P.Index(g0 + _S(gf)), _sl(0, Q))),
                                 P.Ref(tp, (_sl(0, rest), P.Index(_S(gf)), _sl(0, Q)))),), (),
                     P.Cmp.LT),
            )))
        pv_ref = P.Ref(pv, (_sl(0, Q), _sl(0, J)))

        def pvmm(acc_flag):
            return P.Matmul(pv_ref, P.Ref(pT, (_sl(0, _S(tsz)), P.Index(_S(t)), _sl(0, Q))),
                            P.Ref(vsb, (_sl(0, _S(tsz)), P.Index(_S(kb) * (W // PMAX) + _S(t)),
                                        _sl(0, J))), accumulate=acc_flag)

        pv_alloc = P.Alloc(pv, (sympy.Integer(PMAX), J), F32, P.Mem.PSUM)
        if hoist:
            # one p @ v tile for the kernel too; its first key tile starts the group
            top.append(pv_alloc)
        else:
            bbody.append(pv_alloc)
        bbody.append(P.Loop(t, _S(nkt), P.LoopKind.PARALLEL, (
            tlet,
            P.If(_S(t), ZERO, (pvmm(False),), (pvmm(True),)) if hoist else pvmm(None),
        )))
        acc_ref = P.Ref(acc, (_sl(0, Q), _sl(0, J)))
        update = P.ScalarTensorTensor(acc_ref, acc_ref, P.AluOp.MULTIPLY, a_ref, P.AluOp.ADD,
                                      pv_ref)
        if b.classic:
            inits.append(P.Memset(acc_ref, sympy.Float(0.0), P.Eng.GPSIMD))
            bbody.append(update)
        else:
            bbody.append(P.If(_S(kb), ZERO, (P.TensorCopy(acc_ref, pv_ref),), (update,)))
    tbody += inits
    tbody.append(P.Loop(kb, _S(nkb), P.LoopKind.SEQUENTIAL, tuple(bbody)))

    inv = fresh("inv_row_sum")
    iref = P.Ref(inv, (_sl(0, Q), _sl(0, ONE)))
    tbody += [P.Alloc(inv, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF),
              P.Reciprocal(iref, rs)]
    if pat.o is not None:
        od = spec.tensor(pat.o).dtype
        ot = fresh("o_t")
        tbody += [P.Alloc(ot, (sympy.Integer(PMAX), J), od, P.Mem.SBUF),
                  P.TensorScalar(P.Ref(ot, (_sl(0, Q), _sl(0, J))), acc_ref, P.AluOp.MULTIPLY,
                                 iref),
                  P.Dma(hbm(pat.o, (_sl(_S(q0), Q), _sl(0, J))),
                        P.Ref(ot, (_sl(0, Q), _sl(0, J))))]
    else:
        pdt = spec.tensor(pat.p).dtype
        if pdt is F32:
            pt = ex
        else:
            pt = fresh("p_t")
            # classic: whole key blocks like exp_s (the per-block scaling below writes whole
            # blocks, the columns past N masked off)
            tbody.append(P.Alloc(pt, (sympy.Integer(PMAX), nex), pdt, P.Mem.SBUF))
        # one key block: p = e * (1 / l), the expert's reciprocal + one tensor_scalar
        single = [P.TensorScalar(P.Ref(pt, (_sl(0, Q), _sl(0, N))),
                                 P.Ref(ex, (_sl(0, Q), _sl(0, N))), P.AluOp.MULTIPLY, iref)]
        # several: the factor of block kb is exp(c * (m_kb - m_final)) / l
        #   = exp(-c * neg_max_kb + c * neg_max_last) / l
        fb, fk = fresh("final_bias"), fresh("block_factor")
        last = _S(nkb) - 1
        fb_ref = P.Ref(fb, (_sl(0, Q), _sl(0, ONE)))
        fk_all = P.Ref(fk, (_sl(0, Q), _sl(0, _S(nkb))))
        kb2, m0, msz = fresh("kb"), fresh("n0"), fresh("nsz")
        several: list[P.Node] = [
            P.Alloc(fb, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF),
            # the last block's exp bias again (min(c * (-max), BIAS_CEIL)): the same
            # instruction, which a compiler's CSE drops
            P.TensorScalar(fb_ref, nm(last + sh), P.AluOp.MULTIPLY, P.Scalar(c),
                           op1=P.AluOp.MINIMUM, operand1=P.Scalar(sympy.Float(BIAS_CEIL))),
            P.Alloc(fk, (sympy.Integer(PMAX), _S(nkb)), F32, P.Mem.SBUF),
            P.Activation(fk_all, P.ActFunc.EXP, P.Ref(negmax, (_sl(0, Q), _sl(sh, _S(nkb)))),
                         P.Scalar(-c), fb_ref),
            P.TensorScalar(fk_all, fk_all, P.AluOp.MULTIPLY, iref),
            P.Loop(kb2, _S(nkb), P.LoopKind.PARALLEL, (
                P.Let(m0, _S(kb2) * W), P.Let(msz, Min(W, N - _S(m0))),
                P.TensorScalar(P.Ref(pt, (_sl(0, Q), _sl(_S(m0), _S(msz)))),
                               P.Ref(ex, (_sl(0, Q), _sl(_S(m0), _S(msz)))), P.AluOp.MULTIPLY,
                               P.Ref(fk, (_sl(0, Q), _at(_S(kb2))))),
            ))]
        tbody.append(P.If(_S(nkb), ONE, tuple(single), tuple(several)))
        tbody.append(P.Dma(hbm(pat.p, (_sl(_S(q0), Q), _sl(0, N))),
                           P.Ref(pt, (_sl(0, Q), _sl(0, N)))))
    nrt = sympy.ceiling(_S(rsz) / PMAX)
    rbody.append(P.Loop(rt, nrt, P.LoopKind.PARALLEL, tuple(tbody)))
    # classic: each query block's q^T load rewrites the shared transpose PSUM tile (pe)
    rkind = P.LoopKind.SEQUENTIAL if b.classic and pe else P.LoopKind.PARALLEL
    nodes.append(P.Loop(rb, sympy.ceiling(M / QBLOCK), rkind, tuple(rbody)))
    # the kernel-level PSUM tiles are rewritten by every head: then the batch loops carry a
    # write-after-read dependency (sequential)
    kind = P.LoopKind.SEQUENTIAL if top else P.LoopKind.PARALLEL
    for bv, bi in reversed(list(zip(bvars, pat.batch))):
        nodes = [P.Loop(bv, sympy.sympify(b.extents[bi]), kind, tuple(nodes))]
    return top + _allocs_before_ifs(nodes)


def _allocs_before_ifs(nodes: list) -> list:
    """Move the tiles an ``if``/``else`` branch allocates to just before the ``if``: a tensor
    created inside an ``if`` block is out of scope after it in the classic dialect (S25
    general/nki/api/nki.errors.rst err_local_variable_used_out_of_scope), and ``alpha`` is
    used by a later block."""
    out: list = []
    for n in nodes:
        if isinstance(n, P.Loop):
            n = P.Loop(n.var, n.count, n.kind, tuple(_allocs_before_ifs(list(n.body))))
        elif isinstance(n, P.If):
            then = _allocs_before_ifs(list(n.then))
            orelse = _allocs_before_ifs(list(n.orelse))
            out += [a for a in then + orelse if isinstance(a, P.Alloc)]
            n = P.If(n.lhs, n.rhs, tuple(a for a in then if not isinstance(a, P.Alloc)),
                     tuple(a for a in orelse if not isinstance(a, P.Alloc)), n.cmp)
        out.append(n)
    return out


def _stage(b: Build, pat: Pattern) -> P.StagePlan:
    flash = pat.o is not None
    pe = _pe_transposes(b, pat)
    ev = evicts(b, pat)
    W = block_width(b, flash, pe, ev)
    scores = ("scores evicted bank by bank to SBUF with their row max (tensor_scalar_reduce), "
              "exp + row sum read SBUF" if ev else
              "scores stay in PSUM: row max and exp + row sum read PSUM directly")
    notes: tuple[str, ...] = (scores,
             f"online softmax over key blocks of {W} (running max and sum rescaled per block)",
             "k^T" + (" and v" if flash else "") + " loaded once and kept on chip")
    if flash:
        notes += ("probabilities turned on TensorE, p @ v accumulated in PSUM per key block",)
    if pat.q_dmajor and pat.k_dmajor:
        notes += ("q/k stored d-major: plain loads, no transposes",)
    else:
        notes += ("row-major q/k turned on TensorE (cheaper than the DMA transpose here)" if pe
                  else "row-major q/k loaded with DMA transposes",)
    return P.StagePlan(
        statements=tuple(st.position for st in pat.sts),
        strategy="attention-flash" if flash else "attention-softmax",
        partition=pat.m,
        free=(pat.n,) + ((pat.j,) if pat.j else ()),
        loops=pat.batch,
        tiles=((pat.m, PMAX), (pat.n, W)),
        blocks=((pat.m, QBLOCK),),
        engines=("tensor", "vector", "scalar", "dma"),
        notes=notes,
    )

