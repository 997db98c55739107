"""Divided partition indices (``y[r, n] = x[r // 2, n]``): write a reshaped view of the output.

Stage: plan (pre-pass, Spec -> Spec, run first by :func:`nkigen.codegen.planner.plan_kernel`).
The row lowering (:mod:`nkigen.codegen.rows`) puts a statement's natural partition index on the
partitions only when every read is affine in it. A read through ``r // c`` or ``r % c``
(spec language 1.1 quasi-affine indices: nearest-neighbour upsampling, repeated rows, row
phases) moves ``r`` into an outer scalar loop instead, and the last undivided index onto the
partitions with nothing on the free axis: one element per partition and per DMA descriptor
(477.61 us modelled for ``y[r, n] = x[r // 2, n]`` at 130 x 300 bfloat16 on trn2).

When the output dimension ``r`` indexes has ``c * I`` rows for every allowed size, the output
is the same bytes as an ``[..., I, c, ...]`` tensor, row-major: row ``r`` is ``(r // c, r % c)``.
The statement then writes that view, ``y_v[..., r_q, r_r, ...]``, with ``r // c`` read as
``r_q``, ``r % c`` as ``r_r`` and ``r`` as ``c * r_q + r_r``: every read is affine again and
``r_q`` goes on the partitions (3.85 us for the example). The view is a reshape of the output
allocation, no copy: ``y.reshape(...)`` in both dialects (SH nki/api/nki/language/__init__.py
NkiTensor.reshape, nki 0.3: "without copying data", the element count kept; S25
general/nki/api/nki/__init__.py tensor.reshape, SDK 2.25: "a new view of the tensor, no copy
will occur").

A contraction or reduction whose value does not depend on ``r % c`` (a matmul or a softmax of
upsampled rows) is computed once per ``r // c`` into a temp ``y_u``, then copied ``c`` times
into the view; the row lowering would compute it once per residue.

A target read by later statements (an output or a temp) splits only with all its readers:
each reads the view, ``t[r', n]`` as ``t_v[r' // c, r' % c, n]``, and must split its own
partition index the same way, its target an output written once and read by none
(``t[r, n] = x[r // 2, n]`` then ``y[r, n] = t[r, n] * z[r, n]``); a reader that reads the view
at plain indices (``y[2 * m + 1, n]`` is ``y_v[m, 1, n]``) has nothing to split and takes it as
it is; a reader that cannot split (a sum over ``r``) leaves both as they were.

Applied to ``=`` and ``+=`` statements whose target no other statement writes (readers as
above), where ``r`` is the natural partition
index (:func:`nkigen.codegen.layout.row_partition`), a read divides it, every division of it
is by one integer ``c >= 2`` (``r // c``, ``r % c``; plain ``r`` in affine places), no other
left-hand index is divided (but for a floor of the last one, ``x[c, h // 2, w // 2]``,
which the row lowering expands on chip), ``r`` is not scanned, and the
target's dimension is ``c`` times a size expression (``2 * M``) or a size declared
``multiple_of`` a multiple of ``c``. Values are computed exactly as before, so the reference
is unchanged; the build verifies the kernel against it as always.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import sympy

from nkigen.analysis.printing import expr_text
from nkigen.codegen.prepass import build_at, fresh, map_indices, rebuild
from nkigen.ir import (
    Access,
    AssignOp,
    Reduce,
    Role,
    Scan,
    Spec,
    Statement,
    TensorDecl,
    division_parts,
    index_exprs,
    index_symbol,
    walk,
)


@lru_cache(maxsize=64)
def rewrite(spec: Spec, target: str) -> Spec:
    """``spec`` with each qualifying statement writing a reshaped view of its output (see the
    module docstring); the same object when there is none."""
    if not any(_divided(st) for st in spec.statements):
        return spec
    got = build_at(spec, target)
    if got is None:
        return spec
    _, b = got
    from nkigen.codegen.layout import row_partition
    decls = {t.name: t for t in spec.tensors}
    sizes = {s.name: s for s in spec.sizes}
    outputs = {t.name for t in spec.outputs}
    inputs = {t.name: t for t in spec.inputs}
    taken = _taken(spec)
    temps: list[TensorDecl] = []
    out: list = list(spec.statements)    # a rewritten entry: a tuple of statements
    done: set[int] = set()          # positions in ``out`` already rewritten

    def split(st: Statement) -> tuple[tuple, tuple] | None:
        try:
            r = row_partition(b.spec, b.extents, st.lhs)
        except (KeyError, TypeError, ValueError):
            return None
        return _rewrite(st, r, decls[st.target], sizes, taken, inputs)

    for k, st in enumerate(spec.statements):
        if k in done or not _divided(st) or _writers(spec, st.target) != [k]:
            continue
        readers = _readers(spec, st.target)
        if any(j <= k for j in readers) or (not readers and st.target not in outputs):
            continue        # read before its write, or a temp no one reads: left alone
        new = split(st)
        if new is None:
            continue
        chain = [(k, new)]
        view = new[0][0]
        d = st.lhs.index(_split_index(st, new[1][-1]))
        for j in readers:
            # a reader takes the view too: it reads the target through r // c and r % c of
            # its own index, so that index splits the same way; its target must be an output
            # written once and read by no statement, as for a producer without readers
            rd = _read_view(spec.statements[j], st.target, view, d, int(view.shape[d + 1]))
            got = None
            if rd is not None and _writers(spec, rd.target) == [j] and \
                    not _readers(spec, rd.target) and rd.target in outputs:
                got = split(rd)
                if got is None and not _divided(rd):
                    # it reads the view at plain indices (y[2 * m + 1, n] is y_v[m, 1, n]):
                    # nothing of its own to split (review 9 R9-11: the writer was left to
                    # the row lowering, one element per partition per DMA, 481.33 us)
                    got = ((), (rd,))
            if got is None:
                chain = []
                break
            chain.append((j, got))
        for j, (made, stmts) in chain:
            temps.extend(made)
            out[j] = stmts
            done.add(j)
    if not temps:
        return spec
    flat = tuple(x for st in out for x in (st if isinstance(st, tuple) else (st,)))
    return dataclasses.replace(spec, temps=spec.temps + tuple(temps), statements=flat)


def _split_index(old: Statement, new: Statement) -> str:
    """The left-hand index of ``old`` that ``new`` split in two."""
    return next(i for i in old.lhs if i not in new.lhs)


def _writers(spec: Spec, name: str) -> list[int]:
    return [k for k, st in enumerate(spec.statements) if st.target == name]


def _readers(spec: Spec, name: str) -> list[int]:
    return [k for k, st in enumerate(spec.statements)
            if any(isinstance(e, Access) and e.tensor == name for e in walk(st.rhs))]


def _read_view(st: Statement, name: str, view: TensorDecl, d: int, c: int) -> Statement | None:
    """``st`` reading ``view`` (``name`` split at dimension ``d`` into ``(q, c)``) instead of
    ``name``: ``name[.., e, ..]`` becomes ``view[.., e // c, e % c, ..]``; None when ``name``
    is read through a gather."""
    def swap(e):
        if isinstance(e, Access) and e.tensor == name:
            if e.indirect:
                raise ValueError
            ix = tuple(sympy.sympify(x) for x in e.indices)
            return dataclasses.replace(e, tensor=view.name, indices=ix[:d] + (
                sympy.floor(ix[d] / c), sympy.Mod(ix[d], c)) + ix[d + 1:])
        return None
    try:
        return dataclasses.replace(st, rhs=rebuild(st.rhs, swap))
    except ValueError:
        return None


def _taken(spec: Spec) -> set[str]:
    """Tensor, size, param and kernel names, and every index name the spec uses."""
    from nkigen.codegen.prepass import taken_names
    names = taken_names(spec)
    for st in spec.statements:
        names.update(st.lhs)
        names.update(st.sum_indices)
        for x in index_exprs(st.rhs):
            names.update(s.name for s in x.free_symbols)
    names.update(k for k, _ in spec.ranges)
    return names


def _divisions(st: Statement) -> set:
    """The ``floor`` / ``Mod`` atoms of the statement's index expressions."""
    found: set = set()
    for x in index_exprs(st.rhs):
        found |= x.atoms(sympy.floor, sympy.Mod)
    return found


def _divided(st: Statement) -> bool:
    return bool(_divisions(st))


def _factor(st: Statement, r: str) -> int | None:
    """The one divisor ``c >= 2`` of every ``r // c`` and ``r % c`` in ``st``, or None when
    ``r`` is divided otherwise (by two divisors, or inside a larger expression) or scanned."""
    rs = index_symbol(r)
    cs: set[int] = set()
    for q in _divisions(st):
        if rs not in q.free_symbols:
            continue
        num, den = division_parts(q)
        if num != rs or not den.is_Integer:
            return None
        cs.add(int(den))
    if len(cs) != 1 or any(isinstance(e, Scan) and e.index == r for e in walk(st.rhs)):
        return None
    c = cs.pop()
    return c if c >= 2 else None


def quotient(extent: sympy.Expr, c: int, sizes: dict) -> sympy.Expr | None:
    """``extent / c`` as a size expression when ``extent`` is a multiple of ``c`` at every
    allowed size: ``2 * M / 2 = M``; ``M`` declared ``multiple_of`` a multiple of ``c``:
    ``M // c``; a derived size whose value is such a multiple: ``N4 // 4``. None otherwise.
    Also used by the row lowering's on-chip expansions (tilexpr)."""
    q = sympy.expand(sympy.sympify(extent) / c)
    if sympy.fraction(sympy.together(q))[1] == 1 and q.free_symbols and all(
            not t.is_Number or t.is_Integer for t in sympy.Add.make_args(q)
            for t in sympy.Mul.make_args(t) if t.is_Number):
        return q
    e = sympy.sympify(extent)
    if e.is_Symbol:
        d = sizes.get(e.name)
        if d is not None and d.multiple_of and d.multiple_of % c == 0:
            return sympy.floor(e / c)
        if d is not None and d.value is not None and quotient(d.value, c, sizes) is not None:
            return sympy.floor(e / c)       # a derived size, e.g. N4 = 4 * N
    return None


def _rewrite(st: Statement, r: str, decl: TensorDecl, sizes: dict, taken: set[str],
             inputs: dict[str, TensorDecl]
             ) -> tuple[tuple[TensorDecl, ...], tuple[Statement, ...]] | None:
    """(the view first, then any temp and input views; the statements, the last writing
    the view)."""
    c = _factor(st, r)
    if c is None:
        return None
    d = st.lhs.index(r)
    q = quotient(decl.shape[d], c, sizes)
    if q is None:
        return None
    rs = index_symbol(r)
    rq, rr = fresh(f"{r}_q", taken), fresh(f"{r}_r", taken)
    qs, ms = index_symbol(rq), index_symbol(rr)
    swap = {sympy.floor(rs / c): qs, sympy.Mod(rs, c): ms}

    def index(x) -> sympy.Expr:
        y = sympy.sympify(x).xreplace(swap).subs(rs, c * qs + ms)
        return sympy.expand(y)

    rhs = map_indices(st.rhs, index)
    if any(rs in x.free_symbols for x in index_exprs(rhs)):
        return None                     # r left in a place the swap did not reach
    lhs = st.lhs[:d] + (rq, rr) + st.lhs[d + 1:]
    # a floor of the last (free) index may stay: the row lowering expands such a read on
    # chip (tilexpr.Compiler.expanded_load); any other division of a left-hand index may not
    kept = {index_symbol(i) for i in lhs[:-1]}
    last = index_symbol(lhs[-1])
    if any(isinstance(q, sympy.Mod) and last in q.free_symbols
           for x in index_exprs(rhs) for q in x.atoms(sympy.Mod)):
        return None
    if any(q.free_symbols & kept for x in index_exprs(rhs)
           for q in x.atoms(sympy.floor, sympy.Mod)):
        return None     # another left-hand index stays divided: the row lowering still could
                        # not tile it, and the view alone gains nothing
    # an input read at c * r_q + r_r on a dimension of c * q rows is read through its own
    # reshaped view at (r_q, r_r): one index per dimension (the classic dialect has a per-axis
    # view for it, not one flattened axis indexed by two aranges; review 8 R8-6)
    made: dict[tuple[str, int], TensorDecl] = {}      # (input, dimension) -> its view

    def split_input(e):
        t = inputs.get(e.tensor) if isinstance(e, Access) and not e.indirect else None
        if t is None:
            return None
        ix = [sympy.sympify(x) for x in e.indices]
        for k, x in enumerate(ix):
            qk = quotient(t.shape[k], c, sizes) if sympy.expand(x - (c * qs + ms)) == 0 \
                else None
            if qk is not None and sympy.expand(qk - q) == 0:
                v = made.get((t.name, k))
                if v is None:
                    v = made[t.name, k] = TensorDecl(
                        fresh(f"{t.name}_v", taken), Role.TEMP,
                        t.shape[:k] + (q, sympy.Integer(c)) + t.shape[k + 1:], t.dtype,
                        t.loc, view_of=t.name)
                return dataclasses.replace(e, tensor=v.name,
                                           indices=tuple(ix[:k] + [qs, ms] + ix[k + 1:]))
        return None

    rhs = rebuild(rhs, split_input)
    name = fresh(f"{decl.name}_v", taken)
    shape = decl.shape[:d] + (q, sympy.Integer(c)) + decl.shape[d + 1:]
    view = TensorDecl(name, Role.TEMP, shape, decl.dtype, decl.loc, view_of=decl.name)
    dims = ", ".join(expr_text(s) for s in shape)
    text = (f"{name}[{', '.join(lhs)}] = ... : {st.text}, with {r} = {c}*{rq} + {rr}, so "
            f"{r} // {c} and {r} % {c} are plain indices; {name} is {decl.name} viewed as "
            f"[{dims}] (a reshape, no copy; codegen/residue.py)")
    heavy = st.op is AssignOp.ACCUMULATE or any(isinstance(e, Reduce) for e in walk(rhs))
    if not heavy or any(ms in x.free_symbols for x in index_exprs(rhs)):
        return (view, *made.values()), (dataclasses.replace(st, target=name, lhs=lhs, rhs=rhs,
                                                   text=text),)
    # a contraction or reduction whose value does not depend on r % c (a matmul or a softmax
    # of upsampled rows): computed once per row of the quotient into a temp, then copied c
    # times (review 8 R8-8: the row lowering would compute it once per residue; for cheap
    # element-wise work the temp's round trip costs more than it saves)
    ulhs = tuple(i for i in lhs if i != rr)
    uname = fresh(f"{decl.name}_u", taken)
    ushape = decl.shape[:d] + (q,) + decl.shape[d + 1:]
    temp = TensorDecl(uname, Role.TEMP, ushape, decl.dtype, decl.loc)
    once = dataclasses.replace(st, target=uname, lhs=ulhs, rhs=rhs, text=(
        f"{uname}[{', '.join(ulhs)}] = ... : {st.text} computed once per {rq} (it does not "
        f"depend on {r} % {c}; codegen/residue.py)"))
    copy = Statement(st.position, name, lhs, AssignOp.ASSIGN,
                     Access(uname, tuple(index_symbol(i) for i in ulhs), st.loc), (), text,
                     st.loc)
    return (view, temp, *made.values()), (once, copy)
