"""Tile-level expression compiler: one right-hand expression -> engine instructions on tiles.

Stage: plan (helper of the row and matmul lowerings). Input: a spec expression, a
:class:`TileCtx` saying which index sits on the partition axis and which (if any) on the free
axis of the current tile, and which tensors are already on chip; output: plan nodes appended to
the context and a :class:`Val` describing the result.

Every value is a scalar (trace-time number), a column ``[P, 1]`` (depends on the partition index
only) or a row ``[P, F]``. Loads of HBM tensors use plain slices, or a raw access pattern when
the partition index is not the outer dimension or the tensor does not depend on it (partition
broadcast, stride 0). Functions go to ScalarE ``activation`` with ``f(scale * x + bias)`` fused;
arithmetic goes to VectorE ``tensor_scalar`` (one side uniform) or ``tensor_tensor``; a reduction
over the current free index is a ``tensor_reduce``, over another index an accumulation loop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import sympy

from nkigen.codegen import plan as P
from nkigen.codegen.names import Namer, checked
from nkigen.codegen.symcache import Max, Min, substitute
from nkigen.diagnostics import NkigenError, error
from nkigen.dtypes import DType
from nkigen.hw import FP32_EXACT_INT, PMAX, TRN2, Target
from nkigen.ir import (
    Access,
    BinOp,
    BinOpKind,
    Call,
    Compare,
    Const,
    Expr,
    Func,
    IndexValue,
    Neg,
    ParamRef,
    Reduce,
    ReduceKind,
    Scan,
    SizeRef,
    Spec,
    Statement,
    Where,
    accesses,
    division_parts,
    expr_indices,
    index_symbol,
    size_symbol,
    walk,
)

if TYPE_CHECKING:
    from nkigen.codegen.scan import ScanCarry

F32 = DType.float32
ONE = sympy.Integer(1)
ZERO = sympy.Integer(0)

ACT_OF_FUNC: dict[Func, P.ActFunc] = {
    Func.EXP: P.ActFunc.EXP, Func.LOG: P.ActFunc.LOG, Func.SQRT: P.ActFunc.SQRT,
    Func.RSQRT: P.ActFunc.RSQRT, Func.RECIPROCAL: P.ActFunc.RECIPROCAL,
    Func.TANH: P.ActFunc.TANH, Func.SIGMOID: P.ActFunc.SIGMOID, Func.RELU: P.ActFunc.RELU,
    Func.GELU: P.ActFunc.GELU, Func.GELU_TANH: P.ActFunc.GELU_TANH, Func.SILU: P.ActFunc.SILU,
    Func.SQUARE: P.ActFunc.SQUARE, Func.ABS: P.ActFunc.ABS,
}
ALU_OF_BINOP: dict[BinOpKind, P.AluOp] = {
    BinOpKind.ADD: P.AluOp.ADD, BinOpKind.SUB: P.AluOp.SUBTRACT,
    BinOpKind.MUL: P.AluOp.MULTIPLY, BinOpKind.DIV: P.AluOp.DIVIDE,
}
ALU_OF_FUNC: dict[Func, P.AluOp] = {Func.MAXIMUM: P.AluOp.MAXIMUM, Func.MINIMUM: P.AluOp.MINIMUM}
ALU_OF_REDUCE: dict[ReduceKind, P.AluOp] = {
    ReduceKind.SUM: P.AluOp.ADD, ReduceKind.MEAN: P.AluOp.ADD,
    ReduceKind.MAX: P.AluOp.MAXIMUM, ReduceKind.MIN: P.AluOp.MINIMUM,
}
REDUCE_CHUNK = 2048      # elements per partition of one streamed reduction chunk
# identity elements of the accumulations: 0 for add, -inf for max, +inf for min, the values
# VectorE's own accumulators reset to (SH nki/api/nki/isa/__init__.py tensor_scalar_reduce
# "The identity is 0 for nl.add, 1 for nl.multiply, -inf for nl.max and +inf for nl.min",
# nki 0.3). A finite stand-in (-FLT_MAX) is not an identity: max of a row of -inf gives it.
REDUCE_INIT: dict[P.AluOp, sympy.Expr] = {
    P.AluOp.ADD: sympy.Float(0.0), P.AluOp.MAXIMUM: sympy.S.NegativeInfinity,
    P.AluOp.MINIMUM: sympy.S.Infinity,
}
_SYMPY_FUNC = {
    Func.EXP: sympy.exp, Func.LOG: sympy.log, Func.SQRT: sympy.sqrt,
    Func.RSQRT: lambda x: 1 / sympy.sqrt(x), Func.RECIPROCAL: lambda x: 1 / x,
    Func.SQUARE: lambda x: x * x, Func.ABS: sympy.Abs, Func.TANH: sympy.tanh,
    Func.SIGMOID: lambda x: 1 / (1 + sympy.exp(-x)), Func.RELU: lambda x: Max(x, 0),
    Func.SILU: lambda x: x / (1 + sympy.exp(-x)),
    Func.GELU: lambda x: x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2,
    Func.GELU_TANH: lambda x: x * (1 + sympy.tanh(sympy.sqrt(2 / sympy.pi)
                                                  * (x + sympy.Float(0.044715) * x ** 3))) / 2,
}


# temporaries are named after what they hold (namer.fresh numbers repeats)
_OP_NAME: dict[P.AluOp, str] = {
    P.AluOp.ADD: "sum", P.AluOp.SUBTRACT: "diff", P.AluOp.MULTIPLY: "prod",
    P.AluOp.DIVIDE: "quot", P.AluOp.MAXIMUM: "clamped", P.AluOp.MINIMUM: "clamped",
    # spec language 1.1 comparisons: a 1.0 / 0.0 mask
    P.AluOp.LESS: "mask", P.AluOp.LESS_EQUAL: "mask", P.AluOp.EQUAL: "mask",
    P.AluOp.NOT_EQUAL: "mask", P.AluOp.GREATER_EQUAL: "mask", P.AluOp.GREATER: "mask",
}
_ACT_NAME: dict[P.ActFunc, str] = {P.ActFunc.COPY: "scaled", P.ActFunc.ABS: "absval"}
_REDUCE_NAME: dict[P.AluOp, str] = {
    P.AluOp.ADD: "row_sum", P.AluOp.MAXIMUM: "row_max", P.AluOp.MINIMUM: "row_min",
}


class Kind(Enum):
    SCALAR = "scalar"
    COL = "col"
    ROW = "row"


# bytes a partition of a row block loaded before a loop over its columns (_row_blocks):
# 4096 fp32, a small share of the 192 KiB partition (S25 arch guide; SH tile_size sbuf)
ROW_BLOCK_BYTES = 16 * 1024


@dataclass(frozen=True)
class Val:
    kind: Kind
    expr: sympy.Expr | None = None     # SCALAR
    buf: str | None = None             # COL / ROW: the tile's name
    dtype: DType = F32
    temp: bool = False                 # a single-use intermediate: may be overwritten in place
    off: sympy.Expr = ZERO             # free offset of the value inside its tile
    step: sympy.Expr = ONE             # free step of the view (a strided view of a wider tile)


class Unsupported(Exception):
    """Raised by the compiler for a construct the current strategy cannot lower; ``fix``, when
    given, is the fix clause of the build error it becomes."""

    def __init__(self, why: str, fix: str | None = None) -> None:
        super().__init__(why)
        self.fix = fix


@dataclass
class Bound:
    """A tensor already on chip: ``buf`` holds it as a column, or as a row over its dim 1."""

    buf: str
    kind: Kind
    dtype: DType
    off: sympy.Expr = ZERO


@dataclass
class TileCtx:
    p: str                              # partition index
    p0: sympy.Expr                      # first partition-index value of this tile
    psz: sympy.Expr                     # rows in this tile
    f: str | None = None                # free index (None: columns only)
    f0: sympy.Expr = ZERO
    fsz: sympy.Expr = ONE               # elements of f in this tile
    falloc: sympy.Expr = ONE            # allocation width (>= fsz)
    env: dict[str, sympy.Expr] = field(default_factory=dict)   # scalar-loop indices
    bound: dict[str, Bound] = field(default_factory=dict)
    out: list = field(default_factory=list)
    hoist: list | None = None           # where partition-invariant setup may go
    hoist_ok: bool = False              # loads independent of p may be hoisted
    cache: dict = field(default_factory=dict)
    load: dict = field(default_factory=dict)   # engine -> estimated busy time of this pass
    chunked: bool = False              # reductions stream their rows in REDUCE_CHUNK pieces
    outer: tuple[str, ...] = ()         # a fused group's outer loop indices (shared by all)
    row_hoist: list | None = None       # where loads of one column per row tile may go (the
    #                                     row-tile loop body around a loop over free chunks)
    hoist_f: bool = True                # a hoisted load may depend on the free chunk (f0, fsz)
    hoist_rows_only: bool = False       # only per-column rows are hoisted (not scalars/consts)
    hoist_p: sympy.Expr = sympy.Integer(PMAX)   # partitions a hoisted broadcast fills
    fvar: sympy.Expr | None = None      # classic: the free-chunk loop index (f0 = falloc * it)
    scan_carry: ScanCarry | None = None  # the carries of a scan streamed in chunks (scan.py)
    looped: frozenset[str] = frozenset()    # indices of the sequential loops row_hoist is
    #                                         outside of (loop_reduce): a load naming one stays

    def sub(self, **kw) -> TileCtx:
        d = dict(p=self.p, p0=self.p0, psz=self.psz, f=self.f, f0=self.f0, fsz=self.fsz,
                 falloc=self.falloc, env=dict(self.env), bound=self.bound, out=self.out,
                 hoist=self.hoist, hoist_ok=self.hoist_ok, cache=self.cache, load=self.load,
                 chunked=self.chunked, outer=self.outer, row_hoist=self.row_hoist,
                 hoist_f=self.hoist_f, hoist_rows_only=self.hoist_rows_only,
                 hoist_p=self.hoist_p, fvar=self.fvar, scan_carry=self.scan_carry,
                 looped=self.looped)
        d.update(kw)
        return TileCtx(**d)


def merge_digits(dims: list, shape: tuple, syms: tuple) -> tuple[list, bool]:
    """An access whose index ``i`` (a tile axis) fills two neighbouring dimensions as its
    digits, ``x[.., i // c + e, i % c, ..]`` with the second dimension ``c`` long (an
    interleaved pair ``x[t, d // 2, d % 2]``): the flat offset ``stride * c * (i // c + e) +
    stride * (i % c)`` is ``stride * i + stride * c * e``, so the pair reads as ``(e, i)``, an
    affine index of ``i`` on the flat storage (the view is then an access pattern: the second
    dimension's ``i`` runs past its extent, which only the flat offset allows; SH
    nki/deep-dives/nki-aps.rst, nki 0.3). Returns the dimensions and whether any pair merged;
    the analysis proved the original access in bounds, and the flat offset is the same."""
    out = list(dims)
    merged = False
    for i in range(len(out) - 1):
        for sym in syms:
            if sym is None:
                continue
            lo, hi = sympy.sympify(out[i]), sympy.sympify(out[i + 1])
            mods = [q for q in hi.atoms(sympy.Mod) if q.args[0] == sym]
            if len(mods) != 1 or hi != mods[0] or not mods[0].args[1].is_Integer:
                continue
            c = mods[0].args[1]
            if sympy.sympify(shape[i + 1]) != c:
                continue
            fl = sympy.floor(sym / c)
            rest = sympy.expand(lo - fl)
            if rest.has(sym) or lo.coeff(fl) != 1:
                continue
            out[i], out[i + 1] = rest, sym
            merged = True
    return out, merged


def stmt_error(st: Statement, why: str, fix: str | None = None) -> NkigenError:
    """A build error located at ``st``'s spec line. A statement a pre-pass added carries its
    explanation as its text (it ends with the module, "(codegen/turned.py)"), not spec text:
    it is named as a step added for the user's statement, which the location points at."""
    text = st.text.rstrip()
    said = f"in a step nkigen adds for it: {text}" if text.endswith(".py)") and \
        "(codegen/" in text else f"`{text}`"
    # every error names a fix (README: rule + actual value + fix); a refusal that brings none
    # of its own gets the generic one (fuzz13: the classic refusal of a divided free index)
    return error(st.loc, f"compute[{st.position}]",
                 f"statement {st.position} {said}: {why}", None, fix or DEFAULT_FIX)


DEFAULT_FIX = ("nkigen has no lowering for this form yet: rewrite the statement (e.g. split it "
               "into several statements through a temp); `nkigen explain SPEC` shows the plan")


def strides(shape: tuple[sympy.Expr, ...]) -> tuple[sympy.Expr, ...]:
    out: list[sympy.Expr] = []
    acc: sympy.Expr = ONE
    for d in reversed(shape):
        out.append(acc)
        acc = acc * d
    return tuple(reversed(out))


def size_max(spec: Spec, e) -> int | None:
    """The largest value of size expression ``e`` over the spec's size bounds (fixed sizes
    substituted), or None when it is unbounded."""
    e = sympy.sympify(e)
    subs = {}
    for sym in e.free_symbols:
        try:
            d = spec.size(sym.name)
        except KeyError:
            return None
        v = getattr(d, "value", None)
        v = d.max if not isinstance(v, (int, sympy.Integer)) else v
        if v is None:
            return None
        subs[sym] = v
    r = e.subs(subs)
    return int(r) if r.is_number else None


class Compiler:
    """Compiles expressions of one statement into tile instructions."""

    def __init__(self, spec: Spec, namer: Namer, extents: dict[str, sympy.Expr],
                 st: Statement, target: Target | None = None, classic: bool = False):
        self.spec = spec
        self.classic = classic        # planning for the neuronxcc dialect
        self.namer = namer
        self.extents = extents
        self.st = st
        self.params = spec.param_values()
        self.target = target or TRN2
        self.declared: list[P.Const] = []     # tile sizes this compiler chose (render.consts)
        # the scalar-loop indices (TileCtx.env) are Python ints at trace time (current API:
        # the loops are Python ``range``), so a condition on them alone is a Python ``if``
        self.trace_env = False
        # an HBM dimension indexed by both tile indices (x[p + f]: one access pattern whose
        # steps are the two coefficients) is taken only by the last placement the row
        # lowering tries: a sliding window x[m, o + r] tiles better another way
        self.mixed_dims = False

    # ---- engine choice ---------------------------------------------------------------
    def _ns(self, engine: str, passes: float) -> float:
        """Relative time of ``passes`` passes over one free element on ``engine``."""
        t = self.target
        ghz = {"scalar": t.scalar_ghz, "vector": t.vector_ghz, "gpsimd": t.gpsimd_ghz}[engine]
        return passes / ghz

    def _ts_speedup(self, src: DType, dst: DType) -> float:
        """VectorE ``tensor_scalar`` perf mode on SBUF rows: NC-v3 runs 16-bit in and out at
        its full 16-bit rate (4x on trn2); NC-v2 has none
        (SH trainium2_arch "Vector Engine" performance modes)."""
        t = self.target
        if t.nc_version < 3:
            return 1.0
        if src.itemsize == 2 and dst.itemsize == 2:
            return t.vector_elems_per_cycle_16bit / PMAX
        return 1.0      # the 2x half-16-bit mode is not counted: VectorE also carries the rest

    def pick(self, ctx: TileCtx, options: dict[str, float]) -> str:
        """Least-loaded engine (ScalarE or VectorE) for one full-row instruction; ``options``
        engine -> passes."""
        best = min(sorted(options), key=lambda e: ctx.load.get(e, 0.0)
                   + self._ns(e, options[e]))
        ctx.load[best] = ctx.load.get(best, 0.0) + self._ns(best, options[best])
        return best

    def charge(self, ctx: TileCtx, engine: str, passes: float) -> None:
        ctx.load[engine] = ctx.load.get(engine, 0.0) + self._ns(engine, passes)

    # ---- helpers ---------------------------------------------------------------------
    def tile(self, ctx: TileCtx, kind: Kind, dtype: DType, base: str = "t") -> Val:
        name = self.namer.fresh(base)
        width = ctx.falloc if kind is Kind.ROW else ONE
        ctx.out.append(P.Alloc(name, (sympy.Integer(PMAX), width), dtype, P.Mem.SBUF))
        return Val(kind, buf=name, dtype=dtype, temp=True)

    def ref(self, ctx: TileCtx, v: Val) -> P.Ref:
        assert v.buf is not None
        w = ctx.fsz if v.kind is Kind.ROW else ONE
        return P.Ref(v.buf, (P.Slice(ZERO, ctx.psz), P.Slice(v.off, w, v.step)))

    def operand(self, ctx: TileCtx, v: Val) -> P.Operand:
        if v.kind is Kind.SCALAR:
            return P.Scalar(v.expr)
        return self.ref(ctx, v)

    def act_scale(self, ctx: TileCtx, v: Val) -> P.Operand:
        """An activation's ``scale`` or a tensor_scalar / scalar_tensor_tensor operand: a
        number, or a float32 tile (a tile of another dtype, e.g. a bfloat16 or int32 input
        column, is copied to float32 first): SH nki/api/nki/isa/__init__.py activation and
        tensor_scalar, nki 0.3; S25 nki.errors err_activation_scale_invalid_type."""
        if v.kind is not Kind.SCALAR and v.dtype is not F32:
            v = self.materialize(ctx, v, v.kind, F32)
        return self.operand(ctx, v)

    def act_bias(self, ctx: TileCtx, v: Val) -> P.Ref:
        """An activation's ``bias`` tile: an integer tile is copied to float32 first (the
        classic API takes float32/float16/bfloat16 vectors: S25 nki.isa.activation)."""
        if v.dtype.is_integer:
            v = self.materialize(ctx, v, v.kind, F32)
        return self.ref(ctx, v)

    def dst_for(self, ctx: TileCtx, kind: Kind, srcs: tuple[Val, ...],
                want: DType | None, base: str = "t") -> Val:
        """An in-place destination when a same-shaped temp operand exists, else a new tile."""
        dtype = want or F32
        for s in srcs:
            if s.temp and s.kind is kind and s.dtype == dtype and s.buf is not None:
                return s
        return self.tile(ctx, kind, dtype, base)

    def depends_on(self, e: Expr, index: str | None) -> bool:
        if index is None:
            return False
        sym = index_symbol(index)
        for x in walk(e):
            if isinstance(x, Access) and any(sym in sympy.sympify(i).free_symbols
                                             for i in x.indices):
                return True
            # an index read as a number (a condition's `k <= n`) depends on it too
            if isinstance(x, IndexValue) and sym in sympy.sympify(x.expr).free_symbols:
                return True
        return False

    def scalar_of(self, e: Expr) -> sympy.Expr | None:
        """The trace-time value of a tensor-free expression, else None."""
        if isinstance(e, Const):
            return sympy.Float(e.value) if not float(e.value).is_integer() else \
                sympy.Integer(int(e.value))
        if isinstance(e, ParamRef):
            return sympy.Symbol(checked(e.name, "param"))
        if isinstance(e, SizeRef):
            return size_symbol(checked(e.name, "size"))
        if isinstance(e, Neg):
            v = self.scalar_of(e.operand)
            return None if v is None else -v
        if isinstance(e, BinOp):
            a, b = self.scalar_of(e.lhs), self.scalar_of(e.rhs)
            if a is None or b is None:
                return None
            if e.op is BinOpKind.DIV:
                return a / b
            return {BinOpKind.ADD: a + b, BinOpKind.SUB: a - b, BinOpKind.MUL: a * b}[e.op]
        if isinstance(e, Call) and e.func in _SYMPY_FUNC:
            a = self.scalar_of(e.args[0])
            return None if a is None else _SYMPY_FUNC[e.func](a)
        if isinstance(e, Call) and e.func in ALU_OF_FUNC:
            a, b = self.scalar_of(e.args[0]), self.scalar_of(e.args[1])
            if a is None or b is None:
                return None
            return Max(a, b) if e.func is Func.MAXIMUM else Min(a, b)
        return None

    # ---- loads -----------------------------------------------------------------------
    def hbm_view(self, ctx: TileCtx, tensor: str, indices: tuple) -> tuple[P.AnyRef, Kind, bool]:
        """The HBM side of a tile transfer for ``tensor[indices]`` in ``ctx``.

        Returns the view, whether the tile is a row or a column, and whether the tensor depends
        on the partition index (False: every partition reads the same data).
        """
        t = self.spec.tensor(tensor)
        psym = index_symbol(ctx.p)
        fsym = index_symbol(ctx.f) if ctx.f else None
        subs = {index_symbol(k): v for k, v in ctx.env.items()}
        dims = [substitute(e, subs) for e in indices]
        dims, merged = merge_digits(dims, t.shape, (psym, fsym))
        pdim = fdim = None
        for d, e in enumerate(dims):
            syms = e.free_symbols
            hp, hf = psym in syms, fsym is not None and fsym in syms
            for q in e.atoms(sympy.floor, sympy.Mod):
                tiled = sorted(s.name for s in q.free_symbols & {psym, fsym})
                if tiled:
                    alt = ("use --dialect nki (its kernels read a divided free index through "
                           "an access pattern), or " if self.classic else "")
                    raise Unsupported(f"access {tensor}[...] takes // or % of the tiled index "
                                      f"{tiled[0]}: only indices of outer loops may be divided "
                                      f"(got {q})",
                                      f"{alt}divide only an outer left-hand index, or pass the "
                                      "divided operand already expanded as an input")
            if hp and hf and not self.mixed_dims:
                raise Unsupported(f"access {tensor}[...] mixes {ctx.p} and {ctx.f} in one "
                                  "dimension")
            if hp:
                if pdim is not None:
                    raise Unsupported(f"index {ctx.p} indexes two dimensions of {tensor}")
                pdim = d
            if hf:              # (the same dimension as hp: x[2 * p + f], steps add up)
                if fdim is not None:
                    raise Unsupported(f"index {ctx.f} indexes two dimensions of {tensor}")
                fdim = d
            stray = sorted(s.name for s in syms if s not in (psym, fsym)
                           and s.name in self.extents and s == index_symbol(s.name))
            if stray:
                raise Unsupported(f"index {stray[0]} of {tensor} is not bound here")
        kind = Kind.ROW if fdim is not None else Kind.COL
        at = {psym: ctx.p0}
        if fsym is not None:
            at[fsym] = ctx.f0
        strd = strides(tuple(sympy.sympify(s) for s in t.shape))
        offset = sympy.expand(sum((substitute(e, at) * s for e, s in zip(dims, strd)), ZERO))
        pcoef = ZERO if pdim is None else sympy.expand(dims[pdim].coeff(psym))
        fcoef = ONE if fdim is None else sympy.expand(dims[fdim].coeff(fsym))
        for c in (pcoef, fcoef):
            if c.free_symbols & {psym} or (fsym is not None and fsym in c.free_symbols):
                raise Unsupported(f"non-affine access of {tensor}")
        pstep = ZERO if pdim is None else sympy.expand(pcoef * strd[pdim])
        fstep = ONE if fdim is None else sympy.expand(fcoef * strd[fdim])
        fcount = ctx.fsz if kind is Kind.ROW else ONE
        name = checked(tensor, "tensor")
        if (pdim is not None and fdim is not None and pdim < fdim and pcoef == 1
                and fcoef == 1 and not merged):
            rdims: list[P.Dim] = []
            for d, e in enumerate(dims):
                if d == pdim:
                    rdims.append(P.Slice(substitute(e, at), ctx.psz))
                elif d == fdim:
                    rdims.append(P.Slice(substitute(e, at), ctx.fsz))
                else:
                    rdims.append(P.Index(e))
            return P.Ref(name, tuple(rdims)), kind, True
        return P.ApRef(name, offset, ((pstep, ctx.psz), (fstep, fcount))), kind, pdim is not None

    def load(self, ctx: TileCtx, a: Access, as_dtype: DType | None = None) -> Val:
        """The tile of ``a`` for ``ctx``. ``as_dtype``: the dtype a plain load allocates its
        tile in (the DMA casts on the way: SH nki/api/nki/isa/__init__.py dma_copy, nki 0.3;
        S25 general/nki/api/nki/isa/__init__.py dma_copy, SDK 2.25); the other forms keep the
        tensor's dtype, so the caller checks the returned :attr:`Val.dtype`."""
        if a.indirect:                           # spec language 1.1: indexed read
            from nkigen.codegen import gather
            return gather.load_gather(self, ctx, a)
        if a.tensor in ctx.bound:
            return self.bound_access(ctx, a)
        wide = self.expanded_load(ctx, a)
        if wide is None:
            wide = self.periodic_load(ctx, a)
        if wide is None:
            wide = self.swapped_load(ctx, a)
        if wide is not None:
            return wide
        from nkigen.codegen import revrows
        rows_v = revrows.divided_rows(self, ctx, a)
        if rows_v is not None:
            return rows_v
        from nkigen.codegen import coalesce
        view = coalesce.try_load(self, ctx, a)     # strided reads: contiguous rows + views
        if view is not None:
            return view
        t = self.spec.tensor(a.tensor)
        src, kind, per_row = self.hbm_view(ctx, a.tensor, a.indices)
        fcount = ctx.fsz if kind is Kind.ROW else ONE
        # a per-row column does not depend on the statement's free extent: statements of one
        # fused group that read the same column share its single load (review4 F3)
        ldt = t.dtype if as_dtype is None else as_dtype
        key = (src, kind, fcount) if ldt == t.dtype else (src, kind, fcount, ldt)
        if key in ctx.cache:
            return ctx.cache[key]
        # a load that does not depend on the partition index (a per-column row such as a
        # bias, broadcast to every partition, or a scalar) is issued once before the row-tile
        # loop, not once per tile (review5 F4); one that depends on the free chunk only where
        # the caller places the hoisted loads per chunk (``hoist_f``)
        hoist = not per_row and ctx.hoist_ok and ctx.hoist is not None \
            and (ctx.hoist_f or kind is not Kind.ROW) \
            and (kind is Kind.ROW or not ctx.hoist_rows_only)
        out = ctx.hoist if hoist else ctx.out
        if per_row and kind is Kind.COL and ctx.row_hoist is not None and \
                not (ctx.looped & set(expr_indices(a))):
            out = ctx.row_hoist       # one column per row tile, not one per free chunk
        assert out is not None
        name = self.namer.fresh(f"{a.tensor}_t")
        width = ctx.falloc if kind is Kind.ROW else ONE
        out.append(P.Alloc(name, (sympy.Integer(PMAX), width), ldt, P.Mem.SBUF))
        rows = ctx.hoist_p if hoist else ctx.psz
        if hoist and isinstance(src, P.ApRef):
            src = P.ApRef(src.name, src.offset, ((ZERO, rows), src.pattern[1]))
        dst = P.Ref(name, (P.Slice(ZERO, rows), P.Slice(ZERO, fcount)))
        from nkigen.codegen import revrows
        revrows.load(self, ctx, a.tensor, a.indices, src, dst, out, rows, width)
        v = Val(kind, buf=name, dtype=ldt, temp=False)
        ctx.cache[key] = v
        return v

    def expanded_load(self, ctx: TileCtx, a: Access) -> Val | None:
        """A read ``x[.., f // c + e, ..]`` of the tiled free index ``f`` (nearest-neighbour
        upsampling along the free axis): the ``fsz / c`` source elements of the tile are loaded
        as contiguous rows, then copied ``c`` times into a full-width tile with a free step of
        ``c`` (element ``f`` of the tile is source element ``f // c``). Only where every free
        chunk starts and ends on a multiple of ``c`` (the chunk width and the free extent are
        multiples of it), so each copy moves ``fsz / c`` elements; None otherwise (the load
        takes its other forms). A free-axis slice with a step on an SBUF tile: SH
        nki/api/nki/language/__init__.py NkiTensor (``sb[:, 0:32:2]``, "slice with step",
        ``step >= 1``) and nki/deep-dives/nki-aps.rst (nki 0.3); classic, a free index tile
        times the step, ``2 * i_f`` (S25 general/nki/programming_model.rst "Advanced Tensor
        Indexing", SDK 2.25), the compressed chunk sized fully and masked."""
        got = self._free_division(ctx, a, sympy.floor, ragged=True)
        if got is None:
            return None
        c, fc, dims, q, _ = got
        width = sympy.sympify(ctx.falloc)
        f0c = sympy.floor(ctx.f0 / c)
        each: sympy.Expr = sympy.floor(ctx.fsz / c)
        if q is None:
            # a free extent that is not a multiple of c: the last chunk ends inside a period,
            # so it reads ceil(fsz / c) source elements (the last one, floor((E - 1) / c), is
            # the one the analysis proved in bounds) and every copy fills whole periods up to
            # the chunk's allocation (a multiple of c); the columns past fsz are never read
            each = sympy.ceiling(ctx.fsz / c)
        if self.classic:
            got_c = self._classic_periods(ctx, c, q)
            if got_c is None:
                return None
            f0c, each = got_c
        cctx = ctx.sub(f=fc, f0=f0c, fsz=each, falloc=sympy.Integer(int(width) // c))
        src = self.load(cctx, Access(a.tensor, tuple(dims), a.loc))
        if src.kind is not Kind.ROW:
            return None
        out = self.tile(ctx, Kind.ROW, src.dtype, f"{a.tensor}_e")
        assert out.buf is not None
        for j in range(c):
            # on VectorE: bit-accurate for every dtype (ScalarE copies through fp32, so an
            # int32 beyond 2**24 would round: SH nki/api/nki/isa/__init__.py tensor_copy)
            ctx.out.append(P.TensorCopy(
                P.Ref(out.buf, (P.Slice(ZERO, ctx.psz), P.Slice(sympy.Integer(j), each,
                                                                 sympy.Integer(c)))),
                self.ref(cctx, src), P.Eng.VECTOR))
        self.charge(ctx, "vector", 1.0)
        return out

    def swapped_load(self, ctx: TileCtx, a: Access) -> Val | None:
        """A read ``x[.., c * (f // c) - f % c + e, ..]`` of the tiled free index ``f``: groups
        of ``c`` elements with their order reversed (``c = 2``: the pair swapped, the GPT-J
        rotary partner ``x[m, 2 k + 1 - s]`` over the merged ``f = 2 k + s`` of
        :mod:`nkigen.codegen.tailmerge`). A chunk starting on a multiple of ``c`` and holding
        whole groups reads the contiguous run ``x[.., f + e - (c - 1), ..]`` (the same
        elements: one plain load, shared with a plain read of that run), then ``c`` VectorE
        copies between strided views of SBUF tiles, ``out[:, j::c] = run[:, c-1-j::c]``,
        reverse each group on chip. The HBM side stays an ascending access pattern; only the
        SBUF views step (a free-axis slice with a step ``>= 1`` on an SBUF tile: SH
        nki/api/nki/language/__init__.py NkiTensor, "slice with step", and
        nki/deep-dives/nki-aps.rst, nki 0.3; classic, a free index tile times the step,
        ``2 * i_f``: S25 general/nki/programming_model.rst "Advanced Tensor Indexing", SDK
        2.25). Only where every chunk starts on a multiple of ``c`` (the chunk width a multiple
        of ``c``) and the free extent is a multiple of ``c``; None otherwise."""
        if ctx.f is None or a.indirect:
            return None
        fsym = index_symbol(ctx.f)
        dims = [sympy.sympify(e) for e in a.indices]
        hit = [d for d, e in enumerate(dims) if fsym in e.free_symbols]
        if len(hit) == 2:
            return self._swapped_digits(ctx, a, dims, hit, fsym)
        if len(hit) != 1:
            return None
        e = sympy.expand(dims[hit[0]])
        fl = [x for x in e.atoms(sympy.floor) if fsym in x.free_symbols]
        md = [x for x in e.atoms(sympy.Mod) if fsym in x.free_symbols]
        if len(fl) != 1 or len(md) != 1:
            return None
        n1, d1 = division_parts(fl[0])
        n2, d2 = division_parts(md[0])
        if n1 != fsym or n2 != fsym or d1 != d2 or not d1.is_Integer or int(d1) < 2:
            return None
        c = int(d1)
        rest = sympy.expand(e - c * fl[0] + md[0])
        if fsym in rest.free_symbols or rest.has(sympy.floor, sympy.Mod):
            return None
        dims[hit[0]] = sympy.expand(fsym + rest - (c - 1))
        return self._swap_groups(ctx, a, dims, c)

    def _swapped_digits(self, ctx: TileCtx, a: Access, dims: list, hit: list,
                        fsym: sympy.Symbol) -> Val | None:
        """The two-dimension spelling of :meth:`swapped_load`: ``x[.., f // c + e, c - 1 - f %
        c]`` with the second dimension ``c`` long (an RGB -> BGR read of ``x[m, k, 2 - s]``):
        its run is the flat read ``x[.., f // c + e, f % c]``
        (:func:`merge_digits`: one access pattern)."""
        d = hit[0]
        if hit[1] != d + 1:
            return None
        lo, hi = sympy.expand(dims[d]), sympy.expand(dims[d + 1])
        md = [x for x in hi.atoms(sympy.Mod) if fsym in x.free_symbols]
        if len(md) != 1:
            return None
        n2, d2 = division_parts(md[0])
        if n2 != fsym or not d2.is_Integer or int(d2) < 2:
            return None
        c = int(d2)
        if hi != c - 1 - md[0] or \
                sympy.sympify(self.spec.tensor(a.tensor).shape[d + 1]) != c:
            return None
        fl = sympy.floor(fsym / c)
        if lo.coeff(fl) != 1 or sympy.expand(lo - fl).has(fsym):
            return None
        dims[d + 1] = md[0]
        return self._swap_groups(ctx, a, dims, c)

    def _swap_groups(self, ctx: TileCtx, a: Access, dims: list, c: int) -> Val | None:
        """The tile of :meth:`swapped_load`: the run ``dims`` (the same elements, each group of
        ``c`` in ascending order) loaded, then each group reversed by ``c`` strided copies."""
        width = sympy.sympify(ctx.falloc)
        if not (width.is_Integer and int(width) % c == 0):
            return None             # a chunk would start inside a group
        from nkigen.codegen.residue import quotient
        q = quotient(self.extents.get(ctx.f or "", ZERO), c,
                     {s.name: s for s in self.spec.sizes})
        if q is None:
            return None             # the last chunk would end inside a group
        each: sympy.Expr = sympy.floor(ctx.fsz / c)
        if self.classic:
            got = self._classic_periods(ctx, c, q)
            if got is None:
                return None
            each = got[1]
        run = self.load(ctx, Access(a.tensor, tuple(dims), a.loc))
        if run.kind is not Kind.ROW or run.buf is None or run.step != 1:
            return None
        out = self.tile(ctx, Kind.ROW, run.dtype, f"{a.tensor}_w")
        assert out.buf is not None
        for j in range(c):
            # on VectorE: bit-accurate for every dtype (SH nki/api/nki/isa/__init__.py
            # tensor_copy: ScalarE copies through fp32)
            ctx.out.append(P.TensorCopy(
                P.Ref(out.buf, (P.Slice(ZERO, ctx.psz),
                                P.Slice(sympy.Integer(j), each, sympy.Integer(c)))),
                P.Ref(run.buf, (P.Slice(ZERO, ctx.psz),
                                P.Slice(run.off + c - 1 - j, each, sympy.Integer(c)))),
                P.Eng.VECTOR))
        self.charge(ctx, "vector", 1.0)
        return out

    def _classic_periods(self, ctx: TileCtx, c: int, q: sympy.Expr | None
                         ) -> tuple[sympy.Expr, sympy.Expr] | None:
        """Classic dialect: (the chunk's first period, its period count) for a chunk of
        ``ctx.falloc`` (a multiple of ``c``) columns of a free extent of ``q`` periods (None:
        an extent that need not be a multiple of ``c``, its periods rounded up: the last chunk
        fills whole periods up to its allocation, the columns past its size never read): the start
        affine in the chunk loop index (masks and indices may not take ``//`` of a loop index),
        the count a Let of the ``min(T, E)`` form, which the classic pass turns into the full
        tile and a mask (codegen/classic_mask.py); None for a chunk start of another form."""
        if ctx.fvar is None and sympy.sympify(ctx.f0) != 0:
            return None
        if q is None:
            q = sympy.ceiling(sympy.sympify(self.extents.get(ctx.f or "", ZERO)) / c)
        per = sympy.Integer(int(sympy.sympify(ctx.falloc)) // c)
        f0c = ZERO if ctx.fvar is None else per * ctx.fvar
        name = self.namer.fresh("fszc")
        ctx.out.append(P.Let(name, Min(per, q - f0c)))
        return f0c, sympy.Symbol(name, integer=True, nonnegative=True)

    def _free_division(self, ctx: TileCtx, a: Access, kind, ragged: bool = False
                       ) -> tuple | None:
        """For a read whose one dimension holding the tiled free index ``f`` takes it as
        ``f // c + e`` (``kind`` sympy.floor) or ``f % c + e`` (sympy.Mod), ``e`` free of ``f``
        and ``c >= 2`` an integer, with every free chunk starting on a multiple of ``c`` (the
        chunk width a multiple of it) and holding whole periods (the free extent a multiple of
        it): ``(c, a fresh index name fc, the access's dimensions with that
        term read as fc, the free extent over c)``; else None. ``ragged``: the free extent need
        not be a multiple of ``c`` when every chunk starts on a multiple of it, for ``f // c``
        (the chunk reads up to the last source element, which the analysis proved in bounds)
        and for ``f % c`` alone in a dimension of at least ``c`` elements at every size (a
        whole period can always be read); the extent over ``c`` is then None. The fifth value
        is a shift ``k % c`` for ``(f + k) % c`` (sympy.Mod only, ``k`` an integer; 0 else):
        the dimensions then read the unshifted period, ``fc`` for ``(f + k) % c``."""
        if ctx.f is None or a.indirect:
            return None
        fsym = index_symbol(ctx.f)
        dims = [sympy.sympify(e) for e in a.indices]
        hit = [d for d, e in enumerate(dims) if fsym in e.free_symbols]
        if len(hit) != 1:
            return None
        e = dims[hit[0]]
        divs = [q for q in e.atoms(sympy.floor, sympy.Mod) if fsym in q.free_symbols]
        if len(divs) != 1 or not isinstance(divs[0], kind) or \
                (kind is sympy.Mod and e.atoms(sympy.floor)):
            return None     # (a period read with any floor in its dimension: other forms)
        num, den = division_parts(divs[0])
        shift = sympy.expand(num - fsym)
        if not shift.is_Integer or (shift != 0 and kind is not sympy.Mod) or \
                not den.is_Integer or int(den) < 2:
            return None
        c = int(den)
        fc = self.namer.fresh(f"{ctx.f}_c")
        fcs = index_symbol(fc)
        inner = sympy.expand(e.xreplace({divs[0]: fcs}))
        if fsym in inner.free_symbols or inner.coeff(fcs) != 1:
            return None
        width = sympy.sympify(ctx.falloc)
        if not (width.is_Integer and int(width) % c == 0):
            return None             # a chunk would start inside a period
        from nkigen.codegen.residue import quotient
        q = quotient(self.extents.get(ctx.f, ZERO), c, {s.name: s for s in self.spec.sizes})
        if q is None:
            size = sympy.sympify(self.spec.tensor(a.tensor).shape[hit[0]])
            mins = {sz.symbol: sympy.Integer(max(1, sz.min)) for sz in self.spec.sizes
                    if sz.value is None}
            least = size.xreplace(mins) if size.is_Symbol else size   # a size's declared min
            whole = kind is sympy.floor or (inner == fcs and least.is_Integer
                                            and int(least) >= c)
            if not (ragged and whole):
                return None
        dims[hit[0]] = inner
        return c, fc, dims, q, int(shift) % c

    def periodic_load(self, ctx: TileCtx, a: Access) -> Val | None:
        """A read ``x[.., f % c + e, ..]`` of the tiled free index ``f`` (a period of ``c``
        columns repeated along the row): the ``c`` elements are loaded once per tile, then one
        VectorE copy repeats them along the chunk, reading them through an SBUF access pattern
        with a zero step (SH nki/api/nki/language/__init__.py NkiTensor ``broadcast``, a
        stride-0 view, and ``ap``; nki/deep-dives/nki-aps.rst; nki 0.3). Only where every free
        chunk starts on a multiple of ``c`` (the chunk width is a multiple of ``c``) and either
        holds a whole number of periods (the free extent a multiple of ``c``) or the period
        can always be read whole (``x[.., f % c]`` of a dimension of at least ``c`` elements:
        the copy then fills whole periods up to the chunk's allocation, ``ceil(fsz / c) * c <=
        falloc`` elements, and the columns past ``fsz`` are never read), in the current API
        (the classic dialect: :meth:`_classic_periodic`); None otherwise."""
        got = self._free_division(ctx, a, sympy.Mod, ragged=True)
        if got is None:
            return None
        c, fc, dims, q, shift = got
        period = self.load(ctx.sub(f=fc, f0=ZERO, fsz=sympy.Integer(c),
                                   falloc=sympy.Integer(c), fvar=None),
                           Access(a.tensor, tuple(dims), a.loc))
        if period.kind is not Kind.ROW or period.buf is None or period.step != 1:
            return None
        if self.classic:
            return self._classic_periodic(ctx, c, q, period, shift)
        out = self.tile(ctx, Kind.ROW, period.dtype, f"{a.tensor}_e")
        assert out.buf is not None
        src, off, row = period.buf, period.off, sympy.Integer(c)
        if shift:
            # (f + k) % c with every chunk starting on a multiple of c: column j of a period
            # holds element (j + k) % c, a window of the period written twice (one more
            # stride-0 copy of 2 c elements), read from its k-th element on
            src, off, row = self.namer.fresh(f"{a.tensor}_d"), sympy.Integer(shift), 2 * row
            ctx.out.append(P.Alloc(src, (sympy.Integer(PMAX), row), period.dtype, P.Mem.SBUF))
            ctx.out.append(P.TensorCopy(
                P.Ref(src, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, row))),
                P.ApRef(period.buf, period.off, ((sympy.Integer(c), ctx.psz), (ZERO, 2),
                                                 (ONE, sympy.Integer(c)))), P.Eng.VECTOR))
            self.charge(ctx, "vector", 1.0)
        reps = sympy.floor(ctx.fsz / c) if q is not None else sympy.ceiling(ctx.fsz / c)
        ctx.out.append(P.TensorCopy(
            P.Ref(out.buf, (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, ctx.fsz if q is not None
                                                             else reps * c))),
            P.ApRef(src, off, ((row, ctx.psz), (ZERO, reps), (ONE, sympy.Integer(c)))),
            P.Eng.VECTOR))
        self.charge(ctx, "vector", 1.0)
        return out

    def _classic_periodic(self, ctx: TileCtx, c: int, q: sympy.Expr | None,
                          period: Val, shift: int = 0) -> Val | None:
        """The classic form of :meth:`periodic_load`: the classic API has no stride-0 view,
        so the chunk is zeroed and each residue ``j < c`` is written on its strided view
        ``out[i_p, j + c * i_q]`` (S25 general/nki/programming_model.rst "Advanced Tensor
        Indexing", SDK 2.25) by one VectorE ``tensor_scalar`` that takes the period's column
        ``j`` as its per-partition operand (S25 general/nki/api/nki/isa/__init__.py
        tensor_scalar: operand0 a scalar or a ``(partition, 1)`` vector): ``col - 0``, with
        ``reverse0`` (exact in float32 for every float dtype, the sign of a zero, infinities and
        NaN kept); an integer table is OR-ed instead (below). The chunk holds whole periods up to
        its allocation, as in the current API. A shifted read ``(f + k) % c`` takes column
        ``(j + k) % c`` for residue ``j``.

        The expanded chunk is the same for every row tile and every chunk (each chunk starts on
        a period): where the period's load was hoisted out of the tile loops, the expansion is
        built there once, over the whole allocation, and read by every tile (review 13 R13-3:
        per tile, the memset and the residue copies doubled the VectorE work)."""
        assert period.buf is not None
        if ctx.hoist is not None and any(isinstance(n, P.Alloc) and n.name == period.buf
                                         for n in ctx.hoist):
            ctx = ctx.sub(out=ctx.hoist, psz=ctx.hoist_p)
            # the periods a chunk can hold, but no more than the free extent has (a short row
            # pays for its own periods only)
            ext = sympy.sympify(self.extents.get(ctx.f or "", ZERO))
            name = self.namer.fresh("fszc")
            ctx.out.append(P.Let(name, Min(sympy.Integer(int(sympy.sympify(ctx.falloc)) // c),
                                           sympy.ceiling(ext / c))))
            reps: sympy.Expr = sympy.Symbol(name, integer=True, nonnegative=True)
            keep = True
        else:
            got = self._classic_periods(ctx, c, q)
            if got is None:
                return None
            _, reps = got
            keep = False
        out = self.tile(ctx, Kind.ROW, period.dtype, f"{period.buf}_e")
        assert out.buf is not None
        cols = period.buf
        # an integer table is OR-ed into the zeroed chunk, 0 | col = col on the bit pattern
        # (bitvec operators on integer data with an integer (partition, 1) operand, VectorE
        # only: S25 general/nki/api/nki.api.shared.rst tbl-aluop and general/nki/api/nki/isa/
        # __init__.py tensor_scalar, SDK 2.25): col - 0 would round an int32 past 2**24
        exact = period.dtype.is_integer
        if not exact and period.dtype != F32:
            # a tensor_scalar's tile operand is float32 (S25 tensor_scalar; the simulator's
            # rule): the period is copied to a float32 tile first (exact: a widening)
            cols = self.namer.fresh(f"{period.buf}_f")
            ctx.out.append(P.Alloc(cols, (sympy.Integer(PMAX), sympy.Integer(c)), F32,
                                   P.Mem.SBUF))
            whole_p = (P.Slice(ZERO, ctx.psz), P.Slice(ZERO, sympy.Integer(c)))
            ctx.out.append(P.TensorCopy(P.Ref(cols, whole_p), P.Ref(period.buf, whole_p),
                                        P.Eng.VECTOR))
        ctx.out.append(P.Memset(P.Ref(out.buf, (P.Slice(ZERO, ctx.psz),
                                                P.Slice(ZERO, ctx.falloc))), ZERO, P.Eng.VECTOR))
        for j in range(c):
            view = P.Ref(out.buf, (P.Slice(ZERO, ctx.psz),
                                   P.Slice(sympy.Integer(j), reps, sympy.Integer(c))))
            col = P.Ref(cols, (P.Slice(ZERO, ctx.psz), P.Slice(sympy.Integer((j + shift) % c),
                                                                ONE)))
            ctx.out.append(P.TensorScalar(view, view, P.AluOp.BITWISE_OR, col) if exact else
                           P.TensorScalar(view, view, P.AluOp.SUBTRACT, col, reverse0=True))
        if keep:        # built once: no tile may write its result into it
            return dataclasses.replace(out, temp=False)
        self.charge(ctx, "vector", 2.0)
        return out

    def bound_access(self, ctx: TileCtx, a: Access) -> Val:
        b = ctx.bound[a.tensor]
        idx = [sympy.sympify(e) for e in a.indices]
        want = [index_symbol(ctx.p)] + ([index_symbol(ctx.f)] if b.kind is Kind.ROW else [])
        # a fused group's outer loops (``for b``) are shared by every statement of the group:
        # a tile written under them is read at the same loop indices
        want = [index_symbol(k) for k in ctx.outer] + want
        if b.kind is Kind.ROW and ctx.f is None:
            raise Unsupported(f"on-chip {a.tensor} read without a free index")
        if idx != want:
            raise Unsupported(f"on-chip {a.tensor} read as {a.tensor}{list(idx)}")
        return Val(b.kind, buf=b.buf, dtype=b.dtype, temp=False, off=b.off)

    # ---- expressions -----------------------------------------------------------------
    def compile(self, ctx: TileCtx, e: Expr, want: DType | None = None) -> Val:
        """Lower ``e``; ``want`` is the dtype of the final tile (the target's), if any."""
        s = self.scalar_of(e)
        if s is not None:
            return Val(Kind.SCALAR, expr=s)
        if isinstance(e, Access):
            return self.load(ctx, e)
        if isinstance(e, BinOp) and e.op is BinOpKind.MUL:
            for arg, sig in ((e.lhs, e.rhs), (e.rhs, e.lhs)):
                if isinstance(sig, Call) and sig.func is Func.SIGMOID and sig.args[0] == arg:
                    # x * sigmoid(x) is ScalarE's silu: one activation instead of an activation
                    # and a VectorE multiply (S25 general/nki/api/nki.api.shared.rst activation
                    # table: silu, full input range)
                    return self.activation(ctx, Call(Func.SILU, (arg,)), want)
        if isinstance(e, Call) and e.func in ACT_OF_FUNC:
            return self.activation(ctx, e, want)
        if isinstance(e, Call):
            a = self.compile(ctx, e.args[0])
            b = self.compile(ctx, e.args[1])
            return self.binary(ctx, ALU_OF_FUNC[e.func], a, b, want)
        if isinstance(e, BinOp) and self.depends_on(e.lhs, ctx.f) \
                and self.depends_on(e.rhs, ctx.f):
            v = self._try_stt(ctx, e, want)
            if v is not None:
                return v
        if isinstance(e, (BinOp, Neg)) and self.depends_on(e, ctx.f):
            core, sc, bi = self._decompose(ctx, e)
            if core is not e and (sc is not None or bi is not None):
                x = self.compile(ctx, core)
                if x.kind is Kind.ROW:
                    return self.affine(ctx, x, sc, bi, want)
                return self._apply_affine_slow(ctx, x, sc, bi, want)
        if isinstance(e, Neg):
            a = self.compile(ctx, e.operand)
            return self.binary(ctx, P.AluOp.MULTIPLY, a, Val(Kind.SCALAR, expr=-ONE), want)
        if isinstance(e, BinOp):
            a = self.compile(ctx, e.lhs)
            b = self.compile(ctx, e.rhs)
            return self.binary(ctx, ALU_OF_BINOP[e.op], a, b, want)
        if isinstance(e, Reduce) and e.op.is_arg:    # spec language 1.1
            from nkigen.codegen import argext
            return argext.lower_arg(self, ctx, e, want)
        if isinstance(e, Reduce):
            return self.reduce(ctx, e, want)
        if isinstance(e, Scan):                  # spec language 1.1
            from nkigen.codegen import scan
            return scan.lower_scan(self, ctx, e, want)
        if isinstance(e, IndexValue):            # an index used as a number (m - n)
            from nkigen.codegen import select
            return select.index_value(self, ctx, e)
        if isinstance(e, (Where, Compare)):      # spec language 1.1
            from nkigen.codegen import select
            if isinstance(e, Where):
                return select.lower_where(self, ctx, e, want)
            return select.lower_compare(self, ctx, e, want)
        raise Unsupported(f"expression {type(e).__name__}")

    def binary(self, ctx: TileCtx, op: P.AluOp, a: Val, b: Val, want: DType | None) -> Val:
        if a.kind is Kind.SCALAR and b.kind is Kind.SCALAR:
            x, y = a.expr, b.expr
            assert x is not None and y is not None
            val = {P.AluOp.ADD: x + y, P.AluOp.SUBTRACT: x - y, P.AluOp.MULTIPLY: x * y,
                   P.AluOp.DIVIDE: x / y, P.AluOp.MAXIMUM: Max(x, y),
                   P.AluOp.MINIMUM: Min(x, y)}[op]
            return Val(Kind.SCALAR, expr=val)
        if op is P.AluOp.DIVIDE:
            # divide is not in the documented ALU operator table (SH
            # nki/api/nki.api.shared.rst "Supported Math Operators", nki 0.3; S25 same page):
            # x / y is x * reciprocal(y) (a scalar y folds to 1 / y at trace time)
            return self.binary(ctx, P.AluOp.MULTIPLY, a, self.reciprocal(ctx, b), want)
        for x, y in ((a, b), (b, a)):     # x * 1 and x + 0 need no instruction
            unit = 1 if op is P.AluOp.MULTIPLY else 0 if op is P.AluOp.ADD else None
            if unit is not None and y.kind is Kind.SCALAR and y.expr is not None \
                    and y.expr.is_number and y.expr == unit:
                return x
        rank = {Kind.SCALAR: 0, Kind.COL: 1, Kind.ROW: 2}
        if rank[a.kind] == rank[b.kind]:
            if self.classic and op is P.AluOp.SUBTRACT and a.kind is Kind.ROW and \
                    self._native_int(P.AluOp.ADD, a, b, want):
                # classic int32 subtract is VectorE-only (float32); a - b = a + (-1) * b with
                # GpSimd's integer multiply and add is exact (two's complement wraps -(-2**31)
                # and the sum back)
                negb = self.binary(ctx, P.AluOp.MULTIPLY, b,
                                   self.const_row(ctx, -ONE, b.dtype), None)
                return self.binary(ctx, P.AluOp.ADD, a, negb, want)
            native = self._native_int(op, a, b, want)
            if native and want is None:
                want = a.dtype       # an integer intermediate stays exact (no float32 tile)
            dst = self.dst_for(ctx, a.kind, (a, b), want, _OP_NAME[op])
            if a.kind is Kind.ROW:
                self.charge(ctx, "gpsimd" if native else "vector", 2.0)
            # two-tile arithmetic runs on VectorE (float32 math), 32-bit integers on GpSimd
            # (_native_int)
            ctx.out.append(P.TensorTensor(self.ref(ctx, dst), self.ref(ctx, a), self.ref(ctx, b),
                                          op, P.Eng.GPSIMD if native else P.Eng.VECTOR))
            return dst
        big, small, rev = (a, b, False) if rank[a.kind] > rank[b.kind] else (b, a, True)
        sv = small.expr
        if op is P.AluOp.SUBTRACT and not rev and sv is not None:
            op, small = P.AluOp.ADD, Val(Kind.SCALAR, expr=-sv)
        if self._int_const(op, big, small, want):
            # an int32 row and an integer constant: a GpSimd tensor_tensor with a constant
            # int32 tile is exact; VectorE's tensor_scalar converts the row to float32
            assert small.expr is not None
            c = self.const_row(ctx, small.expr, big.dtype)
            return self.binary(ctx, op, c if rev else big, big if rev else c, want)
        commutes = op in (P.AluOp.ADD, P.AluOp.MULTIPLY, P.AluOp.MAXIMUM, P.AluOp.MINIMUM)
        if big.kind is Kind.COL and small.kind is Kind.SCALAR \
                and op in (P.AluOp.MULTIPLY, P.AluOp.ADD):
            # column statistics math: on ScalarE, next to the reductions that feed it, so it
            # does not queue behind VectorE's row work (engines run in program order)
            neg = op is P.AluOp.MULTIPLY and small.expr == -1
            dst = self.dst_for(ctx, Kind.COL, (big,), want,
                               f"neg_{big.buf}" if neg else _OP_NAME[op])
            if op is P.AluOp.MULTIPLY:
                act = P.Activation(self.ref(ctx, dst), P.ActFunc.COPY, self.ref(ctx, big),
                                   P.Scalar(small.expr))
            else:
                act = P.Activation(self.ref(ctx, dst), P.ActFunc.COPY, self.ref(ctx, big),
                                   bias=self.ref(ctx, self.const_col(ctx, small.expr)))
            ctx.out.append(act)
            return dst
        if big.kind is Kind.ROW and op in (P.AluOp.MULTIPLY, P.AluOp.ADD):
            return self.affine_vals(ctx, big, small if op is P.AluOp.MULTIPLY else None,
                                    small if op is P.AluOp.ADD else None, want)
        dst = self.dst_for(ctx, big.kind, (big,), want, _OP_NAME[op])
        if big.kind is Kind.ROW:
            self.charge(ctx, "vector", 1.0)
        # subtract/maximum/minimum are VectorE-only ALU ops (S25 general/nki/api/
        # nki.api.shared.rst operator/engine table); tensor_scalar on GpSimd is documented for
        # rsqrt only (SH nki/api/nki/isa/__init__.py tensor_scalar, nki 0.3)
        node = P.TensorScalar(self.ref(ctx, dst), self.ref(ctx, big), op,
                              self.act_scale(ctx, small), rev and not commutes,
                              engine=P.Eng.VECTOR)
        last = ctx.out[-1] if ctx.out else None
        if isinstance(last, P.TensorScalar) and last.op1 is None and last.dst == node.src \
                and node.dst == node.src and last.engine is node.engine:
            # the previous one-op tensor_scalar wrote this tile in place: fold this op in as
            # its op1 ("performing one operator has the same performance cost as performing
            # two", SH nki/api/nki/isa/__init__.py tensor_scalar, nki 0.3)
            if big.kind is Kind.ROW:
                self.charge(ctx, "vector", -1.0)
            ctx.out[-1] = dataclasses.replace(last, op1=node.op0, operand1=node.operand0,
                                              reverse1=node.reverse0)
            return dst
        ctx.out.append(node)
        return dst

    def _native_int(self, op: P.AluOp, a: Val, b: Val, want: DType | None) -> bool:
        """Whether ``a op b`` of two int32 tiles runs on GpSimd in native integer arithmetic:
        VectorE converts arithmetic inputs to float32 (SH/S25 nki.api.shared.rst "Supported
        Math Operators"), exact for int32 only up to 2**24, while GpSimd "uses native integer
        arithmetic" when every input and output tile is int32/uint32 (SH
        nki/api/nki/isa/__init__.py tensor_tensor, nki 0.3). The classic API documents 32-bit
        integer add and multiply on GpSIMD only, subtract/max/min on VectorE only (S25
        general/nki/api/nki.api.shared.rst operator table and its note), so there a
        subtraction stays on VectorE. Both operands are SBUF tiles: PSUM holds only TensorE's
        float32 results."""
        ints = (DType.int32, DType.uint32)
        if a.dtype not in ints or b.dtype not in ints or (want is not None and want not in ints):
            return False
        if self.classic:
            return op in (P.AluOp.ADD, P.AluOp.MULTIPLY)
        return op in (P.AluOp.ADD, P.AluOp.SUBTRACT, P.AluOp.MULTIPLY, P.AluOp.MAXIMUM,
                      P.AluOp.MINIMUM)

    def _int_const(self, op: P.AluOp, big: Val, small: Val, want: DType | None) -> bool:
        """Whether ``big op constant`` runs as a native-integer GpSimd tensor_tensor
        (:meth:`_native_int`) against a memset int32 tile: ``big`` an int32 row and the constant
        an integer of magnitude at most 2**24 (memset documents no conversion rule for its
        constant, SH nki/api/nki/isa/__init__.py memset, nki 0.3; 2**24 is exact either way)."""
        v = small.expr
        if big.kind is not Kind.ROW or small.kind is not Kind.SCALAR or v is None \
                or not v.is_Integer or abs(int(v)) > FP32_EXACT_INT:
            return False
        return self._native_int(op, big, Val(Kind.ROW, buf=big.buf, dtype=big.dtype), want)

    def const_row(self, ctx: TileCtx, value: sympy.Expr, dtype: DType) -> Val:
        """A whole row tile of ``dtype`` filled with ``value`` (hoisted when the statement
        allows it, made once per value; the engine is the compiler's choice, as for
        :meth:`const_col`)."""
        key = ("const_row", value, dtype)
        if key in ctx.cache:
            return ctx.cache[key]
        out = ctx.hoist if (ctx.hoist is not None and ctx.hoist_ok) else ctx.out
        name = self.namer.fresh("const")
        out.append(P.Alloc(name, (sympy.Integer(PMAX), ctx.falloc), dtype, P.Mem.SBUF))
        out.append(P.Memset(P.Ref(name, (P.Slice(ZERO, sympy.Integer(PMAX)),
                                         P.Slice(ZERO, ctx.falloc))), value))
        v = Val(Kind.ROW, buf=name, dtype=dtype, temp=False)
        ctx.cache[key] = v
        return v

    def reciprocal(self, ctx: TileCtx, v: Val) -> Val:
        """``1 / v`` of a column or row tile (a scalar folds at trace time).

        A column goes to VectorE ``nisa.reciprocal`` (the more precise engine; one element per
        partition costs its minimum initiation interval either way); a row goes to ScalarE
        ``activation(reciprocal)``, max(MIN_II, N) cycles instead of VectorE's max(MIN_II, 8N)
        (S25 general/nki/api/nki.api.shared.rst "Engine Selection"; SH
        nki/api/nki/isa/__init__.py reciprocal, nki 0.3).
        """
        if v.kind is Kind.SCALAR:
            assert v.expr is not None
            return Val(Kind.SCALAR, expr=1 / v.expr)
        dst = self.dst_for(ctx, v.kind, (v,), None, f"inv_{v.buf}") if v.dtype == F32 \
            else self.tile(ctx, v.kind, F32, f"inv_{v.buf}")
        if v.kind is Kind.ROW:
            self.charge(ctx, "scalar", 1.0)
            ctx.out.append(P.Activation(self.ref(ctx, dst), P.ActFunc.RECIPROCAL,
                                        self.ref(ctx, v)))
        else:
            ctx.out.append(P.Reciprocal(self.ref(ctx, dst), self.ref(ctx, v)))
        return dst

    # f(scale * x + bias) -> one activation
    def _decompose(self, ctx: TileCtx, e: Expr):
        """``e = scale * core + bias`` with scale, bias uniform along the free axis."""
        def uniform(x: Expr) -> bool:
            return not self.depends_on(x, ctx.f)
        if isinstance(e, BinOp):
            if e.op in (BinOpKind.ADD, BinOpKind.SUB) and uniform(e.rhs) \
                    and not uniform(e.lhs):
                core, sc, bi = self._decompose(ctx, e.lhs)
                r = e.rhs if e.op is BinOpKind.ADD else Neg(e.rhs)
                return core, sc, r if bi is None else BinOp(BinOpKind.ADD, bi, r)
            if e.op is BinOpKind.ADD and uniform(e.lhs) and not uniform(e.rhs):
                core, sc, bi = self._decompose(ctx, e.rhs)
                return core, sc, e.lhs if bi is None else BinOp(BinOpKind.ADD, e.lhs, bi)
            if e.op in (BinOpKind.MUL, BinOpKind.DIV) and uniform(e.rhs) \
                    and not uniform(e.lhs):
                core, sc, bi = self._decompose(ctx, e.lhs)
                f = e.rhs if e.op is BinOpKind.MUL else BinOp(BinOpKind.DIV, Const(1.0), e.rhs)
                sc2 = f if sc is None else BinOp(BinOpKind.MUL, sc, f)
                bi2 = None if bi is None else BinOp(BinOpKind.MUL, bi, f)
                return core, sc2, bi2
            if e.op is BinOpKind.MUL and uniform(e.lhs) and not uniform(e.rhs):
                core, sc, bi = self._decompose(ctx, e.rhs)
                sc2 = e.lhs if sc is None else BinOp(BinOpKind.MUL, e.lhs, sc)
                bi2 = None if bi is None else BinOp(BinOpKind.MUL, e.lhs, bi)
                return core, sc2, bi2
        return e, None, None

    def _rows_first(self, ctx: TileCtx, e: BinOp) -> BinOp:
        """Reorder a product so row factors multiply first and uniform factors last, which
        lets ``(rows) * uniform`` fuse into one instruction (``x * r * g`` -> ``(x * g) * r``)."""
        def flat(x: Expr) -> list[Expr]:
            if isinstance(x, BinOp) and x.op is BinOpKind.MUL:
                return flat(x.lhs) + flat(x.rhs)
            return [x]
        fs = flat(e)
        rows = [f for f in fs if self.depends_on(f, ctx.f)]
        unis = [f for f in fs if not self.depends_on(f, ctx.f)]
        if not rows or not unis or fs == rows + unis:
            return e
        out = rows[0]
        for f in rows[1:] + unis:
            out = BinOp(BinOpKind.MUL, out, f)
        assert isinstance(out, BinOp)
        return out

    def _try_stt(self, ctx: TileCtx, e: BinOp, want: DType | None) -> Val | None:
        """``(x op0 u) op1 y`` with x, y rows and u uniform -> one scalar_tensor_tensor."""
        op1 = ALU_OF_BINOP[e.op]
        if op1 is P.AluOp.DIVIDE:
            return None
        pairs = [(e.lhs, e.rhs)]
        if op1 in (P.AluOp.ADD, P.AluOp.MULTIPLY):
            pairs.append((e.rhs, e.lhs))
        cands = []
        for s, other in pairs:
            cands.append((s, other))
            if isinstance(s, BinOp) and s.op is BinOpKind.MUL:
                r = self._rows_first(ctx, s)
                if r != s:
                    cands.append((r, other))
        for s, other in cands:
            if not isinstance(s, BinOp) or s.op is BinOpKind.DIV:
                continue
            x, u = s.lhs, s.rhs
            if s.op is not BinOpKind.SUB and not self.depends_on(x, ctx.f):
                x, u = u, x
            if not self.depends_on(x, ctx.f) or self.depends_on(u, ctx.f):
                continue
            # a 16-bit result keeps its row intermediates 16-bit, so the split below can use
            # the VectorE 16-bit modes (fp32 results keep fp32 intermediates) -- only in a
            # product chain: there a rounding of x stays a relative error of the result, which
            # the tolerance's storage flips cover; a rounded term of a sum or difference is an
            # absolute error that cancellation makes arbitrarily large relative to the result
            # (bf16 layernorm `... * gamma + beta` missed the reference by many ulps)
            prod16 = want is not None and want.itemsize == 2 and \
                ALU_OF_BINOP[s.op] is P.AluOp.MULTIPLY and op1 is P.AluOp.MULTIPLY
            xv = self.compile(ctx, x, want if prod16 else None)
            uv = self.compile(ctx, u)
            ov = self.compile(ctx, other)
            if xv.kind is not Kind.ROW or ov.kind is not Kind.ROW:
                return self.binary(ctx, op1, self.binary(ctx, ALU_OF_BINOP[s.op], xv, uv, None),
                                   ov, want)
            if self._split_beats_stt(ALU_OF_BINOP[s.op], op1, (xv, ov), want):
                return self.binary(ctx, op1, self.binary(ctx, ALU_OF_BINOP[s.op], xv, uv, want),
                                   ov, want)
            dst = self.dst_for(ctx, Kind.ROW, (xv, ov), want, _OP_NAME[op1])
            self.charge(ctx, "vector", 2.0)
            ctx.out.append(P.ScalarTensorTensor(self.ref(ctx, dst), self.ref(ctx, xv),
                                                ALU_OF_BINOP[s.op], self.act_scale(ctx, uv), op1,
                                                self.ref(ctx, ov)))
            return dst
        return None

    def _split_beats_stt(self, op0: P.AluOp, op1: P.AluOp, rows: tuple[Val, ...],
                         want: DType | None) -> bool:
        """On a 16-bit row, ``scalar_tensor_tensor`` costs 2N VectorE cycles unless its ops are
        (subtract, multiply) (N); a ``tensor_scalar`` (N, 4x faster in the NC-v3 bf16 perf
        mode) plus a 16-bit ``tensor_tensor`` add/multiply (N, 2x faster on NC-v3) costs at most
        the same and less on trn2 (S25 general/nki/api/generated/nki.isa.scalar_tensor_tensor.rst
        and nki.isa.tensor_tensor.rst, SDK 2.25; SH trainium2_arch VectorE perf modes).
        Measured in the cost model, fused vs split, both dialects: rmsnorm D=2000 M=100 trn2
        11.24 / 9.99 us vs 8.74 / 7.49 us; on trn1 (no perf modes) the two forms are within
        1 % (rmsnorm 11.31 vs 11.40 us, residual_rmsnorm 10.72 vs 10.68 us current API), so
        the split stays on both targets."""
        if (op0, op1) == (P.AluOp.SUBTRACT, P.AluOp.MULTIPLY):
            return False
        if op1 is not P.AluOp.MULTIPLY:
            # the split rounds ``x op0 u`` to the 16-bit result dtype before op1: harmless
            # before a multiply (a relative error), not before an add or subtract, whose
            # cancellation turns it into an error of many ulps of the result
            return False
        return want is not None and want.itemsize == 2 \
            and all(v.dtype.itemsize == 2 for v in rows)

    def _uniform(self, ctx: TileCtx, e: Expr | None) -> Val | None:
        return None if e is None else self.compile(ctx, e)

    def affine(self, ctx: TileCtx, x: Val, sc: Expr | None, bi: Expr | None,
               want: DType | None) -> Val:
        """``dst = scale * x + bias`` for a row ``x``: ScalarE copy or one fused tensor_scalar."""
        return self.affine_vals(ctx, x, self._uniform(ctx, sc), self._uniform(ctx, bi), want)

    def affine_vals(self, ctx: TileCtx, x: Val, sv: Val | None, bv: Val | None,
                    want: DType | None) -> Val:
        """``dst = sv * x + bv`` (uniform ``sv``/``bv``) on the less loaded of ScalarE
        (``activation(copy, scale, bias)``) and VectorE (one ``tensor_scalar`` with
        multiply/add). GpSimd is not a candidate: its tensor_scalar is documented for rsqrt
        only (SH nki/api/nki/isa/__init__.py tensor_scalar, nki 0.3)."""
        done = self._int_affine(ctx, x, sv, bv, want)
        if done is not None:
            return done
        if any(v is not None and v.kind is Kind.ROW for v in (sv, bv)):
            # a "uniform" factor that compiled to a whole row (an index condition such as
            # (m < 3) lowers to an affine_select tile): no per-partition scale/bias, two ops
            if sv is not None:
                x = self.binary(ctx, P.AluOp.MULTIPLY, x, sv, None if bv is not None else want)
            return x if bv is None else self.binary(ctx, P.AluOp.ADD, x, bv, want)
        eng = self.pick(ctx, {"scalar": 1.0,
                              "vector": 1.0 / self._ts_speedup(x.dtype, want or F32)})
        dst = self.dst_for(ctx, Kind.ROW, (x,), want, "scaled")
        if eng == "scalar":
            scale: P.Operand = P.Scalar(sympy.Float(1.0)) if sv is None else \
                self.act_scale(ctx, sv)
            bias = None
            if bv is not None:
                if bv.kind is Kind.SCALAR:
                    bv = self.const_col(ctx, bv.expr)
                bias = self.act_bias(ctx, bv)
            ctx.out.append(P.Activation(self.ref(ctx, dst), P.ActFunc.COPY, self.ref(ctx, x),
                                        scale, bias))
            return dst
        ops: list[tuple[P.AluOp, P.Operand]] = []
        if sv is not None:
            ops.append((P.AluOp.MULTIPLY, self.act_scale(ctx, sv)))
        if bv is not None:
            ops.append((P.AluOp.ADD, self.act_scale(ctx, bv)))
        (op0, o0), rest = ops[0], ops[1:]
        ctx.out.append(P.TensorScalar(self.ref(ctx, dst), self.ref(ctx, x), op0, o0,
                                      op1=rest[0][0] if rest else None,
                                      operand1=rest[0][1] if rest else None, engine=P.Eng(eng)))
        return dst

    def _int_affine(self, ctx: TileCtx, x: Val, sv: Val | None, bv: Val | None,
                    want: DType | None) -> Val | None:
        """``x * sv + bv`` for an int32 row scaled and shifted by integer constants: exact
        GpSimd tensor_tensors against constant int32 tiles (binary / _int_const), not a float32
        ScalarE copy; None when that does not apply."""
        if (sv is None and bv is None) or not all(
                v is None or self._int_const(op, x, v, want)
                for op, v in ((P.AluOp.MULTIPLY, sv), (P.AluOp.ADD, bv))):
            return None
        if sv is not None:
            x = self.binary(ctx, P.AluOp.MULTIPLY, x, sv, want if bv is None else None)
        return x if bv is None else self.binary(ctx, P.AluOp.ADD, x, bv, want)

    def _apply_affine_slow(self, ctx: TileCtx, x: Val, sc: Expr | None, bi: Expr | None,
                           want: DType | None) -> Val:
        if sc is not None:
            x = self.binary(ctx, P.AluOp.MULTIPLY, x, self.compile(ctx, sc), None)
        if bi is not None:
            x = self.binary(ctx, P.AluOp.ADD, x, self.compile(ctx, bi), None)
        return x

    def activation(self, ctx: TileCtx, e: Call, want: DType | None) -> Val:
        func = ACT_OF_FUNC[e.func]
        core, sc, bi = self._decompose(ctx, e.args[0])
        if bi is not None and func is P.ActFunc.RECIPROCAL and self.target.nc_version < 3:
            # NeuronCore-v2's reciprocal activation takes no bias (SH nki/api/nki.isa.activation
            # and nki-engine-sel, nki 0.3; S25 general/nki/api/generated/nki.isa.activation.rst):
            # the shifted argument is computed first, the activation gets no scale or bias
            core, sc, bi = e.args[0], None, None
        x = self.compile(ctx, core)
        if x.kind is Kind.SCALAR:           # scalar core with tile scale/bias: no fusion
            x = self.compile(ctx, e.args[0])
            if x.kind is Kind.SCALAR:
                raise Unsupported(f"function {e.func.value} of a constant")
            sc = bi = None
        scale: P.Operand = P.Scalar(sympy.Float(1.0))
        sv = None if sc is None else self.compile(ctx, sc)
        bv = None if bi is None else self.compile(ctx, bi)
        done = self._int_affine(ctx, x, sv, bv, want)
        if done is not None:
            return done
        if any(v is not None and v.kind is Kind.ROW for v in (sv, bv)):
            # a "uniform" scale/bias that compiled to a whole row (an index condition): the
            # argument is computed in full, the activation takes no scale/bias
            x = self.compile(ctx, e.args[0])
            sv = bv = None
        if sv is not None:
            scale = self.act_scale(ctx, sv)
        bias = None
        if bv is not None:
            if bv.kind is Kind.SCALAR:
                bv = self.const_col(ctx, bv.expr)
            bias = self.act_bias(ctx, bv)
        dst = self.dst_for(ctx, x.kind, (x,), want, _ACT_NAME.get(func, func.value))
        if x.kind is Kind.ROW:
            self.charge(ctx, "scalar", 1.0)
        ctx.out.append(P.Activation(self.ref(ctx, dst), func, self.ref(ctx, x), scale, bias))
        return dst

    def const_col(self, ctx: TileCtx, value: sympy.Expr) -> Val:
        key = ("const", value)
        if key in ctx.cache:
            return ctx.cache[key]
        out = ctx.hoist if (ctx.hoist is not None and ctx.hoist_ok
                            and not ctx.hoist_rows_only) else ctx.out
        name = self.namer.fresh("const")
        out.append(P.Alloc(name, (sympy.Integer(PMAX), ONE), F32, P.Mem.SBUF))
        out.append(P.Memset(P.Ref(name, (P.Slice(ZERO, sympy.Integer(PMAX)),
                                         P.Slice(ZERO, ONE))), value))
        v = Val(Kind.COL, buf=name, dtype=F32, temp=False)
        ctx.cache[key] = v
        return v

    def materialize(self, ctx: TileCtx, v: Val, kind: Kind, dtype: DType) -> Val:
        """Write ``v`` into a fresh tile of ``kind`` and ``dtype`` (broadcasting if needed)."""
        dst = self.tile(ctx, kind, dtype, "out")
        self.write_into(ctx, dst, v)
        return dst

    def write_into(self, ctx: TileCtx, dst: Val, v: Val) -> None:
        """Write ``v`` into the existing tile ``dst`` (broadcasting if needed)."""
        kind = dst.kind
        if v.kind is Kind.SCALAR:
            ctx.out.append(P.Memset(self.ref(ctx, dst), v.expr))
        elif v.kind is kind and kind is Kind.ROW and not (dst.dtype.is_integer and
                                                          dst.dtype == v.dtype) and \
                self.pick(ctx, {"scalar": 1.0, "vector": 1.0}) == "scalar":
            # an integer copy stays off ScalarE, which copies through float32 (int32 beyond
            # 2**24 rounds: S25 general/nki/api/nki/isa/__init__.py tensor_copy / activation,
            # SDK 2.25); a same-dtype VectorE copy is bit-accurate (review 7 R7-3)
            ctx.out.append(P.Activation(self.ref(ctx, dst), P.ActFunc.COPY, self.ref(ctx, v)))
        elif v.kind is kind:
            # ... and names VectorE: with no engine the compiler may pick ScalarE (S25
            # general/nki/api/nki/isa/__init__.py tensor_copy engine=unknown, SDK 2.25), which
            # on NeuronCore-v2 copies through float32 (review 15 R15-1)
            same_int = dst.dtype.is_integer and dst.dtype == v.dtype
            ctx.out.append(P.TensorCopy(self.ref(ctx, dst), self.ref(ctx, v),
                                        P.Eng.VECTOR if same_int else None))
        else:   # column broadcast along the free axis: 0 * x + col
            ctx.out.append(P.Memset(self.ref(ctx, dst), ZERO))
            ctx.out.append(P.TensorScalar(self.ref(ctx, dst), self.ref(ctx, dst), P.AluOp.ADD,
                                          self.act_scale(ctx, v)))

    # ---- reductions ------------------------------------------------------------------
    def reduce(self, ctx: TileCtx, e: Reduce, want: DType | None) -> Val:
        if len(e.indices) > 1:
            first = _contiguous_index(e)
            rest = tuple(i for i in e.indices if i != first)
            inner = Reduce(e.op if e.op is not ReduceKind.MEAN else ReduceKind.SUM, e.body,
                           rest)
            outer = Reduce(e.op, inner, (first,))
            if e.op is ReduceKind.MEAN:
                v = self.reduce(ctx, outer, None)
                n = sympy.Integer(1)
                for j in rest:
                    n = n * self.extents[j]
                return self.binary(ctx, P.AluOp.MULTIPLY, v, Val(Kind.SCALAR, expr=1 / n),
                                   want)
            return self.reduce(ctx, outer, want)
        j = e.indices[0]
        op = ALU_OF_REDUCE[e.op]
        ext = self.extents[j]
        if j == ctx.p or j == ctx.f:
            raise Unsupported(f"reduction over {j}, which is already placed on the tile")
        if not self.depends_on(e.body, ctx.f) and ctx.chunked:
            return self.chunked_reduce(ctx, e, op, want)
        if not self.depends_on(e.body, ctx.f):
            # the body is a function of (p, j): evaluate it as rows over j, reduce the free axis
            # (fvar None: the reduction's own row starts at 0, whatever free-chunk loop
            # encloses the statement; the classic divided/periodic reads place their periods
            # by fvar, fuzz13)
            sub = ctx.sub(f=j, f0=ZERO, fsz=ext, falloc=ext, fvar=None)
            body = self.compile(sub, e.body)
            if body.kind is Kind.SCALAR:
                v = self._scalar_reduce(body.expr, op, ext, e.op)
                return Val(Kind.SCALAR, expr=v)
            if body.kind is Kind.COL:
                raise Unsupported(f"reduction over {j} of a value that does not depend on it")
            dst = self._reduce_row(ctx, sub, body, op, e.op)
            if e.op is ReduceKind.MEAN:
                return self.binary(ctx, P.AluOp.MULTIPLY, dst, Val(Kind.SCALAR, expr=1 / ext),
                                   want)
            return dst
        return self.loop_reduce(ctx, e, op, want)

    def chunked_reduce(self, ctx: TileCtx, e: Reduce, op: P.AluOp, want: DType | None) -> Val:
        """Reduce over j in chunks of REDUCE_CHUNK elements (rows of any length fit on chip):
        each chunk is reduced to a column and folded into an accumulator column."""
        j = e.indices[0]
        ext = self.extents[j]
        acc = self.tile(ctx, Kind.COL, F32, "acc")
        ctx.out.append(P.Memset(self.ref(ctx, acc), REDUCE_INIT[op]))
        jc, j0, jsz = (self.namer.fresh(f"{j}c"), self.namer.fresh(f"{j}0"),
                       self.namer.fresh(f"{j}sz"))
        sym = lambda n: sympy.Symbol(n, integer=True, nonnegative=True)  # noqa: E731
        width = sympy.Integer(REDUCE_CHUNK)
        c = P.Const("REDUCE_CHUNK", REDUCE_CHUNK, "elements per partition reduced per step: "
                    "rows of any length fit on chip", None, (jc, j0, jsz))
        if c not in self.declared:
            self.declared.append(c)
        body_out: list = [P.Let(j0, sym(jc) * REDUCE_CHUNK),
                          P.Let(jsz, Min(width, ext - sym(j0)))]
        # fvar: the chunk loop index (f0 = REDUCE_CHUNK * jc), by which the classic divided
        # and periodic reads of j place their periods (_classic_periods; their masks name it,
        # so the classic renderer makes the loop static: render._trace_time_loop_vars).
        # fuzz13: the enclosing statement's fvar was inherited and placed them wrongly
        sub = ctx.sub(f=j, f0=sym(j0), fsz=sym(jsz), falloc=width, out=body_out, cache={},
                      hoist_ok=False, fvar=sym(jc))
        body = self.compile(sub, e.body)
        if body.kind is not Kind.ROW:
            raise Unsupported(f"reduction over {j} of a value that does not depend on it")
        part = self._reduce_row(sub, sub, body, op, e.op)
        body_out.append(P.TensorTensor(self.ref(ctx, acc), self.ref(ctx, acc),
                                       self.ref(sub, part), op))
        ctx.out.append(P.Loop(jc, sympy.ceiling(ext / REDUCE_CHUNK), P.LoopKind.SEQUENTIAL,
                              tuple(body_out)))
        if e.op is ReduceKind.MEAN:
            return self.binary(ctx, P.AluOp.MULTIPLY, acc, Val(Kind.SCALAR, expr=1 / ext), want)
        return acc

    def _reduce_row(self, ctx: TileCtx, sub: TileCtx, body: Val, op: P.AluOp,
                    kind: ReduceKind) -> Val:
        """Reduce a row along the free axis into a new column.

        A sum whose body was just produced by a ScalarE activation rides on that instruction
        (``activation_reduce``); otherwise the sum goes to the less loaded of VectorE
        ``tensor_reduce`` and a ScalarE copy with reduction. Max/min of a stored 16-bit tile
        reduce in that dtype (exact, and VectorE's fast 16-bit path).
        """
        last = ctx.out[-1] if ctx.out else None
        if op is P.AluOp.ADD and isinstance(last, P.Activation) and last.reduce_res is None \
                and last.dst == self.ref(sub, body):
            dst = self.tile(ctx, Kind.COL, F32, "row_sum")
            ctx.out[-2:] = [ctx.out[-1], ctx.out[-2]]   # the column allocation first
            ctx.out[-1] = dataclasses.replace(last, reduce_res=self.ref(ctx, dst))
            users = [n for n in ctx.out if body.buf in P.names_used(n)]
            if body.temp and len(users) == 1:   # written and read by this activation only:
                for i, n in enumerate(ctx.out):  # the dead row needs only a 16-bit scratch
                    if isinstance(n, P.Alloc) and n.name == body.buf:
                        ctx.out[i] = dataclasses.replace(n, dtype=DType.bfloat16)
            return dst
        if op is P.AluOp.ADD and self.pick(ctx, {"scalar": 1.0, "vector": 1.0}) == "scalar":
            dst = self.tile(ctx, Kind.COL, F32, "row_sum")
            scratch = body if body.temp else self.tile(sub, Kind.ROW, DType.bfloat16, "scratch")
            ctx.out.append(P.Activation(self.ref(sub, scratch), P.ActFunc.COPY,
                                        self.ref(sub, body), reduce_res=self.ref(ctx, dst)))
            return dst
        if op is not P.AluOp.ADD:
            self.charge(ctx, "vector", 1.0)
        exact16 = op is not P.AluOp.ADD and body.dtype in (DType.bfloat16, DType.float16)
        dst = self.tile(ctx, Kind.COL, body.dtype if exact16 else F32, _REDUCE_NAME[op])
        ctx.out.append(P.TensorReduce(self.ref(ctx, dst), op, self.ref(sub, body)))
        return dst

    def _scalar_reduce(self, v: sympy.Expr, op: P.AluOp, ext: sympy.Expr,
                       kind: ReduceKind) -> sympy.Expr:
        if kind is ReduceKind.SUM:
            return v * ext
        return v

    def loop_reduce(self, ctx: TileCtx, e: Reduce, op: P.AluOp, want: DType | None) -> Val:
        """Accumulate ``e.body`` over a sequential loop of its index (body depends on f)."""
        j = e.indices[0]
        ext = self.extents[j]
        from nkigen.codegen import coalesce
        if sympy.sympify(ext).is_Integer and 1 <= int(ext) <= coalesce.UNROLL_MAX:
            return self.unrolled_reduce(ctx, e, op, want)
        acc = self.tile(ctx, Kind.ROW if ctx.f else Kind.COL, F32, "acc")
        ctx.out.append(P.Memset(self.ref(ctx, acc), REDUCE_INIT[op]))
        var = self.namer.fresh(f"i_{j}")
        env = dict(ctx.env)
        env[j] = sympy.Symbol(var, integer=True, nonnegative=True)
        body_out: list = []
        # a column read per row tile that does not name j (the ids of a gather, eid[t] of
        # y[t, n] += x[t, k] * w[eid[t], k, n]) is loaded once before the loop (row_hoist,
        # the enclosing body); one that names it stays in the loop (looped; fuzz9: ids[b, l]
        # of an embedding bag was loaded once per row tile, before the loop over l, reading
        # its variable unbound)
        sub = ctx.sub(env=env, out=body_out, cache={}, hoist_ok=False, row_hoist=ctx.out,
                      looped=ctx.looped | {j})
        self._row_blocks(ctx, sub, e, j, env[j])
        v = self.compile(sub, e.body)
        if v.kind is Kind.SCALAR or (v.kind is Kind.COL and acc.kind is Kind.ROW):
            v = self.materialize(sub, v, acc.kind, F32)
        body_out.append(P.TensorTensor(self.ref(ctx, acc), self.ref(ctx, acc), self.ref(sub, v),
                                       op))
        ctx.out.append(P.Loop(var, ext, P.LoopKind.SEQUENTIAL, tuple(body_out)))
        res = Val(acc.kind, buf=acc.buf, dtype=F32, temp=True)
        if e.op is ReduceKind.MEAN:
            return self.binary(ctx, P.AluOp.MULTIPLY, res, Val(Kind.SCALAR, expr=1 / ext), want)
        return res

    def _row_blocks(self, ctx: TileCtx, sub: TileCtx, e: Reduce, j: str,
                    jsym: sympy.Expr) -> None:
        """A per-row column the loop over ``j`` reads at ``j`` itself, ``x[t, k]`` of the
        gathered-weight contraction ``y[t, n] = sum(x[t, k] * w[eid[t], k, n], k)``: one DMA of
        the row block ``x[p0:p0 + psz, 0:K]`` before the loop, and each iteration reads its
        column ``blk[0:psz, i_k:i_k + 1]`` (review 17 R17-3: one 4-byte DMA a partition per
        ``k`` was half the kernel's DMAs; T 130, K 129, N 40 nki trn2 65.01 -> 50.76 us
        modelled). Current API only, where ``i_k`` is a trace-time int and the column a plain
        slice (SH nki/api/nki/language/__init__.py NkiTensor ``__getitem__``, nki 0.3); the
        block is at most ``ROW_BLOCK_BYTES`` a partition at the largest ``K``."""
        if self.classic:
            return
        ext = sympy.sympify(self.extents[j])
        top = size_max(self.spec, ext)
        jidx = index_symbol(j)
        # the ids of a gather keep their own (P, 1) tile: SH dma_copy "Indirect addressing"
        # shows ``vector_offset`` as "an SBUF tensor of shape (P, 1)", and nki-library copies a
        # column of a wider index tile into one before the DMA (nkilib core/moe/moe_cte/
        # bwmm_shard_on_I.py, ``tmp_idx``); an embedding bag's ids[b, l] read at l keeps one
        # id column a DMA
        ids = {x for acc in accesses(e.body) for _, x in acc.indirect}
        for a in accesses(e.body):
            if a in ids or a.indirect or a.tensor in ctx.bound or not a.indices or \
                    sympy.sympify(a.indices[-1]) != jidx or \
                    any(jidx in sympy.sympify(x).free_symbols for x in a.indices[:-1]):
                continue
            t = self.spec.tensor(a.tensor)
            if top is None or top * t.dtype.itemsize > ROW_BLOCK_BYTES:
                continue
            src, kind, per_row = self.hbm_view(sub, a.tensor, a.indices)
            key = (src, kind, ONE)
            if kind is not Kind.COL or not per_row or key in sub.cache:
                continue
            bctx = ctx.sub(f=j, f0=ZERO, fsz=ext, falloc=ext, hoist_ok=False, cache={},
                           row_hoist=None)
            blk = self.load(bctx, a)
            if blk.kind is Kind.ROW and blk.buf is not None and blk.step == 1:
                sub.cache[key] = Val(Kind.COL, buf=blk.buf, dtype=blk.dtype,
                                     off=blk.off + jsym)

    def unrolled_reduce(self, ctx: TileCtx, e: Reduce, op: P.AluOp, want: DType | None) -> Val:
        """A reduction over a short constant extent (a pooling window) as a chain of ``op``
        over its terms: no accumulator memset and no loop, and the terms' loads share one
        contiguous tile when they are siblings (:mod:`nkigen.codegen.coalesce`)."""
        j = e.indices[0]
        n = int(sympy.sympify(self.extents[j]))
        acc: Val | None = None
        for k in range(n):
            env = dict(ctx.env)
            env[j] = sympy.Integer(k)
            v = self.compile(ctx.sub(env=env), e.body)
            acc = v if acc is None else self.binary(ctx, op, acc, v, None)
        assert acc is not None
        if e.op is ReduceKind.MEAN:
            inv = Val(Kind.SCALAR, expr=1 / sympy.Integer(n))
            return self.binary(ctx, P.AluOp.MULTIPLY, acc, inv, want)
        if acc.kind is Kind.SCALAR or (want is not None and acc.dtype != want) or not acc.temp:
            acc = self.materialize(ctx, acc, Kind.ROW if ctx.f else Kind.COL, want or F32)
        return acc


def _contiguous_index(e: Reduce) -> str:
    """The index of a several-index reduction that goes on the free axis (the outer
    reduction; the others become sequential loops inside it): the one that is the last,
    contiguous, dimension of the most accesses of the body, else the first written. With
    ``min(x[m, a, b], a, b)`` taking ``a`` every tile loaded ``x[p, 0:A, i_b]``, one element
    per DMA descriptor: 134.06 us modelled at M=129, A=5, B=33 on trn2, against 8.09 us for
    the same reduction written ``min(x[m, a, b], b, a)`` (fuzz7)."""
    def score(j: str) -> int:
        return sum(1 for a in accesses(e.body) if a.indices and
                   j in {s.name for s in sympy.sympify(a.indices[-1]).free_symbols})
    best = max(score(j) for j in e.indices)
    return next(j for j in e.indices if score(j) == best)
