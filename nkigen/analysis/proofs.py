"""Stage analyze (proofs): access maps -> in-bounds and exactly-once proofs.

Input: :class:`AccessMap` s with the index extents and the :class:`SizeDomain`. Output:
:class:`BoundsProof` per access dimension (``0 <= expr <= size - 1`` for every allowed size and
every index value), :class:`ExactlyOnceProof` per statement, and diagnostics for what could not
be proven.

An affine expression reaches its extremes at corners of the index box: an index with a
nonnegative coefficient is smallest at 0 and largest at ``extent - 1``, the other way round for a
nonpositive one. A symbolic coefficient needs a provable sign. Each corner condition is then a
size inequality handed to :func:`nkigen.analysis.prover.prove_nonneg`.
"""

from __future__ import annotations

import sympy

from nkigen.analysis.diag import diag
from nkigen.analysis.model import AccessMap, BoundsProof, ExactlyOnceProof
from nkigen.analysis.prover import SizeDomain, prove_equal, prove_nonneg, sign_of
from nkigen.diagnostics import Diagnostic
from nkigen.ir import AssignOp, Statement


def bounds_proofs(m: AccessMap, extents: dict[str, sympy.Expr], dom: SizeDomain,
                  st: Statement) -> tuple[list[BoundsProof], list[Diagnostic]]:
    proofs: list[BoundsProof] = []
    diags: list[Diagnostic] = []
    loc = m.access.loc or st.loc
    gathered = dict(m.access.indirect)
    for d, dm in enumerate(m.dims):
        size = m.shape[d]
        if d in gathered:       # spec language 1.1: indexed by an integer input's values
            proofs.append(BoundsProof(
                m.text, m.tensor, d, f"0 <= {dm.expr}", f"{dm.expr} <= {size - 1}", True,
                (f"indexed by the values of {dm.expr}: checked when it runs (the reference "
                 "raises IndexError, the kernel's indirect DMA raises on an out-of-range id)",),
                f"0 <= {dm.expr} <= {size - 1} (run time)"))
            continue
        lo_e, hi_e = dm.const, dm.const
        lo_at, hi_at = [], []
        unknown_sign = []
        terms = [(name, c, sympy.Integer(0), extents[name] - 1) for name, c in dm.coeffs]
        for atom, c in dm.atoms:
            a_lo, a_hi, a_unknown = _atom_range(atom, extents, dom)
            unknown_sign += a_unknown
            terms.append((str(atom), c, a_lo, a_hi))
        for name, c, bottom, top in terms:
            s = sign_of(c, dom)
            if s is None:
                unknown_sign.append(f"{c}")
                continue
            small, big = f"{name}={bottom}", f"{name}={top}"
            if s > 0:
                lo_e += c * bottom
                hi_e += c * top
                lo_at.append(small)
                hi_at.append(big)
            else:
                lo_e += c * top
                hi_e += c * bottom
                lo_at.append(big)
                hi_at.append(small)
        lower = f"0 <= {dm.expr}"
        upper = f"{dm.expr} <= {size - 1}"
        arg: list[str] = []
        if unknown_sign:
            arg.append(f"sign of coefficient(s) {', '.join(unknown_sign)} unknown")
            ok_lo = ok_hi = False
        else:
            lo_e, hi_e = sympy.expand(lo_e), sympy.expand(hi_e)
            vl = prove_nonneg(lo_e, dom)
            vh = prove_nonneg(sympy.expand(size - 1 - hi_e), dom)
            arg.append(f"min at {', '.join(lo_at) or 'any'}: {lo_e} >= 0"
                       + (" proven" if vl.proven else " NOT proven"))
            arg += [f"  {x}" for x in vl.steps]
            arg.append(f"max at {', '.join(hi_at) or 'any'}: {hi_e} <= {size - 1}"
                       + (" proven" if vh.proven else " NOT proven"))
            arg += [f"  {x}" for x in vh.steps]
            ok_lo, ok_hi = vl.proven, vh.proven
        proofs.append(BoundsProof(m.text, m.tensor, d, lower, upper, ok_lo and ok_hi, tuple(arg),
                                  f"0 <= {dm.expr} <= {size - 1}"))
        field = f"compute[{st.position}]"
        fix = ("narrow the index ranges or constrain the sizes so the access stays inside "
               f"{m.tensor}")
        if not ok_lo:
            diags.append(diag(loc, field, f"{m.text} dim {d}: cannot prove {lower} for all "
                              "allowed sizes", f"minimum {lo_e}" if not unknown_sign
                              else "a coefficient of unknown sign", fix))
        if not ok_hi:
            diags.append(diag(loc, field, f"{m.text} dim {d}: cannot prove {upper} for all "
                              "allowed sizes", f"maximum {hi_e}" if not unknown_sign
                              else "a coefficient of unknown sign", fix))
    return proofs, diags


def _atom_range(atom: sympy.Expr, extents: dict[str, sympy.Expr],
                dom: SizeDomain) -> tuple[sympy.Expr, sympy.Expr, list[str]]:
    """Smallest and largest value of ``floor(p / q)`` or ``Mod(p, q)`` (``p`` affine in the
    indices, ``q`` a positive integer) over the index box: ``floor`` is monotone, so its
    extremes are the floors of ``p``'s extremes at the box corners; ``Mod(p, q)`` lies in
    ``[0, q - 1]`` (Python's floor modulo, also NumPy's and the generated kernel's)."""
    if isinstance(atom, sympy.Mod):
        return sympy.Integer(0), sympy.Integer(atom.args[1]) - 1, []
    inner = sympy.expand(atom.args[0])
    lo = hi = inner
    unknown: list[str] = []
    for sym in sorted(inner.free_symbols, key=str):
        if sym.name not in extents:
            continue
        c = inner.coeff(sym)
        s = sign_of(c, dom)
        if s is None:
            unknown.append(f"{c}")
            continue
        top = extents[sym.name] - 1
        lo = lo.subs(sym, 0 if s > 0 else top)
        hi = hi.subs(sym, top if s > 0 else 0)
    return sympy.floor(lo), sympy.floor(hi), unknown


def exactly_once(st: Statement, lhs: AccessMap, extents: dict[str, sympy.Expr],
                 dom: SizeDomain) -> tuple[ExactlyOnceProof, list[Diagnostic]]:
    """Each point of the target is written exactly once by the statement: the lhs indices are
    distinct plain indices, each ranging over exactly its dimension, so the map is the identity
    of the target's index space."""
    diags: list[Diagnostic] = []
    ok = len(set(st.lhs)) == len(st.lhs)
    for d, name in enumerate(st.lhs):
        ext, size = extents.get(name), lhs.shape[d]
        if ext is None or not prove_equal(ext, size, dom):
            ok = False
            diags.append(diag(
                st.loc, f"compute[{st.position}]",
                f"{lhs.text} dim {d}: lhs index {name} ranges over {ext} but {st.target} "
                f"dim {d} has size {size}", ext,
                f"index {st.target} with an index ranging over {size}"))
    space = " x ".join(f"[0, {lhs.shape[d]})" for d in range(len(st.lhs))) or "a single point"
    arg = (f"lhs {lhs.text}: indices {', '.join(st.lhs) or '(none)'} are distinct plain indices "
           f"ranging over {space} = the shape of {st.target}, so (indices) -> point is the "
           f"identity on {st.target}'s index space, a bijection: every point is written once")
    if st.op is AssignOp.ACCUMULATE and st.sum_indices:
        arg += (f" (with the sum over {', '.join(st.sum_indices)} accumulated into it once per "
                "point)")
    return ExactlyOnceProof(st.position, st.target, ok, arg), diags
