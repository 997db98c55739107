"""Front end vs code generator: every name codegen's ``checked()`` refuses is refused earlier,
with a location, by the front end's ``reserved_reason``."""

from __future__ import annotations

import builtins
import keyword

import pytest

from nkigen.codegen.names import RESERVED, checked
from nkigen.diagnostics import NkigenError
from nkigen.frontend import load_spec_text
from nkigen.frontend.names import reserved_reason

CANDIDATES = sorted({
    *keyword.kwlist, *keyword.softkwlist, *dir(builtins), *RESERVED,
    "_", "__x", "__init__", "x", "x_", "_x", "a1", "nki", "nl", "nisa", "np", "math", "numpy",
    "a\n", "a ", " a", "é", "aé", "ſ", "a-b", "1a", "", "K", "M_", "type",
})


@pytest.mark.parametrize("name", CANDIDATES, ids=repr)
def test_frontend_refuses_what_codegen_refuses(name):
    try:
        checked(name)
    except NkigenError:
        assert reserved_reason(name) is not None, name


@pytest.mark.parametrize("name", sorted(keyword.softkwlist))
@pytest.mark.parametrize("role", ["input", "index", "kernel"])
def test_soft_keywords_are_located_errors(role, name):
    tensor = name if role == "input" else "a"
    index = name if role == "index" else "m"
    kname = name if role == "kernel" else "k"
    text = f"""\
nkigen: 1
name: {kname}
sizes: {{M: {{}}}}
inputs:
  {tensor}: {{shape: [M], dtype: float32}}
outputs:
  c: {{shape: [M], dtype: float32}}
compute:
  - c[{index}] = relu({tensor}[{index}])
"""
    with pytest.raises(NkigenError) as ei:
        load_spec_text(text, "s.yaml")
    (d,) = ei.value.diagnostics
    assert d.loc is not None and d.loc.line > 0 and "soft keyword" in d.rule, str(d)


def test_diagnostics_unique_and_by_position():
    from nkigen.diagnostics import Diagnostic, Loc, by_position, unique

    a, b, c = (Diagnostic(Loc("f", 3, 1), "x", "r1"), Diagnostic(Loc("f", 1, 2), "x", "r2"),
               Diagnostic(None, "y", "r3"))
    assert unique([a, b, a, c, b]) == [a, b, c]
    assert by_position(unique([a, b, a, c])) == [c, b, a]
