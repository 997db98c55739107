"""Partition-axis reductions on TensorE: ``T[.., n] = sum(body(j, n), j)`` as ones^T @ body.

Stage: plan (Statement -> plan nodes). Input: a statement whose right-hand side is a sum (or
mean) over one index ``j`` of an element-wise body that reads its tensors with ``j`` in an outer
dimension and the target's last index ``n`` in an inner one (a column sum of a row-major
matrix). Reducing along the free axis would need transposing loads (element-sized DMA
descriptors); instead the body is evaluated in ``[j tile (partitions), n chunk]`` tiles with
plain row loads, and a ``[j, 1]`` ones column as the stationary matmul operand contracts the
partitions: PSUM ``[1, n chunk]`` accumulates over the j tiles. Other target indices are scalar
loops, except that a short ``j`` (at most :data:`GROUP_J_MAX`) beside one looped index shares
the partitions with it (:func:`_grouped`: ``128 // J`` values per tile, a 0/1 block selector as
the stationary operand). Anything else returns None (the row lowering handles it).
"""

from __future__ import annotations

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.context import Build
from nkigen.codegen.names import checked
from nkigen.codegen.pipeline import prefetch
from nkigen.codegen.plan_ext import AffineSelect
from nkigen.codegen.rows import at_sizes, effective_rhs
from nkigen.codegen.symcache import Min
from nkigen.codegen.tilexpr import F32, ONE, ZERO, Compiler, Kind, TileCtx, Unsupported, strides
from nkigen.dtypes import DType
from nkigen.hw import GEMM_MOVING_FMAX, PMAX
from nkigen.ir import (
    Access,
    BinOp,
    BinOpKind,
    Reduce,
    ReduceKind,
    Role,
    Statement,
    accesses,
    index_symbol,
    walk,
)

# columns per pass: one PSUM tile of at most nl.tile_size.psum_fmax = 512 fp32 per partition
# (S25 general/nki/programming_model.rst "Tile size considerations", TC#2; SDK 2.25), which is
# also TensorE's moving free size
CHUNK = GEMM_MOVING_FMAX


def _suitable(b: Build, st: Statement):
    rhs = effective_rhs(b, st)
    if not isinstance(rhs, Reduce) or rhs.op not in (ReduceKind.SUM, ReduceKind.MEAN) \
            or len(rhs.indices) != 1:
        return None
    j, n = rhs.indices[0], st.lhs[-1]
    if j in st.lhs or any(isinstance(x, Reduce) for x in walk(rhs.body)):
        return None
    js, ns = index_symbol(j), index_symbol(n)
    accs = accesses(rhs.body)
    if not accs or any(a.tensor == st.target for a in accs):
        return None
    column_layout = False
    for a in accs:
        dj = [d for d, e in enumerate(a.indices) if js in sympy.sympify(e).free_symbols]
        dn = [d for d, e in enumerate(a.indices) if ns in sympy.sympify(e).free_symbols]
        if len(dj) > 1 or len(dn) > 1:
            return None
        if dj and dn:
            if dj[0] > dn[0]:
                return None            # row-major reduction: the row lowering is better
            column_layout = True
    return rhs if column_layout else None


def try_lower(b: Build, st: Statement) -> list | None:
    rhs = _suitable(b, st)
    if rhs is None:
        return None
    grouped = _grouped(b, st, rhs)
    if grouped is not None:
        return grouped
    j, n = rhs.indices[0], st.lhs[-1]
    n_ = b.namer
    S = b.sym
    J, N = b.extents[j], b.extents[n]
    tdecl = b.spec.tensor(st.target)
    env: dict[str, sympy.Expr] = {}
    outer: list[tuple[str, str]] = []
    for x in st.lhs[:-1]:
        v = n_.fresh(f"i_{x}")
        outer.append((x, v))
        env[x] = S(v)
    fc, f0, fsz = n_.fresh("fc"), n_.fresh("f0"), n_.fresh("fsz")
    jt, j0, jsz = n_.fresh("jt"), n_.fresh("j0"), n_.fresh("jsz")
    ps = n_.fresh("ps")
    b.const("TILE_P", PMAX, "rows reduced per matmul: one per partition", "pmax")
    b.const("COLS", CHUNK, "columns per pass: one PSUM bank of fp32 (the moving operand's "
            "free size)", "gemm_moving_fmax" if CHUNK == GEMM_MOVING_FMAX else None)
    pre: list = []
    jbody: list = [P.Let(j0, S(jt) * PMAX), P.Let(jsz, Min(sympy.Integer(PMAX), J - S(j0)))]
    # fvar: the column chunk's loop index (f0 = CHUNK * fc), by which the classic divided and
    # periodic reads of n place their periods (tilexpr._classic_periods; fuzz13: without it a
    # column sum of x[m, n] * p[n % 3] was refused in the neuronxcc dialect)
    ctx = TileCtx(j, S(j0), S(jsz), n, S(f0), S(fsz), sympy.Integer(CHUNK), env=env,
                  out=jbody, hoist=None, hoist_ok=False, fvar=S(fc))
    comp = Compiler(b.spec, n_, b.extents, st, b.target, classic=b.classic)
    try:
        val = comp.compile(ctx, rhs.body)
    except Unsupported:
        return None
    if val.kind is not Kind.ROW or val.buf is None:
        return None
    if val.dtype.is_integer:
        # TensorE takes float operands only (S25 general/nki/api/nki/isa/__init__.py nc_matmul
        # and SH nki/api/nki/isa nc_matmul: fp8/bf16/fp16/tf32/fp32, no integer dtype): an
        # integer row is copied into its matmul dtype first (int8/uint8 -> bfloat16, exact;
        # int32 -> float32, exact up to 2**24 as docs/spec-language.md §10 says of a matmul)
        val = comp.materialize(ctx, val, Kind.ROW, val.dtype.matmul_dtype)
    assert val.buf is not None
    ones_dt: DType = val.dtype     # TensorE pairs fp32 with fp32, 16/8-bit with 16/8-bit
    # the ones column is flagged is_stationary_onezero (S25 general/nki/api/nki/isa/__init__.py
    # nc_matmul, SDK 2.25; S29 nki/api/nki/isa/__init__.py nc_matmul, nki 0.3): "could lead to
    # 2x better performance if stationary is in float32", no impact otherwise
    ones = n_.fresh("ones")
    pre += [P.Alloc(ones, (sympy.Integer(PMAX), ONE), ones_dt, P.Mem.SBUF),
            P.Memset(P.Ref(ones, (P.Slice(ZERO, sympy.Integer(PMAX)), P.Slice(ZERO, ONE))),
                     sympy.Float(1.0))]
    q, q0, qsz = n_.fresh("q"), n_.fresh("q0"), n_.fresh("qsz")
    jbody.append(P.Loop(q, sympy.ceiling(S(fsz) / GEMM_MOVING_FMAX), P.LoopKind.PARALLEL, (
        P.Let(q0, S(q) * GEMM_MOVING_FMAX),
        P.Let(qsz, Min(sympy.Integer(GEMM_MOVING_FMAX), S(fsz) - S(q0))),
        P.Matmul(P.Ref(ps, (P.Slice(ZERO, ONE), P.Slice(S(q0), S(qsz)))),
                 P.Ref(ones, (P.Slice(ZERO, S(jsz)), P.Slice(ZERO, ONE))),
                 P.Ref(val.buf, (P.Slice(ZERO, S(jsz)), P.Slice(val.off + S(q0), S(qsz)))),
                 stationary_onezero=True),
    )))
    jloop = P.Loop(jt, sympy.ceiling(J / PMAX), P.LoopKind.PARALLEL, tuple(jbody))
    res = n_.fresh("res")
    scale = P.Scalar(1 / J if rhs.op is ReduceKind.MEAN else sympy.Float(1.0))
    # store the [1, fsz] row into the target: flat offset and step of dimension n
    t_str = strides(tuple(sympy.sympify(s) for s in tdecl.shape))
    subs = {index_symbol(k): val for k, val in env.items()}
    offset = sympy.expand(sum((index_symbol(x).subs(subs) * t_str[d]
                               for d, x in enumerate(st.lhs[:-1])), ZERO) + S(f0) * t_str[-1])
    dst = P.ApRef(checked(st.target, "tensor"), offset, ((ZERO, ONE), (t_str[-1], S(fsz))))
    body: list = [
        P.Let(f0, S(fc) * CHUNK), P.Let(fsz, Min(sympy.Integer(CHUNK), N - S(f0))),
        P.Alloc(ps, (ONE, sympy.Integer(CHUNK)), F32, P.Mem.PSUM),
        *(prefetch(jloop, n_, {t.name for t in b.spec.tensors}, skew=False)
          if b.buffers() >= 2 else [jloop]),
        P.Alloc(res, (ONE, sympy.Integer(CHUNK)), tdecl.dtype, P.Mem.SBUF),
        P.Activation(P.Ref(res, (P.Slice(ZERO, ONE), P.Slice(ZERO, S(fsz)))), P.ActFunc.COPY,
                     P.Ref(ps, (P.Slice(ZERO, ONE), P.Slice(ZERO, S(fsz)))), scale),
        P.Dma(dst, P.Ref(res, (P.Slice(ZERO, ONE), P.Slice(ZERO, S(fsz))))),
    ]
    nodes: list = [*pre, P.Loop(fc, sympy.ceiling(N / CHUNK), P.LoopKind.PARALLEL, tuple(body))]
    for x, var in reversed(outer):
        nodes = [P.Loop(var, b.extents[x], P.LoopKind.PARALLEL, tuple(nodes))]
    return nodes


def stage(b: Build, st: Statement) -> P.StagePlan:
    rhs = effective_rhs(b, st)
    assert isinstance(rhs, Reduce)
    j, n = rhs.indices[0], st.lhs[-1]
    if _groupable(b, st, rhs) is not None:
        c = st.lhs[0]
        return P.StagePlan(
            statements=(st.position,), strategy="partition-reduce-grouped", partition=j,
            free=(n,), loops=(c,), tiles=((j, PMAX), (n, CHUNK)), blocks=(),
            engines=("dma", "vector", "tensor", "scalar", "gpsimd"),
            notes=(f"128 // {j} values of {c} share the partitions with {j}; each group's "
                   f"{j} rows summed on TensorE by a 0/1 block selector (affine_select)",))
    return P.StagePlan(
        statements=(st.position,), strategy="partition-reduce", partition=j, free=(n,),
        loops=tuple(st.lhs[:-1]), tiles=((j, PMAX), (n, CHUNK)), blocks=(),
        engines=("dma", "tensor", "scalar"),
        notes=(f"sum over {j} on TensorE: ones[{j}]^T @ rows, PSUM accumulation",))



# A reduced index this short (at the largest sizes) leaves most partitions idle when the other
# target index is a scalar loop: the grouped form puts G = 128 // J of its values on the
# partitions beside it instead
GROUP_J_MAX = PMAX // 4


def _grouped_reads(b: Build, st: Statement, rhs: Reduce) -> list[Access] | None:
    """The reads of ``T[c, n] = sum(X[c, j, n] * Y[j, n] * .., j)`` (a product of reads, each
    ``X[c, j, n]`` with ``j`` spanning its dimension right after ``c``, or ``Y[j, n]``), at
    least one holding ``c``; None otherwise."""
    if len(st.lhs) != 2:
        return None
    c, n = st.lhs
    j = rhs.indices[0]
    reads: list[Access] = []

    def collect(e) -> bool:
        if isinstance(e, Access):
            reads.append(e)
            return True
        return isinstance(e, BinOp) and e.op is BinOpKind.MUL and collect(e.lhs) \
            and collect(e.rhs)

    if not collect(rhs.body):
        return None
    ext = {i: sympy.sympify(b.extents[i]) for i in (c, j, n)}
    for a in reads:
        t = b.spec.tensor(a.tensor)
        idx = tuple(sympy.sympify(e) for e in a.indices)
        shape = tuple(sympy.sympify(x) for x in t.shape)
        if a.indirect or t.dtype != DType.float32 or a.tensor in b.resident \
                or t.role is Role.OUTPUT:
            return None
        want = tuple(index_symbol(i) for i in ((c, j, n) if len(idx) == 3 else (j, n)))
        if idx != want or shape != tuple(ext[str(x)] for x in want):
            return None
    if not any(len(a.indices) == 3 for a in reads):
        return None
    tdecl = b.spec.tensor(st.target)
    if tuple(sympy.sympify(x) for x in tdecl.shape) != (ext[c], ext[n]):
        return None
    return reads


def _groupable(b: Build, st: Statement, rhs: Reduce) -> list[Access] | None:
    """The reads of a statement the grouped form takes (:func:`_grouped`), else None."""
    reads = _grouped_reads(b, st, rhs)
    if reads is None:
        return None
    top = at_sizes(b, sympy.sympify(b.extents[rhs.indices[0]]), largest=True)
    return reads if top is not None and top <= GROUP_J_MAX else None


def _grouped(b: Build, st: Statement, rhs: Reduce) -> list | None:
    """``T[c, n] = sum(X[c, j, n] * Y[j, n], j)`` with a short ``j`` (at most
    :data:`GROUP_J_MAX` at the largest sizes): ``G = 128 // J`` values of ``c`` share one tile,
    partition ``g * J + j`` (``X``'s rows ``(c, j)`` are one contiguous run of rows; ``Y``'s
    ``J`` rows are loaded ``G`` times, once per column chunk), and a 0/1 block selector
    ``sel[g * J + j, g] = 1`` as the stationary operand sums each group's ``J`` partitions into
    PSUM row ``g``. The plain form loops over ``c`` with ``J`` partitions busy (``mamba_scan``'s
    ``y[c, t] = sum(h[c, s, t] * Cm[s, t], s)``, S = 16: 2,048 VectorE products of 16 rows).

    Docs: the selector is built by GpSimd ``affine_select`` from a ones tile (SH
    nki/api/nki/isa/__init__.py ``affine_select``, nki 0.3: predicate on ``offset +
    channel_multiplier * partition + pattern``; S25 general/nki/api/nki/isa/__init__.py
    ``affine_select`` with an ``nl.arange`` predicate, SDK 2.25), flagged
    ``is_stationary_onezero`` in ``nc_matmul`` (both versions); a DMA may write any partition
    range of a tile (SH nki/api/nki/isa/__init__.py ``dma_copy``)."""
    reads = _groupable(b, st, rhs)
    if reads is None:
        return None
    c, n = st.lhs
    j = rhs.indices[0]
    J, C, N = (sympy.sympify(b.extents[i]) for i in (j, c, n))
    n_, S = b.namer, b.sym
    b.const("TILE_P", PMAX, "rows reduced per matmul: one per partition", "pmax")
    b.const("COLS", CHUNK, "columns per pass: one PSUM bank of fp32 (the moving operand's "
            "free size)", "gemm_moving_fmax" if CHUNK == GEMM_MOVING_FMAX else None)
    G_, GJ_ = n_.fresh("groups"), n_.fresh("group_rows")
    G, GJ = S(G_), S(GJ_)
    ones, sel = n_.fresh("ones"), n_.fresh("sel")
    full = (P.Slice(ZERO, GJ), P.Slice(ZERO, G))
    pre: list = [
        P.Let(G_, sympy.floor(PMAX / J)), P.Let(GJ_, G * J),
        P.Alloc(ones, (sympy.Integer(PMAX), sympy.Integer(PMAX)), F32, P.Mem.SBUF),
        P.Memset(P.Ref(ones, full), sympy.Float(1.0)),
        P.Alloc(sel, (sympy.Integer(PMAX), sympy.Integer(PMAX)), F32, P.Mem.SBUF),
        # keep p - J * g >= 0, then J - 1 - p + J * g >= 0: p // J == g
        AffineSelect(P.Ref(sel, full), P.Ref(ones, full), "greater_equal", ZERO, ONE, -J, GJ,
                     G, sympy.Float(0.0)),
        AffineSelect(P.Ref(sel, full), P.Ref(sel, full), "greater_equal", J - 1, -ONE, J, GJ,
                     G, sympy.Float(0.0)),
    ]
    fc, f0, fsz = n_.fresh("fc"), n_.fresh("f0"), n_.fresh("fsz")
    cb, c0, gsz, rsz = n_.fresh("cb"), n_.fresh("c0"), n_.fresh("gsz"), n_.fresh("rsz")
    g = n_.fresh("g")
    cols = (P.Slice(ZERO, S(fsz)),)
    per_chunk: list = [P.Let(f0, S(fc) * CHUNK), P.Let(fsz, Min(sympy.Integer(CHUNK), N - S(f0)))]
    group_body: list = [P.Let(c0, S(cb) * G), P.Let(gsz, Min(G, C - S(c0))),
                        P.Let(rsz, Min(GJ, J * C - J * S(c0)))]   # = gsz * J
    tiles: list[str] = []
    for a in reads:
        name = n_.fresh(f"{a.tensor}_t")
        tiles.append(name)
        alloc = P.Alloc(name, (sympy.Integer(PMAX), sympy.Integer(CHUNK)), F32, P.Mem.SBUF)
        src = checked(a.tensor, "tensor")
        if len(a.indices) == 2:
            # the J rows once per group of the tile, once per column chunk
            per_chunk += [alloc, P.Loop(g, G, P.LoopKind.PARALLEL, (
                P.Dma(P.Ref(name, (P.Slice(S(g) * J, J),) + cols),
                      P.ApRef(src, S(f0), ((N, J), (ONE, S(fsz))))),))]
        else:
            group_body += [alloc, P.Dma(
                P.Ref(name, (P.Slice(ZERO, S(rsz)),) + cols),
                P.ApRef(src, sympy.expand(S(c0) * J * N + S(f0)), ((N, S(rsz)), (ONE, S(fsz)))))]
    rows = (P.Slice(ZERO, S(rsz)),) + cols
    prod = tiles[0]
    if len(tiles) > 1:
        prod = n_.fresh("prod")
        group_body.append(P.Alloc(prod, (sympy.Integer(PMAX), sympy.Integer(CHUNK)), F32,
                                  P.Mem.SBUF))
        group_body.append(P.TensorTensor(P.Ref(prod, rows), P.Ref(tiles[0], rows),
                                         P.Ref(tiles[1], rows), P.AluOp.MULTIPLY))
        for t in tiles[2:]:
            group_body.append(P.TensorTensor(P.Ref(prod, rows), P.Ref(prod, rows),
                                             P.Ref(t, rows), P.AluOp.MULTIPLY))
    ps, res = n_.fresh("ps"), n_.fresh("res")
    out = (P.Slice(ZERO, S(gsz)),) + cols
    scale = P.Scalar(1 / J if rhs.op is ReduceKind.MEAN else sympy.Float(1.0))
    tdecl = b.spec.tensor(st.target)
    group_body += [
        P.Alloc(ps, (sympy.Integer(PMAX), sympy.Integer(CHUNK)), F32, P.Mem.PSUM),
        P.Matmul(P.Ref(ps, out), P.Ref(sel, (P.Slice(ZERO, S(rsz)), P.Slice(ZERO, S(gsz)))),
                 P.Ref(prod, rows), stationary_onezero=True),
        P.Alloc(res, (sympy.Integer(PMAX), sympy.Integer(CHUNK)), tdecl.dtype, P.Mem.SBUF),
        P.Activation(P.Ref(res, out), P.ActFunc.COPY, P.Ref(ps, out), scale),
        P.Dma(P.ApRef(checked(st.target, "tensor"), sympy.expand(S(c0) * N + S(f0)),
                      ((N, S(gsz)), (ONE, S(fsz)))), P.Ref(res, out)),
    ]
    per_chunk.append(P.Loop(cb, sympy.ceiling(C / G), P.LoopKind.PARALLEL, tuple(group_body)))
    return [*pre, P.Loop(fc, sympy.ceiling(N / CHUNK), P.LoopKind.PARALLEL, tuple(per_chunk))]
