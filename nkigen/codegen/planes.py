"""Strided reads of 2-D planes (pooling over ``[C, H, W]``) with 2-D free tiles.

Stage: plan (Statement -> plan nodes). Input: an element-wise statement

    y[p, i, j] = f(x[p, A * i + a, B * j + b], ...)

whose right-hand side reads its tensors with constant strides ``A, B`` and constant tap offsets
``a, b`` (window indices of short reductions are unrolled), built from ``+ - *``, division by a
number, negation, ``maximum``/``minimum`` and ``sum``/``mean``/``max``/``min`` over constant
extents, at least one read being strided (``A > 1`` or ``B > 1``). Output: per partition tile
of ``p`` (128 channels) and block of ``nb`` output rows, one contiguous DMA per input tensor
(``A * (nb - 1) + taps`` whole input rows per channel), VectorE / ScalarE instructions on 3-D
strided SBUF views ``blk[0:psz, a:..:A, b:..:B]`` (``nb x OW`` elements each), and one
contiguous store of ``nb * OW`` elements per channel. The row lowering tiles one output row at a
time (a store of ``OW`` elements per channel per tile); here the whole plane block moves at
once (issue 14's 2x2 pooling cliff).

Docs: on-chip operands may be strided along their free dimensions, multi-dimensional free
indices included (S25 general/nki/programming_model.rst "Advanced Tensor Indexing": case 1 even
and odd columns, case 3 the pooling window over ``[P, H/p, p, W/p, p]``); S29
nki/api/nki/isa/__init__.py ``tensor_tensor`` / ``tensor_scalar`` / ``activation`` take such
views; DMA buffers are contiguous runs whose overheads large payloads amortize (S25
general/nki/arch/trainium_inferentia2_arch.rst "Data movement between HBM and SBUF using DMAs").
"""

from __future__ import annotations

import sympy

from nkigen.analysis.sizes import at_max
from nkigen.codegen import plan as P
from nkigen.codegen.coalesce import UNROLL_MAX
from nkigen.codegen.context import Build
from nkigen.codegen.layout import best_partition
from nkigen.codegen.names import checked
from nkigen.codegen.symcache import Max, Min
from nkigen.codegen.tilexpr import (
    ACT_OF_FUNC,
    ALU_OF_BINOP,
    ALU_OF_FUNC,
    ALU_OF_REDUCE,
    Compiler,
)
from nkigen.dtypes import DType
from nkigen.hw import PMAX
from nkigen.ir import (
    Access,
    AssignOp,
    BinOp,
    BinOpKind,
    Call,
    Expr,
    Neg,
    Reduce,
    ReduceKind,
    Statement,
    index_symbol,
)

ZERO, ONE = sympy.Integer(0), sympy.Integer(1)
F32 = DType.float32
MAX_PLANE = 4096              # output elements per partition of one block (nb x OW)
BLOCK_ELEMS = 1024            # output elements per partition a block aims at (nb = this // OW)
BLOCK_BYTES = 64 * 1024       # per-partition bytes of one block's input tiles at the max sizes
COL_MAX = 512                 # columns of a per-channel operand loaded whole (k[c, r, s]: 9)


class _No(Exception):
    """The statement is outside this lowering's class."""


def try_lower(b: Build, st: Statement) -> tuple[list, P.StagePlan] | None:
    if len(st.lhs) != 3 or (st.op is AssignOp.ACCUMULATE and b.written_before(st)):
        return None
    if st.op is AssignOp.ASSIGN and st.sum_indices:
        return None
    p, i, j = st.lhs
    if best_partition(b.spec, b.extents, st.lhs, st.lhs[1]) != p:
        return None
    try:
        return _Lower(b, st).run()
    except _No:
        return None


class _Lower:
    def __init__(self, b: Build, st: Statement) -> None:
        self.b, self.st = b, st
        self.p, self.i, self.j = st.lhs
        self.c = Compiler(b.spec, b.namer, b.extents, st, b.target, classic=b.classic)
        # ``+=`` sums over the indices only the right-hand side has (the einsum rule)
        self.rhs: Expr = Reduce(ReduceKind.SUM, st.rhs, tuple(st.sum_indices)) \
            if st.op is AssignOp.ACCUMULATE and st.sum_indices else st.rhs
        self.taps: dict[str, list[tuple[int, int]]] = {}   # tensor -> (row off, col off)
        self.strides: dict[str, tuple[int, int]] = {}
        self.out: list = []
        self.tiles: dict[str, str] = {}                    # tensor -> block tile name
        self.cols: dict[str, tuple[sympy.Expr, int]] = {}  # tensor -> (row step, columns)
        self.col_tiles: dict[str, str] = {}                # tensor -> column tile name

    # ---- analysis ---------------------------------------------------------------------
    def _scan(self, e: Expr, env: dict[str, int]) -> None:
        """Collect every access's stride and tap offsets (reductions unrolled)."""
        if self.c.scalar_of(e) is not None:
            return
        if isinstance(e, Access):
            if self._col(e, env) is None:
                self._access(e, env)
        elif isinstance(e, BinOp):
            if e.op is BinOpKind.DIV and self.c.scalar_of(e.rhs) is None:
                raise _No
            self._scan(e.lhs, env)
            self._scan(e.rhs, env)
        elif isinstance(e, Neg):
            self._scan(e.operand, env)
        elif isinstance(e, Call) and (e.func in ALU_OF_FUNC
                                      or (e.func in ACT_OF_FUNC and len(e.args) == 1)):
            for a in e.args:
                self._scan(a, env)
        elif isinstance(e, Reduce) and e.op in ALU_OF_REDUCE:
            for vals in self._unroll(e):
                self._scan(e.body, {**env, **vals})
        else:
            raise _No

    def _unroll(self, e: Reduce) -> list[dict[str, int]]:
        out: list[dict[str, int]] = [{}]
        for k in e.indices:
            ext = sympy.sympify(self.b.extents[k])
            if not ext.is_Integer or not 1 <= int(ext) <= UNROLL_MAX:
                raise _No
            out = [{**d, k: v} for d in out for v in range(int(ext))]
        return out

    def _col(self, a: Access, env: dict[str, int]) -> tuple[str, int] | None:
        """``(tensor, column)`` of a per-channel read ``k[p, r, s]`` whose other indices are
        numbers once the taps are unrolled (a depthwise filter tap), else None. The tensor's
        ``[psz, columns]`` rows are loaded once per channel tile (one contiguous DMA) and the
        tap is the column ``[psz, 1]`` operand of an instruction: SH nki/api/nki/isa/__init__.py
        (nki 0.3): ``tensor_scalar`` takes an operand tile with one element per partition,
        ``activation`` a scale vector of the same shape; S25 general/nki/api/nki/isa/__init__.py
        (SDK 2.25), the same parameters of ``tensor_scalar`` and ``activation``."""
        t = self.b.spec.tensor(a.tensor)
        if a.indirect or t.role.value != "input" or not a.indices:
            return None
        subs = {index_symbol(k): v for k, v in env.items()}
        d = [sympy.expand(sympy.sympify(e).subs(subs)) for e in a.indices]
        shape = [sympy.sympify(x) for x in t.shape]
        if d[0] != index_symbol(self.p) or not all(x.is_Integer for x in d[1:]) \
                or not all(x.is_Integer for x in shape[1:]):
            return None
        ncols = 1
        for x in shape[1:]:
            ncols *= int(x)
        if ncols > COL_MAX:
            return None
        col = 0
        for x, n in zip(d[1:], shape[1:]):
            if not 0 <= int(x) < int(n):
                return None
            col = col * int(n) + int(x)
        self.cols[a.tensor] = (sympy.Integer(ncols), ncols)
        return a.tensor, col

    def _access(self, a: Access, env: dict[str, int]) -> tuple[str, int, int]:
        t = self.b.spec.tensor(a.tensor)
        if a.indirect or t.role.value != "input" or len(a.indices) != 3:
            raise _No
        ps, is_, js = (index_symbol(x) for x in (self.p, self.i, self.j))
        subs = {index_symbol(k): v for k, v in env.items()}
        d0, d1, d2 = (sympy.expand(sympy.sympify(e).subs(subs)) for e in a.indices)
        if d0 != ps:
            raise _No
        A, B = d1.coeff(is_), d2.coeff(js)
        r, s = sympy.expand(d1 - A * is_), sympy.expand(d2 - B * js)
        if not all(x.is_Integer for x in (A, B, r, s)) or int(A) < 1 or int(B) < 1 \
                or int(r) < 0 or int(s) < 0:
            raise _No
        st = (int(A), int(B))
        if self.strides.setdefault(a.tensor, st) != st:
            raise _No
        tap = (int(r), int(s))
        if tap not in self.taps.setdefault(a.tensor, []):
            self.taps[a.tensor].append(tap)
        return a.tensor, int(r), int(s)

    # ---- lowering ---------------------------------------------------------------------
    def run(self) -> tuple[list, P.StagePlan]:
        b, n, S = self.b, self.b.namer, self.b.sym
        self._scan(self.rhs, {})
        if not self.taps or (all(st == (1, 1) for st in self.strides.values())
                             and all(len({r for r, _ in tp}) < 2 for tp in self.taps.values())):
            # no strided read and no tensor read at two row offsets (a 3 x 3 window): the
            # row lowering is as good; with row taps it reloads every input row per tap
            raise _No
        ext = b.extents
        OH, OW = ext[self.i], ext[self.j]
        ow_max = at_max(b.spec, sympy.sympify(OW))
        if ow_max is None or ow_max > MAX_PLANE:
            raise _No
        nb_n = n.fresh("nb")
        NB = S(nb_n)
        # input rows per block for each tensor: A * (nb - 1) + max row tap + 1, whole rows
        rows_of = {t: self.strides[t][0] * (NB - 1) + max(r for r, _ in taps) + 1
                   for t, taps in self.taps.items()}
        width_of = {t: sympy.sympify(b.spec.tensor(t).shape[2]) for t in self.taps}
        worst = sum((at_max(b.spec, sympy.expand((self.strides[t][0] + max(r for r, _ in tp) + 1)
                                                  * width_of[t])) or 10 ** 9)
                    * b.spec.tensor(t).dtype.itemsize for t, tp in self.taps.items())
        if worst > BLOCK_BYTES:
            raise _No
        pt, p0, psz = n.fresh(f"{self.p}t"), n.fresh(f"{self.p}0"), n.fresh(f"{self.p}sz")
        ib, i0, isz = n.fresh(f"{self.i}b"), n.fresh(f"{self.i}0"), n.fresh(f"{self.i}sz")
        # the tile size and block target by name (render.consts; pmax: S25
        # general/nki/api/nki.language.rst "tile_size")
        b.const("TILE_P", PMAX, "channels per tile: one per partition", "pmax", (pt, p0, psz))
        b.const("BLOCK_ELEMS", BLOCK_ELEMS, "output elements per partition a block of rows aims "
                "at (nb = BLOCK_ELEMS // OW rows): 4 KiB of fp32 per partition and DMA, few "
                "instructions per block", None, (nb_n,), owned_only=True)
        self.psz, self.isz, self.ow = S(psz), S(isz), OW
        self.NB = NB
        body: list = [P.Let(i0, S(ib) * NB), P.Let(isz, Min(NB, OH - S(i0)))]
        for t in self.cols:
            self.col_tiles[t] = n.fresh(f"{t}_cols")
        for t in self.taps:
            name = n.fresh(f"{t}_blk")
            self.tiles[t] = name
            tdecl = b.spec.tensor(t)
            A = self.strides[t][0]
            rmax = max(r for r, _ in self.taps[t])
            W = width_of[t]
            rows = sympy.expand(A * (S(isz) - 1) + rmax + 1)
            body += [
                P.Alloc(name, (sympy.Integer(PMAX), sympy.expand(rows_of[t]), W),
                        tdecl.dtype, P.Mem.SBUF),
                P.Dma(P.Ref(name, (P.Slice(ZERO, S(psz)), P.Slice(ZERO, rows),
                                   P.Slice(ZERO, W))),
                      P.Ref(checked(t, "tensor"), (P.Slice(S(p0), S(psz)),
                                                   P.Slice(sympy.expand(A * S(i0)), rows),
                                                   P.Slice(ZERO, W)))),
            ]
        self.out = body
        ydt = b.spec.tensor(self.st.target).dtype
        res = self._compile(self.rhs, {}, ydt)
        if res[0] != "tile" or res[2] != ydt:
            dst = self._tile(ydt, "out")
            self._copy(dst, res)
            res = ("tile", dst, ydt)
        view = self._view(res[1])
        body.append(P.Dma(P.Ref(checked(self.st.target, "tensor"),
                                (P.Slice(S(p0), S(psz)), P.Slice(S(i0), S(isz)),
                                 P.Slice(ZERO, OW))), view))
        # the per-channel tap columns: one contiguous [psz, columns] load per channel tile
        # (float32: tensor_scalar's operands and activation's scale are float32 only, SH
        # nki/api/nki/isa/__init__.py tensor_scalar "Data types" and activation, nki 0.3;
        # other dtypes are loaded as they are and copied)
        cols: list = []
        for t, (step, ncols) in self.cols.items():
            name = self.col_tiles[t]
            dt = b.spec.tensor(t).dtype
            shape = (sympy.Integer(PMAX), sympy.Integer(ncols))
            cview = (P.Slice(ZERO, S(psz)), P.Slice(ZERO, sympy.Integer(ncols)))
            raw = name if dt == F32 else n.fresh(f"{t}_raw")
            got = [P.Alloc(raw, shape, dt, P.Mem.SBUF),
                   P.Dma(P.Ref(raw, cview),
                         P.ApRef(checked(t, "tensor"), sympy.expand(S(p0) * step),
                                 ((step, S(psz)), (ONE, sympy.Integer(ncols)))))]
            if raw != name:
                got += [P.Alloc(name, shape, F32, P.Mem.SBUF),
                        P.TensorCopy(P.Ref(name, cview), P.Ref(raw, cview))]
            cols += got
        nodes = [
            P.Let(nb_n, Max(ONE, Min(OH, sympy.floor(BLOCK_ELEMS / OW)))),
            P.Loop(pt, sympy.ceiling(ext[self.p] / PMAX), P.LoopKind.PARALLEL, (
                P.Let(p0, S(pt) * PMAX),
                P.Let(psz, Min(sympy.Integer(PMAX), ext[self.p] - S(p0))),
                *cols,
                P.Loop(ib, sympy.ceiling(OH / NB), P.LoopKind.PARALLEL, tuple(body)))),
        ]
        stage = P.StagePlan(
            statements=(self.st.position,), strategy="planes", partition=self.p,
            free=(self.i, self.j), loops=(), tiles=((self.p, PMAX),), blocks=(),
            engines=("dma", "vector", "scalar"),
            notes=("whole input rows per block of output rows (contiguous DMA), the taps read "
                   "through strided 3-D SBUF views",))
        return nodes, stage

    def _tile(self, dtype: DType, base: str) -> str:
        name = self.b.namer.fresh(base)
        self.out.append(P.Alloc(name, (sympy.Integer(PMAX), self.NB, self.ow), dtype,
                                P.Mem.SBUF))
        return name

    def _view(self, name: str) -> P.Ref:
        return P.Ref(name, (P.Slice(ZERO, self.psz), P.Slice(ZERO, self.isz),
                            P.Slice(ZERO, self.ow)))

    def _ref(self, v) -> P.Ref:
        if v[0] == "tile":
            return self._view(v[1])
        if v[0] == "col":
            return P.Ref(self.col_tiles[v[1]], (P.Slice(ZERO, self.psz),
                                                P.Slice(sympy.Integer(v[2]), ONE)))
        _, t, r, s = v
        A, B = self.strides[t]
        return P.Ref(self.tiles[t], (P.Slice(ZERO, self.psz),
                                     P.Slice(sympy.Integer(r), self.isz, sympy.Integer(A)),
                                     P.Slice(sympy.Integer(s), self.ow, sympy.Integer(B))))

    def _copy(self, dst: str, v) -> None:
        if v[0] == "scalar":
            self.out.append(P.Memset(self._view(dst), v[1]))
        else:
            self.out.append(P.TensorCopy(self._view(dst), self._ref(v)))

    def _dst(self, *vals) -> str:
        for v in vals:
            if v[0] == "tile" and v[2] == F32 and v[3:] == ("temp",):
                return v[1]
        return self._tile(F32, _NAME.get(len(vals), "t"))

    def _compile(self, e: Expr, env: dict[str, int], want: DType | None):
        s = self.c.scalar_of(e)
        if s is not None:
            return ("scalar", s)
        if isinstance(e, Access):
            col = self._col(e, env)
            if col is not None:
                return ("col",) + col
            t, r, c = self._access(e, env)
            return ("view", t, r, c)
        if isinstance(e, Neg):
            return self._binary(P.AluOp.MULTIPLY, self._compile(e.operand, env, None),
                                ("scalar", -ONE))
        if isinstance(e, BinOp):
            a = self._compile(e.lhs, env, None)
            bv = self._compile(e.rhs, env, None)
            op = ALU_OF_BINOP[e.op]
            if op is P.AluOp.DIVIDE and bv[0] != "scalar":
                raise _No
            if op is P.AluOp.DIVIDE:
                return self._binary(P.AluOp.MULTIPLY, a, ("scalar", 1 / bv[1]))
            return self._binary(op, a, bv)
        if isinstance(e, Call) and e.func in ACT_OF_FUNC:
            # one ScalarE activation over the plane view (S29 nki/api/nki/isa/__init__.py
            # ``activation``: data a tile in SBUF, any free shape; S25 same)
            arg = e.args[0]
            # ... except NeuronCore-v2's reciprocal activation, which takes no bias (S25
            # general/nki/api/nki.api.shared.rst and SH nki/api/nki.api.shared.rst, note under
            # "Engine Selection"): the sum is computed first (review 15 R15-2)
            no_bias = ACT_OF_FUNC[e.func] is P.ActFunc.RECIPROCAL and \
                self.c.target.nc_version < 3
            if isinstance(arg, BinOp) and arg.op is BinOpKind.ADD and not no_bias:
                # f(x + b[c]) with a per-channel column b: the column is the activation's
                # bias, f(data * scale + bias), one instruction instead of a VectorE add and
                # the activation (SH nki/api/nki/isa/__init__.py activation: bias a (P, 1)
                # vector, also on NeuronCore-v2; S25 general/nki/api/nki/isa/__init__.py
                # activation and nki.errors.rst err_activation_bias_invalid_type: a (P, 1)
                # float32 / float16 / bfloat16 vector; review 13 R13-6)
                for core, other in ((arg.lhs, arg.rhs), (arg.rhs, arg.lhs)):
                    col = self._col(other, env) if isinstance(other, Access) else None
                    if col is None:
                        continue
                    x = self._compile(core, env, None)
                    if x[0] in ("scalar", "col"):
                        break
                    dst = self._dst(x)
                    self.out.append(P.Activation(self._view(dst), ACT_OF_FUNC[e.func],
                                                 self._ref(x), bias=self._ref(("col",) + col)))
                    return ("tile", dst, F32, "temp")
            a = self._compile(arg, env, None)
            if a[0] in ("scalar", "col"):
                raise _No
            dst = self._dst(a)
            self.out.append(P.Activation(self._view(dst), ACT_OF_FUNC[e.func], self._ref(a)))
            return ("tile", dst, F32, "temp")
        if isinstance(e, Call):
            a = self._compile(e.args[0], env, None)
            bv = self._compile(e.args[1], env, None)
            return self._binary(ALU_OF_FUNC[e.func], a, bv)
        assert isinstance(e, Reduce)
        op = ALU_OF_REDUCE[e.op]
        acc = None
        terms = self._unroll(e)
        for vals in terms:
            v = self._compile(e.body, {**env, **vals}, None)
            acc = v if acc is None else self._binary(op, acc, v)
        if e.op is ReduceKind.MEAN:
            acc = self._binary(P.AluOp.MULTIPLY, acc, ("scalar", ONE / len(terms)))
        return acc

    def _binary(self, op: P.AluOp, a, bv):
        small = ("scalar", "col")
        if a[0] in small and bv[0] in small:
            raise _No           # numbers are folded by scalar_of; a column pair is not a plane
        if bv[0] in small or a[0] in small:
            rev = a[0] in small
            x, sc = (bv, a) if rev else (a, bv)
            operand = P.Scalar(sympy.sympify(sc[1])) if sc[0] == "scalar" else self._ref(sc)
            dst = self._dst(x)
            if op is P.AluOp.MULTIPLY:
                self.out.append(P.Activation(self._view(dst), P.ActFunc.COPY, self._ref(x),
                                             scale=operand))
            else:
                self.out.append(P.TensorScalar(self._view(dst), self._ref(x), op, operand,
                                               reverse0=rev and op is P.AluOp.SUBTRACT))
            return ("tile", dst, F32, "temp")
        dst = self._dst(a, bv)
        self.out.append(P.TensorTensor(self._view(dst), self._ref(a), self._ref(bv), op))
        return ("tile", dst, F32, "temp")


_NAME = {1: "scaled", 2: "acc"}
