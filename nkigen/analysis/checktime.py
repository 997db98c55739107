"""Stage: check (extra checks of ``nkigen check``, after load + parse + analyze).

Input: parsed specs (:class:`nkigen.ir.Spec`). Output: located diagnostics, never an exception:

- errors (the spec cannot be built as it is):
  - :func:`case_memory_diagnostics`: a test case whose tensors (inputs, outputs, temps, in
    their storage dtypes) take more than :data:`CASE_BUDGET_BYTES` at the case's sizes; the
    byte count is computed from the shapes, nothing is allocated;
  - :func:`case_tile_diagnostics`: a test case at which the spec's ``schedule.tiles`` make
    one statement iterate over more than :data:`CASE_TILE_BUDGET` tiles (simulation time);
  - :func:`case_input_diagnostics`: a ``dist: integers`` input whose size-expression range
    is empty at a test case (its data cannot be drawn);
  - :func:`argindex_diagnostics`: an ``argmax``/``argmin`` into an 8-bit integer tensor that
    cannot hold every index the sizes allow (out-of-range integer values are undefined in NKI);
  - :func:`duplicate_name_diagnostics`: two specs of one check defining the same kernel name
    (a library needs unique names);
- warnings (legal, but probably not what was meant), :func:`warnings_of`:
  - a dead store: a tensor written by ``=`` twice with no read in between (the first write is
    lost; skipped when a ``ranges`` entry restricts either write, which may then cover
    different elements);
  - an input that no statement reads;
  - ``+=`` with nothing to sum: every right-side index also indexes the left side and nothing
    was written to the target before, so the statement computes exactly what ``=`` would;
  - an ``initial:`` on a tensor no recurrence writes (spec language 1.1: only a recurrence
    starts from it; it was ignored without a word, fuzz7).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nkigen.diagnostics import Diagnostic, Loc
from nkigen.ir import AssignOp, Scan, Spec, accesses, walk

# Numeric verification holds every tensor of a case in memory (more than once: the float64
# reference, the simulator's storage copies); 1 GiB of tensors is already minutes of simulation.
CASE_BUDGET_BYTES = 1 << 30
# The simulator runs every tile's instructions (about 0.1 ms of CPU per element-wise tile):
# 65,536 tiles of one statement is several seconds per case; a million is minutes to hours.
CASE_TILE_BUDGET = 1 << 16


@dataclass(frozen=True)
class SpecWarning:
    """A located warning: printed as ``FILE:LINE:COL: warning: field: rule (got X); fix``."""

    diagnostic: Diagnostic

    def __str__(self) -> str:
        d = self.diagnostic
        head = f"{d.loc}: " if d.loc is not None else ""
        return head + "warning: " + str(Diagnostic(None, d.field, d.rule, d.got, d.fix))


def _fmt_bytes(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n:,} bytes ({n / (1 << shift):.1f} {unit})"
    return f"{n:,} bytes"


def case_bytes(spec: Spec, free: dict[str, int]) -> int | None:
    """Storage bytes of every tensor at the free sizes ``free``; None if not computable."""
    from nkigen.analysis.sizes import complete_sizes, eval_size_expr

    try:
        sizes = complete_sizes(spec, free)
    except Exception:       # sizes the analysis rejects are reported by the analysis
        return None
    total = 0
    for t in spec.tensors:
        n = 1
        for d in t.shape:
            v = eval_size_expr(d, sizes)
            if v is None or v < 0:
                return None
            n *= v
        total += n * t.dtype.itemsize
    return total


def _over_budget(spec: Spec, cases: Iterable[dict[str, int]] | None, measure, budget: int,
                 rule, fix: str) -> list[Diagnostic]:
    """An error per test case (default: the spec's ``tests.cases``) whose ``measure(spec, case)``
    exceeds ``budget``; ``rule(n)`` words it, located at the case."""
    given = cases is None
    todo = [dict(c) for c in spec.tests.cases] if given else [dict(c) for c in cases or ()]
    out = []
    for i, c in enumerate(todo):
        n = measure(spec, c)
        if n is None or n <= budget:
            continue
        field = f"tests.cases[{i}]" if given else "tests"
        loc = spec.loc_of(field) if given else spec.loc_of("tests")
        shown = ", ".join(f"{k}={v}" for k, v in sorted(c.items()))
        out.append(Diagnostic(loc or Loc(spec.path), field, rule(n), shown, fix))
    return out


def case_memory_diagnostics(spec: Spec, cases: Iterable[dict[str, int]] | None = None,
                            budget: int = CASE_BUDGET_BYTES) -> list[Diagnostic]:
    """An error per test case over ``budget`` bytes (default: the spec's ``tests.cases``)."""
    return _over_budget(
        spec, cases, case_bytes, budget,
        lambda n: f"the case's tensors need {_fmt_bytes(n)}, over the {_fmt_bytes(budget)} a "
                  "verified test case may use",
        "test at smaller sizes (latency at full size: nkigen tune --sizes, or "
        "nkigen.compile(spec).report(...))")


def case_tiles(spec: Spec, free: dict[str, int]) -> int | None:
    """The most tiles one statement iterates over at the free sizes ``free``, counting only the
    indices the spec's ``schedule.tiles`` sizes (the others as one tile); None without tile
    hints or when the sizes cannot be computed."""
    import sympy

    from nkigen.analysis.sizes import complete_sizes, eval_size_expr
    from nkigen.ir import index_symbol

    if not spec.schedule.tiles:
        return None
    try:
        sizes = complete_sizes(spec, free)
    except Exception:       # sizes the analysis rejects are reported by the analysis
        return None
    most = 0
    for st in spec.statements:
        count = 1
        for name, t in spec.schedule.tiles:
            ext = None
            for a in accesses(st.rhs) + _lhs_access(st):
                for d, e in enumerate(a.indices):
                    if sympy.sympify(e) == index_symbol(name):
                        ext = eval_size_expr(spec.tensor(a.tensor).shape[d], sizes)
                        break
                if ext is not None:
                    break
            if ext is not None and t > 0:
                count *= -(-ext // t)
        most = max(most, count)
    return most


def _lhs_access(st) -> tuple:
    """The statement's target as an access (its left-hand indices)."""
    from nkigen.ir import Access, index_symbol

    return (Access(st.target, tuple(index_symbol(i) for i in st.lhs)),)


def case_tile_diagnostics(spec: Spec, cases: Iterable[dict[str, int]] | None = None,
                          budget: int = CASE_TILE_BUDGET) -> list[Diagnostic]:
    """An error per test case whose hinted tiles make one statement iterate over more than
    ``budget`` tiles (tiny ``schedule.tiles`` on large cases: hours of simulation)."""
    return _over_budget(
        spec, cases, case_tiles, budget,
        lambda n: f"schedule.tiles make one statement run {n:,} tiles at this case, over the "
                  f"{budget:,} a verified test case may simulate",
        "use larger tiles (or none: the planner's defaults), or test at smaller sizes")


def case_input_diagnostics(spec: Spec, cases: Iterable[dict[str, int]] | None = None
                           ) -> list[Diagnostic]:
    """An error per ``dist: integers`` input whose size-expression range (spec language 1.1,
    ``high: "C - 1"``) is empty or leaves int64 at a test case (default: the spec's
    ``tests.cases``): the build could not draw its data (NumPy's ``Generator.integers``
    refuses ``low > high``). Located at the input's ``tests.inputs`` entry; nothing is drawn."""
    from nkigen.analysis.sizes import complete_sizes
    from nkigen.ir import Dist

    given = cases is None
    todo = [dict(c) for c in spec.tests.cases] if given else [dict(c) for c in cases or ()]
    out: list[Diagnostic] = []
    for name, dist in spec.tests.inputs:
        if dist.dist is not Dist.INTEGERS or (dist.a_expr is None and dist.b_expr is None):
            continue
        for i, c in enumerate(todo):
            try:
                env = {**spec.param_values(), **complete_sizes(spec, c)}
            except Exception:       # sizes the analysis rejects are reported by the analysis
                continue
            lo = _at(dist.a_expr, env, dist.a)
            hi = _at(dist.b_expr, env, dist.b)
            if lo <= hi and lo >= -2 ** 63 and hi < 2 ** 63 - 1:
                continue
            shown = ", ".join(f"{k}={v}" for k, v in sorted(c.items()))
            where = f"tests.cases[{i}]" if given else "a derived test case"
            what = "empty (low > high)" if lo > hi else "outside int64"
            out.append(Diagnostic(
                spec.loc_of(f"tests.inputs.{name}") or spec.loc or Loc(spec.path),
                f"tests.inputs.{name}",
                f"the integers range of {name} is {what} at {where} ({shown}), so its test "
                "data cannot be drawn", f"low {_shown(dist.a_expr, lo)}, high "
                f"{_shown(dist.b_expr, hi)}",
                "give low <= high at every test case (e.g. high: \"C - 1\" needs C >= 1 + "
                "low), or change the case"))
            break
    return out


def _at(e: object, env: dict, default: float) -> int:
    """A distribution bound at the sizes ``env`` (the same sympy evaluation as the draw's)."""
    import sympy

    if e is None:
        return int(default)
    x = sympy.sympify(e)
    return int(x.xreplace({s: env[s.name] for s in x.free_symbols if s.name in env}))


def _shown(e: object, v: int) -> str:
    from nkigen.analysis.printing import expr_text

    return f"{v}" if e is None else f"{expr_text(e)} = {v}"


def argindex_diagnostics(spec: Spec, extents: Sequence[tuple[str, object]]) -> list[Diagnostic]:
    """An error per ``t[..] = argmax(e, n)`` / ``argmin`` whose 8-bit integer target cannot hold
    every index ``0 .. extent(n) - 1`` the sizes allow (not provable over the size domain).

    NKI documents no conversion of an out-of-range value to an integer dtype (SH
    nki/api/nki.api.shared.rst, nki 0.3: arithmetic is float32, the integer dtypes carry no
    saturation rule), so such an index has no defined value; the build rejects out-of-range
    integer results of the test data too (:func:`nkigen.reference.first_integer_overflow`).
    int32 holds every index a test case can have (:data:`CASE_BUDGET_BYTES` is under 2**31
    elements)."""
    import sympy

    from nkigen.analysis.prover import prove_nonneg
    from nkigen.analysis.sizes import size_domain
    from nkigen.ir import Reduce

    ext = {n: sympy.sympify(e) for n, e in extents}
    dom = None
    out = []
    for st in spec.statements:
        r = st.rhs
        d = spec.tensor(st.target).dtype
        if not (isinstance(r, Reduce) and r.op.is_arg and d.is_integer and d.itemsize == 1
                and len(r.indices) == 1 and r.indices[0] in ext):
            continue
        n = r.indices[0]
        hi = int(d.value_range[1])
        dom = dom if dom is not None else size_domain(spec)
        if prove_nonneg(hi + 1 - ext[n], dom).proven:
            continue
        field = f"compute[{st.position}]"
        out.append(Diagnostic(
            st.loc or spec.loc_of(field) or Loc(spec.path), field,
            f"statement {st.position} `{st.text}`: {r.op.value} gives indices up to "
            f"{ext[n]} - 1, which {st.target} ({d.value}, at most {hi}) cannot hold at every "
            "allowed size; NKI documents no conversion of an out-of-range value to an integer "
            "dtype (SH nki/api/nki.api.shared.rst, nki 0.3)", d.value,
            f"declare {st.target} int32, or bound {ext[n]} to at most {hi + 1} (sizes: max)"))
    return out


def duplicate_name_diagnostics(specs: Sequence[Spec]) -> list[Diagnostic]:
    """An error on each spec whose kernel name another spec of ``specs`` also uses."""
    by_name: dict[str, list[Spec]] = {}
    for s in specs:
        by_name.setdefault(s.name, []).append(s)
    out = []
    for s in specs:
        same = by_name[s.name]
        if len(same) > 1:
            others = ", ".join(o.path for o in same if o is not s)
            out.append(Diagnostic(s.loc_of("name") or Loc(s.path), "name",
                                  "kernel names must be unique in a library",
                                  f"'{s.name}' is also defined by {others}",
                                  "rename one of the kernels"))
    return out


def warnings_of(spec: Spec) -> list[SpecWarning]:
    """Dead stores, unused inputs and ``+=`` with nothing to sum, in source order."""
    out: list[Diagnostic] = []
    ranged = {name for name, _ in spec.ranges}
    last_write: dict[str, int] = {}         # tensor -> position of its last unread `=` write
    written: set[str] = set()
    read: set[str] = set()
    sts = spec.statements
    for st in sts:
        for a in accesses(st.rhs):
            read.add(a.tensor)
            last_write.pop(a.tensor, None)
        field = f"compute[{st.position}]"
        if st.op is AssignOp.ACCUMULATE:
            if not st.sum_indices and st.target not in written:
                out.append(Diagnostic(
                    st.loc or spec.loc_of(field), field,
                    "'+=' with nothing to sum: every index on the right also indexes "
                    f"{st.target}, and nothing was written to {st.target} before",
                    st.text, "use '=' (or sum over an index that is not on the left)"))
            last_write.pop(st.target, None)  # `+=` reads its target
        else:
            prev = last_write.get(st.target)
            if prev is not None and not (ranged & (set(st.lhs) | set(sts[prev].lhs))):
                first = sts[prev]
                out.append(Diagnostic(
                    first.loc or spec.loc_of(f"compute[{prev}]"), f"compute[{prev}]",
                    f"dead store: {st.target} is written again by compute[{st.position}] "
                    "before anything reads it", first.text,
                    f"remove this statement, or read {st.target} before compute[{st.position}]"))
            last_write[st.target] = st.position
        written.add(st.target)
    for t in spec.inputs:
        if t.name not in read:
            out.append(Diagnostic(t.loc or spec.loc_of(f"inputs.{t.name}"), f"inputs.{t.name}",
                                  f"input '{t.name}' is never read by any statement", None,
                                  "remove it, or use it in compute"))
    scanned = {st.target for st in sts if any(isinstance(x, Scan) for x in walk(st.rhs))}
    locs = dict(spec.locs)
    for t in spec.tensors:
        field = f"{t.role.value}s.{t.name}.initial"
        at = locs.get(field)
        if at is not None and t.name not in scanned:
            out.append(Diagnostic(at, field,
                                  f"'initial:' of {t.name} has no effect: no statement reads "
                                  f"{t.name} one step back (a recurrence), and only a recurrence "
                                  "starts from it", None,
                                  "remove 'initial:', or write the recurrence, e.g. "
                                  "h[c, t] = a * h[c, t - 1] + x[c, t]"))
    out += integer_sum_diagnostics(spec)
    out.sort(key=lambda d: (d.loc.line if d.loc else 0, d.loc.col if d.loc else 0))
    return [SpecWarning(d) for d in out]


# Integer sums accumulate in float32 on chip: TensorE in fp32 PSUM (SH nki/api/nki/isa
# nc_matmul, nki 0.3), VectorE/GpSimd reductions and scans in fp32 arithmetic (SH
# nki.api.shared.rst "Supported Math Operators"); an integer result is exact while every
# partial sum stays within 2**24 (review 12 R12-4).
FP32_EXACT = 1 << 24


def integer_sum_diagnostics(spec: Spec) -> list[Diagnostic]:
    """Warnings for sums into integer tensors (``+=``, ``sum``, ``cumsum``) whose partial sums
    can pass 2**24 at the sizes' maxima: the on-chip float32 accumulation then rounds, while
    the float64 reference does not (int8 x int8 over K = 4096 reaches 66,060,288)."""
    from nkigen.analysis.indices import extents_of
    from nkigen.analysis.sizes import at_max
    from nkigen.ir import Access, BinOp, BinOpKind, Const, Neg, Reduce, ReduceKind

    decl = {t.name: t for t in spec.tensors}
    try:
        ext = extents_of(spec, None)        # index -> extent: the ranges, else its dimension
    except KeyError:                        # an undeclared tensor: reported, located, elsewhere
        return []

    def extent(idx: str) -> int | None:
        return at_max(spec, ext[idx]) if idx in ext else None

    def bound(e) -> int | None:          # the largest |value| of an integer expression
        if isinstance(e, Access):
            t = decl.get(e.tensor)
            if t is None or not t.dtype.is_integer or e.indirect:
                return None
            lo, hi = t.dtype.value_range
            return int(max(-lo, hi))
        if isinstance(e, Const):
            return abs(int(e.value)) if float(e.value).is_integer() else None
        if isinstance(e, Neg):
            return bound(e.operand)
        if isinstance(e, BinOp) and e.op is not BinOpKind.DIV:
            a, b = bound(e.lhs), bound(e.rhs)
            if a is None or b is None:
                return None
            return a * b if e.op is BinOpKind.MUL else a + b
        return None

    out: list[Diagnostic] = []
    for st in spec.statements:
        t = decl.get(st.target)
        if t is None or not t.dtype.is_integer:
            continue
        sums: list[tuple[object, tuple[str, ...]]] = []
        if st.op is AssignOp.ACCUMULATE and st.sum_indices:
            sums.append((st.rhs, st.sum_indices))
        for x in walk(st.rhs):
            if isinstance(x, Reduce) and x.op is ReduceKind.SUM:
                sums.append((x.body, x.indices))
            elif isinstance(x, Scan) and isinstance(x.a, Const) and x.a.value == 1:
                sums.append((x.b, (x.index,)))          # cumsum
        for body, idx in sums:
            each = bound(body)
            counts = [extent(i) for i in idx]
            if each is None:
                continue
            field = f"compute[{st.position}]"
            if any(c is None for c in counts):
                total, got = None, "a summed index has no max size"
            else:
                n = 1
                for c in counts:
                    n *= c or 1
                total, got = each * n, f"up to {n:,} terms of up to {each:,}"
            if total is None or total > FP32_EXACT:
                out.append(Diagnostic(
                    st.loc or spec.loc_of(field), field,
                    f"an integer sum into {st.target} ({t.dtype.value}) accumulates in float32 "
                    "on chip and is exact only up to 2**24 = 16,777,216 (TensorE PSUM, VectorE "
                    "arithmetic: SH nki.isa nc_matmul, nki.api.shared Supported Math Operators)",
                    got + (f": {total:,}" if total is not None else ""),
                    "lower the summed size's max or the operands' range, or sum into a float "
                    "tensor"))
    return out


__all__ = ["CASE_BUDGET_BYTES", "CASE_TILE_BUDGET", "SpecWarning", "argindex_diagnostics",
           "case_bytes",
           "case_memory_diagnostics", "case_tile_diagnostics", "case_tiles",
           "duplicate_name_diagnostics", "integer_sum_diagnostics", "warnings_of"]
