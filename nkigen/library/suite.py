"""Stage: library (generated tests). A manifest entry -> pytest source for the library suite.

Input: one kernel's manifest entry (signature, cases with tolerances, invalid cases). Output: the
text of ``tests/test_<name>.py``; and, once per library, ``tests/conftest.py`` holding the shared
helpers (load a kernel under the simulator, read goldens, compare, expect a rejection, run on a
real ``nki`` when one is installed). Rendering is deterministic: Jinja with StrictUndefined,
values rendered with ``repr`` from sorted data.

Safety: every spec-derived string reaches the generated Python escaped: values as ``repr``
literals (filter ``py``), text inside the module docstring by :func:`doc_text` (filter ``doc``),
so no spec path, name or message can end a literal and inject code.
"""

from __future__ import annotations

from functools import cache

import jinja2

import nkigen
from nkigen.templating import environment


@cache
def env() -> jinja2.Environment:
    e = environment("library")
    e.filters["py"] = repr
    e.filters["doc"] = doc_text
    return e


def doc_text(text: object) -> str:
    """``text`` on one line, safe inside a triple-double-quoted docstring.

    Backslashes and double quotes are escaped (nothing can end the literal or start an escape
    sequence), and newlines and other non-printable characters are written as escapes.
    """
    out = []
    for ch in str(text).replace("\\", "\\\\").replace('"', '\\"'):
        o = ord(ch)
        if ch.isprintable() and ch not in "\u2028\u2029":
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x100:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return "".join(out)


def _shape_repr(shape: list[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def render_test(entry: dict) -> str:
    """The generated test module of one kernel."""
    inputs = [(t["name"], t["dtype"]) for t in entry["signature"]["inputs"]]
    outputs = [t["name"] for t in entry["signature"]["outputs"]]
    cases = [(c["name"], c["rtol"], c["atol"], c.get("output_atol", {}),
              c.get("output_exact", [])) for c in entry["cases"]]
    invalid = []
    for c in entry["invalid_cases"]:
        label = "_".join(f"{k}{v}" for k, v in c["sizes"].items())
        shapes = "{" + ", ".join(f"{n!r}: {_shape_repr(c['shapes'][n])}" for n, _ in inputs) + "}"
        invalid.append((label, shapes, c["message"]))
    return env().get_template("test_kernel.py.j2").render(
        name=entry["name"], target=entry["target"], dialect=entry["dialect"],
        spec=entry["spec"], spec_sha256=entry["spec_sha256"], inputs=inputs, outputs=outputs,
        cases=cases, invalid=invalid, version=nkigen.__version__,
    )


def render_conftest() -> str:
    """The shared ``tests/conftest.py`` of a library."""
    return env().get_template("conftest.py.j2").render(version=nkigen.__version__)
