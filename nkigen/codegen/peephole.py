"""Peephole passes over a lowered row body (plan nodes -> fewer plan nodes).

Stage: plan (helper of :mod:`nkigen.codegen.rows`, run on one partition tile's body before it is
software-pipelined). Input: the straight-line instruction list of one tile; output: the same
computation in fewer engine instructions.

``fold_affine_copies``: a ScalarE ``activation(copy, scale=s1, bias=b1)`` whose result is read
only by the next activation ``f(s2 * t + b2)`` folds into it as ``f((s1 * s2) * x + (s2 * b1 +
b2))``. ScalarE applies ``op(data * scale + bias)`` at no extra cost ("scale/bias ride along",
SH nki/api/nki.isa.activation, nki 0.3; S25 general/nki/api/generated/nki.isa.activation.rst,
SDK 2.25), so e.g. an RMS statistic ``rsqrt(sum / D + eps)`` is one instruction instead of
three. Folds only when the scales are trace-time scalars and at most one bias tile remains;
never adds a bias to ``reciprocal`` (NC-v2's reciprocal activation takes no bias, same pages).
"""

from __future__ import annotations

import dataclasses

import sympy

from nkigen.codegen import plan as P


def _scalar(op: P.Operand) -> sympy.Expr | None:
    return sympy.sympify(op.value) if isinstance(op, P.Scalar) else None


def _is_one(x: sympy.Expr) -> bool:
    return bool(x.is_number) and float(x) == 1.0     # Float(1.0) != Integer(1) in sympy


def _compose(a: P.Activation, b: P.Activation) -> P.Activation | None:
    """``b`` reading ``a``'s result rewritten to read ``a``'s source, or None."""
    s1, s2 = _scalar(a.scale), _scalar(b.scale)
    if s1 is None or s2 is None:
        return None
    if a.bias is None:
        bias = b.bias
    elif _is_one(s2) and b.bias is None:
        bias = a.bias
    else:
        return None
    if bias is not None and b.func is P.ActFunc.RECIPROCAL:
        return None
    scale = a.scale if _is_one(s2) else b.scale if _is_one(s1) else P.Scalar(s1 * s2)
    return dataclasses.replace(b, src=a.src, scale=scale, bias=bias)


def _dead_after(nodes: list, j: int, a: P.Activation, b: P.Activation) -> bool:
    """``a``'s result is not read after instruction ``j`` (``b``) nor by ``b``'s bias."""
    name = a.dst.name
    if b.bias is not None and b.bias.name == name:
        return False
    if b.reduce_res is not None and b.reduce_res.name == name:
        return False
    if b.dst == a.dst:                 # overwritten in full by b itself
        return True
    return not any(name in P.names_used(n) for n in nodes[j + 1:])


def fold_affine_copies(nodes: list) -> list:
    """Fold each single-use ``activation(copy, scale, bias)`` into the activation reading it.

    Only allocations of other tiles may sit between the two instructions; the copy's result
    must be dead after its reader (the tile is not read again, or the reader overwrites it).
    """
    out = list(nodes)
    i = 0
    while i < len(out):
        a = out[i]
        if not (isinstance(a, P.Activation) and a.func is P.ActFunc.COPY
                and a.reduce_res is None):
            i += 1
            continue
        j = i + 1
        while j < len(out) and isinstance(out[j], P.Alloc) and out[j].name != a.dst.name \
                and out[j].name != a.src.name:
            j += 1
        b = out[j] if j < len(out) else None
        if isinstance(b, P.Activation) and b.src == a.dst and _dead_after(out, j, a, b):
            folded = _compose(a, b)
            if folded is not None:
                out[j] = folded
                del out[i]
                i = max(i - 1, 0)       # the folded activation may fold again
                continue
        i += 1
    return out


def _writes(n) -> set[str]:
    """Tensor names an instruction writes (conservatively: everything a nested body uses)."""
    if isinstance(n, (P.Loop, P.If)):
        return P.names_used(n)
    out: set[str] = set()
    dst = getattr(n, "dst", None)
    if isinstance(dst, (P.Ref, P.ApRef)):
        out.add(dst.name)
    if isinstance(n, P.Activation) and n.reduce_res is not None:
        out.add(n.reduce_res.name)
    return out


def _reads(n: P.Activation) -> set[str]:
    return {n.src.name} | ({n.bias.name} if n.bias is not None else set())


def _rename(node, old: str, new: str):
    """``node`` with every reference to tensor ``old`` pointing at ``new``."""
    if isinstance(node, P.Ref):
        return dataclasses.replace(node, name=new) if node.name == old else node
    if isinstance(node, tuple):
        return tuple(_rename(x, old, new) for x in node)
    if isinstance(node, P.Alloc) or not hasattr(node, "__dataclass_fields__"):
        return node
    # dataclasses.fields, not __dataclass_fields__: the latter also lists ClassVars (e.g.
    # GatherDma.NAME_FIELDS), which replace() rejects as constructor arguments
    changes = {f.name: _rename(getattr(node, f.name), old, new) for f in dataclasses.fields(node)}
    return dataclasses.replace(node, **changes)


def reuse_activations(nodes: list) -> list:
    """Common-subexpression elimination of column statistics: an ``activation`` that repeats an
    earlier one (same function, source, scale and bias, none of them written since) reuses the
    earlier result (e.g. log-softmax's ``-max`` serves both the exp bias and the final shift).

    The repeat's readers move to the earlier tile; if that tile's repeat is later updated in
    place, the earlier value must not be read after the update (checked, else no reuse).
    """
    out = list(nodes)
    j = 0
    while j < len(out):
        n2 = out[j]
        hit = None
        if isinstance(n2, P.Activation) and n2.reduce_res is None:
            for i in range(j - 1, -1, -1):
                n1 = out[i]
                if isinstance(n1, P.Activation) and n1.reduce_res is None \
                        and n1.dst.name != n2.dst.name and n1.dst.dims == n2.dst.dims \
                        and dataclasses.replace(n1, dst=n2.dst) == n2 \
                        and not _writes(n1) & _reads(n1):      # in place: its source changed
                    hit = n1
                    break
                srcs = {n2.src.name} | ({n2.bias.name} if n2.bias is not None else set())
                if _writes(n1) & srcs:
                    break
        if hit is None or _writes_between(out, hit, j):
            j += 1
            continue
        d1, d2 = hit.dst.name, n2.dst.name
        rest = out[j + 1:]
        first_w = next((k for k, n in enumerate(rest) if d2 in _writes(n)), None)
        if first_w is not None and any(d1 in P.names_used(n) for n in rest[first_w + 1:]):
            j += 1
            continue
        out = out[:j] + [_rename(n, d2, d1) for n in rest]
        out = [n for n in out if not (isinstance(n, P.Alloc) and n.name == d2)]
    return out


def _writes_between(nodes: list, first: P.Activation, j: int) -> bool:
    """The first result's tile is written again between it and instruction ``j``."""
    i = nodes.index(first)
    return any(first.dst.name in _writes(n) for n in nodes[i + 1:j])


def fold_negated_add(nodes: list) -> list:
    """``t = activation(copy, x, scale=s)`` then ``d = t + y`` (column tiles, ``t`` dead after)
    -> one ``activation(copy, x, scale=s, bias=y)`` on ScalarE (bias is a ``[P, 1]`` tile:
    SH nki/api/nki.isa.activation, nki 0.3; S25 same page)."""
    out = list(nodes)
    i = 0
    while i + 1 < len(out):
        a, b = out[i], out[i + 1]
        if isinstance(a, P.Activation) and a.func is P.ActFunc.COPY and a.bias is None \
                and a.reduce_res is None and isinstance(b, P.TensorTensor) \
                and b.op is P.AluOp.ADD and a.dst in (b.a, b.b) \
                and _col(a.dst) and _col(b.dst):
            other = b.b if b.a == a.dst else b.a
            tail = out[i + 2:]
            if other != a.dst and not any(a.dst.name in P.names_used(n) for n in tail):
                out[i:i + 2] = [P.Activation(b.dst, P.ActFunc.COPY, a.src, a.scale, other)]
                continue
        i += 1
    return out


def _col(r: P.Ref) -> bool:
    """A ``[P, 1]`` column view."""
    return len(r.dims) == 2 and isinstance(r.dims[1], P.Slice) and r.dims[1].size == 1


def share_dead_outputs(nodes: list) -> list:
    """Activations kept only for their ``reduce_res`` row sum write a row nobody reads; all
    such rows of one shape and dtype share one scratch tile (ScalarE runs its instructions in
    program order, so the writes cannot race), which frees SBUF for longer fused rows."""
    allocs = {n.name: n for n in nodes if isinstance(n, P.Alloc)}
    first: dict[tuple, str] = {}
    out = list(nodes)
    for n in nodes:
        if not (isinstance(n, P.Activation) and n.reduce_res is not None
                and n.dst.name in allocs):
            continue
        name = n.dst.name
        readers = [m for m in out if not isinstance(m, P.Alloc) and name in P.names_used(m)]
        if len(readers) != 1:
            continue
        a = allocs[name]
        key = (a.shape, a.dtype, a.mem)
        keep = first.setdefault(key, name)
        if keep != name:
            out = [m for m in out if not (isinstance(m, P.Alloc) and m.name == name)]
            out = [_rename(m, name, keep) for m in out]
    return out


def optimize(nodes: list) -> list:
    """All peephole passes, in order; tiles left without a reader or writer are not allocated."""
    out = share_dead_outputs(fold_negated_add(fold_affine_copies(reuse_activations(nodes))))
    used: set[str] = set()
    for n in out:
        if not isinstance(n, P.Alloc):
            used |= P.names_used(n)
    before = {n.name for n in nodes if isinstance(n, P.Alloc)
              and any(n.name in P.names_used(m) for m in nodes if not isinstance(m, P.Alloc))}
    return [n for n in out if not (isinstance(n, P.Alloc) and n.name in before
                                   and n.name not in used)]
