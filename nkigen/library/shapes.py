"""Stage: library (helpers). A spec + a size assignment -> concrete sizes and input shapes.

Input: a :class:`nkigen.ir.Spec` and the free sizes of one case. Output: every size (derived ones
computed) and the integer shape of each input, using the reference's own size resolution so the
build, the reference and the goldens agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # nkigen.ir imports sympy: not needed to carry a cached kernel over
    from nkigen.ir import Spec


def input_shapes(spec: Spec, sizes: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Shape of every input of ``spec`` for the free sizes ``sizes``."""
    from nkigen.reference import resolve_sizes, shape_of

    env = {**spec.param_values(), **resolve_sizes(spec, sizes)}
    return {t.name: shape_of(t, env) for t in spec.inputs}
