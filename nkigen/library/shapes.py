"""Stage: library (helpers). A spec + a size assignment -> concrete sizes and tensor shapes.

Input: a :class:`nkigen.ir.Spec` and the free sizes of one case. Output: every size (derived ones
computed from their ``value`` expressions) and the integer shape of each tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy

from nkigen.ir import Spec, TensorDecl, size_symbol


def all_sizes(spec: Spec, sizes: Mapping[str, int]) -> dict[str, int]:
    """``sizes`` plus every derived size, computed in declaration order."""
    env = {k: int(v) for k, v in sizes.items()}
    for sd in spec.sizes:
        if sd.derived and sd.name not in env:
            env[sd.name] = _int(sd.value, env)
    return env


def shape_of(t: TensorDecl, env: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(_int(d, env) for d in t.shape)


def _int(e, env: Mapping[str, int]) -> int:
    v = sympy.sympify(e).subs({size_symbol(k): sympy.Integer(x) for k, x in env.items()})
    if not v.is_number:
        raise ValueError(f"size expression {e} is not fixed by sizes {dict(env)}")
    return int(v)


def elements(spec: Spec, sizes: Mapping[str, int]) -> int:
    """Total elements of all inputs and outputs: how large a case is."""
    env = all_sizes(spec, sizes)
    total = 0
    for t in spec.inputs + spec.outputs:
        n = 1
        for d in shape_of(t, env):
            n *= d
        total += n
    return total
