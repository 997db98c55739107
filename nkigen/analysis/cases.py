"""Stage analyze (cases): size constraints -> small valid and deliberately invalid size cases.

Input: a :class:`nkigen.ir.Spec`. Output: ``default_cases`` (one or two small assignments of the
free sizes that satisfy every constraint, one ragged when possible), used when a spec has no
``tests``, and ``invalid_cases`` (assignments breaking one constraint, with a substring of the
rejection message), used by the build's negative tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from nkigen.analysis.sizes import check_sizes, complete_sizes, eval_size_expr, size_rule_message
from nkigen.diagnostics import NkigenError
from nkigen.ir import SizeDecl, Spec

_ALIGNED = (256, 128, 384, 512)
_RAGGED = (200, 130, 100, 70, 37, 17, 9, 5, 3, 2, 1, 300)
_SMALL = (1, 2, 3, 4, 5, 7, 8, 16, 32, 64)


def _candidates(s: SizeDecl, ragged: bool) -> list[int]:
    m = s.multiple_of or 1
    lo, hi = max(1, s.min), s.max
    if hi is not None and hi < 128:      # a small dimension (a batch, a filter): keep it small
        pref = [3, 2, 5] if ragged else [2, 4, 3]
    else:
        pref = list(_RAGGED if ragged and m == 1 else _ALIGNED)
    pref += list(_RAGGED) + list(_SMALL)
    pref += [-(-lo // m) * m, -(-lo // m) * m + m, 128 * m]
    if hi is not None:
        pref += [hi - hi % m, (lo + hi) // 2 // m * m]
    out: list[int] = []
    for v in pref:
        if v >= lo and v % m == 0 and (hi is None or v <= hi) and v not in out:
            out.append(v)
    return out[:8]


def _score(spec: Spec, full: Mapping[str, int]) -> int:
    worst = 0
    for t in spec.tensors:
        for d in t.shape:
            worst = max(worst, eval_size_expr(d, full) or 0)
    return worst


def _search(spec: Spec, ragged: bool, max_tries: int = 200) -> dict[str, int] | None:
    free = [s for s in spec.sizes if not s.derived]
    cands = [_candidates(s, ragged) for s in free]
    if any(not c for c in cands):
        return None
    best: tuple[int, dict[str, int]] | None = None
    for n, pick in enumerate(_by_total([len(c) for c in cands])):
        if n >= max_tries:
            break
        case = {s.name: cands[i][j] for i, (s, j) in enumerate(zip(free, pick))}
        if check_sizes(spec, case):
            continue
        score = _score(spec, complete_sizes(spec, case))
        if best is None or score < best[0]:
            best = (score, case)
        if score <= 300:
            break
    return None if best is None else best[1]


def _by_total(lens: list[int]):
    """Index tuples into candidate lists, smallest index sum first (most preferred first)."""
    for total in range(sum(n - 1 for n in lens) + 1):
        for pick in itertools.product(*[range(min(n, total + 1)) for n in lens]):
            if sum(pick) == total:
                yield pick


def default_cases(spec: Spec) -> list[dict[str, int]]:
    """One or two small assignments of the free sizes satisfying every constraint; the second is
    ragged (not a multiple of 128) when some size has no multiple_of."""
    out: list[dict[str, int]] = []
    a = _search(spec, ragged=False)
    if a is not None:
        out.append(a)
    if any(not s.derived and s.multiple_of is None for s in spec.sizes):
        b = _search(spec, ragged=True)
        if b is not None and b not in out:
            out.append(b)
    return out


MAX_INVALID_ELEMENTS = 1 << 23   # keep negative-test inputs small (elements over all inputs)


def spec_cases(spec: Spec) -> list[dict[str, int]]:
    """The size assignments to test: ``tests.cases``, else ``nkigen.analysis.default_cases``,
    else one small assignment of our own (each free size at its smallest legal value of at
    least 2 multiples, or 5 when it has no ``multiple_of``)."""
    if spec.tests.cases:
        return [dict(c) for c in spec.tests.cases]
    found = default_cases(spec)
    if found:
        return [dict(c) for c in found]
    return [_fallback_case(spec)]


def _fallback_case(spec: Spec) -> dict[str, int]:
    case: dict[str, int] = {}
    for s in spec.free_sizes:
        m = s.multiple_of or 1
        want = max(s.min, 2 * m if s.multiple_of else 5)
        v = -(-want // m) * m
        if s.max is not None and v > s.max:
            v = -(-s.min // m) * m
        case[s.name] = v
    return case


def _volume(spec: Spec, free: Mapping[str, int]) -> int:
    """Elements over all input tensors (sizes that do not evaluate count as 1)."""
    try:
        sizes = complete_sizes(spec, free)
    except NkigenError:
        sizes = dict(free)
    total = 0
    for t in spec.inputs:
        n = 1
        for d in t.shape:
            n *= max(1, eval_size_expr(d, sizes) or 1)
        total += n
    return total


def invalid_cases(spec: Spec) -> list[tuple[dict[str, int], str]]:
    """Assignments breaking exactly one declared constraint, each with a substring of the
    rejection message (see :func:`size_rule_message`)."""
    base = default_cases(spec)
    if not base:
        return []
    good = base[0]
    smallest = {s.name: -(-max(1, s.min) // (s.multiple_of or 1)) * (s.multiple_of or 1)
                for s in spec.sizes if not s.derived}
    out: list[tuple[dict[str, int], str]] = []
    for s in spec.sizes:
        if s.derived:
            continue
        tries: list[tuple[int, str, int]] = []
        m = s.multiple_of
        if m is not None and m > 1:
            tries.append((good[s.name] + 1, "multiple_of", m))
        if s.min > 1:
            below = (s.min - 1) // (m or 1) * (m or 1)
            tries.append((below if below >= 1 else s.min - 1, "min", s.min))
        if s.max is not None:
            v = s.max + 1
            if m is not None:
                v = -(-v // m) * m
            tries.append((v, "max", s.max))
        for v, rule, bound in tries:
            want, _ = size_rule_message(s.name, v, rule, bound)
            found: list[tuple[int, dict[str, int]]] = []
            for start in (good, smallest):
                case = {**start, s.name: v}
                diags = check_sizes(spec, case)
                if diags and want in diags[0].rule and \
                        _volume(spec, case) <= MAX_INVALID_ELEMENTS:
                    found.append((len(diags), case))
            if found:   # prefer a case breaking nothing else (e.g. no derived size as well)
                out.append((min(found, key=lambda f: f[0])[1], want))
    return out
