"""Stage: library (derived cases). A generated kernel + the spec's test cases -> the extra cases
that make the build verify every trace-time size branch of the kernel.

Input: the spec, the kernel source (:mod:`nkigen.library.branches` finds its branches), the
dialect and the test cases the build verifies. Output: a :class:`Coverage`: per branch outcome,
the cases reaching it, and for each outcome no case reaches, one of

- a **derived case** reaching it, verified by the build exactly like a declared one;
- **unverified**: the smallest case found that reaches it is over :data:`MAX_ELEMENTS` tensor
  elements (or a memory / tile budget of :mod:`nkigen.analysis.checktime`): too large to
  simulate, said in the manifest and the build summary;
- **unreachable**: no legal sizes reaching it were found (the search below): dead for this spec.

Search, per uncovered outcome: from every test case, cheapest first, move one free size to the
nearest legal values (within ``min``/``max``, a multiple of ``multiple_of``) on each side where
the kernel reaches the outcome: a scan of the nearest :data:`SCAN` legal values, then galloping
steps to the end of the range and a bisection back to the nearest point found. Monotonicity is
never assumed for the answer: every candidate is a point where the reach condition was
evaluated true and the size assignment passes the frontend's own check of declared cases
(:func:`nkigen.analysis.sizes.check_sizes`). Then, only if no one-size move reaches it, two
sizes of the cheapest case (the first moved to where one condition on the way flips). The
found case is then shrunk: each size in turn moved down as far as the outcome is still
reached. The candidate with the fewest tensor elements wins (ties: fewest sizes moved, then
the case's values), so the result is deterministic. When nothing is found and the size space
holds at most :data:`EXHAUSTIVE` assignments, every one is checked (then "unreachable" is
proven; otherwise it means "none found", and the manifest words it so).
"""

from __future__ import annotations

import ast
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nkigen.library.branches import (
    Branch,
    Guard,
    NotSizeValue,
    conjuncts,
    evaluate,
    find_branches,
    outcome_name,
    reaches,
)

MAX_ELEMENTS = 1 << 21
"""Largest total element count (every input, output and temp tensor) of a derived case: a
larger one is reported as an unverified branch instead of being simulated (the shipped specs'
cases stay under 300,000 elements per tensor; a derived case may take a few of those)."""

EXHAUSTIVE = 4096   # a size space this small is searched exhaustively when nothing was found
SCAN = 16          # legal values scanned on each side of the starting value before galloping
MAX_EVALS = 20000  # reach evaluations per outcome searched (a bound on the search's time)


@dataclass(frozen=True)
class Side:
    """One outcome of one branch and how the build covers it."""

    branch: Branch
    outcome: bool
    status: str                         # "verified" | "unverified" | "unreachable"
    cases: tuple[str, ...] = ()         # names of the verified cases reaching it
    sizes: dict[str, int] | None = None  # unverified: the smallest case found reaching it
    elements: int | None = None         # unverified: its tensor elements
    why: str = ""                       # unverified / unreachable: the reason, worded

    @property
    def label(self) -> str:
        return outcome_name(self.branch, self.outcome)


@dataclass(frozen=True)
class Derived:
    """A derived case: free sizes, and the branch outcome it was made for."""

    sizes: dict[str, int]
    branch: Branch
    outcome: bool
    elements: int

    def reason(self, kernel_path: str) -> str:
        return (f"reaches the {outcome_name(self.branch, self.outcome)} side of "
                f"`{self.branch.text}` at {kernel_path}:{self.branch.line}, which no test case "
                "reaches")


@dataclass(frozen=True)
class Coverage:
    branches: tuple[Branch, ...]
    derived: tuple[Derived, ...]
    unverified: tuple[Side, ...]
    unreachable: tuple[Side, ...]


@dataclass
class _Space:
    """The spec's size space: legal values, validity, environments, element counts (memoized)."""

    spec: Any
    limit: int
    _env: dict[tuple, dict[str, int] | None] = field(default_factory=dict)
    _elems: dict[tuple, int | None] = field(default_factory=dict)
    _raw: dict[tuple, dict[str, int] | None] = field(default_factory=dict)
    evals: int = 0

    def __post_init__(self) -> None:
        from nkigen.analysis.sizes import MAX_SIZE

        self.free = [s for s in self.spec.sizes if not s.derived]
        self.names = [s.name for s in self.free]
        self.grid: dict[str, tuple[int, int, int]] = {}   # name -> (lo, step, count)
        for s in self.free:
            m = s.multiple_of or 1
            lo = -(-max(1, s.min) // m) * m
            hi = min(s.max if s.max is not None else MAX_SIZE, MAX_SIZE) // m * m
            self.grid[s.name] = (lo, m, max(0, (hi - lo) // m + 1))

    def key(self, case: Mapping[str, int]) -> tuple:
        return tuple(int(case[n]) for n in self.names)

    def env(self, case: Mapping[str, int]) -> dict[str, int] | None:
        """Every size (derived ones computed) of a valid case, else None (the frontend's
        check of declared test cases decides)."""
        k = self.key(case)
        if k not in self._env:
            from nkigen.analysis.sizes import check_sizes, complete_sizes

            self.evals += 1
            case = dict(zip(self.names, k))
            if check_sizes(self.spec, case):
                self._env[k] = None
            else:
                env = complete_sizes(self.spec, case)
                self._env[k] = env if _drawable(self.spec, env) else None
        return self._env[k]

    def raw_env(self, case: Mapping[str, int]) -> dict[str, int] | None:
        """Every size of ``case`` (derived ones computed), valid or not; None if they do not
        compute."""
        k = self.key(case)
        if k not in self._raw:
            from nkigen.analysis.sizes import complete_sizes
            from nkigen.diagnostics import NkigenError

            try:
                self._raw[k] = complete_sizes(self.spec, dict(zip(self.names, k)))
            except (NkigenError, ValueError, TypeError, ZeroDivisionError):
                self._raw[k] = None
        return self._raw[k]

    def elements(self, case: Mapping[str, int]) -> int | None:
        """Elements of every tensor at ``case`` (None if a shape does not evaluate)."""
        k = self.key(case)
        if k not in self._elems:
            from nkigen.analysis.sizes import eval_size_expr

            env = self.env(case)
            total: int | None = 0
            if env is None:
                total = None
            else:
                for t in self.spec.tensors:
                    dims = [eval_size_expr(d, env) for d in t.shape]
                    if any(d is None or d < 0 for d in dims):
                        total = None
                        break
                    assert total is not None
                    total += math.prod(d for d in dims if d is not None)
            self._elems[k] = total
        return self._elems[k]


def _drawable(spec: Any, env: Mapping[str, int]) -> bool:
    """Whether the test inputs can be drawn at sizes ``env``: every ``tests.inputs`` bound given
    as a size expression (``high: "V - 1"``) leaves ``low <= high`` (a derived case must not
    fail for its data where the declared ones do not)."""
    from nkigen.ir import Dist
    from nkigen.testdata import _case_value

    for _name, d in spec.tests.inputs:
        if (d.a_expr is None and d.b_expr is None) or \
                d.dist not in (Dist.INTEGERS, Dist.UNIFORM, Dist.POSITIVE):
            continue
        full = {**spec.param_values(), **env}
        try:
            if _case_value(d.a_expr, full, d.a) > _case_value(d.b_expr, full, d.b):
                return False
        except (TypeError, ValueError, ZeroDivisionError):
            return False
    return True


def _holds(space: _Space, pred: Callable[[dict[str, int]], bool],
           case: Mapping[str, int]) -> bool:
    env = space.env(case)
    return env is not None and pred(env)


def _roots(space: _Space, tests: Sequence[ast.expr], base: dict[str, int], name: str
           ) -> set[int]:
    """Grid indices of size ``name`` near where a comparison of ``tests`` changes sign, each
    ``left - right`` solved as an affine function of the size through pairs of sample points
    (exact for the affine tests a planner prints, ``26 * D + 28 < 202335``; a first guess for a
    stepwise one such as ``-(-N // 2048)``); candidates only: the caller evaluates them."""
    lo, step, count = space.grid[name]
    k0 = (base[name] - lo) // step
    samples = sorted({k for k in (0, k0, k0 + 1, k0 + 64, k0 + 4096, count // 2, count - 1)
                      if 0 <= k < count})
    envs = {k: space.raw_env({**base, name: lo + k * step}) for k in samples}
    out: set[int] = set()
    for c in tests:
        if not (isinstance(c, ast.Compare) and len(c.comparators) == 1):
            continue
        g: dict[int, float] = {}
        for k, env in envs.items():
            try:
                v = evaluate(c.left, env or {}) - evaluate(c.comparators[0], env or {})
            except (NotSizeValue, TypeError):
                continue
            if isinstance(v, (int, float)) and math.isfinite(v):
                g[k] = v
        pts = sorted(g)
        for i, ka in enumerate(pts):
            for kb in pts[i + 1:]:
                if g[ka] == g[kb]:
                    continue
                root = ka - g[ka] * (kb - ka) / (g[kb] - g[ka])   # in grid steps
                if not -2 <= root <= count + 2:
                    continue
                base_k = math.floor(root)
                out.update(k for k in range(base_k - 2, base_k + 4) if 0 <= k < count)
    return out


def _nearest(space: _Space, pred: Callable[[dict[str, int]], bool], base: dict[str, int],
             name: str, tests: Sequence[ast.expr] = ()) -> list[int]:
    """Values of size ``name`` nearest to ``base[name]`` on each side (the other sizes as in
    ``base``) at which ``pred`` holds, each checked by evaluation; at most two. ``tests``: the
    comparisons ``pred`` is made of, solved for their sign changes (:func:`_roots`) besides the
    scan and the galloping search (which can step over a narrow window of legal values)."""
    lo, step, count = space.grid[name]
    if count == 0:
        return []
    k0 = (base[name] - lo) // step
    memo: dict[int, bool] = {}

    def ok(k: int) -> bool:
        if k not in memo:
            if space.evals > space.limit:
                raise _Budget()
            memo[k] = _holds(space, pred, {**base, name: lo + k * step})
        return memo[k]

    roots = sorted(_roots(space, tests, base, name)) if tests else []
    found = []
    for sign in (1, -1):
        best = None
        for j in range(1, SCAN + 1):
            k = k0 + sign * j
            if not 0 <= k < count:
                break
            if ok(k):
                best = k
                break
        if best is None:
            prev, j = k0 + sign * SCAN, 2 * SCAN
            while True:
                k = k0 + sign * j
                k = min(max(k, 0), count - 1)
                if (k - prev) * sign <= 0:
                    break
                if ok(k):
                    a, b = prev, k       # pred false at a (or a is out of the scanned side)
                    while abs(b - a) > 1:
                        mid = (a + b) // 2
                        a, b = (a, mid) if ok(mid) else (mid, b)
                    best = b
                    break
                prev = k
                j *= 2
        side = [k for k in roots if (k - k0) * sign > 0 and ok(k)]
        if side:
            near = min(side, key=lambda k: abs(k - k0))
            if best is None or abs(near - k0) < abs(best - k0):
                best = near
        if best is not None:
            found.append(lo + best * step)
    return found


SHRINK_FLOOR = 2    # sizes a derived case is shrunk to at the least (see _shrink)


class _Budget(Exception):
    """The search ran out of evaluations."""


def _shrink(space: _Space, pred: Callable[[dict[str, int]], bool],
            case: dict[str, int]) -> dict[str, int]:
    """``case`` with each size in turn moved down as far as ``pred`` still holds (checked), but
    not below :data:`SHRINK_FLOOR` (or its starting value, if smaller): a size of 1 turns a
    reduction over it into a copy, whose reference can be an exact cancellation (``x -
    log(sum(exp(x[j, n]), j))`` is 0 at one row) that no float32 kernel matches within the
    tolerance the reference's magnitude gives."""
    floor = {n: min(case[n], SHRINK_FLOOR) for n in space.names}
    for _ in range(2):
        before = dict(case)
        for n in space.names:
            lo0, step, _count = space.grid[n]
            lo = lo0 + max(0, -(-(floor[n] - lo0) // step)) * step    # first grid value >= floor
            k_hi = (case[n] - lo) // step
            if k_hi <= 0:
                continue
            if _holds(space, pred, {**case, n: lo}):
                case = {**case, n: lo}
                continue
            a, b = 0, k_hi                     # false at a, true at b
            while b - a > 1:
                mid = (a + b) // 2
                a, b = (a, mid) if _holds(space, pred, {**case, n: lo + mid * step}) else (mid, b)
            case = {**case, n: lo + b * step}
        if case == before:
            break
    return case


def _guard_pred(g: Guard) -> Callable[[dict[str, int]], bool]:
    def pred(env: dict[str, int]) -> bool:
        try:
            return bool(evaluate(g.test, env)) == g.outcome
        except NotSizeValue:
            return False
    return pred


@dataclass
class SearchNote:
    """How a search that found nothing ended (for the manifest's wording)."""

    exhaustive: bool = False      # every legal assignment was checked: proven unreachable
    out_of_budget: bool = False   # stopped after MAX_EVALS evaluations
    checked: int = 0


def search(spec: Any, branch: Branch, outcome: bool, bases: list[dict[str, int]],
           limit: int = MAX_EVALS, note: SearchNote | None = None
           ) -> tuple[dict[str, int], int] | None:
    """The smallest case found reaching ``outcome`` of ``branch`` (free sizes, elements), or
    None (see the module docstring); ``note`` says how a fruitless search ended."""
    note = note if note is not None else SearchNote()
    space = _Space(spec, limit)

    def pred(env: dict[str, int]) -> bool:
        return reaches(branch, outcome, env)

    def weight(c: dict[str, int], moved: int) -> tuple:
        n = space.elements(c)
        return (n if n is not None else math.inf, moved, space.key(c))

    compares = _compares([g.test for ctx in conjuncts(branch, outcome) for g in ctx])
    cands: list[tuple[tuple, dict[str, int]]] = []
    ordered = sorted((b for b in bases if space.env(b) is not None),
                     key=lambda b: weight(b, 0))
    try:
        for base in ordered:
            for n in space.names:
                for v in _nearest(space, pred, base, n, compares):
                    c = _shrink(space, pred, {**base, n: v})
                    cands.append((weight(c, 1), c))
        if not cands and ordered and len(space.names) > 1:
            base = ordered[0]
            ways = [g for ctx in conjuncts(branch, outcome) for g in ctx]
            for n1 in space.names:
                firsts = {base[n1]}
                for g in ways:
                    firsts.update(_nearest(space, _guard_pred(g), base, n1,
                                           _compares([g.test])))
                for v1 in sorted(firsts):
                    moved = {**base, n1: v1}
                    for n2 in space.names:
                        if n2 == n1:
                            continue
                        for v2 in _nearest(space, pred, moved, n2, compares):
                            c = _shrink(space, pred, {**moved, n2: v2})
                            cands.append((weight(c, 2), c))
        total = math.prod(space.grid[n][2] for n in space.names)
        if not cands and total <= EXHAUSTIVE:
            # a small size space: every legal assignment, so "unreachable" is a proof
            for ks in itertools.product(*(range(space.grid[n][2]) for n in space.names)):
                c = {n: space.grid[n][0] + k * space.grid[n][1]
                     for n, k in zip(space.names, ks)}
                if _holds(space, pred, c):
                    cands.append((weight(c, len(space.names)), c))
            note.exhaustive = not cands
    except _Budget:
        note.out_of_budget = True
    note.checked = total if note.exhaustive else space.evals
    cands = [c for c in cands if _holds(space, pred, c[1])]
    if not cands:
        return None
    w, best = min(cands, key=lambda c: c[0])
    return best, int(w[0]) if w[0] != math.inf else -1


def _unreached(note: SearchNote) -> str:
    if note.exhaustive:
        return f"no legal sizes reach it: all {note.checked:,} size assignments within " \
               "min, max and multiple_of checked"
    how = "one and two sizes moved from the test cases to the nearest values where a " \
          "condition on the way flips"
    if note.out_of_budget:
        how += f"; the search stopped after {note.checked:,} evaluations"
    return f"no legal sizes reaching it were found ({how})"


def _compares(tests: Iterable[ast.expr]) -> list[ast.expr]:
    """Every comparison inside ``tests`` (a guard may be ``a < b and c == d``), de-duplicated."""
    seen: dict[str, ast.expr] = {}
    for t in tests:
        for n in ast.walk(t):
            if isinstance(n, ast.Compare):
                seen.setdefault(ast.dump(n), n)
    return list(seen.values())


def _too_big(spec: Any, case: dict[str, int], elements: int) -> str | None:
    """Why ``case`` is too large to simulate, or None."""
    from nkigen.analysis.checktime import (
        CASE_BUDGET_BYTES,
        CASE_TILE_BUDGET,
        case_bytes,
        case_tiles,
    )

    if elements < 0 or elements > MAX_ELEMENTS:
        return f"{elements:,} tensor elements, over the {MAX_ELEMENTS:,} a derived case may " \
               "simulate"
    nb = case_bytes(spec, case)
    if nb is not None and nb > CASE_BUDGET_BYTES:
        return f"{nb:,} bytes of tensors, over the {CASE_BUDGET_BYTES:,} a test case may use"
    nt = case_tiles(spec, case)
    if nt is not None and nt > CASE_TILE_BUDGET:
        return f"{nt:,} tiles in one statement, over the {CASE_TILE_BUDGET:,} a test case may " \
               "simulate"
    return None


def _env_of(spec: Any, case: Mapping[str, int]) -> dict[str, int] | None:
    from nkigen.analysis.sizes import complete_sizes
    from nkigen.diagnostics import NkigenError

    try:
        return complete_sizes(spec, {k: int(v) for k, v in case.items()})
    except NkigenError:
        return None


def derive(spec: Any, source: str, dialect: str, cases: Iterable[Mapping[str, int]],
           kernel: str | None = None) -> Coverage:
    """The branches of ``source`` and the derived cases (and unverified / unreachable branch
    outcomes) that complete the coverage of ``cases``; deterministic."""
    branches = find_branches(source, kernel or spec.name, {s.name for s in spec.sizes},
                             dialect)
    if not branches:
        return Coverage((), (), (), ())
    given = [dict(c) for c in cases]
    envs = [e for e in (_env_of(spec, c) for c in given) if e is not None]
    derived: list[Derived] = []
    unverified: list[Side] = []
    unreachable: list[Side] = []
    for b in branches:
        for outcome in (True, False):
            if any(reaches(b, outcome, e) for e in envs):
                continue
            note = SearchNote()
            found = search(spec, b, outcome, given + [d.sizes for d in derived], note=note)
            if found is None:
                unreachable.append(Side(b, outcome, "unreachable", why=_unreached(note)))
                continue
            sizes, n = found
            big = _too_big(spec, sizes, n)
            if big is not None:
                unverified.append(Side(b, outcome, "unverified", sizes=sizes, elements=n,
                                       why=f"the smallest case found reaching it has {big}"))
                continue
            derived.append(Derived(sizes, b, outcome, n))
            env = _env_of(spec, sizes)
            if env is not None:
                envs.append(env)
    return Coverage(branches, tuple(derived), tuple(unverified), tuple(unreachable))


def sides(cov: Coverage, spec: Any,
          named: Sequence[tuple[str, Mapping[str, int]]]) -> list[Side]:
    """Every branch outcome with the verified cases (name, free sizes) reaching it."""
    envs = [(n, _env_of(spec, c)) for n, c in named]
    special = {(s.branch.key, s.outcome): s for s in cov.unverified + cov.unreachable}
    out = []
    for b in cov.branches:
        for outcome in (True, False):
            hit = tuple(n for n, e in envs if e is not None and reaches(b, outcome, e))
            s = special.get((b.key, outcome))
            if hit or s is None:
                out.append(Side(b, outcome, "verified" if hit else "unreachable", hit))
            else:
                out.append(s)
    return out


def manifest_branches(cov: Coverage, spec: Any, named: Sequence[tuple[str, Mapping[str, int]]],
                      kernel_path: str) -> list[dict]:
    """The manifest's ``branches`` list: one entry per branch, each outcome's coverage."""
    by: dict[tuple[int, int], list[Side]] = {}
    for s in sides(cov, spec, named):
        by.setdefault(s.branch.key, []).append(s)
    out = []
    for b in cov.branches:
        entry: dict[str, Any] = {
            "at": f"{kernel_path}:{b.line}",
            "line": b.line,
            "kind": b.kind,
            "condition": b.text,
            "over_sizes": b.sizes_text,
            "outcomes": [],
        }
        for s in by[b.key]:
            o: dict[str, Any] = {"outcome": s.label, "status": s.status,
                                 "cases": list(s.cases)}
            if s.sizes is not None:
                o["sizes"] = dict(sorted(s.sizes.items()))
            if s.elements is not None:
                o["elements"] = s.elements
            if s.why:
                o["why"] = s.why
            entry["outcomes"].append(o)
        out.append(entry)
    return out


def describe(cov: Coverage, spec: Any, given: list[dict[str, int]], kernel_path: str,
             dialect: str, order: list[str], case_name: Callable[..., str]) -> str:
    """``nkigen explain``'s section: each branch, the cases reaching each side, and what the
    build adds (derived cases) or reports (unverified, unreachable sides)."""
    head = (f"\ntrace-time size branches of the {dialect} kernel (the build verifies each side: "
            "a derived case for a side no test case reaches)\n")
    if not cov.branches:
        return head + "  none\n"
    named = [(case_name(c, order), c) for c in given] + \
        [(case_name(d.sizes, order) + " (derived)", d.sizes) for d in cov.derived]
    lines = [head.rstrip("\n")]
    for b in cov.branches:
        lines.append(f"  {kernel_path}:{b.line}  {'if ' if b.kind == 'if' else ''}{b.text}"
                     + (f"   [sizes: {b.sizes_text}]" if b.sizes_text != b.text else ""))
        for s in sides(cov, spec, named):
            if s.branch.key != b.key:
                continue
            what = ", ".join(s.cases) if s.cases else s.status
            if s.status == "unverified" and s.sizes is not None:
                what += f": {case_name(s.sizes, order)}, {s.why}"
            lines.append(f"    {s.label}: {what}")
    return "\n".join(lines) + "\n"
